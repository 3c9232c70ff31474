//! The crypto backend: exactly the primitives the protocol needs, behind one trait with two
//! implementations.
//!
//! - [`rustcrypto::RustCrypto`] (the default): pure Rust — p256 (with `precomputed-tables`),
//!   rust-hpke (the `hpke` crate), aes-gcm and hkdf — so the protocol crate and any Rust client
//!   build anywhere, wasm32 included.
//! - `awslc::AwsLc` (feature `aws-lc`, on in the `wasm-hypervisor` binary): P-256 keygen, ECDH
//!   and ECDSA, HKDF and AES-GCM on aws-lc-rs, the library the binary's rustls also uses; with
//!   feature `fips`, aws-lc-rs is built against the FIPS module (aws-lc-fips-sys). Its HPKE is
//!   `awslc_hpke`, whose module doc says why it is written here.
//!
//! [`Active`] is the one the protocol uses: `AwsLc` when the feature is on, else `RustCrypto`.
//! With `aws-lc` on, the tests compile both and check that they interoperate both ways (each
//! opens what the other seals, each verifies what the other signs) and pass the same known
//! answers ([`tests`]).
//!
//! What is common to both lives here, not in a backend: low-S normalization and the strict DER
//! encoding of ECDSA signatures (PROTOCOL.md §1: signers emit low-S), and the SPKI encoding of a
//! P-256 public key. Backends sign into fixed `r ‖ s` and verify strict DER.

use zeroize::Zeroizing;

#[cfg(feature = "aws-lc")]
pub(crate) mod awslc;
#[cfg(feature = "aws-lc")]
mod awslc_hpke;
#[cfg(any(not(feature = "aws-lc"), test))]
pub(crate) mod rustcrypto;

/// The backend the protocol uses.
#[cfg(feature = "aws-lc")]
pub(crate) type Active = awslc::AwsLc;
/// The backend the protocol uses.
#[cfg(not(feature = "aws-lc"))]
pub(crate) type Active = rustcrypto::RustCrypto;

/// Length of an uncompressed SEC1 P-256 point.
pub(crate) const SEC1_LEN: usize = 65;
/// Length of `enc` and of every HPKE public key of DHKEM(P-256, HKDF-SHA256).
pub(crate) const ENC_LEN: usize = SEC1_LEN;

/// A crypto operation failed; deliberately without a reason (callers map it to an opaque error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure;

/// The primitives of this protocol's one suite: ECDSA P-256 with SHA-256, HPKE base mode with
/// DHKEM(P-256, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM (with the exporter), HKDF-SHA256 and
/// AES-256-GCM on their own for the response.
pub(crate) trait Backend {
    /// An ECDSA P-256 private key.
    type SigningKey: Send + Sync;
    /// An HPKE (DHKEM P-256) private key.
    type KemPrivateKey: Send + Sync;
    /// An HPKE sender context.
    type Sender: SenderContext;
    /// An HPKE receiver context.
    type Receiver: ReceiverContext;

    /// A signing key from a 32-byte big-endian scalar in `[1, n)`; `None` otherwise.
    fn signing_key_from_scalar(scalar: &[u8; 32]) -> Option<Self::SigningKey>;
    /// The key's 32-byte big-endian scalar.
    fn signing_key_scalar(key: &Self::SigningKey) -> Zeroizing<[u8; 32]>;
    /// Whether signing is deterministic (RFC 6979), so that tests may compare a signature's
    /// bytes; hedged signers' signatures can only be verified.
    #[cfg(test)]
    const DETERMINISTIC_SIGNATURES: bool;
    /// The key's public half, uncompressed SEC1.
    fn signing_key_public(key: &Self::SigningKey) -> [u8; SEC1_LEN];
    /// ECDSA-P256-SHA256 of `message` as fixed `r ‖ s`, S not necessarily low.
    fn sign_fixed(key: &Self::SigningKey, message: &[u8]) -> [u8; 64];
    /// Verifies a strict-DER ECDSA-P256-SHA256 signature, high or low S, under an uncompressed
    /// SEC1 public key.
    fn verify_der(public: &[u8; SEC1_LEN], message: &[u8], der: &[u8]) -> bool;
    /// Whether `sec1` is an uncompressed SEC1 encoding of a point on P-256 (not the identity).
    fn is_valid_public_key(sec1: &[u8; SEC1_LEN]) -> bool;

