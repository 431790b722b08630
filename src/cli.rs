//! The command line: subcommands, options, environment fallbacks and help
//! text. The parsers for sizes, durations and addresses are in `parse`.
//!
//! Parsing only: nothing here opens a socket. `Cli::into_options` turns the
//! parsed arguments into the event loop's `Options`, and any problem is a
//! `UsageError` (exit code 2). The same definitions generate the shell
//! completion scripts and the manual pages (`duet completions`, `duet man`).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::core::chat::BenchSpec;
use crate::core::identity::Fingerprint;
use crate::core::input::InputMode;
use crate::core::protocol::MAX_NAME;
use crate::core::render::Format;
use crate::core::session::Config;
use crate::core::swarm::{Lifetime, SwarmConfig};
use crate::os::options::{Mode, Options, RoomOptions, Security};
use crate::os::swarm_loop::SwarmOptions;
pub use parse::{
    MAX_DURATION, MAX_MESSAGE_LIMIT, parse_duration, parse_max_message, parse_timeout,
};
use parse::{
    check_clients, check_max_peers, client_target, parse_fingerprint, parse_lifetime, parse_listen,
    parse_port, parse_rate, parse_size,
};

/// The default TCP port.
pub const DEFAULT_PORT: u16 = 7777;

const AFTER_HELP: &str = "\
In a terminal (stdin and stdout both terminals; see --no-editor):
  Enter send   Ctrl-J new line   Up/Down earlier lines   Ctrl-L clear screen
  Left/Right, Alt-B/F, Home/End, Ctrl-A/E move   Ctrl-W, Ctrl-U/K delete
  Ctrl-C clear the draft, or leave on an empty one   Ctrl-D leave   Ctrl-Z suspend
  /help keys and commands   /quit leave   /stats the summary so far
  /send PATH a file as one message   // a line that starts with /
  /next (server) end this chat and wait for the next client

Exit status:
  0    the chat ended normally and every message sent was acknowledged
  1    runtime error: cannot resolve, bind or connect; connection lost;
       the peer broke the protocol or a record failed authentication;
       --plain on one side only; the key file or known_peers unusable
  2    usage error
  3    the chat ended with messages not delivered (never acknowledged,
       refused as larger than the peer accepts, or input records skipped
       as longer than --max-message)
  4    the server is busy with another chat
  5    a key was refused: the peer's is not the one expected (--peer,
       known_peers, --allow), or the peer refused ours
  129, 130, 143   stopped by SIGHUP, SIGINT, SIGTERM

Values:
  DURATION  250ms, 10s, 1.5s, 2m (a plain number is seconds), at most 1440m
            (24 hours)
  SIZE      65536, 64KiB, 16MiB, 10kB (KiB/MiB/GiB are powers of 1024)

Examples:
  duet server                          wait for a chat on port 7777
  duet client 192.0.2.7                chat with that server
  duet client 192.0.2.7 8000           the port after the host, as ncat takes it
  duet client '[::1]:7777' --name ann  IPv6 literal with a port (or: ::1 7777)
  seq 1000 | duet client host --format jsonl   script it, one JSON event per line
  duet client host --input whole < photo.jpg   send a file as one message
  duet id                              print this side's key fingerprint
  duet client host --peer BLAKE2s:...  chat only with the server of that key
  duet server --allow friends.txt      let in only the client keys listed
  duet server --plain                  unencrypted protocol v1 (both sides)

Keys: encrypted by default. The key pair and known_peers (the servers a
client has met, HOST:PORT FINGERPRINT) are in $DUET_HOME, default
$XDG_DATA_HOME/duet, else ~/.local/share/duet.";

const SWARM_AFTER_HELP: &str = "\
Values:
  DURATION  250ms, 10s, 1.5s, 2m (a plain number is seconds), at most 1440m
  MIN..MAX  two DURATIONs, MIN more than 0 and not above MAX (1s..5s)

Examples:
  seq 1000000 | duet server --room --plain     a chatty hub
  duet swarm 127.0.0.1 --plain --clients 100 --lifetime 1s..5s
  duet swarm host --plain --clients 50 --rate 2 --duration 30s --format jsonl";

