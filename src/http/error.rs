//! The one place where errors become HTTP responses (`docs/PROTOCOL.md` §7).

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};
use wasm_hypervisor_actors::Error;
use wasm_hypervisor_protocol::api::{ErrorBody, ErrorDetail};

/// An actors error on its way to the client.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct ApiError(#[from] pub(crate) Error);

impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        log::error!("the supervisor is not answering");
        Self(Error::Overloaded {
            retry_after_secs: 1,
        })
    }
}

fn status(error: &Error) -> StatusCode {
    StatusCode::from_u16(error.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn body(error: &Error) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail {
            code: error.code().as_str().to_owned(),
            message: error.to_string(),
        },
        request_commitment: error.request_commitment().map(hex::encode),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.0.retry_after_secs() {
            response.insert_header((RETRY_AFTER, secs.to_string()));
        }
        // The rest of a late body may never come: the connection cannot carry another request.
        if matches!(self.0, Error::RequestTimeout) {
            response.force_close();
        }
        response.json(body(&self.0))
    }
}

/// A whole HTTP/1.1 response for `error`, closing the connection, for the listener to write
/// to a connection it refuses before HTTP is spoken on it.
pub(crate) fn canned_response(error: &Error) -> Vec<u8> {
    let json = serde_json::to_vec(&body(error)).unwrap_or_default();
    let status = status(error);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        json.len()
    );
    if let Some(secs) = error.retry_after_secs() {
        head.push_str(&format!("retry-after: {secs}\r\n"));
    }
    head.push_str("\r\n");
    let mut response = head.into_bytes();
    response.extend_from_slice(&json);
    response
}