    /// RFC 9180 `DeriveKeyPair` of DHKEM(P-256, HKDF-SHA256): the private key and `pk`.
    fn kem_derive_key_pair(ikm: &[u8]) -> (Self::KemPrivateKey, [u8; SEC1_LEN]);
    /// The private key's 32-byte big-endian scalar, for known-answer tests.
    #[cfg(test)]
    fn kem_private_scalar(key: &Self::KemPrivateKey) -> Zeroizing<[u8; 32]>;
    /// `SetupBaseS(pkR, info)` with the ephemeral key `DeriveKeyPair(ikm_e)`: `enc` and the
    /// context. Fails if `pk_r` is not a valid point.
    fn setup_sender(
        pk_r: &[u8],
        info: &[u8],
        ikm_e: &[u8; 32],
    ) -> Result<([u8; ENC_LEN], Self::Sender), Failure>;
    /// `SetupBaseR(enc, skR, info)`.
    fn setup_receiver(
        sk_r: &Self::KemPrivateKey,
        enc: &[u8],
        info: &[u8],
    ) -> Result<Self::Receiver, Failure>;

    /// HKDF-SHA256: one extract of `(salt, ikm)`, then one expand per `(info, out)`.
    fn hkdf_sha256(salt: &[u8], ikm: &[u8], outputs: &mut [(&[u8], &mut [u8])]);
    /// AES-256-GCM: `ciphertext ‖ tag`.
    fn aes256gcm_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8>;
    /// AES-256-GCM open of `ciphertext ‖ tag`.
    fn aes256gcm_open(
        key: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Failure>;
}

/// An HPKE sender context (RFC 9180 §5.2, §5.3).
pub(crate) trait SenderContext {
    /// `Seal(aad, pt)`, advancing the sequence number.
    fn seal(&mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Failure>;
    /// `Export(exporter_context, out.len())`.
    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Failure>;
}

/// An HPKE receiver context (RFC 9180 §5.2, §5.3).
pub(crate) trait ReceiverContext {
    /// `Open(aad, ct)`, advancing the sequence number.
    fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Failure>;
    /// `Export(exporter_context, out.len())`.
    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Failure>;
}

/// The order n of P-256's base point, big-endian.
pub(crate) const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `(n - 1) / 2`: the largest low S.
const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether a 32-byte big-endian scalar is in `[1, n)` (equal-length big-endian arrays compare
/// as the numbers they encode).
pub(crate) fn is_valid_scalar(scalar: &[u8; 32]) -> bool {
    *scalar != [0; 32] && *scalar < P256_ORDER
}

/// `n - x` for `x` in `[1, n)`.
pub(crate) fn negate_scalar(x: &[u8; 32]) -> [u8; 32] {
    let mut out = [0; 32];
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let difference = u16::from(P256_ORDER[i])
            .wrapping_sub(u16::from(x[i]))
            .wrapping_sub(borrow);
        out[i] = difference as u8;
        borrow = (difference >> 8) & 1;
    }
    out
}

/// Whether `s` is at most `(n - 1) / 2`.
pub(crate) fn is_low_s(s: &[u8; 32]) -> bool {
    *s <= P256_HALF_ORDER
}

/// A fixed `r ‖ s` signature as strict DER with low S (PROTOCOL.md §1): `s` is replaced by
/// `n - s` when it is high, which verifies just the same.
pub(crate) fn low_s_der(signature: &[u8; 64]) -> Vec<u8> {
    let r: &[u8; 32] = signature[..32].try_into().expect("32 bytes");
    let mut s: [u8; 32] = signature[32..].try_into().expect("32 bytes");
    if !is_low_s(&s) {
        s = negate_scalar(&s);
    }
    der_signature(r, &s)
}

/// `SEQUENCE { INTEGER r, INTEGER s }` in DER: minimal, non-negative integers.
pub(crate) fn der_signature(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, value: &[u8; 32]) {
        let start = value.iter().position(|&b| b != 0).unwrap_or(31);
        let digits = &value[start..];
        let pad = digits[0] & 0x80 != 0;
        out.push(0x02);
        out.push((digits.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(digits);
    }
    let mut body = Vec::with_capacity(70);
    integer(&mut body, r);
    integer(&mut body, s);
    let mut der = Vec::with_capacity(body.len() + 2);
    der.push(0x30);
    der.push(body.len() as u8); // At most 2 × 35 = 70: the short form.
    der.extend(body);
    der
}

/// Strict DER back to `(r, s)`, for tests.
#[cfg(test)]
pub(crate) fn parse_der_signature(der: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    fn integer(input: &[u8]) -> Option<([u8; 32], &[u8])> {
        let (&[0x02, len], rest) = input.split_first_chunk::<2>()? else {
            return None;
        };
        let len = usize::from(len);
        if !(1..=33).contains(&len) || rest.len() < len {
            return None;
        }
        let (digits, rest) = rest.split_at(len);
        let negative = digits[0] & 0x80 != 0;
        let non_minimal = len > 1 && digits[0] == 0 && digits[1] & 0x80 == 0;
        let digits = if digits[0] == 0 && len > 1 {
            &digits[1..]
        } else {
            digits
        };
        if negative || non_minimal || digits.len() > 32 {
            return None;
        }
        let mut out = [0; 32];
        out[32 - digits.len()..].copy_from_slice(digits);
        Some((out, rest))
    }
    let (&[0x30, len], body) = der.split_first_chunk::<2>()? else {
        return None;
    };
    if usize::from(len) != body.len() || len >= 0x80 {
        return None;
    }
    let (r, rest) = integer(body)?;
    let (s, rest) = integer(rest)?;
    rest.is_empty().then_some((r, s))
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1) up to the
/// BIT STRING's contents, which are the 65-byte uncompressed point.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The SubjectPublicKeyInfo DER of an uncompressed P-256 point.
pub(crate) fn spki_der(sec1: &[u8; SEC1_LEN]) -> Vec<u8> {
    [SPKI_PREFIX.as_slice(), sec1].concat()
}

#[cfg(test)]
pub(crate) mod tests {
    //! Known answers and properties for every backend compiled in, and, with `aws-lc`, interop
    //! both ways between the two.

    use super::*;

    pub(crate) fn rfc9180_vectors() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../testdata/rfc9180-p256-sha256-aes256gcm.json"
        ))
        .unwrap()
    }

