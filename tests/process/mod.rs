//! Runs the `wasm-hypervisor` binary as a separate process, so that tests can SIGKILL it, tamper
//! with its data directory and start it again, and runs the CLI the way a user does; plus the
//! client steps and whole-log check those tests share.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use wasm_hypervisor::client::{Client, ClientError, PinnedIdentity};
use wasm_hypervisor_protocol::api;
use wasm_hypervisor_protocol::checkpoint::Checkpoint;
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome};
use wasm_hypervisor_protocol::payload::RequestPayload;
use wasm_hypervisor_protocol::replay::LogReplay;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_wasm-hypervisor");
/// How long a start, a CLI call or an HTTP call may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(60);
const LISTENING: &str = "listening on http://";
const METRICS_AT: &str = "metrics at http://";

/// A daemon process. Dropping it kills it (SIGKILL), so a failing test leaves nothing running.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// The admin listener, which the tests give an ephemeral port.
    pub(crate) admin_addr: Option<SocketAddr>,
    pub(crate) client: Client,
    stderr: Arc<Mutex<String>>,
}

/// Starts `serve --listen <listen> --data-dir <data_dir> <extra…>` and waits until it listens;
/// `Err` with the exit status and stderr if it exits first. Its admin listener gets an
/// ephemeral port unless `extra` says otherwise, so that daemons of parallel tests never
/// compete for the default one.
pub(crate) fn try_start(
    data_dir: &Path,
    listen: &str,
    extra: &[&str],
) -> Result<Daemon, (ExitStatus, String)> {
    spawn(Command::new(BIN), data_dir, listen, extra)
}

/// [`start`] with the process's open-file limit lowered to `limit`, as on a smaller host.
pub(crate) fn start_with_open_file_limit(
    data_dir: &Path,
    listen: &str,
    limit: u32,
    extra: &[&str],
) -> Daemon {
    let mut shell = Command::new("sh");
    shell.args([
        "-c",
        &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
        BIN,
    ]);
    spawn(shell, data_dir, listen, extra).unwrap_or_else(|(status, stderr)| {
        panic!("the daemon exited ({status}) instead of listening:\n{stderr}")
    })
}

fn spawn(
    mut command: Command,
    data_dir: &Path,
    listen: &str,
    extra: &[&str],
) -> Result<Daemon, (ExitStatus, String)> {
    command
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(extra);
    if !extra.contains(&"--admin-listen") {
        command.args(["--admin-listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the daemon binary starts");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (listening, addr) = mpsc::channel();
    let admin_addr = Arc::new(Mutex::new(None));
    let admin = Arc::clone(&admin_addr);
    let reader = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let lines = Arc::clone(&stderr);
    // Keeps draining stderr for the daemon's whole life, so its logging never blocks.
    let drain = std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if let Some(at) = line.find(METRICS_AT) {
                let addr = line[at + METRICS_AT.len()..].trim_end_matches("/metrics");
                *admin.lock().unwrap() = addr.trim().parse().ok();
            }
            if let Some(at) = line.find(LISTENING) {
                let _ = listening.send(line[at + LISTENING.len()..].trim().to_owned());
            }
            let mut text = lines.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    match addr.recv_timeout(PATIENCE) {
        Ok(addr) => Ok(Daemon {
            child,
            addr: addr
                .parse()
                .expect("the daemon logs the address it listens on"),
            // Logged before the public address.
            admin_addr: *admin_addr.lock().unwrap(),
            client: Client::new(&format!("http://{addr}")),
            stderr,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.wait().expect("the daemon is waited for");
            drain
                .join()
                .expect("the stderr reader ends with the daemon");
            let stderr = stderr.lock().unwrap().clone();
            Err((status, stderr))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the daemon did not listen within {PATIENCE:?}:\n{}",
                stderr.lock().unwrap()
            );
        }
    }
}

pub(crate) fn start(data_dir: &Path, listen: &str, extra: &[&str]) -> Daemon {
    try_start(data_dir, listen, extra).unwrap_or_else(|(status, stderr)| {
        panic!("the daemon exited ({status}) instead of listening:\n{stderr}")
    })
}

impl Daemon {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) async fn pinned(&self) -> PinnedIdentity {
        self.client.identity().await.expect("GET /identity")
    }

    /// SIGKILL, after checking that the daemon was still running (it did not die on its own).
    pub(crate) fn kill(mut self) {
        let early = self
            .child
            .try_wait()
            .expect("the daemon's status is readable");
        assert!(
            early.is_none(),
            "the daemon exited ({early:?}) before it was killed:\n{}",
            self.stderr.lock().unwrap()
        );
        self.child.kill().expect("SIGKILL is delivered");
        let status = self.child.wait().expect("the daemon is waited for");
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    }
}

impl Daemon {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM: the daemon starts its phased stop.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM is delivered");
    }

    /// Waits, at most `patience`, for the daemon to exit by itself; its exit status and log.
    pub(crate) fn wait_for_exit(mut self, patience: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the status is readable") {
                return (status, self.stderr.lock().unwrap().clone());
            }
            assert!(
                started.elapsed() < patience,
                "the daemon did not exit within {patience:?}:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct CliOutput {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `wasm-hypervisor <args…>` to completion (killed after [`PATIENCE`]).
pub(crate) fn cli(args: &[&str]) -> CliOutput {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI starts");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped")));
    let stderr = read(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the CLI's status is readable") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`wasm-hypervisor {}` took over {PATIENCE:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    CliOutput {
        status,
        stdout: stdout.join().expect("stdout is read"),
        stderr: stderr.join().expect("stderr is read"),
    }
}

