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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.code().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.0.code().as_str().to_owned(),
                message: self.0.to_string(),
            },
            request_commitment: self.0.request_commitment().map(hex::encode),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Error::Overloaded { retry_after_secs } = self.0 {
            response.insert_header((RETRY_AFTER, retry_after_secs.to_string()));
        }
        response.json(body)
    }
}
