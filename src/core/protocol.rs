//! The duet wire format, version 1: frame types, `encode` and `decode`.
//!
//! Pure code: no I/O, no clock, no allocation while decoding. `decode`
//! borrows from the caller's buffer and answers "need more bytes", "one frame
//! and the bytes it used", or an error that ends the connection. Every length
//! is checked against its type's limit from the 5-byte header alone, before
//! the body is waited for; a HELLO's is checked against its version's limit
//! as soon as the version has arrived. The version is read before anything
//! version-specific, so that a HELLO of any version decodes far enough to
//! answer it with BYE(version mismatch). `docs/PROTOCOL.md` is the contract
//! this file implements; change them together.

use std::fmt;

/// Bytes before the body: a 4-byte big-endian body length and a 1-byte type.
pub const HEADER_LEN: usize = 5;
/// The most message bytes one DATA frame carries.
pub const MAX_CHUNK: usize = 64 * 1024;
/// The magic bytes that open every HELLO body.
pub const MAGIC: [u8; 4] = *b"DUET";
/// The protocol version this code speaks.
pub const VERSION: u16 = 1;
/// The longest display name a HELLO carries.
pub const MAX_NAME: usize = 255;
/// The longest free-text detail a BYE carries.
pub const MAX_BYE_DETAIL: usize = 255;

/// HELLO body bytes that every version keeps: the magic and the version.
pub const HELLO_PREFIX: usize = 4 + 2;
/// Version-1 HELLO body bytes before the name.
const HELLO_FIXED: usize = HELLO_PREFIX + 8 + 1;
/// DATA body bytes before the chunk: the message id and the flags.
pub const DATA_FIXED: usize = 8 + 1;
/// The largest body any frame may have (a full DATA chunk).
pub const MAX_BODY: usize = DATA_FIXED + MAX_CHUNK;
/// Flag bit in a DATA frame: this chunk completes the message.
pub const FLAG_LAST: u8 = 0x01;

/// Frame type bytes.
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const DATA: u8 = 0x02;
    pub const ACK: u8 = 0x03;
    pub const BYE: u8 = 0x04;
    pub const PING: u8 = 0x05;
    pub const PONG: u8 = 0x06;
    /// Room feature: a client's answer to the hub's room PING.
    pub const JOIN: u8 = 0x07;
    /// Room feature: one recipient's fate for a message a client sent.
    pub const RECEIPT: u8 = 0x08;
}

/// The value of the PING a room's hub sends right behind its HELLO (the
/// ASCII bytes `DUETROOM`). A plain version-1 peer answers it with PONG like
/// any PING; a peer that speaks the room feature answers with
/// [`Frame::Join`] instead. Heartbeat PINGs count from 1 and never reach it.
pub const ROOM_PROBE: u64 = u64::from_be_bytes(*b"DUETROOM");
/// RECEIPT body bytes before the recipient's name: message id and status.
pub const RECEIPT_FIXED: usize = 8 + 1;

