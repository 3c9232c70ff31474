//! `cargo bench -p wasm-hypervisor-actors --bench restart`: how long the audit log takes to
//! open, and how much memory it takes, at 1 M and 10 M leaves (`RESTART_BENCH_SIZES` sets
//! others, comma-separated), and then what one group commit of 32 sessions' leaves costs
//! there. Opening must cost the same at any size: it reads the tree's right edge and the
//! pending requests, never the leaves; so must appending, which reads nothing.
//!
//! Each log is built once under `target/restart-bench/` (minutes at 10 M; delete the folder to
//! rebuild) straight through the store, as the daemon's group commit would have written it:
//! sessions of a request leaf and a result leaf, a few left pending at the end (the first
//! opening gives them their `aborted` results). Each opening runs in a fresh child process, so
//! its peak RSS (`VmHWM`) is the opening's alone; the store's page cache is the default, 64 MiB.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasm_hypervisor_actors::auditor::audit_log::{AuditLog, NewLeaf, ResultRetention};
use wasm_hypervisor_actors::auditor::store::{self, Batch, StoreKind};
use wasm_hypervisor_protocol::checkpoint::Checkpoint;
use wasm_hypervisor_protocol::identity::IdentityKey;
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome, RequestLeaf, ResultLeaf};
use wasm_hypervisor_protocol::merkle::{self, RightEdge};

const ORIGIN: &str = "bench/restart";
const BATCH_SESSIONS: u64 = 50_000;
const PENDING: u64 = 3;
/// Openings per size; the median is reported.
const ROUNDS: usize = 5;
const MEASURE: &str = "RESTART_BENCH_MEASURE";
/// Group commits timed after each opening, of `APPEND_SESSIONS` sessions' two leaves each.
const APPEND_BATCHES: u64 = 50;
const APPEND_SESSIONS: u64 = 32;

fn identity() -> Arc<IdentityKey> {
    Arc::new(IdentityKey::from_secret_bytes(&[0x42; 32]).expect("a valid scalar"))
}

