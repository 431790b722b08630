//! `duet id` with `DUET_HOME` in a temporary directory: the identity is
//! created on first use (0700 directory, 0600 key), the same fingerprint
//! is printed every time, and a key file others can read is refused.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Duet, Stdin};

/// A fresh directory for one test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("duet-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `duet id` with this `DUET_HOME`; returns the exit code, stdout
/// lines and stderr.
fn id(home: &Path) -> (i32, Vec<String>, String) {
    let home = home.to_str().unwrap();
    let mut d = Duet::spawn_with(&["id"], Stdin::Null, &[("DUET_HOME", home)]);
    let out = d.rest();
    let code = d.code();
    (code, out, d.stderr())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn duet_id_creates_the_identity_once_and_prints_its_fingerprint() {
    let t = TempDir::new("id");
    let home = t.0.join("home");
    let (code, out, err) = id(&home);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 1, "{out:?}");
    let fp = &out[0];
    assert!(fp.starts_with("BLAKE2s:") && fp.len() == 8 + 43, "{fp}");
    let key = home.join("key");
    assert_eq!(
        err.trim_end(),
        format!("duet: created a new identity in {}", key.display())
    );
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&key), 0o600);
    // The second time: the same key, and nothing said about it.
    let (code, again, err) = id(&home);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(&again, &out);
    // Another home is another identity.
    let (_, other, _) = id(&t.0.join("other"));
    assert_ne!(other, out);
}

#[test]
fn duet_id_refuses_a_key_file_others_can_read() {
    let t = TempDir::new("id-mode");
    let (code, _, _) = id(&t.0);
    assert_eq!(code, 0);
    let key = t.0.join("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = id(&t.0);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out:?}");
    let k = key.display();
    assert_eq!(
        err.trim_end(),
        format!(
            "duet: the key file {k} is accessible by group or others (mode 0644); run `chmod 600 {k}`"
        )
    );
}
