//! Two transports back to back in memory: the handshake, records of every
//! size, input in every cut, and each way a peer's bytes can be wrong.

use super::*;
use crate::core::protocol::{Hello, VERSION, decode};

const CLIENT_KEY: [u8; 32] = [1; 32];
const SERVER_KEY: [u8; 32] = [2; 32];

fn pair() -> (Transport, Transport) {
    let c = Transport::new(Role::Initiator, &CLIENT_KEY).unwrap();
    let s = Transport::new(Role::Responder, &SERVER_KEY).unwrap();
    (c, s)
}

/// Moves `from`'s handshake output into `to`, all of it consumed; returns
/// what moved.
fn pump(from: &mut Transport, to: &mut Transport) -> Vec<u8> {
    let mut wire = Vec::new();
    from.poll_handshake(&mut wire);
    let mut plain = Vec::new();
    assert_eq!(to.handle_ciphertext(&wire, &mut plain), Ok(wire.len()));
    assert!(plain.is_empty());
    wire
}

/// A completed handshake, and the three messages as sent.
fn established() -> (Transport, Transport, [Vec<u8>; 3]) {
    let (mut c, mut s) = pair();
    let m1 = pump(&mut c, &mut s);
    let m2 = pump(&mut s, &mut c);
    let m3 = pump(&mut c, &mut s);
    (c, s, [m1, m2, m3])
}

fn seal(t: &mut Transport, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    t.seal(plaintext, &mut out).unwrap();
    out
}

fn open(t: &mut Transport, wire: &[u8]) -> Result<(usize, Vec<u8>), TransportError> {
    let mut plain = Vec::new();
    t.handle_ciphertext(wire, &mut plain).map(|n| (n, plain))
}

fn v1_hello() -> Vec<u8> {
    let mut b = Vec::new();
    protocol::encode(
        &Frame::Hello(Hello {
            version: VERSION,
            max_message: 1 << 20,
            name: b"ann",
        }),
        &mut b,
    );
    b
}

#[test]
fn handshake_completes_with_the_documented_sizes_and_proves_both_keys() {
    let (mut c, mut s) = pair();
    assert!(c.has_handshake_output() && !s.has_handshake_output());
    assert!(!c.is_established() && !s.is_established());
    let m1 = pump(&mut c, &mut s);
    assert!(!s.is_established());
    let m2 = pump(&mut s, &mut c);
    // The initiator is done once it has written message 3.
    assert!(c.is_established() && !s.is_established());
    let m3 = pump(&mut c, &mut s);
    assert!(s.is_established());
    for (m, len) in [m1, m2, m3].iter().zip(HANDSHAKE_LENS) {
        assert_eq!(m.len(), LEN_PREFIX + len);
        assert_eq!(usize::from(u16::from_be_bytes([m[0], m[1]])), len);
    }
    assert_eq!(c.remote_static(), Some(public_key(&SERVER_KEY)));
    assert_eq!(s.remote_static(), Some(public_key(&CLIENT_KEY)));
    assert_eq!(c.local_static(), public_key(&CLIENT_KEY));
    assert!(c.handshake_hash().is_some());
    assert_eq!(c.handshake_hash(), s.handshake_hash());
    assert!(!c.has_handshake_output() && !s.has_handshake_output());
    let mut nothing = Vec::new();
    c.poll_handshake(&mut nothing);
    assert!(nothing.is_empty());
    assert_eq!((c.role(), s.role()), (Role::Initiator, Role::Responder));
}

#[test]
fn fresh_ephemeral_keys_give_every_connection_its_own_hash() {
    let (c1, _, m1) = established();
    let (c2, _, m2) = established();
    assert_ne!(c1.handshake_hash(), c2.handshake_hash());
    assert_ne!(m1[0], m2[0]);
}

#[test]
fn records_of_every_size_round_trip_in_both_directions() {
    let (mut c, mut s, _) = established();
    for len in [
        0,
        1,
        16,
        1024,
        MAX_PLAINTEXT - 1,
        MAX_PLAINTEXT,
        MAX_PLAINTEXT + 1,
        3 * MAX_PLAINTEXT,
        200_000,
    ] {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        for flip in [false, true] {
            let (a, b) = if flip {
                (&mut s, &mut c)
            } else {
                (&mut c, &mut s)
            };
            let wire = seal(a, &msg);
            assert_eq!(wire.len(), sealed_len(len), "{len}");
            assert_eq!(open(b, &wire), Ok((wire.len(), msg.clone())), "{len}");
        }
    }
}

