//! A byte budget for the kept results being sent at once. `GET …/result` needs no ticket and a
//! result may be 16 MiB, so without it a burst of reads could hold any amount of memory; each
//! body holds its share until it is sent or its connection drops, and a read past the budget is
//! answered `503`.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use wasm_hypervisor_actors::Error;

use super::ApiError;

/// Sent in pieces this large, so that the body, not the connection's write buffer, holds the
/// bytes not yet sent, and they stay counted.
const CHUNK_BYTES: usize = 64 << 10;

/// Shared by every request; cloning shares the budget.
#[derive(Debug, Clone)]
pub(crate) struct ReadBudget {
    in_use: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl ReadBudget {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            in_use: Arc::default(),
            max_bytes,
        }
    }

    /// Counts `body` against the budget until it is sent or dropped; `503` if it does not fit.
    pub(crate) fn reserve(&self, body: Vec<u8>) -> Result<BudgetedBody, ApiError> {
        let len = body.len();
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
                in_use
                    .checked_add(len)
                    .filter(|&total| total <= self.max_bytes)
            })
            .map_err(|_| {
                ApiError(Error::Overloaded {
                    retry_after_secs: 1,
                })
            })?;
        Ok(BudgetedBody {
            len,
            rest: Bytes::from(body),
            _held: Held {
                in_use: Arc::clone(&self.in_use),
                len,
            },
        })
    }

    /// Bytes counted now.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }
}

/// A response body that gives its bytes back to the budget when it is dropped.
pub(crate) struct BudgetedBody {
    len: usize,
    rest: Bytes,
    _held: Held,
}

struct Held {
    in_use: Arc<AtomicUsize>,
    len: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.in_use.fetch_sub(self.len, Ordering::AcqRel);
    }
}

impl MessageBody for BudgetedBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.len as u64)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let body = self.get_mut();
        if body.rest.is_empty() {
            return Poll::Ready(None);
        }
        let chunk = body.rest.split_to(body.rest.len().min(CHUNK_BYTES));
        Poll::Ready(Some(Ok(chunk)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_hold_their_bytes_until_dropped_and_the_budget_is_never_exceeded() {
        let budget = ReadBudget::new(100);
        let first = budget.reserve(vec![1; 60]).unwrap();
        assert_eq!(budget.in_use(), 60);
        assert!(budget.reserve(vec![2; 41]).is_err(), "61 + 60 > 100");
        let second = budget.reserve(vec![3; 40]).unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(first);
        assert_eq!(budget.in_use(), 40);
        drop(second);
        assert_eq!(budget.in_use(), 0);
    }

    #[actix_rt::test]
    async fn a_body_is_sent_whole_in_chunks() {
        let budget = ReadBudget::new(1 << 20);
        let bytes: Vec<u8> = (0..200_000u32).map(|n| n as u8).collect();
        let body = budget.reserve(bytes.clone()).unwrap();
        assert_eq!(body.size(), BodySize::Sized(200_000));
        let sent = actix_web::body::to_bytes(body).await.unwrap();
        assert_eq!(sent, bytes);
        assert_eq!(budget.in_use(), 0);
    }
}
