//! `wasm-hypervisor bench`: a load generator that verifies what it measures. Many concurrent
//! clients run one program session after session against a daemon; every session is verified
//! as `run` verifies it (and routed as `run` routes it to the replica that announced it,
//! PROTOCOL.md §9, so it can drive load through a load balancer), and one checkpoint tracker
//! per process and replica proves each log consistent whenever its checkpoint advances. It prints sessions/s, latency percentiles and errors by
//! kind.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use wasm_hypervisor_protocol::payload::RequestPayload;

use super::run::read_program;
use super::{CliResult, ClientArgs, error_chain};
use crate::client::{CheckpointTracker, Client, ClientError, Replicas, SignedCheckpoint};

/// How long a client pauses after a session that failed without a verdict (a refusal, a
/// transport error), so that a daemon that refuses everything is not spun against.
const ERROR_PAUSE: Duration = Duration::from_millis(20);

/// How often the progress line is redrawn on a terminal.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

/// The largest latency the histogram records exactly (an hour); longer ones are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// The program every session runs: a `.wasm` module, or a `.wat` text module compiled here.
    program: PathBuf,
    /// Concurrent clients, each running one session after another.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Seconds to run for [default: 10].
    #[arg(long, conflicts_with = "sessions", value_parser = clap::value_parser!(u64).range(1..))]
    duration: Option<u64>,
    /// Sessions to run in all, instead of a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    sessions: Option<u64>,
    /// OS threads sharing the clients, each with its own runtime [default: the number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// Local addresses to connect from, client i from address i mod their number: a
    /// comma-separated list of IPs (127.0.0.2,127.0.0.3), or N for 127.0.0.2 … 127.0.0.(N+1).
    /// Spread over loopback addresses, the clients look like many to the daemon.
    #[arg(long, value_parser = parse_source_addrs)]
    source_addrs: Option<SourceAddrs>,
    /// Print one JSON object with the figures instead of the summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// The local addresses of `--source-addrs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceAddrs(Vec<IpAddr>);

/// The most loopback addresses `--source-addrs N` may name.
const MAX_SOURCE_ADDRS: u32 = 65_536;

fn parse_source_addrs(text: &str) -> Result<SourceAddrs, String> {
    let text = text.trim();
    if let Ok(count) = text.parse::<u32>() {
        if !(1..=MAX_SOURCE_ADDRS).contains(&count) {
            return Err(format!(
                "expected 1 to {MAX_SOURCE_ADDRS} loopback addresses, got {count}"
            ));
        }
        let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
        return Ok(SourceAddrs(
            (0..count)
                .map(|offset| IpAddr::V4(Ipv4Addr::from(first + offset)))
                .collect(),
        ));
    }
    text.split(',')
        .map(|address| {
            let address = address.trim();
            address
                .parse::<IpAddr>()
                .map_err(|_| format!("`{address}` is neither an IP address nor a count"))
        })
        .collect::<Result<_, _>>()
        .map(SourceAddrs)
}

/// When the clients stop starting sessions.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Until(Instant),
    Sessions(u64),
}

/// What every client thread shares: when to stop, the counts the progress line shows, and the
/// way to the checkpoint tracker.
struct Shared {
    limit: Limit,
    started: AtomicU64,
    verified: AtomicU64,
    errors: AtomicU64,
    /// Set when the run must end at once (the log was found inconsistent).
    stop: AtomicBool,
}

impl Shared {
    /// Whether a client may start another session; in `--sessions` mode it claims one.
    fn claim(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        match self.limit {
            Limit::Until(deadline) => Instant::now() < deadline,
            Limit::Sessions(total) => self.started.fetch_add(1, Ordering::Relaxed) < total,
        }
    }
}

/// Errors of one kind: how many, and the first one with its causes.
#[derive(Debug, Clone)]
struct ErrorCount {
    count: u64,
    first: String,
}

/// What some clients measured: latencies of verified sessions and errors by kind.
struct Tally {
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, ErrorCount>,
    /// Errors that prove the daemon wrong, which fail the run.
    failures: u64,
    /// When the last of these clients stopped.
    ended: Option<Instant>,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("the bounds are valid"),
            errors: BTreeMap::new(),
            failures: 0,
            ended: None,
        }
    }

    fn error(&mut self, kind: String, error: &ClientError) {
        if is_failure(error) {
            self.failures += 1;
        }
        self.errors
            .entry(kind)
            .or_insert_with(|| ErrorCount {
                count: 0,
                first: error_chain(error),
            })
            .count += 1;
    }

    fn merge(&mut self, other: Self) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms of the same bounds add up");
        for (kind, errors) in other.errors {
            let entry = self.errors.entry(kind).or_insert(ErrorCount {
                count: 0,
                first: errors.first,
            });
            entry.count += errors.count;
        }
        self.failures += other.failures;
        self.ended = self.ended.max(other.ended);
    }

    fn error_total(&self) -> u64 {
        self.errors.values().map(|errors| errors.count).sum()
    }
}