/// A terminal chat over TCP, one-on-one or in a room. Every message is acknowledged by
/// the peer at once, and the sender shows the round-trip time of each
/// acknowledgment and a ping-style summary at the end.
#[derive(Debug, Parser)]
#[command(name = "duet", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for clients and chat with one at a time.
    ///
    /// The first line printed names the address listened on. When a client
    /// leaves, the server waits for the next; a client that connects while
    /// a chat is going on is told the server is busy. Input piped to the
    /// server while nobody is connected waits for the next client; a line
    /// typed on a terminal meanwhile is refused.
    ///
    /// Chats are encrypted; each client's key is shown with a safety code
    /// to compare by voice. This side's key pair is in $DUET_HOME (default
    /// ~/.local/share/duet).
    #[command(after_help = AFTER_HELP)]
    Server {
        // The help text is an attribute, not a doc comment: rustdoc would
        // read its "[::]" as a link.
        #[arg(
            long,
            value_name = "ADDR",
            help = "Address to listen on, e.g. 127.0.0.1, ::1, fe80::1%eth0 [default: [::] (dual-stack), else 0.0.0.0]"
        )]
        listen: Option<String>,
        /// Port to listen on; 0 picks a free one
        #[arg(long, short, env = "DUET_PORT", default_value_t = DEFAULT_PORT)]
        port: u16,
        /// Exit after the first chat ends
        #[arg(long)]
        once: bool,
        /// Let in only the keys listed in FILE (one fingerprint a line, `#`
        /// comments); every other client is refused after the handshake
        #[arg(long, value_name = "FILE", conflicts_with = "plain")]
        allow: Option<PathBuf>,
        /// Room mode: chat with many clients at once; each message goes to
        /// every other member, tagged with its sender's name. Type /help in
        /// the room for /who, /msg NAME TEXT (or @NAME TEXT) and /quit
        #[arg(long, conflicts_with = "once")]
        room: bool,
        /// Members a room takes at most (counting clients still greeting);
        /// the next client is told the server is busy. Limited by the open-file limit (RLIMIT_NOFILE)
        #[arg(long, value_name = "N", default_value_t = crate::core::room::DEFAULT_MAX_PEERS as u32,
              value_parser = clap::value_parser!(u32).range(1..), requires = "room")]
        max_peers: u32,
        #[command(flatten)]
        keyboard: Keyboard,
        #[command(flatten)]
        common: Common,
    },
    /// Connect to a server and chat.
    ///
    /// Chats are encrypted. The server's key is checked against --peer if
    /// given, else against $DUET_HOME/known_peers (default
    /// ~/.local/share/duet/known_peers): remembered on first contact, and
    /// refused if it changes later (exit status 5).
    ///
    /// A server run with --room makes the client a member of its room:
    /// each message shows its sender, and each of yours how many members
    /// received it (`✓ #1 2/2 0.410 ms (slowest: <bob>)`).
    #[command(after_help = AFTER_HELP)]
    Client {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        keyboard: Keyboard,
        #[command(flatten)]
        common: Common,
    },
    /// Measure: send generated messages to a server and report throughput
    /// and round-trip times.
    ///
    /// Uses the same session and event loop as `client`, with a message
    /// generator in place of stdin. Per-message output is off; the summary
    /// adds msgs/s and MB/s, measured from the first byte handed to the
    /// kernel to the last acknowledgment.
    #[command(after_help = AFTER_HELP)]
    Bench {
        #[command(flatten)]
        target: Target,
        /// Messages to send
        #[arg(long, short = 'n', default_value_t = 10_000)]
        count: u64,
        /// Bytes per message (e.g. 16, 1KiB, 1MiB)
        #[arg(long, short, value_name = "SIZE", default_value = "16", value_parser = parse_size)]
        size: u64,
        /// Most messages unacknowledged at once (1 = stop-and-wait)
        #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        window: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Load a room: N simulated clients in one process that join, chat and
    /// leave.
    ///
    /// One thread and one poll run N clients against a hub (`duet server
    /// --room`). Each joins the room as duet client does, acknowledges
    /// every message and answers heartbeats; with --rate each sends R messages per second
    /// (each client, not in total); with --lifetime each leaves after a
    /// time drawn uniformly from MIN..MAX (seeded, so a run can be
    /// repeated) and is replaced at once, so that N stay connected. The
    /// run ends after --duration, or at SIGINT/SIGTERM/SIGHUP; stdin is not
    /// read. Each leave is graceful: no more input, acks awaited up to
    /// --linger, then BYE. A second signal closes every connection at once.
    /// The clients are named NAME-1, NAME-2, ... after --name (default
    /// "swarm" here).
    ///
    /// At the end one summary goes to stdout (text, or one
    /// {"event":"swarm",...} line with --format jsonl); while it runs a
    /// progress line is drawn on stderr if stderr is a terminal.
    ///
    /// Lost: a client's own messages the hub never acknowledged before its
    /// connection ended, plus gaps in the hub's numbered messages (a
    /// message whose body is only a decimal number, as `seq | duet server
    /// --room` sends, must be one more than the last such message that
    /// client received). RTT: from a message's first byte handed to the
    /// kernel to the hub's ACK, which a hub sends once the message has
    /// reached every other member: the room's fan-out time.
    ///
    /// Encrypted by default with this side's identity; the hub's key must
    /// be given with --peer or already be in known_peers (a swarm never
    /// adds to it). Exit status: 0 nothing lost and no error, 3 a message
    /// lost, 1 a connection failed or ended in an error (counted by kind in
    /// the summary), or the first connect was refused; 2 usage; 5 the
    /// hub's key is not the one expected, or the hub refused ours. A run ended by a signal exits
    /// the same way.
    #[command(after_help = SWARM_AFTER_HELP)]
    Swarm {
        #[command(flatten)]
        target: Target,
        /// Simulated clients kept connected (two open files each, under
        /// RLIMIT_NOFILE's hard limit)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        clients: u32,
        /// Each client leaves after a time drawn uniformly from MIN..MAX
        /// (e.g. 1s..5s, 200ms..600ms) and is replaced [default: stay]
        #[arg(long, value_name = "MIN..MAX", value_parser = parse_lifetime)]
        lifetime: Option<Lifetime>,
        /// End the run after this long (more than 0) [default: at a signal]
        #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
        duration: Option<Duration>,
        /// Messages per second EACH client sends (e.g. 0.5, 10) [default: none]
        #[arg(long, value_name = "R", value_parser = parse_rate)]
        rate: Option<f64>,
        /// Seed of the lifetimes and send phases
        #[arg(long, value_name = "S", default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Print this side's fingerprint: the identity a peer can check.
    ///
    /// The identity is a key pair kept in $DUET_HOME (default
    /// $XDG_DATA_HOME/duet, else ~/.local/share/duet), created on first
    /// use with mode 0600. Give the fingerprint to a peer over a channel
    /// you trust.
    Id,
    /// Print a shell completion script to stdout.
    ///
    /// For bash: `duet completions bash > ~/.local/share/bash-completion/completions/duet`;
    /// zsh: into a file named `_duet` in a directory on `$fpath`; fish:
    /// `duet completions fish > ~/.config/fish/completions/duet.fish`.
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print a manual page (roff) to stdout: duet(1), or a subcommand's.
    ///
    /// For example `duet man | man -l -` to read it, or `duet man >
    /// ~/.local/share/man/man1/duet.1` and `duet man client >
    /// ~/.local/share/man/man1/duet-client.1` to install it.
    Man {
        /// The subcommand whose page to print (duet-server(1), ...)
        #[arg(value_parser = SUBCOMMANDS)]
        command: Option<String>,
    },
}

/// The subcommands, each with its own manual page (duet(1) lists them).
const SUBCOMMANDS: [&str; 7] = [
    "server",
    "client",
    "bench",
    "swarm",
    "id",
    "completions",
    "man",
];

/// Text the command line describes itself with, printed instead of a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generated {
    /// A completion script for this shell.
    Completions(Shell),
    /// duet(1), or the page of the named subcommand.
    Man(Option<String>),
}

