//! The resource limiter: linear memory in total against `memory_bytes`, table elements against
//! the server's cap, and one instance with at most one memory.

use wasmi::ResourceLimiter;
use wasmi_core::LimiterError;

/// Tables a module may define; the same number `EnforcedLimits::strict` lets a module declare.
pub(super) const MAX_TABLES: usize = 100;

/// Counts the bytes of every linear memory of one store against a single budget.
#[derive(Debug)]
pub(super) struct Limiter {
    memory_cap: u64,
    table_elements_cap: usize,
    memory_in_use: u64,
    /// The last approved growth: wasmi can still fail it (out of fuel, or the allocation), and
    /// then tells us through `memory_grow_failed`, so it must be possible to take it back.
    pending: u64,
    /// A memory (at instantiation or by `memory.grow`) was refused for lack of budget: §7 turns
    /// a later trap or non-zero exit into `memory_limit`.
    refused: bool,
}

impl Limiter {
    pub(super) fn new(memory_cap: u64, table_elements_cap: u32) -> Self {
        Self {
            memory_cap,
            table_elements_cap: usize::try_from(table_elements_cap).unwrap_or(usize::MAX),
            memory_in_use: 0,
            pending: 0,
            refused: false,
        }
    }

    /// Whether the memory budget refused an allocation or growth during this run.
    pub(super) fn refused(&self) -> bool {
        self.refused
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        let delta = u64::try_from(desired.saturating_sub(current)).unwrap_or(u64::MAX);
        let total = self.memory_in_use.saturating_add(delta);
        if total > self.memory_cap {
            self.refused = true;
            // `Ok(false)` rather than `Err`: the spec says a refused `memory.grow` returns -1.
            return Ok(false);
        }
        self.memory_in_use = total;
        self.pending = delta;
        Ok(true)
    }

    fn memory_grow_failed(
        &mut self,
        _error: &wasmi::errors::MemoryError,
    ) -> Result<(), LimiterError> {
        // An out-of-fuel growth is retried when the call resumes and asks again.
        self.memory_in_use = self.memory_in_use.saturating_sub(self.pending);
        self.pending = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        Ok(desired <= self.table_elements_cap)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 65_536;

    #[test]
    fn memory_is_counted_in_total_and_failed_growth_is_taken_back() {
        let mut limiter = Limiter::new(3 * PAGE as u64, 10);
        assert!(limiter.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(!limiter.memory_growing(2 * PAGE, 4 * PAGE, None).unwrap());
        assert!(limiter.refused());
        assert!(limiter.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap());
        limiter
            .memory_grow_failed(&wasmi::errors::MemoryError::OutOfBoundsGrowth)
            .unwrap();
        // The failed page is free again, so the retry is allowed.
        assert!(limiter.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap());
        assert!(!limiter.memory_growing(3 * PAGE, 4 * PAGE, None).unwrap());
    }

    #[test]
    fn tables_are_capped_per_table() {
        let mut limiter = Limiter::new(0, 10);
        assert!(limiter.table_growing(0, 10, None).unwrap());
        assert!(!limiter.table_growing(10, 11, None).unwrap());
        assert!(!limiter.refused());
    }
}
