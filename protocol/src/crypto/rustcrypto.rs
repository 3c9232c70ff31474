//! The portable backend, pure Rust: p256 (ECDSA, keys; `precomputed-tables` on), rust-hpke (the
//! `hpke` crate) for HPKE, hkdf and aes-gcm. The default, and what a third-party Rust client
//! builds on (wasm32 included). With `aws-lc` on it is compiled for the interop tests only.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Backend, Failure, ReceiverContext, SEC1_LEN, SenderContext, is_valid_scalar};

/// DHKEM(P-256, HKDF-SHA256).
type Kem = hpke::kem::DhP256HkdfSha256;
/// HKDF-SHA256.
type Kdf = hpke::kdf::HkdfSha256;
/// AES-256-GCM.
type Aead = hpke::aead::AesGcm256;

/// The RustCrypto backend.
pub(crate) struct RustCrypto;

/// Hands rust-hpke the caller's `ikmE` as the randomness of `SetupBaseS`: rust-hpke draws
/// exactly `Nsk` (32) bytes and runs `DeriveKeyPair` on them, as RFC 9180 §7.1.3 allows.
struct IkmE(Option<Zeroizing<[u8; 32]>>);

impl rand_core::TryRng for IkmE {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!("rust-hpke only fills byte buffers")
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!("rust-hpke only fills byte buffers")
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        let ikm = self
            .0
            .take()
            .expect("rust-hpke draws its ephemeral key once");
        assert_eq!(dest.len(), ikm.len(), "rust-hpke draws Nsk bytes");
        dest.copy_from_slice(ikm.as_ref());
        Ok(())
    }
}
impl rand_core::TryCryptoRng for IkmE {}

impl SenderContext for hpke::aead::AeadCtxS<Aead, Kdf, Kem> {
    fn seal(&mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Failure> {
        Self::seal(self, plaintext, aad).map_err(|_| Failure)
    }
    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Failure> {
        Self::export(self, exporter_context, out).map_err(|_| Failure)
    }
}

impl ReceiverContext for hpke::aead::AeadCtxR<Aead, Kdf, Kem> {
    fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Failure> {
        Self::open(self, ciphertext, aad).map_err(|_| Failure)
    }
    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Failure> {
        Self::export(self, exporter_context, out).map_err(|_| Failure)
    }
}

fn sec1(bytes: &[u8]) -> [u8; SEC1_LEN] {
    bytes
        .try_into()
        .expect("an uncompressed P-256 point is 65 bytes")
}

impl Backend for RustCrypto {
    type SigningKey = SigningKey;
    type KemPrivateKey = <Kem as hpke::Kem>::PrivateKey;
    type Sender = hpke::aead::AeadCtxS<Aead, Kdf, Kem>;
    #[cfg(test)]
    const DETERMINISTIC_SIGNATURES: bool = true;
    type Receiver = hpke::aead::AeadCtxR<Aead, Kdf, Kem>;

    fn signing_key_from_scalar(scalar: &[u8; 32]) -> Option<SigningKey> {
        if !is_valid_scalar(scalar) {
            return None;
        }
        SigningKey::from_slice(scalar).ok()
    }

    fn signing_key_scalar(key: &SigningKey) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0; 32]);
        out.copy_from_slice(&key.to_bytes());
        out
    }

    fn signing_key_public(key: &SigningKey) -> [u8; SEC1_LEN] {
        sec1(&key.verifying_key().to_sec1_bytes())
    }

    /// RFC 6979 nonces: deterministic.
    fn sign_fixed(key: &SigningKey, message: &[u8]) -> [u8; 64] {
        let signature: Signature = key.sign(message);
        let mut out = [0; 64];
        out.copy_from_slice(&signature.to_bytes());
        out
    }

    fn verify_der(public: &[u8; SEC1_LEN], message: &[u8], der: &[u8]) -> bool {
        let (Ok(key), Ok(signature)) = (
            VerifyingKey::from_sec1_bytes(public),
            DerSignature::from_bytes(der),
        ) else {
            return false;
        };
        key.verify(message, &signature).is_ok()
    }

    fn is_valid_public_key(sec1: &[u8; SEC1_LEN]) -> bool {
        sec1[0] == 0x04 && <Kem as hpke::Kem>::PublicKey::from_bytes(sec1).is_ok()
    }

    fn kem_derive_key_pair(ikm: &[u8]) -> (Self::KemPrivateKey, [u8; SEC1_LEN]) {
        let (private, public) = Kem::derive_keypair(ikm);
        (private, sec1(&public.to_bytes()))
    }

    #[cfg(test)]
    fn kem_private_scalar(key: &Self::KemPrivateKey) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0; 32]);
        out.copy_from_slice(&key.to_bytes());
        out
    }

    fn setup_sender(
        pk_r: &[u8],
        info: &[u8],
        ikm_e: &[u8; 32],
    ) -> Result<([u8; SEC1_LEN], Self::Sender), Failure> {
        let pk_r = <Kem as hpke::Kem>::PublicKey::from_bytes(pk_r).map_err(|_| Failure)?;
        let mut rng = IkmE(Some(Zeroizing::new(*ikm_e)));
        let (encapped, context) =
            hpke::setup_sender_with_rng::<Aead, Kdf, Kem>(&OpModeS::Base, &pk_r, info, &mut rng)
                .map_err(|_| Failure)?;
        Ok((sec1(&encapped.to_bytes()), context))
    }

    fn setup_receiver(
        sk_r: &Self::KemPrivateKey,
        enc: &[u8],
        info: &[u8],
    ) -> Result<Self::Receiver, Failure> {
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| Failure)?;
        hpke::setup_receiver::<Aead, Kdf, Kem>(&OpModeR::Base, sk_r, &encapped, info)
            .map_err(|_| Failure)
    }

    fn hkdf_sha256(salt: &[u8], ikm: &[u8], outputs: &mut [(&[u8], &mut [u8])]) {
        let prk = Hkdf::<Sha256>::new(Some(salt), ikm);
        for (info, out) in outputs {
            prk.expand(info, out)
                .expect("the protocol's lengths are far below 255 × 32 bytes");
        }
    }

    fn aes256gcm_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
            .encrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM seals any plaintext the protocol has")
    }

    fn aes256gcm_open(
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key))
            .decrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| Failure)
    }
}

