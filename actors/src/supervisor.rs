//! The supervisor actor: owns the table of open and running sessions (keys, expiry, single
//! use) with small tombstones for what §4 must still answer, admits or refuses work, and starts
//! one executor per consumed session. Finished results are the audit log's: it keeps them
//! durably beside their result leaves and answers `GET …/result` for every session not running.
//!
//! Every check of §4 happens here, in one handler, so their order is the protocol's order and
//! no two requests can both consume a session.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use uuid::Uuid;
use wasm_hypervisor_protocol::announcement::{Announcement, TBS_LEN};
use wasm_hypervisor_protocol::api::{SessionId, Ticket};
use wasm_hypervisor_protocol::commitment::{self, ABSENT, Digest};
use wasm_hypervisor_protocol::identity::IdentityKey;
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome, RequestLeaf, ResultLeaf};
use wasm_hypervisor_protocol::sealing::{SealedRequest, SessionKeyPair};
use zeroize::Zeroizing;

use crate::auditor::audit_log::{Appended, AuditError, NewLeaf, StoredResult, unix_millis};
use crate::auditor::{Append, Ask, Auditor, LogHealth, SessionResult};
use crate::budget::QueuePlace;
use crate::error::{Error, RETRY_AFTER_SECS};
use crate::executor::{Executor, Lanes};
use crate::metrics::Metrics;
use crate::os_random;
use crate::session::{Finished, Job};
use crate::shares::{AddressShare, ClientAddress, Held, Refusal, Share};

/// The supervisor's settings.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// How long a session may wait for its execute call. A late execute is answered
    /// `410 session_expired` for one more TTL (at least [`TOMBSTONE_MIN`]), then `404`.
    /// Default: 60 s.
    pub session_ttl: Duration,
    /// Sessions announced but not yet executed. Default: 10 000.
    pub max_open_sessions: usize,
    /// The part of the open sessions one client address may hold. Default: 25 %.
    pub address_share: AddressShare,
    /// Largest accepted `enc_request`. Default: 16 MiB.
    pub max_request_bytes: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(60),
            max_open_sessions: 10_000,
            address_share: AddressShare::DEFAULT,
            max_request_bytes: 16 << 20,
        }
    }
}

/// One per core.
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The shortest time an expired session's tombstone is kept, so that even with a tiny TTL a
/// late execute learns that its session expired rather than that it never existed.
pub const TOMBSTONE_MIN: Duration = Duration::from_secs(60);

/// Set when the daemon stops taking new sessions (on SIGTERM or SIGINT); shared by the
/// supervisor, which refuses them, and the HTTP layer, whose readiness reports it.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on no session is announced.
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the daemon is draining.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Owns every session: creates and announces them, admits and consumes them, and keeps results.
pub struct Supervisor {
    config: SupervisorConfig,
    identity: Arc<IdentityKey>,
    /// The identity's fingerprint, which every announcement carries.
    identity_fpr: Digest,
    /// Where executions run, and the memory budget and queue that admission checks.
    lanes: Lanes,
    auditor: Addr<Auditor>,
    log_health: LogHealth,
    draining: Draining,
    metrics: Arc<Metrics>,
    sessions: HashMap<SessionId, Session>,
    /// Each session's `expires_at` (Unix seconds), in the order the sessions were announced,
    /// which with one TTL is also expiry order: a sweep pops only what is due, O(1) per session
    /// however many there are.
    expiries: VecDeque<(u64, SessionId)>,
    /// When to forget an expired session, queued at its expiry plus one constant, so also in
    /// order.
    tombstones: VecDeque<(u64, SessionId)>,
    /// The sessions in [`Session::Open`], and those being announced, each holding its place
    /// here; bounded in all and per client address.
    open_sessions: Arc<Share>,
    /// Executions consumed and not ended, for the metrics.
    pending_executions: usize,
}

enum Session {
    Open(Box<OpenSession>),
    Running {
        expires_at: u64,
    },
    /// Consumed and ended; the log holds its result. Execute answers `409` until the session's
    /// expiry, then `410`.
    Ended {
        expires_at: u64,
    },
    /// Past its expiry: execute answers `410`. Forgotten one TTL later (at least a minute).
    Expired,
}

