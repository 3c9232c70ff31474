//! What an operator relies on over HTTP: liveness with the version, readiness, and metrics
//! that count what happened, served on the admin listener only.

mod common;

use common::{payload, start};

#[actix_rt::test]
async fn health_readiness_and_metrics() {
    let daemon = start(|_| {});
    let (status, body) = daemon.get("/healthz").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let (status, body) = daemon.get("/readyz").await;
    assert_eq!(
        (status.as_u16(), body),
        (200, br#"{"ready":true}"#.to_vec())
    );

    let pinned = daemon.pinned().await;
    let program = r#"(module (func (export "_start") unreachable))"#;
    let execution = daemon
        .client
        .execute(&pinned, &payload(program), None)
        .await
        .unwrap();
    daemon.open_session().await;

    let (status, body) = daemon.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for expected in [
        "wasm_hypervisor_sessions_total{status=\"trap\"} 1".to_owned(),
        format!(
            "wasm_hypervisor_fuel_consumed_total {}",
            execution.output.fuel_consumed
        ),
        "wasm_hypervisor_execution_seconds_count 1".to_owned(),
        "wasm_hypervisor_end_to_end_seconds_count 1".to_owned(),
        "wasm_hypervisor_open_sessions 1".to_owned(),
        "wasm_hypervisor_pending_executions 0".to_owned(),
        "wasm_hypervisor_audit_log_leaves 2".to_owned(),
        "wasm_hypervisor_audit_checkpoint_size 2".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
}

#[actix_rt::test]
async fn refused_admissions_are_counted() {
    let daemon = start(|config| config.supervisor.max_open_sessions = 0);
    let (status, _) = common::post_json(
        &daemon.url("/sessions"),
        &serde_json::json!({"client_nonce": hex::encode([1u8; 32])}),
    )
    .await;
    assert_eq!(status, 503);
    let (_, body) = daemon.admin_get("/metrics").await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("wasm_hypervisor_admissions_refused_total{what=\"sessions\"} 1"),
        "{text}"
    );
}

/// Exact fuel and per-status counts, polled around a victim's session, would tell its input:
/// the public listener serves no metrics at all.
#[actix_rt::test]
async fn the_public_listener_serves_no_metrics() {
    let daemon = start(|_| {});
    let (status, _) = daemon.get("/metrics").await;
    assert_eq!(status, 404);
    let (status, body) = daemon.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("wasm_hypervisor_")
    );
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(daemon.get(probe).await.0, 200, "{probe} stays public");
        assert_eq!(
            daemon.admin_get(probe).await.0,
            200,
            "{probe} on the admin listener"
        );
    }
}
