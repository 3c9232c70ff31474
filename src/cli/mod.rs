//! The `wasm-hypervisor` command line: `serve` runs the daemon, `run` is its client, `audit`
//! checks its log, `bench` loads it with verified sessions, and `policy` writes the policy of
//! a service of replicas.

mod audit;
mod bench;
mod policy;
mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::client::trust::{ServiceUrl, TrustStore};
use crate::client::{Client, ClientError, PinnedIdentity, Replicas, SignedCheckpoint};
use crate::config::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "wasm-hypervisor",
    version,
    about = "Runs sealed WebAssembly programs and commits to every request and result"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    // Boxed: its many settings would make every `Command` as large.
    Serve(Box<ServeArgs>),
    /// Seal a program to the daemon, run it, verify the answer and print the program's output.
    ///
    /// Exits with the program's exit code, 125 if the program did not run to completion
    /// (trap, timeout, a limit, an invalid module, …), and 1 if the client, the daemon or a
    /// verification failed.
    Run(run::RunArgs),
    /// Verify the daemon's audit log: one session's entries, or (`--all`) the whole log.
    ///
    /// Exits 0 when everything verifies and 1 on any failure.
    Audit(audit::AuditArgs),
    /// Load the daemon: many concurrent clients run a program session after session, each
    /// session verified as `run` verifies it, the log proven consistent as it grows.
    ///
    /// Prints sessions/s, latency percentiles and errors by kind (`--json` for machines). Exits
    /// 1 if an answer failed verification, the log was inconsistent, or no session verified.
    Bench(bench::BenchArgs),
    /// Print the policy of a service of replicas (PROTOCOL.md §9) to stdout: one `log` line
    /// per replica URL, with the note verifier key its `GET /identity` publishes, and
    /// `quorum none`. Serve the result with `serve --policy-file`, and hand it to clients.
    Policy(policy::PolicyArgs),
}

/// Where the client keeps what it trusts: pinned identities and the last checkpoint of each.
#[derive(Debug, Clone, clap::Args)]
struct ClientArgs {
    /// The daemon's base URL.
    #[arg(
        long,
        env = "WASM_HYPERVISOR_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Where pinned server identities and their last trusted checkpoints are kept
    /// (`trust.json`).
    #[arg(long, env = "WASM_HYPERVISOR_CLIENT_DIR", default_value_os_t = default_client_dir())]
    client_dir: PathBuf,
    /// For an `https://` server: the PEM certificate (or issuing CA) to trust.
    #[arg(long, env = "WASM_HYPERVISOR_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The service's policy (PROTOCOL.md §9), obtained out of band, instead of its
    /// `GET /policy`; pinned on first use either way, and refused if it changes
    /// [default: none, the service's own `GET /policy`].
    #[arg(long, env = "WASM_HYPERVISOR_POLICY")]
    policy: Option<PathBuf>,
}

/// A service as the client commands see it: its URL, a client of it, the trust store, its
/// replicas (the policy pinned on first use) and the last checkpoint trusted for each origin.
struct Connected {
    service: ServiceUrl,
    client: Client,
    store: TrustStore,
    replicas: Replicas,
    trusted: BTreeMap<String, SignedCheckpoint>,
}

impl ClientArgs {
    /// Gets the service's policy (the `--policy` file, else `GET /policy`) and pins it, or
    /// requires it to be the one pinned for the service, under whichever spelling of its URL
    /// it was pinned; then brings every replica's trusted checkpoint forward, each proven
    /// consistent with the one trusted before.
    async fn connect(&self) -> CliResult<Connected> {
        let service = ServiceUrl::parse(&self.server)?;
        let client = match &self.ca_cert {
            Some(ca_file) => Client::with_ca(service.as_str(), ca_file)?,
            None => Client::new(service.as_str()),
        };
        let store = TrustStore::in_dir(&self.client_dir);
        let policy = match &self.policy {
            Some(path) => crate::policy_file::read(path)?.1,
            None => client.policy().await?,
        };
        if store.pin_policy(&service, &policy)? {
            for log in policy.logs() {
                let place = log
                    .url
                    .as_ref()
                    .map_or_else(String::new, |url| format!(" at {url}"));
                eprintln!(
                    "wasm-hypervisor: pinned {service} as {}{place} (fingerprint {})",
                    log.identity.origin,
                    hex::encode(log.identity.fingerprint())
                );
            }
        }
        let mut connected = Connected {
            replicas: Replicas::new(service.as_str(), policy),
            service,
            client,
            store,
            trusted: BTreeMap::new(),
        };
        connected.refresh().await?;
        Ok(connected)
    }
}

