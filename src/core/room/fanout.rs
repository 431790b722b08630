//! The fan-out: a message's way from its sender to every recipient and
//! back. Each message is a [`Fanout`] until every recipient's fate is
//! known; it is queued per member in that member's form (the room
//! envelope, `<name> text`, or the hub's own text), handed to the
//! member's session as the session takes input ([`Room::feed`]), and
//! resolved by the member's ACK, a refusal (over its limit) or its loss
//! (it left). A sender that sent JOIN gets a RECEIPT per recipient; its
//! ACKs are queued once its messages reached the room, in its order; the
//! hub's own messages end in a `✓` line.
//!
//! Who is in the room is `room.rs`'s (joining, names, leaving); this moves
//! messages and their fates between the members' queues, and drops a
//! member whose queue passed the cap.

use std::borrow::Cow;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Peer, Room};
use crate::core::chat::Screen;
use crate::core::escape::peer_label;
use crate::core::protocol::{self, ByeReason, ReceiptStatus};
use crate::core::render::Line;
use crate::core::session::{MSG_COST, RoomAnswer, Session};

/// What a queued message counts against [`QUEUE_CAP`](super::QUEUE_CAP):
/// its bytes and [`MSG_COST`], so that a flood of empty lines fills the
/// queue too.
fn cost(data: &[u8]) -> usize {
    data.len() + MSG_COST
}

/// Who a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    /// The hub's person (a typed or piped line); `quiet` for the room's own
    /// notices, which get no `✓` line.
    Hub { id: u64, quiet: bool },
    /// A member: its key and its id for the message; `None` once it left.
    Peer(Option<(usize, u64)>),
}

/// One message on its way to its recipients.
pub(super) struct Fanout {
    from: From,
    /// Whether the sender gets RECEIPTs (it sent JOIN).
    receipts: bool,
    len: u64,
    /// Recipients whose fate is not known yet.
    waiting: usize,
    /// What became of each recipient: name, and its RTT when delivered.
    done: Vec<(Vec<u8>, Result<Duration, ReceiptStatus>)>,
}

/// What the room wants done to one member's session.
pub(super) enum Out {
    Message {
        fan: u64,
        data: Rc<[u8]>,
    },
    Delivered {
        id: u64,
    },
    Receipt {
        id: u64,
        status: ReceiptStatus,
        name: Vec<u8>,
    },
}

impl Room {
    /// Hands what waits for member `key` to its session: control frames
    /// (ACKs, RECEIPTs) always, messages while the session wants input.
    /// The shell calls it for each key from [`Room::poll_woken`], and again
    /// for a member with [`Room::has_queued`] once its session drained (a
    /// flush made progress).
    pub fn feed(
        &mut self,
        key: usize,
        session: &mut Session,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        let mut lost = Vec::new();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        while let Some(out) = p.queue.front() {
            match out {
                Out::Delivered { id } => session.handle_delivered(*id, now),
                Out::Receipt { id, status, name } => {
                    session.handle_receipt(*id, *status, name, now)
                }
                Out::Message { fan, data } => {
                    if !session.wants_input() && session.is_open() {
                        break;
                    }
                    p.queued -= cost(data);
                    match session.handle_input(Cow::Borrowed(data), now) {
                        Ok(sid) => p.in_session.push_back((sid, *fan)),
                        Err(_) => lost.push(*fan),
                    }
                }
            }
            p.queue.pop_front();
        }
        let name = p.name.clone().unwrap_or_default();
        for fan in lost {
            self.resolve(fan, &name, Err(ReceiptStatus::Lost), screen, now);
        }
    }

    /// The hub's own message `text` to one member or (with `None`) to all.
    pub(super) fn send_own(
        &mut self,
        id: u64,
        text: &[u8],
        to: Option<usize>,
        quiet: bool,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        let recipients: Vec<usize> = match to {
            Some(k) => vec![k],
            None => self.member_keys(None),
        };
        self.start(From::Hub { id, quiet }, &[], text, recipients, screen, now);
    }

