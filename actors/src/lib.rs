//! wasm-hypervisor's actors: the supervisor (sessions and admission), one executor per session
//! with the lanes and the sandbox it runs on, and the auditor. Nothing here knows about HTTP.

#![forbid(unsafe_code)]

pub mod auditor;
pub mod budget;
pub mod error;
pub mod executor;
pub mod lane;
pub mod metrics;
pub mod sandbox;
pub mod session;
pub mod shares;
pub mod supervisor;

pub use error::Error;

/// `N` bytes from the OS CSPRNG; its failure is an error, not a panic.
pub(crate) fn os_random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}
