//! The JSON-lines format: one object per event, its strings escaped as the
//! transcript escapes them, a message's bytes as `text` or `data_b64`.

use std::io::Write as _;

use super::{Line, PIECE, Stamp, pieces, push_thousandths, push_u64, rates, thousandths};
use crate::core::escape::{is_unsafe, tag_sequence_len};
use crate::core::protocol::ReceiptStatus;
use crate::core::rtt::RttSummary;

pub(super) fn jsonl(
    line: &Line<'_>,
    stamp: Stamp,
    out: &mut Vec<u8>,
    drain: &mut dyn FnMut(&mut Vec<u8>),
) {
    let event = match line {
        Line::Listening { .. } => "listening",
        Line::Connected { .. } => "connected",
        Line::Sent { .. } => "sent",
        Line::Acked { .. } => "ack",
        Line::Message { .. } | Line::RoomMessage { .. } => "message",
        Line::Joined { .. } => "joined",
        Line::Closed { .. } | Line::TurnedAway { .. } => "closed",
        Line::Error { .. } => "error",
        Line::Notice { .. } => "notice",
        Line::Reached { .. } => "room_ack",
        Line::Summary { .. } => "summary",
        Line::Bench { .. } => "bench",
    };
    // The per-message fields are written by hand: `write!` costs more per
    // line than the rest of the ack path (docs/PERFORMANCE.md).
    out.extend_from_slice(b"{\"event\":\"");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\",\"ts_us\":");
    push_u64(out, stamp.wall_us);
    out.extend_from_slice(b",\"mono_ns\":");
    push_u64(out, stamp.mono_ns);
    match *line {
        Line::Listening { addr } => {
            let _ = write!(out, ",\"addr\":\"{addr}\"");
        }
        Line::Connected { peer, name, key } => {
            let _ = write!(out, ",\"peer\":\"{peer}\",\"name\":");
            json_lossy(name, out);
            match key {
                Some(k) => {
                    out.extend_from_slice(b",\"encrypted\":true,\"fingerprint\":");
                    json_str(&k.fingerprint, out);
                    out.extend_from_slice(b",\"safety_code\":");
                    json_str(&k.safety, out);
                    if let Some(path) = &k.remembered {
                        out.extend_from_slice(b",\"remembered_in\":");
                        json_str(path, out);
                    }
                }
                None => out.extend_from_slice(b",\"encrypted\":false"),
            }
        }
        Line::Reached {
            id,
            len,
            reached,
            of,
            slowest,
            recipients,
        } => {
            id_len(id, len, out);
            let _ = write!(out, ",\"reached\":{reached},\"of\":{of},\"rtt_us\":");
            match slowest {
                Some((rtt, _)) => push_thousandths(out, rtt.as_nanos() as u64),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"recipients\":[");
            for (i, (name, fate)) in recipients.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"name\":");
                json_lossy(name, out);
                match fate {
                    Ok(rtt) => {
                        out.extend_from_slice(b",\"status\":\"delivered\",\"rtt_us\":");
                        push_thousandths(out, rtt.as_nanos() as u64);
                    }
                    Err(ReceiptStatus::Lost) => out.extend_from_slice(b",\"status\":\"lost\""),
                    Err(ReceiptStatus::Refused) => {
                        out.extend_from_slice(b",\"status\":\"refused\"")
                    }
                    Err(s) => {
                        let _ = write!(out, ",\"status\":{}", s.code());
                    }
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        Line::Sent { id, len } => id_len(id, len, out),
        Line::Acked { id, len, rtt } => {
            id_len(id, len, out);
            out.extend_from_slice(b",\"rtt_us\":");
            push_thousandths(out, rtt.as_nanos() as u64);
        }
        Line::Message { id, data, .. } => json_message(id, None, data, out, drain),
        Line::RoomMessage { id, from, data } => json_message(id, Some(from), data, out, drain),
        Line::Joined { peer, name } => {
            let _ = write!(out, ",\"peer\":\"{peer}\",\"name\":");
            json_lossy(name, out);
        }
        Line::Closed { reason } | Line::TurnedAway { reason } => {
            out.extend_from_slice(b",\"reason\":");
            json_str(reason, out);
        }
        Line::Error { message } | Line::Notice { message } => {
            out.extend_from_slice(b",\"message\":");
            json_str(message, out);
        }
        Line::Summary {
            peer,
            addr,
            stats,
            encrypted,
            recipients,
        } => {
            let _ = write!(out, ",\"peer\":\"{addr}\",\"name\":");
            json_lossy(peer, out);
            let _ = write!(out, ",\"encrypted\":{encrypted}");
            let _ = write!(
                out,
                ",\"sent\":{},\"acked\":{},\"received\":{},\"refused\":{},\"rtt_us\":",
                stats.sent, stats.acked, stats.received, stats.refused
            );
            json_rtt(&stats.rtt, out);
            if let Some(recipients) = recipients {
                out.extend_from_slice(b",\"recipients\":[");
                for (i, r) in recipients.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"name\":");
                    match r.name {
                        Some(name) => json_lossy(name, out),
                        None => out.extend_from_slice(b"null"),
                    }
                    let _ = write!(
                        out,
                        ",\"n\":{},\"min_us\":{},\"avg_us\":{},\"max_us\":{}}}",
                        r.n,
                        us(r.min.as_nanos() as u64),
                        us(r.avg.as_nanos() as u64),
                        us(r.max.as_nanos() as u64)
                    );
                }
                out.push(b']');
            }
        }
        Line::Bench {
            peer,
            addr,
            size,
            window,
            elapsed,
            stats,
        } => {
            let _ = write!(out, ",\"peer\":\"{addr}\",\"name\":");
            json_lossy(peer, out);
            let (msgs, mb) = rates(stats.acked, size, elapsed);
            let _ = write!(
                out,
                ",\"size\":{size},\"window\":{window},\"sent\":{},\"acked\":{},\"elapsed_us\":{},\"msgs_per_s\":{msgs:.1},\"mb_per_s\":{mb:.3},\"rtt_us\":",
                stats.sent,
                stats.acked,
                us(elapsed.as_nanos() as u64)
            );
            json_rtt(&stats.rtt, out);
        }
    }
    out.extend_from_slice(b"}\n");
}

