//! Who a peer is: the fingerprint of a static public key, the safety code
//! two people compare by voice, and the `known_peers` and `--allow` file
//! formats, with the line a verdict comes from.
//!
//! Pure: text and keys in, answers out. Reading, creating and appending the
//! files is `os::identity`'s; deciding what a verdict means for a chat is
//! the shell's. The hash is BLAKE2s-256, the one the Noise suite already
//! uses, taken from `snow`'s resolver (no second crypto library).
//!
//! Formats (docs/PROTOCOL.md, "Fingerprints and safety codes"):
//! - fingerprint: `BLAKE2s:` and the unpadded standard base64 of
//!   BLAKE2s-256(public key), 43 characters, like ssh's `SHA256:…`;
//! - safety code: six groups of five digits, the first three from the
//!   lower of the two keys (bytewise), the last three from the higher, so
//!   both sides read the same; each half is from an iterated hash of one
//!   key (see [`safety_code`]);
//! - `known_peers`: one `HOST:PORT FINGERPRINT` a line; `--allow`: one
//!   `FINGERPRINT` a line; in both, `#` starts a comment and blank lines
//!   are skipped.

use std::fmt;

use snow::params::HashChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::Hash;

use crate::core::transport::KEY_LEN;

/// What a fingerprint starts with: the hash it is made with.
pub const FINGERPRINT_PREFIX: &str = "BLAKE2s:";
/// Base64 characters after the prefix (32 bytes, unpadded).
const FINGERPRINT_CHARS: usize = 43;
/// Hash rounds per key in a safety code, as in Signal's safety numbers:
/// they make a search for a look-alike key that much dearer, and cost a
/// side about a millisecond.
pub const SAFETY_ITERATIONS: usize = 5200;
/// What every safety-code hash starts with, so that it is never the same
/// as any other hash of a key.
const SAFETY_LABEL: &[u8] = b"duet safety code";

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a fingerprint or a line of `known_peers` or `--allow` is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// Not `BLAKE2s:` and 43 characters of base64.
    Fingerprint,
    /// A line of a file that is not in its format; `line` counts from 1.
    Line { line: usize, expected: &'static str },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FormatError::Fingerprint => write!(
                f,
                "not a duet fingerprint (expected {FINGERPRINT_PREFIX} and {FINGERPRINT_CHARS} base64 characters, as `duet id` prints)"
            ),
            FormatError::Line { line, expected } => {
                write!(f, "line {line} is not valid (expected {expected})")
            }
        }
    }
}

impl std::error::Error for FormatError {}

fn blake2s() -> Box<dyn Hash> {
    DefaultResolver
        .resolve_hash(&HashChoice::Blake2s)
        .expect("the default resolver has BLAKE2s")
}

/// The fingerprint of a static public key: BLAKE2s-256 of its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `public_key`.
    pub fn of(public_key: &[u8; KEY_LEN]) -> Fingerprint {
        let mut h = blake2s();
        h.input(public_key);
        let mut out = [0; 32];
        h.result(&mut out);
        Fingerprint(out)
    }

    /// Reads a fingerprint as [`Display`](fmt::Display) writes it.
    /// Surrounding white space is ignored; anything else must be exact
    /// (the prefix's case included, and the base64 canonical).
    pub fn parse(text: &str) -> Result<Fingerprint, FormatError> {
        let b64 = text
            .trim()
            .strip_prefix(FINGERPRINT_PREFIX)
            .ok_or(FormatError::Fingerprint)?;
        decode_base64_32(b64)
            .map(Fingerprint)
            .ok_or(FormatError::Fingerprint)
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(FINGERPRINT_PREFIX)?;
        f.write_str(&encode_base64(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Fingerprint, FormatError> {
        Fingerprint::parse(s)
    }
}

/// Standard base64 without padding.
pub fn encode_base64(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            s.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    s
}

/// Exactly 32 bytes from 43 characters of unpadded standard base64, the
/// unused low bits of the last character zero (so each value has one
/// spelling).
pub fn decode_base64_32(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != FINGERPRINT_CHARS {
        return None;
    }
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = [0u8; 32];
    let mut i = 0;
    for &c in text {
        let v = BASE64.iter().position(|&b| b == c)? as u32;
        bits = bits << 6 | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out[i] = (bits >> nbits) as u8;
            i += 1;
            bits &= (1 << nbits) - 1;
        }
    }
    (i == 32 && bits == 0).then_some(out)
}

/// The code two people compare to know they talk to each other's keys: the
/// same for `(a, b)` and `(b, a)`. Shown as six groups of five digits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SafetyCode(pub [u32; 6]);

impl fmt::Display for SafetyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{g:05}")?;
        }
        Ok(())
    }
}

