//! `GET /policy` (PROTOCOL.md §9): the service's list of replicas, from the operator's policy
//! file, read again on each request so that a file written after the replicas made their keys
//! (or a Kubernetes ConfigMap update) takes effect without a restart; without one, a policy of
//! this daemon alone.

use std::path::PathBuf;
use std::sync::Mutex;

use actix_web::{HttpResponse, web};
use wasm_hypervisor_actors::Error;
use wasm_hypervisor_protocol::policy::{Policy, PolicyLog};
use wasm_hypervisor_protocol::verify::PinnedIdentity;

use crate::policy_file;

use super::{ApiError, AppState};

/// Where the served policy comes from.
pub(crate) enum PolicySource {
    /// No file: this daemon alone, as `log <vkey>` without a URL, which §9 reads as "the URL
    /// the policy came from". The daemon cannot know the URL its clients reach it by.
    Own(String),
    /// The operator's file, and what the last read of it gave (its text, or why it has
    /// none), so that each change is logged once rather than on every request.
    File {
        path: PathBuf,
        own: PinnedIdentity,
        last: Mutex<Option<Result<String, String>>>,
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
        let read = policy_file::read(path);
        let outcome = read
            .as_ref()
            .map(|(text, _)| text.clone())
            .map_err(Clone::clone);
        let mut last = last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.as_ref() != Some(&outcome) {
            match &read {
                Ok((_, policy)) if !policy.logs().iter().any(|log| log.identity == *own) => {
                    log::warn!(
                        "the policy file {} does not list this daemon ({}): its clients will refuse its announcements",
                        path.display(),
                        own.origin
                    );
                }
                Ok(_) => log::info!("serving the policy file {}", path.display()),
                Err(reason) => log::warn!("{reason}: GET /policy answers 503 until it is fixed"),
            }
            *last = Some(outcome.clone());
        }
        outcome.map_err(|_| Error::PolicyUnavailable)
    }
}

/// `GET /policy` → `200 text/plain`, a file read on a blocking thread.
pub(crate) async fn policy(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = match &state.policy {
        PolicySource::Own(text) => text.clone(),
        PolicySource::File { .. } => web::block(move || state.policy.read())
            .await
            .map_err(|_| ApiError(Error::PolicyUnavailable))??,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}
