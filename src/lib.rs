//! wasm-hypervisor's daemon and its command line: the HTTP layer, configuration, and the CLI
//! (`serve`, and `run`, `audit` and `bench` on the client crate). Wasm execution lives in the
//! `actors` crate, the wire format and the client's checks in the `protocol` crate, the client
//! in the `client` crate (re-exported here as [`client`]).

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
mod edge;
mod http;
pub mod identity_file;
mod policy_file;
pub mod server;

pub use wasm_hypervisor_client as client;
