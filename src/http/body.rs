//! Receiving request bodies (`docs/PROTOCOL.md` §4): each must arrive within a time bound and
//! above a minimum rate, or it is answered `408` and its connection closed; while it arrives it
//! counts against its client address's share of the bytes being received, so slow or stalled
//! uploads can hold neither unbounded memory nor another address's room.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use futures_util::StreamExt as _;
use wasm_hypervisor_actors::Error;
use wasm_hypervisor_actors::metrics::Metrics;
use wasm_hypervisor_actors::shares::{AddressShare, ClientAddress, Held, Refusal, Share};

/// What the refusals of this module name.
const RESOURCE: &str = "request bytes being received";

/// How request bodies must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Longest pause between two reads of a body, and the time a body has before the minimum
    /// rate applies (nginx's `client_body_timeout`, at the 10 s CIS advises). Default: 10 s.
    pub timeout: Duration,
    /// Bytes per second a body must have averaged once its first `timeout` has passed, so that
    /// a trickle cannot hold a connection for ever; 0 turns this off. Default: 16 384.
    pub min_rate: u64,
    /// Bytes of request bodies being received at once, of which one address may hold its
    /// share. Default: 1 GiB.
    pub max_in_flight: u64,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            min_rate: 16 << 10,
            max_in_flight: 1 << 30,
        }
    }
}

impl BodyLimits {
    /// When the next bytes of a body begun at `started` must have come, if `received` bytes
    /// came so far, the last of them at `last_read`.
    fn deadline(&self, started: Instant, last_read: Instant, received: usize) -> Instant {
        let pause = last_read + self.timeout;
        if self.min_rate == 0 {
            return pause;
        }
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        pause.min(started + self.timeout + earned)
    }
}

/// The bodies being received, and how they must arrive.
pub(crate) struct Bodies {
    in_flight: Arc<Share>,
    limits: BodyLimits,
    metrics: Arc<Metrics>,
}

impl Bodies {
    pub(crate) fn new(limits: BodyLimits, share: AddressShare, metrics: Arc<Metrics>) -> Self {
        Self {
            in_flight: Share::new(limits.max_in_flight, share),
            limits,
            metrics,
        }
    }

    fn refused(&self, refusal: Refusal) -> Error {
        self.metrics.refused("body_bytes");
        Error::refused(refusal, RESOURCE)
    }

    /// §4's first check for a body, before anything else is asked of the request: the
    /// address's share of the bytes being received (`429`). That the total has no room
    /// (`503`) is only answered when the body is about to be read, after the checks §4 puts
    /// before it. A declared length is taken at once, so that the body is never copied.
    pub(crate) fn reserve(
        &self,
        client: ClientAddress,
        declared: Option<u64>,
        max_bytes: usize,
    ) -> Result<BodyPlace, Error> {
        let declared = declared.filter(|&length| length <= max_bytes as u64);
        let place = self.in_flight.take(client, declared.unwrap_or(0));
        if let Err(Refusal::AddressShare) = place {
            return Err(self.refused(Refusal::AddressShare));
        }
        Ok(BodyPlace {
            place: place.map_err(|refusal| self.refused(refusal)),
            limits: self.limits,
            max_bytes,
            metrics: Arc::clone(&self.metrics),
        })
    }
}

/// A body's room among the bytes being received, before it is read.
pub(crate) struct BodyPlace {
    place: Result<Held, Error>,
    limits: BodyLimits,
    max_bytes: usize,
    metrics: Arc<Metrics>,
}

/// A received body and its place among the bytes being received, which its handler gives
/// back once it has passed the bytes on.
pub(crate) struct Received {
    pub(crate) bytes: Vec<u8>,
    pub(crate) place: Held,
}

impl BodyPlace {
    /// Reads the whole body. Fails with `413` when it is longer than the maximum (reading no
    /// further), `400` when its transfer breaks off, `408` when it is late, and `429`/`503`
    /// when a body of undeclared length outgrows the room it may take.
    pub(crate) async fn receive(self, mut payload: web::Payload) -> Result<Received, Error> {
        let Self {
            place,
            limits,
            max_bytes,
            metrics,
        } = self;
        let mut place = place?;
        let mut bytes = Vec::with_capacity(usize::try_from(place.amount()).unwrap_or(0));
        let started = Instant::now();
        let mut last_read = started;
        loop {
            let deadline = limits.deadline(started, last_read, bytes.len());
            let next = tokio::time::timeout_at(deadline.into(), payload.next()).await;
            let chunk = match next {
                Err(_late) => return Err(Error::RequestTimeout),
                Ok(None) => return Ok(Received { bytes, place }),
                Ok(Some(Err(_))) => {
                    return Err(Error::Malformed("the request body could not be read"));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            last_read = Instant::now();
            let length = bytes.len() + chunk.len();
            if length > max_bytes {
                return Err(Error::PayloadTooLarge { max_bytes });
            }
            if length > bytes.capacity() {
                // Undeclared length: the room is taken before the memory is.
                let capacity = length.max(bytes.capacity() * 2).min(max_bytes);
                place.grow_to(capacity as u64).map_err(|refusal| {
                    metrics.refused("body_bytes");
                    Error::refused(refusal, RESOURCE)
                })?;
                bytes.reserve_exact(capacity - bytes.len());
            }
            bytes.extend_from_slice(&chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_must_not_pause_and_must_keep_the_minimum_rate() {
        let limits = BodyLimits {
            timeout: Duration::from_secs(10),
            min_rate: 1000,
            max_in_flight: 1 << 20,
        };
        let started = Instant::now();
        let secs = |n| Duration::from_secs(n);
        assert_eq!(
            limits.deadline(started, started, 0),
            started + secs(10),
            "nothing yet: the first timeout"
        );
        assert_eq!(
            limits.deadline(started, started + secs(9), 5_000),
            started + secs(15),
            "5 000 bytes earn 5 s beyond the first 10"
        );
        assert_eq!(
            limits.deadline(started, started + secs(2), 1_000_000),
            started + secs(12),
            "fast, then a pause: the pause ends it"
        );
        let no_rate = BodyLimits {
            min_rate: 0,
            ..limits
        };
        assert_eq!(
            no_rate.deadline(started, started + secs(100), 1),
            started + secs(110)
        );
    }
}
