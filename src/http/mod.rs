//! The HTTP API of `docs/PROTOCOL.md`: parses requests, forwards them to the supervisor, and
//! renders its answers. No wasm, no keys and no session state live here.

mod error;
mod read_budget;

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use actix_web::http::header::{CONTENT_TYPE, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::DateTime;
use futures_util::StreamExt as _;
use wasm_hypervisor_actors::Error;
use wasm_hypervisor_actors::auditor::LogHealth;
use wasm_hypervisor_actors::auditor::{
    Ask, Auditor, ConsistencyProof, LatestCheckpoint, LeafRange, Question, SessionEntries,
};
use wasm_hypervisor_actors::metrics::Metrics;
use wasm_hypervisor_actors::supervisor::{
    Admit, CreateSession, Draining, Execute, GetResult, ResultState, Supervisor,
};
use wasm_hypervisor_protocol::api::{
    self, OCTET_STREAM_CONTENT_TYPE, SEALED_REQUEST_CONTENT_TYPE, SessionId, TICKET_HEADER, Ticket,
};
use wasm_hypervisor_protocol::leaf::Leaf;
use wasm_hypervisor_protocol::sealing::{FramingError, SealedRequest};

pub(crate) use error::ApiError;
pub(crate) use read_budget::ReadBudget;

/// Shared by every handler.
pub(crate) struct AppState {
    pub(crate) supervisor: Addr<Supervisor>,
    pub(crate) auditor: Addr<Auditor>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) readiness: Readiness,
    pub(crate) identity: api::Identity,
    pub(crate) max_request_bytes: usize,
    /// Bounds the kept results being sent at once.
    pub(crate) result_reads: ReadBudget,
}

/// What `/readyz` checks: the log takes writes and the daemon is not draining.
pub(crate) struct Readiness {
    pub(crate) log_health: LogHealth,
    pub(crate) draining: Draining,
}

/// `POST /sessions` bodies are one short JSON object.
const MAX_SESSION_REQUEST_BYTES: usize = 4096;

pub(crate) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/identity", web::get().to(identity))
        .route("/sessions", web::post().to(create_session))
        .route("/sessions/{session_id}/execute", web::post().to(execute))
        .route("/sessions/{session_id}/result", web::get().to(result))
        .route("/audit/checkpoint", web::get().to(audit_checkpoint))
        .route("/audit/consistency", web::get().to(audit_consistency))
        .route("/audit/entries", web::get().to(audit_entries))
        .route("/audit/{session_id}", web::get().to(audit_session));
}

/// Alive: the HTTP layer answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Ready: the audit log takes writes and the daemon takes new sessions.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let readiness = &state.readiness;
    let problem = if readiness.draining.is_draining() {
        Some("the daemon is stopping: it takes no new sessions")
    } else if !readiness.log_health.is_writable() {
        Some("the audit log is not writable")
    } else {
        None
    };
    match problem {
        None => HttpResponse::Ok().json(serde_json::json!({"ready": true})),
        Some(reason) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"ready": false, "reason": reason})),
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}

async fn identity(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.identity)
}

async fn create_session(
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, MAX_SESSION_REQUEST_BYTES).await?;
    let client_nonce = serde_json::from_slice::<api::CreateSession>(&body)
        .ok()
        .and_then(|request| request.client_nonce())
        .ok_or(Error::BadClientNonce)?;
    let created = state
        .supervisor
        .send(CreateSession { client_nonce })
        .await??;
    let expires_at = i64::try_from(created.expires_at)
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    Ok(HttpResponse::Created().json(api::SessionCreated {
        session_id: created.session_id.to_string(),
        expires_at,
        announcement: created.tbs.to_vec(),
        signature: created.signature,
    }))
}

/// The session named by a URL; any text but the canonical form names none (`404`).
fn session_id(path: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(path).ok_or(ApiError(Error::SessionNotFound))
}

