//! The fuzz properties on stable Rust: replay the committed fuzz seeds, and
//! a seeded random stream (plain and mutated valid frames, command lines,
//! Noise handshakes and records),
//! through the same functions the cargo-fuzz targets call (`duet::check`).

use duet::check;

/// xorshift64*: small, deterministic, good enough to vary inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() as usize) % (max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn fuzz_seed_corpus_replays_clean() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
    type Property = fn(&[u8]);
    let targets: [(&str, Property); 7] = [
        ("decode_chunked", check::decode_chunked),
        ("handshake", check::handshake),
        ("records", check::records),
        ("roundtrip", check::roundtrip),
        ("session", check::session_ops),
        ("escape", check::escape),
        ("cli", check::cli),
    ];
    let mut replayed = 0;
    for (name, property) in targets {
        let dir = std::path::Path::new(root).join(name);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            property(&data);
            replayed += 1;
        }
    }
    assert!(replayed >= 40, "only {replayed} seeds found");
}

#[test]
fn seeded_random_inputs_hold_every_property() {
    let mut rng = Rng(0x5eed_d0e7);
    for _ in 0..20_000 {
        let data = rng.bytes(300);
        check::all(&data);
    }
}

#[test]
fn mutated_valid_streams_hold_every_property() {
    use duet::core::protocol::{Frame, Hello, encode};
    let mut rng = Rng(0xfeed_beef);
    let mut valid = vec![0u8]; // leading byte: chunking seed / op selector
    encode(
        &Frame::Hello(Hello {
            version: 1,
            max_message: 1 << 20,
            name: b"m",
        }),
        &mut valid,
    );
    for id in 1..=20u64 {
        encode(
            &Frame::Data {
                id,
                last: id % 3 != 0,
                chunk: b"payload",
            },
            &mut valid,
        );
        encode(&Frame::Ack { id }, &mut valid);
    }
    for _ in 0..5_000 {
        let mut data = valid.clone();
        for _ in 0..(rng.next() % 4) {
            let i = (rng.next() as usize) % data.len();
            data[i] = rng.next() as u8;
        }
        let cut = (rng.next() as usize) % (data.len() + 1);
        data.truncate(cut);
        check::all(&data);
    }
}

#[test]
fn random_bytes_hold_the_transport_properties() {
    let mut rng = Rng(0x0015_e5ca);
    for _ in 0..1_500 {
        let data = rng.bytes(300);
        check::handshake(&data);
        check::records(&data);
    }
    // Long inputs: records over several seal calls, and a flip in each.
    for _ in 0..50 {
        let mut data = rng.bytes(5_000);
        if let Some(sel) = data.first_mut() {
            *sel |= 0x80;
        }
        check::records(&data);
    }
}

#[test]
fn random_command_lines_parse_or_are_usage_errors() {
    let mut rng = Rng(0xc11_a295);
    for _ in 0..5_000 {
        // Mostly short lines of known words; now and then a raw word.
        let n = (rng.next() % 10) as usize;
        let mut data: Vec<u8> = (0..n).map(|_| (rng.next() % 64) as u8).collect();
        if rng.next().is_multiple_of(8) {
            data.push(0xff);
            data.extend(rng.bytes(24).into_iter().filter(|&b| b != 0));
            data.push(0);
        }
        check::cli(&data);
    }
    // Every duration and timeout option with every edge value.
    for cmd in [&[0u8][..], &[1, 3], &[2, 3]] {
        for opt in [16u8, 17, 18, 19, 21, 22] {
            for value in 31u8..56 {
                check::cli(&[cmd, &[opt, value]].concat());
            }
        }
    }
}
