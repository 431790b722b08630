//! This side's identity on disk: the `$DUET_HOME` directory, the static
//! key pair in it, and the `known_peers` and `--allow` files.
//!
//! `$DUET_HOME` defaults to `$XDG_DATA_HOME/duet`, else
//! `~/.local/share/duet`, and is created with mode 0700. The key file
//! (`key`) is created on first use with mode 0600: written in full to a
//! temporary file of that mode, then linked into place, so a reader never
//! sees half a key and two first runs at once agree on one key. A key file
//! that group or others may access is refused, as ssh refuses one. The
//! formats and verdicts are `core::identity`'s; this module only reads,
//! creates and appends.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::core::identity::{self, AllowList, Fingerprint, FormatError, Trust};
use crate::core::transport::{self, KEY_LEN};
use crate::os::error::io_msg;

/// The key file's name in `$DUET_HOME`.
pub const KEY_FILE: &str = "key";
/// The known peers' file's name in `$DUET_HOME`.
pub const KNOWN_PEERS_FILE: &str = "known_peers";
/// The largest key, allow or known_peers file read: a bound on memory
/// for a file someone pointed us at by mistake.
const MAX_FILE: u64 = 4 << 20;

const KEY_HEADER: &str =
    "# duet identity: this side's private X25519 key (base64). Keep it secret.\n";

/// Why the identity, or a file about peers, could not be used. One line.
#[derive(Debug)]
pub enum IdentityError {
    /// Neither `DUET_HOME`, `XDG_DATA_HOME` nor `HOME` is set.
    NoHome,
    /// A system call on a file failed.
    Io {
        what: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// The key file may be read or written by group or others.
    KeyMode { path: PathBuf, mode: u32 },
    /// The key file is not one line of base64 as duet writes it.
    KeyFile { path: PathBuf },
    /// A line of `known_peers` or an allow file is not valid.
    Format { path: PathBuf, err: FormatError },
    /// The peer's key is not the one `known_peers` remembers.
    KeyChanged {
        peer: String,
        path: PathBuf,
        line: usize,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::NoHome => {
                f.write_str("cannot tell where to keep the identity: set DUET_HOME (or HOME)")
            }
            IdentityError::Io { what, path, err } => {
                write!(f, "cannot {what} {}: {}", path.display(), io_msg(err))
            }
            IdentityError::KeyMode { path, mode } => write!(
                f,
                "the key file {0} is accessible by group or others (mode {mode:04o}); run `chmod 600 {0}`",
                path.display()
            ),
            IdentityError::KeyFile { path } => write!(
                f,
                "{} is not a duet key file (expected one line of base64, as duet writes it)",
                path.display()
            ),
            IdentityError::Format { path, err } => write!(f, "{}: {err}", path.display()),
            IdentityError::KeyChanged { peer, path, line } => write!(
                f,
                "the key of {peer} does not match line {line} of {}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IdentityError + 'a {
    move |err| IdentityError::Io {
        what,
        path: path.to_path_buf(),
        err,
    }
}

/// `$DUET_HOME` from the environment (see [`home_from`]).
pub fn home() -> Result<PathBuf, IdentityError> {
    home_from(
        std::env::var_os("DUET_HOME"),
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
    .ok_or(IdentityError::NoHome)
}

/// Where the identity lives, given `DUET_HOME`, `XDG_DATA_HOME` and
/// `HOME`: the first, else `XDG_DATA_HOME/duet` (only an absolute one, as
/// the XDG spec says), else `HOME/.local/share/duet`. Empty values count
/// as unset.
pub fn home_from(
    duet_home: Option<OsString>,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = set(duet_home) {
        return Some(d);
    }
    if let Some(x) = set(xdg_data_home).filter(|x| x.is_absolute()) {
        return Some(x.join("duet"));
    }
    set(home).map(|h| h.join(".local/share/duet"))
}

/// This side's static key pair.
pub struct Identity {
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
    /// The key was made by this call (first use).
    pub created: bool,
    /// The key file.
    pub path: PathBuf,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The private key, for [`Transport::new`](transport::Transport::new).
    pub fn private_key(&self) -> &[u8; KEY_LEN] {
        &self.private
    }

    /// The public key.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The public key's fingerprint, as `duet id` prints it.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.public)
    }
}

/// Reads at most [`MAX_FILE`] bytes of an open file as text.
fn read_text(file: File, path: &Path) -> Result<String, IdentityError> {
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(io_err("read", path))?;
    Ok(text)
}

/// Loads the identity in `dir`, creating the directory (0700) and the key
/// (0600) on first use.
pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
    let path = dir.join(KEY_FILE);
    match File::open(&path) {
        Ok(file) => return load(file, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("open", &path)(e)),
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create the directory", dir))?;
    let (private, public) = transport::generate_keypair().map_err(|_| IdentityError::Io {
        what: "create a key for",
        path: path.clone(),
        err: io::Error::other("no randomness available"),
    })?;
    let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp); // left by an earlier run with our pid
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(KEY_HEADER.as_bytes())?;
        f.write_all(identity::encode_base64(&private).as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("write", &tmp)(e));
    }
    // A link, unlike a rename, never replaces a key another duet created
    // meanwhile: then that one is the identity.
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Identity {
            private,
            public,
            created: true,
            path,
        }),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let file = File::open(&path).map_err(io_err("open", &path))?;
            load(file, path)
        }
        Err(e) => Err(io_err("create", &path)(e)),
    }
}