fn session_id(n: u64) -> [u8; 16] {
    let mut id = [0x5a; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

/// Writes `size` leaves: whole sessions, then `PENDING` (or one more, for an even `size`)
/// request leaves without results.
fn build(dir: &Path, size: u64) {
    let identity = identity();
    let mut store = store::open(StoreKind::Redb, dir).expect("a store");
    let mut edge = RightEdge::default();
    let sessions = (size - PENDING) / 2;
    let mut next = 0;
    let started = Instant::now();
    while edge.size() < size {
        let mut leaves = Vec::new();
        let mut session_ids = Vec::new();
        let mut opened = Vec::new();
        while leaves.len() < 2 * BATCH_SESSIONS as usize
            && edge.size() + (leaves.len() as u64) < size
        {
            let index = edge.size() + leaves.len() as u64;
            let id = session_id(next);
            let request = RequestLeaf {
                session_id: id,
                time_ms: 1_700_000_000_000 + next,
                announcement_hash: [1; 32],
                request_commitment: [2; 32],
            };
            leaves.push(Leaf::Request(request).encode());
            session_ids.push(id);
            if next < sessions {
                leaves.push(
                    Leaf::Result(ResultLeaf {
                        session_id: id,
                        time_ms: 1_700_000_000_001 + next,
                        request_index: index,
                        outcome: Outcome::Executed,
                        request_commitment: [2; 32],
                        result_commitment: [3; 32],
                        input_commitment: [4; 32],
                        output_commitment: [5; 32],
                    })
                    .encode(),
                );
                session_ids.push(id);
            } else {
                opened.push(index);
            }
            next += 1;
        }
        let hashes: Vec<_> = leaves.iter().map(|leaf| merkle::leaf_hash(leaf)).collect();
        let first_index = edge.size();
        let subtrees = edge.push(&hashes).expect("below 2^63 leaves");
        let checkpoint = Checkpoint {
            origin: ORIGIN.to_owned(),
            size: edge.size(),
            root: edge.root(),
        }
        .sign(&identity);
        store
            .append(&Batch {
                first_index,
                leaves: &leaves,
                session_ids: &session_ids,
                subtrees: &subtrees,
                checkpoint: &checkpoint,
                requests_opened: &opened,
                ..Batch::default()
            })
            .expect("the batch is written");
    }
    eprintln!("built {size} leaves in {:.1?}", started.elapsed());
}

/// The child: opens the log once and prints the time and its peak RSS.
fn measure(dir: &Path) {
    let started = Instant::now();
    let store = store::open(StoreKind::Redb, dir).expect("the store opens");
    let (log, _) = AuditLog::open(
        store,
        identity(),
        ORIGIN.to_owned(),
        ResultRetention::default(),
    )
    .expect("the log verifies");
    let elapsed = started.elapsed();
    let peak_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .unwrap_or(0);
    let opened_size = log.size();
    let batch_micros = append_batches(log);
    println!(
        "{opened_size} {} {peak_kib} {batch_micros}",
        elapsed.as_micros()
    );
}

/// Appends `APPEND_BATCHES` group commits of whole sessions, as the auditor would write them
/// (durably, each with its checkpoint and proofs); returns the median time of one, in µs.
fn append_batches(mut log: AuditLog) -> u128 {
    let mut samples = Vec::new();
    for batch in 0..APPEND_BATCHES {
        let first = log.size();
        let mut leaves = Vec::new();
        for n in 0..APPEND_SESSIONS {
            let id = session_id(u64::MAX - batch * APPEND_SESSIONS - n);
            let request = RequestLeaf {
                session_id: id,
                time_ms: 1_800_000_000_000,
                announcement_hash: [1; 32],
                request_commitment: [2; 32],
            };
            let result = ResultLeaf {
                session_id: id,
                time_ms: 1_800_000_000_001,
                request_index: first + 2 * n,
                outcome: Outcome::Internal,
                request_commitment: [2; 32],
                result_commitment: [0; 32],
                input_commitment: [0; 32],
                output_commitment: [0; 32],
            };
            leaves.push(NewLeaf::from(Leaf::Request(request)));
            leaves.push(NewLeaf::from(Leaf::Result(result)));
        }
        let started = Instant::now();
        log.append(leaves).expect("the batch is written");
        samples.push(started.elapsed().as_micros());
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn main() {
    if let Some(dir) = std::env::var_os(MEASURE) {
        return measure(Path::new(&dir));
    }
    let sizes: Vec<u64> = std::env::var("RESTART_BENCH_SIZES")
        .ok()
        .map(|sizes| {
            sizes
                .split(',')
                .map(|size| size.trim().parse().expect("a size"))
                .collect()
        })
        .unwrap_or_else(|| vec![1_000_000, 10_000_000]);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/restart-bench");
    println!(
        "leaves      open (median of {ROUNDS})   peak RSS   group commit of {APPEND_SESSIONS} sessions (median)"
    );
    for size in sizes {
        let built = root.join(size.to_string());
        if !built.join("log.redb").exists() {
            build(&built, size);
        }
        let mut samples = Vec::new();
        let mut peaks = Vec::new();
        let mut batches = Vec::new();
        for _ in 0..ROUNDS {
            let output = Command::new(std::env::current_exe().expect("this program"))
                .env(MEASURE, &built)
                .output()
                .expect("the child runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            let fields: Vec<u64> = line
                .split(' ')
                .map(|field| field.parse().expect("a number"))
                .collect();
            assert!(fields[0] > size, "the aborted results were appended");
            samples.push(Duration::from_micros(fields[1]));
            peaks.push(fields[2]);
            batches.push(Duration::from_micros(fields[3]));
        }
        samples.sort();
        peaks.sort_unstable();
        batches.sort();
        println!(
            "{size:>10}  {:>12.1?}            {:>4} MiB   {:>10.1?}",
            samples[ROUNDS / 2],
            peaks[ROUNDS / 2] / 1024,
            batches[ROUNDS / 2]
        );
    }
}
