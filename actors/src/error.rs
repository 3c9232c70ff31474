//! The actors' errors: every way a session request can fail, in the terms of `docs/PROTOCOL.md` §7.

use wasm_hypervisor_protocol::api::ErrorCode;

use crate::auditor::audit_log::AuditError;
use wasm_hypervisor_protocol::commitment::Digest;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("client_nonce must be 64 lowercase hex digits and not all zero")]
    BadClientNonce,
    #[error("no such session")]
    SessionNotFound,
    #[error("the session has expired")]
    SessionExpired,
    #[error("the session was already used")]
    SessionUsed,
    #[error("the Session-Ticket does not match the session's client_nonce")]
    BadTicket,
    #[error("the daemon is at capacity; retry later")]
    Overloaded { retry_after_secs: u32 },
    #[error("the request body exceeds {max_bytes} bytes")]
    PayloadTooLarge { max_bytes: usize },
    #[error("{0}")]
    Malformed(&'static str),
    /// Deliberately says nothing about why.
    #[error("the request could not be opened")]
    UnsealFailed { request_commitment: Digest },
    /// Deliberately says nothing about the cause; the daemon's log has it.
    #[error("the daemon failed while running the session")]
    Internal { request_commitment: Digest },
    #[error("the daemon stopped before the session ended")]
    Aborted { request_commitment: Digest },
    /// An audit query out of range; the message says which rule it breaks.
    #[error("{0}")]
    AuditQuery(&'static str),
    /// Something the daemon needs failed (the audit log, the OS random number generator);
    /// the daemon's log has the cause.
    #[error("{0}")]
    Unavailable(&'static str),
}

impl From<AuditError> for Error {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::BadQuery(reason) => Self::AuditQuery(reason),
            error => {
                log::error!("audit log: {error}");
                Self::Unavailable("the audit log is unavailable")
            }
        }
    }
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadClientNonce | Self::Malformed(_) | Self::AuditQuery(_) => {
                ErrorCode::MalformedRequest
            }
            Self::SessionNotFound => ErrorCode::SessionNotFound,
            Self::SessionExpired => ErrorCode::SessionExpired,
            Self::SessionUsed => ErrorCode::SessionUsed,
            Self::BadTicket => ErrorCode::BadTicket,
            Self::Overloaded { .. } => ErrorCode::Overloaded,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::UnsealFailed { .. } => ErrorCode::UnsealFailed,
            Self::Internal { .. } | Self::Unavailable(_) => ErrorCode::Internal,
            Self::Aborted { .. } => ErrorCode::Aborted,
        }
    }

    /// Present once the session was consumed (§7).
    pub fn request_commitment(&self) -> Option<&Digest> {
        match self {
            Self::UnsealFailed { request_commitment }
            | Self::Internal { request_commitment }
            | Self::Aborted { request_commitment } => Some(request_commitment),
            _ => None,
        }
    }
}
