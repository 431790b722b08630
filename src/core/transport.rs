//! The encrypted transport: one connection's Noise state, between the
//! socket buffers and the [`Session`](crate::core::session::Session).
//!
//! Pure and sans-IO, like the session: ciphertext bytes in, plaintext bytes
//! out, and the reverse; no descriptor, no clock. The cryptography is the
//! `snow` crate's (`Noise_XX_25519_ChaChaPoly_BLAKE2s` with its pure-Rust
//! resolver); nothing here implements a primitive.
//!
//! On the wire (docs/PROTOCOL.md, "Encrypted transport"):
//! - every Noise message, handshake or transport, is one **record**: a
//!   2-byte big-endian length, then that many bytes of Noise message (at
//!   most 65,535, Noise's limit, so the prefix cannot announce more);
//! - the handshake is XX with empty payloads and the prologue
//!   [`PROLOGUE`]: message 1 (initiator → responder) is 32 bytes, message
//!   2 is 96, message 3 is 64; any other length is refused from the prefix;
//! - after it, the plaintext inside the records is exactly the duet v1
//!   frame stream; records are cut wherever the sender flushes, at most
//!   [`MAX_PLAINTEXT`] bytes of plaintext each, and a receiver must not
//!   depend on where;
//! - no rekeying: a connection is one chat, and its 64-bit nonces cannot
//!   run out.
//!
//! The order of calls, per connection: [`Transport::new`]; then, whenever
//! bytes arrive, [`Transport::handle_ciphertext`] (hand the plaintext it
//! appends to the session); after every call that may have advanced the
//! handshake, [`Transport::poll_handshake`] and write what it appended;
//! once [`Transport::is_established`], [`Transport::seal`] what the session
//! transmits. An error ends the connection: it is sticky for receiving, but
//! an established transport can still [`seal`](Transport::seal) a goodbye.
//!
//! **Allocation.** Once the handshake is over nothing here allocates: a
//! record is encrypted straight into the caller's output `Vec` and decrypted
//! straight into the caller's plaintext `Vec`. A caller stays
//! allocation-free by keeping both `Vec`s (clearing, not dropping them) with
//! room for what one turn seals or opens: `seal` needs
//! [`sealed_len`]`(plaintext.len())` spare bytes, `handle_ciphertext` at
//! most `input.len()` (plaintext is never longer than its record).

use std::fmt;

use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::{HandshakeState, TransportState};

use crate::core::protocol::{self, ByeReason, Frame};

/// The Noise protocol name (pattern, DH, cipher, hash).
pub const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// The prologue both sides feed to the handshake: a peer that differs fails
/// the handshake (message 2 or 3 does not authenticate). It names the
/// protocol generation (duet v1 frames inside Noise), so a later change of
/// the inside can never be mistaken for this one.
pub const PROLOGUE: &[u8] = b"duet/2";
/// Bytes in an X25519 key, public or private.
pub const KEY_LEN: usize = 32;
/// Noise's limit on one message, and so on one record's body.
pub const MAX_RECORD: usize = 65_535;
/// The ChaChaPoly authentication tag at the end of every encrypted record.
pub const TAG_LEN: usize = 16;
/// The most plaintext one record carries.
pub const MAX_PLAINTEXT: usize = MAX_RECORD - TAG_LEN;
/// The record length prefix.
pub const LEN_PREFIX: usize = 2;
/// The sizes of the three XX messages with empty payloads: `e`; `e, ee, s,
/// es` (32 + 32 + 16 + 16 for the empty payload's tag); `s, se` (32 + 16 +
/// 16).
pub const HANDSHAKE_LENS: [usize; 3] = [32, 96, 64];

/// The first bytes of a plain duet v1 stream: a HELLO's 4-byte length (at
/// most 65,545, so it starts `00 00`), its type `01` and the magic `DUET`.
/// Bytes 2 and 3 (the rest of the length) may be anything.
const V1_HELLO: [Option<u8>; 9] = [
    Some(0),
    Some(0),
    None,
    None,
    Some(0x01),
    Some(b'D'),
    Some(b'U'),
    Some(b'E'),
    Some(b'T'),
];

