//! The HTTP API of `docs/PROTOCOL.md`: parses requests, forwards them to the supervisor, and
//! renders its answers. No wasm, no keys and no session state live here. The public service
//! and the admin service (the operators' `/metrics`) are separate apps on separate listeners.

mod body;
mod error;
mod policy;
mod rate;
mod read_budget;

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use actix_http::Request;
use actix_service::{ServiceFactory, map_config};
use actix_web::body::BoxBody;
use actix_web::dev::{AppConfig, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ContentType};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, ResponseError as _, web};
use chrono::DateTime;
use wasm_hypervisor_actors::Error;
use wasm_hypervisor_actors::auditor::LogHealth;
use wasm_hypervisor_actors::auditor::{
    Ask, Auditor, ConsistencyProof, LatestCheckpoint, LeafRange, Question, SessionEntries,
};
use wasm_hypervisor_actors::metrics::Metrics;
use wasm_hypervisor_actors::shares::ClientAddress;
use wasm_hypervisor_actors::supervisor::{
    Admit, CreateSession, Draining, Execute, GetResult, ResultState, Supervisor,
};
use wasm_hypervisor_protocol::api::{
    self, OCTET_STREAM_CONTENT_TYPE, SEALED_REQUEST_CONTENT_TYPE, SessionId, TICKET_HEADER, Ticket,
};
use wasm_hypervisor_protocol::leaf::Leaf;
use wasm_hypervisor_protocol::sealing::{FramingError, SealedRequest};

pub(crate) use body::Bodies;
pub use body::BodyLimits;
pub(crate) use error::{ApiError, canned_response};
pub(crate) use policy::PolicySource;
pub use rate::RateConfig;
pub(crate) use rate::RateLimit;
pub(crate) use read_budget::ReadBudget;

/// Shared by every handler.
pub(crate) struct AppState {
    pub(crate) supervisor: Addr<Supervisor>,
    pub(crate) auditor: Addr<Auditor>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) readiness: Readiness,
    pub(crate) identity: api::Identity,
    /// What `GET /policy` serves.
    pub(crate) policy: PolicySource,
    pub(crate) max_request_bytes: usize,
    /// Bounds the kept results being sent at once.
    pub(crate) result_reads: ReadBudget,
    /// Bounds request bodies in time and bytes.
    pub(crate) bodies: Bodies,
    /// Each address's request rate, if the operator set one.
    pub(crate) rate: Option<Arc<RateLimit>>,
}

/// What `/readyz` checks: the log takes writes and the daemon is not draining.
pub(crate) struct Readiness {
    pub(crate) log_health: LogHealth,
    pub(crate) draining: Draining,
}

/// `POST /sessions` bodies are one short JSON object.
const MAX_SESSION_REQUEST_BYTES: usize = 4096;

/// The public API, for the public listener.
pub(crate) fn public_service(
    state: web::Data<AppState>,
) -> impl ServiceFactory<
    Request,
    Config = (),
    Response = ServiceResponse<BoxBody>,
    Error = actix_web::Error,
    InitError = (),
> {
    let app = App::new()
        .app_data(state)
        .wrap(from_fn(limit_rate))
        .configure(public_routes);
    map_config(app, |()| AppConfig::default())
}

/// The operators' endpoints, for the admin listener: metrics, which say too much about each
/// session to be public, and the probes.
pub(crate) fn admin_service(
    state: web::Data<AppState>,
) -> impl ServiceFactory<
    Request,
    Config = (),
    Response = ServiceResponse<BoxBody>,
    Error = actix_web::Error,
    InitError = (),
> {
    let app = App::new()
        .app_data(state)
        .route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
    map_config(app, |()| AppConfig::default())
}

fn public_routes(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/identity", web::get().to(identity))
        .route("/policy", web::get().to(policy::policy))
        .route("/sessions", web::post().to(create_session))
        .route("/sessions/{session_id}/execute", web::post().to(execute))
        .route("/sessions/{session_id}/result", web::get().to(result))
        .route("/audit/checkpoint", web::get().to(audit_checkpoint))
        .route("/audit/consistency", web::get().to(audit_consistency))
        .route("/audit/entries", web::get().to(audit_entries))
        .route("/audit/{session_id}", web::get().to(audit_session));
}

/// Whom a request's shares are counted against: the connection's peer, which for a trusted
/// proxy's connection is the client its PROXY header named (`edge`); no HTTP header says it.
fn client_address(request: &HttpRequest) -> ClientAddress {
    let unknown = std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED);
    ClientAddress::of(request.peer_addr().map_or(unknown, |peer| peer.ip()))
}

/// The body length the request declares, if it declares one.
fn declared_length(request: &HttpRequest) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// The per-address request rate, first of all checks (§7 `429`); probes are exempt.
async fn limit_rate(
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let is_probe = matches!(request.path(), "/healthz" | "/readyz");
    let state = request.app_data::<web::Data<AppState>>().cloned();
    if let Some(state) = state.filter(|_| !is_probe)
        && let Some(rate) = &state.rate
        && let Err(refused) = rate.check(client_address(request.request()))
    {
        state.metrics.refused("rate");
        return Ok(request.into_response(ApiError(refused).error_response()));
    }
    next.call(request).await
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
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let client = client_address(&request);
    let body = state
        .bodies
        .reserve(client, declared_length(&request), MAX_SESSION_REQUEST_BYTES)?
        .receive(payload)
        .await?
        .bytes;
    let client_nonce = serde_json::from_slice::<api::CreateSession>(&body)
        .ok()
        .and_then(|request| request.client_nonce())
        .ok_or(Error::BadClientNonce)?;
    let created = state
        .supervisor
        .send(CreateSession {
            client,
            client_nonce,
        })
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
    let client = client_address(&request);
    // §4's order: 429 first; then the supervisor's checks, so only a ticket holder makes the
    // daemon read a body; then 408, 413, and 400 for the transfer, the content type and the
    // framing. A late body, or one past its address's room, ends the call here; the others
    // wait for the supervisor's checks, made again now that the body is there.
    let body_place =
        state
            .bodies
            .reserve(client, declared_length(&request), state.max_request_bytes)?;
    state
        .supervisor
        .send(Admit {
            client,
            session_id,
            ticket,
        })
        .await??;
    let (body, place) = match body_place.receive(payload).await {
        Ok(received) => {
            let body = if content_type_ok {
                SealedRequest::parse(received.bytes).map_err(|framing| match framing {
                    FramingError::TooShort => {
                        Error::Malformed("body is shorter than a sealed request")
                    }
                    FramingError::WrongHeader => {
                        Error::Malformed("header differs from the session's key config")
                    }
                })
            } else {
                Err(Error::Malformed("unsupported content type"))
            };
            (body, Some(received.place))
        }
        Err(error @ (Error::PayloadTooLarge { .. } | Error::Malformed(_))) => (Err(error), None),
        Err(error) => return Err(ApiError(error)),
    };
    let answer = state.supervisor.send(Execute {
        client,
        session_id,
        ticket,
        body,
    });
    // The body is the queue's to count from here.
    drop(place);
    let body = answer.await??;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
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
