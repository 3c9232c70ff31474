//! The JSON bodies of the HTTP API (§2, §3, §5, §7), shared by the daemon and its clients.

use serde::{Deserialize, Serialize};

use crate::commitment::Digest;
use crate::encoding::{base64_bytes, base64_digests, hex32};

/// `GET /identity`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// Names both the signing key and the audit log.
    pub origin: String,
    /// The identity public key, uncompressed SEC1 (65 bytes).
    #[serde(with = "base64_bytes")]
    pub public_key: Vec<u8>,
    /// The same key as SPKI DER, from which the note key ID is derived.
    #[serde(with = "base64_bytes")]
    pub spki: Vec<u8>,
    /// `H3(SEC1 public key)`: what an announcement's `identity_fpr` must equal.
    #[serde(with = "hex32")]
    pub fingerprint: [u8; 32],
    /// The signed-note verifier key for checkpoints: `origin+keyid+base64(0x02 ‖ SPKI)`.
    pub note_verifier_key: String,
    /// The HPKE suite session keys use.
    pub suite: Suite,
}

impl Identity {
    /// What `GET /identity` publishes for `public` under `origin`.
    pub fn of(public: &crate::identity::IdentityPublicKey, origin: String) -> Self {
        Self {
            note_verifier_key: public.note_verifier_key(&origin),
            origin,
            public_key: public.sec1().to_vec(),
            spki: public.spki_der(),
            fingerprint: public.fingerprint(),
            suite: SUITE,
        }
    }
}

/// HPKE algorithm ids (RFC 9180), as `GET /identity` publishes them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Suite {
    pub(crate) kem: u16,
    pub(crate) kdf: u16,
    pub(crate) aead: u16,
}

/// The only suite of version 1.
pub const SUITE: Suite = Suite {
    kem: crate::sealing::KEM_ID,
    kdf: crate::sealing::KDF_ID,
    aead: crate::sealing::AEAD_ID,
};

/// `POST /sessions` request body. The nonce stays text so the server can answer a malformed one
/// with `malformed_request` rather than a generic JSON error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSession {
    /// Hex of `H3("wasm-hv/v1 ticket" ‖ 0x00 ‖ ticket)`.
    pub client_nonce: String,
}

impl CreateSession {
    /// The nonce's 32 bytes: 64 lowercase hex digits, not all zero (§3); `None` otherwise.
    pub fn client_nonce(&self) -> Option<Digest> {
        crate::encoding::hex_decode::<32>(&self.client_nonce).filter(|nonce| *nonce != [0; 32])
    }
}

/// `POST /sessions` response body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionCreated {
    /// The session's UUID, lowercase 8-4-4-4-12.
    pub session_id: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`, the TBS's `expires_at`.
    pub expires_at: String,
    /// The 205-byte TBS.
    #[serde(with = "base64_bytes")]
    pub announcement: Vec<u8>,
    /// The identity key's DER signature over the TBS.
    #[serde(with = "base64_bytes")]
    pub signature: Vec<u8>,
}

/// `200` of `POST /sessions/{id}/execute` and `GET /sessions/{id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Executed {
    /// The session the result belongs to.
    pub session_id: String,
    /// Always `"executed"`.
    pub outcome: String,
    /// Binds the announcement and the exact `enc_request` bytes.
    #[serde(with = "hex32")]
    pub request_commitment: [u8; 32],
    /// Binds `request_commitment` and the exact `sealed_result` bytes.
    #[serde(with = "hex32")]
    pub result_commitment: [u8; 32],
    /// `enc_response`: only the client can open it.
    #[serde(with = "base64_bytes")]
    pub sealed_result: Vec<u8>,
    /// Proof that the result leaf is in the log.
    pub audit: Audit,
}

/// An [`Executed`] body built in two steps, so that the large part is encoded where the result
/// was sealed and only the small `audit` object where the result leaf joins the tree: the
/// base64 of a sealed result of up to 16 MiB must not hold up the log's writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutedBody {
    /// `{"session_id": …, "sealed_result": …, "audit":` — everything before the audit object.
    head: Vec<u8>,
}