/// The detail of the plain v1 BYE a responder sends to a peer that spoke
/// v1 to it (the only plaintext a [`Transport`] ever writes). From the BYE
/// sender's side: "you" is the plain peer.
pub const PLAIN_PEER_BYE: &str =
    "this duet is encrypted and you run with --plain; use --plain on both sides or neither";

/// Which end of the handshake this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client: sends handshake message 1 and 3.
    Initiator,
    /// The server: sends handshake message 2.
    Responder,
}

/// Why the encrypted transport ends the connection. Each is one line for
/// people; none carries peer bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// A handshake message or record did not authenticate: tampered with,
    /// replayed, reordered, or from a peer with another prologue.
    Authentication,
    /// A handshake message's length prefix is not the size XX gives it.
    HandshakeSize {
        /// Which message (1 to 3).
        message: u8,
        len: u16,
        expected: u16,
    },
    /// The connection ended before the handshake completed.
    TruncatedHandshake,
    /// The connection ended inside a record.
    TruncatedRecord,
    /// A record too short to hold its authentication tag.
    ShortRecord { len: u16 },
    /// The peer speaks plain duet v1 (it sent a v1 HELLO).
    PlainPeer,
    /// Seen by a plain v1 side: the peer's first bytes are a Noise
    /// handshake (see [`encrypted_peer`]).
    EncryptedPeer,
    /// `seal` before the handshake completed (a caller's mistake).
    NotEstablished,
    /// The operating system gave no randomness for the ephemeral key.
    Random,
    /// The Noise library refused an operation that cannot fail here (a
    /// nonce exhausted after 2^64 records, an internal state error).
    Internal,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TransportError::Authentication => f.write_str("message authentication failed"),
            TransportError::HandshakeSize {
                message,
                len,
                expected,
            } => write!(
                f,
                "encrypted handshake message {message} has {len} bytes, expected {expected}"
            ),
            TransportError::TruncatedHandshake => {
                f.write_str("the connection ended during the encrypted handshake")
            }
            TransportError::TruncatedRecord => {
                f.write_str("the connection ended in the middle of an encrypted record")
            }
            TransportError::ShortRecord { len } => write!(
                f,
                "encrypted record of {len} bytes is shorter than its {TAG_LEN}-byte tag"
            ),
            TransportError::PlainPeer => {
                f.write_str("the peer runs with --plain; use --plain on both sides or neither")
            }
            TransportError::EncryptedPeer => f.write_str(
                "the peer is encrypted and this side runs with --plain; use --plain on both sides or neither",
            ),
            TransportError::NotEstablished => {
                f.write_str("encrypted transport used before its handshake completed")
            }
            TransportError::Random => f.write_str("no randomness available for a key"),
            TransportError::Internal => f.write_str("the encryption library failed"),
        }
    }
}

impl std::error::Error for TransportError {}

fn map_snow(e: snow::Error) -> TransportError {
    match e {
        snow::Error::Decrypt => TransportError::Authentication,
        snow::Error::Rng => TransportError::Random,
        _ => TransportError::Internal,
    }
}

enum State {
    /// The handshake is running; `next` is the index (0..3) of the next
    /// XX message, whichever side writes it.
    Handshake {
        hs: Box<HandshakeState>,
        next: usize,
    },
    Established(Box<TransportState>),
    /// Only while moving from one state to the other, or after a failure
    /// during that move.
    Gone,
}