#[test]
fn seal_cuts_records_at_the_noise_limit() {
    let (mut c, _, _) = established();
    let wire = seal(&mut c, &vec![0; MAX_PLAINTEXT + 1]);
    assert_eq!(&wire[..2], &[0xff, 0xff]); // 65,535: the most a prefix can say
    let second = LEN_PREFIX + MAX_RECORD;
    assert_eq!(&wire[second..second + 2], &[0x00, 0x11]); // 1 + 16
    assert_eq!(wire.len(), second + 2 + 17);
    assert!(seal(&mut c, b"").is_empty());
}

#[test]
fn sealed_len_counts_a_prefix_and_a_tag_per_record() {
    let full = LEN_PREFIX + MAX_RECORD;
    assert_eq!(sealed_len(0), 0);
    assert_eq!(sealed_len(1), 19);
    assert_eq!(sealed_len(MAX_PLAINTEXT), full);
    assert_eq!(sealed_len(MAX_PLAINTEXT + 1), full + 19);
}

#[test]
fn every_strict_prefix_of_a_message_or_record_is_partial() {
    let (mut c, mut s) = pair();
    let mut m1 = Vec::new();
    c.poll_handshake(&mut m1);
    for cut in 0..m1.len() {
        let mut fresh = Transport::new(Role::Responder, &SERVER_KEY).unwrap();
        assert_eq!(open(&mut fresh, &m1[..cut]), Ok((0, vec![])), "{cut}");
        assert!(!fresh.has_handshake_output());
    }
    assert_eq!(open(&mut s, &m1), Ok((m1.len(), vec![])));
    let _ = pump(&mut s, &mut c);
    let _ = pump(&mut c, &mut s);
    let wire = seal(&mut c, b"hello");
    for cut in 0..wire.len() {
        assert_eq!(open(&mut s, &wire[..cut]), Ok((0, vec![])), "{cut}");
    }
    assert_eq!(open(&mut s, &wire), Ok((wire.len(), b"hello".to_vec())));
}

#[test]
fn one_byte_at_a_time_gives_the_same_stream() {
    let (mut c, mut s) = pair();
    // Everything the client sends: message 1, then (after message 2)
    // message 3 and two records right behind it, fed to the server a
    // byte at a time through a receive buffer.
    let mut to_server = Vec::new();
    c.poll_handshake(&mut to_server);
    let mut rx = Vec::new();
    let mut plain = Vec::new();
    let mut feed = |s: &mut Transport, bytes: &[u8], plain: &mut Vec<u8>| {
        for &b in bytes {
            rx.push(b);
            let used = s.handle_ciphertext(&rx, plain).unwrap();
            rx.drain(..used);
        }
    };
    feed(&mut s, &to_server, &mut plain);
    let _ = pump(&mut s, &mut c);
    let mut rest = Vec::new();
    c.poll_handshake(&mut rest);
    c.seal(b"first ", &mut rest).unwrap();
    c.seal(b"second", &mut rest).unwrap();
    feed(&mut s, &rest, &mut plain);
    assert!(s.is_established());
    assert_eq!(plain, b"first second");
}

#[test]
fn records_right_behind_message_3_are_opened_in_the_same_call() {
    let (mut c, mut s) = pair();
    let _ = pump(&mut c, &mut s);
    let _ = pump(&mut s, &mut c);
    let mut wire = Vec::new();
    c.poll_handshake(&mut wire);
    c.seal(b"early", &mut wire).unwrap();
    wire.extend_from_slice(&[0x00]); // and the first byte of another record
    assert_eq!(open(&mut s, &wire), Ok((wire.len() - 1, b"early".to_vec())));
    assert!(s.is_established());
}

