//! The HTTP transport of `docs/PROTOCOL.md`: asks the daemon, hands every answer to the
//! protocol crate's [`Verifier`] and [`CheckpointTracker`], and returns only what passed them;
//! and, for a service of several replicas (§9), routes each session to the replica whose key
//! signed its announcement.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use awc::http::StatusCode;
use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use wasm_hypervisor_protocol::api::{self, SEALED_REQUEST_CONTENT_TYPE, TICKET_HEADER};
use wasm_hypervisor_protocol::checkpoint::Checkpoint;
use wasm_hypervisor_protocol::commitment::{self, Digest};
use wasm_hypervisor_protocol::leaf::Leaf;
use wasm_hypervisor_protocol::payload::{OutputMap, RequestPayload, ResultPayload};
use wasm_hypervisor_protocol::policy::{Policy, PolicyLog};
use wasm_hypervisor_protocol::verify::{
    self, AnnouncedSession, CheckpointTracker, PinnedIdentity, SealedRequest, SignedCheckpoint,
    Verifier, VerifyError,
};

use crate::trust::{ServiceUrl, Swap, TrustError, TrustStore};

/// Largest response body the client reads: a sealed output map is bounded by the server's
/// output limit, and JSON with base64 adds a third.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How often a client whose connection broke asks whether its execution has finished.
const RESULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Longer than the longest execution a daemon allows by default (60 s), with room to queue.
const HTTP_TIMEOUT: Duration = Duration::from_secs(300);

/// How many times [`Client::remember`] retries when other runs keep changing the trust store.
const REMEMBER_ATTEMPTS: usize = 16;

/// Why the client stopped. Anything short of a fully verified answer is an error: the output
/// is never trusted before every check of §3 and §5 passed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request never got an HTTP answer.
    #[error("cannot reach {url}: {reason}")]
    Transport {
        /// What the client asked for.
        url: String,
        /// Why there was no answer.
        reason: String,
    },
    /// The daemon answered with a §7 error body.
    #[error("the daemon answered {status} {code}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The §7 error code.
        code: String,
        /// The daemon's message.
        message: String,
        /// Present once the session was consumed.
        request_commitment: Option<String>,
    },
    /// An answer that does not parse or does not match what was asked.
    #[error("the daemon's answer is invalid: {0}")]
    InvalidResponse(String),
    /// The daemon's identity is not the one pinned for it.
    #[error("the daemon's identity is not the pinned one: {0}")]
    IdentityMismatch(String),
    /// An answer failed a check of the verifier (§2, §3, §5, §6).
    #[error(transparent)]
    Refused(VerifyError),
    /// Sealing failed.
    #[error("cannot seal the request")]
    Protocol(#[from] wasm_hypervisor_protocol::Error),
    /// The OS random number generator failed, so no secret could be drawn.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The connection broke after the request was sent; the result can still be fetched.
    #[error(
        "the connection broke during session {session_id} ({reason}); its result stays at GET /sessions/{session_id}/result for the daemon's retention period"
    )]
    Interrupted {
        /// The session whose result to fetch.
        session_id: String,
        /// Why the connection broke.
        reason: String,
    },
    /// The replica that holds a session did not answer its execute or result call: the load
    /// balancer (or the network) said it is down. The sealed request is not sent to another
    /// replica (RFC 9458 §6.5): only this one can open it.
    #[error(
        "the replica at {url} is unavailable (HTTP {status}): the sealed request of session {session_id} must not be sent to another replica; fetch its result from that replica later, or run the program again in a new session"
    )]
    ReplicaUnavailable {
        /// The replica's base URL.
        url: String,
        /// What the load balancer answered.
        status: u16,
        /// The session whose request went there.
        session_id: String,
    },
    /// The CA certificate file cannot be read or used.
    #[error("cannot use the CA certificate {0}")]
    Tls(String),
    /// The log does not extend a checkpoint this client trusted before.
    #[error(
        "the audit log is not consistent with a checkpoint seen before ({0}): it was rewritten or rolled back"
    )]
    Inconsistent(String),
    /// The trust store cannot be read or written, or refuses the identity.
    #[error(transparent)]
    Trust(#[from] TrustError),
}

impl ClientError {
    /// Whether this says only that a replica was not reached or did not answer: no HTTP answer
    /// at all, an answer that is not the daemon's, or a load balancer's own (§9). Another
    /// replica may still be asked what this one could not answer; never to execute its
    /// session.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::InvalidResponse(_) | Self::ReplicaUnavailable { .. } => {
                true
            }
            Self::Server { code, .. } => api::LOAD_BALANCER_ERROR_CODES.contains(&code.as_str()),
            _ => false,
        }
    }
}

