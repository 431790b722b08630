//! The program's failures as a whole (resolve, connect, bind, a system
//! call, a chat that ended badly), each shown as one line, and the short
//! wording of an `io::Error`.

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;

use crate::core::exit;

/// A failure of the program as a whole, shown as one line.
#[derive(Debug)]
pub enum Error {
    Resolve {
        host: String,
        err: io::Error,
    },
    Connect {
        target: String,
        err: io::Error,
    },
    Bind {
        addr: SocketAddr,
        err: io::Error,
    },
    Io {
        what: &'static str,
        err: io::Error,
    },
    /// The identity or a file about peers could not be used.
    Identity(crate::os::identity::IdentityError),
    /// The chat ended badly (protocol error, connection lost, busy); the
    /// exit code tells which.
    Chat {
        msg: String,
        code: u8,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Chat { code, .. } => *code,
            _ => exit::FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve { host, err } => write!(f, "cannot resolve {host}: {}", io_msg(err)),
            Error::Connect { target, err } => {
                write!(f, "cannot connect to {target}: {}", io_msg(err))
            }
            Error::Bind { addr, err } => write!(f, "cannot listen on {addr}: {}", io_msg(err)),
            Error::Io { what, err } => write!(f, "{what}: {}", io_msg(err)),
            Error::Identity(e) => write!(f, "{e}"),
            Error::Chat { msg, .. } => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

/// An `io::Error` as a short lower-case phrase, without "(os error N)".
pub fn io_msg(err: &io::Error) -> String {
    let s = match err.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        ErrorKind::AddrInUse => "address already in use".to_string(),
        ErrorKind::TimedOut => "timed out".to_string(),
        ErrorKind::BrokenPipe => "broken pipe".to_string(),
        _ => err.to_string(),
    };
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}