    pub(crate) fn field(v: &serde_json::Value, name: &str) -> Vec<u8> {
        hex::decode(v[name].as_str().unwrap()).unwrap()
    }

    fn random<const N: usize>() -> [u8; N] {
        let mut out = [0; N];
        getrandom::fill(&mut out).unwrap();
        out
    }

    /// Every RFC 9180 known answer reachable through the backend's API: skR/pkR from ikmR,
    /// `enc` from ikmE, each ciphertext sealed in sequence and opened in sequence, each export on
    /// both sides. (The backends' own tests check the intermediate values they can reach.)
    fn rfc9180_known_answers<B: Backend>() {
        let v = rfc9180_vectors();
        assert_eq!(
            (
                v["mode"].as_u64(),
                v["kem_id"].as_u64(),
                v["kdf_id"].as_u64(),
                v["aead_id"].as_u64()
            ),
            (Some(0), Some(16), Some(1), Some(2))
        );
        let info = field(&v, "info");
        let (sk_r, pk_r) = B::kem_derive_key_pair(&field(&v, "ikmR"));
        assert_eq!(B::kem_private_scalar(&sk_r).to_vec(), field(&v, "skRm"));
        assert_eq!(pk_r.to_vec(), field(&v, "pkRm"));
        let (_, pk_e) = B::kem_derive_key_pair(&field(&v, "ikmE"));
        assert_eq!(
            pk_e.to_vec(),
            field(&v, "enc"),
            "enc is pkE = DeriveKeyPair(ikmE)'s"
        );

        let ikm_e: [u8; 32] = field(&v, "ikmE").try_into().unwrap();
        let (enc, mut sender) = B::setup_sender(&pk_r, &info, &ikm_e).unwrap();
        assert_eq!(enc.to_vec(), field(&v, "enc"));
        let mut receiver = B::setup_receiver(&sk_r, &enc, &info).unwrap();
        let encryptions = v["encryptions"].as_array().unwrap();
        assert!(!encryptions.is_empty());
        for encryption in encryptions {
            let (aad, pt, ct) = (
                field(encryption, "aad"),
                field(encryption, "pt"),
                field(encryption, "ct"),
            );
            assert_eq!(sender.seal(&pt, &aad).unwrap(), ct);
            assert_eq!(receiver.open(&ct, &aad).unwrap(), pt);
        }
        let exports = v["exports"].as_array().unwrap();
        assert!(!exports.is_empty());
        for export in exports {
            let mut out = vec![0; export["L"].as_u64().unwrap() as usize];
            let context = field(export, "exporter_context");
            sender.export(&context, &mut out).unwrap();
            assert_eq!(out, field(export, "exported_value"));
            out.fill(0);
            receiver.export(&context, &mut out).unwrap();
            assert_eq!(out, field(export, "exported_value"));
        }
    }

