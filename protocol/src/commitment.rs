//! The SHA3-256 hashes of `docs/PROTOCOL.md` §3, §5 and §6: every labelled hash, commitment
//! and seed.

use sha3::{Digest as _, Sha3_256};

/// A SHA3-256 or SHA-256 output.
pub type Digest = [u8; 32];

/// The value of a commitment that does not exist for an outcome (§6).
pub const ABSENT: Digest = [0; 32];

/// `H3(label ‖ 0x00 ‖ parts…)`: every labelled hash of the protocol has this shape.
fn labelled(label: &str, parts: &[&[u8]]) -> Digest {
    let mut hasher = Sha3_256::new();
    hasher.update(label.as_bytes());
    hasher.update([0]);
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// `H3(bytes)`.
pub fn h3(bytes: &[u8]) -> Digest {
    Sha3_256::digest(bytes).into()
}

/// The `client_nonce` a client publishes for its secret `ticket` (§3).
pub fn client_nonce(ticket: &[u8; 32]) -> Digest {
    labelled("wasm-hv/v1 ticket", &[ticket])
}

/// The announcement's `seed_commitment` to the server's share of randomness (§3).
pub fn seed_commitment(server_seed: &[u8; 32]) -> Digest {
    labelled("wasm-hv/v1 server-seed", &[server_seed])
}

/// The program's `random_seed` (§5): neither party alone can steer it.
pub fn random_seed(server_seed: &[u8; 32], client_seed: &[u8; 32]) -> Digest {
    labelled("wasm-hv/v1 random", &[server_seed, client_seed])
}

/// Binds the exact sealed request bytes to the announcement they were sealed to (§6).
pub fn request_commitment(announcement_hash: &Digest, enc_request: &[u8]) -> Digest {
    labelled(
        "wasm-hv/v1 request-commitment",
        &[announcement_hash, enc_request],
    )
}

/// Binds the exact sealed response bytes to the request they answer (§6).
pub fn result_commitment(request_commitment: &Digest, enc_response: &[u8]) -> Digest {
    labelled(
        "wasm-hv/v1 result-commitment",
        &[request_commitment, enc_response],
    )
}

/// A hiding commitment to the plaintext request payload (§6).
pub fn input_commitment(input_blind: &[u8; 32], request_payload: &[u8]) -> Digest {
    labelled("wasm-hv/v1 input", &[input_blind, request_payload])
}

/// A hiding commitment to the output map's bytes (§6).
pub fn output_commitment(output_blind: &[u8; 32], output: &[u8]) -> Digest {
    labelled("wasm-hv/v1 output", &[output_blind, output])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha3_matches_fips_202_known_answer() {
        assert_eq!(
            hex::encode(h3(b"abc")),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
    }

    #[test]
    fn labels_are_separated_from_the_input_by_a_zero_byte() {
        assert_eq!(client_nonce(&[7; 32]), {
            let mut bytes = b"wasm-hv/v1 ticket\0".to_vec();
            bytes.extend([7; 32]);
            h3(&bytes)
        });
        // The same bytes under another label give another hash.
        assert_ne!(client_nonce(&[7; 32]), seed_commitment(&[7; 32]));
    }
}