impl From<VerifyError> for ClientError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Inconsistent(reason) => Self::Inconsistent(reason),
            error => Self::Refused(error),
        }
    }
}

/// A verified execution: the decoded output and everything needed to prove it later.
#[derive(Debug, Clone)]
pub struct Execution {
    /// The session the program ran in.
    pub session_id: String,
    /// The decoded output map, trusted only because every check passed.
    pub output: OutputMap,
    /// The announcement's TBS, which an auditor needs to check `announcement_hash`.
    pub tbs: Vec<u8>,
    /// The request plaintext: with `input_blind`, it opens `input_commitment`.
    pub request_payload: Vec<u8>,
    /// The sealed request as sent.
    pub enc_request: Vec<u8>,
    /// The sealed result as received.
    pub enc_response: Vec<u8>,
    /// The opened result: the output map's bytes and both blinds.
    pub result_payload: ResultPayload,
    /// Binds the announcement and `enc_request`.
    pub request_commitment: Digest,
    /// Binds `request_commitment` and `enc_response`.
    pub result_commitment: Digest,
    /// Hides and binds the request payload.
    pub input_commitment: Digest,
    /// Hides and binds the output map's bytes.
    pub output_commitment: Digest,
    /// The result leaf's index, proven included in `checkpoint`.
    pub result_index: u64,
    /// The session's request leaf's index.
    pub request_index: u64,
    /// The checkpoint the result leaf was proven against, consistent with the one trusted
    /// before; the next call checks consistency from it.
    pub checkpoint: SignedCheckpoint,
    /// The identity that signed the announcement and `checkpoint`: the replica's.
    pub identity: PinnedIdentity,
    /// The base URL of the replica that ran the session, where its result and its log are.
    pub replica_url: String,
}

/// A service as its pinned policy describes it (§9): where sessions are opened, and each
/// replica's identity and URL. A standalone daemon is a policy of one log without a URL.
#[derive(Debug, Clone)]
pub struct Replicas {
    service_url: String,
    policy: Policy,
}

impl Replicas {
    /// The replicas of the service at `service_url` (where `POST /sessions` goes) that
    /// `policy` lists.
    pub fn new(service_url: &str, policy: Policy) -> Self {
        Self {
            service_url: service_url.trim_end_matches('/').to_owned(),
            policy,
        }
    }

    /// The pinned policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A replica's base URL: its policy line's, or the service's for a line without one.
    pub fn url_of(&self, log: &PolicyLog) -> String {
        log.url.as_deref().map_or_else(
            || self.service_url.clone(),
            |url| url.trim_end_matches('/').to_owned(),
        )
    }
}

/// An HTTP client of one daemon, which verifies everything before trusting it.
pub struct Client {
    http: awc::Client,
    base_url: String,
}

impl Client {
    /// A client of the daemon at `base_url` (`http://` or `https://`).
    pub fn new(base_url: &str) -> Self {
        Self::with_timeout(base_url, HTTP_TIMEOUT)
    }

