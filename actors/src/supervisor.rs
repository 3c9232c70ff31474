//! The supervisor actor: owns the session table (keys, expiry, single use, retained results),
//! admits or refuses work, and starts one executor per consumed session.
//!
//! Every check of §4 happens here, in one handler, so their order is the protocol's order and
//! no two requests can both consume a session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use uuid::Uuid;
use wasm_hypervisor_protocol::announcement::{Announcement, TBS_LEN};
use wasm_hypervisor_protocol::api::session_id_from_text;
use wasm_hypervisor_protocol::commitment::{self, ABSENT, Digest};
use wasm_hypervisor_protocol::encoding::hex_decode;
use wasm_hypervisor_protocol::identity::IdentityKey;
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome, RequestLeaf, ResultLeaf};
use wasm_hypervisor_protocol::sealing::{HEADER, MIN_REQUEST_LEN, SessionKeyPair};
use zeroize::Zeroizing;

use crate::auditor::audit_log::unix_millis;
use crate::auditor::{Append, Appended, Ask, Auditor, LogHealth, SessionEntries};
use crate::error::Error;
use crate::executor::{Executor, WasmWorker};
use crate::metrics::Metrics;
use crate::os_random;
use crate::session::{Finished, Job, Sealed};

/// The supervisor's settings.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// How long a session may wait for its execute call. Default: 60 s.
    pub session_ttl: Duration,
    /// How long a finished session's result (or error) stays available. Default: 10 min.
    pub result_retention: Duration,
    /// Sessions announced but not yet executed. Default: 10 000.
    pub max_open_sessions: usize,
    /// Executions running or waiting for a worker. Default: 4 × the worker threads.
    pub max_pending_executions: usize,
    /// Largest accepted `enc_request`. Default: 16 MiB.
    pub max_request_bytes: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(60),
            result_retention: Duration::from_secs(600),
            max_open_sessions: 10_000,
            max_pending_executions: 4 * default_worker_threads(),
            max_request_bytes: 16 << 20,
        }
    }
}

/// One per core.
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// How long a refused client should wait before retrying.
const RETRY_AFTER_SECS: u32 = 1;

/// Owns every session: creates and announces them, admits and consumes them, and keeps results.
pub struct Supervisor {
    config: SupervisorConfig,
    identity: Arc<IdentityKey>,
    /// The identity's fingerprint, which every announcement carries.
    identity_fpr: Digest,
    workers: Addr<WasmWorker>,
    auditor: Addr<Auditor>,
    log_health: LogHealth,
    metrics: Arc<Metrics>,
    sessions: HashMap<Uuid, Session>,
    pending_executions: usize,
}

struct Session {
    expires_at: u64,
    client_nonce: Digest,
    announcement_hash: Digest,
    issued_at: u64,
    state: State,
}

enum State {
    Open {
        keys: SessionKeyPair,
        server_seed: Zeroizing<[u8; 32]>,
    },
    /// Kept without its keys so that a late execute learns it expired.
    Expired {
        forget_at: Instant,
    },
    Running,
    Done {
        result: Result<Receipt, Error>,
        forget_at: Instant,
    },
}

