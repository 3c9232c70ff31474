//! Crash safety of the audit log (`docs/PROTOCOL.md` §5–§6), for each store: the daemon process is
//! killed with SIGKILL while clients run sessions, then restarted on the same data directory,
//! several rounds in a row. After every restart: each session whose response a client received
//! is in the log with valid proofs against the new checkpoint; the new checkpoint is consistent
//! with every checkpoint any client saw; each session cut off in flight that reached the log has
//! an `aborted` result leaf and `GET /sessions/{id}/result` says `aborted`; and the whole log
//! recomputes to the signed root with no request leaf left open.

mod process;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use process::Daemon;
use wasm_hypervisor::client::{Client, ClientError, Execution, PinnedIdentity, SignedCheckpoint};
use wasm_hypervisor_protocol::api;
use wasm_hypervisor_protocol::commitment::{self, Digest};
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome};
use wasm_hypervisor_protocol::payload::{RequestPayload, RequestedLimits, Status};

/// Kill-and-restart rounds per store.
const ROUNDS: usize = 5;
/// Clients running short programs back to back.
const QUICK_CLIENTS: usize = 3;
/// Sessions running a program that spins until its timeout: in flight when the daemon dies.
const SPINNERS: usize = 2;
/// Bounds each quick client's loop.
const MAX_SESSIONS_PER_CLIENT: usize = 200;

const QUICK: &str = r#"(module
  (func (export "_start") (local $i i32)
    (loop (br_if 0 (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000))))))"#;
const SPIN: &str = r#"(module (func (export "_start") (loop (br 0))))"#;

/// A session whose response a client received and verified.
#[derive(Debug, Clone)]
struct Answered {
    session_id: String,
    request_index: u64,
    result_index: u64,
    announcement_hash: Digest,
    /// request, result, input and output commitments.
    commitments: [Digest; 4],
}

impl From<&Execution> for Answered {
    fn from(execution: &Execution) -> Self {
        Self {
            session_id: execution.session_id.clone(),
            request_index: execution.request_index,
            result_index: execution.result_index,
            announcement_hash: commitment::h3(&execution.tbs),
            commitments: [
                execution.request_commitment,
                execution.result_commitment,
                execution.input_commitment,
                execution.output_commitment,
            ],
        }
    }
}

/// Everything the clients saw, over all rounds.
#[derive(Default)]
struct Seen {
    answered: Vec<Answered>,
    checkpoints: Vec<SignedCheckpoint>,
}

/// What one round's clients saw before and at the kill.
#[derive(Default)]
struct Round {
    answered: Vec<Answered>,
    checkpoints: Vec<SignedCheckpoint>,
    /// Sessions whose execute call was sent and never answered, with the request commitment.
    unanswered: Vec<(String, Digest)>,
    /// `Client::execute` calls the kill cut off (their session ids are not known).
    cut_off: usize,
    /// Errors before the kill: each one is a failure.
    errors: Vec<String>,
}

#[derive(Default, Debug)]
struct Totals {
    answered: usize,
    unanswered: usize,
    aborted_from_log: usize,
    never_logged: usize,
    cut_off: usize,
    /// `aborted` result leaves in the final log, cut-off client calls' sessions included.
    aborted_leaves: usize,
}

#[actix_rt::test]
async fn redb_log_survives_sigkill_during_sessions() {
    crash_rounds("redb").await;
}

#[actix_rt::test]
async fn sled_log_survives_sigkill_during_sessions() {
    crash_rounds("sled").await;
}

