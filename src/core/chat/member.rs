//! What a room member's controller keeps about the room: the receipts of
//! each of our messages until its ACK (for its `✓ 2/3` line), and each
//! recipient's RTT figures for the summary. The session decodes the
//! frames (`session/member.rs`); this only counts.
//!
//! Memory is bounded whatever the hub sends: figures for at most
//! [`NAMES_MAX`] names (the rest pooled), and at most [`LISTED_MAX`]
//! receipts listed by name across the messages awaiting their ACK (the
//! rest only counted).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::core::protocol::ReceiptStatus;
use crate::core::render::RecipientFigures;

/// Recipients whose figures the summary gives by name.
pub const NAMES_MAX: usize = 64;

/// Receipts kept by name, over all the messages awaiting their ACK.
pub const LISTED_MAX: usize = 16 * 1024;

/// One recipient's fate: its RTT when delivered.
pub type Fate = Result<Duration, ReceiptStatus>;

/// The receipts of one of our messages so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// Receipts that said delivered, and all receipts.
    pub reached: u64,
    pub of: u64,
    /// The recipient whose receipt came last among the delivered.
    pub slowest: Option<(Duration, Rc<[u8]>)>,
    /// Each recipient and its fate, in arrival order (at most what
    /// [`LISTED_MAX`] leaves room for).
    pub recipients: Vec<(Rc<[u8]>, Fate)>,
}

/// RTT figures of one recipient: count, min, max, sum.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    n: u64,
    min: Duration,
    max: Duration,
    sum: Duration,
}

impl Figures {
    fn record(&mut self, rtt: Duration) {
        self.min = if self.n == 0 { rtt } else { self.min.min(rtt) };
        self.max = self.max.max(rtt);
        self.sum = self.sum.saturating_add(rtt);
        self.n += 1;
    }

    fn shown<'a>(&self, name: Option<&'a [u8]>) -> RecipientFigures<'a> {
        let avg = match u32::try_from(self.n) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.sum / n,
            Err(_) => Duration::from_secs_f64(self.sum.as_secs_f64() / self.n as f64),
        };
        RecipientFigures {
            name,
            n: self.n,
            min: self.min,
            avg,
            max: self.max,
        }
    }
}

/// A room member's view of the room. See the module documentation.
#[derive(Debug, Default)]
pub struct RoomView {
    tallies: BTreeMap<u64, Tally>,
    /// Receipts listed in `tallies`.
    listed: usize,
    /// Figures by name, in order of first receipt.
    names: Vec<(Rc<[u8]>, Figures)>,
    /// Figures of the recipients past [`NAMES_MAX`] names.
    others: Option<Figures>,
    /// The sender of the message being shown as it arrives.
    pub streaming_from: Vec<u8>,
}

impl RoomView {
    /// A RECEIPT for our message `id`: `rtt` from its send to now.
    pub fn handle_receipt(&mut self, id: u64, status: ReceiptStatus, name: &[u8], rtt: Duration) {
        let fate = match status {
            ReceiptStatus::Delivered => Ok(rtt),
            other => Err(other),
        };
        let known = self.names.iter().position(|(n, _)| **n == *name);
        let slot = match known {
            Some(i) => Some(i),
            None if self.names.len() < NAMES_MAX => {
                self.names.push((name.into(), Figures::default()));
                Some(self.names.len() - 1)
            }
            None => None,
        };
        let shared: Rc<[u8]> = match slot {
            Some(i) => self.names[i].0.clone(),
            None => name.into(),
        };
        if fate.is_ok() {
            match slot {
                Some(i) => self.names[i].1.record(rtt),
                None => self.others.get_or_insert_default().record(rtt),
            }
        }
        let t = self.tallies.entry(id).or_default();
        t.of += 1;
        if fate.is_ok() {
            t.reached += 1;
            if t.slowest.as_ref().is_none_or(|(r, _)| rtt >= *r) {
                t.slowest = Some((rtt, shared.clone()));
            }
        }
        if self.listed < LISTED_MAX {
            self.listed += 1;
            t.recipients.push((shared, fate));
        }
    }

    /// The ACK of our message `id` came: its receipts, all of them (the
    /// hub sends every receipt of a message before its ACK).
    pub fn take(&mut self, id: u64) -> Tally {
        let t = self.tallies.remove(&id).unwrap_or_default();
        self.listed -= t.recipients.len();
        t
    }

    /// Each recipient's figures, for the summary: in the order of their
    /// names, then the others pooled.
    pub fn figures(&self) -> Vec<RecipientFigures<'_>> {
        let mut named: Vec<RecipientFigures<'_>> = self
            .names
            .iter()
            .map(|(n, f)| f.shown(Some(&n[..])))
            .collect();
        named.sort_by_key(|r| r.name);
        named.extend(self.others.map(|f| f.shown(None)));
        named
    }
}