    /// RFC 5869 test case 1 (SHA-256) and the NIST GCM test case 16 (AES-256, 60-byte
    /// plaintext, 20-byte AAD).
    fn hkdf_and_aes_gcm_known_answers<B: Backend>() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0; 42];
        B::hkdf_sha256(&salt, &ikm, &mut [(&info, &mut okm)]);
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );

        let key = hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .unwrap()
            .try_into()
            .unwrap();
        let nonce = hex::decode("cafebabefacedbaddecaf888")
            .unwrap()
            .try_into()
            .unwrap();
        let pt = hex::decode(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        )
        .unwrap();
        let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let ct = B::aes256gcm_seal(&key, &nonce, &aad, &pt);
        assert_eq!(
            hex::encode(&ct),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662\
             76fc6ece0f4e1768cddf8853bb2d551b"
        );
        assert_eq!(B::aes256gcm_open(&key, &nonce, &aad, &ct).unwrap(), pt);
        for i in 0..ct.len() {
            let mut tampered = ct.clone();
            tampered[i] ^= 1;
            assert!(B::aes256gcm_open(&key, &nonce, &aad, &tampered).is_err());
        }
        assert!(B::aes256gcm_open(&key, &nonce, b"", &ct).is_err());
    }

    /// Signatures are low-S strict DER and verify; a high-S twin verifies too; malformed or
    /// foreign signatures do not.
    fn ecdsa_properties<B: Backend>() {
        let key = B::signing_key_from_scalar(&[0x11; 32]).unwrap();
        let public = B::signing_key_public(&key);
        assert!(B::is_valid_public_key(&public));
        assert_eq!(*B::signing_key_scalar(&key), [0x11; 32]);
        for message in [&b""[..], b"a", b"wasm-hv/v1 session-key"] {
            let der = low_s_der(&B::sign_fixed(&key, message));
            let (r, s) = parse_der_signature(&der).expect("strict DER");
            assert_eq!(der_signature(&r, &s), der);
            assert!(is_low_s(&s), "low S");
            assert!(B::verify_der(&public, message, &der));
            assert!(!B::verify_der(&public, b"other", &der));
            let high = der_signature(&r, &negate_scalar(&s));
            assert!(B::verify_der(&public, message, &high), "high S accepted");
            // Non-minimal DER of the same integers, trailing bytes, truncation.
            let mut padded = vec![0x30, der[1] + 1, 0x02, der[3] + 1, 0x00];
            padded.extend_from_slice(&der[4..]);
            assert!(!B::verify_der(&public, message, &padded));
            assert!(!B::verify_der(
                &public,
                message,
                &[der.as_slice(), &[0]].concat()
            ));
            assert!(!B::verify_der(&public, message, &der[..der.len() - 1]));
        }
        assert!(B::signing_key_from_scalar(&[0; 32]).is_none());
        assert!(B::signing_key_from_scalar(&P256_ORDER).is_none());
        assert!(B::signing_key_from_scalar(&[0xff; 32]).is_none());
        let mut off_curve = public;
        off_curve[64] ^= 1;
        assert!(!B::is_valid_public_key(&off_curve));
        let mut compressed_tag = public;
        compressed_tag[0] = 0x02;
        assert!(!B::is_valid_public_key(&compressed_tag));
    }

    #[test]
    fn low_s_normalization_and_der() {
        assert!(is_low_s(&P256_HALF_ORDER));
        let mut above = P256_HALF_ORDER;
        above[31] += 1;
        assert!(!is_low_s(&above));
        // n - ((n-1)/2 + 1) = (n-1)/2.
        assert_eq!(negate_scalar(&above), P256_HALF_ORDER);
        let mut one = [0; 32];
        one[31] = 1;
        let mut n_minus_one = P256_ORDER;
        n_minus_one[31] -= 1;
        assert_eq!(negate_scalar(&one), n_minus_one);
        assert_eq!(negate_scalar(&n_minus_one), one);
        // Short integers lose their leading zeros; a high first bit gets a zero byte.
        assert_eq!(
            der_signature(&one, &P256_HALF_ORDER[..].try_into().unwrap())[..5],
            [0x30, 0x25, 0x02, 0x01, 0x01]
        );
        let der = der_signature(&[0x80; 32], &one);
        assert_eq!(der[..5], [0x30, 0x26, 0x02, 0x21, 0x00]);
        assert_eq!(parse_der_signature(&der), Some(([0x80; 32], one)));
        let mut signature = [0; 64];
        signature[31] = 1;
        signature[32..].copy_from_slice(&n_minus_one);
        assert_eq!(
            parse_der_signature(&low_s_der(&signature)),
            Some((one, one))
        );
    }

    #[test]
    fn spki_is_p256_uncompressed() {
        let key = rustcrypto::RustCrypto::signing_key_from_scalar(&[0x11; 32]).unwrap();
        let sec1 = rustcrypto::RustCrypto::signing_key_public(&key);
        assert_eq!(spki_der(&sec1), rustcrypto::spki_der_by_p256(&sec1));
    }

    #[test]
    fn rustcrypto_passes_the_rfc_9180_known_answers() {
        rfc9180_known_answers::<rustcrypto::RustCrypto>();
    }

    #[test]
    fn rustcrypto_passes_hkdf_and_aes_gcm_known_answers() {
        hkdf_and_aes_gcm_known_answers::<rustcrypto::RustCrypto>();
    }

    #[test]
    fn rustcrypto_ecdsa_properties() {
        ecdsa_properties::<rustcrypto::RustCrypto>();
    }

    /// `A` seals to a key pair of `B`, which opens and answers; exports agree.
    fn hpke_interop<A: Backend, B: Backend>() {
        let (sk_r, pk_r) = B::kem_derive_key_pair(&random::<32>());
        let info = random::<58>();
        let (enc, mut sender) = A::setup_sender(&pk_r, &info, &random()).unwrap();
        let mut receiver = B::setup_receiver(&sk_r, &enc, &info).unwrap();
        for (i, message) in [&b""[..], b"first", &[7; 1000]].iter().enumerate() {
            let aad = [i as u8];
            let ct = sender.seal(message, &aad).unwrap();
            assert_eq!(receiver.open(&ct, &aad).unwrap(), *message);
        }
        let (mut a, mut b) = ([0; 32], [1; 32]);
        sender.export(b"wasm-hv/v1 response", &mut a).unwrap();
        receiver.export(b"wasm-hv/v1 response", &mut b).unwrap();
        assert_eq!(a, b);
        // The same derived keys on both sides.
        let ikm = random::<32>();
        assert_eq!(
            A::kem_derive_key_pair(&ikm).1,
            B::kem_derive_key_pair(&ikm).1
        );
        // A wrong `info` does not open.
        let (enc, mut sender) = A::setup_sender(&pk_r, &info, &random()).unwrap();
        let ct = sender.seal(b"m", b"").unwrap();
        let mut wrong = B::setup_receiver(&sk_r, &enc, b"other").unwrap();
        assert!(wrong.open(&ct, b"").is_err());
    }

    /// `A` signs (low-S after normalization), `B` verifies; the same scalar gives the same
    /// public key on both; HKDF and AES-GCM agree.
    fn signature_and_symmetric_interop<A: Backend, B: Backend>() {
        for _ in 0..8 {
            let scalar = random::<32>();
            let Some(key) = A::signing_key_from_scalar(&scalar) else {
                continue;
            };
            let public = A::signing_key_public(&key);
            let twin = B::signing_key_from_scalar(&scalar).unwrap();
            assert_eq!(B::signing_key_public(&twin), public);
            let message = random::<40>();
            let der = low_s_der(&A::sign_fixed(&key, &message));
            assert!(is_low_s(&parse_der_signature(&der).unwrap().1));
            assert!(B::verify_der(&public, &message, &der));
            assert!(A::verify_der(&public, &message, &der));
            assert!(!B::verify_der(&public, b"other", &der));
        }
        let (salt, ikm) = (random::<97>(), random::<32>());
        let (mut a, mut b) = ([0; 44], [0; 44]);
        let (a_key, a_nonce) = a.split_at_mut(32);
        A::hkdf_sha256(&salt, &ikm, &mut [(b"key", a_key), (b"nonce", a_nonce)]);
        let (b_key, b_nonce) = b.split_at_mut(32);
        B::hkdf_sha256(&salt, &ikm, &mut [(b"key", b_key), (b"nonce", b_nonce)]);
        assert_eq!(a, b);
        let (key, nonce) = (random::<32>(), random::<12>());
        let ct = A::aes256gcm_seal(&key, &nonce, b"aad", b"plaintext");
        assert_eq!(
            B::aes256gcm_open(&key, &nonce, b"aad", &ct).unwrap(),
            b"plaintext"
        );
    }

    #[test]
    fn rustcrypto_round_trips_with_itself() {
        hpke_interop::<rustcrypto::RustCrypto, rustcrypto::RustCrypto>();
        signature_and_symmetric_interop::<rustcrypto::RustCrypto, rustcrypto::RustCrypto>();
    }

    /// µs per operation, for comparing backends by hand: `cargo test --release -p
    /// wasm-hypervisor-protocol --features aws-lc --lib -- --ignored --nocapture timings`.
    pub(crate) fn print_timings<B: Backend>(name: &str) {
        fn time(label: &str, name: &str, mut op: impl FnMut(u32)) {
            let runs = 300;
            op(0);
            let start = std::time::Instant::now();
            for i in 0..runs {
                op(i);
            }
            let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
            println!("{name:>10} {label:<28} {micros:8.1} µs/op");
        }
        let (sk_r, pk_r) = B::kem_derive_key_pair(&[1; 32]);
        let key = B::signing_key_from_scalar(&[0x11; 32]).unwrap();
        let public = B::signing_key_public(&key);
        let der = low_s_der(&B::sign_fixed(&key, b"message"));
        time("keygen (DeriveKeyPair)", name, |i| {
            std::hint::black_box(B::kem_derive_key_pair(&i.to_be_bytes()));
        });
        time("SetupBaseS (keygen + ECDH)", name, |i| {
            let ikm = [i as u8; 32];
            std::hint::black_box(B::setup_sender(&pk_r, b"info", &ikm).unwrap());
        });
        let (enc, _) = B::setup_sender(&pk_r, b"info", &[9; 32]).unwrap();
        time("SetupBaseR (ECDH)", name, |_| {
            std::hint::black_box(B::setup_receiver(&sk_r, &enc, b"info").unwrap());
        });
        time("ECDSA sign (low-S DER)", name, |_| {
            std::hint::black_box(low_s_der(&B::sign_fixed(&key, b"message")));
        });
        time("ECDSA verify", name, |_| {
            assert!(B::verify_der(&public, b"message", &der));
        });
    }

    #[test]
    #[ignore = "timings, not a check: run by hand in release"]
    fn timings() {
        print_timings::<rustcrypto::RustCrypto>("RustCrypto");
        #[cfg(feature = "aws-lc")]
        print_timings::<awslc::AwsLc>("aws-lc");
    }

    #[cfg(feature = "aws-lc")]
    mod awslc_backend {
        use super::super::awslc::AwsLc;
        use super::super::rustcrypto::RustCrypto;
        use super::*;

        #[test]
        fn awslc_passes_the_rfc_9180_known_answers() {
            rfc9180_known_answers::<AwsLc>();
        }

        #[test]
        fn awslc_passes_hkdf_and_aes_gcm_known_answers() {
            hkdf_and_aes_gcm_known_answers::<AwsLc>();
        }

        #[test]
        fn awslc_ecdsa_properties() {
            ecdsa_properties::<AwsLc>();
        }

        #[test]
        fn awslc_signs_hedged_so_tests_verify_rather_than_compare() {
            let key = AwsLc::signing_key_from_scalar(&[0x11; 32]).unwrap();
            let (a, b) = (AwsLc::sign_fixed(&key, b"m"), AwsLc::sign_fixed(&key, b"m"));
            assert_ne!(a, b, "hedged nonces: two signatures of one message differ");
        }

        /// With `fips`, aws-lc-rs runs on the FIPS module (scripts/check-fips).
        #[cfg(feature = "fips")]
        #[test]
        fn the_fips_module_is_in_use() {
            aws_lc_rs::try_fips_mode().expect("aws-lc-rs built on the FIPS module");
        }

        #[test]
        fn hpke_interoperates_both_ways() {
            hpke_interop::<RustCrypto, AwsLc>();
            hpke_interop::<AwsLc, RustCrypto>();
        }

        #[test]
        fn signatures_and_symmetric_crypto_interoperate_both_ways() {
            signature_and_symmetric_interop::<RustCrypto, AwsLc>();
            signature_and_symmetric_interop::<AwsLc, RustCrypto>();
        }
    }
}
