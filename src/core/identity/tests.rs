//! Fingerprints, safety codes and the two file formats, with values
//! computed independently (Python's `hashlib.blake2s` and `base64`, and the
//! `cryptography` package's X25519).

use super::*;
use crate::core::transport::public_key;

/// The public keys of the private keys `[1; 32]` and `[2; 32]` (RFC 7748
/// X25519, computed with Python's `cryptography`).
const PUB_1: &str = "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209";
const PUB_2: &str = "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59";

fn hex32(s: &str) -> [u8; 32] {
    std::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
}

const FP_ONES: &str = "BLAKE2s:Xai89ek0oJfFpaYvqN2ULagFAe6N5t+FhJnGGBMl42k";
const FP_ZEROS: &str = "BLAKE2s:MgteqZ5lO8K1k9tBMNEKTv06C0zC4aZnK2eNcd+9M60";

#[test]
fn public_keys_match_an_independent_x25519() {
    assert_eq!(public_key(&[1; 32]), hex32(PUB_1));
    assert_eq!(public_key(&[2; 32]), hex32(PUB_2));
}

#[test]
fn fingerprints_are_blake2s_in_unpadded_base64() {
    assert_eq!(Fingerprint::of(&[1; 32]).to_string(), FP_ONES);
    assert_eq!(Fingerprint::of(&[0; 32]).to_string(), FP_ZEROS);
    assert_eq!(FP_ONES.len(), FINGERPRINT_PREFIX.len() + 43);
    assert_eq!(
        format!("{:?}", Fingerprint::of(&[1; 32])),
        format!("Fingerprint({FP_ONES})")
    );
}

#[test]
fn fingerprints_parse_back_and_nothing_else_parses() {
    for key in [[0u8; 32], [1; 32], [0xff; 32], hex32(PUB_2)] {
        let fp = Fingerprint::of(&key);
        assert_eq!(Fingerprint::parse(&fp.to_string()), Ok(fp));
        assert_eq!(format!(" {fp}\n").parse::<Fingerprint>(), Ok(fp));
    }
    let good = FP_ONES;
    let bad = [
        "",
        "BLAKE2s:",
        &good[FINGERPRINT_PREFIX.len()..],        // no prefix
        &good.replace("BLAKE2s", "blake2s"),      // prefix case
        &good.replace("BLAKE2s", "SHA256"),       // another hash
        &good[..good.len() - 1],                  // 42 characters
        &format!("{good}A"),                      // 44 characters
        &format!("{good}="),                      // padding
        &good.replace('+', "-"),                  // base64url
        &format!("{}l", &good[..good.len() - 1]), // non-zero unused bits
        &good.replace('X', " "),
    ];
    for text in bad {
        assert_eq!(
            Fingerprint::parse(text),
            Err(FormatError::Fingerprint),
            "{text:?}"
        );
    }
}

#[test]
fn base64_round_trips_at_every_length() {
    // RFC 4648's test vectors, unpadded.
    for (raw, b64) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(encode_base64(raw.as_bytes()), b64);
    }
    let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
    assert_eq!(decode_base64_32(&encode_base64(&bytes)), Some(bytes));
    assert_eq!(decode_base64_32("Zm9v"), None);
}

#[test]
fn the_safety_code_is_the_same_from_both_sides() {
    let (a, b) = (hex32(PUB_1), hex32(PUB_2));
    let code = safety_code(&a, &b);
    assert_eq!(code, safety_code(&b, &a));
    // Computed with Python's hashlib from the definition in the docs.
    assert_eq!(
        safety_code(&[1; 32], &[2; 32]).to_string(),
        "31879 70859 78996 10723 55469 46979"
    );
    // Each half belongs to one key: change one key, half the code stays.
    let c = safety_code(&[1; 32], &[3; 32]);
    let d = safety_code(&[1; 32], &[2; 32]);
    assert_eq!(c.0[..3], d.0[..3]);
    assert_ne!(c.0[3..], d.0[3..]);
    let shown = code.to_string();
    assert_eq!(shown.len(), 6 * 5 + 5);
    assert!(shown.split(' ').all(|g| g.len() == 5));
    assert_eq!(
        SafetyCode([0, 7, 99_999, 1, 2, 3]).to_string(),
        "00000 00007 99999 00001 00002 00003"
    );
}