/// Room for a whole `audit` object: a proof of 63 hashes, the leaf and a checkpoint.
const AUDIT_RESERVE: usize = 8 << 10;

/// [`Executed`] without `audit`, borrowing the sealed result rather than copying it.
#[derive(Serialize)]
struct ExecutedHead<'a> {
    session_id: String,
    outcome: &'static str,
    #[serde(with = "hex32")]
    request_commitment: [u8; 32],
    #[serde(with = "hex32")]
    result_commitment: [u8; 32],
    #[serde(with = "base64_bytes")]
    sealed_result: &'a [u8],
}

impl ExecutedBody {
    /// The body's fields that are known once the result is sealed.
    pub fn new(
        session_id: &[u8; 16],
        request_commitment: Digest,
        result_commitment: Digest,
        sealed_result: &[u8],
    ) -> Self {
        let mut head = serde_json::to_vec(&ExecutedHead {
            session_id: SessionId(*session_id).to_string(),
            outcome: "executed",
            request_commitment,
            result_commitment,
            sealed_result,
        })
        .expect("a struct of strings serializes");
        // Reopen the object: `audit` is its last field, as in `Executed`. The room reserved
        // for it keeps `finish` from copying a body of many MiB to grow it.
        head.pop();
        head.reserve(AUDIT_RESERVE);
        head.extend_from_slice(br#","audit":"#);
        Self { head }
    }

    /// The whole body, byte for byte what serializing the matching [`Executed`] gives.
    pub fn finish(self, audit: &Audit) -> Vec<u8> {
        let mut body = self.head;
        serde_json::to_writer(&mut body, audit).expect("a struct of strings serializes");
        body.push(b'}');
        body
    }
}

/// The execute response's `audit` object (§5): the result leaf, its proof and the checkpoint
/// the proof is against.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Audit {
    /// The session's request leaf's index.
    pub request_index: u64,
    /// The result leaf's index, where `inclusion_proof` proves it.
    pub result_index: u64,
    /// The result leaf's 163 bytes.
    #[serde(with = "base64_bytes")]
    pub leaf: Vec<u8>,
    /// RFC 9162 inclusion proof of the leaf against `checkpoint`.
    #[serde(with = "base64_digests")]
    pub inclusion_proof: Vec<Digest>,
    /// The signed note the proof is against.
    pub checkpoint: String,
}

/// `GET /audit/{session_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionAudit {
    /// The session asked about.
    pub session_id: String,
    /// The session's leaves, ascending.
    pub entries: Vec<AuditEntry>,
    /// The signed note every proof is against.
    pub checkpoint: String,
}

/// One of a session's leaves in `GET /audit/{session_id}`, with its proof.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// The leaf's position in the log.
    pub index: u64,
    /// The leaf's bytes.
    #[serde(with = "base64_bytes")]
    pub leaf: Vec<u8>,
    /// The leaf decoded, hashes in hex (informative: verifiers use `leaf`).
    pub record: serde_json::Value,
    /// RFC 9162 inclusion proof against the response's checkpoint.
    #[serde(with = "base64_digests")]
    pub inclusion_proof: Vec<Digest>,
}

/// `GET /audit/consistency`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Consistency {
    /// The smaller tree size.
    pub old: u64,
    /// The larger tree size.
    pub new: u64,
    /// RFC 9162 §2.1.4 consistency proof from `old` to `new`.
    #[serde(with = "base64_digests")]
    pub proof: Vec<Digest>,
}

/// `GET /audit/entries`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entries {
    /// The leaves in index order.
    pub entries: Vec<LeafAt>,
}

/// One leaf of `GET /audit/entries`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeafAt {
    /// The leaf's position in the log.
    pub index: u64,
    /// The leaf's bytes.
    #[serde(with = "base64_bytes")]
    pub leaf: Vec<u8>,
}

