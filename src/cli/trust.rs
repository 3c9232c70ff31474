//! What the client trusts, per server, in `<client dir>/known-servers.json`: the identity it
//! pinned on first use and the last checkpoint it verified, so that every later answer must be
//! consistent with it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wasm_hypervisor_protocol::encoding::{base64_decode, base64_encode};
use wasm_hypervisor_protocol::identity::IdentityPublicKey;

use super::CliResult;
use crate::client::{PinnedIdentity, SignedCheckpoint};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Known {
    origin: String,
    public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
}

/// The client's trust store, loaded for one server.
pub(crate) struct Trust {
    path: PathBuf,
    known: BTreeMap<String, Known>,
    server: String,
}

impl Trust {
    pub(crate) fn load(client_dir: &Path, server: &str) -> CliResult<Self> {
        let path = client_dir.join("known-servers.json");
        let known = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|error| format!("{} is corrupt: {error}", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(format!("cannot read {}: {error}", path.display()).into()),
        };
        Ok(Self {
            path,
            known,
            server: server.to_owned(),
        })
    }

    /// Trust on first use: the first identity seen for the server is kept and required after.
    pub(crate) fn pin(&mut self, seen: PinnedIdentity) -> CliResult<PinnedIdentity> {
        if let Some(known) = self.known.get(&self.server) {
            let key = base64_decode(&known.public_key)
                .and_then(|key| IdentityPublicKey::from_sec1(&key).ok())
                .ok_or_else(|| {
                    format!(
                        "{} holds an invalid key for {}",
                        self.path.display(),
                        self.server
                    )
                })?;
            let pinned = PinnedIdentity {
                origin: known.origin.clone(),
                key,
            };
            if pinned != seen {
                return Err(format!(
                    "the identity of {} changed (pinned {} in {}); refusing to continue",
                    self.server,
                    pinned.origin,
                    self.path.display()
                )
                .into());
            }
            return Ok(pinned);
        }
        self.known.insert(
            self.server.clone(),
            Known {
                origin: seen.origin.clone(),
                public_key: base64_encode(&seen.key.sec1()),
                checkpoint: None,
            },
        );
        self.save()?;
        eprintln!(
            "wasm-hypervisor: pinned {} as {} (fingerprint {})",
            self.server,
            seen.origin,
            hex::encode(seen.key.fingerprint())
        );
        Ok(seen)
    }

    /// The last checkpoint this client verified for the server, verified again.
    pub(crate) fn checkpoint(
        &self,
        pinned: &PinnedIdentity,
    ) -> CliResult<Option<SignedCheckpoint>> {
        let note = self
            .known
            .get(&self.server)
            .and_then(|known| known.checkpoint.as_ref());
        let Some(note) = note else {
            return Ok(None);
        };
        let signed = SignedCheckpoint::verify(note, pinned).map_err(|error| {
            format!(
                "the trusted checkpoint in {} does not verify: {error}",
                self.path.display()
            )
        })?;
        Ok(Some(signed))
    }

    /// Keeps `signed` if it is newer than the trusted checkpoint; the caller has proved the two
    /// consistent.
    pub(crate) fn remember(
        &mut self,
        pinned: &PinnedIdentity,
        signed: &SignedCheckpoint,
    ) -> CliResult<()> {
        let newer = self
            .checkpoint(pinned)?
            .is_none_or(|trusted| trusted.checkpoint.size < signed.checkpoint.size);
        if newer && let Some(known) = self.known.get_mut(&self.server) {
            known.checkpoint = Some(signed.note.clone());
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> CliResult<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        // Write then rename, so a crash never leaves a half-written trust store.
        let temporary = self.path.with_extension("json.tmp");
        fs::write(&temporary, serde_json::to_vec_pretty(&self.known)?)?;
        fs::rename(&temporary, &self.path)?;
        Ok(())
    }
}
