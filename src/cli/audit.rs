//! `wasm-hypervisor audit`: an auditor's checks of `docs/PROTOCOL.md` §6, against the pinned
//! identity and the last checkpoint this client trusted. On a service of replicas (§9) a
//! session is looked for in each replica's log in the policy's order, and `--all` audits every
//! replica's log.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wasm_hypervisor_protocol::api::SessionId;
use wasm_hypervisor_protocol::commitment::{self, Digest};
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome, RequestLeaf, ResultLeaf};
use wasm_hypervisor_protocol::replay::LogReplay;

use super::{CliResult, ClientArgs};
use crate::client::{CheckpointTracker, Client, ClientError, PinnedIdentity, SignedCheckpoint};

#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// The session whose leaves to verify.
    #[arg(required_unless_present = "all")]
    session_id: Option<String>,
    /// Download every entry, recompute the root, check it against the signed checkpoint, and
    /// list request leaves without a result leaf.
    #[arg(long, conflicts_with = "session_id")]
    all: bool,
    /// Directory where `run --save` kept the session's announcement, sealed request and sealed
    /// response: the commitments are recomputed from those bytes.
    #[arg(long, conflicts_with = "all")]
    save_dir: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn audit(args: AuditArgs) -> CliResult<ExitCode> {
    let daemon = args.client.connect().await?;
    let logs = daemon.replicas.policy().logs().to_vec();
    let mut audited = Vec::new();
    match &args.session_id {
        Some(session_id) => {
            let mut unknown = Vec::new();
            for log in &logs {
                let client = daemon.client.at(&daemon.replicas.url_of(log));
                let pinned = &log.identity;
                match client.session_audit(pinned, session_id).await {
                    Err(ClientError::Server { status: 404, .. }) if logs.len() > 1 => {
                        unknown.push(format!("{}: no such session", pinned.origin));
                    }
                    // A replica that is down may well not be the one: the others are asked.
                    Err(error) if error.is_unreachable() && logs.len() > 1 => {
                        unknown.push(format!("{}: {error}", pinned.origin));
                    }
                    Err(error) => return Err(error.into()),
                    Ok(proven) => {
                        let save_dir = args.save_dir.as_deref();
                        let checkpoint = audit_session(session_id, proven, save_dir)?;
                        audited.push((client, pinned.clone(), checkpoint));
                        break;
                    }
                }
            }
            if audited.is_empty() {
                return Err(format!(
                    "no replica's log has session {session_id} ({})",
                    unknown.join("; ")
                )
                .into());
            }
        }
        None => {
            for log in &logs {
                let client = daemon.client.at(&daemon.replicas.url_of(log));
                if logs.len() > 1 {
                    println!("{}:", log.identity.origin);
                }
                let checkpoint = audit_all(&client, &log.identity).await?;
                audited.push((client, log.identity.clone(), checkpoint));
            }
        }
    }
    for (client, pinned, checkpoint) in audited {
        let trusted = daemon.trusted.get(&pinned.origin);
        let mut tracker = CheckpointTracker::new(pinned.clone(), trusted.cloned())?;
        client.advance(&mut tracker, checkpoint.clone()).await?;
        if let Some(trusted) = trusted {
            println!(
                "consistent with the checkpoint trusted before (size {})",
                trusted.checkpoint.size
            );
        }
        daemon.remember(&pinned, &checkpoint).await?;
        println!(
            "OK: verified against {} at size {}",
            pinned.origin, checkpoint.checkpoint.size
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One session: its leaves are included in a signed checkpoint, the result answers the
/// request, and, given the saved bytes, the wire commitments are recomputed.
fn audit_session(
    session_id: &str,
    (leaves, checkpoint): (Vec<(u64, Leaf)>, SignedCheckpoint),
    save_dir: Option<&Path>,
) -> CliResult<SignedCheckpoint> {
    let mut request: Option<(u64, RequestLeaf)> = None;
    let mut result: Option<(u64, ResultLeaf)> = None;
    for (index, leaf) in leaves {
        match leaf {
            Leaf::Request(leaf) if request.is_none() => request = Some((index, leaf)),
            Leaf::Result(leaf) if result.is_none() => result = Some((index, leaf)),
            _ => {
                return Err(
                    format!("session {session_id} has more than one leaf of a kind").into(),
                );
            }
        }
    }
    let Some((request_index, request)) = request else {
        return Err(format!("session {session_id} has no request leaf").into());
    };
    println!(
        "request leaf #{request_index}: request_commitment {}",
        hex::encode(request.request_commitment)
    );
    let Some((result_index, result)) = result else {
        return Err(format!(
            "session {session_id} has a request leaf but no result leaf: still running, or lost"
        )
        .into());
    };
    if result.request_index != request_index
        || result.request_commitment != request.request_commitment
    {
        return Err(format!(
            "result leaf #{result_index} does not answer request leaf #{request_index}"
        )
        .into());
    }
    println!(
        "result leaf #{result_index}: outcome {}, result_commitment {}",
        result.outcome.as_str(),
        hex::encode(result.result_commitment)
    );
    if let Some(dir) = save_dir {
        check_saved_bytes(dir, session_id, &request, &result)?;
    }
    Ok(checkpoint)
}

/// Recomputes the announcement hash and both wire commitments from the bytes `run --save` kept.
fn check_saved_bytes(
    dir: &Path,
    session_id: &str,
    request: &RequestLeaf,
    result: &ResultLeaf,
) -> CliResult<()> {
    let read = |extension: &str| {
        let path = dir.join(format!("{session_id}.{extension}"));
        fs::read(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))
    };
    let check = |what: &str, computed: Digest, logged: Digest| -> CliResult<()> {
        if computed != logged {
            return Err(
                format!("{what} recomputed from the saved bytes differs from the log").into(),
            );
        }
        println!("{what} matches the saved bytes");
        Ok(())
    };
    check(
        "announcement_hash",
        commitment::h3(&read("announcement")?),
        request.announcement_hash,
    )?;
    let request_commitment =
        commitment::request_commitment(&request.announcement_hash, &read("request")?);
    check(
        "request_commitment",
        request_commitment,
        request.request_commitment,
    )?;
    if result.outcome == Outcome::Executed {
        let result_commitment =
            commitment::result_commitment(&request_commitment, &read("response")?);
        check(
            "result_commitment",
            result_commitment,
            result.result_commitment,
        )?;
    }
    Ok(())
}

/// The whole log: every entry downloaded and replayed (each result leaf must answer an open
/// request leaf of its session with its request commitment), the root compared with the signed
/// checkpoint, and every request leaf without a result leaf listed.
async fn audit_all(client: &Client, pinned: &PinnedIdentity) -> CliResult<SignedCheckpoint> {
    let checkpoint = client.checkpoint(pinned).await?;
    let size = checkpoint.checkpoint.size;
    let mut replay = LogReplay::default();
    while replay.size() < size {
        let page = client.entries(replay.size(), size).await?;
        if page.is_empty() {
            return Err(format!("the daemon returned no entries from {}", replay.size()).into());
        }
        let mut leaves = Vec::with_capacity(page.len());
        for (index, bytes) in page {
            if index != replay.size() + leaves.len() as u64 {
                return Err(format!("entry {index} came out of order").into());
            }
            leaves.push(bytes);
        }
        replay.push(&leaves)?;
    }
    if replay.matches(&checkpoint.checkpoint).is_err() {
        return Err(format!(
            "the {size} entries do not hash to the signed root: the log was altered"
        )
        .into());
    }
    println!("{size} entries hash to the signed root");
    for (index, request) in replay.open_requests() {
        println!(
            "request leaf #{index} (session {}) has no result leaf",
            SessionId(request.session_id)
        );
    }
    Ok(checkpoint)
}