struct OpenSession {
    /// Its place among the open sessions, given back when it is consumed or expires.
    _place: Held,
    expires_at: u64,
    client_nonce: Digest,
    announcement_hash: Digest,
    issued_at: u64,
    keys: SessionKeyPair,
    server_seed: Zeroizing<[u8; 32]>,
}

impl Supervisor {
    /// A supervisor with no sessions, running sessions on `lanes` and logging to `auditor`.
    pub fn new(
        config: SupervisorConfig,
        identity: Arc<IdentityKey>,
        lanes: Lanes,
        (auditor, log_health): (Addr<Auditor>, LogHealth),
        draining: Draining,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            identity_fpr: identity.public().fingerprint(),
            identity,
            lanes,
            auditor,
            log_health,
            draining,
            metrics,
            open_sessions: Share::new(config.max_open_sessions as u64, config.address_share),
            config,
            sessions: HashMap::new(),
            expiries: VecDeque::new(),
            tombstones: VecDeque::new(),
            pending_executions: 0,
        }
    }

    /// Expires what is past its deadline, dropping its keys, and forgets old tombstones.
    fn sweep(&mut self) {
        let now = unix_now();
        let forget_at = now.saturating_add(self.config.session_ttl.max(TOMBSTONE_MIN).as_secs());
        while let Some(&(expires_at, session_id)) = self.expiries.front() {
            if expires_at >= now {
                break;
            }
            self.expiries.pop_front();
            if let Some(session) = self.sessions.get_mut(&session_id) {
                if matches!(session, Session::Open(_)) {
                    *session = Session::Expired;
                }
                self.tombstones.push_back((forget_at, session_id));
            }
        }
        while let Some(&(due, session_id)) = self.tombstones.front() {
            if due >= now {
                break;
            }
            self.tombstones.pop_front();
            if let Some(Session::Running { .. }) = self.sessions.get(&session_id) {
                self.tombstones.push_back((forget_at, session_id));
            } else {
                self.sessions.remove(&session_id);
            }
        }
        self.report_open_sessions();
    }

    fn report_open_sessions(&self) {
        self.metrics
            .set_open_sessions(self.open_sessions.in_use() as usize);
    }

    /// The checks of `POST /sessions` after `429` for the request rate: the address's share
    /// of the open sessions (`429`), then room for one more (`503`). On success `client`
    /// holds a place among the open sessions for the announcement the crypto lane is about
    /// to make.
    fn admit_announcement(&mut self, client: ClientAddress) -> Result<Held, Error> {
        // Without a writable log nothing could be committed: fail closed. A draining daemon
        // announces nothing new: a load balancer sends the client elsewhere.
        let place = self
            .open_sessions
            .take(client, 1)
            .map_err(|refusal| Error::refused(refusal, "open sessions"))
            .and_then(|place| {
                if self.log_health.is_writable() && !self.draining.is_draining() {
                    Ok(place)
                } else {
                    Err(Error::Overloaded {
                        retry_after_secs: RETRY_AFTER_SECS,
                    })
                }
            });
        if place.is_err() {
            self.metrics.refused("sessions");
        }
        place
    }

    /// Enters an announcement made on the crypto lane into the table.
    fn open_session(&mut self, announced: Result<Announced, Error>) -> Result<Created, Error> {
        let Announced { session, created } = announced?;
        self.sessions
            .insert(created.session_id, Session::Open(session));
        self.expiries
            .push_back((created.expires_at, created.session_id));
        self.report_open_sessions();
        Ok(created)
    }

    /// The checks of §4 that need no body, in their order: 429 (the address's share of the
    /// queue), 404, 410, 409, 403, 503.
    fn admit(
        &self,
        client: ClientAddress,
        session_id: SessionId,
        ticket: Option<Ticket>,
    ) -> Result<(), Error> {
        if !self.lanes.budget().address_has_room(client) {
            self.metrics.refused("executions");
            return Err(Error::refused(Refusal::AddressShare, "queued executions"));
        }
        let now = unix_now();
        let open = match self.sessions.get(&session_id) {
            None => return Err(Error::SessionNotFound),
            Some(Session::Open(open)) if open.expires_at >= now => open,
            Some(Session::Open(_) | Session::Expired) => return Err(Error::SessionExpired),
            Some(Session::Running { expires_at } | Session::Ended { expires_at }) => {
                return Err(if *expires_at < now {
                    Error::SessionExpired
                } else {
                    Error::SessionUsed
                });
            }
        };
        if !ticket.is_some_and(|ticket| ticket.opens(&open.client_nonce)) {
            return Err(Error::BadTicket);
        }
        // A session consumed now would need the log twice; without it, it must stay unused.
        // The queue of admitted executions is the one bound: what runs is bounded by memory.
        if !self.log_health.is_writable() || !self.lanes.budget().has_room() {
            self.metrics.refused("executions");
            return Err(Error::Overloaded {
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        Ok(())
    }

    /// All checks of §4 in their order; on success the session is consumed, with its place in
    /// the queue of admitted executions.
    fn consume(&mut self, request: Execute) -> Result<(SessionId, Consumed), Error> {
        let Execute {
            client,
            session_id,
            ticket,
            body,
        } = request;
        self.admit(client, session_id, ticket)?;
        let body_bytes = body.as_ref().map_or(0, |sealed| sealed.as_bytes().len());
        let place = self
            .lanes
            .budget()
            .admit(client, body_bytes as u64)
            .map_err(|refusal| {
                self.metrics.refused("executions");
                Error::refused(refusal, "queued executions")
            })?;
        let enc_request = body?.into_bytes();
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(Error::SessionNotFound)?;
        let Session::Open(open) = std::mem::replace(session, Session::Expired) else {
            unreachable!("admit checked that the session is open, and nothing ran since");
        };
        let OpenSession {
            expires_at,
            announcement_hash,
            issued_at,
            keys,
            server_seed,
            ..
        } = *open;
        *session = Session::Running { expires_at };
        Ok((
            session_id,
            Consumed {
                keys,
                announcement_hash,
                issued_at,
                server_seed,
                enc_request,
                place,
            },
        ))
    }

    /// Records how a consumed session ended and decides its answer: the body the log kept.
    fn finish(
        &mut self,
        session_id: SessionId,
        consumed_at: Instant,
        ended: Ended,
    ) -> Result<Vec<u8>, Error> {
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
            (
                Finished::Sealed(sealed),
                Some(Ok(Appended {
                    entry,
                    body: Some(body),
                    ..
                })),
            ) => {
                log::info!(
                    "session {session_id} executed: status={} request_index={} result_index={} request_commitment={} result_commitment={} input_commitment={} output_commitment={}",
                    sealed.status.as_str(),
                    request_index.unwrap_or_default(),
                    entry.index,
                    hex::encode(request_commitment),
                    hex::encode(sealed.result_commitment),
                    hex::encode(sealed.input_commitment),
                    hex::encode(sealed.output_commitment),
                );
                self.metrics
                    .session_ended(sealed.status.as_str(), consumed_at.elapsed());
                Ok(body)
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
            (Finished::Sealed(_), Some(Ok(_))) => internal(
                session_id,
                &request_commitment,
                "the log kept no body for its sealed result",
            ),
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
        if let Err(error) = &result {
            self.metrics
                .session_ended(error.code().as_str(), consumed_at.elapsed());
        }
        if let Some(session) = self.sessions.get_mut(&session_id)
            && let Session::Running { expires_at } = *session
        {
            *session = Session::Ended { expires_at };
        }
        result
    }
}

/// A consumed session: what its job needs once its request is hashed, and its place in the
/// queue of admitted executions.
struct Consumed {
    keys: SessionKeyPair,
    announcement_hash: Digest,
    issued_at: u64,
    server_seed: Zeroizing<[u8; 32]>,
    enc_request: Vec<u8>,
    place: QueuePlace,
}

/// A new session: its keys and seed for the table, and its signed announcement for the client.
struct Announced {
    session: Box<OpenSession>,
    created: Created,
}

/// Draws a session's keys and seed and signs its announcement: the crypto lane's work for
/// `POST /sessions`.
fn announce(
    identity: &IdentityKey,
    identity_fpr: Digest,
    ttl: Duration,
    client_nonce: Digest,
    place: Held,
) -> Result<Announced, Error> {
    let internal = |_| Error::Unavailable("the daemon could not draw randomness");
    let keys = SessionKeyPair::derive(&*Zeroizing::new(os_random::<32>().map_err(internal)?));
    let server_seed = Zeroizing::new(os_random::<32>().map_err(internal)?);
    let session_id = SessionId(*Uuid::new_v4().as_bytes());
    let issued_at = unix_now();
    let announcement = Announcement {
        session_id: session_id.0,
        issued_at,
        expires_at: issued_at.saturating_add(ttl.as_secs()),
        client_nonce,
        identity_fpr,
        seed_commitment: commitment::seed_commitment(&server_seed),
        public_key: *keys.public_key(),
    };
    let tbs = announcement.to_tbs();
    let signature = announcement.sign(identity);
    Ok(Announced {
        session: Box::new(OpenSession {
            _place: place,
            expires_at: announcement.expires_at,
            client_nonce,
            announcement_hash: commitment::h3(&tbs),
            issued_at,
            keys,
            server_seed,
        }),
        created: Created {
            session_id,
            expires_at: announcement.expires_at,
            tbs,
            signature,
        },
    })
}

/// A session the daemon failed: the cause goes to the daemon's log, never to the client.
fn internal(
    session_id: SessionId,
    request_commitment: &Digest,
    cause: &str,
) -> Result<Vec<u8>, Error> {
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
    result: Option<Result<Appended, AuditError>>,
}

/// Logs the request leaf, runs the job, logs the result leaf: a program runs only once its
/// request is durable, and nobody hears of its end before that is durable too.
async fn run_logged(
    session_id: SessionId,
    consumed: Consumed,
    auditor: Addr<Auditor>,
    lanes: Lanes,
) -> Ended {
    let Consumed {
        keys,
        announcement_hash,
        issued_at,
        server_seed,
        enc_request,
        place,
    } = consumed;
    let job = Job {
        session_id: session_id.0,
        keys,
        announcement_hash,
        issued_at,
        server_seed,
        enc_request,
    };
    // Up to 16 MiB to hash and open: the crypto lane's work, not this actor's. Opening before
    // the request is durable is safe: nothing runs, and nothing is answered, before it is.
    let Some((request_commitment, opened)) = lanes.open(job).await else {
        return Ended {
            request_commitment: ABSENT,
            request_index: None,
            finished: Finished::Internal("committing to the request panicked"),
            result: None,
        };
    };
    let request = auditor
        .send(Append(NewLeaf::from(Leaf::Request(RequestLeaf {
            session_id: session_id.0,
            time_ms: unix_millis(),
            announcement_hash,
            request_commitment,
        }))))
        .await;
    let Ok(Ok(request)) = request else {
        return Ended {
            request_commitment,
            request_index: None,
            finished: Finished::Internal("the request leaf could not be logged"),
            result: None,
        };
    };
    let mut finished = Executor::spawn(opened, place, lanes)
        .await
        .unwrap_or(Finished::Internal("the executor stopped early"));
    let (outcome, result_commitment, input_commitment, output_commitment, response) =
        match &mut finished {
            Finished::Sealed(sealed) => (
                Outcome::Executed,
                sealed.result_commitment,
                sealed.input_commitment,
                sealed.output_commitment,
                sealed.response.take(),
            ),
            Finished::UnsealFailed => (Outcome::UnsealFailed, ABSENT, ABSENT, ABSENT, None),
            Finished::Internal(_) => (Outcome::Internal, ABSENT, ABSENT, ABSENT, None),
        };
    let leaf = Leaf::Result(ResultLeaf {
        session_id: session_id.0,
        time_ms: unix_millis(),
        request_index: request.entry.index,
        outcome,
        request_commitment,
        result_commitment,
        input_commitment,
        output_commitment,
    });
    let result = auditor
        .send(Append(NewLeaf { leaf, response }))
        .await
        .unwrap_or(Err(AuditError::Unavailable));
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
    /// Whose share of the open sessions the new one counts against.
    pub client: ClientAddress,
    /// The client's `H3("wasm-hv/v1 ticket" ‖ 0x00 ‖ ticket)`, checked not all zero.
    pub client_nonce: Digest,
}

/// A new session's announcement.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new session's id.
    pub session_id: SessionId,
    /// Unix seconds after which execute is refused.
    pub expires_at: u64,
    /// The announcement's TBS.
    pub tbs: [u8; TBS_LEN],
    /// The identity's signature over the TBS.
    pub signature: Vec<u8>,
}

impl Handler<CreateSession> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Created, Error>>;

    fn handle(&mut self, message: CreateSession, _: &mut Self::Context) -> Self::Result {
        let place = match self.admit_announcement(message.client) {
            Ok(place) => place,
            Err(error) => return Box::pin(fut::ready(Err(error))),
        };
        let client_nonce = message.client_nonce;
        let (identity, identity_fpr, ttl) = (
            Arc::clone(&self.identity),
            self.identity_fpr,
            self.config.session_ttl,
        );
        let announced = self
            .lanes
            .crypto()
            .run(move || announce(&identity, identity_fpr, ttl, client_nonce, place));
        Box::pin(
            async move {
                announced
                    .await
                    .unwrap_or(Err(Error::Unavailable("making the announcement failed")))
            }
            .into_actor(self)
            .map(|announced, supervisor, _| supervisor.open_session(announced)),
        )
    }
}

/// The checks of an execute call that need no body, so that only a ticket holder can make the
/// daemon read one. `Execute` makes them again, with the rest, when the body is there.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Admit {
    /// Whose share of the queue the execution would count against.
    pub client: ClientAddress,
    /// The session named in the URL.
    pub session_id: SessionId,
    /// The `Session-Ticket` header; `None` if missing or malformed, which counts as wrong.
    pub ticket: Option<Ticket>,
}

