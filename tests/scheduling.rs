//! Many sessions at once, at default settings: every admitted execution makes progress, short
//! programs finish while long ones run, hostile neighbours change nothing for anyone else, and
//! a panic costs one session. Tests assert order and results, never timing.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use awc::http::StatusCode;
use common::{Daemon, error_code, payload, rand_bytes, start};
use wasm_hypervisor::client::Execution;
use wasm_hypervisor_protocol::payload::{OutputMap, RequestPayload, RequestedLimits, Status};

const HELLO: &str = include_str!("programs/hello.wat");

/// Counts down from `$n` (a global set by the test) and returns: about four fuel a turn.
fn countdown(turns: u32) -> String {
    format!(
        r#"(module
          (func (export "_start") (local $n i32)
            (local.set $n (i32.const {turns}))
            (loop $l
              (local.set $n (i32.sub (local.get $n) (i32.const 1)))
              (br_if $l (local.get $n)))))"#
    )
}

/// Never ends by itself.
const SPIN: &str = r#"(module (func (export "_start") (loop (br 0))))"#;

/// Writes its environment block ("KEY=VALUE\0"), then echoes stdin, to stdout.
const ECHO_ENV_AND_STDIN: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $sizes (i32.const 32) (i32.const 36)))
    (drop (call $environ (i32.const 64) (i32.const 2048)))
    (i32.store (i32.const 0) (i32.const 2048))
    (i32.store (i32.const 4) (i32.load (i32.const 36)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 1024))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 4) (i32.load (i32.const 16)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))"#;

/// Grows its memory a page at a time until refused, then traps.
const MEMORY_BOMB: &str = r#"(module
  (memory 1)
  (func (export "_start")
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))"#;

/// Writes 4 KiB to stdout forever.
const FLOOD: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 4096))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $l))))"#;

/// Calls itself without end.
const RECURSE: &str = r#"(module (func $f (export "_start") (call $f)))"#;

