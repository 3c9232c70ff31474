//! End to end through the real daemon: the client path, and every status of `docs/PROTOCOL.md` §7.

mod common;

use common::{payload, start};
use wasm_hypervisor_protocol::payload::{RequestPayload, RequestedLimits, ReturnValue, Status};

const HELLO: &str = include_str!("programs/hello.wat");

/// Echoes stdin to stdout, then writes "err" to stderr.
const CAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "err")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 12)))))"#;

async fn run(
    daemon: &common::Daemon,
    payload: &RequestPayload,
) -> wasm_hypervisor::client::Execution {
    let pinned = daemon.pinned().await;
    daemon.client.execute(&pinned, payload, None).await.unwrap()
}

#[actix_rt::test]
async fn hello_runs_and_every_commitment_checks_out() {
    let daemon = start(|_| {});
    let execution = run(&daemon, &payload(HELLO)).await;
    let output = &execution.output;
    assert_eq!(output.status, Status::Ok);
    assert_eq!(output.exit_code, Some(0));
    assert_eq!(output.stdout, b"hello\n");
    assert_eq!(output.stderr, b"");
    assert_eq!(output.returns, None);
    assert!(output.fuel_consumed > 0);
    assert!(output.engine.starts_with("wasmi 2.0.0"));
    // The announcement committed to the server seed before the client's seed was seen.
    let announcement =
        wasm_hypervisor_protocol::announcement::Announcement::from_tbs(&execution.tbs).unwrap();
    assert_eq!(
        announcement.seed_commitment,
        wasm_hypervisor_protocol::commitment::seed_commitment(&output.server_seed)
    );
    assert_eq!(
        output.random_seed,
        wasm_hypervisor_protocol::commitment::random_seed(&output.server_seed, &[0; 32])
    );
    // The result leaf was checked and proven included by the client; it follows the request.
    assert!(execution.request_index < execution.result_index);
    assert!(execution.checkpoint.checkpoint.size > execution.result_index);
}

#[actix_rt::test]
async fn stdin_args_and_env_reach_the_program_and_limits_are_reported() {
    let daemon = start(|_| {});
    let execution = run(
        &daemon,
        &RequestPayload {
            stdin: b"from stdin".to_vec(),
            limits: RequestedLimits {
                fuel: Some(5_000_000),
                timeout_ms: Some(u64::MAX),
                ..Default::default()
            },
            ..payload(CAT)
        },
    )
    .await;
    let output = &execution.output;
    assert_eq!(
        (
            output.status,
            output.stdout.as_slice(),
            output.stderr.as_slice()
        ),
        (Status::Ok, &b"from stdin"[..], &b"err"[..])
    );
    assert_eq!(output.limits.fuel, 5_000_000, "a request may lower a limit");
    assert_eq!(
        output.limits.timeout_ms, 60_000,
        "but never raise one past the maximum"
    );
}

#[actix_rt::test]
async fn every_status_is_reachable() {
    let daemon = start(|_| {});
    let loop_forever = r#"(module (func (export "_start") (loop (br 0))))"#;
    let cases: Vec<(&str, RequestPayload, Status)> = vec![
        (
            "exit",
            payload(
                r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (func (export "_start") (call $exit (i32.const 3))))"#,
            ),
            Status::Exit,
        ),
        (
            "trap",
            payload(r#"(module (func (export "_start") unreachable))"#),
            Status::Trap,
        ),
        (
            "out_of_fuel",
            RequestPayload {
                limits: RequestedLimits {
                    fuel: Some(10_000),
                    ..Default::default()
                },
                ..payload(loop_forever)
            },
            Status::OutOfFuel,
        ),
        (
            "timeout",
            RequestPayload {
                limits: RequestedLimits {
                    // The most fuel there is, so that only the clock ends it, however fast wasmi.
                    fuel: Some(u64::MAX),
                    timeout_ms: Some(100),
                    ..Default::default()
                },
                ..payload(loop_forever)
            },
            Status::Timeout,
        ),
        (
            "memory_limit",
            RequestPayload {
                limits: RequestedLimits {
                    memory_bytes: Some(65_536),
                    ..Default::default()
                },
                ..payload(r#"(module (memory 2) (func (export "_start")))"#)
            },
            Status::MemoryLimit,
        ),
        (
            "output_limit",
            RequestPayload {
                limits: RequestedLimits {
                    output_bytes: Some(3),
                    ..Default::default()
                },
                ..payload(HELLO)
            },
            Status::OutputLimit,
        ),
        (
            "invalid_module",
            RequestPayload {
                wasm: b"\0asm\x01\0\0\0garbage".to_vec(),
                ..Default::default()
            },
            Status::InvalidModule,
        ),
        (
            "link_error",
            payload(r#"(module (import "env" "missing" (func)) (func (export "_start")))"#),
            Status::LinkError,
        ),
    ];
    for (name, payload, expected) in cases {
        let output = run(&daemon, &payload).await.output;
        assert_eq!(output.status, expected, "{name}: {:?}", output.error);
        let exit_code = match expected {
            Status::Exit => Some(3),
            _ => None,
        };
        assert_eq!(output.exit_code, exit_code, "{name}");
        if expected != Status::Exit {
            assert!(output.error.is_some(), "{name} says why");
        }
    }
}

#[actix_rt::test]
async fn a_named_entry_returns_its_results() {
    let daemon = start(|_| {});
    let execution = run(
        &daemon,
        &RequestPayload {
            entry: Some("answer".into()),
            ..payload(
                r#"(module (func (export "answer") (result i32 i64 f32 f64)
                i32.const -1 i64.const 42 f32.const 1.5 f64.const -2.25))"#,
            )
        },
    )
    .await;
    assert_eq!(execution.output.status, Status::Ok);
    assert_eq!(
        execution.output.returns,
        Some(vec![
            ReturnValue::I32(-1),
            ReturnValue::I64(42),
            ReturnValue::F32(1.5f32.to_bits()),
            ReturnValue::F64((-2.25f64).to_bits()),
        ])
    );
}

