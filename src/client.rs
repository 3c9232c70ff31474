//! The client side of `docs/PROTOCOL.md` over HTTP: pins the identity, opens a session, verifies
//! the announcement, seals, posts and verifies everything it gets back before trusting the output.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use awc::http::StatusCode;
use wasm_hypervisor_protocol::announcement::{self, Expected};
use wasm_hypervisor_protocol::api::{self, SEALED_REQUEST_CONTENT_TYPE, SUITE, TICKET_HEADER};
use wasm_hypervisor_protocol::checkpoint::{self, Checkpoint};
use wasm_hypervisor_protocol::commitment::{self, Digest};
use wasm_hypervisor_protocol::identity::IdentityPublicKey;
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome};
use wasm_hypervisor_protocol::merkle;
use wasm_hypervisor_protocol::payload::{OutputMap, PayloadError, RequestPayload, ResultPayload};
use wasm_hypervisor_protocol::sealing;

/// Largest response body the client reads: a sealed output map is bounded by the server's
/// output limit, and JSON with base64 adds a third.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How often a client whose connection broke asks whether its execution has finished.
const RESULT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// Longer than the longest execution a daemon allows by default (60 s), with room to queue.
const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

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
    /// A signature, announcement, proof or sealed message did not verify.
    #[error("verification failed")]
    Protocol(#[from] wasm_hypervisor_protocol::Error),
    /// The opened result or its output map is not valid CBOR of §5.
    #[error("the sealed result does not decode")]
    Payload(#[from] PayloadError),
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
    /// The CA certificate file cannot be read or used.
    #[error("cannot use the CA certificate {0}")]
    Tls(String),
    /// The log does not extend a checkpoint this client trusted before.
    #[error(
        "the audit log is not consistent with a checkpoint seen before ({0}): it was rewritten or rolled back"
    )]
    Inconsistent(String),
}

/// An identity as a client pins it: the origin and the key, together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedIdentity {
    /// The log's and the key's name, as `GET /identity` published it.
    pub origin: String,
    /// The identity public key.
    pub key: IdentityPublicKey,
}

/// A checkpoint verified against the pinned identity, with the signed note it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The verified tree head.
    pub checkpoint: Checkpoint,
    pub(crate) note: String,
}

impl SignedCheckpoint {
    /// Verifies a signed note against the pinned identity.
    pub fn verify(note: &str, pinned: &PinnedIdentity) -> Result<Self, ClientError> {
        Ok(Self {
            checkpoint: checkpoint::verify(note, &pinned.origin, &pinned.key)?,
            note: note.to_owned(),
        })
    }
}

/// A request sealed to a verified session, not yet sent ([`Client::seal`]).
pub struct SealedRequest {
    session_id: [u8; 16],
    ticket: [u8; 32],
    /// The announcement's TBS.
    pub(crate) tbs: Vec<u8>,
    pub(crate) request_payload: Vec<u8>,
    pub(crate) enc_request: Vec<u8>,
    /// Binds the announcement and `enc_request`; known before the request leaves.
    pub request_commitment: Digest,
    response_key: sealing::ResponseKey,
}