/// A leaf as the `record` of §6: the field names of the layout, hashes in hex.
pub fn leaf_record(leaf: &crate::leaf::Leaf) -> serde_json::Value {
    use crate::leaf::Leaf;
    match leaf {
        Leaf::Request(leaf) => serde_json::json!({
            "kind": "request",
            "session_id": SessionId(leaf.session_id).to_string(),
            "time_ms": leaf.time_ms,
            "announcement_hash": hex::encode(leaf.announcement_hash),
            "request_commitment": hex::encode(leaf.request_commitment),
        }),
        Leaf::Result(leaf) => serde_json::json!({
            "kind": "result",
            "session_id": SessionId(leaf.session_id).to_string(),
            "time_ms": leaf.time_ms,
            "request_index": leaf.request_index,
            "outcome": leaf.outcome.as_str(),
            "request_commitment": hex::encode(leaf.request_commitment),
            "result_commitment": hex::encode(leaf.result_commitment),
            "input_commitment": hex::encode(leaf.input_commitment),
            "output_commitment": hex::encode(leaf.output_commitment),
        }),
    }
}

/// A session id's 16 bytes from its text, which must be the canonical lowercase 8-4-4-4-12
/// form, so that one session has one name.
fn session_id_from_text(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.split('-').collect();
    let groups: Vec<usize> = text.split('-').map(str::len).collect();
    if groups != [8, 4, 4, 4, 12] {
        return None;
    }
    crate::encoding::hex_decode(&hex)
}

/// A session's id as URLs name it: the UUID's 16 bytes. Its one text form is the lowercase
/// 8-4-4-4-12 one, both ways ([`SessionId::parse`] and `Display`), so one session has one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// The id of `text` in its canonical form; `None` for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        session_id_from_text(text).map(Self)
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&uuid_text(&self.0))
    }
}

/// The `Session-Ticket` header's secret: exactly 64 lowercase hex digits. It never prints.
#[derive(Clone, Copy)]
pub struct Ticket([u8; 32]);

impl Ticket {
    /// The ticket of a header value; `None` for anything but 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        crate::encoding::hex_decode(text).map(Self)
    }

    /// Whether this is the ticket behind a session's `client_nonce` (§3).
    pub fn opens(&self, client_nonce: &Digest) -> bool {
        crate::commitment::client_nonce(&self.0) == *client_nonce
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket(…)")
    }
}

/// The lowercase 8-4-4-4-12 form of a session id's 16 bytes.
fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `202` of `GET /sessions/{id}/result` while the execution runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Running {
    /// The session still running.
    pub session_id: String,
    /// Always `"running"`.
    pub outcome: String,
}

/// Every HTTP error body (§7).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
    /// Hex, present once the session was consumed, so the client can find its leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_commitment: Option<String>,
}

/// The codes of a load balancer's own answers in front of replicas (§9): `502`/`503`
/// `replica_unavailable` and `504 gateway_timeout`. No replica sends them; they say that the
/// replica was not reached or did not answer, and a request must stay with it.
pub const LOAD_BALANCER_ERROR_CODES: [&str; 2] = ["replica_unavailable", "gateway_timeout"];

/// The `error` object of an HTTP error body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// One of §7's snake_case codes.
    pub code: String,
    /// For a human; never says why an open failed.
    pub message: String,
}