    /// A client whose requests give up after `timeout`; an execution that outlasts it is
    /// fetched from `GET /sessions/{id}/result` instead.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Self {
        Self::with_http(base_url, awc::Client::builder().timeout(timeout).finish())
    }

    /// A client that trusts only the PEM certificates in `ca_file` for `https://`: the daemon's
    /// own certificate or the CA that issued it.
    pub fn with_ca(base_url: &str, ca_file: &Path) -> Result<Self, ClientError> {
        Self::with_connector(base_url, Some(ca_file), None)
    }

    /// A client whose connections leave from `local_address` (say `127.0.0.2`, so that a load
    /// generator on one host looks like many clients to the daemon's per-address shares), and
    /// that trusts only `ca_file` for `https://` when one is given.
    pub fn with_local_address(
        base_url: &str,
        local_address: IpAddr,
        ca_file: Option<&Path>,
    ) -> Result<Self, ClientError> {
        Self::with_connector(base_url, ca_file, Some(local_address))
    }

    fn with_connector(
        base_url: &str,
        ca_file: Option<&Path>,
        local_address: Option<IpAddr>,
    ) -> Result<Self, ClientError> {
        let mut connector = awc::Connector::new();
        if let Some(ca_file) = ca_file {
            connector = connector.rustls_0_23(tls_config(ca_file)?);
        }
        if let Some(local_address) = local_address {
            connector = connector.local_address(local_address);
        }
        let http = awc::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connector(connector)
            .finish();
        Ok(Self::with_http(base_url, http))
    }

    fn with_http(base_url: &str, http: awc::Client) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// A client of another base URL (a replica's) over the same connections and settings.
    pub fn at(&self, base_url: &str) -> Self {
        Self::with_http(base_url, self.http.clone())
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET /policy` (§9), parsed; pinning it is the caller's choice
    /// ([`TrustStore::pin_policy`]). A daemon older than §9 (`404`) is a service of one: its
    /// `GET /identity`, as a log without a URL.
    pub async fn policy(&self) -> Result<Policy, ClientError> {
        let (status, body) = self.send(self.http.get(self.url("/policy")), None).await?;
        if status == StatusCode::NOT_FOUND {
            let identity = self.identity().await?;
            return Ok(Policy::new(vec![PolicyLog {
                identity,
                url: None,
            }])?);
        }
        if status != StatusCode::OK {
            return Err(server_error(status, &body));
        }
        Ok(Policy::parse(&body)?)
    }

    /// `GET /identity`, checked for internal consistency; pinning it is the caller's choice
    /// ([`TrustStore::pin`]).
    pub async fn identity(&self) -> Result<PinnedIdentity, ClientError> {
        let (status, body) = self
            .send(self.http.get(self.url("/identity")), None)
            .await?;
        let identity: api::Identity = parse(status, StatusCode::OK, &body)?;
        Ok(PinnedIdentity::from_published(&identity)?)
    }

    /// Runs one program end to end and makes every check of §3 and §5 before it trusts the
    /// output, including the audit proof and consistency with `trusted`, the last checkpoint
    /// this client accepted from the daemon.
    pub async fn execute(
        &self,
        pinned: &PinnedIdentity,
        payload: &RequestPayload,
        trusted: Option<&SignedCheckpoint>,
    ) -> Result<Execution, ClientError> {
        let sealed = self.seal(pinned, payload, trusted).await?;
        self.submit(pinned, sealed, trusted).await
    }

    /// [`Self::execute`] without consistency: every check of §3 and §5 (the announcement, the
    /// sealed result, the commitments and their openings, both seeds, the result leaf, its
    /// inclusion in [`Execution::checkpoint`] and that checkpoint's signature), but no proof
    /// that the checkpoint extends one trusted before. For a caller that proves consistency once
    /// for many executions, feeding their checkpoints to one [`CheckpointTracker`] with
    /// [`Self::advance`] (as `wasm-hypervisor bench` does).
    pub async fn execute_unchained(
        &self,
        pinned: &PinnedIdentity,
        payload: &RequestPayload,
    ) -> Result<Execution, ClientError> {
        self.execute(pinned, payload, None).await
    }

    /// Opens a session, checks its announcement (§3) and, given `trusted`, that the log still
    /// extends it, and seals `payload` to the session's key. Nothing of the program has left
    /// the client yet, and the session id is known before it does.
    pub async fn seal(
        &self,
        pinned: &PinnedIdentity,
        payload: &RequestPayload,
        trusted: Option<&SignedCheckpoint>,
    ) -> Result<SealedRequest, ClientError> {
        let only = PolicyLog {
            identity: pinned.clone(),
            url: None,
        };
        let (session, _) = self.announce(|_| Ok(&only)).await?;
        self.seal_announced(pinned, session, payload, trusted).await
    }

    /// `POST /sessions` and §3's checks of the announcement against the identity of the log
    /// `route` picks for it, which must be the announcing key; returns that log too.
    async fn announce<'p>(
        &self,
        route: impl FnOnce(&api::SessionCreated) -> Result<&'p PolicyLog, VerifyError>,
    ) -> Result<(AnnouncedSession, &'p PolicyLog), ClientError> {
        let ticket: [u8; 32] = os_random()?;
        let request = api::CreateSession {
            client_nonce: hex::encode(commitment::client_nonce(&ticket)),
        };
        let body = serde_json::to_vec(&request).expect("a struct of strings serializes");
        let post = self.http.post(self.url("/sessions"));
        let (status, body) = self
            .send(post.content_type("application/json"), Some(body.into()))
            .await?;
        let created: api::SessionCreated = parse(status, StatusCode::CREATED, &body)?;
        let log = route(&created)?;
        let session = Verifier::new(log.identity.clone()).check_announcement(
            &created,
            &ticket,
            unix_now(),
        )?;
        Ok((session, log))
    }

    /// Given `trusted`, proves that the log still extends it, then seals `payload` to an
    /// announced session of `pinned`.
    async fn seal_announced(
        &self,
        pinned: &PinnedIdentity,
        session: AnnouncedSession,
        payload: &RequestPayload,
        trusted: Option<&SignedCheckpoint>,
    ) -> Result<SealedRequest, ClientError> {
        // A log that was rolled back or rewritten gets no program at all.
        if trusted.is_some() {
            let mut tracker = CheckpointTracker::new(pinned.clone(), trusted.cloned())?;
            let current = self.checkpoint(pinned).await?;
            self.advance(&mut tracker, current).await?;
        }
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        Ok(session.seal(payload, &mut rng)?)
    }

    /// Runs one program on a service of replicas (§9), this client being the service URL's:
    /// opens the session here, finds the replica whose key the announcement's `identity_fpr`
    /// names among the pinned policy's (never from unsigned JSON), checks the announcement
    /// with that key, and sends the execute and result calls to that replica's URL; the result's
    /// checkpoint must be signed by the same identity and, if `trusted` holds one for its origin,
    /// extend it. A standalone daemon is a one-log policy, and this is [`Self::execute`].
    pub async fn execute_routed(
        &self,
        replicas: &Replicas,
        payload: &RequestPayload,
        trusted: &BTreeMap<String, SignedCheckpoint>,
    ) -> Result<Execution, ClientError> {
        let (session, log) = self
            .announce(|created| Verifier::announcing_log(replicas.policy(), created))
            .await?;
        let (pinned, replica) = (&log.identity, self.at(&replicas.url_of(log)));
        let trusted = trusted.get(&pinned.origin);
        let sealed = replica
            .seal_announced(pinned, session, payload, trusted)
            .await?;
        replica.submit(pinned, sealed, trusted).await
    }

    /// Posts a sealed request and makes the checks of §5 on the answer: the wire commitments,
    /// the sealed result, both seeds, the result leaf, its inclusion in a signed checkpoint,
    /// and that checkpoint's consistency with `trusted`. A broken connection is recovered from
    /// `GET /sessions/{id}/result`.
    pub async fn submit(
        &self,
        pinned: &PinnedIdentity,
        sealed: SealedRequest,
        trusted: Option<&SignedCheckpoint>,
    ) -> Result<Execution, ClientError> {
        let mut tracker = CheckpointTracker::new(pinned.clone(), trusted.cloned())?;
        let session_id = sealed.session_id();
        let execute = self
            .http
            .post(self.url(&format!("/sessions/{session_id}/execute")))
            .content_type(SEALED_REQUEST_CONTENT_TYPE)
            .insert_header((TICKET_HEADER, sealed.ticket_hex()));
        let body = Bytes::copy_from_slice(sealed.enc_request());
        let (status, body) = match self.send(execute, Some(body)).await {
            // The daemon keeps every result for a while: a broken connection loses nothing (§5).
            Err(ClientError::Transport { .. }) => self.fetch_result(&session_id).await?,
            // The load balancer stopped waiting, not the replica, which keeps the result (§9).
            Ok((StatusCode::GATEWAY_TIMEOUT, body))
                if from_load_balancer(StatusCode::GATEWAY_TIMEOUT, &body) =>
            {
                self.fetch_result(&session_id).await?
            }
            answer => answer?,
        };
        self.check_reached(status, &body, &session_id)?;
        let executed: api::Executed = parse(status, StatusCode::OK, &body)?;
        let verified = Verifier::new(pinned.clone()).check_result(&sealed, &executed)?;
        self.advance(&mut tracker, verified.checkpoint.clone())
            .await?;
        Ok(Execution {
            session_id,
            output: verified.output,
            tbs: sealed.tbs().to_vec(),
            request_payload: sealed.request_payload().to_vec(),
            enc_request: sealed.enc_request().to_vec(),
            enc_response: verified.enc_response,
            result_payload: verified.result_payload,
            request_commitment: verified.request_commitment,
            result_commitment: verified.result_commitment,
            input_commitment: verified.input_commitment,
            output_commitment: verified.output_commitment,
            result_index: verified.result_index,
            request_index: verified.request_index,
            checkpoint: verified.checkpoint,
            identity: pinned.clone(),
            replica_url: self.base_url.clone(),
        })
    }

    /// A `502`, `503` or `504` that is not a replica's own §7 answer comes from a load
    /// balancer in front of it (§9): the replica is down, and the request must stay with it.
    fn check_reached(
        &self,
        status: StatusCode,
        body: &[u8],
        session_id: &str,
    ) -> Result<(), ClientError> {
        if from_load_balancer(status, body) {
            return Err(ClientError::ReplicaUnavailable {
                url: self.base_url.clone(),
                status: status.as_u16(),
                session_id: session_id.to_owned(),
            });
        }
        Ok(())
    }

    /// `GET /sessions/{id}/result`, waiting while the execution still runs.
    async fn fetch_result(&self, session_id: &str) -> Result<(StatusCode, Bytes), ClientError> {
        let path = format!("/sessions/{session_id}/result");
        let interrupted = |reason: String| ClientError::Interrupted {
            session_id: session_id.to_owned(),
            reason,
        };
        let started = Instant::now();
        loop {
            match self.send(self.http.get(self.url(&path)), None).await {
                Ok((StatusCode::ACCEPTED, _)) if started.elapsed() < HTTP_TIMEOUT => {
                    actix_rt::time::sleep(RESULT_POLL_INTERVAL).await;
                }
                Ok((StatusCode::ACCEPTED, _)) => return Err(interrupted("still running".into())),
                Ok(answer) => return Ok(answer),
                Err(error) => return Err(interrupted(error.to_string())),
            }
        }
    }

    /// Proves that `new` extends `trusted` (RFC 9162 §2.1.4), fetching the proof when one is
    /// needed: a smaller tree (a rollback), another tree of the same size (a fork) or a proof
    /// that fails means the log was rewritten or rolled back.
    pub async fn verify_consistency(
        &self,
        trusted: &Checkpoint,
        new: &Checkpoint,
    ) -> Result<(), ClientError> {
        let proof = match verify::consistency_needed(trusted, new)? {
            Some((old, size)) => self.consistency_proof(old, size).await?,
            None => Vec::new(),
        };
        Ok(verify::check_consistency(trusted, new, &proof)?)
    }

    /// Moves `tracker` to `new` with the consistency proof it needs, fetched from the daemon.
    pub async fn advance(
        &self,
        tracker: &mut CheckpointTracker,
        new: SignedCheckpoint,
    ) -> Result<(), ClientError> {
        let proof = match tracker.proof_needed(&new.checkpoint)? {
            Some((old, size)) => self.consistency_proof(old, size).await?,
            None => Vec::new(),
        };
        Ok(tracker.update(new, &proof)?)
    }

    /// `GET /audit/consistency?old=…&new=…`. No answer is a transport error; any answer but a
    /// proof for these sizes counts as inconsistency (a daemon refuses sizes beyond its tree).
    async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Digest>, ClientError> {
        let path = format!("/audit/consistency?old={old}&new={new}");
        let inconsistent = |reason: String| {
            ClientError::Inconsistent(format!("from size {old} to {new}: {reason}"))
        };
        let (status, body) = self.send(self.http.get(self.url(&path)), None).await?;
        let consistency: api::Consistency = parse(status, StatusCode::OK, &body)
            .map_err(|error| inconsistent(error.to_string()))?;
        if (consistency.old, consistency.new) != (old, new) {
            return Err(inconsistent("the proof is for other sizes".into()));
        }
        Ok(consistency.proof)
    }

    /// Records `seen` as the last checkpoint trusted for `pinned` at `service`, once it is
    /// proven consistent with what the store holds. `seen` was proven to extend `trusted`
    /// (the store's checkpoint when the caller started); if another run has changed the store
    /// since, consistency with its checkpoint is proven now, and the larger of the two is kept.
    pub async fn remember(
        &self,
        store: &TrustStore,
        service: &ServiceUrl,
        pinned: &PinnedIdentity,
        trusted: Option<&SignedCheckpoint>,
        seen: &SignedCheckpoint,
    ) -> Result<(), ClientError> {
        for _ in 0..REMEMBER_ATTEMPTS {
            let stored = store.checkpoint(service, pinned)?;
            let stored_checkpoint = stored.as_ref().map(|stored| &stored.checkpoint);
            if let Some(stored) = stored_checkpoint
                && Some(stored) != trusted.map(|trusted| &trusted.checkpoint)
            {
                if stored.size > seen.checkpoint.size {
                    return self.verify_consistency(&seen.checkpoint, stored).await;
                }
                self.verify_consistency(stored, &seen.checkpoint).await?;
            }
            if stored_checkpoint.is_some_and(|stored| stored.size >= seen.checkpoint.size) {
                return Ok(());
            }
            match store.compare_and_swap(service, pinned, stored_checkpoint, seen)? {
                Swap::Done => return Ok(()),
                Swap::Changed => {}
            }
        }
        Err(TrustError::Busy(store.path().to_owned()).into())
    }

    /// `GET /audit/{session_id}`, with every entry's leaf and inclusion checked against the
    /// returned checkpoint, which is verified against the pinned identity.
    pub async fn session_audit(
        &self,
        pinned: &PinnedIdentity,
        session_id: &str,
    ) -> Result<(Vec<(u64, Leaf)>, SignedCheckpoint), ClientError> {
        let (status, body) = self
            .send(
                self.http.get(self.url(&format!("/audit/{session_id}"))),
                None,
            )
            .await?;
        let audit: api::SessionAudit = parse(status, StatusCode::OK, &body)?;
        Ok(Verifier::new(pinned.clone()).check_session_audit(session_id, &audit)?)
    }

    /// The latest checkpoint, verified against the pinned identity.
    pub async fn checkpoint(
        &self,
        pinned: &PinnedIdentity,
    ) -> Result<SignedCheckpoint, ClientError> {
        let (status, body) = self
            .send(self.http.get(self.url("/audit/checkpoint")), None)
            .await?;
        if status != StatusCode::OK {
            return Err(server_error(status, &body));
        }
        let note = std::str::from_utf8(&body)
            .map_err(|_| ClientError::InvalidResponse("checkpoint is not UTF-8".into()))?;
        Ok(SignedCheckpoint::verify(note, pinned)?)
    }

    /// Leaves `[start, end)` as the daemon pages them (at most 1000 a call).
    pub async fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, ClientError> {
        let path = format!("/audit/entries?start={start}&end={end}");
        let (status, body) = self.send(self.http.get(self.url(&path)), None).await?;
        let entries: api::Entries = parse(status, StatusCode::OK, &body)?;
        Ok(entries
            .entries
            .into_iter()
            .map(|entry| (entry.index, entry.leaf))
            .collect())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn send(
        &self,
        request: awc::ClientRequest,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let url = request.get_uri().to_string();
        let transport = |reason: String| ClientError::Transport {
            url: url.clone(),
            reason,
        };
        let mut response = match body {
            Some(body) => request.send_body(body).await,
            None => request.send().await,
        }
        .map_err(|error| transport(error.to_string()))?;
        let body = response
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .map_err(|error| transport(error.to_string()))?;
        Ok((response.status(), body))
    }
}

/// A TLS configuration that trusts only the PEM certificates in `ca_file`.
fn tls_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let invalid = |reason: String| ClientError::Tls(format!("{}: {reason}", ca_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    for certificate in
        CertificateDer::pem_file_iter(ca_file).map_err(|error| invalid(error.to_string()))?
    {
        roots
            .add(certificate.map_err(|error| invalid(error.to_string()))?)
            .map_err(|error| invalid(error.to_string()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(crate::tls_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// Decodes a success body, or turns anything else into an error.
fn parse<T: serde::de::DeserializeOwned>(
    status: StatusCode,
    expected: StatusCode,
    body: &[u8],
) -> Result<T, ClientError> {
    if status != expected {
        return Err(server_error(status, body));
    }
    serde_json::from_slice(body).map_err(|error| ClientError::InvalidResponse(error.to_string()))
}

/// The §7 error body as [`ClientError::Server`].
/// Whether an answer is a load balancer's own rather than a replica's (§9): a `502`, `503` or
/// `504` without a §7 body, or with one of the load balancer's codes.
fn from_load_balancer(status: StatusCode, body: &[u8]) -> bool {
    matches!(status.as_u16(), 502..=504)
        && serde_json::from_slice::<api::ErrorBody>(body)
            .ok()
            .is_none_or(|answer| {
                api::LOAD_BALANCER_ERROR_CODES.contains(&answer.error.code.as_str())
            })
}

fn server_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<api::ErrorBody>(body) {
        Ok(error) => ClientError::Server {
            status: status.as_u16(),
            code: error.error.code,
            message: error.error.message,
            request_commitment: error.request_commitment,
        },
        Err(_) => ClientError::InvalidResponse(format!("unexpected HTTP status {status}")),
    }
}

fn os_random<const N: usize>() -> Result<[u8; N], ClientError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|_| ClientError::Random)?;
    Ok(bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