impl Generated {
    /// Writes the text, all of it generated from [`Cli`]'s definitions.
    pub fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        let mut cmd = Cli::command();
        // Generated into memory first: the generators panic on a failed
        // write, and a closed stdout is not worth a panic.
        let mut text = Vec::new();
        match self {
            Generated::Completions(shell) => {
                clap_complete::generate(*shell, &mut cmd, "duet", &mut text);
            }
            Generated::Man(None) => clap_mangen::Man::new(cmd).render(&mut text)?,
            Generated::Man(Some(name)) => {
                cmd.build();
                let sub = cmd
                    .find_subcommand(name)
                    .cloned()
                    .ok_or_else(|| io::Error::other(format!("no subcommand '{name}'")))?;
                let source = format!("duet {}", env!("CARGO_PKG_VERSION"));
                clap_mangen::Man::new(sub)
                    .source(source)
                    .render(&mut text)?;
            }
        }
        out.write_all(&text)?;
        out.flush()
    }
}

/// Where `client` and `bench` connect.
#[derive(Debug, Args)]
pub struct Target {
    /// Server to connect to: a hostname, an IPv4 or IPv6 address, with an
    /// optional port (host:7777, [::1]:7777, [fe80::1%eth0]:7777)
    #[arg(value_name = "HOST[:PORT]")]
    host: String,
    /// Port, after the host as ncat takes it (`example.org 7777`, `::1 7777`)
    #[arg(value_name = "PORT", value_parser = parse_port)]
    port_arg: Option<u16>,
    /// Port, when neither HOST nor PORT gives one
    #[arg(long, short, env = "DUET_PORT")]
    port: Option<u16>,
    /// Give up on an address after this long and try the next (e.g. 10s, 500ms; more than 0)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    connect_timeout: Duration,
    /// Chat only with the server whose key has this fingerprint (as `duet
    /// id` prints it), whatever known_peers says
    #[arg(long, value_name = "FINGERPRINT", value_parser = parse_fingerprint, conflicts_with = "plain")]
    peer: Option<Fingerprint>,
}

