//! The actors' errors: every way a session request can fail, in the terms of `docs/PROTOCOL.md` §7.

use wasm_hypervisor_protocol::api::ErrorCode;

use crate::auditor::audit_log::AuditError;
use crate::shares::Refusal;

/// How long a client refused for want of a resource should wait before retrying: resources
/// come back as executions end, in well under a second when the daemon is merely busy.
pub const RETRY_AFTER_SECS: u32 = 1;
use wasm_hypervisor_protocol::commitment::Digest;

/// Why a session or audit request was refused or failed; [`Error::code`] gives its §7 code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// `client_nonce` is not 64 lowercase hex digits, or is all zero.
    #[error("client_nonce must be 64 lowercase hex digits and not all zero")]
    BadClientNonce,
    /// No such session, or one already forgotten.
    #[error("no such session")]
    SessionNotFound,
    /// The session is past `expires_at`.
    #[error("the session has expired")]
    SessionExpired,
    /// The session was already consumed.
    #[error("the session was already used")]
    SessionUsed,
    /// The ticket is missing, malformed or does not hash to `client_nonce`.
    #[error("the Session-Ticket does not match the session's client_nonce")]
    BadTicket,
    /// Admission refused: too many open sessions or pending executions, or the log is unwritable.
    #[error("the daemon is at capacity; retry later")]
    Overloaded {
        /// The `Retry-After` the client is sent.
        retry_after_secs: u32,
    },
    /// The client's address holds its share of a resource, or is over its request rate;
    /// nothing was consumed.
    #[error("this address holds its share of the daemon's {resource}; retry later")]
    RateLimited {
        /// What the address holds its share of.
        resource: &'static str,
        /// The `Retry-After` the client is sent.
        retry_after_secs: u32,
    },
    /// The body did not arrive in time or fell below the minimum rate; nothing was consumed
    /// and the connection is closed.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The body is longer than the daemon accepts.
    #[error("the request body exceeds {max_bytes} bytes")]
    PayloadTooLarge {
        /// The daemon's maximum body length.
        max_bytes: usize,
    },
    /// The request is malformed; the message says how.
    #[error("{0}")]
    Malformed(&'static str),
    /// The request did not open; the session is consumed. Deliberately says nothing about why.
    #[error("the request could not be opened")]
    UnsealFailed {
        /// The consumed session's, so the client can find its leaves.
        request_commitment: Digest,
    },
    /// The daemon failed while running the session; the session is consumed. Deliberately says
    /// nothing about the cause; the daemon's log has it.
    #[error("the daemon failed while running the session")]
    Internal {
        /// The consumed session's, so the client can find its leaves.
        request_commitment: Digest,
    },
    /// The daemon stopped before the session ended.
    #[error("the daemon stopped before the session ended")]
    Aborted {
        /// The consumed session's, so the client can find its leaves.
        request_commitment: Digest,
    },
    /// `GET …/result` only: kept too briefly to stay within the result budget.
    #[error(
        "the result was dropped before the end of its retention period to stay within the daemon's budget"
    )]
    ResultEvicted,
    /// An audit query out of range; the message says which rule it breaks.
    #[error("{0}")]
    AuditQuery(&'static str),
    /// Something the daemon needs failed (the audit log, the OS random number generator);
    /// the daemon's log has the cause.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The policy file (§9) cannot be read or does not parse; the daemon's log says why. The
    /// HTTP layer alone meets it, but every §7 answer comes from this one enum.
    #[error("the service's policy is unavailable")]
    PolicyUnavailable,
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
    /// The §7 error code, which also fixes the HTTP status.
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
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::RequestTimeout => ErrorCode::RequestTimeout,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::UnsealFailed { .. } => ErrorCode::UnsealFailed,
            Self::Internal { .. } | Self::Unavailable(_) => ErrorCode::Internal,
            Self::Aborted { .. } => ErrorCode::Aborted,
            Self::ResultEvicted => ErrorCode::ResultEvicted,
            Self::PolicyUnavailable => ErrorCode::PolicyUnavailable,
        }
    }

    /// The refusal for a client past its share of `resource`, or a resource exhausted.
    pub fn refused(refusal: Refusal, resource: &'static str) -> Self {
        match refusal {
            Refusal::AddressShare => Self::RateLimited {
                resource,
                retry_after_secs: RETRY_AFTER_SECS,
            },
            Refusal::Exhausted => Self::Overloaded {
                retry_after_secs: RETRY_AFTER_SECS,
            },
        }
    }

    /// The `Retry-After` of a refusal that a later retry may not get.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Self::Overloaded { retry_after_secs }
            | Self::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
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