/// One connection's Noise state, initiator or responder.
pub struct Transport {
    role: Role,
    state: State,
    /// Framed handshake messages (or the plain BYE to a v1 peer) not yet
    /// taken by `poll_handshake`.
    pending: Vec<u8>,
    /// Bytes of the peer's stream consumed so far, up to 1: the v1 check
    /// applies only at the very start.
    started: bool,
    local_static: [u8; KEY_LEN],
    remote_static: Option<[u8; KEY_LEN]>,
    handshake_hash: Option<[u8; 32]>,
    /// The error that ended receiving; returned again by every later call.
    error: Option<TransportError>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys' secrets: the state is opaque.
        f.debug_struct("Transport")
            .field("role", &self.role)
            .field("established", &self.is_established())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// The public key of an X25519 private key.
pub fn public_key(private: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut dh = DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .expect("the default resolver has X25519");
    dh.set(private);
    let mut public = [0; KEY_LEN];
    public.copy_from_slice(dh.pubkey());
    public
}

/// A fresh static key pair, `(private, public)`, from the OS's randomness.
pub fn generate_keypair() -> Result<([u8; KEY_LEN], [u8; KEY_LEN]), TransportError> {
    let pair = snow::Builder::new(params())
        .generate_keypair()
        .map_err(map_snow)?;
    let mut private = [0; KEY_LEN];
    private.copy_from_slice(&pair.private);
    let mut public = [0; KEY_LEN];
    public.copy_from_slice(&pair.public);
    Ok((private, public))
}

fn params() -> snow::params::NoiseParams {
    PATTERN.parse().expect("PATTERN is a valid Noise name")
}

/// The ciphertext `seal` appends for `plaintext_len` bytes: one record per
/// [`MAX_PLAINTEXT`] bytes, each with its prefix and tag.
pub fn sealed_len(plaintext_len: usize) -> usize {
    let records = plaintext_len.div_ceil(MAX_PLAINTEXT);
    plaintext_len + records * (LEN_PREFIX + TAG_LEN)
}

/// For a plain (v1) side: `Some(EncryptedPeer)` when the peer's first
/// bytes are a Noise duet's first handshake message (`00 20`, a length no
/// v1 frame can start with: 0x0020_xxxx is over 2 MiB), so the "not a duet
/// peer" error can say which flag to use. `None` when they are not, or
/// fewer than 2 bytes have arrived.
pub fn encrypted_peer(first: &[u8]) -> Option<TransportError> {
    let len = (HANDSHAKE_LENS[0] as u16).to_be_bytes();
    (first.len() >= LEN_PREFIX && first[..LEN_PREFIX] == len)
        .then_some(TransportError::EncryptedPeer)
}

/// What the first bytes of a stream say about a plain v1 peer: `Some(true)`
/// a v1 HELLO, `Some(false)` not one, `None` too few bytes to tell.
fn v1_hello(first: &[u8]) -> Option<bool> {
    for (i, want) in V1_HELLO.iter().enumerate() {
        match (first.get(i), want) {
            (None, _) => return None,
            (Some(b), Some(w)) if b != w => return Some(false),
            _ => {}
        }
    }
    Some(true)
}

impl Transport {
    /// A transport for one connection with our static private key. The
    /// initiator's handshake message 1 is queued at once (take it with
    /// [`poll_handshake`](Self::poll_handshake)). Fails only when the OS
    /// has no randomness for the ephemeral key.
    pub fn new(role: Role, local_private: &[u8; KEY_LEN]) -> Result<Transport, TransportError> {
        Transport::build(role, local_private, PROLOGUE, None)
    }

    /// As [`new`](Self::new) with a chosen prologue and ephemeral key:
    /// for the test vectors and reproducible fuzzing only. A fixed
    /// ephemeral key on a real connection destroys forward secrecy.
    #[doc(hidden)]
    pub fn new_for_testing_only(
        role: Role,
        local_private: &[u8; KEY_LEN],
        prologue: &[u8],
        ephemeral_private: &[u8; KEY_LEN],
    ) -> Result<Transport, TransportError> {
        Transport::build(role, local_private, prologue, Some(ephemeral_private))
    }

    fn build(
        role: Role,
        local_private: &[u8; KEY_LEN],
        prologue: &[u8],
        ephemeral: Option<&[u8; KEY_LEN]>,
    ) -> Result<Transport, TransportError> {
        let mut builder = snow::Builder::new(params())
            .local_private_key(local_private)
            .map_err(map_snow)?
            .prologue(prologue)
            .map_err(map_snow)?;
        if let Some(e) = ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let hs = match role {
            Role::Initiator => builder.build_initiator(),
            Role::Responder => builder.build_responder(),
        }
        .map_err(map_snow)?;
        let mut t = Transport {
            role,
            state: State::Handshake {
                hs: Box::new(hs),
                next: 0,
            },
            pending: Vec::with_capacity(LEN_PREFIX + HANDSHAKE_LENS[1]),
            started: false,
            local_static: public_key(local_private),
            remote_static: None,
            handshake_hash: None,
            error: None,
        };
        if role == Role::Initiator {
            t.write_handshake()?;
        }
        Ok(t)
    }

