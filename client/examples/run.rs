//! Runs a sealed program through a wasm-hypervisor daemon with this crate alone: pins the
//! daemon's identity on first use, seals the program, verifies every answer (announcement,
//! commitments, seeds, audit proof, consistency with the last trusted checkpoint) and prints
//! the program's stdout.
//!
//! ```sh
//! cargo run -p wasm-hypervisor-client --example run -- http://127.0.0.1:8080 [program.wasm] [ARGS…]
//! ```
//!
//! Without a program it runs a built-in hello world. The trust store is the CLI's
//! (`$WASM_HYPERVISOR_CLIENT_DIR`, else `~/.wasm-hypervisor`).

use std::path::PathBuf;
use std::process::ExitCode;

use wasm_hypervisor_client::Client;
use wasm_hypervisor_client::protocol::payload::RequestPayload;
use wasm_hypervisor_client::trust::{ServiceUrl, TrustStore};

/// `examples/hello.wat` of the repository, assembled: writes a greeting to stdout.
const HELLO: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x02, 0x60, 0x04, 0x7f, 0x7f, 0x7f,
    0x7f, 0x01, 0x7f, 0x60, 0x00, 0x00, 0x02, 0x23, 0x01, 0x16, 0x77, 0x61, 0x73, 0x69, 0x5f, 0x73,
    0x6e, 0x61, 0x70, 0x73, 0x68, 0x6f, 0x74, 0x5f, 0x70, 0x72, 0x65, 0x76, 0x69, 0x65, 0x77, 0x31,
    0x08, 0x66, 0x64, 0x5f, 0x77, 0x72, 0x69, 0x74, 0x65, 0x00, 0x00, 0x03, 0x02, 0x01, 0x01, 0x05,
    0x03, 0x01, 0x00, 0x01, 0x07, 0x13, 0x02, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00,
    0x06, 0x5f, 0x73, 0x74, 0x61, 0x72, 0x74, 0x00, 0x01, 0x0a, 0x1e, 0x01, 0x1c, 0x00, 0x41, 0x00,
    0x41, 0xc0, 0x00, 0x36, 0x02, 0x00, 0x41, 0x04, 0x41, 0x1c, 0x36, 0x02, 0x00, 0x41, 0x01, 0x41,
    0x00, 0x41, 0x01, 0x41, 0x08, 0x10, 0x00, 0x1a, 0x0b, 0x0b, 0x23, 0x01, 0x00, 0x41, 0xc0, 0x00,
    0x0b, 0x1c, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x66, 0x72, 0x6f, 0x6d, 0x20, 0x61, 0x20, 0x73,
    0x65, 0x61, 0x6c, 0x65, 0x64, 0x20, 0x70, 0x72, 0x6f, 0x67, 0x72, 0x61, 0x6d, 0x0a,
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(server) = args.next() else {
        eprintln!("usage: run SERVER_URL [PROGRAM.wasm] [ARGS...]");
        return ExitCode::from(2);
    };
    let program = args.next();
    match wasm_hypervisor_client::block_on(run(&server, program, args.collect())) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("run: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    server: &str,
    program: Option<String>,
    args: Vec<String>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let wasm = match program {
        Some(path) => std::fs::read(path)?,
        None => HELLO.to_vec(),
    };
    let service = ServiceUrl::parse(server)?;
    let client = Client::new(service.as_str());
    let store = TrustStore::in_dir(&client_dir());
    let pinned = client.identity().await?;
    if store.pin(&service, &pinned)? {
        eprintln!("pinned {service} as {}", pinned.origin);
    }
    let trusted = store.checkpoint(&service, &pinned)?;

    let payload = RequestPayload {
        wasm,
        args,
        seed: Some(wasm_hypervisor_client::random_seed()?),
        ..RequestPayload::default()
    };
    let execution = client.execute(&pinned, &payload, trusted.as_ref()).await?;
    client
        .remember(
            &store,
            &service,
            &pinned,
            trusted.as_ref(),
            &execution.checkpoint,
        )
        .await?;

    let output = &execution.output;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    eprintln!(
        "session {}: status {}, exit code {:?}, result leaf #{} in a tree of {} verified",
        execution.session_id,
        output.status,
        output.exit_code,
        execution.result_index,
        execution.checkpoint.checkpoint.size
    );
    Ok(ExitCode::from(
        output
            .exit_code
            .and_then(|code| u8::try_from(code).ok())
            .unwrap_or(1),
    ))
}

fn client_dir() -> PathBuf {
    std::env::var_os("WASM_HYPERVISOR_CLIENT_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".wasm-hypervisor"))
        })
        .unwrap_or_else(|| PathBuf::from(".wasm-hypervisor"))
}