#[test]
fn a_flipped_bit_anywhere_in_a_record_fails_authentication() {
    let len = sealed_len(b"attack at dawn".len());
    for i in LEN_PREFIX..len {
        for bit in [0x01, 0x80] {
            let (mut c2, mut s2, _) = established();
            let mut w = seal(&mut c2, b"attack at dawn");
            w[i] ^= bit;
            assert_eq!(
                open(&mut s2, &w),
                Err(TransportError::Authentication),
                "{i}"
            );
        }
    }
}

#[test]
fn an_error_is_sticky_and_keeps_the_genuine_plaintext_before_it() {
    let (mut c, mut s, _) = established();
    let mut wire = seal(&mut c, b"good");
    let bad_at = wire.len();
    wire.extend(seal(&mut c, b"bad"));
    wire[bad_at + 3] ^= 0x40;
    wire.extend(seal(&mut c, b"never"));
    let mut plain = Vec::new();
    assert_eq!(
        s.handle_ciphertext(&wire, &mut plain),
        Err(TransportError::Authentication)
    );
    assert_eq!(plain, b"good");
    assert_eq!(s.error(), Some(TransportError::Authentication));
    // Every later call gives the same error, even for genuine bytes.
    let more = seal(&mut c, b"x");
    assert_eq!(open(&mut s, &more), Err(TransportError::Authentication));
    assert_eq!(s.handle_eof(0), Err(TransportError::Authentication));
    // But the failed side can still seal a goodbye, and the peer reads it.
    let bye = seal(&mut s, b"bye");
    assert_eq!(open(&mut c, &bye), Ok((bye.len(), b"bye".to_vec())));
}

#[test]
fn a_replayed_record_fails_authentication() {
    let (mut c, mut s, _) = established();
    let one = seal(&mut c, b"pay 10");
    assert_eq!(open(&mut s, &one), Ok((one.len(), b"pay 10".to_vec())));
    assert_eq!(open(&mut s, &one), Err(TransportError::Authentication));
}

#[test]
fn reordered_records_fail_authentication() {
    let (mut c, mut s, _) = established();
    let one = seal(&mut c, b"one");
    let two = seal(&mut c, b"two");
    assert_eq!(open(&mut s, &two), Err(TransportError::Authentication));
    let (mut c, mut s, _) = established();
    let _ = seal(&mut c, b"dropped");
    let two = seal(&mut c, b"two");
    assert_eq!(open(&mut s, &two), Err(TransportError::Authentication));
    drop(one);
}

#[test]
fn a_record_from_another_connection_fails_authentication() {
    let (mut c1, _, _) = established();
    let (_, mut s2, _) = established();
    let wire = seal(&mut c1, b"hi");
    assert_eq!(open(&mut s2, &wire), Err(TransportError::Authentication));
}

#[test]
fn a_record_too_short_for_its_tag_is_refused_from_the_prefix() {
    for len in 0..TAG_LEN as u16 {
        let (_, mut s, _) = established();
        let prefix = len.to_be_bytes();
        assert_eq!(
            open(&mut s, &prefix),
            Err(TransportError::ShortRecord { len }),
            "{len}"
        );
    }
    // 16 bytes is a record with an empty plaintext: these ones are forged.
    let (_, mut s, _) = established();
    let mut forged = vec![0x00, 0x10];
    forged.extend([0u8; 16]);
    assert_eq!(open(&mut s, &forged), Err(TransportError::Authentication));
}

#[test]
fn the_largest_record_waits_for_its_body() {
    let (mut c, mut s, _) = established();
    // A prefix of 65,535 is the most two bytes can say: it is not an error,
    // and nothing is allocated for it before the body arrives.
    assert_eq!(open(&mut s, &[0xff, 0xff]), Ok((0, vec![])));
    let wire = seal(&mut c, &vec![9; MAX_PLAINTEXT]);
    assert_eq!(&wire[..2], &[0xff, 0xff]);
    assert_eq!(
        open(&mut s, &wire),
        Ok((wire.len(), vec![9; MAX_PLAINTEXT]))
    );
}

