//! The daemon's long-term ECDSA P-256 identity (§2): signing, verification and the names
//! derived from the public key (fingerprint, key ID, origin, note verifier key).

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::EncodePublicKey as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::Error;
use crate::commitment::{Digest, h3};

/// Length of an uncompressed SEC1 P-256 point.
pub(crate) const SEC1_LEN: usize = 65;

/// The signed-note signature type of ECDSA keys (c2sp.org/signed-note, as transparency-dev/witness).
pub(crate) const NOTE_SIGNATURE_TYPE_ECDSA: u8 = 0x02;

/// The identity's private half. Only the daemon holds one.
pub struct IdentityKey(SigningKey);

impl IdentityKey {
    /// A fresh key; fails only if `rng` does.
    pub fn generate<R: rand_core::TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, R::Error> {
        SigningKey::try_generate_from_rng(rng).map(Self)
    }

    /// Loads the 32-byte big-endian scalar written by [`IdentityKey::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, Error> {
        SigningKey::from_slice(bytes)
            .map(Self)
            .map_err(|_| Error::InvalidKey)
    }

    /// The 32-byte big-endian scalar, for the daemon's key file; zeroized when dropped.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_bytes().to_vec())
    }

    /// The public half.
    pub fn public(&self) -> IdentityPublicKey {
        IdentityPublicKey(*self.0.verifying_key())
    }

    /// ECDSA-P256-SHA256 with RFC 6979 nonces, low-S, strict DER.
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.0.sign(message);
        signature.normalize_s().to_der().as_bytes().to_vec()
    }
}

/// The identity's public half, as clients pin it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityPublicKey(VerifyingKey);

impl IdentityPublicKey {
    /// Parses a 65-byte uncompressed SEC1 point, as `GET /identity` publishes it.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != SEC1_LEN {
            return Err(Error::InvalidKey);
        }
        VerifyingKey::from_sec1_bytes(bytes)
            .map(Self)
            .map_err(|_| Error::InvalidKey)
    }

    /// The uncompressed SEC1 encoding.
    pub fn sec1(&self) -> [u8; SEC1_LEN] {
        let mut out = [0; SEC1_LEN];
        out.copy_from_slice(&self.0.to_sec1_bytes());
        out
    }

    /// SubjectPublicKeyInfo DER, from which the note key ID is hashed.
    pub fn spki_der(&self) -> Vec<u8> {
        self.0
            .to_public_key_der()
            .expect("a valid P-256 key always has an SPKI encoding")
            .into_vec()
    }

    /// `H3(SEC1 public key)`: the TBS's `identity_fpr`.
    pub fn fingerprint(&self) -> Digest {
        h3(&self.sec1())
    }

    /// The signed-note key ID: `H2(SPKI DER)[:4]`.
    pub(crate) fn key_id(&self) -> [u8; 4] {
        let digest = Sha256::digest(self.spki_der());
        [digest[0], digest[1], digest[2], digest[3]]
    }

    /// `wasm-hypervisor/` and the first 16 hex digits of the fingerprint.
    pub fn default_origin(&self) -> String {
        format!("wasm-hypervisor/{}", &hex::encode(self.fingerprint())[..16])
    }

    /// `<origin>+<8 hex digits of the key ID>+<base64(0x02 ‖ SPKI DER)>`.
    pub fn note_verifier_key(&self, origin: &str) -> String {
        let mut key = vec![NOTE_SIGNATURE_TYPE_ECDSA];
        key.extend(self.spki_der());
        format!(
            "{origin}+{}+{}",
            hex::encode(self.key_id()),
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    }

    /// Verifies a strict-DER ECDSA-P256-SHA256 signature; high-S is accepted, as §1 asks.
    pub(crate) fn verify(&self, message: &[u8], der_signature: &[u8]) -> Result<(), Error> {
        let signature = DerSignature::from_bytes(der_signature).map_err(|_| Error::BadSignature)?;
        self.0
            .verify(message, &signature)
            .map_err(|_| Error::BadSignature)
    }
}

/// Checks an origin against §2: 1 to 255 bytes in 0x21–0x7E, no `+`.
pub fn validate_origin(origin: &str) -> Result<(), Error> {
    let valid_len = (1..=255).contains(&origin.len());
    let valid_bytes = origin
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b'+');
    if valid_len && valid_bytes {
        Ok(())
    } else {
        Err(Error::InvalidOrigin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_key() -> IdentityKey {
        IdentityKey::from_secret_bytes(&[0x11; 32]).unwrap()
    }

    #[test]
    fn signatures_are_low_s_strict_der_and_verify() {
        let key = fixed_key();
        for message in [&b""[..], b"a", b"wasm-hv/v1 session-key"] {
            let der = key.sign(message);
            let signature = Signature::from_der(&der).unwrap();
            assert_eq!(signature.normalize_s(), signature, "low S");
            key.public().verify(message, &der).unwrap();
            assert!(key.public().verify(b"other", &der).is_err());
        }
    }

    #[test]
    fn high_s_signatures_are_accepted() {
        let key = fixed_key();
        let low = Signature::from_der(&key.sign(b"m")).unwrap();
        let (r, s) = low.split_scalars();
        let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(high, low);
        key.public().verify(b"m", high.to_der().as_bytes()).unwrap();
    }

    #[test]
    fn secret_bytes_round_trip() {
        let key = fixed_key();
        let again = IdentityKey::from_secret_bytes(&key.to_secret_bytes()).unwrap();
        assert_eq!(again.public(), key.public());
        assert!(IdentityKey::from_secret_bytes(&[0; 32]).is_err());
    }

    #[test]
    fn derived_names_follow_section_2() {
        let public = fixed_key().public();
        let sec1 = public.sec1();
        assert_eq!(sec1[0], 0x04);
        assert_eq!(IdentityPublicKey::from_sec1(&sec1).unwrap(), public);
        let origin = public.default_origin();
        assert_eq!(origin.len(), "wasm-hypervisor/".len() + 16);
        assert!(origin.ends_with(&hex::encode(public.fingerprint())[..16]));
        let vkey = public.note_verifier_key(&origin);
        let parts: Vec<&str> = vkey.split('+').collect();
        assert_eq!(parts[0], origin);
        assert_eq!(parts[1], hex::encode(public.key_id()));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(parts[2])
            .unwrap();
        assert_eq!(decoded[0], 0x02);
        assert_eq!(&decoded[1..], public.spki_der());
    }

    #[test]
    fn origins_are_validated() {
        assert!(validate_origin("example.com/log").is_ok());
        assert!(validate_origin(&"a".repeat(255)).is_ok());
        for bad in ["", "a+b", "with space", "tab\t", "é", &"a".repeat(256)] {
            assert!(validate_origin(bad).is_err(), "{bad:?}");
        }
    }
}
