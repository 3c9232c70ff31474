//! Per-client-address shares of the daemon's global resources (connections, open sessions,
//! queued executions and their bytes, request bodies being read): no address may hold more
//! than its share of any of them, so a flood from one address leaves the rest to everyone
//! else, while a lone client still gets far more than it can use.
//!
//! An address that holds nothing may always take one amount, however large, if the total
//! allows it: a share smaller than one request never locks its address out.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// Whom a share is counted against: the peer's IP address, or for IPv6 its /64 prefix, the
/// block a single subscriber is usually given (RFC 6177) and can pick addresses from at will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// The address `ip` is counted as; an IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6(Ipv6Addr::from_bits(
                    v6.to_bits() & !u128::from(u64::MAX),
                ))),
            },
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The fraction of each global resource one client address may hold, in percent (1–100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressShare(u8);

impl AddressShare {
    /// The default: a quarter, so one address leaves three quarters to the others, and a lone
    /// client can still hold thousands of sessions and connections.
    pub const DEFAULT: Self = Self(25);

    /// `percent` of each resource; `None` unless 1 to 100.
    pub fn percent(percent: u8) -> Option<Self> {
        (1..=100).contains(&percent).then_some(Self(percent))
    }

    /// One address's part of `total`: at least 1.
    pub fn of(self, total: u64) -> u64 {
        let part = u128::from(total) * u128::from(self.0) / 100;
        u64::try_from(part).unwrap_or(u64::MAX).max(1)
    }
}

impl Default for AddressShare {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What each address holds of one resource, against the most one address may hold. Not
/// synchronized: its owner holds the lock.
#[derive(Debug)]
pub(crate) struct Holdings {
    per_address: u64,
    /// Only addresses that hold something, so the table is no larger than what is held.
    held: HashMap<ClientAddress, u64>,
}

impl Holdings {
    pub(crate) fn new(per_address: u64) -> Self {
        Self {
            per_address,
            held: HashMap::new(),
        }
    }

    /// Whether `client` may take `amount` more.
    pub(crate) fn allows(&self, client: ClientAddress, amount: u64) -> bool {
        let held = self.held.get(&client).copied().unwrap_or(0);
        held == 0 || held.saturating_add(amount) <= self.per_address
    }

    /// Whether `client` holds less than its share.
    pub(crate) fn below_share(&self, client: ClientAddress) -> bool {
        self.held
            .get(&client)
            .is_none_or(|&held| held < self.per_address)
    }

    pub(crate) fn take(&mut self, client: ClientAddress, amount: u64) {
        let held = self.held.entry(client).or_default();
        *held = held.saturating_add(amount);
    }

    pub(crate) fn give_back(&mut self, client: ClientAddress, amount: u64) {
        if let Some(held) = self.held.get_mut(&client) {
            *held = held.saturating_sub(amount);
            if *held == 0 {
                self.held.remove(&client);
            }
        }
    }
}

/// Why a share could not be taken, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address holds its share (`429 rate_limited`).
    AddressShare,
    /// Everyone together holds the whole resource (`503 overloaded`).
    Exhausted,
}

/// A resource bounded in total and per address, shared between threads. What is taken comes
/// back when its [`Held`] is dropped.
#[derive(Debug)]
pub struct Share {
    state: Mutex<ShareState>,
}

#[derive(Debug)]
struct ShareState {
    max_total: u64,
    total: u64,
    holdings: Holdings,
}

impl Share {
    /// `max_total` in all, of which each address may hold `share`.
    pub fn new(max_total: u64, share: AddressShare) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(ShareState {
                max_total,
                total: 0,
                holdings: Holdings::new(share.of(max_total)),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ShareState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `amount` for `client`, if its share and the total allow it.
    pub fn take(self: &Arc<Self>, client: ClientAddress, amount: u64) -> Result<Held, Refusal> {
        self.state().take(Some(client), amount)?;
        Ok(Held {
            share: Arc::clone(self),
            client: Some(client),
            amount,
        })
    }

    /// Takes `amount` of the total for a client not yet known, if the total allows it; no
    /// address's share is charged until [`Held::assign_to`] names the client. A proxy's
    /// connection is held so until the proxy has said whom it relays.
    pub fn take_unassigned(self: &Arc<Self>, amount: u64) -> Result<Held, Refusal> {
        self.state().take(None, amount)?;
        Ok(Held {
            share: Arc::clone(self),
            client: None,
            amount,
        })
    }

    /// What everyone holds together.
    pub fn in_use(&self) -> u64 {
        self.state().total
    }
}

impl ShareState {
    /// Takes `amount` of the total, and of `client`'s share if there is a client.
    fn take(&mut self, client: Option<ClientAddress>, amount: u64) -> Result<(), Refusal> {
        if let Some(client) = client
            && !self.holdings.allows(client, amount)
        {
            return Err(Refusal::AddressShare);
        }
        let total = self.total.saturating_add(amount);
        if total > self.max_total {
            return Err(Refusal::Exhausted);
        }
        self.total = total;
        if let Some(client) = client {
            self.holdings.take(client, amount);
        }
        Ok(())
    }
}

/// Part of a [`Share`], given back when dropped.
#[derive(Debug)]
pub struct Held {
    share: Arc<Share>,
    /// `None` while the client is not known: then only the total is charged.
    client: Option<ClientAddress>,
    amount: u64,
}

impl Held {
    /// Takes more, so that this holds `amount` in all; nothing changes if refused.
    pub fn grow_to(&mut self, amount: u64) -> Result<(), Refusal> {
        let more = amount.saturating_sub(self.amount);
        if more > 0 {
            self.share.state().take(self.client, more)?;
            self.amount = amount;
        }
        Ok(())
    }

    /// Charges what this holds to `client`'s share instead of its present holder's, if that
    /// share allows it; the total is unchanged, and nothing changes if refused.
    pub fn assign_to(&mut self, client: ClientAddress) -> Result<(), Refusal> {
        if self.client == Some(client) {
            return Ok(());
        }
        let mut state = self.share.state();
        if !state.holdings.allows(client, self.amount) {
            return Err(Refusal::AddressShare);
        }
        if let Some(holder) = self.client {
            state.holdings.give_back(holder, self.amount);
        }
        state.holdings.take(client, self.amount);
        self.client = Some(client);
        Ok(())
    }

    /// What this holds.
    pub fn amount(&self) -> u64 {
        self.amount
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut state = self.share.state();
        state.total = state.total.saturating_sub(self.amount);
        if let Some(client) = self.client {
            state.holdings.give_back(client, self.amount);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str) -> ClientAddress {
        ClientAddress::of(ip.parse().unwrap())
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        assert_eq!(client("2001:db8:1:2::1"), client("2001:db8:1:2:ffff::9"));
        assert_ne!(client("2001:db8:1:2::1"), client("2001:db8:1:3::1"));
        assert_eq!(client("::ffff:192.0.2.7"), client("192.0.2.7"));
        assert_eq!(client("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn one_address_gets_its_share_and_the_others_the_rest() {
        let share = Share::new(8, AddressShare::percent(25).unwrap());
        let (flood, other) = (client("127.0.0.1"), client("127.0.0.2"));
        let held: Vec<_> = (0..2).map(|_| share.take(flood, 1).unwrap()).collect();
        assert_eq!(share.take(flood, 1).unwrap_err(), Refusal::AddressShare);
        let others: Vec<_> = (0..2).map(|_| share.take(other, 1).unwrap()).collect();
        assert_eq!(share.in_use(), 4);
        drop(held);
        assert!(share.take(flood, 1).is_ok(), "given back when dropped");
        drop(others);
        assert_eq!(share.in_use(), 0);
    }

    #[test]
    fn the_total_binds_every_address() {
        let share = Share::new(4, AddressShare::percent(50).unwrap());
        let _held: Vec<_> = ["127.0.0.1", "127.0.0.2"]
            .into_iter()
            .flat_map(|ip| [share.take(client(ip), 1), share.take(client(ip), 1)])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            share.take(client("127.0.0.3"), 1).unwrap_err(),
            Refusal::Exhausted
        );
    }

    #[test]
    fn an_address_holding_nothing_may_take_more_than_its_share_once() {
        let share = Share::new(100, AddressShare::percent(10).unwrap());
        let one = client("127.0.0.1");
        let mut big = share.take(one, 60).unwrap();
        assert_eq!(share.take(one, 1).unwrap_err(), Refusal::AddressShare);
        assert_eq!(big.grow_to(70).unwrap_err(), Refusal::AddressShare);
        assert_eq!(big.amount(), 60, "a refused growth changes nothing");
        assert_eq!(
            share.take(client("127.0.0.2"), 50).unwrap_err(),
            Refusal::Exhausted
        );
        drop(big);
        assert_eq!(share.in_use(), 0);
    }

    #[test]
    fn an_unassigned_hold_counts_in_the_total_only_until_it_is_assigned() {
        let share = Share::new(4, AddressShare::percent(25).unwrap());
        let (proxy, relayed) = (client("127.0.0.10"), client("192.0.2.1"));
        let mut pending: Vec<_> = (0..3).map(|_| share.take_unassigned(1).unwrap()).collect();
        assert_eq!(share.in_use(), 3);
        let _own = share
            .take(proxy, 1)
            .expect("no share is charged for the pending ones");
        assert_eq!(share.take_unassigned(1).unwrap_err(), Refusal::Exhausted);
        pending[0].assign_to(relayed).unwrap();
        assert_eq!(
            pending[1].assign_to(relayed).unwrap_err(),
            Refusal::AddressShare
        );
        pending[1].assign_to(client("192.0.2.2")).unwrap();
        assert_eq!(share.in_use(), 4, "assigning moves nothing in the total");
        drop(pending);
        assert_eq!(share.in_use(), 1);
        assert!(share.take(relayed, 1).is_ok(), "given back when dropped");
    }

    #[test]
    fn a_share_is_a_percentage_of_at_least_one() {
        assert_eq!(AddressShare::DEFAULT.of(10_000), 2_500);
        assert_eq!(AddressShare::DEFAULT.of(1), 1);
        assert!(AddressShare::percent(0).is_none());
        assert!(AddressShare::percent(101).is_none());
        assert_eq!(AddressShare::percent(100).unwrap().of(u64::MAX), u64::MAX);
    }
}