/// How `server` and `client` read what is typed or piped in; `bench`
/// reads no stdin and takes neither.
#[derive(Debug, Default, Args)]
pub struct Keyboard {
    /// How stdin is cut into messages
    #[arg(long, value_enum, default_value_t)]
    pub input: InputArg,
    /// Keep the terminal's own line mode instead of duet's line editor (for rlwrap)
    #[arg(long)]
    pub no_editor: bool,
    /// Ring the terminal bell when a message comes in after 10 s without typing (line editor only)
    #[arg(long)]
    pub bell: bool,
}

#[derive(Debug, Args)]
pub struct Common {
    /// Name shown to the peer; empty counts as not given [default: $USER,
    /// else "server", "client" or "bench"; swarm: "swarm"]
    #[arg(long, env = "DUET_NAME")]
    pub name: Option<String>,
    /// Output on stdout: a text transcript or one JSON object per line
    ///
    /// Text output without the prompt (piped, or --no-editor) shows a long
    /// message as it arrives; a JSON `message` event is printed once the
    /// whole message is in.
    #[arg(long, value_enum, env = "DUET_FORMAT", default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Largest message accepted from the peer and, by server and client, read from stdin (e.g. 64KiB, 16MiB; 1 to 4GiB)
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_max_message)]
    pub max_message: u64,
    /// After input ends (stdin, or bench's last message), wait this long for outstanding acknowledgments (and a message being received)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub linger: Duration,
    /// Close a connection that has not completed the handshake in this time (more than 0)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_timeout)]
    pub handshake_timeout: Duration,
    /// Send a heartbeat after this long without hearing from the peer (0: never)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Declare the peer gone after this many unanswered heartbeats in a row
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub dead_after: u32,
    /// Give up when queued data makes no progress for this long (0: never)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// More log detail on stderr (-v debug, -vv trace)
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the log to this file instead of stderr
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Colour on a terminal: auto (unless NO_COLOR is set or TERM=dumb), always, never
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
    /// Start text lines with the local time
    #[arg(long)]
    pub timestamps: bool,
    /// Speak protocol v1 unencrypted and unauthenticated (both sides must
    /// agree): for reading the bytes in strace, and for v1 peers
    #[arg(long)]
    pub plain: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Text,
    Jsonl,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum InputArg {
    /// One message per line; only the newline is removed
    #[default]
    Lines,
    /// One message per NUL-terminated record
    Nul,
    /// All of stdin as one message
    Whole,
}