impl Connected {
    /// A client of the replica whose identity is `identity`.
    fn replica(&self, identity: &PinnedIdentity) -> CliResult<Client> {
        let log = self
            .replicas
            .policy()
            .logs()
            .iter()
            .find(|log| log.identity == *identity)
            .ok_or_else(|| format!("{} is not in the pinned policy", identity.origin))?;
        Ok(self.client.at(&self.replicas.url_of(log)))
    }

    /// Every replica's latest checkpoint, proven consistent with the one trusted for its
    /// origin and kept as the trusted one. A replica that cannot be reached is skipped with a
    /// warning (its sessions cannot run anyway); one whose log does not extend what was trusted
    /// stops the run.
    async fn refresh(&mut self) -> CliResult<()> {
        for log in self.replicas.policy().logs().to_vec() {
            let identity = &log.identity;
            let replica = self.client.at(&self.replicas.url_of(&log));
            let trusted = self.store.checkpoint(&self.service, identity)?;
            let latest = match replica.checkpoint(identity).await {
                Ok(latest) => latest,
                Err(error @ (ClientError::Transport { .. } | ClientError::Server { .. }))
                | Err(error @ ClientError::InvalidResponse(_)) => {
                    eprintln!(
                        "wasm-hypervisor: warning: cannot refresh the checkpoint of {} at {}: {error}",
                        identity.origin,
                        replica.base_url()
                    );
                    if let Some(trusted) = trusted {
                        self.trusted.insert(identity.origin.clone(), trusted);
                    }
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if let Some(trusted) = &trusted {
                replica
                    .verify_consistency(&trusted.checkpoint, &latest.checkpoint)
                    .await?;
            }
            replica
                .remember(
                    &self.store,
                    &self.service,
                    identity,
                    trusted.as_ref(),
                    &latest,
                )
                .await?;
            if let Some(now) = self.store.checkpoint(&self.service, identity)? {
                self.trusted.insert(identity.origin.clone(), now);
            }
        }
        Ok(())
    }

    /// Keeps `seen`, signed by `identity`, as its trusted checkpoint, proven consistent with
    /// what the store holds.
    async fn remember(&self, identity: &PinnedIdentity, seen: &SignedCheckpoint) -> CliResult<()> {
        self.replica(identity)?
            .remember(
                &self.store,
                &self.service,
                identity,
                self.trusted.get(&identity.origin),
                seen,
            )
            .await?;
        Ok(())
    }
}

fn default_client_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".wasm-hypervisor"),
        |home| Path::new(&home).join(".wasm-hypervisor"),
    )
}

/// Runs the command line, reporting any failure on stderr and in the exit code.
pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("wasm-hypervisor: {}", error_chain(error.as_ref()));
            return ExitCode::from(2);
        }
    };
    let log_filter = match &cli.command {
        Command::Serve(args) => args.log_level.as_str(),
        Command::Run(_) | Command::Audit(_) | Command::Bench(_) | Command::Policy(_) => "warn",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(log_filter))
        .format_timestamp_millis()
        .init();
    let result = actix_rt::System::new().block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Run(args) => run::run(args).await,
            Command::Audit(args) => audit::audit(args).await,
            Command::Bench(args) => bench::bench(args).await,
            Command::Policy(args) => policy::policy(args).await,
        }
    });
    result.unwrap_or_else(|error| {
        eprintln!("wasm-hypervisor: {}", error_chain(error.as_ref()));
        ExitCode::FAILURE
    })
}

/// The command line, with `serve --config FILE` filling the settings that flags and
/// environment variables left unset.
fn parse() -> CliResult<Cli> {
    let command_line: Vec<_> = std::env::args_os().collect();
    let command = Cli::command();
    let matches = command.clone().get_matches_from(&command_line);
    let cli = Cli::from_arg_matches(&matches)?;
    let (Command::Serve(args), Some(("serve", serve_matches))) =
        (&cli.command, matches.subcommand())
    else {
        return Ok(cli);
    };
    let Some(path) = &args.config else {
        return Ok(cli);
    };
    let serve = command
        .find_subcommand("serve")
        .expect("serve is a subcommand");
    let arguments =
        crate::config::arguments_with_config_file(serve, serve_matches, path, command_line)?;
    // A bad value from the file is reported like one on the command line.
    Ok(Cli::try_parse_from(arguments).unwrap_or_else(|error| error.exit()))
}

/// `error: cause: cause…`, so no reason is lost.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

async fn serve(args: ServeArgs) -> CliResult<()> {
    let config = args.into_config()?;
    let running = crate::server::start(config)?;
    running.run_until_signalled().await?;
    Ok(())
}