/// p256's own SPKI encoding, to check the fixed prefix of [`super::spki_der`].
#[cfg(test)]
pub(crate) fn spki_der_by_p256(sec1: &[u8; SEC1_LEN]) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey as _;
    VerifyingKey::from_sec1_bytes(sec1)
        .unwrap()
        .to_public_key_der()
        .unwrap()
        .into_vec()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{field, rfc9180_vectors};
    use super::*;

    /// RFC 9180 §5.1 key schedule for base mode, written from the RFC for this test only, to
    /// check `key`, `base_nonce` and `exporter_secret`, which rust-hpke keeps private.
    fn key_schedule(shared_secret: &[u8], info: &[u8]) -> [Vec<u8>; 3] {
        let suite_id = [b"HPKE".as_slice(), &[0x00, 0x10, 0x00, 0x01, 0x00, 0x02]].concat();
        let labelled_extract = |salt: &[u8], label: &[u8], ikm: &[u8]| {
            let ikm = [b"HPKE-v1".as_slice(), &suite_id, label, ikm].concat();
            Hkdf::<Sha256>::extract(Some(salt), &ikm).0.to_vec()
        };
        let psk_id_hash = labelled_extract(b"", b"psk_id_hash", b"");
        let info_hash = labelled_extract(b"", b"info_hash", info);
        let context = [[0u8].as_slice(), &psk_id_hash, &info_hash].concat();
        let secret = labelled_extract(shared_secret, b"secret", b"");
        let expand = |label: &[u8], len: usize| {
            let info = [
                &(len as u16).to_be_bytes(),
                b"HPKE-v1".as_slice(),
                &suite_id,
                label,
                &context,
            ]
            .concat();
            let mut out = vec![0; len];
            Hkdf::<Sha256>::from_prk(&secret)
                .unwrap()
                .expand(&info, &mut out)
                .unwrap();
            out
        };
        [
            expand(b"key", 32),
            expand(b"base_nonce", 12),
            expand(b"exp", 32),
        ]
    }

    /// The intermediate values the backend API does not show: rust-hpke's `shared_secret`, and
    /// the key schedule's outputs from it.
    #[test]
    fn rust_hpke_shared_secret_and_key_schedule_match_rfc_9180() {
        let v = rfc9180_vectors();
        let (_, pk_r) = RustCrypto::kem_derive_key_pair(&field(&v, "ikmR"));
        let pk_r = <Kem as hpke::Kem>::PublicKey::from_bytes(&pk_r).unwrap();
        let mut rng = IkmE(Some(Zeroizing::new(field(&v, "ikmE").try_into().unwrap())));
        let (shared_secret, encapped) = Kem::encap_with_rng(&pk_r, None, &mut rng).unwrap();
        assert_eq!(encapped.to_bytes().to_vec(), field(&v, "enc"));
        assert_eq!(shared_secret.0.to_vec(), field(&v, "shared_secret"));
        let [key, base_nonce, exporter_secret] = key_schedule(&shared_secret.0, &field(&v, "info"));
        assert_eq!(key, field(&v, "key"));
        assert_eq!(base_nonce, field(&v, "base_nonce"));
        assert_eq!(exporter_secret, field(&v, "exporter_secret"));
    }

    #[test]
    fn fixed_signatures_are_p256s_normalized_der() {
        let key = SigningKey::from_slice(&[0x11; 32]).unwrap();
        for message in [&b""[..], b"m", b"wasm-hv/v1 session-key"] {
            let signature: Signature = key.sign(message);
            assert_eq!(
                super::super::low_s_der(&RustCrypto::sign_fixed(&key, message)),
                signature.normalize_s().to_der().as_bytes()
            );
        }
    }
}
