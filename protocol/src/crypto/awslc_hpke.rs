//! HPKE base mode (RFC 9180) for the one suite DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM, over aws-lc-rs's ECDH, HMAC/HKDF and AES-GCM.
//!
//! Why it is written here rather than taken from a crate: no well-kept HPKE implementation runs
//! on aws-lc-rs with what this protocol needs. rustls's HPKE over aws-lc-rs has no exporter
//! (the response key is `Export("wasm-hv/v1 response", 32)`, PROTOCOL.md §5.3); hpke-rs's
//! RustCrypto provider pulls an older RustCrypto generation, and putting its core on a provider
//! written here would leave as much code here as this module, plus a second HPKE dependency;
//! ring cannot import an ECDH private key, so it could not even run the RFC 9180 known
//! answers. aws-lc-rs can (`agreement::PrivateKey::from_private_key`), so this module is only
//! the RFC's key schedule and DHKEM over it; every primitive underneath is aws-lc's.
//!
//! What checks it: every value of `protocol/testdata/rfc9180-p256-sha256-aes256gcm.json` (skR
//! and pkR from ikmR by `DeriveKeyPair`; `enc` and `shared_secret` from ikmE; `key`,
//! `base_nonce` and `exporter_secret`; each ciphertext sealed and opened in sequence; each
//! export on both sides), here and through the backend trait (`super::tests`), and interop both
//! ways with rust-hpke (`super::tests`).
//!
//! Only what base mode with this suite needs is here: no PSK or auth modes, no other suite.
//! Extract is HMAC-SHA256 (RFC 5869's definition, `hmac::sign`) because the key schedule needs
//! the bytes of `psk_id_hash` and `info_hash`, which aws-lc-rs's `hkdf::Prk` does not show;
//! Expand is aws-lc-rs's HKDF-Expand.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};
use aws_lc_rs::agreement::{self, ECDH_P256, UnparsedPublicKey};
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

use super::awslc::{Len, aes_key, ecdh_private_key};
use super::{Failure, ReceiverContext, SEC1_LEN, SenderContext};

const KEM_SUITE_ID: [u8; 5] = *b"KEM\x00\x10";
const HPKE_SUITE_ID: [u8; 10] = *b"HPKE\x00\x10\x00\x01\x00\x02";
const VERSION_LABEL: &[u8] = b"HPKE-v1";
/// `Nh` of HKDF-SHA256, `Nsecret` of the KEM, `Nk` of AES-256-GCM.
const HASH_LEN: usize = 32;
/// `Nn` of AES-256-GCM.
const NONCE_LEN: usize = 12;

/// `LabeledExtract(salt, label, ikm)`: HMAC-SHA256 keyed with `salt` (an empty salt is the
/// all-zero key of RFC 5869, which HMAC pads to anyway).
fn labeled_extract(
    suite_id: &[u8],
    salt: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> Zeroizing<[u8; HASH_LEN]> {
    let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, salt));
    for part in [VERSION_LABEL, suite_id, label, ikm] {
        context.update(part);
    }
    let mut out = Zeroizing::new([0; HASH_LEN]);
    out.copy_from_slice(context.sign().as_ref());
    out
}

/// `LabeledExpand(prk, label, info, out.len())`.
fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8; HASH_LEN],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), Failure> {
    let len = u16::try_from(out.len()).map_err(|_| Failure)?.to_be_bytes();
    hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk)
        .expand(
            &[&len, VERSION_LABEL, suite_id, label, info],
            Len(out.len()),
        )
        .and_then(|okm| okm.fill(out))
        .map_err(|_| Failure)
}

/// A DHKEM(P-256) private key and its public key `pkRm` (the KEM context needs it).
pub(crate) struct KemPrivateKey {
    private: agreement::PrivateKey,
    public: [u8; SEC1_LEN],
    #[cfg(test)]
    scalar: Zeroizing<[u8; 32]>,
}

impl KemPrivateKey {
    #[cfg(test)]
    pub(crate) fn scalar(&self) -> Zeroizing<[u8; 32]> {
        self.scalar.clone()
    }
}