/// Reads the clock and randomness as it goes, so its output depends on fuel and the seed.
const CLOCK_AND_RANDOM: &str = r#"(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    (local.set $n (i32.const 200000))
    (loop $l
      (drop (call $now (i32.const 1) (i64.const 1) (i32.const 256)))
      (drop (call $random (i32.const 264) (i32.const 8)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (i32.store (i32.const 0) (i32.const 256))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn with_limits(wat: &str, limits: RequestedLimits) -> RequestPayload {
    RequestPayload {
        limits,
        ..payload(wat)
    }
}

/// Runs each payload in its own task, all at once; the answers come back in order.
async fn run_all(daemon: &Daemon, payloads: Vec<RequestPayload>) -> Vec<Execution> {
    let pinned = daemon.pinned().await;
    let tasks: Vec<_> = payloads
        .into_iter()
        .map(|payload| {
            let (client, pinned) = (
                wasm_hypervisor::client::Client::with_timeout(
                    &daemon.url(""),
                    Duration::from_secs(120),
                ),
                pinned.clone(),
            );
            actix_rt::spawn(async move { client.execute(&pinned, &payload, None).await })
        })
        .collect();
    let mut executions = Vec::new();
    for task in tasks {
        executions.push(
            task.await
                .unwrap()
                .unwrap_or_else(|error| panic!("{error:?}")),
        );
    }
    executions
}

/// The output map without its one non-deterministic field.
fn deterministic(output: &OutputMap) -> OutputMap {
    OutputMap {
        duration_us: 0,
        ..output.clone()
    }
}

#[actix_rt::test]
async fn ten_long_computations_all_run_and_none_is_refused() {
    let daemon = start(|_| {});
    let executions = run_all(
        &daemon,
        (0..10).map(|_| payload(&countdown(12_500_000))).collect(),
    )
    .await;
    for execution in &executions {
        assert_eq!(execution.output.status, Status::Ok);
        assert!(execution.output.fuel_consumed >= 25_000_000);
    }
}

#[actix_rt::test]
async fn a_hundred_good_sessions_beside_hostile_ones_each_get_exactly_their_own_result() {
    let daemon = start(|_| {});
    let long = |wat: &str| {
        with_limits(
            wat,
            RequestedLimits {
                fuel: Some(300_000_000),
                timeout_ms: Some(60_000),
                ..RequestedLimits::default()
            },
        )
    };
    let hostile = vec![
        (long(SPIN), Status::OutOfFuel),
        (long(SPIN), Status::OutOfFuel),
        (long(MEMORY_BOMB), Status::MemoryLimit),
        (long(MEMORY_BOMB), Status::MemoryLimit),
        (long(FLOOD), Status::OutputLimit),
        (long(FLOOD), Status::OutputLimit),
        (long(RECURSE), Status::Trap),
        (long(RECURSE), Status::Trap),
    ];
    let secrets: Vec<([u8; 16], [u8; 16])> =
        (0..100).map(|_| (rand_bytes(), rand_bytes())).collect();
    let mut payloads: Vec<RequestPayload> = hostile.iter().map(|(p, _)| p.clone()).collect();
    payloads.extend(
        secrets
            .iter()
            .map(|(env_secret, stdin_secret)| RequestPayload {
                env: vec![("SECRET".to_owned(), hex::encode(env_secret))],
                stdin: stdin_secret.to_vec(),
                ..payload(ECHO_ENV_AND_STDIN)
            }),
    );
    let executions = run_all(&daemon, payloads).await;

    for (execution, (_, status)) in executions.iter().zip(&hostile) {
        assert_eq!(
            execution.output.status, *status,
            "{:?}",
            execution.output.error
        );
    }
    for (execution, (env_secret, stdin_secret)) in executions[hostile.len()..].iter().zip(&secrets)
    {
        let mut expected = format!("SECRET={}\0", hex::encode(env_secret)).into_bytes();
        expected.extend_from_slice(stdin_secret);
        assert_eq!(execution.output.status, Status::Ok);
        assert_eq!(
            execution.output.stdout, expected,
            "its own secrets, nobody else's"
        );
    }
    let mut commitments = HashSet::new();
    for execution in &executions {
        for commitment in [
            execution.request_commitment,
            execution.result_commitment,
            execution.input_commitment,
            execution.output_commitment,
        ] {
            assert!(commitments.insert(commitment), "every commitment is unique");
        }
    }
}

#[actix_rt::test]
async fn short_sessions_finish_while_infinite_loops_run() {
    let daemon = start(|_| {});
    let pinned = daemon.pinned().await;
    let loop_payload = with_limits(
        SPIN,
        RequestedLimits {
            fuel: Some(u64::MAX),
            timeout_ms: Some(3_000),
            ..RequestedLimits::default()
        },
    );
    let mut loops = Vec::new();
    for _ in 0..4 {
        let sealed = daemon
            .client
            .seal(&pinned, &loop_payload, None)
            .await
            .unwrap();
        let session_id = sealed.session_id();
        let (client, pinned) = (
            wasm_hypervisor::client::Client::with_timeout(&daemon.url(""), Duration::from_secs(60)),
            pinned.clone(),
        );
        let task = actix_rt::spawn(async move { client.submit(&pinned, sealed, None).await });
        loops.push((session_id, task));
    }
    for (session_id, _) in &loops {
        let path = format!("/sessions/{session_id}/result");
        let mut running = false;
        for _ in 0..500 {
            if daemon.get(&path).await.0 == StatusCode::ACCEPTED {
                running = true;
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(running, "loop {session_id} was admitted");
    }

    let hellos = run_all(&daemon, (0..40).map(|_| payload(HELLO)).collect()).await;
    assert!(hellos.iter().all(|hello| hello.output.stdout == b"hello\n"));
    for (session_id, _) in &loops {
        let (status, _) = daemon.get(&format!("/sessions/{session_id}/result")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "every loop still runs");
    }
    for (_, task) in loops {
        let execution = task.await.unwrap().unwrap();
        assert_eq!(execution.output.status, Status::Timeout);
    }
}

#[actix_rt::test]
async fn a_program_gives_the_same_fuel_and_output_alone_and_beside_others() {
    let daemon = start(|_| {});
    let program = RequestPayload {
        seed: Some([9; 32]),
        ..payload(CLOCK_AND_RANDOM)
    };
    let alone = run_all(&daemon, vec![program.clone()]).await;
    let mut crowded = vec![program.clone()];
    crowded.extend((0..4).map(|_| payload(&countdown(5_000_000))));
    crowded.push(program);
    let crowded = run_all(&daemon, crowded).await;
    let alone = deterministic(&alone[0].output);
    assert_eq!(alone.status, Status::Ok);
    assert_eq!(alone.stdout.len(), 16);
    // The server's seed differs between sessions; fuel, clocks and output may not.
    for beside in [&crowded[0], &crowded[5]] {
        let beside = deterministic(&beside.output);
        assert_eq!(beside.fuel_consumed, alone.fuel_consumed);
        assert_eq!(beside.stdout[..8], alone.stdout[..8], "the clock is fuel");
        assert_eq!(
            OutputMap {
                stdout: Vec::new(),
                server_seed: [0; 32],
                random_seed: [0; 32],
                ..beside
            },
            OutputMap {
                stdout: Vec::new(),
                server_seed: [0; 32],
                random_seed: [0; 32],
                ..alone.clone()
            }
        );
    }
}

/// The test-only panic entry exists in debug builds only, like the tests that run it.
#[cfg(debug_assertions)]
#[actix_rt::test]
async fn a_panic_costs_one_session_and_the_daemon_serves_the_next() {
    let daemon = start(|_| {});
    let session = daemon.open_session().await;
    let panics = RequestPayload {
        entry: Some(wasm_hypervisor_actors::sandbox::PANIC_ENTRY.to_owned()),
        ..payload(HELLO)
    };
    let (enc_request, _) = session.seal(&panics.encode());
    let (status, body) = session.execute(&daemon, enc_request).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (code, request_commitment) = error_code(&body);
    assert_eq!(code, "internal");
    assert!(request_commitment.is_some(), "consumed and logged");
    let (leaves, _) = daemon
        .client
        .session_audit(&daemon.pinned().await, session.id())
        .await
        .unwrap();
    assert_eq!(
        leaves.len(),
        2,
        "a request leaf and an internal result leaf"
    );
    let after = run_all(&daemon, vec![payload(HELLO), payload(HELLO)]).await;
    assert!(after.iter().all(|e| e.output.stdout == b"hello\n"));
}