async fn crash_rounds(store: &str) {
    let started = Instant::now();
    let data_dir = tempfile::tempdir().unwrap();
    let args = ["--store", store, "--workers", "4"];
    let mut pinned: Option<PinnedIdentity> = None;
    let mut seen = Seen::default();
    let mut unanswered = Vec::new();
    let mut totals = Totals::default();
    let mut size = 0;
    for round in 0..=ROUNDS {
        let daemon = process::start(data_dir.path(), "127.0.0.1:0", &args);
        let identity = daemon.pinned().await;
        let pinned = pinned.get_or_insert_with(|| identity.clone());
        assert_eq!(*pinned, identity, "the identity survives restarts");
        if round > 0 {
            size = check_after_restart(&daemon, pinned, &mut seen, &unanswered, &mut totals).await;
        }
        if round == ROUNDS {
            break;
        }
        let trusted = seen
            .checkpoints
            .iter()
            .max_by_key(|signed| signed.checkpoint.size)
            .cloned();
        let outcome = run_and_kill(daemon, pinned, round, trusted).await;
        assert!(
            outcome.errors.is_empty(),
            "errors before the kill: {:?}",
            outcome.errors
        );
        totals.answered += outcome.answered.len();
        totals.unanswered += outcome.unanswered.len();
        totals.cut_off += outcome.cut_off;
        seen.answered.extend(outcome.answered);
        seen.checkpoints.extend(outcome.checkpoints);
        unanswered = outcome.unanswered;
    }
    assert!(
        totals.aborted_from_log > 0,
        "no logged session was in flight at any kill, so no abort was tested: {totals:?}"
    );
    println!(
        "{store}: {ROUNDS} SIGKILL rounds, {} sessions answered, {} execute calls unanswered \
         ({} aborted from the log, {} never logged), {} client calls cut off, final log size \
         {size} with {} aborted results, {:.1?}",
        totals.answered,
        totals.unanswered,
        totals.aborted_from_log,
        totals.never_logged,
        totals.cut_off,
        totals.aborted_leaves,
        started.elapsed()
    );
}

