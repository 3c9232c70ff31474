//! The `wasm-hypervisor` command line: `serve` runs the daemon, `run` is its client, `audit`
//! checks its log, and `bench` loads it with verified sessions.

mod audit;
mod bench;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::client::trust::{ServiceUrl, TrustStore};
use crate::client::{Client, PinnedIdentity, SignedCheckpoint};
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
}

/// A daemon as the client commands see it: its service URL, a client of it, the trust store,
/// its identity (pinned on first use) and the last checkpoint trusted for it.
struct Connected {
    service: ServiceUrl,
    client: Client,
    store: TrustStore,
    pinned: PinnedIdentity,
    trusted: Option<SignedCheckpoint>,
}

impl ClientArgs {
    /// Fetches the daemon's identity and pins it, or requires it to be the one pinned for the
    /// service, under whichever spelling of its URL it was pinned.
    async fn connect(&self) -> CliResult<Connected> {
        let service = ServiceUrl::parse(&self.server)?;
        let client = match &self.ca_cert {
            Some(ca_file) => Client::with_ca(service.as_str(), ca_file)?,
            None => Client::new(service.as_str()),
        };
        let store = TrustStore::in_dir(&self.client_dir);
        let pinned = client.identity().await?;
        if store.pin(&service, &pinned)? {
            eprintln!(
                "wasm-hypervisor: pinned {service} as {} (fingerprint {})",
                pinned.origin,
                hex::encode(pinned.fingerprint())
            );
        }
        let trusted = store.checkpoint(&service, &pinned)?;
        Ok(Connected {
            service,
            client,
            store,
            pinned,
            trusted,
        })
    }
}

impl Connected {
    /// Keeps `seen` as the trusted checkpoint, proven consistent with what the store holds.
    async fn remember(&self, seen: &SignedCheckpoint) -> CliResult<()> {
        self.client
            .remember(
                &self.store,
                &self.service,
                &self.pinned,
                self.trusted.as_ref(),
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
        Command::Run(_) | Command::Audit(_) | Command::Bench(_) => "warn",
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
