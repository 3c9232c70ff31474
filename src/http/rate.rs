//! The optional request rate of each client address: a token bucket (governor's GCRA), off by
//! default. Checked before anything else a request asks for; health probes are exempt, so a
//! load balancer sharing an address with clients never sees the daemon as down.

use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use wasm_hypervisor_actors::Error;
use wasm_hypervisor_actors::shares::ClientAddress;

/// A rate per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Requests per second, sustained.
    pub per_second: NonZeroU32,
    /// Requests an idle address may make at once.
    pub burst: NonZeroU32,
}

/// Every address's bucket.
pub(crate) struct RateLimit {
    limiter: DefaultKeyedRateLimiter<ClientAddress>,
    clock: DefaultClock,
}

impl RateLimit {
    pub(crate) fn new(config: RateConfig) -> Self {
        Self {
            limiter: governor::RateLimiter::keyed(
                Quota::per_second(config.per_second).allow_burst(config.burst),
            ),
            clock: DefaultClock::default(),
        }
    }

    /// `429` with the wait until `client`'s next request is allowed, if it is over its rate.
    pub(crate) fn check(&self, client: ClientAddress) -> Result<(), Error> {
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Error::RateLimited {
                resource: "request rate",
                retry_after_secs: u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX),
            }
        })
    }

    /// Forgets the buckets of addresses that have been idle long enough to be full again, so
    /// the table holds only recent addresses.
    pub(crate) fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_bucket() {
        let rate = RateLimit::new(RateConfig {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
        });
        let one = ClientAddress::of("127.0.0.1".parse().unwrap());
        let other = ClientAddress::of("127.0.0.2".parse().unwrap());
        assert!(rate.check(one).is_ok() && rate.check(one).is_ok());
        let refused = rate.check(one).unwrap_err();
        assert!(
            matches!(
                refused,
                Error::RateLimited {
                    retry_after_secs: 1,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert!(rate.check(other).is_ok(), "another address is not charged");
    }
}
