//! The JSON bodies of the HTTP API (§2, §3, §5, §7), shared by the daemon and its clients.

use serde::{Deserialize, Serialize};

use crate::commitment::Digest;
use crate::encoding::{base64_bytes, base64_digests, hex32};

/// `GET /identity`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub origin: String,
    #[serde(with = "base64_bytes")]
    pub public_key: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub spki: Vec<u8>,
    #[serde(with = "hex32")]
    pub fingerprint: [u8; 32],
    pub note_verifier_key: String,
    pub suite: Suite,
}

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
    pub client_nonce: String,
}

/// `POST /sessions` response body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionCreated {
    pub session_id: String,
    pub expires_at: String,
    #[serde(with = "base64_bytes")]
    pub announcement: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub signature: Vec<u8>,
}

/// `200` of `POST /sessions/{id}/execute` and `GET /sessions/{id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Executed {
    pub session_id: String,
    /// Always `"executed"`.
    pub outcome: String,
    #[serde(with = "hex32")]
    pub request_commitment: [u8; 32],
    #[serde(with = "hex32")]
    pub result_commitment: [u8; 32],
    #[serde(with = "base64_bytes")]
    pub sealed_result: Vec<u8>,
    pub audit: Audit,
}

/// The execute response's `audit` object (§5): the result leaf, its proof and the checkpoint
/// the proof is against.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Audit {
    pub request_index: u64,
    pub result_index: u64,
    #[serde(with = "base64_bytes")]
    pub leaf: Vec<u8>,
    #[serde(with = "base64_digests")]
    pub inclusion_proof: Vec<Digest>,
    pub checkpoint: String,
}

/// `GET /audit/{session_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionAudit {
    pub session_id: String,
    pub entries: Vec<AuditEntry>,
    pub checkpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub index: u64,
    #[serde(with = "base64_bytes")]
    pub leaf: Vec<u8>,
    /// The leaf decoded, hashes in hex (informative: verifiers use `leaf`).
    pub record: serde_json::Value,
    #[serde(with = "base64_digests")]
    pub inclusion_proof: Vec<Digest>,
}

/// `GET /audit/consistency`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Consistency {
    pub old: u64,
    pub new: u64,
    #[serde(with = "base64_digests")]
    pub proof: Vec<Digest>,
}

/// `GET /audit/entries`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entries {
    pub entries: Vec<LeafAt>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeafAt {
    pub index: u64,
    #[serde(with = "base64_bytes")]
    pub leaf: Vec<u8>,
}

/// A leaf as the `record` of §6: the field names of the layout, hashes in hex.
pub fn leaf_record(leaf: &crate::leaf::Leaf) -> serde_json::Value {
    use crate::leaf::Leaf;
    match leaf {
        Leaf::Request(leaf) => serde_json::json!({
            "kind": "request",
            "session_id": uuid_text(&leaf.session_id),
            "time_ms": leaf.time_ms,
            "announcement_hash": hex::encode(leaf.announcement_hash),
            "request_commitment": hex::encode(leaf.request_commitment),
        }),
        Leaf::Result(leaf) => serde_json::json!({
            "kind": "result",
            "session_id": uuid_text(&leaf.session_id),
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
pub fn session_id_from_text(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.split('-').collect();
    let groups: Vec<usize> = text.split('-').map(str::len).collect();
    if groups != [8, 4, 4, 4, 12] {
        return None;
    }
    crate::encoding::hex_decode(&hex)
}

/// The lowercase 8-4-4-4-12 form of a session id's 16 bytes.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
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
    pub session_id: String,
    /// Always `"running"`.
    pub outcome: String,
}

/// Every HTTP error body (§7).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_commitment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// The error codes of §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    MalformedRequest,
    UnsealFailed,
    BadTicket,
    SessionNotFound,
    SessionUsed,
    SessionExpired,
    PayloadTooLarge,
    Internal,
    Aborted,
    Overloaded,
}

impl ErrorCode {
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
            Self::Overloaded => "overloaded",
        }
    }

    /// The HTTP status §7 assigns to the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::MalformedRequest | Self::UnsealFailed => 400,
            Self::BadTicket => 403,
            Self::SessionNotFound => 404,
            Self::SessionUsed => 409,
            Self::SessionExpired => 410,
            Self::PayloadTooLarge => 413,
            Self::Internal | Self::Aborted => 500,
            Self::Overloaded => 503,
        }
    }
}

/// The request content type of §4, and the one also accepted.
pub const SEALED_REQUEST_CONTENT_TYPE: &str = "application/vnd.wasm-hypervisor.sealed-request";
pub const OCTET_STREAM_CONTENT_TYPE: &str = "application/octet-stream";
/// The header that carries the hex ticket.
pub const TICKET_HEADER: &str = "Session-Ticket";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_have_one_text_form() {
        let text = "6f1e0c4a-3b2d-4c1e-9f8a-7b6c5d4e3f21";
        let bytes = session_id_from_text(text).unwrap();
        assert_eq!(uuid_text(&bytes), text);
        for other in [
            "6F1E0C4A-3B2D-4C1E-9F8A-7B6C5D4E3F21",
            "6f1e0c4a3b2d4c1e9f8a7b6c5d4e3f21",
            "{6f1e0c4a-3b2d-4c1e-9f8a-7b6c5d4e3f21}",
            "6f1e0c4a-3b2d-4c1e-9f8a-7b6c5d4e3f2",
            "6f1e0c4a-3b2d-4c1e-9f8a7b6c-5d4e3f21",
            "",
        ] {
            assert_eq!(session_id_from_text(other), None, "{other}");
        }
    }
}
