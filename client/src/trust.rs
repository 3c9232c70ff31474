//! What a client trusts, in `<client dir>/trust.json`: for each service, keyed by its
//! normalized URL ([`ServiceUrl`]), its pinned policy (PROTOCOL.md §9) as the identities it
//! lists (origin → key and the replica's URL, §2) and each one's last trusted checkpoint (§6).
//! A standalone daemon is a one-log policy without a URL; a replicated service has one
//! identity per replica, each with its own log, hence a map.
//!
//! Every change is a read-modify-write under an exclusive lock on `trust.json.lock`, written
//! to a unique temporary file in the same directory, synced, and renamed over `trust.json`, so
//! concurrent runs neither lose each other's changes nor leave a torn file.
//!
//! ```json
//! { "version": 1,
//!   "services": {
//!     "http://127.0.0.1:8080/": {
//!       "identities": {
//!         "wasm-hypervisor/3f9a1c2e5b7d9f01": {
//!           "public_key": "<base64 SEC1>",
//!           "fingerprint": "<hex H3(SEC1)>",
//!           "url": "<the replica's base URL; absent: the service URL>",
//!           "checkpoint": "<signed note>" } } } } }
//! ```
//!
//! Version 2 added `url`. A version 1 store, whose identities were pinned from `GET
//! /identity`, is read as version 2 without URLs, which is exactly the policy a standalone
//! daemon serves; it is written back as version 2 on its next change, which older clients
//! refuse as an unknown version rather than misread.
//!
//! The store replaces `known-servers.json` (keyed by the URL as typed, so `http://h:p/` and
//! `http://h:p` were two services): when `trust.json` does not exist yet, that file is read
//! once, its keys normalized, and left as it was.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wasm_hypervisor_protocol::checkpoint::Checkpoint;
use wasm_hypervisor_protocol::encoding::{base64_decode, base64_encode};
use wasm_hypervisor_protocol::identity::IdentityPublicKey;
use wasm_hypervisor_protocol::policy::{Policy, PolicyLog};
use wasm_hypervisor_protocol::verify::{PinnedIdentity, SignedCheckpoint};

/// The store's file name in the client directory.
pub const FILE_NAME: &str = "trust.json";
/// The lock every change holds.
const LOCK_NAME: &str = "trust.json.lock";
/// The store this one replaces, read once if `trust.json` does not exist.
const LEGACY_NAME: &str = "known-servers.json";
const VERSION: u32 = 2;
/// The version before replicas' URLs, still read.
const VERSION_WITHOUT_URLS: u32 = 1;

/// Why the trust store could not answer, or refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file of the store cannot be read or written.
    #[error("cannot use the trust store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file does not hold a trust store, or holds one that does not verify.
    #[error("the trust store {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The service answered with an identity other than the one pinned for it.
    #[error(
        "the identity of {service} changed: it is now {seen}, but {pinned} is pinned in {path}; refusing to continue"
    )]
    IdentityChanged {
        /// The service.
        service: ServiceUrl,
        /// The origins pinned for it.
        pinned: String,
        /// The origin it answered with.
        seen: String,
        /// The store.
        path: PathBuf,
    },
    /// The service's policy is not the one pinned for it.
    #[error(
        "the policy of {service} changed: it now lists {seen}, but {pinned} is pinned in {path}; refusing to continue (if the change is genuine, compare the new policy out of band, then remove the service's entry from that file)"
    )]
    PolicyChanged {
        /// The service.
        service: ServiceUrl,
        /// The logs pinned for it.
        pinned: String,
        /// The logs of the policy it has now.
        seen: String,
        /// The store.
        path: PathBuf,
    },
    /// A checkpoint was to be kept for an identity the service has not pinned.
    #[error("{origin} is not pinned for {service}")]
    NotPinned {
        /// The service.
        service: ServiceUrl,
        /// The identity's origin.
        origin: String,
    },
    /// Other runs kept changing the store while this one tried to update it.
    #[error("the trust store {0} kept changing under this run; try again")]
    Busy(PathBuf),
}

/// A service's base URL in one spelling: scheme and host lowercase, the scheme's default port
/// left out, and the path ending in exactly one `/` (so `HTTP://Host:80`, `http://host/` and
/// `http://host//` are all `http://host/`). Only `http` and `https` URLs with a host and no
/// user, query or fragment are service URLs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceUrl(String);

/// A text that is not a service URL.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{text}` is not a service URL: {reason}")]
pub struct InvalidServiceUrl {
    text: String,
    reason: String,
}

