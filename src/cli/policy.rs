//! `wasm-hypervisor policy URL...`: the policy of a service of replicas (PROTOCOL.md §9), from
//! each replica's `GET /identity`, for scripts and deployment jobs to write the file that
//! `serve --policy-file` serves and clients pin.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use super::CliResult;
use crate::client::Client;
use crate::client::protocol::policy::{Policy, PolicyLog};
use crate::client::trust::ServiceUrl;

#[derive(Debug, clap::Args)]
pub(crate) struct PolicyArgs {
    /// Each replica's base URL as clients reach it (say `https://svc.example/r/0`), in order;
    /// the URL goes into its `log` line.
    #[arg(required = true)]
    replicas: Vec<String>,
    /// For `https://` replicas: the PEM certificate (or issuing CA) to trust.
    #[arg(long, env = "WASM_HYPERVISOR_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

pub(crate) async fn policy(args: PolicyArgs) -> CliResult<ExitCode> {
    let mut logs = Vec::with_capacity(args.replicas.len());
    for replica in &args.replicas {
        let url = ServiceUrl::parse(replica)?;
        let client = match &args.ca_cert {
            Some(ca_file) => Client::with_ca(url.as_str(), ca_file)?,
            None => Client::new(url.as_str()),
        };
        // Checked for self-consistency, as `run` checks it before pinning.
        let identity = client
            .identity()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        logs.push(PolicyLog {
            identity,
            url: Some(url.as_str().to_owned()),
        });
    }
    let policy = Policy::new(logs)?;
    std::io::stdout().write_all(policy.to_string().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