async fn execute(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let content_type_ok = header(CONTENT_TYPE.as_str()).is_some_and(|value| {
        let media_type = value.split(';').next().unwrap_or_default().trim();
        [SEALED_REQUEST_CONTENT_TYPE, OCTET_STREAM_CONTENT_TYPE]
            .iter()
            .any(|accepted| media_type.eq_ignore_ascii_case(accepted))
    });
    let session_id = session_id(&path)?;
    let ticket = header(TICKET_HEADER).and_then(Ticket::parse);
    // Only a ticket holder makes the daemon read a body.
    state
        .supervisor
        .send(Admit { session_id, ticket })
        .await??;
    // §4's order past the supervisor's checks: 413, then 400 for the transfer, the content
    // type and the framing.
    let body = read_limited(payload, state.max_request_bytes)
        .await
        .map_err(|ApiError(error)| error)
        .and_then(|bytes| {
            if !content_type_ok {
                return Err(Error::Malformed("unsupported content type"));
            }
            SealedRequest::parse(bytes).map_err(|framing| match framing {
                FramingError::TooShort => Error::Malformed("body is shorter than a sealed request"),
                FramingError::WrongHeader => {
                    Error::Malformed("header differs from the session's key config")
                }
            })
        });
    let message = Execute {
        session_id,
        ticket,
        body,
    };
    let body = state.supervisor.send(message).await??;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

/// Reads at most `max_bytes`; a longer body is not read further, so it costs no more memory.
async fn read_limited(mut payload: web::Payload, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return Err(ApiError(Error::Malformed(
                "the request body could not be read",
            )));
        };
        if body.len() + chunk.len() > max_bytes {
            return Err(ApiError(Error::PayloadTooLarge { max_bytes }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn result(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session_id = session_id(&path)?;
    let answer = state.supervisor.send(GetResult { session_id }).await??;
    Ok(match answer {
        ResultState::Running(session_id) => HttpResponse::Accepted().json(api::Running {
            session_id: session_id.to_string(),
            outcome: "running".to_owned(),
        }),
        ResultState::Finished(body) => HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(state.result_reads.reserve(body)?),
    })
}

async fn ask<Q: Question>(state: &AppState, question: Q) -> Result<Q::Answer, ApiError> {
    Ok(state
        .auditor
        .send(Ask(question))
        .await?
        .map_err(Error::from)?)
}

async fn audit_checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let note = ask(&state, LatestCheckpoint).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(note))
}

/// A query parameter that must be a decimal u64.
fn number(
    query: &HashMap<String, String>,
    name: &'static str,
    problem: &'static str,
) -> Result<u64, ApiError> {
    query
        .get(name)
        .and_then(|value| value.parse().ok())
        .ok_or(ApiError(Error::AuditQuery(problem)))
}

async fn audit_consistency(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let old = number(&query, "old", "`old` must be a number")?;
    let new = number(&query, "new", "`new` must be a number")?;
    let proof = ask(&state, ConsistencyProof { old, new }).await?;
    Ok(HttpResponse::Ok().json(api::Consistency { old, new, proof }))
}

async fn audit_entries(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let start = number(&query, "start", "`start` must be a number")?;
    let end = number(&query, "end", "`end` must be a number")?;
    let entries = ask(&state, LeafRange { start, end }).await?;
    Ok(HttpResponse::Ok().json(api::Entries {
        entries: entries
            .into_iter()
            .map(|(index, leaf)| api::LeafAt { index, leaf })
            .collect(),
    }))
}

async fn audit_session(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session_id = session_id(&path)?;
    let proven = ask(&state, SessionEntries(session_id.0)).await?;
    if proven.entries.is_empty() {
        return Err(ApiError(Error::SessionNotFound));
    }
    let entries = proven
        .entries
        .into_iter()
        .map(|entry| api::AuditEntry {
            index: entry.index,
            record: Leaf::decode(&entry.leaf)
                .map(|leaf| api::leaf_record(&leaf))
                .unwrap_or_default(),
            leaf: entry.leaf,
            inclusion_proof: entry.inclusion_proof,
        })
        .collect();
    Ok(HttpResponse::Ok().json(api::SessionAudit {
        session_id: session_id.to_string(),
        entries,
        checkpoint: proven.checkpoint,
    }))
}