#[test]
fn wrong_size_handshake_messages_are_refused_from_the_prefix() {
    // Message 1 to the responder, on both sides of 32. (A first prefix of
    // 0 waits for 9 bytes, to tell a plain v1 peer: see the v1 tests.)
    for len in [1u16, 31, 33, 96, 0xffff] {
        let mut s = Transport::new(Role::Responder, &SERVER_KEY).unwrap();
        assert_eq!(
            open(&mut s, &len.to_be_bytes()),
            Err(TransportError::HandshakeSize {
                message: 1,
                len,
                expected: 32
            }),
            "{len}"
        );
        assert!(!s.has_handshake_output());
    }
    // Message 2 to the initiator.
    for len in [32u16, 95, 97] {
        let mut c = Transport::new(Role::Initiator, &CLIENT_KEY).unwrap();
        assert_eq!(
            open(&mut c, &len.to_be_bytes()),
            Err(TransportError::HandshakeSize {
                message: 2,
                len,
                expected: 96
            })
        );
    }
    // Message 3 to the responder.
    let (mut c, mut s) = pair();
    let _ = pump(&mut c, &mut s);
    let _ = pump(&mut s, &mut c);
    assert_eq!(
        open(&mut s, &[0x00, 0x3f]),
        Err(TransportError::HandshakeSize {
            message: 3,
            len: 63,
            expected: 64
        })
    );
}

#[test]
fn a_tampered_handshake_fails_authentication() {
    // Message 2 and 3 carry encrypted static keys: any flip is caught.
    for (msg, at) in [(2, 2), (2, 40), (2, 97), (3, 2), (3, 65)] {
        let (mut c, mut s) = pair();
        let _ = pump(&mut c, &mut s);
        let mut wire = Vec::new();
        if msg == 2 {
            s.poll_handshake(&mut wire);
            wire[at] ^= 1;
            assert_eq!(open(&mut c, &wire), Err(TransportError::Authentication));
        } else {
            let _ = pump(&mut s, &mut c);
            c.poll_handshake(&mut wire);
            wire[at] ^= 1;
            assert_eq!(open(&mut s, &wire), Err(TransportError::Authentication));
            assert!(!s.is_established());
        }
    }
    // Message 1 is a bare ephemeral key: a changed one is only caught by
    // the initiator, when message 2 does not authenticate.
    let (mut c, mut s) = pair();
    let mut m1 = Vec::new();
    c.poll_handshake(&mut m1);
    m1[5] ^= 1;
    assert_eq!(open(&mut s, &m1), Ok((m1.len(), vec![])));
    let mut m2 = Vec::new();
    s.poll_handshake(&mut m2);
    assert_eq!(open(&mut c, &m2), Err(TransportError::Authentication));
}

#[test]
fn a_peer_with_another_prologue_fails_the_handshake() {
    let mut c =
        Transport::new_for_testing_only(Role::Initiator, &CLIENT_KEY, b"duet/3", &[7; 32]).unwrap();
    let mut s = Transport::new(Role::Responder, &SERVER_KEY).unwrap();
    let _ = pump(&mut c, &mut s);
    let mut m2 = Vec::new();
    s.poll_handshake(&mut m2);
    assert_eq!(open(&mut c, &m2), Err(TransportError::Authentication));
}

#[test]
fn a_truncated_handshake_or_record_is_an_error_at_eof() {
    let (_, mut s) = pair();
    assert_eq!(s.handle_eof(0), Err(TransportError::TruncatedHandshake));
    let (mut c, mut s) = pair();
    let _ = pump(&mut c, &mut s);
    let mut m2 = Vec::new();
    let mut fresh_c = Transport::new(Role::Initiator, &CLIENT_KEY).unwrap();
    s.poll_handshake(&mut m2);
    assert_eq!(open(&mut fresh_c, &m2[..50]), Ok((0, vec![])));
    assert_eq!(
        fresh_c.handle_eof(50),
        Err(TransportError::TruncatedHandshake)
    );
    let (mut c, mut s, _) = established();
    let wire = seal(&mut c, b"cut short");
    assert_eq!(open(&mut s, &wire[..10]), Ok((0, vec![])));
    assert_eq!(s.handle_eof(10), Err(TransportError::TruncatedRecord));
    let (_, mut s, _) = established();
    assert_eq!(s.handle_eof(0), Ok(()));
}

