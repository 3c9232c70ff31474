//! A client of the wasm-hypervisor daemon (`docs/PROTOCOL.md`) that a Rust program can depend
//! on without the daemon: HTTP transport ([`Client`]) around the protocol crate's transport-free
//! verifier ([`protocol::verify`]), and the trust store of pinned identities and their last
//! trusted checkpoints ([`trust`]).
//!
//! ```no_run
//! use wasm_hypervisor_client::protocol::payload::RequestPayload;
//! use wasm_hypervisor_client::trust::{ServiceUrl, TrustStore};
//! use wasm_hypervisor_client::Client;
//!
//! # async fn run(wasm: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
//! let service = ServiceUrl::parse("http://127.0.0.1:8080")?;
//! let client = Client::new(service.as_str());
//! let store = TrustStore::in_dir("client-dir".as_ref());
//! let pinned = client.identity().await?;
//! store.pin(&service, &pinned)?; // trust on first use, refused if it changed
//! let trusted = store.checkpoint(&service, &pinned)?;
//! let seed = Some(wasm_hypervisor_client::random_seed()?);
//! let payload = RequestPayload { wasm, seed, ..Default::default() };
//! let execution = client.execute(&pinned, &payload, trusted.as_ref()).await?;
//! client
//!     .remember(&store, &service, &pinned, trusted.as_ref(), &execution.checkpoint)
//!     .await?;
//! println!("{}", String::from_utf8_lossy(&execution.output.stdout));
//! # Ok(())
//! # }
//! ```

//!
//! A service of several replicas (PROTOCOL.md §9) is used through its pinned policy:
//! [`Client::policy`] (or a file given out of band), [`trust::TrustStore::pin_policy`], and
//! [`Client::execute_routed`], which runs each session on the replica whose key announced it;
//! a standalone daemon is the one-log policy it serves, so this path works for both.

#![forbid(unsafe_code)]

mod client;
pub mod trust;

pub use client::{Client, ClientError, Execution, Replicas};
pub use wasm_hypervisor_protocol as protocol;
pub use wasm_hypervisor_protocol::verify::{
    CheckpointTracker, PinnedIdentity, SealedRequest, SignedCheckpoint, VerifyError,
};

/// A fresh client share of a program's randomness (`seed`, PROTOCOL.md §4.1, §5.1) from the OS
/// random number generator. A payload without one gets 32 zero bytes, which leaves the
/// program's randomness to the server's share alone.
pub fn random_seed() -> Result<[u8; 32], ClientError> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).map_err(|_| ClientError::Random)?;
    Ok(seed)
}

/// Runs a future of this client to completion on a new single-threaded runtime (awc needs
/// actix-rt's), for programs that are not async themselves.
pub fn block_on<F: Future>(future: F) -> F::Output {
    actix_rt::System::new().block_on(future)
}

/// rustls's crypto provider for `https://`: aws-lc-rs with feature `aws-lc` (the daemon's
/// binary, one TLS implementation with its other crypto), else ring (the default).
#[cfg(feature = "aws-lc")]
fn tls_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// rustls's crypto provider for `https://`: aws-lc-rs with feature `aws-lc` (the daemon's
/// binary, one TLS implementation with its other crypto), else ring (the default).
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
fn tls_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(not(any(feature = "ring", feature = "aws-lc")))]
compile_error!("wasm-hypervisor-client needs a TLS provider: feature `ring` (default) or `aws-lc`");