/// RFC 9180 §7.1.3 `DeriveKeyPair` for P-256 (bitmask 0xff).
pub(crate) fn derive_key_pair(ikm: &[u8]) -> (KemPrivateKey, [u8; SEC1_LEN]) {
    let dkp_prk = labeled_extract(&KEM_SUITE_ID, b"", b"dkp_prk", ikm);
    for counter in 0..=255u8 {
        let mut candidate = Zeroizing::new([0; 32]);
        labeled_expand(
            &KEM_SUITE_ID,
            &dkp_prk,
            b"candidate",
            &[counter],
            candidate.as_mut(),
        )
        .expect("32 bytes is a valid expand length");
        if let Some((private, public)) = ecdh_private_key(&candidate) {
            let key = KemPrivateKey {
                private,
                public,
                #[cfg(test)]
                scalar: candidate,
            };
            return (key, public);
        }
    }
    // Each candidate is out of range with probability below 2^-32.
    unreachable!("DeriveKeyPair found no scalar in 256 candidates")
}

/// `ExtractAndExpand(dh, kem_context)` with `kem_context = enc ‖ pkRm`.
fn shared_secret(
    dh: &[u8],
    enc: &[u8; SEC1_LEN],
    pk_r: &[u8; SEC1_LEN],
) -> Zeroizing<[u8; HASH_LEN]> {
    let eae_prk = labeled_extract(&KEM_SUITE_ID, b"", b"eae_prk", dh);
    let kem_context = [enc.as_slice(), pk_r].concat();
    let mut out = Zeroizing::new([0; HASH_LEN]);
    labeled_expand(
        &KEM_SUITE_ID,
        &eae_prk,
        b"shared_secret",
        &kem_context,
        out.as_mut(),
    )
    .expect("32 bytes is a valid expand length");
    out
}

/// `DH(sk, pk)`: the x-coordinate of the shared point. Fails if `pk` is not a valid point.
fn dh(
    private: &agreement::PrivateKey,
    public: &[u8],
) -> Result<Zeroizing<[u8; HASH_LEN]>, Failure> {
    if public.len() != SEC1_LEN || public[0] != 0x04 {
        return Err(Failure);
    }
    agreement::agree(
        private,
        UnparsedPublicKey::new(&ECDH_P256, public),
        Failure,
        |x| {
            let mut out = Zeroizing::new([0; HASH_LEN]);
            out.copy_from_slice(x);
            Ok(out)
        },
    )
}

/// `Encap(pkR)` with the ephemeral key `DeriveKeyPair(ikm_e)`: `(shared_secret, enc)`.
fn encap(
    pk_r: &[u8],
    ikm_e: &[u8; 32],
) -> Result<(Zeroizing<[u8; HASH_LEN]>, [u8; SEC1_LEN]), Failure> {
    let (sk_e, enc) = derive_key_pair(ikm_e);
    let dh = dh(&sk_e.private, pk_r)?;
    let pk_r = pk_r.try_into().map_err(|_| Failure)?;
    Ok((shared_secret(dh.as_ref(), &enc, pk_r), enc))
}

/// `Decap(enc, skR)`.
fn decap(enc: &[u8], sk_r: &KemPrivateKey) -> Result<Zeroizing<[u8; HASH_LEN]>, Failure> {
    let dh = dh(&sk_r.private, enc)?;
    let enc = enc.try_into().map_err(|_| Failure)?;
    Ok(shared_secret(dh.as_ref(), enc, &sk_r.public))
}

/// The key schedule's outputs (RFC 9180 §5.1, base mode).
struct Schedule {
    key: Zeroizing<[u8; HASH_LEN]>,
    base_nonce: [u8; NONCE_LEN],
    exporter_secret: Zeroizing<[u8; HASH_LEN]>,
}