impl Supervisor {
    /// A supervisor with no sessions, running sessions on `workers` and logging to `auditor`.
    pub fn new(
        config: SupervisorConfig,
        identity: Arc<IdentityKey>,
        workers: Addr<WasmWorker>,
        (auditor, log_health): (Addr<Auditor>, LogHealth),
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            config,
            identity_fpr: identity.public().fingerprint(),
            identity,
            workers,
            auditor,
            log_health,
            metrics,
            sessions: HashMap::new(),
            pending_executions: 0,
        }
    }

    /// Drops expired keys and forgets what is past retention.
    fn sweep(&mut self) {
        let now_secs = unix_now();
        let now = Instant::now();
        let retention = self.config.result_retention;
        self.sessions.retain(|_, session| match &session.state {
            State::Open { .. } if session.expires_at < now_secs => {
                session.state = State::Expired {
                    forget_at: now + retention,
                };
                true
            }
            State::Expired { forget_at } | State::Done { forget_at, .. } => *forget_at > now,
            _ => true,
        });
        self.metrics.set_open_sessions(self.open_sessions());
    }

    fn open_sessions(&self) -> usize {
        self.sessions
            .values()
            .filter(|session| matches!(session.state, State::Open { .. }))
            .count()
    }

    fn create_session(&mut self, client_nonce: &str) -> Result<Created, Error> {
        let client_nonce = hex_decode::<32>(client_nonce)
            .filter(|nonce| *nonce != [0; 32])
            .ok_or(Error::BadClientNonce)?;
        // Without a writable log nothing could be committed: fail closed.
        if !self.log_health.is_writable() || self.open_sessions() >= self.config.max_open_sessions {
            self.metrics.refused("sessions");
            return Err(Error::Overloaded {
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        let internal = |_| Error::Unavailable("the daemon could not draw randomness");
        let keys = SessionKeyPair::derive(&*Zeroizing::new(os_random::<32>().map_err(internal)?));
        let server_seed = Zeroizing::new(os_random::<32>().map_err(internal)?);
        let session_id = Uuid::new_v4();
        let issued_at = unix_now();
        let announcement = Announcement {
            session_id: *session_id.as_bytes(),
            issued_at,
            expires_at: issued_at.saturating_add(self.config.session_ttl.as_secs()),
            client_nonce,
            identity_fpr: self.identity_fpr,
            seed_commitment: commitment::seed_commitment(&server_seed),
            public_key: *keys.public_key(),
        };
        let tbs = announcement.to_tbs();
        let signature = announcement.sign(&self.identity);
        self.sessions.insert(
            session_id,
            Session {
                expires_at: announcement.expires_at,
                client_nonce,
                announcement_hash: commitment::h3(&tbs),
                issued_at,
                state: State::Open { keys, server_seed },
            },
        );
        self.metrics.set_open_sessions(self.open_sessions());
        Ok(Created {
            session_id,
            expires_at: announcement.expires_at,
            tbs,
            signature,
        })
    }

    /// The checks of §4 that need no body, in their order: 404, 410, 409, 403, 503.
    fn admit(&self, session_id: &str, ticket: Option<&str>) -> Result<Uuid, Error> {
        let session_id = parse_session_id(session_id)?;
        let session = self
            .sessions
            .get(&session_id)
            .ok_or(Error::SessionNotFound)?;
        if matches!(session.state, State::Expired { .. }) || session.expires_at < unix_now() {
            return Err(Error::SessionExpired);
        }
        if !matches!(session.state, State::Open { .. }) {
            return Err(Error::SessionUsed);
        }
        let ticket = ticket.and_then(hex_decode::<32>);
        if ticket.map(|ticket| commitment::client_nonce(&ticket)) != Some(session.client_nonce) {
            return Err(Error::BadTicket);
        }
        if self.pending_executions >= self.config.max_pending_executions {
            self.metrics.refused("executions");
            return Err(Error::Overloaded {
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        Ok(session_id)
    }

    /// All checks of §4 in their order; on success the session is consumed and its job built.
    fn consume(&mut self, request: Execute) -> Result<(Uuid, Job), Error> {
        let session_id = self.admit(&request.session_id, request.ticket.as_deref())?;
        let enc_request = match request.body {
            RequestBody::Complete(body) => body,
            RequestBody::TooLarge => {
                return Err(Error::PayloadTooLarge {
                    max_bytes: self.config.max_request_bytes,
                });
            }
            RequestBody::Unreadable => {
                return Err(Error::Malformed("the request body could not be read"));
            }
        };
        if !request.content_type_ok {
            return Err(Error::Malformed("unsupported content type"));
        }
        if enc_request.len() < MIN_REQUEST_LEN {
            return Err(Error::Malformed("body is shorter than a sealed request"));
        }
        if enc_request[..HEADER.len()] != HEADER {
            return Err(Error::Malformed(
                "header differs from the session's key config",
            ));
        }
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(Error::SessionNotFound)?;
        let State::Open { keys, server_seed } =
            std::mem::replace(&mut session.state, State::Running)
        else {
            unreachable!("admit checked that the session is open, and nothing ran since");
        };
        let job = Job {
            keys,
            announcement_hash: session.announcement_hash,
            issued_at: session.issued_at,
            server_seed,
            request_commitment: commitment::request_commitment(
                &session.announcement_hash,
                &enc_request,
            ),
            enc_request,
        };
        Ok((session_id, job))
    }

    /// Records how a consumed session ended and decides its answer.
    fn finish(
        &mut self,
        session_id: Uuid,
        consumed_at: Instant,
        ended: Ended,
    ) -> Result<Receipt, Error> {
        self.pending_executions -= 1;
        self.metrics.set_pending_executions(self.pending_executions);
        let Ended {
            request_commitment,
            request_index,
            finished,
            result,
        } = ended;
        if let Finished::Sealed(sealed) = &finished {
            self.metrics.executed(sealed.duration, sealed.fuel_consumed);
        }
        let result = match (finished, result) {
            (Finished::Sealed(sealed), Some(Ok(appended))) => {
                log::info!(
                    "session {session_id} executed: status={} request_index={} result_index={} request_commitment={} result_commitment={} input_commitment={} output_commitment={}",
                    sealed.status.as_str(),
                    request_index.unwrap_or_default(),
                    appended.entry.index,
                    hex::encode(request_commitment),
                    hex::encode(sealed.result_commitment),
                    hex::encode(sealed.input_commitment),
                    hex::encode(sealed.output_commitment),
                );
                Ok(Receipt {
                    session_id,
                    request_commitment,
                    sealed: Arc::new(*sealed),
                    audit: AuditProof {
                        request_index: request_index.unwrap_or_default(),
                        result_index: appended.entry.index,
                        leaf: appended.entry.leaf,
                        inclusion_proof: appended.entry.inclusion_proof,
                        checkpoint: appended.checkpoint,
                    },
                })
            }
            (Finished::UnsealFailed, Some(Ok(appended))) => {
                log::info!(
                    "session {session_id} unseal_failed: request_index={} result_index={} request_commitment={}",
                    request_index.unwrap_or_default(),
                    appended.entry.index,
                    hex::encode(request_commitment)
                );
                Err(Error::UnsealFailed { request_commitment })
            }
            (Finished::Internal(reason), Some(Ok(_))) => {
                internal(session_id, &request_commitment, reason)
            }
            (_, Some(Err(error))) => internal(
                session_id,
                &request_commitment,
                &format!("its result leaf could not be logged: {error}"),
            ),
            (_, None) => internal(
                session_id,
                &request_commitment,
                "its request leaf could not be logged",
            ),
        };
        let status = match &result {
            Ok(receipt) => receipt.sealed.status.as_str(),
            Err(error) => error.code().as_str(),
        };
        self.metrics.session_ended(status, consumed_at.elapsed());
        if let Some(session) = self.sessions.get_mut(&session_id) {
            session.state = State::Done {
                result: result.clone(),
                forget_at: Instant::now() + self.config.result_retention,
            };
        }
        result
    }
}

/// A session the daemon failed: the cause goes to the daemon's log, never to the client.
fn internal(session_id: Uuid, request_commitment: &Digest, cause: &str) -> Result<Receipt, Error> {
    log::error!(
        "session {session_id} internal: {cause}; request_commitment={}",
        hex::encode(request_commitment)
    );
    Err(Error::Internal {
        request_commitment: *request_commitment,
    })
}

/// How a consumed session ended, with what the log made of it.
struct Ended {
    request_commitment: Digest,
    /// `None` if the request leaf could not be logged (then nothing ran).
    request_index: Option<u64>,
    finished: Finished,
    /// The result leaf, `None` if there was no request leaf to answer.
    result: Option<Result<Appended, crate::auditor::audit_log::AuditError>>,
}

/// Logs the request leaf, runs the job, logs the result leaf: a program runs only once its
/// request is durable, and nobody hears of its end before that is durable too.
async fn run_logged(
    session_id: Uuid,
    job: Job,
    auditor: Addr<Auditor>,
    workers: Addr<WasmWorker>,
) -> Ended {
    let request_commitment = job.request_commitment;
    let request = auditor
        .send(Append(Leaf::Request(RequestLeaf {
            session_id: *session_id.as_bytes(),
            time_ms: unix_millis(),
            announcement_hash: job.announcement_hash,
            request_commitment,
        })))
        .await;
    let Ok(Ok(request)) = request else {
        return Ended {
            request_commitment,
            request_index: None,
            finished: Finished::Internal("the request leaf could not be logged"),
            result: None,
        };
    };
    let finished = Executor::spawn(job, workers)
        .await
        .unwrap_or(Finished::Internal("the executor stopped early"));
    let (outcome, result_commitment, input_commitment, output_commitment) = match &finished {
        Finished::Sealed(sealed) => (
            Outcome::Executed,
            sealed.result_commitment,
            sealed.input_commitment,
            sealed.output_commitment,
        ),
        Finished::UnsealFailed => (Outcome::UnsealFailed, ABSENT, ABSENT, ABSENT),
        Finished::Internal(_) => (Outcome::Internal, ABSENT, ABSENT, ABSENT),
    };
    let result = auditor
        .send(Append(Leaf::Result(ResultLeaf {
            session_id: *session_id.as_bytes(),
            time_ms: unix_millis(),
            request_index: request.entry.index,
            outcome,
            request_commitment,
            result_commitment,
            input_commitment,
            output_commitment,
        })))
        .await
        .unwrap_or(Err(crate::auditor::audit_log::AuditError::Unavailable));
    Ended {
        request_commitment,
        request_index: Some(request.entry.index),
        finished,
        result: Some(result),
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(1), |supervisor, _| supervisor.sweep());
    }
}

/// `POST /sessions`.
#[derive(Message)]
#[rtype(result = "Result<Created, Error>")]
pub struct CreateSession {
    /// The hex `client_nonce` as the client sent it, not yet checked.
    pub client_nonce: String,
}

/// A new session's announcement.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new session's id.
    pub session_id: Uuid,
    /// Unix seconds after which execute is refused.
    pub expires_at: u64,
    /// The announcement's TBS.
    pub tbs: [u8; TBS_LEN],
    /// The identity's signature over the TBS.
    pub signature: Vec<u8>,
}

impl Handler<CreateSession> for Supervisor {
    type Result = Result<Created, Error>;

    fn handle(&mut self, message: CreateSession, _: &mut Self::Context) -> Self::Result {
        self.create_session(&message.client_nonce)
    }
}

/// The checks of an execute call that need no body, so that only a ticket holder can make the
/// daemon read one. `Execute` makes them again, with the rest, when the body is there.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Admit {
    /// The session id from the URL, unparsed.
    pub session_id: String,
    /// The `Session-Ticket` header, if present and text.
    pub ticket: Option<String>,
}

impl Handler<Admit> for Supervisor {
    type Result = Result<(), Error>;

    fn handle(&mut self, message: Admit, _: &mut Self::Context) -> Self::Result {
        self.admit(&message.session_id, message.ticket.as_deref())
            .map(drop)
    }
}

/// The body of an execute call as the HTTP layer read it.
pub enum RequestBody {
    /// All of the body.
    Complete(Vec<u8>),
    /// Longer than `max_request_bytes`; the rest was not read.
    TooLarge,
    /// The transfer broke off or was not valid HTTP framing.
    Unreadable,
}

/// `POST /sessions/{id}/execute`.
#[derive(Message)]
#[rtype(result = "Result<Receipt, Error>")]
pub struct Execute {
    /// The session id from the URL, unparsed.
    pub session_id: String,
    /// The `Session-Ticket` header, if present and text.
    pub ticket: Option<String>,
    /// Whether the content type is one §4 accepts.
    pub content_type_ok: bool,
    /// The body, or why there is none.
    pub body: RequestBody,
}

/// A session's sealed result and its commitments.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The session the result belongs to.
    pub session_id: Uuid,
    /// Binds the announcement and `enc_request`.
    pub request_commitment: Digest,
    /// The sealed result and its commitments, shared with every retry of `GET …/result`.
    pub sealed: Arc<Sealed>,
    /// The result leaf's proof.
    pub audit: AuditProof,
}

/// The execute response's `audit` object (§5).
#[derive(Debug, Clone)]
pub struct AuditProof {
    /// The session's request leaf's index.
    pub request_index: u64,
    /// The result leaf's index.
    pub result_index: u64,
    /// The result leaf.
    pub leaf: Vec<u8>,
    /// RFC 9162 inclusion proof of the result leaf against `checkpoint`.
    pub inclusion_proof: Vec<Digest>,
    /// Covers the result leaf; the proof is against it.
    pub checkpoint: String,
}

impl Handler<Execute> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Receipt, Error>>;

    fn handle(&mut self, message: Execute, _: &mut Self::Context) -> Self::Result {
        let (session_id, job) = match self.consume(message) {
            Ok(consumed) => consumed,
            Err(error) => return Box::pin(fut::ready(Err(error))),
        };
        let consumed_at = Instant::now();
        self.pending_executions += 1;
        self.metrics.set_pending_executions(self.pending_executions);
        self.metrics.set_open_sessions(self.open_sessions());
        let run = run_logged(session_id, job, self.auditor.clone(), self.workers.clone());
        Box::pin(
            run.into_actor(self)
                .map(move |ended, supervisor, _| supervisor.finish(session_id, consumed_at, ended)),
        )
    }
}

