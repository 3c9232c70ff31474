//! Finished results are the log's (PROTOCOL.md §5, §7): the execute answer and every later
//! `GET …/result` are the same bytes, across a crash and restart; the kept bytes stay within
//! their budget, the oldest evicted first with `410 result_evicted`.

mod common;
mod process;

use awc::http::StatusCode;
use common::{Daemon, error_code, payload, start};

const HELLO: &str = include_str!("programs/hello.wat");

/// Runs hello in a new session; returns its id and the execute answer's body.
async fn run_hello(daemon: &Daemon) -> (String, Vec<u8>) {
    let session = daemon.open_session().await;
    let (enc_request, _) = session.seal(&payload(HELLO).encode());
    let (status, body) = session.execute(daemon, enc_request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    (session.id().to_owned(), body)
}

async fn result(daemon: &Daemon, session_id: &str) -> (StatusCode, Vec<u8>) {
    daemon.get(&format!("/sessions/{session_id}/result")).await
}

#[actix_rt::test]
async fn a_result_fetched_after_a_restart_is_the_execute_answer_byte_for_byte() {
    let data = tempfile::tempdir().unwrap();
    let first = process::start(data.path(), "127.0.0.1:0", &[]);
    let daemon = Daemon::connect(first.addr).await;
    let (session_id, answered) = run_hello(&daemon).await;
    assert_eq!(
        result(&daemon, &session_id).await,
        (StatusCode::OK, answered.clone())
    );
    first.kill();

    let second = process::start(data.path(), "127.0.0.1:0", &[]);
    let daemon = Daemon::connect(second.addr).await;
    assert_eq!(
        result(&daemon, &session_id).await,
        (StatusCode::OK, answered)
    );
}

#[actix_rt::test]
async fn kept_results_stay_within_their_budget_and_the_oldest_is_evicted_first() {
    const BUDGET: u64 = 4000;
    let daemon = start(|config| config.retention.max_bytes = BUDGET);
    let (oldest, first_answer) = run_hello(&daemon).await;
    let len = first_answer.len() as u64;
    assert!(
        2 * len <= BUDGET && 3 * len > BUDGET,
        "the test needs two answers to fit the budget and three not to: {len} bytes each"
    );
    let (middle, middle_answer) = run_hello(&daemon).await;
    assert_eq!(result(&daemon, &oldest).await.0, StatusCode::OK);
    let (newest, newest_answer) = run_hello(&daemon).await;

    let (status, body) = result(&daemon, &oldest).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(error_code(&body), ("result_evicted".to_owned(), None));
    assert_eq!(
        result(&daemon, &middle).await,
        (StatusCode::OK, middle_answer)
    );
    assert_eq!(
        result(&daemon, &newest).await,
        (StatusCode::OK, newest_answer)
    );
}