/// The safety code of two static public keys. Each key gives three groups:
/// `h = BLAKE2s("duet safety code" ‖ key)`, then [`SAFETY_ITERATIONS`]` − 1`
/// times `h = BLAKE2s(h ‖ key)`; bytes 0–4, 5–9 and 10–14 of the last `h`,
/// each read as a big-endian number modulo 100,000. The lower key's groups
/// come first. A man in the middle must find, for each side, a key of his
/// own whose 15 digits match that side's: about 2^50 keys each, every one
/// costing 5,200 hashes.
pub fn safety_code(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> SafetyCode {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = blake2s();
    let (x, y) = (digits(&mut *h, lo), digits(&mut *h, hi));
    SafetyCode([x[0], x[1], x[2], y[0], y[1], y[2]])
}

fn digits(h: &mut dyn Hash, key: &[u8; KEY_LEN]) -> [u32; 3] {
    let mut out = [0u8; 32];
    h.reset();
    h.input(SAFETY_LABEL);
    h.input(key);
    h.result(&mut out);
    for _ in 1..SAFETY_ITERATIONS {
        h.reset();
        h.input(&out);
        h.input(key);
        h.result(&mut out);
    }
    std::array::from_fn(|g| {
        let n = out[5 * g..5 * g + 5]
            .iter()
            .fold(0u64, |n, &b| n << 8 | u64::from(b));
        (n % 100_000) as u32
    })
}

/// How a peer's address is written in `known_peers`: `HOST:PORT`, an IPv6
/// literal in brackets (`[::1]:7777`), the host in lower case as given on
/// the command line (a name stays a name: the key belongs to what the user
/// asked for, not to whatever address it resolved to this time).
pub fn peer_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What `known_peers` says about a peer's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// This line names the peer with this key.
    Known { line: usize },
    /// No line names the peer: first contact.
    Unknown,
    /// The peer is named (first on this line), never with this key.
    Changed { line: usize },
}

/// The meaningful part of a line: without its comment and surrounding
/// white space, `None` if nothing is left.
fn content(line: &str) -> Option<&str> {
    let line = line
        .split_once('#')
        .map_or(line, |(before, _)| before)
        .trim();
    (!line.is_empty()).then_some(line)
}

const KNOWN_PEERS_LINE: &str = "HOST:PORT FINGERPRINT";

/// One line of `known_peers`: `None` for a blank line or a comment.
fn known_peer(line: &str, number: usize) -> Result<Option<(&str, Fingerprint)>, FormatError> {
    let Some(line) = content(line) else {
        return Ok(None);
    };
    let bad = FormatError::Line {
        line: number,
        expected: KNOWN_PEERS_LINE,
    };
    let mut fields = line.split_whitespace();
    let (Some(peer), Some(fp), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(bad);
    };
    let port_ok = peer
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(bad);
    }
    let fp = Fingerprint::parse(fp).map_err(|_| bad)?;
    Ok(Some((peer, fp)))
}

/// What the `known_peers` text says about `peer` (as [`peer_name`] writes
/// it) showing the key with `fingerprint`. Any line naming the peer with
/// that key makes it known; otherwise the first line naming it says the
/// key changed. A line not in the format is an error, wherever it is: a
/// damaged file must not quietly let a new key in.
pub fn check_known_peers(
    text: &str,
    peer: &str,
    fingerprint: &Fingerprint,
) -> Result<Trust, FormatError> {
    let mut trust = Trust::Unknown;
    for (i, line) in text.lines().enumerate() {
        let Some((name, fp)) = known_peer(line, i + 1)? else {
            continue;
        };
        if name != peer {
            continue;
        }
        if fp == *fingerprint {
            if !matches!(trust, Trust::Known { .. }) {
                trust = Trust::Known { line: i + 1 };
            }
        } else if trust == Trust::Unknown {
            trust = Trust::Changed { line: i + 1 };
        }
    }
    Ok(trust)
}

/// The line appended to `known_peers` on first contact, newline included.
pub fn known_peer_line(peer: &str, fingerprint: &Fingerprint) -> String {
    format!("{peer} {fingerprint}\n")
}

/// The keys a server lets in (`--allow FILE`), each with its line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<(Fingerprint, usize)>,
}

impl AllowList {
    /// Reads one fingerprint a line; comments and blank lines are skipped,
    /// anything else is an error naming its line.
    pub fn parse(text: &str) -> Result<AllowList, FormatError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(line) = content(line) else { continue };
            let fp = Fingerprint::parse(line).map_err(|_| FormatError::Line {
                line: i + 1,
                expected: "FINGERPRINT",
            })?;
            entries.push((fp, i + 1));
        }
        Ok(AllowList { entries })
    }

    /// The line that allows `fingerprint`, if one does.
    pub fn line_of(&self, fingerprint: &Fingerprint) -> Option<usize> {
        self.entries
            .iter()
            .find(|(fp, _)| fp == fingerprint)
            .map(|&(_, line)| line)
    }

    /// How many keys are allowed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No key is allowed (an empty or all-comment file).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
