//! `cargo bench -p wasm-hypervisor --bench sessions`: whole sessions through a real daemon on
//! 127.0.0.1 (seal, execute, audit proof, verify), one client at a time and eight at once, for
//! each store. Prints the median latency and the throughput; bounded to a few hundred sessions.

use std::time::{Duration, Instant};

use wasm_hypervisor::client::Client;
use wasm_hypervisor::config::ServerConfig;
use wasm_hypervisor_actors::auditor::store::StoreKind;
use wasm_hypervisor_protocol::payload::RequestPayload;

const SEQUENTIAL: usize = 100;
const CONCURRENT_CLIENTS: usize = 8;
const PER_CLIENT: usize = 25;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn bench(store: StoreKind) {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().expect("an address"),
        data_dir.path().to_owned(),
    );
    config.store = store;
    let running = wasm_hypervisor::server::start(config).expect("the daemon starts");
    let url = format!("http://{}", running.addr);
    actix_rt::spawn(running.server);
    let hello = wat::parse_str(include_str!("../examples/hello.wat")).expect("valid WAT");
    let payload = RequestPayload {
        wasm: hello,
        ..RequestPayload::default()
    };
    let client = Client::new(&url);
    let pinned = client.identity().await.expect("the identity");

    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        client
            .execute(&pinned, &payload, None)
            .await
            .expect("a session runs");
        latencies.push(started.elapsed());
    }
    println!(
        "{store}: one client, {SEQUENTIAL} sessions: median {:?} per session",
        median(latencies)
    );

    let started = Instant::now();
    let clients: Vec<_> = (0..CONCURRENT_CLIENTS)
        .map(|_| {
            let (client, pinned, payload) = (Client::new(&url), pinned.clone(), payload.clone());
            actix_rt::spawn(async move {
                for _ in 0..PER_CLIENT {
                    client
                        .execute(&pinned, &payload, None)
                        .await
                        .expect("a session runs");
                }
            })
        })
        .collect();
    for handle in clients {
        handle.await.expect("a client finishes");
    }
    let total = CONCURRENT_CLIENTS * PER_CLIENT;
    let elapsed = started.elapsed();
    println!(
        "{store}: {CONCURRENT_CLIENTS} clients, {total} sessions in {elapsed:?}: {:.0} sessions/s",
        total as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    actix_rt::System::new().block_on(async {
        for store in StoreKind::ALL {
            bench(store).await;
        }
    });
}
