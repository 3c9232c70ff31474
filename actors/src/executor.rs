//! The per-session executor actor and the pool of wasm worker threads it runs on.
//!
//! The executor lives exactly as long as its session's execution: it hands the job to the
//! worker pool (a `SyncArbiter`, one thread per core by default, so CPU-bound programs never
//! block HTTP or the supervisor), passes the result on and stops. The job, and with it the
//! session's private key, is dropped, and so zeroized, when the worker is done with it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::sandbox::SandboxConfig;
use crate::session::{self, Finished, Job, LimitsPolicy};

/// wasmi's translator and executor keep large frames in debug builds; the default 2 MiB of a
/// spawned thread is not enough for deep but legal programs.
const WORKER_STACK_BYTES: usize = 16 << 20;

/// The pool's threads. Each message is one whole session, run to completion.
pub struct WasmWorker {
    policy: LimitsPolicy,
    sandbox: SandboxConfig,
}

impl WasmWorker {
    /// Starts `threads` worker threads.
    pub fn start_pool(threads: usize, policy: LimitsPolicy, sandbox: SandboxConfig) -> Addr<Self> {
        SyncArbiter::start_with_thread_builder(
            threads,
            || {
                std::thread::Builder::new()
                    .name("wasm-worker".into())
                    .stack_size(WORKER_STACK_BYTES)
            },
            move || Self { policy, sandbox },
        )
    }
}

impl Actor for WasmWorker {
    type Context = SyncContext<Self>;
}

#[derive(Message)]
#[rtype(result = "Finished")]
struct RunJob(Job);

impl Handler<RunJob> for WasmWorker {
    type Result = MessageResult<RunJob>;

    fn handle(&mut self, RunJob(job): RunJob, _: &mut Self::Context) -> Self::Result {
        // A bug in the sandbox must cost one session, not a worker thread.
        let finished = catch_unwind(AssertUnwindSafe(|| {
            session::run(job, &self.policy, &self.sandbox)
        }))
        .unwrap_or(Finished::Internal("the worker panicked"));
        MessageResult(finished)
    }
}

/// One session's executor.
pub(crate) struct Executor {
    job: Option<Job>,
    workers: Addr<WasmWorker>,
    done: Option<oneshot::Sender<Finished>>,
}

impl Executor {
    /// Starts the executor; the receiver yields the session's end.
    pub(crate) fn spawn(job: Job, workers: Addr<WasmWorker>) -> oneshot::Receiver<Finished> {
        let (done, finished) = oneshot::channel();
        Self {
            job: Some(job),
            workers,
            done: Some(done),
        }
        .start();
        finished
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(job) = self.job.take() else {
            return ctx.stop();
        };
        self.workers
            .send(RunJob(job))
            .into_actor(self)
            .map(|result, executor, ctx| {
                let finished = result.unwrap_or(Finished::Internal("the worker pool stopped"));
                if let Some(done) = executor.done.take() {
                    // The supervisor may be gone during shutdown; nothing is left to tell.
                    let _ = done.send(finished);
                }
                ctx.stop();
            })
            .wait(ctx);
    }
}