#[test]
fn seal_before_the_handshake_is_refused() {
    let (mut c, mut s) = pair();
    let mut out = Vec::new();
    assert_eq!(c.seal(b"x", &mut out), Err(TransportError::NotEstablished));
    assert_eq!(s.seal(b"x", &mut out), Err(TransportError::NotEstablished));
    assert!(out.is_empty());
}

#[test]
fn a_plain_v1_client_is_recognised_and_told_in_v1() {
    let hello = v1_hello();
    // Every strict prefix of the 9 telling bytes waits (from 2 bytes on)
    // or cannot be judged yet.
    for cut in 0..9 {
        let mut s = Transport::new(Role::Responder, &SERVER_KEY).unwrap();
        assert_eq!(open(&mut s, &hello[..cut]), Ok((0, vec![])), "{cut}");
    }
    for cut in [9, hello.len()] {
        let mut s = Transport::new(Role::Responder, &SERVER_KEY).unwrap();
        assert_eq!(open(&mut s, &hello[..cut]), Err(TransportError::PlainPeer));
        // The plain client is told why, in a frame it understands.
        let mut out = Vec::new();
        s.poll_handshake(&mut out);
        let (frame, used) = decode(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(
            frame,
            Frame::Bye {
                reason: ByeReason::ProtocolError,
                detail: PLAIN_PEER_BYE.as_bytes()
            }
        );
    }
    assert_eq!(
        TransportError::PlainPeer.to_string(),
        "the peer runs with --plain; use --plain on both sides or neither"
    );
}

#[test]
fn a_plain_v1_server_is_recognised_by_the_client() {
    let mut c = Transport::new(Role::Initiator, &CLIENT_KEY).unwrap();
    let mut m1 = Vec::new();
    c.poll_handshake(&mut m1);
    let mut hello = v1_hello();
    // What a v1 server sends: its HELLO, then BYE for our message 1.
    protocol::encode(
        &Frame::Bye {
            reason: ByeReason::ProtocolError,
            detail: b"peer does not speak duet",
        },
        &mut hello,
    );
    assert_eq!(open(&mut c, &hello), Err(TransportError::PlainPeer));
    assert!(!c.has_handshake_output()); // no BYE from the initiator
}

#[test]
fn v1_like_bytes_after_the_start_are_just_wrong() {
    // Only the first bytes of a stream are judged as v1.
    let (mut c, mut s) = pair();
    let _ = pump(&mut c, &mut s);
    assert_eq!(
        open(&mut s, &v1_hello()),
        Err(TransportError::HandshakeSize {
            message: 3,
            len: 0,
            expected: 64
        })
    );
    // `00 00` then anything but a HELLO: a wrong size, not a plain peer.
    let mut s = Transport::new(Role::Responder, &SERVER_KEY).unwrap();
    assert_eq!(
        open(&mut s, &[0, 0, 0, 5, 0x02, b'D', b'U', b'E', b'T']),
        Err(TransportError::HandshakeSize {
            message: 1,
            len: 0,
            expected: 32
        })
    );
}

#[test]
fn a_plain_side_recognises_an_encrypted_peer_from_two_bytes() {
    let c = Transport::new(Role::Initiator, &CLIENT_KEY);
    let mut m1 = Vec::new();
    c.unwrap().poll_handshake(&mut m1);
    assert_eq!(encrypted_peer(&m1), Some(TransportError::EncryptedPeer));
    assert_eq!(
        encrypted_peer(&m1[..2]),
        Some(TransportError::EncryptedPeer)
    );
    assert_eq!(encrypted_peer(&m1[..1]), None);
    assert_eq!(encrypted_peer(&v1_hello()), None);
    assert_eq!(encrypted_peer(b""), None);
    // No v1 frame can start that way: the length would be over 2 MiB.
    assert!(matches!(
        decode(&m1),
        Err(crate::core::protocol::DecodeError::BadLength { .. })
            | Err(crate::core::protocol::DecodeError::UnknownType(_))
    ));
}

#[test]
fn generated_keys_are_pairs_and_differ() {
    let (private, public) = generate_keypair().unwrap();
    assert_eq!(public_key(&private), public);
    let (other, _) = generate_keypair().unwrap();
    assert_ne!(private, other);
    let dbg = format!("{:?}", Transport::new(Role::Initiator, &private).unwrap());
    assert!(dbg.contains("Initiator"), "{dbg}");
}

#[test]
fn every_error_is_one_line() {
    let all = [
        TransportError::Authentication,
        TransportError::HandshakeSize {
            message: 2,
            len: 5,
            expected: 96,
        },
        TransportError::TruncatedHandshake,
        TransportError::TruncatedRecord,
        TransportError::ShortRecord { len: 3 },
        TransportError::PlainPeer,
        TransportError::EncryptedPeer,
        TransportError::NotEstablished,
        TransportError::Random,
        TransportError::Internal,
    ];
    for e in all {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains('\n'), "{s}");
    }
    assert_eq!(
        TransportError::Authentication.to_string(),
        "message authentication failed"
    );
    assert_eq!(
        all[1].to_string(),
        "encrypted handshake message 2 has 5 bytes, expected 96"
    );
}

