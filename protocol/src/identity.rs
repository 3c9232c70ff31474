//! The daemon's long-term ECDSA P-256 identity (§2): signing, verification and the names
//! derived from the public key (fingerprint, key ID, origin, note verifier key).

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::Error;
use crate::commitment::{Digest, h3};
use crate::crypto::{self, Active, Backend as _};

pub(crate) use crate::crypto::SEC1_LEN;

/// The signed-note signature type of ECDSA keys (c2sp.org/signed-note, as transparency-dev/witness).
pub(crate) const NOTE_SIGNATURE_TYPE_ECDSA: u8 = 0x02;

/// The identity's private half. Only the daemon holds one.
pub struct IdentityKey(<Active as crypto::Backend>::SigningKey);

impl IdentityKey {
    /// A fresh key (a scalar drawn from `rng` until it is in `[1, n)`); fails only if `rng`
    /// does.
    pub fn generate<R: rand_core::TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, R::Error> {
        let mut scalar = Zeroizing::new([0; 32]);
        loop {
            rng.try_fill_bytes(scalar.as_mut())?;
            if let Some(key) = Active::signing_key_from_scalar(&scalar) {
                return Ok(Self(key));
            }
        }
    }

    /// Loads the 32-byte big-endian scalar written by [`IdentityKey::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let scalar: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidKey)?;
        Active::signing_key_from_scalar(scalar)
            .map(Self)
            .ok_or(Error::InvalidKey)
    }

    /// The 32-byte big-endian scalar, for the daemon's key file; zeroized when dropped.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(Active::signing_key_scalar(&self.0).to_vec())
    }

    /// The public half.
    pub fn public(&self) -> IdentityPublicKey {
        IdentityPublicKey(Active::signing_key_public(&self.0))
    }

    /// ECDSA-P256-SHA256, low-S, strict DER: RFC 6979 nonces on the RustCrypto backend, hedged
    /// nonces on aws-lc (PROTOCOL.md §1 allows both).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        crypto::low_s_der(&Active::sign_fixed(&self.0, message))
    }
}

/// The identity's public half, as clients pin it: a valid uncompressed P-256 point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityPublicKey([u8; SEC1_LEN]);

impl IdentityPublicKey {
    /// Parses a 65-byte uncompressed SEC1 point, as `GET /identity` publishes it.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, Error> {
        let sec1: [u8; SEC1_LEN] = bytes.try_into().map_err(|_| Error::InvalidKey)?;
        if Active::is_valid_public_key(&sec1) {
            Ok(Self(sec1))
        } else {
            Err(Error::InvalidKey)
        }
    }

    /// The uncompressed SEC1 encoding.
    pub fn sec1(&self) -> [u8; SEC1_LEN] {
        self.0
    }

    /// SubjectPublicKeyInfo DER, from which the note key ID is hashed.
    pub fn spki_der(&self) -> Vec<u8> {
        crypto::spki_der(&self.0)
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

    /// Parses a note verifier key of this protocol's form (see [`Self::note_verifier_key`]) into
    /// its origin and key; the key ID must be the key's.
    pub fn from_note_verifier_key(vkey: &str) -> Result<(String, Self), Error> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(origin), Some(key_id), Some(key)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::InvalidKey);
        };
        validate_origin(origin)?;
        let key = crate::encoding::base64_decode(key).ok_or(Error::InvalidKey)?;
        let (&signature_type, spki) = key.split_first().ok_or(Error::InvalidKey)?;
        let sec1 = spki
            .len()
            .checked_sub(SEC1_LEN)
            .map(|at| &spki[at..])
            .ok_or(Error::InvalidKey)?;
        let public = Self::from_sec1(sec1)?;
        if signature_type != NOTE_SIGNATURE_TYPE_ECDSA
            || spki != public.spki_der().as_slice()
            || key_id != hex::encode(public.key_id())
        {
            return Err(Error::InvalidKey);
        }
        Ok((origin.to_owned(), public))
    }

    /// Verifies a strict-DER ECDSA-P256-SHA256 signature; high-S is accepted, as §1 asks.
    pub(crate) fn verify(&self, message: &[u8], der_signature: &[u8]) -> Result<(), Error> {
        if Active::verify_der(&self.0, message, der_signature) {
            Ok(())
        } else {
            Err(Error::BadSignature)
        }
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
            let (r, s) = crypto::parse_der_signature(&der).expect("strict DER");
            assert_eq!(crypto::der_signature(&r, &s), der);
            assert!(crypto::is_low_s(&s), "low S");
            key.public().verify(message, &der).unwrap();
            assert!(key.public().verify(b"other", &der).is_err());
        }
    }

    #[test]
    fn high_s_signatures_are_accepted() {
        let key = fixed_key();
        let low = key.sign(b"m");
        let (r, s) = crypto::parse_der_signature(&low).unwrap();
        let high = crypto::der_signature(&r, &crypto::negate_scalar(&s));
        assert!(!crypto::is_low_s(
            &crypto::parse_der_signature(&high).unwrap().1
        ));
        key.public().verify(b"m", &high).unwrap();
    }

    #[test]
    fn secret_bytes_round_trip() {
        let key = fixed_key();
        let again = IdentityKey::from_secret_bytes(&key.to_secret_bytes()).unwrap();
        assert_eq!(again.public(), key.public());
        assert!(IdentityKey::from_secret_bytes(&[0; 32]).is_err());
        assert!(IdentityKey::from_secret_bytes(&crypto::P256_ORDER).is_err());
        assert!(IdentityKey::from_secret_bytes(&[0x11; 31]).is_err());
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let fresh = IdentityKey::generate(&mut rng).unwrap();
        let again = IdentityKey::from_secret_bytes(&fresh.to_secret_bytes()).unwrap();
        assert_eq!(again.public(), fresh.public());
        assert!(IdentityPublicKey::from_sec1(&fresh.public().sec1()[..64]).is_err());
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
    fn note_verifier_keys_parse_back() {
        let public = fixed_key().public();
        let vkey = public.note_verifier_key("example.com/log");
        let (origin, key) = IdentityPublicKey::from_note_verifier_key(&vkey).unwrap();
        assert_eq!((origin.as_str(), key), ("example.com/log", public));
        let other = IdentityKey::from_secret_bytes(&[0x22; 32])
            .unwrap()
            .public();
        let other_id = hex::encode(other.key_id());
        let own_id = hex::encode(public.key_id());
        for bad in [
            String::new(),
            "example.com/log".into(),
            vkey.replacen(&own_id, &other_id, 1),
            vkey.replacen("example.com/log", "with space", 1),
            format!("{vkey}A"),
            vkey.replacen("+A", "+B", 1),
            vkey.replacen("example.com/log", "", 1),
        ] {
            assert!(
                IdentityPublicKey::from_note_verifier_key(&bad).is_err(),
                "{bad:?}"
            );
        }
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
