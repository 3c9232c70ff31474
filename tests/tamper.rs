//! Tampering with the audit log's storage is detected (`docs/PROTOCOL.md` §6), for each store. The
//! daemon runs as a process on a data directory; a client, and `wasm-hypervisor audit` with its
//! trust store, saw a checkpoint; then the directory is changed and the daemon restarted:
//! - an older copy of the data directory put back: the log no longer extends what was seen;
//! - history rewritten and re-signed by an operator holding the identity key (one byte of a leaf
//!   changed, a session's leaves dropped, the tail truncated): the daemon starts, but the new
//!   checkpoint is inconsistent with the trusted one, for the client library and for the CLI;
//! - without the key: a log whose stored checkpoint does not verify keeps the daemon from
//!   starting; a leaf byte changed in place in the store file is found by the background scrub
//!   (opening checks only the tree's right edge), which stops the daemon from taking work.
//!
//! Each case has its untampered control, which must pass the same checks.

mod process;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use process::{CliOutput, Daemon, is_inconsistent};
use tempfile::TempDir;
use wasm_hypervisor::client::{ClientError, Execution, PinnedIdentity, SignedCheckpoint};
use wasm_hypervisor::identity_file;
use wasm_hypervisor_actors::auditor::audit_log::{AuditLog, NewLeaf, ResultRetention, unix_millis};
use wasm_hypervisor_actors::auditor::store::{self, StoreKind};
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome, RequestLeaf, ResultLeaf};

const PROGRAM: &str = include_str!("programs/hello.wat");

/// Where result leaves keep the output commitment (§6 layout).
const OUTPUT_COMMITMENT_AT: usize = 131;

/// A daemon that ran sessions, and what its clients trust after them.
struct Original {
    store: &'static str,
    data: TempDir,
    /// The CLI's trust store: the pinned identity and the last checkpoint it verified.
    client_dir: TempDir,
    /// The daemon's address; restarts reuse it so the CLI sees the same server.
    listen: String,
    pinned: PinnedIdentity,
    executions: Vec<Execution>,
    /// The latest checkpoint the clients saw.
    trusted: SignedCheckpoint,
}

impl Original {
    /// Starts a daemon, runs `sessions` sessions through the client library, and has the CLI
    /// audit the whole log, which pins the identity and makes it trust the latest checkpoint.
    async fn new(store: &'static str, sessions: usize) -> (Self, Daemon) {
        let data = tempfile::tempdir().unwrap();
        let daemon = process::start(data.path(), "127.0.0.1:0", &["--store", store]);
        let pinned = daemon.pinned().await;
        let executions = run_sessions(&daemon, &pinned, sessions, None).await;
        let trusted = daemon.client.checkpoint(&pinned).await.unwrap();
        let client_dir = tempfile::tempdir().unwrap();
        std::fs::write(client_dir.path().join("program.wat"), PROGRAM).unwrap();
        let original = Self {
            store,
            data,
            client_dir,
            listen: daemon.addr.to_string(),
            pinned,
            executions,
            trusted,
        };
        assert_eq!(original.trusted.checkpoint.size, 2 * sessions as u64);
        assert_passes(&original.audit(&original.client_dir, &["--all"]));
        (original, daemon)
    }

    fn start(&self, data_dir: &Path) -> Daemon {
        process::start(data_dir, &self.listen, &["--store", self.store])
    }

    fn cli(&self, client_dir: &TempDir, command: &[&str]) -> CliOutput {
        let server = format!("http://{}", self.listen);
        let client = client_dir.path().to_str().unwrap();
        process::cli(&[command, &["--server", &server, "--client-dir", client]].concat())
    }

    /// `run` with the program saved in the original trust store's directory.
    fn run(&self, client_dir: &TempDir) -> CliOutput {
        let program = self.client_dir.path().join("program.wat");
        self.cli(client_dir, &["run", program.to_str().unwrap()])
    }

    fn audit(&self, client_dir: &TempDir, what: &[&str]) -> CliOutput {
        self.cli(client_dir, &[&["audit"], what].concat())
    }

    /// A copy of the CLI's trust store as it is now.
    fn trust_copy(&self) -> TempDir {
        let copy = tempfile::tempdir().unwrap();
        process::copy_dir(self.client_dir.path(), copy.path());
        copy
    }
}

