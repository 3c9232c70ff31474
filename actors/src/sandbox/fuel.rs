//! Fuel accounting: the run's budget, the fuel handed to the store so far, and refilling the
//! store's tank one slice at a time, with the wall-clock deadline checked at every refill.
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
    deadline: Deadline,
    /// Off while the start function runs: its fuel is capped (see the module docs of
    /// `sandbox`), so a host call inside it must not top the tank up.
    refills: bool,
}

impl Meter {
    pub(super) fn new(budget: u64, slice: u64, deadline: Deadline) -> Self {
        Self {
            budget,
            slice,
            granted: 0,
            deadline,
            refills: false,
        }
    }

    pub(super) fn unspent(&self) -> u64 {
        self.budget.saturating_sub(self.granted)
    }

    pub(super) fn deadline(&self) -> &Deadline {
        &self.deadline
    }

    pub(super) fn allow_refills(&mut self) {
        self.refills = true;
    }
}

/// The wall-clock deadline of one run.
#[derive(Debug)]
pub(super) struct Deadline(Option<Instant>);

impl Deadline {
    pub(super) fn after(start: Instant, timeout_ms: u64) -> Self {
        Self(start.checked_add(Duration::from_millis(timeout_ms)))
    }

    pub(super) fn check(&self) -> Result<(), Stop> {
        match self.0 {
            Some(deadline) if Instant::now() >= deadline => Err(Stop::TimedOut),
            _ => Ok(()),
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
/// min(unspent budget, max(slice, `required`)) more fuel, once the deadline has been checked.
pub(super) fn refill(mut ctx: impl AsContextMut<Data = Host>, required: u64) -> Result<(), Stop> {
    let mut ctx = ctx.as_context_mut();
    let meter = &ctx.data().meter;
    meter.deadline.check()?;
    let more = meter.unspent().min(meter.slice.max(required));
    let left = ctx.get_fuel().unwrap_or(0);
    if !meter.refills || left.saturating_add(more) < required {
        return Err(Stop::OutOfFuel);
    }
    grant(&mut ctx, more);
    Ok(())
}

/// Takes `cost` fuel for work a host function is about to do, refilling first if need be.
pub(super) fn take(mut ctx: impl AsContextMut<Data = Host>, cost: u64) -> Result<(), Stop> {
    let mut ctx = ctx.as_context_mut();
    if ctx.get_fuel().unwrap_or(0) < cost {
        refill(&mut ctx, cost)?;
    }
    let left = ctx.get_fuel().unwrap_or(0);
    let _ = ctx.set_fuel(left.saturating_sub(cost));
    Ok(())
}