pub(crate) async fn get(url: &str) -> (u16, Vec<u8>) {
    send(
        awc::Client::builder().timeout(PATIENCE).finish().get(url),
        None,
    )
    .await
    .unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

async fn send(
    request: awc::ClientRequest,
    body: Option<Vec<u8>>,
) -> Result<(u16, Vec<u8>), String> {
    let mut response = match body {
        Some(body) => request.send_body(body).await,
        None => request.send().await,
    }
    .map_err(|error| error.to_string())?;
    let body = response
        .body()
        .limit(64 << 20)
        .await
        .map_err(|error| error.to_string())?;
    Ok((response.status().as_u16(), body.to_vec()))
}

/// A process's resident memory, from `/proc`.
pub(crate) fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the process's /proc status is readable");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// The §7 error code of an error body.
pub(crate) fn error_code(body: &[u8]) -> String {
    let error: api::ErrorBody = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not an error body: {}", String::from_utf8_lossy(body)));
    error.error.code
}

/// The auditor's full check of §6 through the protocol's one replay: downloads every entry,
/// replays it (every result leaf answers an open request leaf of its session with its request
/// commitment), compares the root with `checkpoint`, and requires no request leaf to be left
/// without a result. Returns the indices of `aborted` result leaves.
pub(crate) async fn whole_log(client: &Client, checkpoint: &Checkpoint) -> Vec<u64> {
    let mut replay = LogReplay::default();
    let mut aborted = Vec::new();
    while replay.size() < checkpoint.size {
        let page = client
            .entries(replay.size(), checkpoint.size)
            .await
            .expect("GET /audit/entries");
        assert!(!page.is_empty(), "no entries from {}", replay.size());
        let mut leaves = Vec::new();
        for (index, bytes) in page {
            assert_eq!(
                index,
                replay.size() + leaves.len() as u64,
                "entries in order"
            );
            if let Ok(Leaf::Result(result)) = Leaf::decode(&bytes)
                && result.outcome == Outcome::Aborted
            {
                aborted.push(index);
            }
            leaves.push(bytes);
        }
        replay
            .push(&leaves)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    replay
        .matches(checkpoint)
        .expect("the entries hash to the signed root");
    assert!(
        replay.open_requests().is_empty(),
        "request leaves without a result: {:?}",
        replay.open_requests()
    );
    aborted
}

/// Whether a client error is the verdict "rewritten or rolled back".
pub(crate) fn is_inconsistent(error: &ClientError) -> bool {
    matches!(error, ClientError::Inconsistent(_))
}

/// Copies a directory tree (files keep their permission bits).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub(crate) fn payload(wat: &str) -> RequestPayload {
    RequestPayload {
        wasm: wat::parse_str(wat).unwrap(),
        ..RequestPayload::default()
    }
}
