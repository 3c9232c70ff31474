//! `GET /policy` (PROTOCOL.md §9): the service's list of replicas, from the operator's policy
//! file, read again on each request so that a file written after the replicas made their keys
//! (or a Kubernetes ConfigMap update) takes effect without a restart; without one, a policy of
//! this daemon alone.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use actix_web::{HttpResponse, web};
use wasm_hypervisor_actors::Error;
use wasm_hypervisor_protocol::policy::{MAX_POLICY_BYTES, Policy, PolicyLog};
use wasm_hypervisor_protocol::verify::PinnedIdentity;

use super::{ApiError, AppState};

/// Where the served policy comes from.
pub(crate) enum PolicySource {
    /// No file: this daemon alone, as `log <vkey>` without a URL, which §9 reads as "the URL
    /// the policy came from". The daemon cannot know the URL its clients reach it by.
    Own(String),
    /// The operator's file, and the last text read from it, so that a policy that leaves this
    /// daemon out is logged once per change rather than on every request.
    File {
        path: PathBuf,
        own: PinnedIdentity,
        last: Mutex<Option<String>>,
    },
}

impl PolicySource {
    /// The source for the daemon of identity `own`.
    pub(crate) fn new(path: Option<PathBuf>, own: PinnedIdentity) -> Self {
        match path {
            None => {
                let policy = Policy::new(vec![PolicyLog {
                    identity: own,
                    url: None,
                }])
                .expect("one log is a valid policy");
                Self::Own(policy.to_string())
            }
            Some(path) => {
                let source = Self::File {
                    path,
                    own,
                    last: Mutex::new(None),
                };
                // Said at start, when an operator looks; a file not there yet is not an error.
                let _ = source.read();
                source
            }
        }
    }

    /// The policy text to serve; blocking when it is a file.
    fn read(&self) -> Result<String, Error> {
        let (path, own, last) = match self {
            Self::Own(text) => return Ok(text.clone()),
            Self::File { path, own, last } => (path, own, last),
        };
        let text = read_bounded(path).map_err(|reason| {
            log::error!("policy file {}: {reason}", path.display());
            Error::PolicyUnavailable
        })?;
        let policy = Policy::parse(text.as_bytes()).map_err(|error| {
            log::error!("policy file {}: {error}", path.display());
            Error::PolicyUnavailable
        })?;
        let mut last = last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.as_deref() != Some(text.as_str()) {
            if !policy.logs().iter().any(|log| log.identity == *own) {
                log::warn!(
                    "policy file {} does not list this daemon ({}): its clients will refuse its announcements",
                    path.display(),
                    own.origin
                );
            }
            *last = Some(text.clone());
        }
        Ok(text)
    }
}

/// The file's text, refused past [`MAX_POLICY_BYTES`] without reading further.
fn read_bounded(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(format!("longer than {MAX_POLICY_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())
}

/// `GET /policy` → `200 text/plain`, the file read on a blocking thread.
pub(crate) async fn policy(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = web::block(move || state.policy.read())
        .await
        .map_err(|_| ApiError(Error::PolicyUnavailable))??;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}
