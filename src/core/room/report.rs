//! What the room tells the hub's person about its members: each one's
//! RTT figures (kept small, no histogram), the `/who` list, and the
//! room's summary at the end.

use std::time::{Duration, Instant};

use super::Room;
use crate::core::chat::Screen;
use crate::core::escape::peer_label;
use crate::core::render::Line;
use crate::core::rtt::RttSummary;

/// Per-member RTT figures kept small (no histogram): count, min, max, sum.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Figures {
    n: u64,
    min: Duration,
    max: Duration,
    sum: Duration,
    last: Option<Duration>,
}

impl Figures {
    pub(super) fn record(&mut self, rtt: Duration) {
        self.min = if self.n == 0 { rtt } else { self.min.min(rtt) };
        self.max = self.max.max(rtt);
        self.sum += rtt;
        self.n += 1;
        self.last = Some(rtt);
    }
}

impl Room {
    /// The room's figures: one line per member present and per member that
    /// left (the last 64), and the RTT of every delivery overall.
    pub fn summary(&self, screen: &mut impl Screen, now: Instant) {
        let head = format!(
            "--- room: {} joined, {} deliveries ---",
            self.joined, self.forwarded
        );
        screen.show(&Line::Notice { message: &head }, now);
        let present = self
            .peers
            .values()
            .filter(|p| p.is_member())
            .filter_map(|p| Some((p.name.as_deref()?, &p.figures)));
        let gone = self.departed.iter().map(|(n, f)| (n.as_slice(), f));
        for (name, f) in present.chain(gone) {
            let line = if f.n == 0 {
                format!("{}: no deliveries", peer_label(name))
            } else {
                format!(
                    "{}: {} deliveries, rtt min/avg/max = {}/{}/{} ms",
                    peer_label(name),
                    f.n,
                    ms(f.min),
                    ms(f.sum / f.n as u32),
                    ms(f.max)
                )
            };
            screen.show(&Line::Notice { message: &line }, now);
        }
        let s: RttSummary = self.overall.summary();
        if s.n > 0 {
            let ns = |v: u64| ms(Duration::from_nanos(v));
            let line = format!(
                "all: rtt min/avg/max/mdev = {}/{}/{}/{} ms, p50 {} p99 {} ms",
                ns(s.min),
                ns(s.avg),
                ns(s.max),
                ns(s.mdev),
                ns(s.p50),
                ns(s.p99)
            );
            screen.show(&Line::Notice { message: &line }, now);
        }
    }

    /// `/who`: each member's name, address and last RTT, then how many.
    pub(super) fn who(&self, screen: &mut impl Screen, now: Instant) {
        let mut n = 0;
        for p in self.peers.values().filter(|p| p.is_member()) {
            n += 1;
            let rtt = p.figures.last.map_or("no RTT yet".to_string(), |r| {
                format!("last RTT {} ms", ms(r))
            });
            let line = format!(
                "{} {} {rtt}",
                peer_label(p.name.as_deref().unwrap_or_default()),
                p.addr
            );
            screen.show(&Line::Notice { message: &line }, now);
        }
        let head = format!("{n} in the room besides you");
        screen.show(&Line::Notice { message: &head }, now);
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}