/// A command line that parsed but does not make sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Cli {
    /// The common options, for logging set-up before anything else (none
    /// for the commands that only print generated text).
    pub fn common(&self) -> Option<&Common> {
        match &self.command {
            Command::Server { common, .. }
            | Command::Client { common, .. }
            | Command::Bench { common, .. }
            | Command::Swarm { common, .. } => Some(common),
            Command::Id | Command::Completions { .. } | Command::Man { .. } => None,
        }
    }

    /// What `duet completions` and `duet man` print; `None` for a chat.
    pub fn generated(&self) -> Option<Generated> {
        match &self.command {
            Command::Completions { shell } => Some(Generated::Completions(*shell)),
            Command::Man { command } => Some(Generated::Man(command.clone())),
            Command::Server { .. }
            | Command::Client { .. }
            | Command::Bench { .. }
            | Command::Swarm { .. }
            | Command::Id => None,
        }
    }

    pub fn into_options(self) -> Result<Options, UsageError> {
        let mut room = None;
        let (mode, keyboard, common, default_name, security) = match self.command {
            Command::Server {
                listen,
                port,
                once,
                allow,
                room: room_mode,
                max_peers,
                keyboard,
                common,
            } => {
                let listen = listen.as_deref().map(parse_listen).transpose()?;
                if room_mode {
                    let limit = crate::os::options::nofile_hard_limit();
                    let max_peers = max_peers as usize;
                    check_max_peers(max_peers, limit)?;
                    room = Some(RoomOptions { max_peers });
                }
                let mode = Mode::Server { listen, port, once };
                let security = security(common.plain, None, allow);
                (mode, keyboard, common, "server", security)
            }
            Command::Client {
                target,
                keyboard,
                common,
            } => {
                let security = security(common.plain, target.peer, None);
                (
                    target.into_mode(None)?,
                    keyboard,
                    common,
                    "client",
                    security,
                )
            }
            Command::Bench {
                target,
                count,
                size,
                window,
                common,
            } => {
                let bench = BenchSpec {
                    count,
                    size: usize::try_from(size)
                        .map_err(|_| UsageError("--size too large".into()))?,
                    window,
                };
                let security = security(common.plain, target.peer, None);
                let mode = target.into_mode(Some(bench))?;
                (mode, Keyboard::default(), common, "bench", security)
            }
            Command::Swarm { .. } => {
                return Err(UsageError("`duet swarm` runs with into_swarm".into()));
            }
            Command::Id | Command::Completions { .. } | Command::Man { .. } => {
                return Err(UsageError(
                    "`duet id`, `duet completions` and `duet man` print text; they do not chat"
                        .into(),
                ));
            }
        };
        // An empty --name or DUET_NAME counts as none given.
        let name = match common.name.clone().filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => std::env::var("USER")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| default_name.to_string()),
        };
        if name.len() > MAX_NAME {
            return Err(UsageError(format!(
                "--name is {} bytes long; the limit is {MAX_NAME}",
                name.len()
            )));
        }
        Ok(Options {
            mode,
            security,
            session: session_config(&common, name),
            format: match common.format {
                FormatArg::Text => Format::Text,
                FormatArg::Jsonl => Format::Jsonl,
            },
            input: match keyboard.input {
                InputArg::Lines => InputMode::Lines,
                InputArg::Nul => InputMode::Nul,
                InputArg::Whole => InputMode::Whole,
            },
            editor: !keyboard.no_editor,
            bell: keyboard.bell,
            color: match common.color {
                ColorArg::Auto => None,
                ColorArg::Always => Some(true),
                ColorArg::Never => Some(false),
            },
            timestamps: common.timestamps,
            room,
        })
    }
}

/// Encrypted unless `--plain`, with the client's pin or the server's
/// allow file.
fn security(plain: bool, pin: Option<Fingerprint>, allow: Option<PathBuf>) -> Security {
    if plain {
        Security::Plain
    } else {
        Security::Noise { pin, allow }
    }
}

