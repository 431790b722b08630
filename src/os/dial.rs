//! A client's nonblocking connect, one address after another, as a source
//! of the loop's turn: registered for writability under the loop's token,
//! each attempt with its own deadline. A connect is done when the socket is
//! writable, has no pending error and has a peer address (mio's contract).

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::core::session::later;
use crate::os::error::io_msg;

/// Where a connect stands after [`Dial::advance`].
pub enum Dialed {
    /// Still under way (or the next address was started).
    Pending,
    /// Connected: the socket, deregistered, and its address.
    Connected(TcpStream, SocketAddr),
    /// Every address failed; the last error says why.
    Failed(io::Error),
}

/// The connect in progress.
pub struct Dial {
    /// Addresses not tried yet, in the resolver's order.
    addrs: std::vec::IntoIter<SocketAddr>,
    timeout: Duration,
    token: Token,
    /// The attempt under way: socket, address, deadline.
    attempt: Option<(TcpStream, SocketAddr, Instant)>,
    writable: bool,
    last_err: io::Error,
}

impl Dial {
    /// A dial over `addrs`, each given `timeout`; nothing started yet.
    pub fn new(addrs: Vec<SocketAddr>, timeout: Duration, token: Token) -> Dial {
        Dial {
            addrs: addrs.into_iter(),
            timeout,
            token,
            attempt: None,
            writable: false,
            last_err: io::Error::new(ErrorKind::NotFound, "no addresses"),
        }
    }

    /// The address being tried, if any.
    pub fn trying(&self) -> Option<SocketAddr> {
        self.attempt.as_ref().map(|a| a.1)
    }

    /// When the attempt under way gives up.
    pub fn deadline(&self) -> Option<Instant> {
        self.attempt.as_ref().map(|a| a.2)
    }

    /// The socket reported writable (or an error).
    pub fn handle_writable(&mut self) {
        self.writable = true;
    }

    /// Starts a connect to the next address that takes one. `Failed` when
    /// none is left.
    pub fn start(&mut self, registry: &Registry, now: Instant) -> Dialed {
        if let Some((mut stream, _, _)) = self.attempt.take() {
            let _ = registry.deregister(&mut stream);
        }
        self.writable = false;
        for addr in self.addrs.by_ref() {
            let started = TcpStream::connect(addr).and_then(|mut stream| {
                registry.register(&mut stream, self.token, Interest::WRITABLE)?;
                Ok(stream)
            });
            match started {
                Ok(stream) => {
                    self.attempt = Some((stream, addr, later(now, self.timeout)));
                    return Dialed::Pending;
                }
                Err(e) => {
                    log::info!("cannot connect to {addr}: {}", io_msg(&e));
                    self.last_err = e;
                }
            }
        }
        let err = std::mem::replace(&mut self.last_err, io::Error::other("no addresses"));
        Dialed::Failed(err)
    }

    /// Checks the attempt under way: connected, failed (then the next
    /// address is started), or past its deadline.
    pub fn advance(&mut self, registry: &Registry, now: Instant) -> Dialed {
        let Some((stream, addr, deadline)) = self.attempt.as_mut() else {
            return Dialed::Pending;
        };
        let addr = *addr;
        let mut outcome = None;
        if std::mem::take(&mut self.writable) {
            outcome = match stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(Err(e)),
                Ok(None) => match stream.peer_addr() {
                    Ok(_) => Some(Ok(())),
                    Err(e) if e.kind() == ErrorKind::NotConnected => None,
                    Err(e) => Some(Err(e)),
                },
            };
        }
        if outcome.is_none() && now >= *deadline {
            outcome = Some(Err(io::Error::new(ErrorKind::TimedOut, "timed out")));
        }
        match outcome {
            None => Dialed::Pending,
            Some(Err(e)) => {
                log::info!("cannot connect to {addr}: {}", io_msg(&e));
                self.last_err = e;
                self.start(registry, now)
            }
            Some(Ok(())) => {
                let Some((mut stream, addr, _)) = self.attempt.take() else {
                    return Dialed::Pending;
                };
                let _ = registry.deregister(&mut stream);
                log::info!("connected to {addr}");
                Dialed::Connected(stream, addr)
            }
        }
    }
}
