//! Whom an encrypted chat trusts: this side's identity (its key, from
//! `$DUET_HOME`), and the check of the peer's key once the Noise handshake
//! has proved it. A client accepts the key `--peer` pins, else the one
//! `known_peers` names for `HOST:PORT`, remembering a new peer's key on
//! first contact (trust on first use, as ssh does); a server with
//! `--allow FILE` accepts only the keys listed there. The rules on the file
//! formats are `core::identity`'s; this module reads and appends the files.

use std::path::PathBuf;

use crate::core::identity::{AllowList, Fingerprint, SafetyCode, Trust as Known, safety_code};
use crate::core::session::SessionError;
use crate::core::transport::KEY_LEN;
use crate::os::error::Error;
use crate::os::identity::{self, Identity, IdentityError};
use crate::os::options::Security;

/// A peer whose key was checked: what the person is shown.
#[derive(Debug, Clone)]
pub struct Verified {
    pub fingerprint: Fingerprint,
    pub safety: SafetyCode,
    /// First contact: the key was added to this `known_peers` file.
    pub remembered: Option<PathBuf>,
}

/// This side's identity and what it accepts.
pub struct Trust {
    home: PathBuf,
    identity: Identity,
    pin: Option<Fingerprint>,
    allow: Option<(PathBuf, AllowList)>,
}

impl Trust {
    /// The identity and rules for `security`; `None` with `--plain`. Fails
    /// (one line) when the key file cannot be made or is readable by
    /// others, or the allow file cannot be read.
    pub fn load(security: &Security) -> Result<Option<Trust>, Error> {
        let Security::Noise { pin, allow } = security else {
            return Ok(None);
        };
        let home = identity::home().map_err(Error::Identity)?;
        let identity = identity::load_or_create(&home).map_err(Error::Identity)?;
        let allow = match allow {
            Some(path) => Some((
                path.clone(),
                identity::read_allow(path).map_err(Error::Identity)?,
            )),
            None => None,
        };
        Ok(Some(Trust {
            home,
            identity,
            pin: *pin,
            allow,
        }))
    }

    /// Our static private key, for the Noise handshake.
    pub fn private_key(&self) -> &[u8; KEY_LEN] {
        self.identity.private_key()
    }

    /// A client's check of the server it reached as `peer` (`HOST:PORT`):
    /// [`SessionError::KeyRefused`] for a key that is not the one expected,
    /// [`SessionError::KeyCheck`] when `known_peers` cannot be read, parsed
    /// or appended to (a problem here, not the peer's).
    pub fn check_server(&self, peer: &str, key: &[u8; KEY_LEN]) -> Result<Verified, SessionError> {
        let fingerprint = Fingerprint::of(key);
        let mut remembered = None;
        match &self.pin {
            Some(pin) if *pin != fingerprint => {
                return Err(SessionError::KeyRefused(format!(
                    "the key of {peer} is {fingerprint}, not the one given with --peer ({pin})"
                )));
            }
            Some(_) => {}
            None => match identity::check_known_peer(&self.home, peer, &fingerprint) {
                Ok(Known::Known { .. }) => {}
                Ok(Known::Unknown) => {
                    let path =
                        identity::remember_peer(&self.home, peer, &fingerprint).map_err(|e| {
                            SessionError::KeyCheck(format!(
                                "cannot remember the key of {peer}: {e}"
                            ))
                        })?;
                    remembered = Some(path);
                }
                Err(e @ IdentityError::KeyChanged { .. }) => {
                    return Err(SessionError::KeyRefused(format!(
                        "{e}; the server now shows {fingerprint}"
                    )));
                }
                // check_known_peer reports a change as the error above.
                Ok(Known::Changed { line }) => {
                    return Err(SessionError::KeyRefused(format!(
                        "the key of {peer} does not match line {line} of known_peers; \
                         the server now shows {fingerprint}"
                    )));
                }
                Err(e) => {
                    return Err(SessionError::KeyCheck(format!(
                        "cannot check the key of {peer}: {e}"
                    )));
                }
            },
        }
        Ok(self.verified(fingerprint, key, remembered))
    }

    /// A server's check of a client's key against `--allow`, if given.
    pub fn check_client(&self, key: &[u8; KEY_LEN]) -> Result<Verified, SessionError> {
        let fingerprint = Fingerprint::of(key);
        if let Some((path, list)) = &self.allow
            && list.line_of(&fingerprint).is_none()
        {
            return Err(SessionError::KeyRefused(format!(
                "key {fingerprint} is not in {} (--allow)",
                path.display()
            )));
        }
        Ok(self.verified(fingerprint, key, None))
    }

    fn verified(
        &self,
        fingerprint: Fingerprint,
        key: &[u8; KEY_LEN],
        remembered: Option<PathBuf>,
    ) -> Verified {
        Verified {
            fingerprint,
            safety: safety_code(self.identity.public_key(), key),
            remembered,
        }
    }
}
