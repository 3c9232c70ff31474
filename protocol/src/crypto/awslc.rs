//! The aws-lc-rs backend (feature `aws-lc`): P-256 keys, ECDH and ECDSA, HKDF-SHA256 and
//! AES-256-GCM from aws-lc-rs, the library the `wasm-hypervisor` binary's rustls uses too, so the
//! binary has one implementation of each; with `fips`, aws-lc-rs is built on the FIPS module.
//!
//! ECDSA: aws-lc signs with hedged random nonces (not RFC 6979) and does not normalize S, so the
//! signature is taken as fixed `r ‖ s` and made low-S strict DER by [`super::low_s_der`]; its
//! signatures differ from run to run, which PROTOCOL.md §1 allows, and tests verify them
//! rather than compare bytes. HPKE is [`super::awslc_hpke`].

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
};
use zeroize::Zeroizing;

use super::awslc_hpke::{self, KemPrivateKey, Receiver, Sender};
use super::{Backend, Failure, SEC1_LEN, is_valid_scalar};

/// The aws-lc-rs backend.
pub(crate) struct AwsLc;

/// An HKDF output length for aws-lc-rs's `Prk::expand`.
pub(super) struct Len(pub(super) usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The uncompressed public key of a P-256 scalar already checked to be in `[1, n)`.
pub(super) fn ecdh_private_key(
    scalar: &[u8; 32],
) -> Option<(agreement::PrivateKey, [u8; SEC1_LEN])> {
    if !is_valid_scalar(scalar) {
        return None;
    }
    let private = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, scalar).ok()?;
    let public = private.compute_public_key().ok()?;
    let public = public.as_ref().try_into().ok()?;
    Some((private, public))
}

impl Backend for AwsLc {
    type SigningKey = EcdsaKeyPair;
    type KemPrivateKey = KemPrivateKey;
    type Sender = Sender;
    #[cfg(test)]
    const DETERMINISTIC_SIGNATURES: bool = false;
    type Receiver = Receiver;

    fn signing_key_from_scalar(scalar: &[u8; 32]) -> Option<EcdsaKeyPair> {
        let (_, public) = ecdh_private_key(scalar)?;
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            &public,
        )
        .ok()
    }

    fn signing_key_scalar(key: &EcdsaKeyPair) -> Zeroizing<[u8; 32]> {
        let bytes = key
            .private_key()
            .as_be_bytes()
            .expect("a P-256 key has a 32-byte scalar");
        let mut out = Zeroizing::new([0; 32]);
        out.copy_from_slice(bytes.as_ref());
        out
    }

    fn signing_key_public(key: &EcdsaKeyPair) -> [u8; SEC1_LEN] {
        key.public_key()
            .as_ref()
            .try_into()
            .expect("aws-lc-rs publishes P-256 keys as 65-byte uncompressed points")
    }

    /// Hedged nonces; S as aws-lc leaves it.
    fn sign_fixed(key: &EcdsaKeyPair, message: &[u8]) -> [u8; 64] {
        // aws-lc-rs ignores the `SecureRandom` argument: aws-lc draws its own randomness.
        let signature = key
            .sign(&SystemRandom::new(), message)
            .expect("ECDSA signing fails only on an internal aws-lc error");
        signature
            .as_ref()
            .try_into()
            .expect("a fixed P-256 signature is 64 bytes")
    }

    fn verify_der(public: &[u8; SEC1_LEN], message: &[u8], der: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public)
            .verify(message, der)
            .is_ok()
    }

    fn is_valid_public_key(sec1: &[u8; SEC1_LEN]) -> bool {
        sec1[0] == 0x04 && signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, sec1).is_ok()
    }

    fn kem_derive_key_pair(ikm: &[u8]) -> (KemPrivateKey, [u8; SEC1_LEN]) {
        awslc_hpke::derive_key_pair(ikm)
    }

    #[cfg(test)]
    fn kem_private_scalar(key: &KemPrivateKey) -> Zeroizing<[u8; 32]> {
        key.scalar()
    }

    fn setup_sender(
        pk_r: &[u8],
        info: &[u8],
        ikm_e: &[u8; 32],
    ) -> Result<([u8; SEC1_LEN], Sender), Failure> {
        awslc_hpke::setup_sender(pk_r, info, ikm_e)
    }

    fn setup_receiver(sk_r: &KemPrivateKey, enc: &[u8], info: &[u8]) -> Result<Receiver, Failure> {
        awslc_hpke::setup_receiver(sk_r, enc, info)
    }

    fn hkdf_sha256(salt: &[u8], ikm: &[u8], outputs: &mut [(&[u8], &mut [u8])]) {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
        for (info, out) in outputs {
            prk.expand(&[info], Len(out.len()))
                .and_then(|okm| okm.fill(out))
                .expect("the protocol's lengths are far below 255 × 32 bytes");
        }
    }

    fn aes256gcm_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let key = aes_key(key);
        let mut in_out = Vec::with_capacity(plaintext.len() + AES_256_GCM.tag_len());
        in_out.extend_from_slice(plaintext);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut in_out,
        )
        .expect("AES-GCM seals any plaintext the protocol has");
        in_out
    }

    fn aes256gcm_open(
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        let key = aes_key(key);
        let mut in_out = ciphertext.to_vec();
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| Failure)?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

pub(super) fn aes_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key"))
}