#[test]
fn peer_names_bracket_ipv6_and_fold_case() {
    assert_eq!(peer_name("Example.ORG", 7777), "example.org:7777");
    assert_eq!(peer_name("127.0.0.1", 1), "127.0.0.1:1");
    assert_eq!(peer_name("::1", 7777), "[::1]:7777");
    assert_eq!(peer_name("fe80::1%eth0", 7777), "[fe80::1%eth0]:7777");
    assert_eq!(peer_name("[::1]", 7777), "[::1]:7777");
}

#[test]
fn known_peers_give_known_unknown_or_changed_with_the_line() {
    let a = Fingerprint::of(&[1; 32]);
    let b = Fingerprint::of(&[2; 32]);
    let text = format!(
        "# duet known peers\n\
         \n\
         example.org:7777 {a}\n\
         [::1]:7777   {b}   # the laptop\n\
         \tother:1 {a}\n\
         [::1]:7777 {a}\n"
    );
    let check = |peer: &str, fp: &Fingerprint| check_known_peers(&text, peer, fp).unwrap();
    assert_eq!(check("example.org:7777", &a), Trust::Known { line: 3 });
    assert_eq!(check("example.org:7777", &b), Trust::Changed { line: 3 });
    assert_eq!(check("example.org:7778", &a), Trust::Unknown);
    assert_eq!(check("other:1", &a), Trust::Known { line: 5 });
    // Two lines for one peer: either key is known; a third is a change
    // reported at the first line.
    assert_eq!(check("[::1]:7777", &b), Trust::Known { line: 4 });
    assert_eq!(check("[::1]:7777", &a), Trust::Known { line: 6 });
    let c = Fingerprint::of(&[3; 32]);
    assert_eq!(check("[::1]:7777", &c), Trust::Changed { line: 4 });
    assert_eq!(check_known_peers("", "x:1", &a), Ok(Trust::Unknown));
}

#[test]
fn a_malformed_known_peers_line_is_an_error_naming_it() {
    let a = Fingerprint::of(&[1; 32]);
    for bad in [
        format!("example.org {a}"),        // no port
        format!(":7777 {a}"),              // no host
        format!("example.org:77777 {a}"),  // port out of range
        "example.org:7777".to_string(),    // no fingerprint
        format!("example.org:7777 {a} x"), // a third field
        "example.org:7777 BLAKE2s:nope".to_string(),
    ] {
        let text = format!("# header\nok:1 {a}\n{bad}\n");
        assert_eq!(
            check_known_peers(&text, "ok:1", &a),
            Err(FormatError::Line {
                line: 3,
                expected: "HOST:PORT FINGERPRINT"
            }),
            "{bad}"
        );
    }
    assert_eq!(
        FormatError::Line {
            line: 3,
            expected: "HOST:PORT FINGERPRINT"
        }
        .to_string(),
        "line 3 is not valid (expected HOST:PORT FINGERPRINT)"
    );
}

#[test]
fn an_appended_line_reads_back_as_known() {
    let a = Fingerprint::of(&[1; 32]);
    let peer = peer_name("::1", 7777);
    let mut text = String::from("# comment without a newline at the end");
    text.push('\n');
    text.push_str(&known_peer_line(&peer, &a));
    assert!(known_peer_line(&peer, &a).ends_with('\n'));
    assert_eq!(
        check_known_peers(&text, &peer, &a),
        Ok(Trust::Known { line: 2 })
    );
}

#[test]
fn allow_lists_hold_fingerprints_with_their_lines() {
    let a = Fingerprint::of(&[1; 32]);
    let b = Fingerprint::of(&[2; 32]);
    let list = AllowList::parse(&format!("# team\n{a}  # ann\n\n  {b}\n")).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.line_of(&a), Some(2));
    assert_eq!(list.line_of(&b), Some(4));
    assert_eq!(list.line_of(&Fingerprint::of(&[3; 32])), None);
    let empty = AllowList::parse("# nobody yet\n\n").unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        AllowList::parse(&format!("{a}\nexample.org:1 {b}\n")),
        Err(FormatError::Line {
            line: 2,
            expected: "FINGERPRINT"
        })
    );
}

#[test]
fn identity_errors_are_one_line() {
    let s = FormatError::Fingerprint.to_string();
    assert!(s.contains("BLAKE2s:") && !s.contains('\n'), "{s}");
}
