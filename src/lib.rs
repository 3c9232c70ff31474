//! wasm-hypervisor's daemon and client: the HTTP layer, configuration, the client library used
//! by the CLI, and the CLI itself. Wasm execution lives in the `actors` crate, the wire format in
//! the `protocol` crate.

#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod config;
mod edge;
mod http;
pub mod identity_file;
pub mod server;