#[actix_rt::test]
async fn a_payload_that_does_not_decode_is_a_sealed_bad_payload_result() {
    let daemon = start(|_| {});
    let session = daemon.open_session().await;
    // A map with an unknown key: a typo must not silently drop a limit.
    let mut bad = RequestPayload {
        wasm: vec![0],
        ..Default::default()
    }
    .encode();
    bad[0] += 1; // one more entry…
    bad.extend([0x64, b'f', b'u', b'l', b'e', 0x01]); // …"fule": 1
    let (enc_request, response_key) = session.seal(&bad);
    let (status, body) = session.execute(&daemon, enc_request).await;
    assert_eq!(status, 200);
    let executed: wasm_hypervisor_protocol::api::Executed = serde_json::from_slice(&body).unwrap();
    let result = wasm_hypervisor_protocol::payload::ResultPayload::decode(
        &response_key.open(&executed.sealed_result).unwrap(),
    )
    .unwrap();
    let output = wasm_hypervisor_protocol::payload::OutputMap::decode(&result.output).unwrap();
    assert_eq!(output.status, Status::BadPayload);
    assert!(output.error.unwrap().contains("fule"));
    assert_eq!(
        (output.exit_code, output.fuel_consumed, output.returns),
        (None, 0, None)
    );
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
    assert_eq!(
        output.limits,
        wasm_hypervisor_actors::session::LimitsPolicy::default().default
    );
    assert_eq!(
        output.random_seed,
        wasm_hypervisor_protocol::commitment::random_seed(&output.server_seed, &[0; 32])
    );
}

#[actix_rt::test]
async fn the_result_can_be_fetched_again_byte_for_byte() {
    let daemon = start(|_| {});
    let session = daemon.open_session().await;
    let (enc_request, _) = session.seal(&payload(HELLO).encode());
    let (status, body) = session.execute(&daemon, enc_request).await;
    assert_eq!(status, 200);
    let (again_status, again) = daemon
        .get(&format!("/sessions/{}/result", session.id()))
        .await;
    assert_eq!((again_status.as_u16(), again), (200, body));
}

#[actix_rt::test]
async fn a_client_whose_connection_breaks_still_gets_its_result() {
    let daemon = start(|_| {});
    // Gives up on the execute call long before the program ends.
    let client = wasm_hypervisor::client::Client::with_timeout(
        &daemon.url(""),
        std::time::Duration::from_millis(200),
    );
    let pinned = client.identity().await.unwrap();
    let spin = RequestPayload {
        limits: RequestedLimits {
            // The most fuel there is, so that only the clock ends it, however fast wasmi.
            fuel: Some(u64::MAX),
            timeout_ms: Some(1500),
            ..Default::default()
        },
        ..payload(r#"(module (func (export "_start") (loop (br 0))))"#)
    };
    let execution = client.execute(&pinned, &spin, None).await.unwrap();
    assert_eq!(execution.output.status, Status::Timeout);
}
