//! The `wasm-hypervisor` command line: `serve` runs the daemon, `run` is its client.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wasm_hypervisor_protocol::encoding::{base64_decode, base64_encode};
use wasm_hypervisor_protocol::identity::IdentityPublicKey;
use wasm_hypervisor_protocol::payload::{RequestPayload, RequestedLimits, ReturnValue, Status};

use crate::client::{Client, Execution, PinnedIdentity};
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
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The program: a `.wasm` module, or a `.wat` text module compiled here.
    program: PathBuf,
    /// Arguments for the program (`argv[1..]`).
    #[arg(last = true)]
    args: Vec<String>,
    /// The daemon's base URL.
    #[arg(
        long,
        env = "WASM_HYPERVISOR_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// File to feed the program as stdin.
    #[arg(long)]
    stdin: Option<PathBuf>,
    /// Environment variable for the program, as KEY=VALUE; repeatable.
    #[arg(long = "env", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Export to call instead of `_start`.
    #[arg(long)]
    entry: Option<String>,
    /// Fuel limit (clamped to the daemon's maximum).
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory limit in bytes.
    #[arg(long)]
    memory: Option<u64>,
    /// Wall-clock limit in milliseconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Output limit (stdout + stderr) in bytes.
    #[arg(long)]
    output: Option<u64>,
    /// Print the whole decoded result and its commitments as JSON.
    #[arg(long)]
    json: bool,
    /// Where pinned server identities are kept (trust on first use).
    #[arg(long, env = "WASM_HYPERVISOR_CLIENT_DIR", default_value_os_t = default_client_dir())]
    client_dir: PathBuf,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{text}`"))
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
            Command::Run(args) => run(args).await,
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

async fn run(args: RunArgs) -> CliResult<ExitCode> {
    let payload = RequestPayload {
        wasm: read_program(&args.program)?,
        entry: args.entry.clone(),
        args: args.args.clone(),
        env: args.env.clone(),
        stdin: match &args.stdin {
            Some(path) => fs::read(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?,
            None => Vec::new(),
        },
        limits: RequestedLimits {
            fuel: args.fuel,
            memory_bytes: args.memory,
            output_bytes: args.output,
            timeout_ms: args.timeout,
        },
        seed: Some(os_seed()?),
    };
    let client = Client::new(&args.server);
    let pinned = pin_identity(&args.client_dir, &args.server, client.identity().await?)?;
    let execution = client.execute(&pinned, &payload).await?;
    if !execution.audited {
        eprintln!(
            "wasm-hypervisor: note: the response carried no audit proof; its commitments were checked, but the daemon has no audit log yet"
        );
    }
    if args.json {
        let mut json = serde_json::to_vec_pretty(&execution_json(&execution))?;
        json.push(b'\n');
        write_ignoring_closed_pipe(&mut std::io::stdout(), &json)?;
    } else {
        write_ignoring_closed_pipe(&mut std::io::stdout(), &execution.output.stdout)?;
        write_ignoring_closed_pipe(&mut std::io::stderr(), &execution.output.stderr)?;
    }
    let output = &execution.output;
    Ok(match output.status {
        Status::Ok | Status::Exit => {
            ExitCode::from(u8::try_from(output.exit_code.unwrap_or(1)).unwrap_or(1))
        }
        status => {
            let reason = output.error.as_deref().unwrap_or("no reason given");
            eprintln!("wasm-hypervisor: the program ended with status `{status}`: {reason}");
            ExitCode::from(125)
        }
    })
}

/// A reader that stopped early (`| head`) is not an error of the run.
fn write_ignoring_closed_pipe(out: &mut impl std::io::Write, bytes: &[u8]) -> std::io::Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

fn read_program(path: &Path) -> CliResult<Vec<u8>> {
    let bytes =
        fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if path.extension().is_some_and(|extension| extension == "wat") {
        return Ok(wat::parse_bytes(&bytes)
            .map_err(|error| format!("{}: {error}", path.display()))?
            .into_owned());
    }
    Ok(bytes)
}

fn os_seed() -> CliResult<[u8; 32]> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed)
        .map_err(|error| format!("the OS random number generator failed: {error}"))?;
    Ok(seed)
}

/// Trust on first use: the first identity seen for a server is kept and required from then on.
fn pin_identity(
    client_dir: &Path,
    server: &str,
    seen: PinnedIdentity,
) -> CliResult<PinnedIdentity> {
    let path = client_dir.join("known-servers.json");
    let mut known: BTreeMap<String, (String, String)> = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| format!("{} is corrupt: {error}", path.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display()).into()),
    };
    if let Some((origin, key)) = known.get(server) {
        let key = base64_decode(key)
            .and_then(|key| IdentityPublicKey::from_sec1(&key).ok())
            .ok_or_else(|| format!("{} holds an invalid key for {server}", path.display()))?;
        let pinned = PinnedIdentity {
            origin: origin.clone(),
            key,
        };
        if pinned != seen {
            return Err(format!(
                "the identity of {server} changed (pinned {} in {}); refusing to continue",
                pinned.origin,
                path.display()
            )
            .into());
        }
        return Ok(pinned);
    }
    known.insert(
        server.to_owned(),
        (seen.origin.clone(), base64_encode(&seen.key.sec1())),
    );
    fs::create_dir_all(client_dir)?;
    fs::write(&path, serde_json::to_vec_pretty(&known)?)?;
    eprintln!(
        "wasm-hypervisor: pinned {server} as {} (fingerprint {})",
        seen.origin,
        hex::encode(seen.key.fingerprint())
    );
    Ok(seen)
}

fn execution_json(execution: &Execution) -> serde_json::Value {
    let output = &execution.output;
    let returns = output.returns.as_ref().map(|values| {
        values
            .iter()
            .map(|value| match value {
                ReturnValue::I32(v) => serde_json::json!(["i32", v]),
                ReturnValue::I64(v) => serde_json::json!(["i64", v]),
                ReturnValue::F32(bits) => serde_json::json!(["f32", f32::from_bits(*bits)]),
                ReturnValue::F64(bits) => serde_json::json!(["f64", f64::from_bits(*bits)]),
            })
            .collect::<Vec<_>>()
    });
    serde_json::json!({
        "session_id": execution.session_id,
        "status": output.status.as_str(),
        "exit_code": output.exit_code,
        "stdout": String::from_utf8_lossy(&output.stdout),
        "stderr": String::from_utf8_lossy(&output.stderr),
        "returns": returns,
        "error": output.error,
        "limits": {
            "fuel": output.limits.fuel,
            "memory_bytes": output.limits.memory_bytes,
            "output_bytes": output.limits.output_bytes,
            "timeout_ms": output.limits.timeout_ms,
        },
        "fuel_consumed": output.fuel_consumed,
        "duration_us": output.duration_us,
        "engine": output.engine,
        "server_seed": hex::encode(output.server_seed),
        "random_seed": hex::encode(output.random_seed),
        "audited": execution.audited,
        "commitments": {
            "announcement_hash": hex::encode(wasm_hypervisor_protocol::commitment::h3(&execution.tbs)),
            "request": hex::encode(execution.request_commitment),
            "result": hex::encode(execution.result_commitment),
            "input": hex::encode(execution.input_commitment),
            "output": hex::encode(execution.output_commitment),
        },
        "openings": {
            "announcement": base64_encode(&execution.tbs),
            "input_blind": hex::encode(execution.result_payload.input_blind),
            "output_blind": hex::encode(execution.result_payload.output_blind),
        },
    })
}