/// `KeySchedule(mode_base, shared_secret, info, psk = "", psk_id = "")`.
fn key_schedule(shared_secret: &[u8], info: &[u8]) -> Schedule {
    let psk_id_hash = labeled_extract(&HPKE_SUITE_ID, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&HPKE_SUITE_ID, b"", b"info_hash", info);
    let mut context = [0; 1 + 2 * HASH_LEN];
    context[1..1 + HASH_LEN].copy_from_slice(psk_id_hash.as_ref());
    context[1 + HASH_LEN..].copy_from_slice(info_hash.as_ref());
    let secret = labeled_extract(&HPKE_SUITE_ID, shared_secret, b"secret", b"");
    let mut schedule = Schedule {
        key: Zeroizing::new([0; HASH_LEN]),
        base_nonce: [0; NONCE_LEN],
        exporter_secret: Zeroizing::new([0; HASH_LEN]),
    };
    for (label, out) in [
        (&b"key"[..], schedule.key.as_mut_slice()),
        (b"base_nonce", &mut schedule.base_nonce),
        (b"exp", schedule.exporter_secret.as_mut_slice()),
    ] {
        labeled_expand(&HPKE_SUITE_ID, &secret, label, &context, out)
            .expect("12 and 32 bytes are valid expand lengths");
    }
    schedule
}

/// The state of either side: the AEAD key, `base_nonce`, the sequence number and
/// `exporter_secret`.
struct Context {
    key: LessSafeKey,
    base_nonce: [u8; NONCE_LEN],
    seq: u64,
    exporter_secret: Zeroizing<[u8; HASH_LEN]>,
}

impl Context {
    fn new(schedule: &Schedule) -> Self {
        Self {
            key: aes_key(&schedule.key),
            base_nonce: schedule.base_nonce,
            seq: 0,
            exporter_secret: schedule.exporter_secret.clone(),
        }
    }

    /// `ComputeNonce(seq)`; fails once the sequence number is exhausted (at 2^64 - 1 here, long
    /// before the RFC's 2^96 - 1).
    fn next_nonce(&mut self) -> Result<Nonce, Failure> {
        let next = self.seq.checked_add(1).ok_or(Failure)?;
        let mut nonce = self.base_nonce;
        for (byte, seq) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *byte ^= seq;
        }
        self.seq = next;
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Failure> {
        labeled_expand(
            &HPKE_SUITE_ID,
            &self.exporter_secret,
            b"sec",
            exporter_context,
            out,
        )
    }
}

/// The sender's context (`SetupBaseS`).
pub(crate) struct Sender(Context);

/// The receiver's context (`SetupBaseR`).
pub(crate) struct Receiver(Context);

/// `SetupBaseS(pkR, info)` with `DeriveKeyPair(ikm_e)` as the ephemeral key.
pub(crate) fn setup_sender(
    pk_r: &[u8],
    info: &[u8],
    ikm_e: &[u8; 32],
) -> Result<([u8; SEC1_LEN], Sender), Failure> {
    let (shared_secret, enc) = encap(pk_r, ikm_e)?;
    let schedule = key_schedule(shared_secret.as_ref(), info);
    Ok((enc, Sender(Context::new(&schedule))))
}

/// `SetupBaseR(enc, skR, info)`.
pub(crate) fn setup_receiver(
    sk_r: &KemPrivateKey,
    enc: &[u8],
    info: &[u8],
) -> Result<Receiver, Failure> {
    let shared_secret = decap(enc, sk_r)?;
    let schedule = key_schedule(shared_secret.as_ref(), info);
    Ok(Receiver(Context::new(&schedule)))
}