impl Handler<Admit> for Supervisor {
    type Result = Result<(), Error>;

    fn handle(&mut self, message: Admit, _: &mut Self::Context) -> Self::Result {
        self.admit(message.client, message.session_id, message.ticket)
    }
}

/// `POST /sessions/{id}/execute`; answers with the response body.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, Error>")]
pub struct Execute {
    /// Whose share of the queue the execution counts against.
    pub client: ClientAddress,
    /// The session named in the URL.
    pub session_id: SessionId,
    /// The `Session-Ticket` header; `None` if missing or malformed, which counts as wrong.
    pub ticket: Option<Ticket>,
    /// The body with its framing checked, or the `413`/`400` it earned, which the supervisor
    /// answers only after its own checks (§4's order).
    pub body: Result<SealedRequest, Error>,
}

impl Handler<Execute> for Supervisor {
    type Result = ResponseActFuture<Self, Result<Vec<u8>, Error>>;

    fn handle(&mut self, message: Execute, _: &mut Self::Context) -> Self::Result {
        let (session_id, consumed) = match self.consume(message) {
            Ok(consumed) => consumed,
            Err(error) => return Box::pin(fut::ready(Err(error))),
        };
        let consumed_at = Instant::now();
        self.pending_executions += 1;
        self.metrics.set_pending_executions(self.pending_executions);
        self.report_open_sessions();
        let run = run_logged(
            session_id,
            consumed,
            self.auditor.clone(),
            self.lanes.clone(),
        );
        Box::pin(
            run.into_actor(self)
                .map(move |ended, supervisor, _| supervisor.finish(session_id, consumed_at, ended)),
        )
    }
}

