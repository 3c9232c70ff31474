//! The wasm-hypervisor wire format of `docs/PROTOCOL.md`, version 1, and the client's checks of it
//! ([`verify`]): pure functions and types, no I/O, so any Rust client can depend on this crate
//! alone and bring its own transport.

#![forbid(unsafe_code)]

pub mod announcement;
pub mod api;
pub mod cbor;
pub mod checkpoint;
pub mod commitment;
mod crypto;
pub mod encoding;
pub mod identity;
pub mod leaf;
pub mod merkle;
pub mod payload;
pub mod policy;
pub mod replay;
pub mod sealing;
#[cfg(test)]
mod vectors;
pub mod verify;

/// Everything the wire format can reject. Crypto failures are deliberately coarse: a peer learns
/// nothing from *why* an open or a signature check failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that are not a valid key.
    #[error("invalid public or private key")]
    InvalidKey,
    /// A signature that is malformed or does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// An HPKE open or response decryption failed.
    #[error("could not open the sealed message")]
    Unseal,
    /// HPKE sealing failed.
    #[error("could not seal the message")]
    Seal,
    /// An origin outside §2's rules.
    #[error("invalid origin: 1 to 255 bytes in 0x21-0x7E without '+'")]
    InvalidOrigin,
    /// An announcement a client must not seal to; the message says which check failed.
    #[error("invalid announcement: {0}")]
    Announcement(&'static str),
    /// A checkpoint or proof that does not verify; the message says why.
    #[error("checkpoint or proof rejected: {0}")]
    Checkpoint(&'static str),
    /// A policy file (§9) that breaks its rules; the message says which line and how.
    #[error("invalid policy: {0}")]
    Policy(String),
}