fn load(file: File, path: PathBuf) -> Result<Identity, IdentityError> {
    // The mode of the file opened, not of whatever the name points to now.
    let mode = file.metadata().map_err(io_err("read", &path))?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::KeyMode { path, mode });
    }
    let text = read_text(file, &path)?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(IdentityError::KeyFile { path });
    };
    let Some(private) = identity::decode_base64_32(line) else {
        return Err(IdentityError::KeyFile { path });
    };
    Ok(Identity {
        public: transport::public_key(&private),
        private,
        created: false,
        path,
    })
}

/// What `dir/known_peers` says about `peer` showing `fingerprint`. A
/// missing file knows nobody. A changed key is the error
/// [`IdentityError::KeyChanged`], naming the file and the line.
pub fn check_known_peer(
    dir: &Path,
    peer: &str,
    fingerprint: &Fingerprint,
) -> Result<Trust, IdentityError> {
    let path = dir.join(KNOWN_PEERS_FILE);
    let text = match File::open(&path) {
        Ok(f) => read_text(f, &path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Trust::Unknown),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    match identity::check_known_peers(&text, peer, fingerprint) {
        Ok(Trust::Changed { line }) => Err(IdentityError::KeyChanged {
            peer: peer.to_string(),
            path,
            line,
        }),
        Ok(trust) => Ok(trust),
        Err(err) => Err(IdentityError::Format { path, err }),
    }
}

/// Appends `peer fingerprint` to `dir/known_peers` (created 0600, and the
/// directory 0700, if missing), after a newline if the file lacks a final
/// one. Returns the file's path, for the "remembered" notice.
pub fn remember_peer(
    dir: &Path,
    peer: &str,
    fingerprint: &Fingerprint,
) -> Result<PathBuf, IdentityError> {
    let path = dir.join(KNOWN_PEERS_FILE);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create the directory", dir))?;
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open", &path))?;
    let len = f.metadata().map_err(io_err("read", &path))?.len();
    let mut line = identity::known_peer_line(peer, fingerprint);
    if len > 0 {
        use std::io::{Seek, SeekFrom};
        let mut last = [0u8];
        f.seek(SeekFrom::Start(len - 1))
            .and_then(|_| f.read_exact(&mut last))
            .map_err(io_err("read", &path))?;
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
    }
    // One write: with O_APPEND, two duets remembering at once do not
    // interleave their lines.
    f.write_all(line.as_bytes())
        .map_err(io_err("write", &path))?;
    Ok(path)
}

/// Reads an allow file (`--allow FILE`).
pub fn read_allow(path: &Path) -> Result<AllowList, IdentityError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let text = read_text(file, path)?;
    AllowList::parse(&text).map_err(|err| IdentityError::Format {
        path: path.to_path_buf(),
        err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fresh directory under the system's temporary directory, removed
    /// on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p =
                std::env::temp_dir().join(format!("duet-identity-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn home_follows_duet_home_then_xdg_then_home() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(home_from(s("/d"), s("/x"), s("/h")), Some("/d".into()));
        assert_eq!(home_from(s(""), s("/x"), s("/h")), Some("/x/duet".into()));
        assert_eq!(home_from(None, s("/x"), s("/h")), Some("/x/duet".into()));
        // A relative XDG_DATA_HOME is invalid by the spec: ignored.
        assert_eq!(
            home_from(None, s("rel"), s("/h")),
            Some("/h/.local/share/duet".into())
        );
        assert_eq!(
            home_from(None, None, s("/h")),
            Some("/h/.local/share/duet".into())
        );
        assert_eq!(home_from(None, s(""), s("")), None);
    }

    #[test]
    fn the_key_is_created_private_once_and_then_loaded() {
        let t = TempDir::new("create");
        let dir = t.0.join("a/b");
        let first = load_or_create(&dir).unwrap();
        assert!(first.created);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&first.path), 0o600);
        let second = load_or_create(&dir).unwrap();
        assert!(!second.created);
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(first.private_key(), second.private_key());
        assert_eq!(
            transport::public_key(second.private_key()),
            *second.public_key()
        );
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE]);
        let text = fs::read_to_string(&first.path).unwrap();
        assert!(text.starts_with('#') && text.ends_with('\n'), "{text}");
        assert!(!format!("{first:?}").contains(&identity::encode_base64(first.private_key())));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_with_the_fix() {
        let t = TempDir::new("mode");
        let id = load_or_create(&t.0).unwrap();
        for m in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&id.path, fs::Permissions::from_mode(m)).unwrap();
            let err = load_or_create(&t.0).unwrap_err();
            assert!(
                matches!(err, IdentityError::KeyMode { mode, .. } if mode == m),
                "{err}"
            );
            let p = id.path.display();
            assert_eq!(
                err.to_string(),
                format!(
                    "the key file {p} is accessible by group or others (mode {m:04o}); run `chmod 600 {p}`"
                )
            );
        }
        fs::set_permissions(&id.path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(
            load_or_create(&t.0).unwrap().fingerprint(),
            id.fingerprint()
        );
    }

    #[test]
    fn a_damaged_key_file_is_refused() {
        let t = TempDir::new("damaged");
        let path = t.0.join(KEY_FILE);
        let good = identity::encode_base64(&[7; 32]);
        for text in [
            "",
            "# only a comment\n",
            "abc\n",
            &format!("{good}\n{good}\n"),
        ] {
            let _ = fs::remove_file(&path);
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let err = load_or_create(&t.0).unwrap_err();
            assert!(
                matches!(err, IdentityError::KeyFile { .. }),
                "{text:?}: {err}"
            );
            assert!(err.to_string().contains("is not a duet key file"));
        }
        // Written by hand, without the comment: fine.
        fs::write(&path, format!("{good}\n")).unwrap();
        let id = load_or_create(&t.0).unwrap();
        assert_eq!(id.private_key(), &[7; 32]);
    }

    #[test]
    fn known_peers_are_remembered_then_checked() {
        let t = TempDir::new("known");
        let dir = t.0.join("home");
        let a = Fingerprint::of(&[1; 32]);
        let b = Fingerprint::of(&[2; 32]);
        assert_eq!(check_known_peer(&dir, "h:1", &a).unwrap(), Trust::Unknown);
        let path = remember_peer(&dir, "h:1", &a).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            check_known_peer(&dir, "h:1", &a).unwrap(),
            Trust::Known { line: 1 }
        );
        let err = check_known_peer(&dir, "h:1", &b).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the key of h:1 does not match line 1 of {}", path.display())
        );
        // A file edited by hand without a final newline still gets lines.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"# edited").unwrap();
        remember_peer(&dir, "[::1]:7777", &b).unwrap();
        assert_eq!(
            check_known_peer(&dir, "[::1]:7777", &b).unwrap(),
            Trust::Known { line: 3 }
        );
        fs::write(&path, "h:1 nonsense\n").unwrap();
        let err = check_known_peer(&dir, "h:1", &a).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("known_peers: line 1 is not valid (expected HOST:PORT FINGERPRINT)"),
            "{err}"
        );
    }

    #[test]
    fn allow_files_are_read_or_refused_with_the_line() {
        let t = TempDir::new("allow");
        let path = t.0.join("allow");
        let a = Fingerprint::of(&[1; 32]);
        fs::write(&path, format!("# ann\n{a}\n")).unwrap();
        assert_eq!(read_allow(&path).unwrap().line_of(&a), Some(2));
        fs::write(&path, "junk\n").unwrap();
        let err = read_allow(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: line 1 is not valid (expected FINGERPRINT)",
                path.display()
            )
        );
        let missing = t.0.join("missing");
        let err = read_allow(&missing).unwrap_err();
        assert!(err.to_string().starts_with("cannot open "), "{err}");
        assert!(
            err.to_string().ends_with("no such file or directory"),
            "{err}"
        );
    }

    #[test]
    fn no_home_is_a_clear_error() {
        assert!(IdentityError::NoHome.to_string().contains("DUET_HOME"));
    }
}