impl Cli {
    /// `duet swarm`'s options; `None` for any other command.
    pub fn into_swarm(self) -> Result<Option<SwarmOptions>, UsageError> {
        let Command::Swarm {
            target,
            clients,
            lifetime,
            duration,
            rate,
            seed,
            common,
        } = self.command
        else {
            return Ok(None);
        };
        let clients = clients as usize;
        check_clients(clients, crate::os::options::nofile_hard_limit())?;
        let security = security(common.plain, target.peer, None);
        let (host, port) = client_target(&target.host, target.port_arg, target.port)?;
        let name = common
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "swarm".to_string());
        // Room for the `-N` suffix of each client's name.
        if name.len() > MAX_NAME - 21 {
            return Err(UsageError(format!(
                "--name is {} bytes long; a swarm's limit is {}",
                name.len(),
                MAX_NAME - 21
            )));
        }
        Ok(Some(SwarmOptions {
            host,
            port,
            connect_timeout: target.connect_timeout,
            security,
            session: session_config(&common, name),
            format: match common.format {
                FormatArg::Text => Format::Text,
                FormatArg::Jsonl => Format::Jsonl,
            },
            swarm: SwarmConfig {
                clients,
                lifetime,
                duration,
                rate,
                seed,
            },
        }))
    }
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// A clap error as one line, without the `error: ` prefix, the usage
/// block and the pointer to `--help`, to be printed as `duet: …` like
/// every other error. Context lines (the missing argument, the possible
/// values, a tip) are kept on the same line.
pub fn usage_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let mut line = String::new();
    let mut in_usage = false;
    for part in text.lines().map(str::trim) {
        if part.starts_with("Usage:") {
            in_usage = true;
            continue;
        }
        if part.is_empty() {
            in_usage = false;
            continue;
        }
        if in_usage || part.starts_with("For more information") {
            continue;
        }
        let part = part.strip_prefix("error: ").unwrap_or(part);
        if !line.is_empty() {
            let joined = line.ends_with(':') || part.starts_with('[');
            line.push_str(if joined { " " } else { "; " });
        }
        line.push_str(part);
    }
    line
}

impl Target {
    /// The client mode: host and port from `HOST[:PORT]`, `PORT` and `--port`.
    fn into_mode(self, bench: Option<BenchSpec>) -> Result<Mode, UsageError> {
        let (host, port) = client_target(&self.host, self.port_arg, self.port)?;
        Ok(Mode::Client {
            host,
            port,
            connect_timeout: self.connect_timeout,
            bench,
        })
    }
}
mod parse;

/// The session's settings from the options every mode shares.
fn session_config(common: &Common, name: String) -> Config {
    Config {
        name: name.into_bytes(),
        max_message: common.max_message,
        linger: common.linger,
        handshake_timeout: common.handshake_timeout,
        heartbeat: nonzero(common.heartbeat),
        dead_after: common.dead_after,
        write_timeout: nonzero(common.write_timeout),
        // Decided by the event loop, which knows the display.
        stream: false,
    }
}

