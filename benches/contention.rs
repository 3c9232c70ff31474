//! `cargo bench -p wasm-hypervisor --bench contention`: what other programs cost a short one,
//! and what a thousand admitted executions cost the daemon's memory. Each measure runs
//! against a daemon process of its own (the release binary, default settings), killed after,
//! so that no loop outlives its measure. Prints medians.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wasm_hypervisor::client::Client;
use wasm_hypervisor_protocol::payload::{RequestPayload, RequestedLimits};

const BIN: &str = env!("CARGO_BIN_EXE_wasm-hypervisor");
const HELLOS: usize = 21;

struct Daemon {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Self {
        let data = tempfile::tempdir().expect("a temporary directory");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts");
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the daemon logs where it listens")
                .expect("its log is text");
            if let Some(at) = line.find("listening on ") {
                break line[at + "listening on ".len()..].trim().to_owned();
            }
        };
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url,
            _data: data,
        }
    }

    /// Peak and current resident memory, in MiB.
    fn memory_mib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or(0)
        };
        (kib("VmHWM:") / 1024, kib("VmRSS:") / 1024)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(wat: &str, limits: RequestedLimits) -> RequestPayload {
    RequestPayload {
        wasm: wat::parse_str(wat).expect("valid WAT"),
        limits,
        ..RequestPayload::default()
    }
}

/// The median latency of a hello session while `loops` infinite loops run beside it.
async fn hello_beside_loops(loops: usize) -> Duration {
    let daemon = Daemon::start();
    let client = Client::with_timeout(&daemon.url, Duration::from_secs(120));
    let pinned = client.identity().await.expect("the identity");
    let spin = program(
        r#"(module (func (export "_start") (loop (br 0))))"#,
        RequestedLimits {
            fuel: Some(u64::MAX),
            timeout_ms: Some(60_000),
            ..RequestedLimits::default()
        },
    );
    for _ in 0..loops {
        let sealed = client.seal(&pinned, &spin, None).await.expect("a session");
        let session_id = sealed.session_id();
        let (client, pinned) = (
            Client::with_timeout(&daemon.url, Duration::from_secs(120)),
            pinned.clone(),
        );
        actix_rt::spawn(async move {
            let _ = client.submit(&pinned, sealed, None).await;
        });
        let status = format!("{}/sessions/{session_id}/result", daemon.url);
        while awc::Client::new()
            .get(&status)
            .send()
            .await
            .map_or(true, |response| response.status() != 202)
        {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let hello = program(
        include_str!("../examples/hello.wat"),
        RequestedLimits::default(),
    );
    let mut latencies: Vec<Duration> = Vec::new();
    for _ in 0..HELLOS {
        let started = Instant::now();
        client
            .execute(&pinned, &hello, None)
            .await
            .expect("a hello session");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies[HELLOS / 2]
}

/// The daemon's peak memory while a thousand executions are admitted at once.
async fn memory_at_a_thousand() -> (u64, u64, Duration) {
    const EXECUTIONS: usize = 1000;
    let daemon = Daemon::start();
    let pinned = Client::new(&daemon.url)
        .identity()
        .await
        .expect("the identity");
    let (idle_peak, _) = daemon.memory_mib();
    // About 8 M fuel each: they overlap, and most wait for memory or a slice.
    let countdown = program(
        r#"(module (func (export "_start") (local $n i32)
          (local.set $n (i32.const 2000000))
          (loop $l
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br_if $l (local.get $n)))))"#,
        RequestedLimits::default(),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..EXECUTIONS)
        .map(|_| {
            let client = Client::with_timeout(&daemon.url, Duration::from_secs(600));
            let (pinned, countdown) = (pinned.clone(), countdown.clone());
            actix_rt::spawn(async move { client.execute(&pinned, &countdown, None).await })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("a client finishes")
            .expect("every execution is admitted and runs");
    }
    let (peak, _) = daemon.memory_mib();
    (idle_peak, peak, started.elapsed())
}

fn main() {
    actix_rt::System::new().block_on(async {
        for loops in [0, 2, 8, 32] {
            println!(
                "hello session beside {loops} infinite loops: median {:?}",
                hello_beside_loops(loops).await
            );
        }
        let (idle, peak, took) = memory_at_a_thousand().await;
        println!(
            "1000 executions admitted at once: daemon peak RSS {peak} MiB (idle {idle} MiB), all done in {took:?}"
        );
    });
}