impl SealedRequest {
    /// The session's id, as it goes in URLs.
    pub fn session_id(&self) -> String {
        api::SessionId(self.session_id).to_string()
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
    /// The result leaf's position and the checkpoint it was proven against; the client
    /// checked the leaf, its inclusion, and consistency with the checkpoint it trusted before.
    pub result_index: u64,
    /// The session's request leaf's index.
    pub request_index: u64,
    /// The checkpoint the result leaf was proven against; the next call checks consistency from it.
    pub checkpoint: SignedCheckpoint,
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
    pub fn with_timeout(base_url: &str, timeout: std::time::Duration) -> Self {
        Self::with_http(base_url, awc::Client::builder().timeout(timeout).finish())
    }

    /// A client that trusts only the PEM certificates in `ca_file` for `https://`: the daemon's
    /// own certificate or the CA that issued it.
    pub fn with_ca(base_url: &str, ca_file: &Path) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::Tls(format!("{}: {reason}", ca_file.display()));
        let mut roots = rustls::RootCertStore::empty();
        for certificate in
            CertificateDer::pem_file_iter(ca_file).map_err(|error| invalid(error.to_string()))?
        {
            roots
                .add(certificate.map_err(|error| invalid(error.to_string()))?)
                .map_err(|error| invalid(error.to_string()))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = awc::Connector::new().rustls_0_23(Arc::new(tls));
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

    /// `GET /identity`, checked for internal consistency; pinning it is the caller's choice.
    pub async fn identity(&self) -> Result<PinnedIdentity, ClientError> {
        let (status, body) = self
            .send(self.http.get(self.url("/identity")), None)
            .await?;
        let identity: api::Identity = parse(status, StatusCode::OK, &body)?;
        let key = IdentityPublicKey::from_sec1(&identity.public_key)?;
        let consistent = identity.suite == SUITE
            && identity.spki == key.spki_der()
            && identity.fingerprint == key.fingerprint()
            && identity.note_verifier_key == key.note_verifier_key(&identity.origin);
        if !consistent {
            return Err(ClientError::InvalidResponse(
                "identity fields disagree with its key".into(),
            ));
        }
        Ok(PinnedIdentity {
            origin: identity.origin,
            key,
        })
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

    /// Opens a session, checks its announcement (§3) and, given `trusted`, that the log still
    /// extends it, and seals `payload` to the session's key. Nothing of the program has left
    /// the client yet, and the session id is known before it does.
    pub async fn seal(
        &self,
        pinned: &PinnedIdentity,
        payload: &RequestPayload,
        trusted: Option<&SignedCheckpoint>,
    ) -> Result<SealedRequest, ClientError> {
        let ticket: [u8; 32] = os_random()?;
        let client_nonce = commitment::client_nonce(&ticket);
        let request = api::CreateSession {
            client_nonce: hex::encode(client_nonce),
        };
        let body = serde_json::to_vec(&request).expect("a struct of strings serializes");
        let post = self.http.post(self.url("/sessions"));
        let (status, body) = self
            .send(post.content_type("application/json"), Some(body.into()))
            .await?;
        let created: api::SessionCreated = parse(status, StatusCode::CREATED, &body)?;
        let session_id = uuid::Uuid::parse_str(&created.session_id)
            .map_err(|_| ClientError::InvalidResponse("session_id is not a UUID".into()))?;
        let announcement = announcement::verify(
            &created.announcement,
            &created.signature,
            &Expected {
                identity: &pinned.key,
                client_nonce: &client_nonce,
                session_id: session_id.as_bytes(),
                now_secs: unix_now(),
            },
        )?;
        // A log that was rolled back or rewritten gets no program at all.
        if let Some(trusted) = trusted {
            let current = self.checkpoint(pinned).await?;
            self.verify_consistency(&trusted.checkpoint, &current.checkpoint)
                .await?;
        }
        let announcement_hash = announcement.hash();
        let request_payload = payload.encode();
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let (enc_request, response_key) = sealing::seal_request(
            &announcement.public_key,
            &announcement_hash,
            &request_payload,
            &mut rng,
        )?;
        Ok(SealedRequest {
            session_id: *session_id.as_bytes(),
            ticket,
            tbs: created.announcement,
            request_commitment: commitment::request_commitment(&announcement_hash, &enc_request),
            request_payload,
            enc_request,
            response_key,
        })
    }

    /// Posts a sealed request and makes the checks of §5 on the answer: the wire commitments,
    /// the sealed result, the result leaf, its inclusion in a signed checkpoint, and that
    /// checkpoint's consistency with `trusted`. A broken connection is recovered from
    /// `GET /sessions/{id}/result`.
    pub async fn submit(
        &self,
        pinned: &PinnedIdentity,
        sealed: SealedRequest,
        trusted: Option<&SignedCheckpoint>,
    ) -> Result<Execution, ClientError> {
        let session_id = sealed.session_id();
        let execute = self
            .http
            .post(self.url(&format!("/sessions/{session_id}/execute")))
            .content_type(SEALED_REQUEST_CONTENT_TYPE)
            .insert_header((TICKET_HEADER, hex::encode(sealed.ticket)));
        let (status, body) = match self
            .send(execute, Some(sealed.enc_request.clone().into()))
            .await
        {
            // The daemon keeps every result for a while: a broken connection loses nothing (§5).
            Err(ClientError::Transport { .. }) => self.fetch_result(&session_id).await?,
            answer => answer?,
        };
        let executed: api::Executed = parse(status, StatusCode::OK, &body)?;
        let request_commitment = sealed.request_commitment;
        let result_commitment =
            commitment::result_commitment(&request_commitment, &executed.sealed_result);
        if executed.session_id != session_id
            || executed.outcome != "executed"
            || executed.request_commitment != request_commitment
            || executed.result_commitment != result_commitment
        {
            return Err(ClientError::InvalidResponse(
                "the response's commitments do not bind what was sent and received".into(),
            ));
        }
        let opened = sealed.response_key.open(&executed.sealed_result)?;
        let result_payload = ResultPayload::decode(&opened)?;
        let output = OutputMap::decode(&result_payload.output)?;
        let input_commitment =
            commitment::input_commitment(&result_payload.input_blind, &sealed.request_payload);
        let output_commitment =
            commitment::output_commitment(&result_payload.output_blind, &result_payload.output);

        let expected_leaf = ExpectedResult {
            session_id: sealed.session_id,
            request_index: executed.audit.request_index,
            commitments: [
                request_commitment,
                result_commitment,
                input_commitment,
                output_commitment,
            ],
        };
        let checkpoint = verify_audit(&executed.audit, pinned, &expected_leaf)?;
        if let Some(trusted) = trusted {
            self.verify_consistency(&trusted.checkpoint, &checkpoint.checkpoint)
                .await?;
        }
        Ok(Execution {
            session_id,
            output,
            tbs: sealed.tbs,
            request_payload: sealed.request_payload,
            enc_request: sealed.enc_request,
            enc_response: executed.sealed_result,
            result_payload,
            request_commitment,
            result_commitment,
            input_commitment,
            output_commitment,
            result_index: executed.audit.result_index,
            request_index: executed.audit.request_index,
            checkpoint,
        })
    }

    /// `GET /sessions/{id}/result`, waiting while the execution still runs.
    async fn fetch_result(
        &self,
        session_id: &str,
    ) -> Result<(StatusCode, actix_web::web::Bytes), ClientError> {
        let path = format!("/sessions/{session_id}/result");
        let interrupted = |reason: String| ClientError::Interrupted {
            session_id: session_id.to_owned(),
            reason,
        };
        let started = std::time::Instant::now();
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

    /// Proves that one of two checkpoints of this log extends the other (RFC 9162 §2.1.4):
    /// anything else means the log was rewritten or rolled back.
    pub async fn verify_consistency(
        &self,
        a: &Checkpoint,
        b: &Checkpoint,
    ) -> Result<(), ClientError> {
        let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
        if old.size == new.size || old.size == 0 {
            return if old.size == new.size && old.root != new.root {
                Err(ClientError::Inconsistent(format!(
                    "two different trees of size {}",
                    old.size
                )))
            } else {
                Ok(())
            };
        }
        let path = format!("/audit/consistency?old={}&new={}", old.size, new.size);
        let (status, body) = self.send(self.http.get(self.url(&path)), None).await?;
        let inconsistent = |reason: String| {
            ClientError::Inconsistent(format!("from size {} to {}: {reason}", old.size, new.size))
        };
        let consistency: api::Consistency = parse(status, StatusCode::OK, &body)
            .map_err(|error| inconsistent(error.to_string()))?;
        merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &consistency.proof)
            .map_err(|error| inconsistent(error.to_string()))
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
        let signed = SignedCheckpoint::verify(&audit.checkpoint, pinned)?;
        let checkpoint = &signed.checkpoint;
        let mut leaves = Vec::new();
        for entry in &audit.entries {
            let leaf = Leaf::decode(&entry.leaf).map_err(|error| {
                ClientError::InvalidResponse(format!("leaf {}: {error}", entry.index))
            })?;
            if api::SessionId(*leaf.session_id()).to_string() != session_id {
                return Err(ClientError::InvalidResponse(format!(
                    "leaf {} belongs to another session",
                    entry.index
                )));
            }
            merkle::verify_inclusion(
                &entry.leaf,
                entry.index,
                checkpoint.size,
                &entry.inclusion_proof,
                &checkpoint.root,
            )?;
            leaves.push((entry.index, leaf));
        }
        Ok((leaves, signed))
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
        SignedCheckpoint::verify(note, pinned)
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
        body: Option<actix_web::web::Bytes>,
    ) -> Result<(StatusCode, actix_web::web::Bytes), ClientError> {
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

/// What the result leaf must say about an execution this client saw.
struct ExpectedResult {
    session_id: [u8; 16],
    request_index: u64,
    /// request, result, input and output commitments.
    commitments: [Digest; 4],
}

/// The audit checks of §5: the checkpoint is the pinned identity's, the result leaf says exactly
/// what this client sent and opened, and it is included in the checkpoint's tree.
fn verify_audit(
    audit: &api::Audit,
    pinned: &PinnedIdentity,
    expected: &ExpectedResult,
) -> Result<SignedCheckpoint, ClientError> {
    let signed = SignedCheckpoint::verify(&audit.checkpoint, pinned)?;
    let checkpoint = &signed.checkpoint;
    let Ok(Leaf::Result(leaf)) = Leaf::decode(&audit.leaf) else {
        return Err(ClientError::InvalidResponse(
            "the audit leaf is not a result leaf".into(),
        ));
    };
    let matches = leaf.session_id == expected.session_id
        && leaf.request_index == expected.request_index
        && leaf.request_index < audit.result_index
        && leaf.outcome == Outcome::Executed
        && [
            leaf.request_commitment,
            leaf.result_commitment,
            leaf.input_commitment,
            leaf.output_commitment,
        ] == expected.commitments;
    if !matches {
        return Err(ClientError::InvalidResponse(
            "the result leaf does not record this execution".into(),
        ));
    }
    merkle::verify_inclusion(
        &audit.leaf,
        audit.result_index,
        checkpoint.size,
        &audit.inclusion_proof,
        &checkpoint.root,
    )?;
    Ok(signed)
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