    pub(super) fn send_own_except(
        &mut self,
        id: u64,
        text: &[u8],
        except: usize,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        let recipients = self.member_keys(Some(except));
        self.start(
            From::Hub { id, quiet: true },
            &[],
            text,
            recipients,
            screen,
            now,
        );
    }

    fn member_keys(&self, except: Option<usize>) -> Vec<usize> {
        self.peers
            .iter()
            .filter(|&(&k, p)| p.is_member() && Some(k) != except)
            .map(|(&k, _)| k)
            .collect()
    }

    /// A member's message `id` arrived complete: to every other member.
    pub(super) fn forward(
        &mut self,
        key: usize,
        id: u64,
        from: &[u8],
        data: &[u8],
        screen: &mut impl Screen,
        now: Instant,
    ) {
        self.peers
            .get_mut(&key)
            .expect("sender")
            .sending
            .push_back(self.next_fan);
        let recipients = self.member_keys(Some(key));
        self.start(
            From::Peer(Some((key, id))),
            from,
            data,
            recipients,
            screen,
            now,
        );
    }

    /// Queues a message for its recipients, in each one's form: the room
    /// envelope for a member that sent JOIN, `<name> text` for a plain one
    /// (no prefix for the hub's own), or nothing if it is over its limit.
    fn start(
        &mut self,
        from: From,
        name: &[u8],
        text: &[u8],
        recipients: Vec<usize>,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        let fan = self.next_fan;
        self.next_fan += 1;
        // A member that sent JOIN gets a RECEIPT per recipient.
        let receipts = matches!(from, From::Peer(Some((k, _)))
            if self.peers.get(&k).is_some_and(|p| p.answer == Some(RoomAnswer::Join)));
        self.fans.insert(
            fan,
            Fanout {
                from,
                receipts,
                len: text.len() as u64,
                waiting: recipients.len(),
                done: Vec::new(),
            },
        );
        let mut plain: Option<Rc<[u8]>> = None;
        let mut envelope: Option<Rc<[u8]>> = None;
        let mut refused = Vec::new();
        let mut slow = Vec::new();
        for key in recipients {
            let p = self.peers.get_mut(&key).expect("recipient is a member");
            let data = match p.answer {
                Some(RoomAnswer::Join) => envelope
                    .get_or_insert_with(|| {
                        let mut v = Vec::new();
                        protocol::encode_envelope(name, text, &mut v);
                        v.into()
                    })
                    .clone(),
                _ => plain
                    .get_or_insert_with(|| {
                        if name.is_empty() {
                            return text.into();
                        }
                        let mut v = peer_label(name).into_bytes();
                        v.push(b' ');
                        v.extend_from_slice(text);
                        v.into()
                    })
                    .clone(),
            };
            if data.len() as u64 > p.max_message {
                refused.push(p.name.clone().unwrap_or_default());
                continue;
            }
            if p.queued > self.cfg.queue_cap {
                slow.push(key);
            }
            p.queued += cost(&data);
            if p.queue.is_empty() {
                self.woken.push_back(key);
            }
            p.queue.push_back(Out::Message { fan, data });
        }
        // A message nobody is waiting for is complete at once.
        if self.fans[&fan].waiting == 0 {
            self.complete(fan, screen, now);
        }
        for name in refused {
            self.resolve(fan, &name, Err(ReceiptStatus::Refused), screen, now);
        }
        for key in slow {
            let queued = self.peers.get(&key).map_or(0, |p| p.queued);
            self.drop_peer(
                key,
                ByeReason::Timeout,
                format!("you fell behind: {queued} bytes of the room waited for you"),
                "fell behind",
                screen,
                now,
            );
        }
    }

    pub(super) fn handle_acked(
        &mut self,
        key: usize,
        id: u64,
        rtt: Duration,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        let p = self.peers.get_mut(&key).expect("checked by the caller");
        let Some(&(sid, fan)) = p.in_session.front() else {
            return;
        };
        debug_assert_eq!(sid, id, "a session acks in order");
        p.in_session.pop_front();
        p.figures.record(rtt);
        self.overall.record(rtt);
        self.forwarded += 1;
        let name = p.name.clone().unwrap_or_default();
        self.resolve(fan, &name, Ok(rtt), screen, now);
    }