/// Runs `count` sessions, each client trusting the checkpoint of the one before.
async fn run_sessions(
    daemon: &Daemon,
    pinned: &PinnedIdentity,
    count: usize,
    trusted: Option<&SignedCheckpoint>,
) -> Vec<Execution> {
    let mut executions: Vec<Execution> = Vec::new();
    for _ in 0..count {
        let trusted = executions.last().map(|last| &last.checkpoint).or(trusted);
        let execution = daemon
            .client
            .execute(pinned, &process::payload(PROGRAM), trusted)
            .await
            .unwrap();
        assert_eq!(execution.output.stdout, b"hello\n");
        executions.push(execution);
    }
    executions
}

fn assert_passes(output: &CliOutput) {
    assert!(output.status.success(), "{output}");
    assert!(output.stdout.contains("OK: verified"), "{output}");
}

/// The CLI refused, saying the log is not consistent with what it trusted.
fn assert_detected(output: &CliOutput) {
    assert_eq!(output.status.code(), Some(1), "{output}");
    assert!(
        output
            .stderr
            .contains("not consistent with a checkpoint seen before")
            && output.stderr.contains("rewritten or rolled back"),
        "{output}"
    );
    assert!(!output.stdout.contains("OK: verified"), "{output}");
}

async fn assert_inconsistent(
    daemon: &Daemon,
    trusted: &SignedCheckpoint,
    current: &SignedCheckpoint,
) {
    let error = daemon
        .client
        .verify_consistency(&trusted.checkpoint, &current.checkpoint)
        .await
        .expect_err("the log must not be consistent with the trusted checkpoint");
    assert!(is_inconsistent(&error), "{error}");
}

async fn assert_not_found(daemon: &Daemon, pinned: &PinnedIdentity, session_id: &str) {
    match daemon.client.session_audit(pinned, session_id).await {
        Err(ClientError::Server { status: 404, .. }) => {}
        other => panic!("session {session_id} should be gone: {other:?}"),
    }
}

#[actix_rt::test]
async fn restoring_an_older_data_directory_is_detected_redb() {
    restoring_an_older_data_directory_is_detected("redb").await;
}

#[actix_rt::test]
async fn restoring_an_older_data_directory_is_detected_sled() {
    restoring_an_older_data_directory_is_detected("sled").await;
}

async fn restoring_an_older_data_directory_is_detected(store: &'static str) {
    let (original, daemon) = Original::new(store, 2).await;
    let pinned = &original.pinned;
    daemon.kill();
    let old_copy = tempfile::tempdir().unwrap();
    process::copy_dir(original.data.path(), old_copy.path());

    // Control: restarted untampered, the log extends what the clients saw.
    let daemon = original.start(original.data.path());
    let later = run_sessions(&daemon, pinned, 2, Some(&original.trusted)).await;
    let trusted = daemon.client.checkpoint(pinned).await.unwrap();
    assert_eq!(trusted.checkpoint.size, 8);
    assert_passes(&original.audit(&original.client_dir, &["--all"]));
    daemon.kill();

    std::fs::remove_dir_all(original.data.path()).unwrap();
    process::copy_dir(old_copy.path(), original.data.path());
    let daemon = original.start(original.data.path());
    let current = daemon.client.checkpoint(pinned).await.unwrap();
    assert_eq!(
        current.checkpoint, original.trusted.checkpoint,
        "the old log is back"
    );
    assert_inconsistent(&daemon, &trusted, &current).await;
    for execution in &later {
        assert_not_found(&daemon, pinned, &execution.session_id).await;
    }
    assert_detected(&original.audit(&original.client_dir, &["--all"]));
    // A session the old copy holds verifies on its own, but not against what was seen since.
    let kept = original.executions[0].session_id.as_str();
    assert_detected(&original.audit(&original.client_dir, &[kept]));
    // The next run notices too, and its output is not trusted.
    let run = original.run(&original.client_dir);
    assert_detected(&run);
    assert!(!run.stdout.contains("hello"), "{run}");
}

/// How an operator holding the identity key rewrites history.
#[derive(Debug, Clone, Copy)]
enum Rewrite {
    /// The control: the same leaves, re-signed.
    Unchanged,
    /// One byte of the second session's result leaf (its output commitment).
    ChangedByte,
    /// The first session's request and result leaves.
    DroppedSession,
    /// The last session's two leaves.
    TruncatedTail,
}

#[actix_rt::test]
async fn history_rewritten_and_resigned_is_detected_redb() {
    history_rewritten_and_resigned_is_detected("redb").await;
}

#[actix_rt::test]
async fn history_rewritten_and_resigned_is_detected_sled() {
    history_rewritten_and_resigned_is_detected("sled").await;
}

