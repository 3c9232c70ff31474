//! `wasm-hypervisor bench` against the real daemon: every session it counts as served was
//! verified, its figures come out as JSON, and its clients can connect from several loopback
//! addresses. No timing is asserted: figures are for `bench` to print, not for tests to judge.

mod process;

use std::path::Path;

const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/programs/hello.wat");

/// Runs `bench HELLO --server URL --client-dir DIR --json <extra…>` and returns its JSON.
fn bench(server: &str, client_dir: &Path, extra: &[&str]) -> serde_json::Value {
    let client_dir = client_dir.to_str().unwrap();
    let args = [
        &[
            "bench",
            HELLO,
            "--server",
            server,
            "--client-dir",
            client_dir,
            "--json",
        ],
        extra,
    ]
    .concat();
    let output = process::cli(&args);
    assert!(output.status.success(), "{output}");
    serde_json::from_str(&output.stdout).unwrap_or_else(|error| panic!("{error}: {output}"))
}

#[test]
fn bench_verifies_every_session_and_reports_its_figures_as_json() {
    let data = tempfile::tempdir().unwrap();
    let daemon = process::start(data.path(), "127.0.0.1:0", &[]);
    let client_dir = tempfile::tempdir().unwrap();
    let report = bench(
        &daemon.url(""),
        client_dir.path(),
        &["--sessions", "40", "--clients", "4", "--threads", "2"],
    );
    assert_eq!(report["verified"], 40, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["sessions"], 40, "{report:#}");
    assert_eq!(report["clients"], 4, "{report:#}");
    assert_eq!(report["threads"], 2, "{report:#}");
    for key in [
        "sessions_per_sec",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "duration_secs",
    ] {
        assert!(report[key].is_number(), "{key} in {report:#}");
    }
    assert_eq!(
        report["errors_by_kind"],
        serde_json::json!({}),
        "{report:#}"
    );
    // A fresh log holds the 40 sessions' request and result leaves, and the tracker followed
    // its checkpoints up to the last one, proving each advance.
    let consistency = &report["consistency"];
    assert_eq!(consistency["consistent"], true, "{report:#}");
    assert_eq!(consistency["checkpoint_size"], 80, "{report:#}");
    assert_eq!(
        consistency["proofs"].as_u64().unwrap() + 1,
        consistency["advances"].as_u64().unwrap(),
        "every advance but the first needs a proof: {report:#}"
    );
    // The tracked checkpoint is remembered, as `run` remembers its own.
    let trust = std::fs::read_to_string(client_dir.path().join("trust.json")).unwrap();
    let trust: serde_json::Value = serde_json::from_str(&trust).unwrap();
    let services = trust["services"].as_object().unwrap();
    let identities = services.values().next().unwrap()["identities"]
        .as_object()
        .unwrap();
    let note = identities.values().next().unwrap()["checkpoint"]
        .as_str()
        .unwrap();
    assert_eq!(note.lines().nth(1), Some("80"), "{note}");
}

#[test]
fn bench_clients_connect_from_the_source_addresses() {
    let data = tempfile::tempdir().unwrap();
    let daemon = process::start(data.path(), "127.0.0.1:0", &[]);
    let client_dir = tempfile::tempdir().unwrap();
    let report = bench(
        &daemon.url(""),
        client_dir.path(),
        &[
            "--sessions",
            "8",
            "--clients",
            "4",
            "--threads",
            "1",
            "--source-addrs",
            "2",
        ],
    );
    assert_eq!(report["verified"], 8, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["source_addrs"], 2, "{report:#}");
}

#[test]
fn bench_takes_a_duration_or_a_session_count_not_both() {
    let output = process::cli(&["bench", HELLO, "--duration", "1", "--sessions", "1"]);
    assert_eq!(output.status.code(), Some(2), "{output}");
    assert!(output.stderr.contains("cannot be used with"), "{output}");
}