/// The entries of docs/PROTOCOL.md's "Encrypted test vectors" block:
/// name and text (hex bytes, or a line of text).
fn doc_vectors() -> Vec<(String, String)> {
    const DOC: &str = include_str!("../../../docs/PROTOCOL.md");
    let section = DOC
        .split("\n## Encrypted test vectors\n")
        .nth(1)
        .expect("docs/PROTOCOL.md has an Encrypted test vectors section");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the vectors are in a text block");
    block
        .split("\n\n")
        .map(|entry| {
            let (name, value) = entry.split_once(":\n").expect("name:\nvalue");
            (
                name.to_string(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    s.split(' ')
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("not hex: {h}")))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_documented_test_vectors_are_what_the_transport_does() {
    use crate::core::identity::{Fingerprint, safety_code};
    let doc = doc_vectors();
    let get = |name: &str| -> &str {
        &doc.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no vector {name:?} in docs/PROTOCOL.md"))
            .1
    };
    let key = |name: &str| -> [u8; 32] { unhex(get(name)).try_into().expect("32 bytes") };
    let (is, ie) = (
        key("initiator static private key"),
        key("initiator ephemeral private key"),
    );
    let (rs, re) = (
        key("responder static private key"),
        key("responder ephemeral private key"),
    );
    let mut c = Transport::new_for_testing_only(Role::Initiator, &is, PROLOGUE, &ie).unwrap();
    let mut s = Transport::new_for_testing_only(Role::Responder, &rs, PROLOGUE, &re).unwrap();
    let mut ours = vec![
        ("initiator static public key", hex(&public_key(&is))),
        ("responder static public key", hex(&public_key(&rs))),
    ];
    ours.push(("message 1", hex(&pump(&mut c, &mut s))));
    ours.push(("message 2", hex(&pump(&mut s, &mut c))));
    ours.push(("message 3", hex(&pump(&mut c, &mut s))));
    assert_eq!(c.handshake_hash(), s.handshake_hash());
    ours.push(("handshake hash", hex(&c.handshake_hash().unwrap())));
    for n in [1, 2] {
        let (from, to) = if n == 1 {
            (&mut c, &mut s)
        } else {
            (&mut s, &mut c)
        };
        let plain = unhex(get(&format!("record {n} plaintext")));
        let wire = seal(from, &plain);
        assert_eq!(open(to, &wire), Ok((wire.len(), plain)));
        ours.push((if n == 1 { "record 1" } else { "record 2" }, hex(&wire)));
    }
    let (ip, rp) = (public_key(&is), public_key(&rs));
    ours.push(("initiator fingerprint", Fingerprint::of(&ip).to_string()));
    ours.push(("responder fingerprint", Fingerprint::of(&rp).to_string()));
    ours.push(("safety code", safety_code(&ip, &rp).to_string()));
    for (name, value) in &ours {
        assert_eq!(get(name), value, "vector {name:?}");
    }
    // Nothing in the doc that this test does not check.
    let checked = ours.len() + 6; // the four private keys, two plaintexts
    assert_eq!(doc.len(), checked, "{doc:?}");
    // The record plaintexts are frames of the v1 test vectors.
    for n in [1, 2] {
        let plain = unhex(get(&format!("record {n} plaintext")));
        assert!(matches!(decode(&plain), Ok(Some((Frame::Hello(_), l))) if l == plain.len()));
    }
}
