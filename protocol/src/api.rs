//! The JSON bodies of the HTTP API (§2, §3, §5, §7), shared by the daemon and its clients.

use serde::{Deserialize, Serialize};

use crate::encoding::{base64_bytes, hex32};

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
    pub kem: u16,
    pub kdf: u16,
    pub aead: u16,
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