async fn history_rewritten_and_resigned_is_detected(store: &'static str) {
    const SESSIONS: usize = 4;
    let (original, daemon) = Original::new(store, SESSIONS).await;
    let pinned = &original.pinned;
    let size = original.trusted.checkpoint.size;
    daemon.kill();
    let kind: StoreKind = store.parse().unwrap();
    let leaves = stored_leaves(kind, original.data.path());
    assert_eq!(leaves.len() as u64, size);
    let ids: Vec<&str> = original
        .executions
        .iter()
        .map(|e| e.session_id.as_str())
        .collect();

    for rewrite in [
        Rewrite::Unchanged,
        Rewrite::ChangedByte,
        Rewrite::DroppedSession,
        Rewrite::TruncatedTail,
    ] {
        let mut edited = leaves.clone();
        match rewrite {
            Rewrite::Unchanged => {}
            Rewrite::ChangedByte => {
                let Leaf::Result(result) = &mut edited[3] else {
                    panic!("leaf 3 is the second session's result");
                };
                result.output_commitment[0] ^= 0x01;
                let (old, new) = (leaves[3].encode(), edited[3].encode());
                let differ = old.iter().zip(&new).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 1, "exactly one byte of one leaf changed");
                assert_eq!(old[OUTPUT_COMMITMENT_AT] ^ new[OUTPUT_COMMITMENT_AT], 0x01);
            }
            Rewrite::DroppedSession => {
                edited.drain(..2);
            }
            Rewrite::TruncatedTail => {
                edited.truncate(edited.len() - 2);
            }
        }
        renumber(&mut edited);
        let rebuilt = rebuild(kind, original.data.path(), &pinned.origin, &edited);
        let trust = original.trust_copy();
        // Re-signed with the real key, the rewritten log passes the daemon's own checks.
        let daemon = original.start(rebuilt.path());
        assert_eq!(daemon.pinned().await, *pinned, "{rewrite:?}: same identity");
        let current = daemon.client.checkpoint(pinned).await.unwrap();
        let trusted = &original.trusted;
        match rewrite {
            Rewrite::Unchanged => {
                assert_eq!(current.checkpoint, trusted.checkpoint);
                daemon
                    .client
                    .verify_consistency(&trusted.checkpoint, &current.checkpoint)
                    .await
                    .unwrap();
                assert_passes(&original.audit(&trust, &["--all"]));
                assert_passes(&original.audit(&trust, &[ids[1]]));
            }
            Rewrite::ChangedByte => {
                assert_eq!(current.checkpoint.size, size);
                assert_ne!(current.checkpoint.root, trusted.checkpoint.root);
                assert_inconsistent(&daemon, trusted, &current).await;
                // The session's client kept its result leaf's commitments and checkpoint: the
                // leaf now served has valid proofs, but records another output, and the
                // checkpoint of its execution is not part of this tree.
                let execution = &original.executions[1];
                let (entries, _) = daemon.client.session_audit(pinned, ids[1]).await.unwrap();
                let [_, (3, Leaf::Result(served))] = entries.as_slice() else {
                    panic!("{entries:?}");
                };
                assert_eq!(served.result_commitment, execution.result_commitment);
                assert_ne!(served.output_commitment, execution.output_commitment);
                assert_inconsistent(&daemon, &execution.checkpoint, &current).await;
                assert_detected(&original.audit(&trust, &["--all"]));
                assert_detected(&original.audit(&trust, &[ids[1]]));
            }
            Rewrite::DroppedSession => {
                assert_eq!(current.checkpoint.size, size - 2);
                assert_not_found(&daemon, pinned, ids[0]).await;
                // The next `run` refuses the log before it sends its program: nothing is added.
                let run = original.run(&trust);
                assert_detected(&run);
                assert!(!run.stdout.contains("hello"), "{run}");
                assert_eq!(
                    daemon
                        .client
                        .checkpoint(pinned)
                        .await
                        .unwrap()
                        .checkpoint
                        .size,
                    size - 2
                );
                // Grown past the trusted size, the tree still does not extend the trusted one.
                run_sessions(&daemon, pinned, 2, None).await;
                let grown = daemon.client.checkpoint(pinned).await.unwrap();
                assert_eq!(grown.checkpoint.size, size + 2);
                assert_inconsistent(&daemon, trusted, &grown).await;
                assert_detected(&original.audit(&trust, &["--all"]));
            }
            Rewrite::TruncatedTail => {
                assert_eq!(current.checkpoint.size, size - 2);
                assert_inconsistent(&daemon, trusted, &current).await;
                assert_detected(&original.audit(&trust, &["--all"]));
                assert_detected(&original.audit(&trust, &[ids[1]]));
                // Every run first brings the trusted checkpoint forward (PROTOCOL.md §9), so
                // asking for a session the rollback dropped meets the rollback first.
                assert_detected(&original.audit(&trust, &[ids[SESSIONS - 1]]));
            }
        }
        daemon.kill();
    }
}