#[cfg(test)]
mod tests {
    use super::parse::split_host_port;
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert!(parse_size("5GiB").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn max_peers_must_fit_under_the_hard_open_file_limit() {
        assert!(check_max_peers(64, Some(1024)).is_ok());
        assert!(check_max_peers(944, Some(1024)).is_ok());
        let err = check_max_peers(945, Some(1024)).unwrap_err().to_string();
        assert!(
            err.contains("--max-peers 945 needs 1025 open files"),
            "{err}"
        );
        assert!(err.contains("at most --max-peers 944"), "{err}");
        assert!(check_max_peers(usize::MAX, None).is_ok());
        assert!(check_max_peers(10_000, Some(1 << 20)).is_ok());
    }

    #[test]
    fn room_options_reach_the_shell() {
        let opts = |args: &[&str]| {
            Cli::try_parse_from(args).map(|c| c.into_options().map(|o| o.room.map(|r| r.max_peers)))
        };
        assert_eq!(opts(&["duet", "server"]).unwrap().unwrap(), None);
        assert_eq!(
            opts(&["duet", "server", "--room"]).unwrap().unwrap(),
            Some(64)
        );
        assert!(
            opts(&["duet", "server", "--max-peers", "3"]).is_err(),
            "requires --room"
        );
        assert!(opts(&["duet", "server", "--room", "--max-peers", "0"]).is_err());
        assert!(opts(&["duet", "server", "--room", "--once"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn durations_stop_at_24_hours() {
        assert_eq!(parse_duration("1440m"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("86400"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("86400000ms"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for over in [
            "86400.001",
            "1441m",
            "9223372036854775807s",
            "1e30",
            "99999999999999999999999",
        ] {
            assert!(parse_duration(over).is_err(), "{over}");
        }
        assert_eq!(
            parse_duration("9223372036854775807s"),
            Err("'9223372036854775807s' is over the limit of 1440m (24 hours)".into())
        );
    }

    #[test]
    fn zero_timeouts_and_a_zero_message_limit_are_usage_errors() {
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("0.0s").is_err());
        assert_eq!(parse_max_message("1"), Ok(1));
        assert_eq!(parse_max_message("4GiB"), Ok(MAX_MESSAGE_LIMIT));
        assert!(parse_max_message("0").is_err());
        assert!(parse_max_message("0KiB").is_err());
        let parse = |args: &[&str]| Cli::try_parse_from([&["duet"], args].concat());
        for args in [
            &["server", "--handshake-timeout", "0"][..],
            &["client", "h", "--connect-timeout", "0ms"],
            &["bench", "h", "--max-message", "0"],
            &["server", "--heartbeat", "9223372036854775807s"],
            &["server", "--linger", "25h"],
            &["client", "h", "--write-timeout", "1441m"],
            &["client", "h", "--connect-timeout", "86401"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
            assert!(!usage_line(&err).contains('\n'), "{args:?}");
        }
        assert_eq!(
            usage_line(&parse(&["server", "--handshake-timeout", "0"]).unwrap_err()),
            "invalid value '0' for '--handshake-timeout <DURATION>': \
             '0' would expire before any peer can answer; give more than 0"
        );
        assert_eq!(
            usage_line(&parse(&["client", "h", "--max-message", "0"]).unwrap_err()),
            "invalid value '0' for '--max-message <SIZE>': \
             '0' would refuse every message that is not empty; give at least 1 byte"
        );
        // "Never" stays 0 where it means something; the limit is accepted.
        let opts = parse(&[
            "client",
            "h",
            "--heartbeat",
            "0",
            "--write-timeout",
            "0",
            "--linger",
            "0",
            "--handshake-timeout",
            "1440m",
            "--connect-timeout",
            "1440m",
        ])
        .unwrap()
        .into_options()
        .unwrap();
        assert_eq!(opts.session.heartbeat, None);
        assert_eq!(opts.session.write_timeout, None);
        assert_eq!(opts.session.handshake_timeout, MAX_DURATION);
    }

    #[test]
    fn host_port_forms() {
        let ok = |s: &str| split_host_port(s).unwrap();
        assert_eq!(ok("example.org"), ("example.org".into(), None));
        assert_eq!(ok("example.org:80"), ("example.org".into(), Some(80)));
        assert_eq!(ok("127.0.0.1:7777"), ("127.0.0.1".into(), Some(7777)));
        assert_eq!(ok("[::1]:9"), ("::1".into(), Some(9)));
        assert_eq!(ok("[::1]"), ("::1".into(), None));
        assert_eq!(ok("::1"), ("::1".into(), None));
        assert_eq!(ok("fec0::1"), ("fec0::1".into(), None));
        assert_eq!(ok("fe80::1%eth0"), ("fe80::1%eth0".into(), None));
        assert_eq!(ok("[fe80::1%2]:9"), ("fe80::1%2".into(), Some(9)));
        for bad in [
            "",
            "host:",
            "host:99999",
            ":80",
            "[::1",
            "[::1]x",
            "[nope]:1",
            "1:2:x:80",
            "[fe80::1%]:9",
            "[192.0.2.7]:9",
            "192.0.2.7%eth0:9",
            "fe80::1%",
            "host%eth0",
            "fe80::1",
            "[fe80::1]:9",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        let ok = |s: &str| parse_listen(s).unwrap().to_string();
        for (given, meant) in [
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("fe80::1%eth0", "fe80::1%eth0"),
            ("[fe80::1%2]", "fe80::1%2"),
        ] {
            assert_eq!(ok(given), meant);
        }
        for bad in ["", "localhost", "[::1]:7777", "127.0.0.1%lo", "fe80::1%"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usage_errors_are_one_line() {
        let line = |args: &[&str]| {
            let err = Cli::try_parse_from([&["duet"], args].concat()).unwrap_err();
            usage_line(&err)
        };
        assert_eq!(
            line(&["client"]),
            "the following required arguments were not provided: <HOST[:PORT]>"
        );
        assert_eq!(line(&["dance"]), "unrecognized subcommand 'dance'");
        assert_eq!(
            line(&["server", "--format", "xml"]),
            "invalid value 'xml' for '--format <FORMAT>' [possible values: text, jsonl]"
        );
        assert_eq!(
            line(&["client", "h", "-1"]),
            "unexpected argument '-1' found; tip: to pass '-1' as a value, use '-- -1'"
        );
        assert_eq!(
            line(&["client", "h", "--max-message", "lots"]),
            "invalid value 'lots' for '--max-message <SIZE>': 'lots' is not a size (try 65536, 64KiB, 16MiB)"
        );
    }

    #[test]
    fn an_empty_name_counts_as_none() {
        let cli = Cli::try_parse_from(["duet", "client", "h", "--name", ""]).unwrap();
        let name = cli.into_options().unwrap().session.name;
        assert!(!name.is_empty());
    }

    #[test]
    fn port_given_twice_is_a_usage_error() {
        let cli = Cli::try_parse_from(["duet", "client", "h:1", "--port", "2"]).unwrap();
        assert!(cli.into_options().is_err());
        let cli = Cli::try_parse_from(["duet", "client", "h:1", "--port", "1"]).unwrap();
        assert!(cli.into_options().is_ok());
    }

    #[test]
    fn the_port_may_follow_the_host_as_in_ncat() {
        let target = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["duet"], args].concat()).map_err(|e| e.to_string())?;
            match cli.into_options().map_err(|e| e.0)?.mode {
                Mode::Client { host, port, .. } => Ok((host, port)),
                _ => unreachable!("a client or bench command"),
            }
        };
        let ok = |host: &str, port| Ok((host.to_string(), port));
        assert_eq!(
            target(&["client", "example.org", "8000"]),
            ok("example.org", 8000)
        );
        assert_eq!(target(&["client", "127.0.0.1", "9"]), ok("127.0.0.1", 9));
        assert_eq!(target(&["client", "::1", "7777"]), ok("::1", 7777));
        assert_eq!(
            target(&["client", "fe80::1%eth0", "9"]),
            ok("fe80::1%eth0", 9)
        );
        assert_eq!(target(&["bench", "h", "9"]), ok("h", 9));
        // The same port in two places is no contradiction.
        assert_eq!(target(&["client", "h:9", "9", "-p", "9"]), ok("h", 9));
        assert_eq!(target(&["client", "h"]), ok("h", DEFAULT_PORT));
        for (args, why) in [
            (
                &["client", "h:1", "2"][..],
                "port given twice: 1 in HOST and 2 as PORT",
            ),
            (
                &["client", "[::1]:1", "2"],
                "port given twice: 1 in HOST and 2 as PORT",
            ),
            (
                &["client", "h", "1", "--port", "2"],
                "port given twice: 1 as PORT and 2 in --port or DUET_PORT",
            ),
            (&["client", "h", "http"], "'http' is not a port number"),
            (&["client", "h", "65536"], "'65536' is not a port number"),
            (&["client", "h", "1", "2"], "unexpected argument '2'"),
        ] {
            let err: String = target(args).unwrap_err();
            assert!(err.contains(why), "{args:?}: {err}");
        }
    }

    #[test]
    fn only_commands_that_read_stdin_take_stdin_options() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["duet"], args].concat());
        for cmd in [&["client", "h"][..], &["server"]] {
            let opts = parse(&[cmd, &["--input", "nul", "--no-editor"]].concat())
                .unwrap()
                .into_options()
                .unwrap();
            assert_eq!(
                (opts.input, opts.editor),
                (InputMode::Nul, false),
                "{cmd:?}"
            );
        }
        for extra in ["--input=whole", "--no-editor"] {
            let err = parse(&["bench", "h", extra]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{extra}"
            );
        }
        let opts = parse(&["bench", "h"]).unwrap().into_options().unwrap();
        assert_eq!((opts.input, opts.editor), (InputMode::Lines, true));
    }

    #[test]
    fn every_subcommand_has_a_manual_page() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert_eq!(names, SUBCOMMANDS);
        for name in SUBCOMMANDS {
            let mut page = Vec::new();
            Generated::Man(Some(name.into()))
                .write_to(&mut page)
                .unwrap();
            let page = String::from_utf8(page).unwrap();
            assert!(page.contains(&format!("duet\\-{name}")), "{page}");
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