/// Starts spinning sessions and quick clients, and once some sessions were answered and every
/// spinner runs, kills the daemon with SIGKILL. Returns what the clients saw.
async fn run_and_kill(
    daemon: Daemon,
    pinned: &PinnedIdentity,
    round: usize,
    trusted: Option<SignedCheckpoint>,
) -> Round {
    let base = daemon.url("");
    let state = Rc::new(RefCell::new(Round::default()));
    let killed = Rc::new(Cell::new(false));
    let spin = RequestPayload {
        limits: RequestedLimits {
            fuel: Some(u64::MAX),
            timeout_ms: Some(10_000),
            ..RequestedLimits::default()
        },
        ..process::payload(SPIN)
    };
    let mut spinners = Vec::new();
    let mut spinner_ids = Vec::new();
    for _ in 0..SPINNERS {
        let client = Client::new(&base);
        let sealed = client
            .seal(pinned, &spin, None)
            .await
            .expect("a spinner is sealed");
        let (session_id, request_commitment) = (sealed.session_id(), sealed.request_commitment);
        spinner_ids.push(session_id.clone());
        let pinned = pinned.clone();
        spinners.push(actix_rt::spawn(async move {
            let answer = client.submit(&pinned, sealed, None).await;
            (session_id, request_commitment, answer)
        }));
    }
    let mut quick = Vec::new();
    for _ in 0..QUICK_CLIENTS {
        let (client, pinned) = (Client::new(&base), pinned.clone());
        let (state, killed, mut trusted) = (state.clone(), killed.clone(), trusted.clone());
        quick.push(actix_rt::spawn(async move {
            for _ in 0..MAX_SESSIONS_PER_CLIENT {
                let quick = process::payload(QUICK);
                match client.execute(&pinned, &quick, trusted.as_ref()).await {
                    Ok(execution) => {
                        assert_eq!(execution.output.status, Status::Ok);
                        let mut state = state.borrow_mut();
                        state.answered.push(Answered::from(&execution));
                        state.checkpoints.push(execution.checkpoint.clone());
                        trusted = Some(execution.checkpoint);
                    }
                    // A dead daemon can only break the connection, before or during execute.
                    Err(ClientError::Transport { .. } | ClientError::Interrupted { .. })
                        if killed.get() =>
                    {
                        state.borrow_mut().cut_off += 1;
                        break;
                    }
                    Err(error) => {
                        state.borrow_mut().errors.push(error.to_string());
                        break;
                    }
                }
            }
        }));
    }

    // Vary the kill point from round to round.
    let wanted = 2 + 4 * round;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut running = vec![false; SPINNERS];
    loop {
        for (index, id) in spinner_ids.iter().enumerate() {
            if !running[index] {
                // 404 until the execute call consumed the session, then 202 while it runs.
                let (status, _) = process::get(&format!("{base}/sessions/{id}/result")).await;
                running[index] = status != 404 || spinners[index].is_finished();
            }
        }
        let answered = state.borrow().answered.len();
        if answered >= wanted && running.iter().all(|running| *running) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: {answered} sessions answered, spinners running: {running:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    killed.set(true);
    daemon.kill();

    for handle in quick {
        actix_rt::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("a client stops soon after the kill")
            .expect("a client task ends without panicking");
    }
    let mut round_state = Rc::try_unwrap(state).ok().unwrap().into_inner();
    for handle in spinners {
        let (session_id, request_commitment, answer) =
            actix_rt::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("a spinner stops soon after the kill")
                .unwrap();
        match answer {
            Ok(execution) => {
                round_state.answered.push(Answered::from(&execution));
                round_state.checkpoints.push(execution.checkpoint);
            }
            Err(ClientError::Transport { .. } | ClientError::Interrupted { .. }) => round_state
                .unanswered
                .push((session_id, request_commitment)),
            Err(error) => round_state.errors.push(format!("spinner: {error}")),
        }
    }
    round_state
}

/// The checks after a restart; returns the log size.
async fn check_after_restart(
    daemon: &Daemon,
    pinned: &PinnedIdentity,
    seen: &mut Seen,
    unanswered: &[(String, Digest)],
    totals: &mut Totals,
) -> u64 {
    let client = &daemon.client;
    let current = client.checkpoint(pinned).await.unwrap();
    for old in &seen.checkpoints {
        assert!(
            old.checkpoint.size <= current.checkpoint.size,
            "a client saw {} leaves, the restarted log has {}",
            old.checkpoint.size,
            current.checkpoint.size
        );
        client
            .verify_consistency(&old.checkpoint, &current.checkpoint)
            .await
            .unwrap_or_else(|error| panic!("from size {}: {error}", old.checkpoint.size));
    }
    for answered in &seen.answered {
        let (leaves, signed) = client
            .session_audit(pinned, &answered.session_id)
            .await
            .unwrap_or_else(|error| panic!("session {}: {error}", answered.session_id));
        assert_eq!(
            signed.checkpoint, current.checkpoint,
            "proofs against the new checkpoint"
        );
        let [
            (request_at, Leaf::Request(request)),
            (result_at, Leaf::Result(result)),
        ] = leaves.as_slice()
        else {
            panic!("session {}: {leaves:?}", answered.session_id);
        };
        assert_eq!(
            (*request_at, *result_at),
            (answered.request_index, answered.result_index)
        );
        assert_eq!(
            (request.announcement_hash, request.request_commitment),
            (answered.announcement_hash, answered.commitments[0])
        );
        assert_eq!(
            (result.outcome, result.request_index),
            (Outcome::Executed, answered.request_index)
        );
        let logged = [
            result.request_commitment,
            result.result_commitment,
            result.input_commitment,
            result.output_commitment,
        ];
        assert_eq!(logged, answered.commitments);
    }
    for (session_id, request_commitment) in unanswered {
        let (status, body) =
            process::get(&daemon.url(&format!("/sessions/{session_id}/result"))).await;
        match client.session_audit(pinned, session_id).await {
            Ok((leaves, signed)) => {
                assert_eq!(signed.checkpoint, current.checkpoint);
                let [
                    (request_at, Leaf::Request(request)),
                    (_, Leaf::Result(result)),
                ] = leaves.as_slice()
                else {
                    panic!("cut-off session {session_id}: {leaves:?}");
                };
                assert_eq!(request.request_commitment, *request_commitment);
                assert_eq!(
                    (
                        result.outcome,
                        result.request_index,
                        result.request_commitment
                    ),
                    (Outcome::Aborted, *request_at, *request_commitment),
                    "cut-off session {session_id}"
                );
                let error: api::ErrorBody = serde_json::from_slice(&body).unwrap();
                assert_eq!(
                    (status, error.error.code.as_str(), error.request_commitment),
                    (500, "aborted", Some(hex::encode(request_commitment)))
                );
                totals.aborted_from_log += 1;
            }
            // Killed before its request leaf was durable: nothing ran, and nothing is left.
            Err(ClientError::Server { status: 404, .. }) => {
                assert_eq!(
                    (status, process::error_code(&body).as_str()),
                    (404, "session_not_found")
                );
                totals.never_logged += 1;
            }
            Err(error) => panic!("cut-off session {session_id}: {error}"),
        }
    }
    totals.aborted_leaves = process::whole_log(client, &current.checkpoint).await.len();
    let size = current.checkpoint.size;
    seen.checkpoints.push(current);
    size
}
