//! `wasm-hypervisor run`: seals a program to the daemon (the replica that announced the
//! session, PROTOCOL.md §9), verifies everything that comes back (commitments, the audit proof,
//! consistency with the last trusted checkpoint), and prints the program's output.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wasm_hypervisor_protocol::encoding::base64_encode;
use wasm_hypervisor_protocol::payload::{RequestPayload, RequestedLimits, ReturnValue, Status};

use super::{CliResult, ClientArgs};
use crate::client::Execution;

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The program: a `.wasm` module, or a `.wat` text module compiled here.
    program: PathBuf,
    /// Arguments for the program (`argv[1..]`).
    #[arg(last = true)]
    args: Vec<String>,
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
    /// Print the whole decoded result, its commitments and their openings as JSON.
    #[arg(long)]
    json: bool,
    /// Directory to keep `<session>.announcement`, `.request` and `.response` in: the bytes an
    /// auditor needs to recompute the wire commitments (`audit --save-dir`).
    #[arg(long)]
    save: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{text}`"))
}

pub(crate) async fn run(args: RunArgs) -> CliResult<ExitCode> {
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
        seed: Some(crate::client::random_seed()?),
    };
    let daemon = args.client.connect().await?;
    let execution = daemon
        .client
        .execute_routed(&daemon.replicas, &payload, &daemon.trusted)
        .await?;
    daemon
        .remember(&execution.identity, &execution.checkpoint)
        .await?;
    if let Some(dir) = &args.save {
        save(dir, &execution)?;
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

fn save(dir: &Path, execution: &Execution) -> CliResult<()> {
    fs::create_dir_all(dir)?;
    for (extension, bytes) in [
        ("announcement", &execution.tbs),
        ("request", &execution.enc_request),
        ("response", &execution.enc_response),
    ] {
        let path = dir.join(format!("{}.{extension}", execution.session_id));
        fs::write(&path, bytes)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    Ok(())
}

/// A reader that stopped early (`| head`) is not an error of the run.
fn write_ignoring_closed_pipe(out: &mut impl std::io::Write, bytes: &[u8]) -> std::io::Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

pub(super) fn read_program(path: &Path) -> CliResult<Vec<u8>> {
    let bytes =
        fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if path.extension().is_some_and(|extension| extension == "wat") {
        let wasm =
            wat::parse_bytes(&bytes).map_err(|error| format!("{}: {error}", path.display()))?;
        return Ok(wasm.into_owned());
    }
    Ok(bytes)
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
        "audit": {
            "request_index": execution.request_index,
            "result_index": execution.result_index,
            "checkpoint": execution.checkpoint.note(),
        },
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