/// The leaves of the log in `data_dir`, as an operator reads them from the store.
fn stored_leaves(kind: StoreKind, data_dir: &Path) -> Vec<Leaf> {
    let store = store::open(kind, data_dir).unwrap();
    let size = store.size().unwrap();
    let leaves = store.leaves(0, size).unwrap();
    leaves
        .iter()
        .map(|bytes| Leaf::decode(bytes).unwrap())
        .collect()
}

/// Points every result leaf at its request leaf again, after leaves were removed, so the
/// rewritten log stays well-formed.
fn renumber(leaves: &mut [Leaf]) {
    let mut requests = HashMap::new();
    for (index, leaf) in (0u64..).zip(leaves.iter_mut()) {
        match leaf {
            Leaf::Request(request) => {
                requests.insert(request.session_id, index);
            }
            Leaf::Result(result) => result.request_index = requests[&result.session_id],
        }
    }
}

/// What an operator holding the identity key can do: build a fresh log from `leaves` in a new
/// data directory with the same key and origin, every checkpoint signed anew.
fn rebuild(kind: StoreKind, old_dir: &Path, origin: &str, leaves: &[Leaf]) -> TempDir {
    let identity = identity_file::load_or_create(old_dir).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        old_dir.join(identity_file::FILE_NAME),
        dir.path().join(identity_file::FILE_NAME),
    )
    .unwrap();
    let store = store::open(kind, dir.path()).unwrap();
    let (mut log, aborted) = AuditLog::open(
        store,
        Arc::new(identity),
        origin.to_owned(),
        ResultRetention::default(),
    )
    .unwrap();
    assert!(aborted.is_empty());
    log.append(leaves.iter().cloned().map(NewLeaf::from).collect())
        .unwrap();
    dir
}

/// One session's two leaves, as the daemon would log an execution.
fn session_leaves(session_id: [u8; 16], request_index: u64) -> [Leaf; 2] {
    [
        Leaf::Request(RequestLeaf {
            session_id,
            time_ms: unix_millis(),
            announcement_hash: [1; 32],
            request_commitment: [2; 32],
        }),
        Leaf::Result(ResultLeaf {
            session_id,
            time_ms: unix_millis(),
            request_index,
            outcome: Outcome::Executed,
            request_commitment: [2; 32],
            result_commitment: [3; 32],
            input_commitment: [4; 32],
            output_commitment: [5; 32],
        }),
    ]
}

#[actix_rt::test]
async fn a_log_signed_by_another_key_keeps_the_daemon_from_starting_redb() {
    a_log_signed_by_another_key_keeps_the_daemon_from_starting("redb").await;
}

#[actix_rt::test]
async fn a_log_signed_by_another_key_keeps_the_daemon_from_starting_sled() {
    a_log_signed_by_another_key_keeps_the_daemon_from_starting("sled").await;
}

async fn a_log_signed_by_another_key_keeps_the_daemon_from_starting(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let signer = identity_file::load_or_create(dir.path()).unwrap();
    let origin = signer.public().default_origin();
    let kind: StoreKind = store.parse().unwrap();
    let (mut log, _) = AuditLog::open(
        store::open(kind, dir.path()).unwrap(),
        Arc::new(signer),
        origin.clone(),
        ResultRetention::default(),
    )
    .unwrap();
    let mut leaves = Vec::new();
    for (session, request_index) in [(7, 0), (8, 2)] {
        leaves.extend(session_leaves([session; 16], request_index));
    }
    log.append(leaves.into_iter().map(NewLeaf::from).collect())
        .unwrap();
    drop(log);
    let args = ["--store", store, "--origin", &origin];

    // Control: with the key that signed it, the daemon verifies the log and serves it.
    let daemon = process::start(dir.path(), "127.0.0.1:0", &args);
    let pinned = daemon.pinned().await;
    assert_eq!(
        daemon
            .client
            .checkpoint(&pinned)
            .await
            .unwrap()
            .checkpoint
            .size,
        4
    );
    daemon.kill();

    // Another key under the same origin: the stored checkpoint's signature does not verify.
    std::fs::remove_file(dir.path().join(identity_file::FILE_NAME)).unwrap();
    let other = identity_file::load_or_create(dir.path()).unwrap();
    assert_ne!(other.public(), pinned.key);
    let Err((status, stderr)) = process::try_start(dir.path(), "127.0.0.1:0", &args) else {
        panic!("the daemon started on a log whose checkpoint it cannot verify");
    };
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the audit log does not verify")
            && stderr.contains("the stored checkpoint does not verify"),
        "{stderr}"
    );
}

