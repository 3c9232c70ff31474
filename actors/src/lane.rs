//! A lane: threads that take jobs from one shared first-in, first-out queue. The daemon has
//! two. The wasm lane runs one slice of one execution per job and puts a paused execution back
//! at the tail, so the running executions take turns a slice at a time (round robin) and a
//! short program finishes in milliseconds whatever long ones are doing; the slice that ends an
//! execution also seals its result. The crypto lane runs the short CPU-bound work before them
//! (announcement keys and signatures, committing to a request and opening it), so none of it
//! waits behind wasm or runs on an actor's thread.
//!
//! Hand-written, in a page, because the pools at hand do not keep that order: rayon's workers
//! keep deques of their own and steal, and tokio's blocking pool starts a thread per waiting
//! job. A job that panics costs only itself: the panic is caught, and whoever waits for its
//! answer sees the sender dropped.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&Lane) + Send>;

/// A handle to a lane; clones share it.
#[derive(Clone)]
pub struct Lane {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

impl Lane {
    /// Starts `threads` threads named `name`, each with a stack of `stack_bytes`.
    pub fn start(name: &str, threads: usize, stack_bytes: usize) -> std::io::Result<Self> {
        let lane = Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
            }),
        };
        for _ in 0..threads.max(1) {
            let lane = lane.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .stack_size(stack_bytes)
                .spawn(move || lane.work())?;
        }
        Ok(lane)
    }

    /// Queues `job` at the tail.
    pub fn push(&self, job: impl FnOnce(&Self) + Send + 'static) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Box::new(job));
        self.shared.ready.notify_one();
    }

    /// Runs `work` on the lane; the receiver yields its answer, or an error if it panicked.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (answer, answered) = oneshot::channel();
        self.push(move |_| {
            // Nobody waiting any more is not this job's concern.
            let _ = answer.send(work());
        });
        answered
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn work(&self) {
        loop {
            let job = {
                let mut queue = self
                    .shared
                    .queue
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                loop {
                    match queue.pop_front() {
                        Some(job) => break job,
                        None => {
                            queue = self
                                .shared
                                .ready
                                .wait(queue)
                                .unwrap_or_else(PoisonError::into_inner);
                        }
                    }
                }
            };
            if catch_unwind(AssertUnwindSafe(|| job(self))).is_err() {
                log::error!("a job panicked on a lane thread; the thread goes on");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[actix_rt::test]
    async fn jobs_run_in_order_and_a_panic_costs_only_its_own_job() {
        let lane = Lane::start("test-lane", 1, 1 << 20).unwrap();
        let (order, seen) = mpsc::channel();
        for n in 0..5 {
            let order = order.clone();
            lane.push(move |_| order.send(n).unwrap());
        }
        let panicked = lane.run(|| -> u32 { panic!("a bug in one job") });
        assert!(panicked.await.is_err(), "the waiter learns the job died");
        assert_eq!(lane.run(|| 7).await.unwrap(), 7, "the thread goes on");
        assert_eq!(seen.try_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_job_that_requeues_itself_takes_turns_with_the_others() {
        let lane = Lane::start("test-lane", 1, 1 << 20).unwrap();
        let (order, seen) = mpsc::channel();
        /// Runs `turns` times, going back to the tail after each.
        fn turns(lane: &Lane, name: char, left: u32, order: mpsc::Sender<char>) {
            lane.push(move |lane| {
                order.send(name).unwrap();
                if left > 1 {
                    turns(lane, name, left - 1, order);
                }
            });
        }
        // The lane's one thread waits at this gate until both are queued.
        let (open, gate) = mpsc::channel::<()>();
        lane.push(move |_| gate.recv().unwrap());
        turns(&lane, 'a', 3, order.clone());
        turns(&lane, 'b', 3, order);
        open.send(()).unwrap();
        let ran: String = (0..6)
            .map(|_| {
                seen.recv_timeout(std::time::Duration::from_secs(10))
                    .unwrap()
            })
            .collect();
        assert_eq!(ran, "ababab", "round robin, not one after the other");
    }
}
