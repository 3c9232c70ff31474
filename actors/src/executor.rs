//! The per-session executor actor and the lanes its execution runs on.
//!
//! A session's request is opened on the crypto lane ([`Lanes::open`]), in the same job that
//! commits to it, so that one hand-off serves both; the supervisor logs the commitment. The
//! executor then lives exactly as long as the opened session's run and owns it: it waits for
//! its memory reservation and hands the run to the wasm lane, where it runs a slice at a time
//! between everyone else's slices and is sealed by the slice that ends it; it reports the end
//! and stops. The session's private key is dropped, and so zeroized, as soon as the request is
//! opened.

use actix::prelude::*;
use tokio::sync::oneshot;
use wasm_hypervisor_protocol::commitment::Digest;

use crate::budget::{MemoryBudget, QueuePlace};
use crate::lane::Lane;
use crate::sandbox::{Run, SandboxConfig, Step};
use crate::session::{self, Finished, Job, LimitsPolicy, Opened, Sealing};

/// wasmi's translator and executor keep large frames in debug builds; the default 2 MiB of a
/// spawned thread is not enough for deep but legal programs.
const WASM_STACK_BYTES: usize = 16 << 20;

/// Hashing, opening and sealing need no deep stack.
const CRYPTO_STACK_BYTES: usize = 2 << 20;

/// Where executions run, and by what rules.
#[derive(Clone)]
pub struct Lanes {
    wasm: Lane,
    crypto: Lane,
    budget: MemoryBudget,
    policy: LimitsPolicy,
    sandbox: SandboxConfig,
}

impl Lanes {
    /// Starts `wasm_threads` threads for slices of programs and `crypto_threads` for the
    /// public-key work and hashing around them.
    pub fn start(
        (wasm_threads, crypto_threads): (usize, usize),
        budget: MemoryBudget,
        policy: LimitsPolicy,
        sandbox: SandboxConfig,
    ) -> std::io::Result<Self> {
        Ok(Self {
            wasm: Lane::start("wasm-worker", wasm_threads, WASM_STACK_BYTES)?,
            crypto: Lane::start("crypto", crypto_threads, CRYPTO_STACK_BYTES)?,
            budget,
            policy,
            sandbox,
        })
    }

    /// The lane for announcements' keys and signatures.
    pub fn crypto(&self) -> &Lane {
        &self.crypto
    }

    /// The memory budget and the queue of executions waiting for it.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Slices waiting for a wasm thread.
    pub fn runnable(&self) -> usize {
        self.wasm.queued()
    }

    /// Commits to a consumed session's request and opens it, on the crypto lane; `None` if
    /// that panicked.
    pub(crate) async fn open(&self, job: Job) -> Option<(Digest, Opened)> {
        let (policy, sandbox) = (self.policy, self.sandbox);
        self.crypto
            .run(move || session::open(job, &policy, &sandbox))
            .await
            .ok()
    }

    /// Runs `run` a slice at a time, each slice a job at the tail of the wasm lane; the slice
    /// that ends it also seals its result, which costs about what one slice does (the output
    /// is bounded by its limit) and saves a hand-off to the crypto lane.
    fn run_and_seal(&self, run: Box<Run>, sealing: Sealing) -> oneshot::Receiver<Finished> {
        let (done, finished) = oneshot::channel();
        next_slice(&self.wasm, run, sealing, done);
        finished
    }
}

fn next_slice(lane: &Lane, run: Box<Run>, sealing: Sealing, done: oneshot::Sender<Finished>) {
    lane.push(move |lane| {
        // Nobody waits for it any more (the daemon is stopping): its slices are wasted.
        if done.is_closed() {
            return;
        }
        match run.step() {
            Step::Yielded(run) => next_slice(lane, run, sealing, done),
            Step::Ended(report) => {
                let _ = done.send(session::finish_run(sealing, report));
            }
        }
    });
}

/// One session's executor.
pub(crate) struct Executor {
    opened: Option<(Opened, QueuePlace)>,
    lanes: Lanes,
    done: Option<oneshot::Sender<Finished>>,
}

impl Executor {
    /// Starts the executor of an opened session that holds `place` in the queue of admitted
    /// executions; the receiver yields the session's end.
    pub(crate) fn spawn(
        opened: Opened,
        place: QueuePlace,
        lanes: Lanes,
    ) -> oneshot::Receiver<Finished> {
        let (done, finished) = oneshot::channel();
        Self {
            opened: Some((opened, place)),
            lanes,
            done: Some(done),
        }
        .start();
        finished
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some((opened, place)) = self.opened.take() else {
            return ctx.stop();
        };
        execute(opened, place, self.lanes.clone())
            .into_actor(self)
            .map(|finished, executor, ctx| {
                if let Some(done) = executor.done.take() {
                    // The supervisor may be gone during shutdown; nothing is left to tell.
                    let _ = done.send(finished);
                }
                ctx.stop();
            })
            .wait(ctx);
    }
}

/// Runs and seals one opened session. A panic on a lane ends the session as `internal`.
async fn execute(opened: Opened, place: QueuePlace, lanes: Lanes) -> Finished {
    const PANICKED: Finished = Finished::Internal("a step of the execution panicked");
    match opened {
        Opened::UnsealFailed => Finished::UnsealFailed,
        Opened::Internal(reason) => Finished::Internal(reason),
        Opened::BadPayload {
            output_map,
            sealing,
        } => {
            // Nothing will run: its body is gone, and with it its claim on the queue.
            drop(place);
            let sealed = lanes
                .crypto
                .run(move || session::seal(sealing, &output_map));
            sealed.await.unwrap_or(PANICKED)
        }
        Opened::Run {
            run,
            reservation_bytes,
            sealing,
        } => {
            let Ok(reservation) = lanes.budget.reserve(reservation_bytes).await else {
                return Finished::Internal("the memory budget went away");
            };
            // Started: it leaves the queue of admitted executions.
            drop(place);
            let finished = lanes.run_and_seal(run, sealing).await.unwrap_or(PANICKED);
            drop(reservation);
            finished
        }
    }
}