    /// Which end of the handshake this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The handshake is complete: `seal` works, and what arrives is records.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// Our static public key.
    pub fn local_static(&self) -> [u8; KEY_LEN] {
        self.local_static
    }

    /// The peer's static public key, proven by the handshake: `Some` once
    /// established.
    pub fn remote_static(&self) -> Option<[u8; KEY_LEN]> {
        self.remote_static
    }

    /// The Noise handshake hash, the same on both sides: `Some` once
    /// established. It identifies this connection (channel binding).
    pub fn handshake_hash(&self) -> Option<[u8; 32]> {
        self.handshake_hash
    }

    /// The error that ended receiving, if one did.
    pub fn error(&self) -> Option<TransportError> {
        self.error
    }

    /// Handshake bytes are waiting for [`poll_handshake`](Self::poll_handshake).
    pub fn has_handshake_output(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Appends the handshake messages waiting to be sent (framed, ready
    /// for the socket) to `out`. Call it after `new` and after every
    /// `handle_ciphertext`; it appends nothing once established.
    pub fn poll_handshake(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.pending);
        self.pending.clear();
    }

    /// Decodes every complete record at the start of `input`: handshake
    /// messages while the handshake runs (advancing it; the answer waits in
    /// [`poll_handshake`](Self::poll_handshake)), then transport records,
    /// whose plaintext is appended to `plaintext_out`. A handshake can
    /// complete and records follow in the same `input`.
    ///
    /// Returns the bytes consumed; fewer than `input.len()` means the rest
    /// is the start of a record (keep it, append more, call again). An
    /// error ends the connection; `plaintext_out` then still holds the
    /// plaintext of every record before the bad one, which was genuine.
    /// A length is judged from the prefix alone, before its body arrives.
    pub fn handle_ciphertext(
        &mut self,
        input: &[u8],
        plaintext_out: &mut Vec<u8>,
    ) -> Result<usize, TransportError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let step = match &mut self.state {
                State::Handshake { .. } => self.read_handshake(rest),
                State::Established(ts) => open_record(ts, rest, plaintext_out),
                State::Gone => Err(TransportError::Internal),
            };
            match step {
                Ok(0) => return Ok(used),
                Ok(n) => {
                    self.started = true;
                    used += n;
                }
                Err(e) => {
                    self.error = Some(e);
                    return Err(e);
                }
            }
        }
    }