    /// One recipient's fate for `fan` is known.
    fn resolve(
        &mut self,
        fan: u64,
        name: &[u8],
        fate: Result<Duration, ReceiptStatus>,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        let Some(f) = self.fans.get_mut(&fan) else {
            return;
        };
        f.waiting -= 1;
        f.done.push((name.to_vec(), fate));
        if f.receipts
            && let From::Peer(Some((sender, id))) = f.from
            && let Some(p) = self.peers.get_mut(&sender)
        {
            let status = fate.err().unwrap_or(ReceiptStatus::Delivered);
            if p.queue.is_empty() {
                self.woken.push_back(sender);
            }
            p.queue.push_back(Out::Receipt {
                id,
                status,
                name: name.to_vec(),
            });
        }
        if f.waiting == 0 {
            self.complete(fan, screen, now);
        }
    }

    /// Every recipient of `fan` is accounted for: the hub's `✓` line for
    /// its own message, or the sender's ACKs that are due, in order.
    fn complete(&mut self, fan: u64, screen: &mut impl Screen, now: Instant) {
        let f = &self.fans[&fan];
        match f.from {
            From::Hub { id, quiet } => {
                let f = self.fans.remove(&fan).expect("present");
                if !quiet {
                    show_reached(id, &f, screen, now);
                }
            }
            From::Peer(None) => {
                self.fans.remove(&fan);
            }
            From::Peer(Some((sender, _))) => self.settle(sender),
        }
    }

    /// Queues the ACKs of `sender`'s messages that have reached the room,
    /// oldest first, stopping at the first that has not.
    fn settle(&mut self, sender: usize) {
        let Some(p) = self.peers.get_mut(&sender) else {
            return;
        };
        while let Some(&fan) = p.sending.front() {
            match self.fans.get(&fan) {
                Some(f) if f.waiting > 0 => break,
                Some(f) => {
                    if let From::Peer(Some((_, id))) = f.from {
                        if p.queue.is_empty() {
                            self.woken.push_back(sender);
                        }
                        p.queue.push_back(Out::Delivered { id });
                    }
                    self.fans.remove(&fan);
                }
                None => {}
            }
            p.sending.pop_front();
        }
    }

    /// Member `p` (called `name`) has left: its messages' fates as sender
    /// and as recipient.
    pub(super) fn abandon(
        &mut self,
        p: &Peer,
        name: &[u8],
        screen: &mut impl Screen,
        now: Instant,
    ) {
        // Its own messages still go on; nobody is left to acknowledge them to.
        for fan in &p.sending {
            if let Some(f) = self.fans.get_mut(fan) {
                f.from = From::Peer(None);
                if f.waiting == 0 {
                    self.fans.remove(fan);
                }
            }
        }
        let lost = p
            .in_session
            .iter()
            .map(|&(_, fan)| fan)
            .chain(p.queue.iter().filter_map(|o| match o {
                Out::Message { fan, .. } => Some(*fan),
                _ => None,
            }));
        for fan in lost.collect::<Vec<_>>() {
            self.resolve(fan, name, Err(ReceiptStatus::Lost), screen, now);
        }
    }
}

/// The `✓` line for one of the hub's own messages that reached the room.
fn show_reached(id: u64, f: &Fanout, screen: &mut impl Screen, now: Instant) {
    let reached = f.done.iter().filter(|(_, r)| r.is_ok()).count();
    let slowest = f
        .done
        .iter()
        .filter_map(|(n, r)| Some((r.ok()?, n.as_slice())))
        .max();
    let recipients: Vec<(&[u8], Result<Duration, ReceiptStatus>)> =
        f.done.iter().map(|(n, r)| (n.as_slice(), *r)).collect();
    screen.show(
        &Line::Reached {
            id,
            len: f.len,
            reached: reached as u64,
            of: f.done.len() as u64,
            slowest,
            recipients: &recipients,
        },
        now,
    );
}
