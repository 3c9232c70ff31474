//! A policy file (PROTOCOL.md §9) read from disk: the one the daemon serves (`--policy-file`)
//! and the one a client is given out of band (`--policy`). Never more than the format allows
//! is read, however large the file.

use std::io::Read as _;
use std::path::Path;

use wasm_hypervisor_protocol::policy::{MAX_POLICY_BYTES, Policy};

/// The file's text and the policy it holds, or why it holds none (with the path).
pub(crate) fn read(path: &Path) -> Result<(String, Policy), String> {
    let fail =
        |reason: &dyn std::fmt::Display| format!("the policy file {}: {reason}", path.display());
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(MAX_POLICY_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|error| fail(&error))?;
    // The parser refuses a file past the limit: one byte more was read so that it can.
    let policy = Policy::parse(&bytes).map_err(|error| fail(&error))?;
    let text = String::from_utf8(bytes).map_err(|_| fail(&"not UTF-8"))?;
    Ok((text, policy))
}
