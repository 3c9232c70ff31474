//! Admission by resources. Every consumed execution holds a place in the queue of executions
//! admitted but not started, bounded in count and in bytes of request bodies, of which one
//! client address may hold only its share; admission refuses only when that queue is full
//! (`503`) or the address holds its share of it (`429`). An execution starts once its memory
//! reservation, made at its own limits, fits in the memory budget; until then it waits, in
//! arrival order, and its waiting does not count against its time limit. What an execution
//! does can never make another fail: the budget only delays.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::shares::{AddressShare, ClientAddress, Holdings, Refusal};

/// The daemon's memory budget and its queue of executions waiting for it; clones share it.
#[derive(Clone)]
pub struct MemoryBudget {
    shared: Arc<Mutex<State>>,
}

/// The settings of [`MemoryBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Bytes that running executions may reserve together. Default: half the machine's memory.
    pub memory_bytes: u64,
    /// Executions admitted but not started. Default: 4 096.
    pub max_queued: usize,
    /// Bytes of request bodies of executions admitted but not started. Default: 1 GiB.
    pub max_queued_bytes: u64,
    /// The part of the queue, in places and in bytes, that one client address may hold.
    /// Default: 25 %.
    pub address_share: AddressShare,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            memory_bytes: machine_memory_bytes() / 2,
            max_queued: 4096,
            max_queued_bytes: 1 << 30,
            address_share: AddressShare::DEFAULT,
        }
    }
}

/// The machine's memory, from `/proc/meminfo`; 8 GiB where that cannot be read.
pub fn machine_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            meminfo.lines().find_map(|line| {
                let kib = line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
                kib.trim().parse::<u64>().ok()?.checked_mul(1024)
            })
        })
        .unwrap_or(8 << 30)
}

struct State {
    config: BudgetConfig,
    /// Bytes not reserved.
    available: u64,
    /// Reservations waiting for room, in arrival order.
    waiting: VecDeque<(u64, oneshot::Sender<Reservation>)>,
    queued: usize,
    queued_bytes: u64,
    /// Each address's places in the queue.
    places_by_address: Holdings,
    /// Each address's bytes of bodies in the queue.
    bytes_by_address: Holdings,
}

/// A place in the queue of admitted executions; given back when dropped.
pub struct QueuePlace {
    shared: Arc<Mutex<State>>,
    client: ClientAddress,
    body_bytes: u64,
}

/// Memory reserved for one running execution; given back when dropped.
pub struct Reservation {
    shared: Arc<Mutex<State>>,
    bytes: u64,
}

