//! The client side of PROTOCOL.md over HTTP: pins the identity, opens a session, verifies the
//! announcement, seals, posts and verifies everything it gets back before trusting the output.

use std::time::{SystemTime, UNIX_EPOCH};

use awc::http::StatusCode;
use wasm_hypervisor_protocol::announcement::{self, Announcement, Expected};
use wasm_hypervisor_protocol::api::{self, SEALED_REQUEST_CONTENT_TYPE, SUITE, TICKET_HEADER};
use wasm_hypervisor_protocol::commitment::{self, Digest};
use wasm_hypervisor_protocol::identity::IdentityPublicKey;
use wasm_hypervisor_protocol::payload::{OutputMap, PayloadError, RequestPayload, ResultPayload};
use wasm_hypervisor_protocol::sealing;

/// Largest response body the client reads: a sealed output map is bounded by the server's
/// output limit, and JSON with base64 adds a third.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("the daemon answered {status} {code}: {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
        request_commitment: Option<String>,
    },
    #[error("the daemon's answer is invalid: {0}")]
    InvalidResponse(String),
    #[error("the daemon's identity is not the pinned one: {0}")]
    IdentityMismatch(String),
    #[error("verification failed")]
    Protocol(#[from] wasm_hypervisor_protocol::Error),
    #[error("the sealed result does not decode")]
    Payload(#[from] PayloadError),
    #[error("the operating system's random number generator failed")]
    Random,
}

/// An identity as a client pins it: the origin and the key, together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedIdentity {
    pub origin: String,
    pub key: IdentityPublicKey,
}

/// A verified execution: the decoded output and everything needed to prove it later.
#[derive(Debug, Clone)]
pub struct Execution {
    pub session_id: String,
    pub output: OutputMap,
    /// The announcement's TBS, which an auditor needs to check `announcement_hash`.
    pub tbs: Vec<u8>,
    pub request_payload: Vec<u8>,
    pub enc_request: Vec<u8>,
    pub enc_response: Vec<u8>,
    pub result_payload: ResultPayload,
    pub request_commitment: Digest,
    pub result_commitment: Digest,
    pub input_commitment: Digest,
    pub output_commitment: Digest,
    /// Whether the response carried the `audit` object (PROTOCOL.md §5); until the audit log
    /// exists it never does, and the caller must say so.
    pub audited: bool,
}

pub struct Client {
    http: awc::Client,
    base_url: String,
}

impl Client {
    pub fn new(base_url: &str) -> Self {
        Self {
            http: awc::Client::builder()
                .timeout(std::time::Duration::from_secs(300))
                .finish(),
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

    /// Runs one program end to end and verifies every check of §3 and §5 that needs no audit log.
    pub async fn execute(
        &self,
        pinned: &PinnedIdentity,
        payload: &RequestPayload,
    ) -> Result<Execution, ClientError> {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let ticket: [u8; 32] = os_random()?;
        let client_nonce = commitment::client_nonce(&ticket);
        let request = api::CreateSession {
            client_nonce: hex::encode(client_nonce),
        };
        let (status, body) = self
            .send(
                self.http
                    .post(self.url("/sessions"))
                    .content_type("application/json"),
                Some(serde_json::to_vec(&request).expect("plain struct").into()),
            )
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
        let session_id = session_id.hyphenated().to_string();
        let announcement_hash = announcement.hash();

        let request_payload = payload.encode();
        let (enc_request, response_key) = sealing::seal_request(
            &announcement.public_key,
            &announcement_hash,
            &request_payload,
            &mut rng,
        )?;
        let execute = self
            .http
            .post(self.url(&format!("/sessions/{session_id}/execute")))
            .content_type(SEALED_REQUEST_CONTENT_TYPE)
            .insert_header((TICKET_HEADER, hex::encode(ticket)));
        let (status, body) = self.send(execute, Some(enc_request.clone().into())).await?;
        let executed: api::Executed = parse(status, StatusCode::OK, &body)?;
        let audited = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .is_some_and(|json| json.get("audit").is_some());
        verify_executed(&executed, &session_id, &announcement, &enc_request)?;

        let result_payload = ResultPayload::decode(&response_key.open(&executed.sealed_result)?)?;
        let output = OutputMap::decode(&result_payload.output)?;
        Ok(Execution {
            session_id,
            output,
            tbs: created.announcement,
            input_commitment: commitment::input_commitment(
                &result_payload.input_blind,
                &request_payload,
            ),
            output_commitment: commitment::output_commitment(
                &result_payload.output_blind,
                &result_payload.output,
            ),
            request_payload,
            enc_request,
            request_commitment: executed.request_commitment,
            result_commitment: executed.result_commitment,
            enc_response: executed.sealed_result,
            result_payload,
            audited,
        })
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

/// The checks of §5 on the JSON, which is outside the AEAD.
fn verify_executed(
    executed: &api::Executed,
    session_id: &str,
    announcement: &Announcement,
    enc_request: &[u8],
) -> Result<(), ClientError> {
    if executed.session_id != session_id || executed.outcome != "executed" {
        return Err(ClientError::InvalidResponse(
            "the result is for another session or outcome".into(),
        ));
    }
    let request_commitment = commitment::request_commitment(&announcement.hash(), enc_request);
    if executed.request_commitment != request_commitment {
        return Err(ClientError::InvalidResponse(
            "request_commitment does not bind what was sent".into(),
        ));
    }
    if executed.result_commitment
        != commitment::result_commitment(&request_commitment, &executed.sealed_result)
    {
        return Err(ClientError::InvalidResponse(
            "result_commitment does not bind the sealed result".into(),
        ));
    }
    Ok(())
}

/// Decodes a success body, or turns the §7 error body into [`ClientError::Server`].
fn parse<T: serde::de::DeserializeOwned>(
    status: StatusCode,
    expected: StatusCode,
    body: &[u8],
) -> Result<T, ClientError> {
    if status == expected {
        return serde_json::from_slice(body)
            .map_err(|error| ClientError::InvalidResponse(error.to_string()));
    }
    match serde_json::from_slice::<api::ErrorBody>(body) {
        Ok(error) => Err(ClientError::Server {
            status: status.as_u16(),
            code: error.error.code,
            message: error.error.message,
            request_commitment: error.request_commitment,
        }),
        Err(_) => Err(ClientError::InvalidResponse(format!(
            "unexpected HTTP status {status}"
        ))),
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
