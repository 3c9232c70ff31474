//! The `wasm-hypervisor` command line: `serve` runs the daemon, `run` is its client, and
//! `audit` checks its log.

mod audit;
mod run;
mod trust;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Serve(ServeArgs),
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
    /// Where pinned server identities and their last trusted checkpoints are kept.
    #[arg(long, env = "WASM_HYPERVISOR_CLIENT_DIR", default_value_os_t = default_client_dir())]
    client_dir: PathBuf,
}

fn default_client_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".wasm-hypervisor"),
        |home| Path::new(&home).join(".wasm-hypervisor"),
    )
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let result = actix_rt::System::new().block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
            Command::Run(args) => run::run(args).await,
            Command::Audit(args) => audit::audit(args).await,
        }
    });
    result.unwrap_or_else(|error| {
        eprintln!("wasm-hypervisor: {}", error_chain(error.as_ref()));
        ExitCode::FAILURE
    })
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
    running.server.await?;
    Ok(())
}