/// One decoded frame, borrowing its variable parts from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// First frame on each side of every connection (version 1).
    Hello(Hello<'a>),
    /// A HELLO of another protocol version: only the magic and `version`
    /// are common to all versions; `rest` is the body after them, in that
    /// version's layout.
    ForeignHello { version: u16, rest: &'a [u8] },
    /// One chunk of message `id`; `last` marks the final chunk.
    Data {
        id: u64,
        last: bool,
        chunk: &'a [u8],
    },
    /// Message `id` arrived complete.
    Ack { id: u64 },
    /// The sender is leaving; nothing more follows.
    Bye { reason: ByeReason, detail: &'a [u8] },
    /// Liveness probe; the peer answers with `Pong` carrying the same value.
    Ping(u64),
    /// Answer to `Ping`.
    Pong(u64),
    /// Room feature: answers the hub's [`ROOM_PROBE`] PING (echoing its
    /// value) and says the sender understands RECEIPT frames and messages
    /// in the room envelope (docs/PROTOCOL.md, "Rooms").
    Join(u64),
    /// Room feature, hub to a sender that sent JOIN: what became of message
    /// `id` at one recipient, named by `name` (untrusted, at most 255 bytes).
    Receipt {
        id: u64,
        status: ReceiptStatus,
        name: &'a [u8],
    },
}

/// What a RECEIPT says about its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// The recipient acknowledged the message.
    Delivered,
    /// The recipient left, or was dropped, before acknowledging it.
    Lost,
    /// The message is larger than the recipient accepts; it was not sent
    /// to it.
    Refused,
    /// A code this version does not know; a receiver shows it by number.
    Other(u8),
}

impl ReceiptStatus {
    pub fn code(self) -> u8 {
        match self {
            ReceiptStatus::Delivered => 0,
            ReceiptStatus::Lost => 1,
            ReceiptStatus::Refused => 2,
            ReceiptStatus::Other(c) => c,
        }
    }

    pub fn from_code(code: u8) -> ReceiptStatus {
        match code {
            0 => ReceiptStatus::Delivered,
            1 => ReceiptStatus::Lost,
            2 => ReceiptStatus::Refused,
            c => ReceiptStatus::Other(c),
        }
    }
}

/// The body of a HELLO frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// Protocol version the sender speaks.
    pub version: u16,
    /// Largest message, in bytes, the sender accepts.
    pub max_message: u64,
    /// Display name, UTF-8 by convention, never trusted.
    pub name: &'a [u8],
}

/// Why a peer says BYE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByeReason {
    Normal,
    Busy,
    ProtocolError,
    MessageTooLarge,
    Timeout,
    VersionMismatch,
    /// The encrypted handshake proved a key this side does not accept.
    KeyRefused,
    /// A code this version does not know; kept so it can be shown.
    Other(u8),
}

impl ByeReason {
    pub fn code(self) -> u8 {
        match self {
            ByeReason::Normal => 0,
            ByeReason::Busy => 1,
            ByeReason::ProtocolError => 2,
            ByeReason::MessageTooLarge => 3,
            ByeReason::Timeout => 4,
            ByeReason::VersionMismatch => 5,
            ByeReason::KeyRefused => 6,
            ByeReason::Other(c) => c,
        }
    }

    pub fn from_code(code: u8) -> ByeReason {
        match code {
            0 => ByeReason::Normal,
            1 => ByeReason::Busy,
            2 => ByeReason::ProtocolError,
            3 => ByeReason::MessageTooLarge,
            4 => ByeReason::Timeout,
            5 => ByeReason::VersionMismatch,
            6 => ByeReason::KeyRefused,
            c => ByeReason::Other(c),
        }
    }
}

impl fmt::Display for ByeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ByeReason::Normal => f.write_str("normal"),
            ByeReason::Busy => f.write_str("busy"),
            ByeReason::ProtocolError => f.write_str("protocol error"),
            ByeReason::MessageTooLarge => f.write_str("message too large"),
            ByeReason::Timeout => f.write_str("timeout"),
            ByeReason::VersionMismatch => f.write_str("version mismatch"),
            ByeReason::KeyRefused => f.write_str("key refused"),
            ByeReason::Other(c) => write!(f, "reason {c}"),
        }
    }
}

