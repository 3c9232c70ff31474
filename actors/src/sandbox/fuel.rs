//! Fuel accounting: the run's budget, the fuel handed to the store so far, and refilling the
//! store's tank one slice at a time, with the worker-time limit checked at every refill.
//!
//! Wasm code and host functions draw on the same tank. Whatever the slice size, an operation
//! either gets all the fuel it needs or does not happen, so the fuel consumed (and with it the
//! virtual clocks) depends on the program and its inputs only.

use std::time::{Duration, Instant};

use wasmi::{AsContext, AsContextMut};

use super::host::{Host, Stop};

/// The fuel state of one run; it lives in the store's data so host functions can refill too.
#[derive(Debug)]
pub(super) struct Meter {
    budget: u64,
    slice: u64,
    /// All fuel handed to the store so far: minus the store's remaining fuel it is the fuel
    /// consumed.
    granted: u64,
    clock: WorkerClock,
    /// Off while the start function runs: its fuel is capped (see the module docs of
    /// `sandbox`), so a host call inside it must not top the tank up.
    refills: bool,
}

impl Meter {
    pub(super) fn new(budget: u64, slice: u64, clock: WorkerClock) -> Self {
        Self {
            budget,
            slice,
            granted: 0,
            clock,
            refills: false,
        }
    }

    pub(super) fn unspent(&self) -> u64 {
        self.budget.saturating_sub(self.granted)
    }

    pub(super) fn clock(&self) -> &WorkerClock {
        &self.clock
    }

    pub(super) fn clock_mut(&mut self) -> &mut WorkerClock {
        &mut self.clock
    }

    pub(super) fn allow_refills(&mut self) {
        self.refills = true;
    }
}

/// The time one run has held a worker, and its limit: `timeout_ms` counts only the time its
/// slices run (compilation and instantiation included), never the time it waits for a worker.
#[derive(Debug)]
pub(super) struct WorkerClock {
    limit: Duration,
    /// Worker time of the slices that ended.
    used: Duration,
    /// When the slice now running started.
    slice_started: Option<Instant>,
}

impl WorkerClock {
    pub(super) fn new(timeout_ms: u64) -> Self {
        Self {
            limit: Duration::from_millis(timeout_ms),
            used: Duration::ZERO,
            slice_started: None,
        }
    }

    /// A worker took the run.
    pub(super) fn start_slice(&mut self) {
        self.slice_started = Some(Instant::now());
    }

    /// The run gave its worker back.
    pub(super) fn end_slice(&mut self) {
        if let Some(started) = self.slice_started.take() {
            self.used = self.used.saturating_add(started.elapsed());
        }
    }

    /// Worker time so far, the running slice included.
    pub(super) fn used(&self) -> Duration {
        let running = self
            .slice_started
            .map_or(Duration::ZERO, |started| started.elapsed());
        self.used.saturating_add(running)
    }

    pub(super) fn check(&self) -> Result<(), Stop> {
        if self.used() >= self.limit {
            Err(Stop::TimedOut)
        } else {
            Ok(())
        }
    }
}

/// Fuel consumed so far.
pub(super) fn consumed(ctx: impl AsContext<Data = Host>) -> u64 {
    let ctx = ctx.as_context();
    let left = ctx.get_fuel().unwrap_or(0);
    ctx.data().meter.granted.saturating_sub(left)
}

/// Adds `fuel` to the tank and to the total granted.
pub(super) fn grant(mut ctx: impl AsContextMut<Data = Host>, fuel: u64) {
    let mut ctx = ctx.as_context_mut();
    let meter = &mut ctx.data_mut().meter;
    meter.granted = meter.granted.saturating_add(fuel);
    let left = ctx.get_fuel().unwrap_or(0);
    // This only fails with fuel metering off, and the engine always has it on.
    let _ = ctx.set_fuel(left.saturating_add(fuel));
}

/// Tops the tank up so that it holds at least `required`, with
/// min(unspent budget, max(slice, `required`)) more fuel, once the time limit has been checked.
pub(super) fn refill(mut ctx: impl AsContextMut<Data = Host>, required: u64) -> Result<(), Stop> {
    let mut ctx = ctx.as_context_mut();
    let meter = &ctx.data().meter;
    meter.clock.check()?;
    let more = meter.unspent().min(meter.slice.max(required));
    let left = ctx.get_fuel().unwrap_or(0);
    if !meter.refills || left.saturating_add(more) < required {
        return Err(Stop::OutOfFuel);
    }
    grant(&mut ctx, more);
    Ok(())
}

/// Takes `cost` fuel for work a host function is about to do. When the tank is short it is
/// topped up with exactly what is missing, not a slice, so that it is empty again when the
/// host function returns: the guest's next instruction then pauses the call, and the run goes
/// back to the run queue there, as it would at the end of a slice of Wasm code.
pub(super) fn take(mut ctx: impl AsContextMut<Data = Host>, cost: u64) -> Result<(), Stop> {
    let mut ctx = ctx.as_context_mut();
    let left = ctx.get_fuel().unwrap_or(0);
    if left < cost {
        let meter = &ctx.data().meter;
        meter.clock.check()?;
        let missing = cost - left;
        if !meter.refills || meter.unspent() < missing {
            return Err(Stop::OutOfFuel);
        }
        grant(&mut ctx, missing);
    }
    let left = ctx.get_fuel().unwrap_or(0);
    let _ = ctx.set_fuel(left.saturating_sub(cost));
    Ok(())
}