/// Sessions announced and not executed, and executions not ended: what a draining daemon
/// waits for.
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub struct Outstanding;

impl Handler<Outstanding> for Supervisor {
    type Result = MessageResult<Outstanding>;

    fn handle(&mut self, _: Outstanding, _: &mut Self::Context) -> Self::Result {
        MessageResult((
            self.open_sessions.in_use() as usize,
            self.pending_executions,
        ))
    }
}

/// `GET /sessions/{id}/result`.
#[derive(Message)]
#[rtype(result = "Result<ResultState, Error>")]
pub struct GetResult {
    /// The session named in the URL.
    pub session_id: SessionId,
}

/// Where a consumed session's result stands.
pub enum ResultState {
    /// Still running.
    Running(SessionId),
    /// The execute answer's body.
    Finished(Vec<u8>),
}

impl Handler<GetResult> for Supervisor {
    type Result = ResponseFuture<Result<ResultState, Error>>;

    fn handle(&mut self, message: GetResult, _: &mut Self::Context) -> Self::Result {
        let session_id = message.session_id;
        let answer = match self.sessions.get(&session_id) {
            Some(Session::Running { .. }) => Ok(ResultState::Running(session_id)),
            Some(Session::Open(_)) => Err(Error::SessionNotFound),
            // Ended here or before a restart, or never executed: the log knows which.
            Some(Session::Ended { .. } | Session::Expired) | None => {
                return Box::pin(stored_result(session_id, self.auditor.clone()));
            }
        };
        Box::pin(async move { answer })
    }
}

