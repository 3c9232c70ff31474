//! A daemon stops in phases on SIGTERM: it reports not ready and refuses new sessions, goes on
//! serving the sessions it had announced, and when its grace period is over gives what still
//! runs an `aborted` result leaf, makes the log durable and exits 0; the log verifies after.

mod process;

use std::time::Duration;

use wasm_hypervisor::client::Client;
use wasm_hypervisor_protocol::payload::{RequestPayload, RequestedLimits};

const HELLO: &str = include_str!("programs/hello.wat");
const SPIN: &str = r#"(module (func (export "_start") (loop (br 0))))"#;

async fn post_session(url: &str) -> u16 {
    awc::Client::new()
        .post(url)
        .send_json(&serde_json::json!({"client_nonce": hex::encode([7; 32])}))
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn sigterm_serves_announced_sessions_then_aborts_what_still_runs() {
    let data = tempfile::tempdir().unwrap();
    let daemon = process::start(data.path(), "127.0.0.1:0", &["--shutdown-grace-secs", "5"]);
    let pinned = daemon.pinned().await;
    let client = Client::with_timeout(&daemon.url(""), Duration::from_secs(60));
    let long = RequestPayload {
        limits: RequestedLimits {
            fuel: Some(u64::MAX),
            timeout_ms: Some(60_000),
            ..RequestedLimits::default()
        },
        ..process::payload(SPIN)
    };
    let mut cut_off = Vec::new();
    for _ in 0..4 {
        let sealed = client.seal(&pinned, &long, None).await.unwrap();
        cut_off.push(sealed.session_id());
        let (client, pinned) = (
            Client::with_timeout(&daemon.url(""), Duration::from_secs(60)),
            pinned.clone(),
        );
        // Cut off by the stop: however it ends for the client, the log must say aborted.
        actix_rt::spawn(async move {
            let _ = client.submit(&pinned, sealed, None).await;
        });
    }
    let mut announced = Vec::new();
    for _ in 0..3 {
        announced.push(
            client
                .seal(&pinned, &process::payload(HELLO), None)
                .await
                .unwrap(),
        );
    }
    for session_id in &cut_off {
        let path = daemon.url(&format!("/sessions/{session_id}/result"));
        let mut running = false;
        for _ in 0..500 {
            if process::get(&path).await.0 == 202 {
                running = true;
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(running, "{session_id} runs before the signal");
    }

    daemon.terminate();
    let mut refused = false;
    for _ in 0..500 {
        if post_session(&daemon.url("/sessions")).await == 503 {
            refused = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "a draining daemon announces no new session");
    assert_eq!(process::get(&daemon.url("/readyz")).await.0, 503);
    for sealed in announced {
        let execution = client.submit(&pinned, sealed, None).await.unwrap();
        assert_eq!(
            execution.output.stdout, b"hello\n",
            "announced before the signal, served after it"
        );
    }
    let (status, log) = daemon.wait_for_exit(Duration::from_secs(60));
    assert!(status.success(), "exit 0 after the phased stop:\n{log}");

    let daemon = process::start(data.path(), "127.0.0.1:0", &[]);
    let checkpoint = daemon.client.checkpoint(&pinned).await.unwrap();
    let aborted = process::whole_log(&daemon.client, &checkpoint.checkpoint).await;
    assert_eq!(
        aborted.len(),
        cut_off.len(),
        "one aborted result per cut-off run"
    );
    for session_id in &cut_off {
        let (status, body) =
            process::get(&daemon.url(&format!("/sessions/{session_id}/result"))).await;
        assert_eq!(
            (status, process::error_code(&body)),
            (500, "aborted".to_owned())
        );
    }
}