impl ServiceUrl {
    /// The normalized form of `text`.
    pub fn parse(text: &str) -> Result<Self, InvalidServiceUrl> {
        let invalid = |reason: &str| InvalidServiceUrl {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut url = url::Url::parse(text.trim()).map_err(|error| invalid(&error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme is not http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("it carries credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it has a query or a fragment"));
        }
        let path = format!("{}/", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(Self(url.into()))
    }

    /// The URL, ending in `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ServiceUrl {
    type Err = InvalidServiceUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// What [`TrustStore::compare_and_swap`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// The new checkpoint is the trusted one now.
    Done,
    /// The trusted checkpoint was no longer the expected one: nothing was written.
    Changed,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contents {
    version: u32,
    services: BTreeMap<String, Service>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    /// By origin.
    identities: BTreeMap<String, Identity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    public_key: String,
    /// For comparing out of band; checked against the key on every read.
    fingerprint: String,
    /// The replica's base URL as the policy gave it; none: the service URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
}

impl Identity {
    fn new(identity: &PinnedIdentity) -> Self {
        Self {
            public_key: base64_encode(&identity.key.sec1()),
            fingerprint: hex::encode(identity.fingerprint()),
            url: None,
            checkpoint: None,
        }
    }
}

/// The legacy `known-servers.json` entry.
#[derive(Debug, Deserialize)]
struct Legacy {
    origin: String,
    public_key: String,
    #[serde(default)]
    checkpoint: Option<String>,
}

/// The client's trust store: one JSON file, changed only under its lock.
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: PathBuf,
}

impl TrustStore {
    /// The store `trust.json` in `client_dir` (created on the first change).
    pub fn in_dir(client_dir: &Path) -> Self {
        Self {
            path: client_dir.join(FILE_NAME),
        }
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Trust on first use: pins `seen` for `service` if the service has no identity yet, and
    /// returns whether it did; otherwise requires `seen` to be one of the identities pinned for
    /// it (same origin, same key).
    pub fn pin(&self, service: &ServiceUrl, seen: &PinnedIdentity) -> Result<bool, TrustError> {
        self.change(|contents, path| {
            let entry = contents.services.entry(service.0.clone()).or_default();
            if entry.identities.is_empty() {
                entry
                    .identities
                    .insert(seen.origin.clone(), Identity::new(seen));
                return Ok((true, true));
            }
            match entry.identities.get(&seen.origin) {
                Some(known) if key_of(known, path)? == seen.key => Ok((false, false)),
                _ => Err(TrustError::IdentityChanged {
                    service: service.clone(),
                    pinned: entry
                        .identities
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    seen: seen.origin.clone(),
                    path: path.to_owned(),
                }),
            }
        })
    }

    /// Trust on first use of a policy: pins `seen`'s logs for `service` if the service has no
    /// identity yet, and returns whether it did; otherwise requires `seen` to list exactly the
    /// pinned logs (same origins, keys and URLs, in any order), and keeps their checkpoints.
    pub fn pin_policy(&self, service: &ServiceUrl, seen: &Policy) -> Result<bool, TrustError> {
        self.change(|contents, path| {
            let entry = contents.services.entry(service.0.clone()).or_default();
            if entry.identities.is_empty() {
                for log in seen.logs() {
                    let mut known = Identity::new(&log.identity);
                    known.url.clone_from(&log.url);
                    entry.identities.insert(log.identity.origin.clone(), known);
                }
                return Ok((true, true));
            }
            let pinned = policy_of(entry, path)?;
            if pinned.same_logs(seen) {
                return Ok((false, false));
            }
            Err(TrustError::PolicyChanged {
                service: service.clone(),
                pinned: describe(&pinned),
                seen: describe(seen),
                path: path.to_owned(),
            })
        })
    }

    /// The policy pinned for `service`, none before its first use.
    pub fn policy(&self, service: &ServiceUrl) -> Result<Option<Policy>, TrustError> {
        self.read(|contents, path| {
            contents
                .services
                .get(&service.0)
                .filter(|entry| !entry.identities.is_empty())
                .map(|entry| policy_of(entry, path))
                .transpose()
        })
    }

    /// The identities pinned for `service`, none before its first use.
    pub fn identities(&self, service: &ServiceUrl) -> Result<Vec<PinnedIdentity>, TrustError> {
        self.read(|contents, path| {
            let Some(entry) = contents.services.get(&service.0) else {
                return Ok(Vec::new());
            };
            entry
                .identities
                .iter()
                .map(|(origin, known)| {
                    Ok(PinnedIdentity {
                        origin: origin.clone(),
                        key: key_of(known, path)?,
                    })
                })
                .collect()
        })
    }

    /// The last checkpoint trusted for `identity` at `service`, verified again against it.
    pub fn checkpoint(
        &self,
        service: &ServiceUrl,
        identity: &PinnedIdentity,
    ) -> Result<Option<SignedCheckpoint>, TrustError> {
        self.read(|contents, path| {
            let note = contents
                .services
                .get(&service.0)
                .and_then(|entry| entry.identities.get(&identity.origin))
                .and_then(|known| known.checkpoint.as_deref());
            note.map(|note| {
                SignedCheckpoint::verify(note, identity).map_err(|error| TrustError::Corrupt {
                    path: path.to_owned(),
                    reason: format!(
                        "the checkpoint trusted for {} does not verify: {error}",
                        identity.origin
                    ),
                })
            })
            .transpose()
        })
    }

    /// Makes `new` the trusted checkpoint of `identity` at `service` if the trusted one is
    /// still `expected` (`None`: none yet); the caller has proved that `new` extends `expected`.
    /// Another run that changed it meanwhile makes this [`Swap::Changed`], and nothing is
    /// written.
    pub fn compare_and_swap(
        &self,
        service: &ServiceUrl,
        identity: &PinnedIdentity,
        expected: Option<&Checkpoint>,
        new: &SignedCheckpoint,
    ) -> Result<Swap, TrustError> {
        if !new.is_signed_by(identity) {
            return Err(TrustError::NotPinned {
                service: service.clone(),
                origin: new.checkpoint.origin.clone(),
            });
        }
        self.change(|contents, path| {
            let known = contents
                .services
                .get_mut(&service.0)
                .and_then(|entry| entry.identities.get_mut(&identity.origin))
                .filter(|known| key_of(known, path).is_ok_and(|key| key == identity.key))
                .ok_or_else(|| TrustError::NotPinned {
                    service: service.clone(),
                    origin: identity.origin.clone(),
                })?;
            let current = known
                .checkpoint
                .as_deref()
                .map(|note| SignedCheckpoint::verify(note, identity))
                .transpose()
                .map_err(|error| TrustError::Corrupt {
                    path: path.to_owned(),
                    reason: error.to_string(),
                })?;
            if current.as_ref().map(|current| &current.checkpoint) != expected {
                return Ok((Swap::Changed, false));
            }
            known.checkpoint = Some(new.note().to_owned());
            Ok((Swap::Done, true))
        })
    }

    /// Reads the store under its lock.
    fn read<T>(
        &self,
        f: impl FnOnce(&Contents, &Path) -> Result<T, TrustError>,
    ) -> Result<T, TrustError> {
        self.change(|contents, path| f(contents, path).map(|value| (value, false)))
    }

    /// Runs `f` on the store under its lock and writes the store back if `f` says it changed
    /// it (or it was just migrated from the legacy file).
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Contents, &Path) -> Result<(T, bool), TrustError>,
    ) -> Result<T, TrustError> {
        let dir = self.dir();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TrustError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let (mut contents, migrated) = self.load()?;
        let (value, changed) = f(&mut contents, &self.path)?;
        if changed || migrated {
            self.write(&contents)?;
        }
        // Closing the lock file releases the lock.
        drop(lock);
        Ok(value)
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
    }

    /// The store's contents, and whether they come from the legacy file.
    fn load(&self) -> Result<(Contents, bool), TrustError> {
        let corrupt = |reason: String| TrustError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        match fs::read(&self.path) {
            Ok(bytes) => {
                let contents: Contents =
                    serde_json::from_slice(&bytes).map_err(|error| corrupt(error.to_string()))?;
                if ![VERSION, VERSION_WITHOUT_URLS].contains(&contents.version) {
                    return Err(corrupt(format!("unknown version {}", contents.version)));
                }
                for entry in contents.services.values() {
                    for known in entry.identities.values() {
                        key_of(known, &self.path)?;
                    }
                }
                // Version 1 is version 2 without URLs: written as 2 on the next change only.
                let contents = Contents {
                    version: VERSION,
                    ..contents
                };
                Ok((contents, false))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let contents = self.migrate()?;
                let migrated = !contents.services.is_empty();
                Ok((contents, migrated))
            }
            Err(source) => Err(TrustError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// The legacy `known-servers.json`, if there is one, with its keys normalized. Two
    /// spellings of one service that pinned different identities are refused; with the same
    /// identity, the larger checkpoint is kept.
    fn migrate(&self) -> Result<Contents, TrustError> {
        let legacy_path = self.dir().join(LEGACY_NAME);
        let corrupt = |reason: String| TrustError::Corrupt {
            path: legacy_path.clone(),
            reason,
        };
        let bytes = match fs::read(&legacy_path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Contents {
                    version: VERSION,
                    services: BTreeMap::new(),
                });
            }
            Err(source) => {
                return Err(TrustError::Io {
                    path: legacy_path,
                    source,
                });
            }
        };
        let legacy: BTreeMap<String, Legacy> =
            serde_json::from_slice(&bytes).map_err(|error| corrupt(error.to_string()))?;
        let mut contents = Contents {
            version: VERSION,
            services: BTreeMap::new(),
        };
        for (url, old) in legacy {
            let service = ServiceUrl::parse(&url).map_err(|error| corrupt(error.to_string()))?;
            let key = base64_decode(&old.public_key)
                .and_then(|key| IdentityPublicKey::from_sec1(&key).ok())
                .ok_or_else(|| corrupt(format!("invalid key for {url}")))?;
            let identity = PinnedIdentity {
                origin: old.origin,
                key,
            };
            let checkpoint = old
                .checkpoint
                .map(|note| SignedCheckpoint::verify(&note, &identity))
                .transpose()
                .map_err(|error| corrupt(format!("{url}: {error}")))?;
            let entry = contents.services.entry(service.0.clone()).or_default();
            if let Some((origin, _)) = entry.identities.iter().next()
                && *origin != identity.origin
            {
                return Err(corrupt(format!(
                    "two spellings of {service} pinned two identities, {origin} and {}; keep one",
                    identity.origin
                )));
            }
            let known = entry
                .identities
                .entry(identity.origin.clone())
                .or_insert_with(|| Identity::new(&identity));
            if key_of(known, &legacy_path)? != identity.key {
                return Err(corrupt(format!(
                    "two spellings of {service} pinned two keys for {}; keep one",
                    identity.origin
                )));
            }
            let kept = known
                .checkpoint
                .as_deref()
                .map(|note| SignedCheckpoint::verify(note, &identity))
                .transpose()
                .map_err(|error| corrupt(error.to_string()))?;
            match (kept, checkpoint) {
                (Some(kept), Some(new)) if kept.checkpoint.size == new.checkpoint.size => {
                    if kept.checkpoint.root != new.checkpoint.root {
                        return Err(corrupt(format!(
                            "two spellings of {service} trusted two trees of size {}",
                            new.checkpoint.size
                        )));
                    }
                }
                (Some(kept), Some(new)) if kept.checkpoint.size > new.checkpoint.size => {}
                (_, Some(new)) => known.checkpoint = Some(new.note().to_owned()),
                (_, None) => {}
            }
        }
        Ok(contents)
    }

    /// A unique temporary file beside the store, synced, then renamed over it.
    fn write(&self, contents: &Contents) -> Result<(), TrustError> {
        let dir = self.dir();
        let io = |source| TrustError::Io {
            path: self.path.clone(),
            source,
        };
        let mut json = serde_json::to_vec_pretty(contents).expect("the store serializes");
        json.push(b'\n');
        let mut temporary = tempfile::Builder::new()
            .prefix(".trust.json.")
            .tempfile_in(dir)
            .map_err(io)?;
        temporary.write_all(&json).map_err(io)?;
        temporary.as_file().sync_all().map_err(io)?;
        temporary
            .persist(&self.path)
            .map_err(|error| io(error.error))?;
        // The rename is durable once the directory is.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// The policy a service's pinned identities make.
fn policy_of(entry: &Service, path: &Path) -> Result<Policy, TrustError> {
    let logs = entry
        .identities
        .iter()
        .map(|(origin, known)| {
            Ok(PolicyLog {
                identity: PinnedIdentity {
                    origin: origin.clone(),
                    key: key_of(known, path)?,
                },
                url: known.url.clone(),
            })
        })
        .collect::<Result<_, TrustError>>()?;
    Policy::new(logs).map_err(|error| TrustError::Corrupt {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}

/// `origin at URL, …` for a message.
fn describe(policy: &Policy) -> String {
    policy
        .logs()
        .iter()
        .map(|log| match &log.url {
            Some(url) => format!("{} at {url}", log.identity.origin),
            None => log.identity.origin.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key of a stored identity, checked against its stored fingerprint.
fn key_of(known: &Identity, path: &Path) -> Result<IdentityPublicKey, TrustError> {
    base64_decode(&known.public_key)
        .and_then(|key| IdentityPublicKey::from_sec1(&key).ok())
        .filter(|key| hex::encode(key.fingerprint()) == known.fingerprint)
        .ok_or_else(|| TrustError::Corrupt {
            path: path.to_owned(),
            reason: "a pinned key is invalid or does not match its fingerprint".into(),
        })
}

#[cfg(test)]
mod tests;