/// A session's result as the log kept it, or the error its execute call got.
async fn stored_result(
    session_id: SessionId,
    auditor: Addr<Auditor>,
) -> Result<ResultState, Error> {
    let stored = auditor
        .send(Ask(SessionResult(session_id.0)))
        .await
        .unwrap_or(Err(AuditError::Unavailable))?;
    match stored {
        StoredResult::Kept(body) => Ok(ResultState::Finished(body)),
        StoredResult::Evicted => Err(Error::ResultEvicted),
        StoredResult::Failed {
            outcome: Outcome::UnsealFailed,
            request_commitment,
        } => Err(Error::UnsealFailed { request_commitment }),
        StoredResult::Failed {
            outcome: Outcome::Aborted,
            request_commitment,
        } => Err(Error::Aborted { request_commitment }),
        StoredResult::Failed {
            request_commitment, ..
        }
        | StoredResult::Unfinished { request_commitment } => {
            Err(Error::Internal { request_commitment })
        }
        StoredResult::Unknown => Err(Error::SessionNotFound),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use wasm_hypervisor_protocol::announcement::Announcement;
    use wasm_hypervisor_protocol::payload::RequestPayload;
    use wasm_hypervisor_protocol::sealing;

    use super::*;
    use crate::auditor::audit_log::{AuditLog, ResultRetention};
    use crate::auditor::store::testing::FillingDisk;
    use crate::auditor::store::{self, StoreKind};
    use crate::budget::{BudgetConfig, MemoryBudget};
    use crate::sandbox::SandboxConfig;
    use crate::session::LimitsPolicy;

    fn local() -> ClientAddress {
        ClientAddress::of(std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// A session announced to this test, and its execute call.
    async fn open_session(supervisor: &Addr<Supervisor>) -> Execute {
        let ticket = os_random::<32>().unwrap();
        let created = supervisor
            .send(CreateSession {
                client: local(),
                client_nonce: commitment::client_nonce(&ticket),
            })
            .await
            .unwrap()
            .unwrap();
        let announcement = Announcement::from_tbs(&created.tbs).unwrap();
        let payload = RequestPayload {
            wasm: wat::parse_str(r#"(module (func (export "_start")))"#).unwrap(),
            ..RequestPayload::default()
        };
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let (enc_request, _) = sealing::seal_request(
            &announcement.public_key,
            &announcement.hash(),
            &payload.encode(),
            &mut rng,
        )
        .unwrap();
        Execute {
            client: local(),
            session_id: created.session_id,
            ticket: Ticket::parse(&hex::encode(ticket)),
            body: Ok(SealedRequest::parse(enc_request).unwrap()),
        }
    }

    #[actix_rt::test]
    async fn a_failed_log_refuses_an_open_session_before_consuming_it() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Arc::new(IdentityKey::from_secret_bytes(&[0x51; 32]).unwrap());
        // One write left: the first session's request leaf. Its result leaf fails the log.
        let store = FillingDisk::over(store::open(StoreKind::Redb, dir.path()).unwrap(), 1);
        let (log, _) = AuditLog::open(
            Box::new(store),
            Arc::clone(&identity),
            "test/log".into(),
            ResultRetention::default(),
        )
        .unwrap();
        let metrics = Arc::new(Metrics::default());
        let auditor = Auditor::start_with(log, Arc::clone(&metrics), &Arbiter::current());
        let lanes = Lanes::start(
            (1, 1),
            MemoryBudget::new(BudgetConfig::default()),
            LimitsPolicy::default(),
            SandboxConfig::default(),
        )
        .unwrap();
        let supervisor = Supervisor::new(
            SupervisorConfig::default(),
            identity,
            lanes,
            auditor,
            Draining::default(),
            metrics,
        )
        .start();
        let first = open_session(&supervisor).await;
        let second = open_session(&supervisor).await;
        let second_id = second.session_id;
        let ticket = second.ticket;

        let failed = supervisor.send(first).await.unwrap();
        assert!(matches!(failed, Err(Error::Internal { .. })), "{failed:?}");
        let refused = supervisor.send(second).await.unwrap();
        assert!(
            matches!(refused, Err(Error::Overloaded { .. })),
            "{refused:?}"
        );
        // Not consumed: asked again, it is still refused as overloaded, not as used.
        let again = supervisor
            .send(Admit {
                client: local(),
                session_id: second_id,
                ticket,
            })
            .await
            .unwrap();
        assert!(matches!(again, Err(Error::Overloaded { .. })), "{again:?}");
    }
}