/// A message's fields: `id`, `len`, its sender in a room (`from`), and
/// `text` (UTF-8) or `data_b64`, rendered [`PIECE`] bytes at a time.
fn json_message(
    id: u64,
    from: Option<&[u8]>,
    data: &[u8],
    out: &mut Vec<u8>,
    drain: &mut dyn FnMut(&mut Vec<u8>),
) {
    id_len(id, data.len() as u64, out);
    if let Some(from) = from {
        out.extend_from_slice(b",\"from\":");
        json_lossy(from, out);
    }
    let (field, align) = match std::str::from_utf8(data) {
        Ok(_) => ("text", 1),
        Err(_) => ("data_b64", 3),
    };
    let _ = write!(out, ",\"{field}\":\"");
    for piece in pieces(data, align) {
        if align == 1 {
            let text = std::str::from_utf8(piece).expect("cut at a char boundary");
            json_str_body(text, out);
        } else {
            base64_into(piece, out);
        }
        if out.len() >= PIECE {
            drain(out);
        }
    }
    out.push(b'"');
}

/// The RTT figures; with no round trip, `null` for each (not a 0.000 that
/// reads as a measurement).
fn json_rtt(r: &RttSummary, out: &mut Vec<u8>) {
    if r.n == 0 {
        out.extend_from_slice(
            b"{\"n\":0,\"min\":null,\"avg\":null,\"max\":null,\"mdev\":null,\
              \"p50\":null,\"p90\":null,\"p99\":null,\"p999\":null}",
        );
        return;
    }
    let _ = write!(
        out,
        "{{\"n\":{},\"min\":{},\"avg\":{},\"max\":{},\"mdev\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{}}}",
        r.n,
        us(r.min),
        us(r.avg),
        us(r.max),
        us(r.mdev),
        us(r.p50),
        us(r.p90),
        us(r.p99),
        us(r.p999)
    );
}

/// `,"id":ID,"len":LEN`
fn id_len(id: u64, len: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"id\":");
    push_u64(out, id);
    out.extend_from_slice(b",\"len\":");
    push_u64(out, len);
}

/// Nanoseconds as microseconds with three decimals (a JSON number).
fn us(ns: u64) -> String {
    thousandths(ns)
}

/// Appends `s` as a JSON string; characters unsafe on a terminal become
/// `\uXXXX` escapes (a surrogate pair above U+FFFF), as the text
/// transcript escapes them. Printable ASCII runs are copied in bulk.
pub fn json_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    json_str_body(s, out);
    out.push(b'"');
}

/// The inside of a JSON string, without the quotes.
fn json_str_body(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len());
    let bytes = s.as_bytes();
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .position(|&b| !plain(b))
            .unwrap_or(bytes.len() - i);
        out.extend_from_slice(&bytes[i..i + run]);
        i += run;
        if let Some(n) = tag_sequence_len(&bytes[i..]) {
            out.extend_from_slice(&bytes[i..i + n]);
            i += n;
            continue;
        }
        let Some(c) = s[i..].chars().next() else {
            break;
        };
        i += c.len_utf8();
        let _ = match c {
            '"' => write!(out, "\\\""),
            '\\' => write!(out, "\\\\"),
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            c if is_unsafe(c) => {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .try_for_each(|u| write!(out, "\\u{u:04x}"))
            }
            c => {
                let mut b = [0u8; 4];
                out.write_all(c.encode_utf8(&mut b).as_bytes())
            }
        };
    }
}

/// Appends untrusted bytes as a JSON string, invalid UTF-8 replaced by U+FFFD.
fn json_lossy(bytes: &[u8], out: &mut Vec<u8>) {
    json_str(&String::from_utf8_lossy(bytes), out);
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_into(data: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(data.len().div_ceil(3) * 4);
    let sym = |n: u32, shift: u32| ALPHABET[((n >> shift) & 63) as usize];
    let mut groups = data.chunks_exact(3);
    for g in &mut groups {
        let n = (g[0] as u32) << 16 | (g[1] as u32) << 8 | g[2] as u32;
        out.extend_from_slice(&[sym(n, 18), sym(n, 12), sym(n, 6), sym(n, 0)]);
    }
    match *groups.remainder() {
        [a] => {
            let n = (a as u32) << 16;
            out.extend_from_slice(&[sym(n, 18), sym(n, 12), b'=', b'=']);
        }
        [a, b] => {
            let n = (a as u32) << 16 | (b as u32) << 8;
            out.extend_from_slice(&[sym(n, 18), sym(n, 12), sym(n, 6), b'=']);
        }
        _ => {}
    }
}