impl MemoryBudget {
    /// A budget of `config.memory_bytes`, nothing reserved.
    pub fn new(config: BudgetConfig) -> Self {
        Self {
            shared: Arc::new(Mutex::new(State {
                available: config.memory_bytes,
                config,
                waiting: VecDeque::new(),
                queued: 0,
                queued_bytes: 0,
                places_by_address: Holdings::new(config.address_share.of(config.max_queued as u64)),
                bytes_by_address: Holdings::new(config.address_share.of(config.max_queued_bytes)),
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `client` may have one more execution admitted, before its body is read: it
    /// holds fewer places than its share, and fewer bytes.
    pub fn address_has_room(&self, client: ClientAddress) -> bool {
        let state = self.state();
        state.places_by_address.below_share(client) && state.bytes_by_address.below_share(client)
    }

    /// Whether one more execution may be admitted, before its body is read.
    pub fn has_room(&self) -> bool {
        let state = self.state();
        state.queued < state.config.max_queued && state.queued_bytes < state.config.max_queued_bytes
    }

    /// A place in the queue for `client`'s execution whose request body has `body_bytes`, if
    /// the address's share and the queue have room for it.
    pub fn admit(&self, client: ClientAddress, body_bytes: u64) -> Result<QueuePlace, Refusal> {
        let mut state = self.state();
        if !state.places_by_address.allows(client, 1)
            || !state.bytes_by_address.allows(client, body_bytes)
        {
            return Err(Refusal::AddressShare);
        }
        if state.queued >= state.config.max_queued
            || state.queued_bytes.saturating_add(body_bytes) > state.config.max_queued_bytes
        {
            return Err(Refusal::Exhausted);
        }
        state.queued += 1;
        state.queued_bytes = state.queued_bytes.saturating_add(body_bytes);
        state.places_by_address.take(client, 1);
        state.bytes_by_address.take(client, body_bytes);
        Ok(QueuePlace {
            shared: Arc::clone(&self.shared),
            client,
            body_bytes,
        })
    }

    /// Reserves `bytes`, waiting behind every earlier reservation until they fit. A
    /// reservation larger than the whole budget takes all of it, so it runs alone.
    pub fn reserve(&self, bytes: u64) -> oneshot::Receiver<Reservation> {
        let (grant, granted) = oneshot::channel();
        let mut state = self.state();
        let bytes = bytes.min(state.config.memory_bytes);
        state.waiting.push_back((bytes, grant));
        state.grant_what_fits(&self.shared);
        granted
    }

    /// Executions admitted and not started, and bytes reserved by running ones.
    pub fn usage(&self) -> (usize, u64) {
        let state = self.state();
        (
            state.queued,
            state.config.memory_bytes.saturating_sub(state.available),
        )
    }
}

impl State {
    /// Grants waiting reservations in order while the first of them fits.
    fn grant_what_fits(&mut self, shared: &Arc<Mutex<Self>>) {
        while let Some((bytes, _)) = self.waiting.front() {
            if *bytes > self.available {
                return;
            }
            let Some((bytes, grant)) = self.waiting.pop_front() else {
                return;
            };
            self.available -= bytes;
            let reservation = Reservation {
                shared: Arc::clone(shared),
                bytes,
            };
            // A waiter that went away: its reservation is taken back here, without its
            // drop, which would take this lock again.
            if let Err(reservation) = grant.send(reservation) {
                self.available += reservation.bytes;
                std::mem::forget(reservation);
            }
        }
    }
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        let mut state = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        state.queued = state.queued.saturating_sub(1);
        state.queued_bytes = state.queued_bytes.saturating_sub(self.body_bytes);
        state.places_by_address.give_back(self.client, 1);
        state
            .bytes_by_address
            .give_back(self.client, self.body_bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
        state.available = state.available.saturating_add(self.bytes);
        state.grant_what_fits(&shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(memory_bytes: u64) -> MemoryBudget {
        MemoryBudget::new(BudgetConfig {
            memory_bytes,
            max_queued: 2,
            max_queued_bytes: 100,
            address_share: AddressShare::percent(100).unwrap(),
        })
    }

    fn client(ip: &str) -> ClientAddress {
        ClientAddress::of(ip.parse().unwrap())
    }

    #[test]
    fn the_queue_is_bounded_in_count_and_bytes_and_places_come_back() {
        let budget = budget(10);
        // Each from an address that holds nothing yet: only the queue's bounds refuse.
        let first = budget.admit(client("127.0.0.1"), 60).unwrap();
        assert_eq!(
            budget.admit(client("127.0.0.2"), 41).err(),
            Some(Refusal::Exhausted),
            "101 bytes of bodies"
        );
        let second = budget.admit(client("127.0.0.2"), 40).unwrap();
        assert!(!budget.has_room());
        assert_eq!(
            budget.admit(client("127.0.0.3"), 0).err(),
            Some(Refusal::Exhausted),
            "two places"
        );
        drop(first);
        assert!(budget.has_room());
        assert_eq!(budget.usage().0, 1);
        drop(second);
        assert_eq!(budget.usage().0, 0);
    }

    #[test]
    fn one_address_holds_only_its_share_of_the_queue() {
        let budget = MemoryBudget::new(BudgetConfig {
            memory_bytes: 10,
            max_queued: 8,
            max_queued_bytes: 1000,
            address_share: AddressShare::percent(25).unwrap(),
        });
        let (flood, other) = (client("127.0.0.1"), client("127.0.0.2"));
        let places: Vec<_> = (0..2).map(|_| budget.admit(flood, 10).unwrap()).collect();
        assert!(!budget.address_has_room(flood), "two of eight places");
        assert_eq!(budget.admit(flood, 10).err(), Some(Refusal::AddressShare));
        assert!(budget.address_has_room(other) && budget.has_room());
        let big = budget.admit(other, 250).unwrap();
        assert!(!budget.address_has_room(other), "a quarter of the bytes");
        assert_eq!(budget.admit(other, 1).err(), Some(Refusal::AddressShare));
        drop((places, big));
        assert!(budget.address_has_room(flood) && budget.address_has_room(other));
        assert_eq!(budget.usage().0, 0);
    }

    #[actix_rt::test]
    async fn reservations_wait_their_turn_and_come_back() {
        let budget = budget(10);
        let six = budget.reserve(6).await.unwrap();
        let mut five = budget.reserve(5);
        // Fits, but a reservation that came earlier is waiting: no overtaking.
        let mut one = budget.reserve(1);
        assert!(five.try_recv().is_err());
        assert!(one.try_recv().is_err());
        drop(six);
        let five = five.await.unwrap();
        let one = one.await.unwrap();
        assert_eq!(budget.usage().1, 6);
        // Larger than the whole budget: it waits for all of it, then runs alone.
        let mut huge = budget.reserve(1 << 40);
        drop(five);
        assert!(huge.try_recv().is_err());
        drop(one);
        let huge = huge.await.unwrap();
        assert_eq!(budget.usage().1, 10);
        drop(huge);
        assert_eq!(budget.usage().1, 0);
    }

    #[test]
    fn a_waiter_that_went_away_gives_its_turn_back() {
        let budget = budget(10);
        let all = budget.reserve(10);
        let gone = budget.reserve(10);
        let next = budget.reserve(4);
        drop(gone);
        let all = all.blocking_recv().unwrap();
        drop(all);
        assert!(next.blocking_recv().is_ok());
    }
}