/// `GET /sessions/{id}/result`.
#[derive(Message)]
#[rtype(result = "Result<ResultState, Error>")]
pub struct GetResult {
    /// The session id from the URL, unparsed.
    pub session_id: String,
}

/// Where a consumed session's result stands.
pub enum ResultState {
    /// Still running.
    Running(Uuid),
    /// Finished with a sealed result.
    Finished(Receipt),
}

impl Handler<GetResult> for Supervisor {
    type Result = ResponseFuture<Result<ResultState, Error>>;

    fn handle(&mut self, message: GetResult, _: &mut Self::Context) -> Self::Result {
        let answer = match parse_session_id(&message.session_id) {
            Err(error) => Err(error),
            Ok(session_id) => match self.sessions.get(&session_id).map(|session| &session.state) {
                Some(State::Running) => Ok(ResultState::Running(session_id)),
                Some(State::Done { result, .. }) => result.clone().map(ResultState::Finished),
                Some(State::Open { .. } | State::Expired { .. }) => Err(Error::SessionNotFound),
                None => return Box::pin(aborted_before_restart(session_id, self.auditor.clone())),
            },
        };
        Box::pin(async move { answer })
    }
}

/// A session this daemon does not know may have been cut off by a restart: the log says so.
async fn aborted_before_restart(
    session_id: Uuid,
    auditor: Addr<Auditor>,
) -> Result<ResultState, Error> {
    let Ok(Ok(proven)) = auditor
        .send(Ask(SessionEntries(*session_id.as_bytes())))
        .await
    else {
        return Err(Error::SessionNotFound);
    };
    proven
        .entries
        .iter()
        .find_map(|entry| match Leaf::decode(&entry.leaf) {
            Ok(Leaf::Result(leaf)) if leaf.outcome == Outcome::Aborted => {
                Some(Err(Error::Aborted {
                    request_commitment: leaf.request_commitment,
                }))
            }
            _ => None,
        })
        .unwrap_or(Err(Error::SessionNotFound))
}

/// Only the canonical lowercase form names a session, so one session has one URL.
fn parse_session_id(text: &str) -> Result<Uuid, Error> {
    session_id_from_text(text)
        .map(Uuid::from_bytes)
        .ok_or(Error::SessionNotFound)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