    /// The peer's end of stream, with `unconsumed` bytes of an incomplete
    /// record left over: an error if the handshake had not completed or a
    /// record was cut. A clean end between records is `Ok`: whether it
    /// ends the chat properly is the session's to say.
    pub fn handle_eof(&mut self, unconsumed: usize) -> Result<(), TransportError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let e = match self.state {
            State::Established(_) if unconsumed == 0 => return Ok(()),
            State::Established(_) => TransportError::TruncatedRecord,
            _ => TransportError::TruncatedHandshake,
        };
        self.error = Some(e);
        Err(e)
    }

    /// Encrypts `plaintext` into records appended to `out`: one record per
    /// [`MAX_PLAINTEXT`] bytes, [`sealed_len`] bytes in all, nothing for an
    /// empty `plaintext`. Works after a receive error too, so a goodbye
    /// can still be sent.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), TransportError> {
        let State::Established(ts) = &mut self.state else {
            return Err(TransportError::NotEstablished);
        };
        out.reserve(sealed_len(plaintext.len()));
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            let start = out.len();
            let body = chunk.len() + TAG_LEN;
            out.resize(start + LEN_PREFIX + body, 0);
            let len = u16::try_from(body).expect("a record body fits Noise's limit");
            out[start..start + LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
            match ts.write_message(chunk, &mut out[start + LEN_PREFIX..]) {
                Ok(n) => debug_assert_eq!(n, body),
                Err(e) => {
                    out.truncate(start);
                    return Err(map_snow(e));
                }
            }
        }
        Ok(())
    }

    /// One handshake message from the start of `rest`: `Ok(0)` when it has
    /// not all arrived, else the bytes it took.
    fn read_handshake(&mut self, rest: &[u8]) -> Result<usize, TransportError> {
        if !self.started {
            match v1_hello(rest) {
                Some(true) => {
                    if self.role == Role::Responder {
                        protocol::encode(
                            &Frame::Bye {
                                reason: ByeReason::ProtocolError,
                                detail: PLAIN_PEER_BYE.as_bytes(),
                            },
                            &mut self.pending,
                        );
                    }
                    return Err(TransportError::PlainPeer);
                }
                // `00 00 ..`, not yet decided: a length of 0 is wrong for
                // Noise anyway, so waiting costs nothing.
                None if rest.len() >= LEN_PREFIX => return Ok(0),
                _ => {}
            }
        }
        let State::Handshake { hs, next } = &mut self.state else {
            unreachable!("read_handshake runs only during the handshake");
        };
        let Some(prefix) = rest.get(..LEN_PREFIX) else {
            return Ok(0);
        };
        let len = u16::from_be_bytes([prefix[0], prefix[1]]);
        let expected = HANDSHAKE_LENS[*next];
        if usize::from(len) != expected {
            return Err(TransportError::HandshakeSize {
                message: *next as u8 + 1,
                len,
                expected: expected as u16,
            });
        }
        let Some(msg) = rest.get(LEN_PREFIX..LEN_PREFIX + expected) else {
            return Ok(0);
        };
        // The payloads are empty; the room is for a misbehaving library.
        let mut payload = [0u8; 128];
        let n = hs.read_message(msg, &mut payload).map_err(map_snow)?;
        if n != 0 {
            return Err(TransportError::Internal);
        }
        *next += 1;
        match (self.role, *next) {
            (Role::Responder, 1) | (Role::Initiator, 2) => self.write_handshake()?,
            (Role::Responder, 3) => self.finish()?,
            _ => return Err(TransportError::Internal),
        }
        Ok(LEN_PREFIX + expected)
    }

    /// Writes our next handshake message into `pending`; after message 3
    /// the initiator is established.
    fn write_handshake(&mut self) -> Result<(), TransportError> {
        let State::Handshake { hs, next } = &mut self.state else {
            return Err(TransportError::Internal);
        };
        let len = HANDSHAKE_LENS[*next];
        // snow wants room for a tag even where the message has none.
        let mut msg = [0u8; 128];
        let n = hs.write_message(&[], &mut msg).map_err(map_snow)?;
        if n != len {
            return Err(TransportError::Internal);
        }
        self.pending.extend_from_slice(&(len as u16).to_be_bytes());
        self.pending.extend_from_slice(&msg[..n]);
        *next += 1;
        if *next == HANDSHAKE_LENS.len() {
            self.finish()?;
        }
        Ok(())
    }

    /// The handshake is complete: keep the peer's key and the hash, and
    /// switch to transport mode.
    fn finish(&mut self) -> Result<(), TransportError> {
        let State::Handshake { hs, .. } = std::mem::replace(&mut self.state, State::Gone) else {
            return Err(TransportError::Internal);
        };
        let mut hash = [0; 32];
        hash.copy_from_slice(hs.get_handshake_hash());
        let mut remote = [0; KEY_LEN];
        remote.copy_from_slice(hs.get_remote_static().ok_or(TransportError::Internal)?);
        let ts = hs.into_transport_mode().map_err(map_snow)?;
        self.handshake_hash = Some(hash);
        self.remote_static = Some(remote);
        self.state = State::Established(Box::new(ts));
        Ok(())
    }
}

/// One transport record from the start of `rest`, its plaintext appended
/// to `out`: `Ok(0)` when it has not all arrived, else the bytes it took.
fn open_record(
    ts: &mut TransportState,
    rest: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, TransportError> {
    let Some(prefix) = rest.get(..LEN_PREFIX) else {
        return Ok(0);
    };
    let len = u16::from_be_bytes([prefix[0], prefix[1]]);
    let body = usize::from(len);
    if body < TAG_LEN {
        return Err(TransportError::ShortRecord { len });
    }
    let Some(record) = rest.get(LEN_PREFIX..LEN_PREFIX + body) else {
        return Ok(0);
    };
    let start = out.len();
    out.resize(start + body - TAG_LEN, 0);
    match ts.read_message(record, &mut out[start..]) {
        Ok(n) => {
            debug_assert_eq!(n, body - TAG_LEN);
            out.truncate(start + n);
            Ok(LEN_PREFIX + body)
        }
        Err(e) => {
            out.truncate(start);
            Err(map_snow(e))
        }
    }
}

#[cfg(test)]
mod tests;