/// The error codes of §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Body, header, length or content type wrong.
    MalformedRequest,
    /// HPKE open failed; the session is consumed.
    UnsealFailed,
    /// The `Session-Ticket` does not hash to the session's `client_nonce`.
    BadTicket,
    /// No such session.
    SessionNotFound,
    /// The session was already consumed.
    SessionUsed,
    /// Past the session's `expires_at`.
    SessionExpired,
    /// The body is over the daemon's maximum.
    PayloadTooLarge,
    /// The daemon failed while running the session.
    Internal,
    /// The daemon stopped before the session ended.
    Aborted,
    /// `GET …/result` only: dropped early to keep the kept results within their budget.
    ResultEvicted,
    /// Admission refused; try again after `Retry-After`.
    Overloaded,
    /// The client's address holds its share, or is over its rate; try again after
    /// `Retry-After`.
    RateLimited,
    /// The body did not arrive in time; the connection is closed.
    RequestTimeout,
    /// `GET /policy` only: the service's policy file cannot be read or does not parse (§9).
    PolicyUnavailable,
}

impl ErrorCode {
    /// The wire name, in snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::UnsealFailed => "unseal_failed",
            Self::BadTicket => "bad_ticket",
            Self::SessionNotFound => "session_not_found",
            Self::SessionUsed => "session_used",
            Self::SessionExpired => "session_expired",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Internal => "internal",
            Self::Aborted => "aborted",
            Self::ResultEvicted => "result_evicted",
            Self::Overloaded => "overloaded",
            Self::RateLimited => "rate_limited",
            Self::RequestTimeout => "request_timeout",
            Self::PolicyUnavailable => "policy_unavailable",
        }
    }

    /// The HTTP status §7 assigns to the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::MalformedRequest | Self::UnsealFailed => 400,
            Self::BadTicket => 403,
            Self::SessionNotFound => 404,
            Self::RequestTimeout => 408,
            Self::SessionUsed => 409,
            Self::SessionExpired | Self::ResultEvicted => 410,
            Self::PayloadTooLarge => 413,
            Self::Internal | Self::Aborted => 500,
            Self::Overloaded | Self::PolicyUnavailable => 503,
            Self::RateLimited => 429,
        }
    }
}

/// The request content type of §4.
pub const SEALED_REQUEST_CONTENT_TYPE: &str = "application/vnd.wasm-hypervisor.sealed-request";
/// The other request content type the daemon accepts.
pub const OCTET_STREAM_CONTENT_TYPE: &str = "application/octet-stream";
/// The header that carries the hex ticket.
pub const TICKET_HEADER: &str = "Session-Ticket";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_have_one_text_form() {
        let text = "6f1e0c4a-3b2d-4c1e-9f8a-7b6c5d4e3f21";
        let id = SessionId::parse(text).unwrap();
        assert_eq!(id.to_string(), text);
        for other in [
            "6F1E0C4A-3B2D-4C1E-9F8A-7B6C5D4E3F21",
            "6f1e0c4a3b2d4c1e9f8a7b6c5d4e3f21",
            "{6f1e0c4a-3b2d-4c1e-9f8a-7b6c5d4e3f21}",
            "6f1e0c4a-3b2d-4c1e-9f8a-7b6c5d4e3f2",
            "6f1e0c4a-3b2d-4c1e-9f8a7b6c-5d4e3f21",
            "",
        ] {
            assert_eq!(SessionId::parse(other), None, "{other}");
        }
    }

    #[test]
    fn an_executed_body_built_in_two_steps_is_the_serialized_struct() {
        let audit = Audit {
            request_index: 41,
            result_index: 42,
            leaf: vec![1; 163],
            inclusion_proof: vec![[2; 32], [3; 32]],
            checkpoint: "example.com/log\n43\nroot\n\n— sig\n".to_owned(),
        };
        let session_id = [0x6f; 16];
        let sealed_result = vec![0xa5; 1000];
        let body = ExecutedBody::new(&session_id, [4; 32], [5; 32], &sealed_result).finish(&audit);
        let whole = Executed {
            session_id: SessionId(session_id).to_string(),
            outcome: "executed".to_owned(),
            request_commitment: [4; 32],
            result_commitment: [5; 32],
            sealed_result,
            audit,
        };
        assert_eq!(body, serde_json::to_vec(&whole).unwrap());
        assert_eq!(serde_json::from_slice::<Executed>(&body).unwrap(), whole);
    }
}