/// The kind an error is counted under: `http_<status>_<code>` for a §7 answer, else what
/// failed.
fn error_kind(error: &ClientError) -> String {
    match error {
        ClientError::Server { status, code, .. } => format!("http_{status}_{code}"),
        ClientError::Transport { .. } => "transport".into(),
        ClientError::Interrupted { .. } => "interrupted".into(),
        ClientError::InvalidResponse(_) => "invalid_response".into(),
        ClientError::Refused(_) => "verification".into(),
        ClientError::IdentityMismatch(_) => "identity_mismatch".into(),
        ClientError::Inconsistent(_) => "inconsistent".into(),
        ClientError::Protocol(_) => "sealing".into(),
        ClientError::Random => "random".into(),
        ClientError::Tls(_) => "tls".into(),
        ClientError::Trust(_) => "trust_store".into(),
        ClientError::ReplicaUnavailable { .. } => "replica_unavailable".into(),
    }
}

/// Whether an error proves the daemon wrong (an answer that fails a check, another identity, a
/// log that does not extend what was seen), rather than merely unable to serve.
fn is_failure(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Refused(_) | ClientError::IdentityMismatch(_) | ClientError::Inconsistent(_)
    )
}

pub(crate) async fn bench(args: BenchArgs) -> CliResult<ExitCode> {
    let wasm = read_program(&args.program)?;
    let daemon = args.client.connect().await?;
    let clients = args.clients as usize;
    let threads = match args.threads {
        Some(threads) => threads as usize,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    }
    .min(clients);
    // One tracker per replica's log, with a client of that replica for its proofs.
    let mut trackers = BTreeMap::new();
    for log in daemon.replicas.policy().logs() {
        let trusted = daemon.trusted.get(&log.identity.origin).cloned();
        let tracker = CheckpointTracker::new(log.identity.clone(), trusted)?;
        let replica = daemon.client.at(&daemon.replicas.url_of(log));
        trackers.insert(log.identity.origin.clone(), (tracker, replica));
    }
    let (checkpoints, mut seen) = mpsc::unbounded_channel();
    let began = Instant::now();
    let shared = Arc::new(Shared {
        limit: match args.sessions {
            Some(sessions) => Limit::Sessions(sessions),
            None => Limit::Until(began + Duration::from_secs(args.duration.unwrap_or(10))),
        },
        started: AtomicU64::new(0),
        verified: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let config = Arc::new(ThreadConfig {
        server: daemon.service.as_str().to_owned(),
        ca_cert: args.client.ca_cert.clone(),
        source_addrs: args.source_addrs.clone().map(|addrs| addrs.0),
        replicas: daemon.replicas.clone(),
        payload: RequestPayload {
            wasm,
            ..RequestPayload::default()
        },
    });
    let workers = (0..threads)
        .map(|thread| {
            let indices: Vec<usize> = (thread..clients).step_by(threads).collect();
            let shared = Arc::clone(&shared);
            let config = Arc::clone(&config);
            let checkpoints = checkpoints.clone();
            std::thread::Builder::new()
                .name(format!("bench-{thread}"))
                .spawn(move || client_thread(&indices, &shared, &config, &checkpoints))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The workers hold the only senders now: the channel closes when the last of them ends.
    drop(checkpoints);

    let progress = std::io::stderr().is_terminal().then(|| {
        let shared = Arc::clone(&shared);
        actix_rt::spawn(async move { show_progress(&shared, began).await })
    });
    let mut tracked = Tracked::default();
    while let Some(first) = seen.recv().await {
        let mut batch = vec![first];
        while let Ok(checkpoint) = seen.try_recv() {
            batch.push(checkpoint);
        }
        if tracked.inconsistent.is_none() {
            track(&mut trackers, batch, &mut tracked).await;
            if tracked.inconsistent.is_some() {
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let mut tally = Tally::new();
    for worker in workers {
        tally.merge(worker.join().map_err(|_| "a client thread panicked")?);
    }
    if let Some(progress) = progress {
        progress.abort();
        eprint!("\r\x1b[2K");
    }
    let elapsed = tally.ended.unwrap_or_else(Instant::now) - began;
    if let Some(error) = &tracked.inconsistent {
        tally.error(error_kind(error), error);
    }
    if tracked.inconsistent.is_none() {
        for (tracker, _) in trackers.values() {
            if let Some(latest) = tracker.latest() {
                daemon.remember(tracker.identity(), latest).await?;
            }
        }
    }
    let sizes: Vec<u64> = trackers
        .values()
        .filter_map(|(tracker, _)| tracker.latest())
        .map(|latest| latest.checkpoint.size)
        .collect();

    let verified = tally.latency_us.len();
    let report = Report {
        verified,
        tally: &tally,
        elapsed,
        clients,
        threads,
        tracked: &tracked,
        checkpoint_size: (!sizes.is_empty()).then(|| sizes.iter().sum()),
        source_addrs: args.source_addrs.as_ref().map_or(0, |addrs| addrs.0.len()),
    };
    if args.json {
        let mut json = serde_json::to_vec_pretty(&report.json())?;
        json.push(b'\n');
        std::io::stdout().write_all(&json)?;
    } else {
        print!("{}", report.summary());
    }
    for (kind, errors) in &tally.errors {
        eprintln!(
            "wasm-hypervisor: {} × {kind}, the first: {}",
            errors.count, errors.first
        );
    }
    if tally.failures > 0 {
        eprintln!(
            "wasm-hypervisor: {} answers failed verification or consistency: the daemon cannot be trusted",
            tally.failures
        );
        return Ok(ExitCode::FAILURE);
    }
    if verified == 0 {
        eprintln!("wasm-hypervisor: no session was verified");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What every client thread needs to make its clients.
struct ThreadConfig {
    server: String,
    ca_cert: Option<PathBuf>,
    source_addrs: Option<Vec<IpAddr>>,
    replicas: Replicas,
    payload: RequestPayload,
}

/// Runs clients `indices` on this thread's own runtime (awc's clients are not `Send`) until the
/// limit, and returns what they measured.
fn client_thread(
    indices: &[usize],
    shared: &Arc<Shared>,
    config: &Arc<ThreadConfig>,
    checkpoints: &mpsc::UnboundedSender<(String, SignedCheckpoint)>,
) -> Tally {
    let tally = Rc::new(RefCell::new(Tally::new()));
    actix_rt::System::new().block_on(async {
        let mut handles = Vec::with_capacity(indices.len());
        for &index in indices {
            match make_client(index, config) {
                Ok(client) => handles.push(actix_rt::spawn(client_loop(
                    client,
                    Arc::clone(shared),
                    Arc::clone(config),
                    checkpoints.clone(),
                    Rc::clone(&tally),
                ))),
                Err(error) => {
                    tally.borrow_mut().error(error_kind(&error), &error);
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for handle in handles {
            // A client task only ends by returning; a panic has been reported on stderr.
            let _ = handle.await;
        }
    });
    let mut tally = Rc::try_unwrap(tally)
        .unwrap_or_else(|_| unreachable!("every client task has ended"))
        .into_inner();
    tally.ended = Some(Instant::now());
    tally
}

/// Client `index`: from its source address when `--source-addrs` names some.
fn make_client(index: usize, config: &ThreadConfig) -> Result<Client, ClientError> {
    match &config.source_addrs {
        Some(addrs) => Client::with_local_address(
            &config.server,
            addrs[index % addrs.len()],
            config.ca_cert.as_deref(),
        ),
        None => match &config.ca_cert {
            Some(ca_file) => Client::with_ca(&config.server, ca_file),
            None => Ok(Client::new(&config.server)),
        },
    }
}

/// One client: sessions one after another, each with a fresh seed, until the limit. A verified
/// session's latency (from `POST /sessions` to the verified result) is recorded and its
/// checkpoint handed to the tracker; anything else is counted as an error of its kind.
async fn client_loop(
    client: Client,
    shared: Arc<Shared>,
    config: Arc<ThreadConfig>,
    checkpoints: mpsc::UnboundedSender<(String, SignedCheckpoint)>,
    tally: Rc<RefCell<Tally>>,
) {
    let mut payload = config.payload.clone();
    while shared.claim() {
        let result = match crate::client::random_seed() {
            Ok(seed) => {
                payload.seed = Some(seed);
                let started = Instant::now();
                // Unchained: the process's trackers prove each log's consistency.
                client
                    .execute_routed(&config.replicas, &payload, &BTreeMap::new())
                    .await
                    .map(|execution| (started.elapsed(), execution))
            }
            Err(error) => Err(error),
        };
        match result {
            Ok((latency, execution)) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                tally
                    .borrow_mut()
                    .latency_us
                    .saturating_record(micros.clamp(1, MAX_LATENCY_US));
                shared.verified.fetch_add(1, Ordering::Relaxed);
                // Closed only once the tracker gave up on an inconsistent log.
                let _ = checkpoints.send((execution.identity.origin, execution.checkpoint));
            }
            Err(error) => {
                tally.borrow_mut().error(error_kind(&error), &error);
                shared.errors.fetch_add(1, Ordering::Relaxed);
                if !is_failure(&error) {
                    actix_rt::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }
}

/// What the process-wide tracker did.
#[derive(Default)]
struct Tracked {
    /// Consistency proofs fetched and verified.
    proofs: u64,
    /// Checkpoints the tracker moved to.
    advances: u64,
    /// Proofs that could not be fetched (the next advance proves from the same checkpoint).
    unproven: BTreeMap<String, ErrorCount>,
    /// The log does not extend what was seen: the run fails.
    inconsistent: Option<ClientError>,
}

/// Moves each replica's tracker through a batch of verified sessions' checkpoints (by origin),
/// smallest first: a checkpoint larger than the tracked one needs a consistency proof from it,
/// one of the same size must be the same tree, and a smaller one is skipped (its session's leaf
/// was proven included in it, and the tracker only moves forward).
async fn track(
    trackers: &mut BTreeMap<String, (CheckpointTracker, Client)>,
    mut batch: Vec<(String, SignedCheckpoint)>,
    tracked: &mut Tracked,
) {
    batch.sort_by(|(a, x), (b, y)| (a, x.checkpoint.size).cmp(&(b, y.checkpoint.size)));
    batch.dedup();
    for (origin, checkpoint) in batch {
        // Execution checked the signature against a policy log, so its origin has a tracker.
        let Some((tracker, client)) = trackers.get_mut(&origin) else {
            continue;
        };
        let latest = tracker.latest().map(|latest| &latest.checkpoint);
        if latest.is_some_and(|latest| {
            checkpoint.checkpoint.size < latest.size || checkpoint.checkpoint == *latest
        }) {
            continue;
        }
        let needs_proof = matches!(tracker.proof_needed(&checkpoint.checkpoint), Ok(Some(_)));
        match client.advance(tracker, checkpoint).await {
            Ok(()) => {
                tracked.advances += 1;
                tracked.proofs += u64::from(needs_proof);
            }
            Err(error @ (ClientError::Inconsistent(_) | ClientError::Refused(_))) => {
                tracked.inconsistent = Some(error);
                return;
            }
            Err(error) => {
                tracked
                    .unproven
                    .entry(error_kind(&error))
                    .or_insert_with(|| ErrorCount {
                        count: 0,
                        first: error_chain(&error),
                    })
                    .count += 1;
            }
        }
    }
}

/// Redraws one progress line on stderr until aborted.
async fn show_progress(shared: &Shared, began: Instant) {
    loop {
        actix_rt::time::sleep(PROGRESS_INTERVAL).await;
        let elapsed = began.elapsed().as_secs_f64();
        let verified = shared.verified.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        let done = match shared.limit {
            Limit::Until(deadline) => elapsed / (deadline - began).as_secs_f64(),
            Limit::Sessions(total) => (verified + errors) as f64 / total as f64,
        }
        .clamp(0.0, 1.0);
        const WIDTH: usize = 30;
        let filled = (done * WIDTH as f64) as usize;
        eprint!(
            "\r\x1b[2K[{}{}] {:3.0}%  {verified} verified  {errors} errors  {:.0} sessions/s  {elapsed:.1} s",
            "=".repeat(filled),
            " ".repeat(WIDTH - filled),
            done * 100.0,
            verified as f64 / elapsed.max(f64::EPSILON),
        );
        let _ = std::io::stderr().flush();
    }
}

/// The figures of a run.
struct Report<'a> {
    verified: u64,
    tally: &'a Tally,
    elapsed: Duration,
    clients: usize,
    threads: usize,
    tracked: &'a Tracked,
    checkpoint_size: Option<u64>,
    source_addrs: usize,
}

impl Report<'_> {
    fn sessions_per_sec(&self) -> f64 {
        self.verified as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// A latency quantile in milliseconds; `None` before any verified session.
    fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        (self.verified > 0)
            .then(|| self.tally.latency_us.value_at_quantile(quantile) as f64 / 1000.0)
    }

    fn max_ms(&self) -> Option<f64> {
        (self.verified > 0).then(|| self.tally.latency_us.max() as f64 / 1000.0)
    }

    fn json(&self) -> serde_json::Value {
        let errors_by_kind: BTreeMap<_, _> = self
            .tally
            .errors
            .iter()
            .map(|(kind, errors)| (kind.as_str(), errors.count))
            .collect();
        let unproven: BTreeMap<_, _> = self
            .tracked
            .unproven
            .iter()
            .map(|(kind, errors)| (kind.as_str(), errors.count))
            .collect();
        serde_json::json!({
            "sessions": self.verified + self.tally.error_total(),
            "verified": self.verified,
            "errors": self.tally.error_total(),
            "errors_by_kind": errors_by_kind,
            "sessions_per_sec": self.sessions_per_sec(),
            "p50_ms": self.quantile_ms(0.50),
            "p90_ms": self.quantile_ms(0.90),
            "p99_ms": self.quantile_ms(0.99),
            "max_ms": self.max_ms(),
            "mean_ms": (self.verified > 0).then(|| self.tally.latency_us.mean() / 1000.0),
            "duration_secs": self.elapsed.as_secs_f64(),
            "clients": self.clients,
            "threads": self.threads,
            "source_addrs": self.source_addrs,
            "consistency": {
                "advances": self.tracked.advances,
                "proofs": self.tracked.proofs,
                "unproven_by_kind": unproven,
                "consistent": self.tracked.inconsistent.is_none(),
                "checkpoint_size": self.checkpoint_size,
            },
        })
    }

    fn summary(&self) -> String {
        let ms = |value: Option<f64>| value.map_or_else(|| "-".into(), |ms| format!("{ms:.2}"));
        let mut text = format!(
            "sessions      {} ({} verified, {} errors)\n\
             sessions/s    {:.1}\n\
             latency ms    p50 {}  p90 {}  p99 {}  max {}\n\
             duration      {:.2} s\n\
             clients       {} on {} threads{}\n\
             consistency   {} ({} advances, {} proofs, checkpoint size {})\n",
            self.verified + self.tally.error_total(),
            self.verified,
            self.tally.error_total(),
            self.sessions_per_sec(),
            ms(self.quantile_ms(0.50)),
            ms(self.quantile_ms(0.90)),
            ms(self.quantile_ms(0.99)),
            ms(self.max_ms()),
            self.elapsed.as_secs_f64(),
            self.clients,
            self.threads,
            match self.source_addrs {
                0 => String::new(),
                count => format!(", from {count} source addresses"),
            },
            if self.tracked.inconsistent.is_none() {
                "proven"
            } else {
                "INCONSISTENT"
            },
            self.tracked.advances,
            self.tracked.proofs,
            self.checkpoint_size
                .map_or_else(|| "-".into(), |size| size.to_string()),
        );
        for (kind, errors) in &self.tally.errors {
            text.push_str(&format!("error         {kind}: {}\n", errors.count));
        }
        for (kind, errors) in &self.tracked.unproven {
            text.push_str(&format!(
                "unproven      {kind}: {} (consistency proof not fetched)\n",
                errors.count
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addrs_count_means_loopback_from_127_0_0_2() {
        let addrs = parse_source_addrs("3").unwrap();
        let expected: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .map(|address| address.parse().unwrap())
            .collect();
        assert_eq!(addrs, SourceAddrs(expected));
        let many = parse_source_addrs("300").unwrap().0;
        assert_eq!(many.len(), 300);
        assert_eq!(many[253], "127.0.0.255".parse::<IpAddr>().unwrap());
        assert_eq!(many[254], "127.0.1.0".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn source_addrs_list_is_comma_separated_ips() {
        let addrs = parse_source_addrs("127.0.0.2, 127.0.0.9,::1").unwrap().0;
        assert_eq!(
            addrs,
            ["127.0.0.2", "127.0.0.9", "::1"]
                .iter()
                .map(|address| address.parse::<IpAddr>().unwrap())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            parse_source_addrs("10.1.2.3").unwrap().0,
            vec!["10.1.2.3".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn source_addrs_refuses_nonsense() {
        for bad in ["0", "65537", "", "127.0.0.2,", "localhost", "127.0.0.2,x"] {
            assert!(parse_source_addrs(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