#[actix_rt::test]
async fn a_leaf_changed_in_the_store_file_is_found_redb() {
    a_leaf_changed_in_the_store_file_is_found("redb").await;
}

#[actix_rt::test]
async fn a_leaf_changed_in_the_store_file_is_found_sled() {
    a_leaf_changed_in_the_store_file_is_found("sled").await;
}

/// Without the key, a byte changed in place: every copy of a result leaf's bytes in the store's
/// files gets one byte of its output commitment flipped. sled's segments are checksummed, so
/// sled may refuse to open them; otherwise the daemon starts and its scrub finds the change.
async fn a_leaf_changed_in_the_store_file_is_found(store: &'static str) {
    let (original, daemon) = Original::new(store, 2).await;
    daemon.kill();
    let kind: StoreKind = store.parse().unwrap();
    let leaf = store::open(kind, original.data.path())
        .unwrap()
        .leaf(3)
        .unwrap()
        .unwrap();
    let changed = flip_in_files(
        &kind.location(original.data.path()),
        &leaf,
        OUTPUT_COMMITMENT_AT,
    );
    assert!(changed > 0, "the leaf's bytes are in the store's files");
    let args = ["--store", store, "--scrub", "true"];
    let daemon = match process::try_start(original.data.path(), &original.listen, &args) {
        Ok(daemon) => daemon,
        Err((status, stderr)) => {
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert!(stderr.contains("corrupt"), "{stderr}");
            println!("{store}: {changed} copies changed; the store refused to open");
            return;
        }
    };
    // Bounded: the scrub of a log this small takes milliseconds.
    let mut ready = (200, Vec::new());
    for _ in 0..100 {
        ready = process::get(&daemon.url("/readyz")).await;
        if ready.0 != 200 {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready.0, 503,
        "the scrub did not stop the daemon from taking work"
    );
    assert!(String::from_utf8_lossy(&ready.1).contains("audit log"));
    println!("{store}: {changed} copies changed; the scrub failed the log closed");
}

/// Flips byte `at` of every occurrence of `needle` in the files under `path`; returns how many.
fn flip_in_files(path: &Path, needle: &[u8], at: usize) -> usize {
    if path.is_dir() {
        return std::fs::read_dir(path)
            .unwrap()
            .map(|entry| flip_in_files(&entry.unwrap().path(), needle, at))
            .sum();
    }
    let mut bytes = std::fs::read(path).unwrap();
    let found: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(offset, _)| offset)
        .collect();
    for offset in &found {
        bytes[offset + at] ^= 0x01;
    }
    if !found.is_empty() {
        std::fs::write(path, bytes).unwrap();
    }
    found.len()
}

/// A result leaf whose request commitment differs from its request leaf's, in a log re-signed
/// with the real key: opening checks only the right edge, so the daemon serves it, and
/// `audit --all` (the protocol's one replay) refuses it.
#[actix_rt::test]
async fn audit_all_catches_a_result_leaf_that_answers_another_request_commitment() {
    let keys = tempfile::tempdir().unwrap();
    let origin = identity_file::load_or_create(keys.path())
        .unwrap()
        .public()
        .default_origin();
    let mut leaves: Vec<Leaf> = session_leaves([7; 16], 0).into();
    let Leaf::Result(result) = &mut leaves[1] else {
        panic!("the second leaf is the result");
    };
    result.request_commitment[0] ^= 0x01;
    leaves.extend(session_leaves([8; 16], 2));
    let rebuilt = rebuild(StoreKind::Redb, keys.path(), &origin, &leaves);
    let daemon = process::start(rebuilt.path(), "127.0.0.1:0", &["--origin", &origin]);
    let client_dir = tempfile::tempdir().unwrap();
    let audit = process::cli(&[
        "audit",
        "--all",
        "--server",
        &format!("http://{}", daemon.addr),
        "--client-dir",
        client_dir.path().to_str().unwrap(),
    ]);
    assert_eq!(audit.status.code(), Some(1), "{audit}");
    assert!(
        audit
            .stderr
            .contains("result leaf 1 and its request leaf disagree"),
        "{audit}"
    );
}