/// Why bytes are not a valid frame. Any of these ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The type byte names no frame of this version.
    UnknownType(u8),
    /// The header's length is outside the range allowed for its type.
    BadLength { kind: u8, len: u32 },
    /// A HELLO does not start with [`MAGIC`].
    BadMagic,
    /// A HELLO's name length disagrees with its body length.
    BadName,
    /// A version-1 HELLO whose body length is outside 15..=270.
    BadHelloLength { len: u32 },
    /// A DATA frame sets flag bits this version does not define.
    BadFlags(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::UnknownType(t) => write!(f, "unknown frame type 0x{t:02x}"),
            DecodeError::BadLength { kind, len } => {
                let (min, max) = body_range(kind).unwrap_or((0, 0));
                write!(
                    f,
                    "frame type 0x{kind:02x} with body length {len} (allowed {min}..={max})"
                )
            }
            DecodeError::BadMagic => f.write_str("HELLO without the DUET magic"),
            DecodeError::BadName => f.write_str("HELLO name length does not match the frame"),
            DecodeError::BadHelloLength { len } => write!(
                f,
                "version {VERSION} HELLO with body length {len} (allowed {HELLO_FIXED}..={})",
                HELLO_FIXED + MAX_NAME
            ),
            DecodeError::BadFlags(b) => write!(f, "DATA frame with unknown flags 0x{b:02x}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The allowed body lengths for a frame type, or `None` for an unknown type.
/// A HELLO of any version has at least its magic and version; a version-1
/// HELLO is further limited to 15..=270 once its version is known.
pub fn body_range(kind: u8) -> Option<(usize, usize)> {
    match kind {
        kind::HELLO => Some((HELLO_PREFIX, MAX_BODY)),
        kind::DATA => Some((DATA_FIXED, MAX_BODY)),
        kind::ACK | kind::PING | kind::PONG => Some((8, 8)),
        kind::BYE => Some((1, 1 + MAX_BYE_DETAIL)),
        kind::JOIN => Some((8, 8)),
        kind::RECEIPT => Some((RECEIPT_FIXED, RECEIPT_FIXED + MAX_NAME)),
        _ => None,
    }
}

/// Decodes one frame from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds a valid but incomplete frame (call
/// again with more bytes), `Ok(Some((frame, consumed)))` for a complete
/// frame, or an error as soon as the header or body is known to be invalid.
/// Callers loop until `Ok(None)`.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let kind = buf[4];
    let (min, max) = body_range(kind).ok_or(DecodeError::UnknownType(kind))?;
    let body_len = len as usize;
    if body_len < min || body_len > max {
        return Err(DecodeError::BadLength { kind, len });
    }
    let total = HEADER_LEN + body_len;
    if kind == kind::HELLO {
        check_hello_start(&buf[HEADER_LEN..total.min(buf.len())], len)?;
    }
    let Some(body) = buf.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    let frame = match kind {
        kind::HELLO => decode_hello(body)?,
        kind::DATA => {
            let flags = body[8];
            if flags & !FLAG_LAST != 0 {
                return Err(DecodeError::BadFlags(flags));
            }
            Frame::Data {
                id: be_u64(&body[..8]),
                last: flags & FLAG_LAST != 0,
                chunk: &body[DATA_FIXED..],
            }
        }
        kind::ACK => Frame::Ack { id: be_u64(body) },
        kind::PING => Frame::Ping(be_u64(body)),
        kind::PONG => Frame::Pong(be_u64(body)),
        kind::JOIN => Frame::Join(be_u64(body)),
        kind::RECEIPT => Frame::Receipt {
            id: be_u64(body),
            status: ReceiptStatus::from_code(body[8]),
            name: &body[RECEIPT_FIXED..],
        },
        kind::BYE => Frame::Bye {
            reason: ByeReason::from_code(body[0]),
            detail: &body[1..],
        },
        _ => unreachable!("body_range accepted only known types"),
    };
    Ok(Some((frame, total)))
}

/// Checks what has arrived of a HELLO body whose length is `len`: the
/// magic, byte by byte, then the version, then the length allowed for that
/// version. Nothing version-specific is looked at before the version.
#[cold]
#[inline(never)]
fn check_hello_start(start: &[u8], len: u32) -> Result<(), DecodeError> {
    let n = start.len().min(MAGIC.len());
    if start[..n] != MAGIC[..n] {
        return Err(DecodeError::BadMagic);
    }
    let Some(v) = start.get(4..HELLO_PREFIX) else {
        return Ok(());
    };
    let version = u16::from_be_bytes([v[0], v[1]]);
    let v1 = HELLO_FIXED..=HELLO_FIXED + MAX_NAME;
    if version == VERSION && !v1.contains(&(len as usize)) {
        return Err(DecodeError::BadHelloLength { len });
    }
    Ok(())
}

/// Decodes a whole HELLO body that [`check_hello_start`] accepted.
#[cold]
#[inline(never)]
fn decode_hello(body: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let version = u16::from_be_bytes([body[4], body[5]]);
    if version != VERSION {
        return Ok(Frame::ForeignHello {
            version,
            rest: &body[HELLO_PREFIX..],
        });
    }
    let max_message = be_u64(&body[6..14]);
    let name_len = body[14] as usize;
    let name = &body[HELLO_FIXED..];
    if name.len() != name_len {
        return Err(DecodeError::BadName);
    }
    Ok(Frame::Hello(Hello {
        version,
        max_message,
        name,
    }))
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Appends the encoding of `frame` to `out`.
///
/// The caller keeps within the limits (`MAX_CHUNK`, `MAX_NAME`,
/// `MAX_BYE_DETAIL`, `MAX_BODY`); longer names and details are truncated,
/// and a DATA chunk over `MAX_CHUNK` is a bug (checked in debug builds). A
/// `Hello` is written in the version-1 layout whatever its `version` says;
/// a `ForeignHello` is for other versions (tests and fuzzing).
pub fn encode(frame: &Frame<'_>, out: &mut Vec<u8>) {
    match *frame {
        Frame::Hello(h) => {
            let name = &h.name[..h.name.len().min(MAX_NAME)];
            put_header(out, kind::HELLO, HELLO_FIXED + name.len());
            out.extend_from_slice(&MAGIC);
            out.extend_from_slice(&h.version.to_be_bytes());
            out.extend_from_slice(&h.max_message.to_be_bytes());
            out.push(name.len() as u8);
            out.extend_from_slice(name);
        }
        Frame::ForeignHello { version, rest } => {
            put_header(out, kind::HELLO, HELLO_PREFIX + rest.len());
            out.extend_from_slice(&MAGIC);
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(rest);
        }
        Frame::Data { id, last, chunk } => {
            debug_assert!(chunk.len() <= MAX_CHUNK);
            put_header(out, kind::DATA, DATA_FIXED + chunk.len());
            out.extend_from_slice(&id.to_be_bytes());
            out.push(if last { FLAG_LAST } else { 0 });
            out.extend_from_slice(chunk);
        }
        Frame::Ack { id } => put_u64_frame(out, kind::ACK, id),
        Frame::Ping(v) => put_u64_frame(out, kind::PING, v),
        Frame::Pong(v) => put_u64_frame(out, kind::PONG, v),
        Frame::Join(v) => put_u64_frame(out, kind::JOIN, v),
        Frame::Receipt { id, status, name } => {
            let name = &name[..name.len().min(MAX_NAME)];
            put_header(out, kind::RECEIPT, RECEIPT_FIXED + name.len());
            out.extend_from_slice(&id.to_be_bytes());
            out.push(status.code());
            out.extend_from_slice(name);
        }
        Frame::Bye { reason, detail } => {
            let detail = &detail[..detail.len().min(MAX_BYE_DETAIL)];
            put_header(out, kind::BYE, 1 + detail.len());
            out.push(reason.code());
            out.extend_from_slice(detail);
        }
    }
}

/// Appends a message in the room envelope to `out`: the sender's name
/// (at most [`MAX_NAME`] bytes, longer ones truncated) behind its one-byte
/// length, then the message. A hub sends every message to a peer that sent
/// JOIN this way; an empty name means the hub itself.
pub fn encode_envelope(name: &[u8], text: &[u8], out: &mut Vec<u8>) {
    let name = &name[..name.len().min(MAX_NAME)];
    out.reserve(1 + name.len() + text.len());
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(text);
}

/// Splits a message in the room envelope into the sender's name and the
/// message; `None` when it is too short for the name it announces (the
/// receiver treats that as a protocol error).
pub fn decode_envelope(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&n, rest) = msg.split_first()?;
    (rest.len() >= n as usize).then(|| rest.split_at(n as usize))
}

fn put_header(out: &mut Vec<u8>, kind: u8, body_len: usize) {
    debug_assert!(body_len <= MAX_BODY);
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.push(kind);
}

fn put_u64_frame(out: &mut Vec<u8>, kind: u8, v: u64) {
    put_header(out, kind, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: Frame<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        encode(&f, &mut v);
        v
    }

    fn samples() -> Vec<Vec<u8>> {
        let big = vec![0xabu8; MAX_CHUNK];
        vec![
            enc(Frame::Hello(Hello {
                version: VERSION,
                max_message: 16 << 20,
                name: b"alice",
            })),
            enc(Frame::Hello(Hello {
                version: 7,
                max_message: 0,
                name: b"",
            })),
            enc(Frame::Data {
                id: 1,
                last: true,
                chunk: b"hi",
            }),
            enc(Frame::Data {
                id: u64::MAX,
                last: true,
                chunk: b"",
            }),
            enc(Frame::Data {
                id: 2,
                last: false,
                chunk: &big,
            }),
            enc(Frame::Ack { id: 42 }),
            enc(Frame::Bye {
                reason: ByeReason::Busy,
                detail: b"someone else is chatting",
            }),
            enc(Frame::Bye {
                reason: ByeReason::Other(200),
                detail: b"",
            }),
            enc(Frame::Ping(9)),
            enc(Frame::Pong(9)),
            enc(Frame::Join(ROOM_PROBE)),
            enc(Frame::Receipt {
                id: 3,
                status: ReceiptStatus::Delivered,
                name: b"bob",
            }),
            enc(Frame::Receipt {
                id: 4,
                status: ReceiptStatus::Other(9),
                name: b"",
            }),
        ]
    }

    #[test]
    fn round_trip_every_frame_type() {
        let big = vec![0xabu8; MAX_CHUNK];
        let frames = [
            Frame::Hello(Hello {
                version: VERSION,
                max_message: 16 << 20,
                name: b"alice",
            }),
            Frame::Data {
                id: 1,
                last: true,
                chunk: b"hi",
            },
            Frame::Data {
                id: 3,
                last: false,
                chunk: &big,
            },
            Frame::Ack { id: 42 },
            Frame::Bye {
                reason: ByeReason::ProtocolError,
                detail: b"x",
            },
            Frame::Ping(1),
            Frame::Pong(u64::MAX),
            Frame::Join(ROOM_PROBE),
            Frame::Receipt {
                id: u64::MAX,
                status: ReceiptStatus::Lost,
                name: &[b'n'; MAX_NAME],
            },
        ];
        for f in frames {
            let bytes = enc(f);
            assert_eq!(decode(&bytes), Ok(Some((f, bytes.len()))), "{f:?}");
        }
    }

    #[test]
    fn every_strict_prefix_needs_more() {
        for bytes in samples() {
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "prefix {cut} of {bytes:?}");
            }
            assert!(decode(&bytes).unwrap().is_some());
        }
    }

    #[test]
    fn one_byte_at_a_time_then_two_in_one_buffer() {
        let mut stream = Vec::new();
        for s in samples() {
            stream.extend_from_slice(&s);
        }
        // Feed one byte at a time into a growing buffer, decoding as we go.
        let mut buf = Vec::new();
        let mut n = 0;
        for &b in &stream {
            buf.push(b);
            while let Some((_, used)) = decode(&buf).unwrap() {
                buf.drain(..used);
                n += 1;
            }
        }
        assert!(buf.is_empty());
        assert_eq!(n, samples().len());
        // All of them in one buffer.
        let mut rest = &stream[..];
        let mut m = 0;
        while let Some((_, used)) = decode(rest).unwrap() {
            rest = &rest[used..];
            m += 1;
        }
        assert_eq!(m, n);
        assert!(rest.is_empty());
    }

    /// Every frame type there is.
    const ALL_KINDS: [u8; 8] = [
        kind::HELLO,
        kind::DATA,
        kind::ACK,
        kind::BYE,
        kind::PING,
        kind::PONG,
        kind::JOIN,
        kind::RECEIPT,
    ];

    #[test]
    fn limit_accepted_and_limit_plus_one_rejected_from_header_alone() {
        for kind in ALL_KINDS {
            let (min, max) = body_range(kind).unwrap();
            let header = |len: usize| {
                let mut h = (len as u32).to_be_bytes().to_vec();
                h.push(kind);
                h
            };
            assert_eq!(decode(&header(max)), Ok(None), "max for {kind}");
            assert_eq!(decode(&header(min)), Ok(None), "min for {kind}");
            assert_eq!(
                decode(&header(max + 1)),
                Err(DecodeError::BadLength {
                    kind,
                    len: max as u32 + 1
                })
            );
            if min > 0 {
                assert_eq!(
                    decode(&header(min - 1)),
                    Err(DecodeError::BadLength {
                        kind,
                        len: min as u32 - 1
                    })
                );
            }
        }
        let huge = [0xff, 0xff, 0xff, 0xff, kind::DATA];
        assert!(matches!(decode(&huge), Err(DecodeError::BadLength { .. })));
    }

    #[test]
    fn unknown_type_rejected_from_header() {
        for t in [0u8, 9, 0x7f, 0xff] {
            assert_eq!(decode(&[0, 0, 0, 0, t]), Err(DecodeError::UnknownType(t)));
        }
    }

    #[test]
    fn empty_message_is_a_nine_byte_data_body() {
        let bytes = enc(Frame::Data {
            id: 5,
            last: true,
            chunk: b"",
        });
        assert_eq!(bytes.len(), HEADER_LEN + 9);
        assert_eq!(
            decode(&bytes),
            Ok(Some((
                Frame::Data {
                    id: 5,
                    last: true,
                    chunk: b""
                },
                14
            )))
        );
    }

    #[test]
    fn malformed_bodies() {
        let mut hello = enc(Frame::Hello(Hello {
            version: 1,
            max_message: 1,
            name: b"ab",
        }));
        let mut bad_magic = hello.clone();
        bad_magic[HEADER_LEN] = b'X';
        assert_eq!(decode(&bad_magic), Err(DecodeError::BadMagic));
        hello[HEADER_LEN + 14] = 3; // name length says 3, body holds 2
        assert_eq!(decode(&hello), Err(DecodeError::BadName));

        let mut data = enc(Frame::Data {
            id: 1,
            last: true,
            chunk: b"x",
        });
        data[HEADER_LEN + 8] = 0x03;
        assert_eq!(decode(&data), Err(DecodeError::BadFlags(0x03)));
    }

    #[test]
    fn wire_bytes_are_stable() {
        assert_eq!(
            enc(Frame::Ack { id: 1 }),
            [0, 0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            enc(Frame::Hello(Hello {
                version: 1,
                max_message: 0x0100,
                name: b"a"
            })),
            [
                0, 0, 0, 16, 1, b'D', b'U', b'E', b'T', 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, b'a'
            ]
        );
        assert_eq!(
            enc(Frame::Data {
                id: 2,
                last: true,
                chunk: b"hi"
            }),
            [0, 0, 0, 11, 2, 0, 0, 0, 0, 0, 0, 0, 2, 1, b'h', b'i']
        );
        assert_eq!(
            enc(Frame::Bye {
                reason: ByeReason::Busy,
                detail: b""
            }),
            [0, 0, 0, 1, 4, 1]
        );
    }

    /// A HELLO with the magic, a version and `rest`, built by hand.
    fn raw_hello(version: u16, rest: &[u8]) -> Vec<u8> {
        let mut v = ((HELLO_PREFIX + rest.len()) as u32).to_be_bytes().to_vec();
        v.push(kind::HELLO);
        v.extend_from_slice(b"DUET");
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn a_hello_of_another_version_decodes_whatever_its_layout() {
        let long = vec![7u8; 400];
        for (version, rest) in [
            (2u16, &b""[..]),
            (2, b"abc"),
            (2, &long),
            (0, b"\x00\x00\x00\x00\x00\x00\x01\x00\x05"),
            (u16::MAX, &[0xff; 300]),
        ] {
            let bytes = raw_hello(version, rest);
            let frame = Frame::ForeignHello { version, rest };
            assert_eq!(decode(&bytes), Ok(Some((frame, bytes.len()))), "{version}");
            assert_eq!(enc(frame), bytes);
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "prefix {cut}");
            }
        }
        // The largest body any frame may have is the largest HELLO too.
        let max = raw_hello(9, &vec![0; MAX_BODY - HELLO_PREFIX]);
        assert!(matches!(
            decode(&max),
            Ok(Some((Frame::ForeignHello { .. }, _)))
        ));
        let mut short = raw_hello(9, b"");
        short[3] = 5;
        assert_eq!(
            decode(&short),
            Err(DecodeError::BadLength {
                kind: kind::HELLO,
                len: 5
            })
        );
    }

    #[test]
    fn a_version_1_hello_length_is_checked_once_the_version_is_in() {
        for len in [6u32, 14, 271, 1000, MAX_BODY as u32] {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.push(kind::HELLO);
            bytes.extend_from_slice(b"DUET\x00");
            assert_eq!(decode(&bytes), Ok(None), "version not in yet");
            bytes.push(1);
            assert_eq!(
                decode(&bytes),
                Err(DecodeError::BadHelloLength { len }),
                "{len}"
            );
        }
        assert_eq!(
            DecodeError::BadHelloLength { len: 14 }.to_string(),
            "version 1 HELLO with body length 14 (allowed 15..=270)"
        );
    }

    #[test]
    fn a_hello_without_the_magic_fails_at_its_first_wrong_byte() {
        let mut bytes = raw_hello(1, &[0; 9]);
        bytes[HEADER_LEN + 1] = b'X';
        assert_eq!(decode(&bytes[..HEADER_LEN + 1]), Ok(None));
        assert_eq!(decode(&bytes[..HEADER_LEN + 2]), Err(DecodeError::BadMagic));
    }

    /// The frames docs/PROTOCOL.md's test vectors name, in the doc's order.
    fn vector_frames() -> Vec<(&'static str, Frame<'static>)> {
        let bye = |code: u8, detail: &'static [u8]| Frame::Bye {
            reason: ByeReason::from_code(code),
            detail,
        };
        vec![
            (
                "hello",
                Frame::Hello(Hello {
                    version: 1,
                    max_message: 256,
                    name: b"a",
                }),
            ),
            (
                "hello-no-name",
                Frame::Hello(Hello {
                    version: 1,
                    max_message: 16 << 20,
                    name: b"",
                }),
            ),
            (
                "hello-version-2",
                Frame::ForeignHello {
                    version: 2,
                    rest: b"",
                },
            ),
            (
                "data",
                Frame::Data {
                    id: 2,
                    last: true,
                    chunk: b"hi",
                },
            ),
            (
                "data-more",
                Frame::Data {
                    id: 3,
                    last: false,
                    chunk: b"ab",
                },
            ),
            (
                "data-empty",
                Frame::Data {
                    id: 1,
                    last: true,
                    chunk: b"",
                },
            ),
            ("ack", Frame::Ack { id: 1 }),
            ("ping", Frame::Ping(1)),
            ("pong", Frame::Pong(1)),
            ("ping-room", Frame::Ping(ROOM_PROBE)),
            ("join", Frame::Join(ROOM_PROBE)),
            (
                "receipt",
                Frame::Receipt {
                    id: 2,
                    status: ReceiptStatus::Delivered,
                    name: b"bob",
                },
            ),
            (
                "receipt-lost",
                Frame::Receipt {
                    id: 3,
                    status: ReceiptStatus::Lost,
                    name: b"al",
                },
            ),
            (
                "receipt-refused",
                Frame::Receipt {
                    id: 4,
                    status: ReceiptStatus::Refused,
                    name: b"",
                },
            ),
            ("bye-normal", bye(0, b"")),
            ("bye-busy", bye(1, b"")),
            ("bye-protocol-error", bye(2, b"bad")),
            ("bye-too-large", bye(3, b"")),
            ("bye-timeout", bye(4, b"")),
            ("bye-version", bye(5, b"")),
            ("bye-key-refused", bye(6, b"")),
            ("bye-unknown", bye(200, b"")),
        ]
    }

    /// The rows of docs/PROTOCOL.md's "Test vectors" table: name and bytes.
    fn doc_vectors() -> Vec<(String, Vec<u8>)> {
        const DOC: &str = include_str!("../../docs/PROTOCOL.md");
        let section = DOC
            .split("\n## Test vectors\n")
            .nth(1)
            .expect("docs/PROTOCOL.md has a Test vectors section");
        let section = section.split("\n## ").next().unwrap_or(section);
        section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                assert_eq!(cells.len(), 5, "a row of three cells: {row}");
                let hex = cells[3].trim_matches('`');
                let bytes = hex
                    .split_whitespace()
                    .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("{row}")))
                    .collect();
                (cells[1].trim_matches('`').to_string(), bytes)
            })
            .collect()
    }

    #[test]
    fn the_spec_test_vectors_are_what_encode_and_decode_do() {
        let doc = doc_vectors();
        let ours = vector_frames();
        let names = |v: Vec<&str>| v.join(", ");
        assert_eq!(
            names(doc.iter().map(|(n, _)| n.as_str()).collect()),
            names(ours.iter().map(|(n, _)| *n).collect()),
            "docs/PROTOCOL.md and this test name the same vectors"
        );
        for ((name, bytes), (_, frame)) in doc.iter().zip(&ours) {
            assert_eq!(&enc(*frame), bytes, "encoding {name}");
            assert_eq!(
                decode(bytes),
                Ok(Some((*frame, bytes.len()))),
                "decoding {name}"
            );
        }
        // Every frame type and every BYE reason has a vector.
        for kind in ALL_KINDS {
            assert!(doc.iter().any(|(_, b)| b[4] == kind), "type {kind}");
        }
        for code in 0..=6u8 {
            let known = ByeReason::from_code(code);
            let have = |c: u8| doc.iter().any(|(_, b)| b[4] == kind::BYE && b[5] == c);
            match known {
                ByeReason::Other(_) => assert!(
                    doc.iter().any(|(_, b)| b[4] == kind::BYE
                        && matches!(ByeReason::from_code(b[5]), ByeReason::Other(_))),
                    "an unknown reason"
                ),
                _ => assert!(have(code), "reason {known}"),
            }
        }
    }

    #[test]
    fn a_receipt_shorter_than_its_fixed_part_is_rejected_and_its_status_kept() {
        let mut short = vec![0, 0, 0, 8, kind::RECEIPT];
        short.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode(&short),
            Err(DecodeError::BadLength {
                kind: kind::RECEIPT,
                len: 8
            })
        );
        for code in 0..=255u8 {
            assert_eq!(ReceiptStatus::from_code(code).code(), code);
        }
    }

    #[test]
    fn the_room_envelope_round_trips_and_rejects_a_short_name() {
        let mut out = Vec::new();
        encode_envelope(b"bob", b"hi", &mut out);
        assert_eq!(out, b"\x03bobhi");
        assert_eq!(decode_envelope(&out), Some((&b"bob"[..], &b"hi"[..])));
        out.clear();
        encode_envelope(b"", b"", &mut out);
        assert_eq!(decode_envelope(&out), Some((&b""[..], &b""[..])));
        assert_eq!(decode_envelope(b""), None);
        assert_eq!(decode_envelope(b"\x04bob"), None);
        out.clear();
        encode_envelope(&[b'x'; 300], b"!", &mut out);
        assert_eq!(out.len(), 1 + MAX_NAME + 1);
    }

    #[test]
    fn an_http_request_is_rejected_from_its_first_five_bytes() {
        assert!(decode(b"GET / HTTP/1.1\r\n").is_err());
        // A TLS ClientHello record header: 16 03 01 ...
        assert!(decode(&[0x16, 0x03, 0x01, 0x02, 0x00]).is_err());
    }
}