impl SenderContext for Sender {
    fn seal(&mut self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Failure> {
        let nonce = self.0.next_nonce()?;
        let mut in_out = plaintext.to_vec();
        self.0
            .key
            .seal_in_place_append_tag(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| Failure)?;
        Ok(in_out)
    }

    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Failure> {
        self.0.export(exporter_context, out)
    }
}

impl ReceiverContext for Receiver {
    /// A failed open does not advance the sequence number (RFC 9180 §5.2).
    fn open(&mut self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Failure> {
        let seq = self.0.seq;
        let nonce = self.0.next_nonce()?;
        let mut in_out = ciphertext.to_vec();
        match self.0.key.open_in_place(nonce, Aad::from(aad), &mut in_out) {
            Ok(plaintext) => {
                let len = plaintext.len();
                in_out.truncate(len);
                Ok(in_out)
            }
            Err(_) => {
                self.0.seq = seq;
                Err(Failure)
            }
        }
    }

    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), Failure> {
        self.0.export(exporter_context, out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{field, rfc9180_vectors};
    use super::*;

    /// Every value of the RFC 9180 file, the intermediate ones included, on this module.
    #[test]
    fn reproduces_every_rfc_9180_known_answer() {
        let v = rfc9180_vectors();
        let info = field(&v, "info");
        let (sk_r, pk_r) = derive_key_pair(&field(&v, "ikmR"));
        assert_eq!(sk_r.scalar().to_vec(), field(&v, "skRm"));
        assert_eq!(pk_r.to_vec(), field(&v, "pkRm"));
        assert_eq!(sk_r.public, pk_r);

        let ikm_e: [u8; 32] = field(&v, "ikmE").try_into().unwrap();
        let (shared, enc) = encap(&pk_r, &ikm_e).unwrap();
        assert_eq!(enc.to_vec(), field(&v, "enc"));
        assert_eq!(shared.to_vec(), field(&v, "shared_secret"));
        assert_eq!(*decap(&enc, &sk_r).unwrap(), *shared);

        let schedule = key_schedule(shared.as_ref(), &info);
        assert_eq!(schedule.key.to_vec(), field(&v, "key"));
        assert_eq!(schedule.base_nonce.to_vec(), field(&v, "base_nonce"));
        assert_eq!(
            schedule.exporter_secret.to_vec(),
            field(&v, "exporter_secret")
        );

        let (enc_s, mut sender) = setup_sender(&pk_r, &info, &ikm_e).unwrap();
        assert_eq!(enc_s, enc);
        let mut receiver = setup_receiver(&sk_r, &enc, &info).unwrap();
        for (i, encryption) in v["encryptions"].as_array().unwrap().iter().enumerate() {
            let (aad, pt, ct) = (
                field(encryption, "aad"),
                field(encryption, "pt"),
                field(encryption, "ct"),
            );
            assert_eq!(sender.seal(&pt, &aad).unwrap(), ct, "encryption {i}");
            // A failed open leaves the sequence number where it was.
            assert!(receiver.open(&ct, b"wrong aad").is_err());
            assert_eq!(receiver.open(&ct, &aad).unwrap(), pt, "encryption {i}");
        }
        for export in v["exports"].as_array().unwrap() {
            let mut out = vec![0; export["L"].as_u64().unwrap() as usize];
            let context = field(export, "exporter_context");
            sender.export(&context, &mut out).unwrap();
            assert_eq!(out, field(export, "exported_value"));
            out.fill(0);
            receiver.export(&context, &mut out).unwrap();
            assert_eq!(out, field(export, "exported_value"));
        }
    }

    #[test]
    fn nonces_follow_the_sequence_number() {
        let (sk_r, pk_r) = derive_key_pair(&[1; 32]);
        let (enc, mut sender) = setup_sender(&pk_r, b"", &[2; 32]).unwrap();
        let mut receiver = setup_receiver(&sk_r, &enc, b"").unwrap();
        let first = sender.seal(b"m", b"").unwrap();
        let second = sender.seal(b"m", b"").unwrap();
        assert_ne!(first, second);
        // Out of order does not open.
        assert!(receiver.open(&second, b"").is_err());
        assert_eq!(receiver.open(&first, b"").unwrap(), b"m");
        assert_eq!(receiver.open(&second, b"").unwrap(), b"m");
        sender.0.seq = u64::MAX;
        assert!(sender.seal(b"m", b"").is_err());
    }

    #[test]
    fn invalid_points_are_refused() {
        let (sk_r, mut pk_r) = derive_key_pair(&[1; 32]);
        pk_r[64] ^= 1;
        assert!(setup_sender(&pk_r, b"", &[2; 32]).is_err());
        assert!(setup_receiver(&sk_r, &pk_r, b"").is_err());
        assert!(setup_receiver(&sk_r, &pk_r[..33], b"").is_err());
        assert!(setup_sender(&[0; 65], b"", &[2; 32]).is_err());
    }
}
