//! Everything the shell needs from the command line, as `cli` builds it.

use std::path::PathBuf;
use std::time::Duration;

use crate::core::chat::BenchSpec;
use crate::core::identity::Fingerprint;
use crate::core::input::InputMode;
use crate::core::render::Format;
use crate::core::session::Config;
use crate::os::addr::IpLiteral;

/// Server or client, with their own settings.
#[derive(Debug, Clone)]
pub enum Mode {
    Server {
        listen: Option<IpLiteral>,
        port: u16,
        once: bool,
    },
    Client {
        host: String,
        port: u16,
        connect_timeout: Duration,
        /// Send generated messages instead of reading stdin.
        bench: Option<BenchSpec>,
    },
}

/// Whether the chat is encrypted, and whom it trusts.
#[derive(Debug, Clone)]
pub enum Security {
    /// `--plain`: protocol v1 in the clear, nobody authenticated.
    Plain,
    /// Noise, mutually authenticated. A client checks the server's key
    /// against `pin` if given, else against known_peers (remembering it on
    /// first contact); a server with `allow` lets in only those keys.
    Noise {
        pin: Option<Fingerprint>,
        allow: Option<PathBuf>,
    },
}

/// Everything the loop needs from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub security: Security,
    /// What every connection's session announces and enforces.
    pub session: Config,
    pub format: Format,
    pub input: InputMode,
    /// Use the line editor when stdin and stdout are terminals.
    pub editor: bool,
    /// `Some(on)` forces colour on or off; `None` decides from the terminal.
    pub color: Option<bool>,
    pub timestamps: bool,
}
