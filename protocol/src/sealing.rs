//! HPKE sealing of requests and responses (§4, §5): the suite, the session key pair, the key
//! config, `info`, and the RFC 9458 §4.4-style response encryption.

use zeroize::Zeroizing;

use crate::Error;
use crate::commitment::Digest;
use crate::crypto::{Active, Backend as _, ReceiverContext, SenderContext};
use crate::identity::SEC1_LEN;

pub(crate) const KEM_ID: u16 = 0x0010;
pub(crate) const KDF_ID: u16 = 0x0001;
pub(crate) const AEAD_ID: u16 = 0x0002;
/// The only key config ID this protocol uses.
pub(crate) const KEY_ID: u8 = 0x00;

/// `hdr = key_id u8 ‖ kem_id u16 ‖ kdf_id u16 ‖ aead_id u16`.
pub const HEADER: [u8; 7] = [KEY_ID, 0x00, 0x10, 0x00, 0x01, 0x00, 0x02];
/// Length of `enc`, an uncompressed SEC1 point.
pub(crate) const ENC_LEN: usize = SEC1_LEN;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// The shortest well-formed `enc_request`: header, `enc` and the tag of an empty plaintext.
pub const MIN_REQUEST_LEN: usize = HEADER.len() + ENC_LEN + TAG_LEN;
/// An `enc_request` whose framing is checked (§4): long enough for `hdr ‖ enc ‖` a tag, with the
/// header of this protocol's one key config. Whether it opens is for the session's key to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRequest(Vec<u8>);

/// Why bytes are not a sealed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Shorter than a header, an `enc` and an AEAD tag.
    #[error("body is shorter than a sealed request")]
    TooShort,
    /// The first 7 bytes are not the session's key config's header.
    #[error("header differs from the session's key config")]
    WrongHeader,
}

impl SealedRequest {
    /// Checks the framing of `bytes`.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, FramingError> {
        if bytes.len() < MIN_REQUEST_LEN {
            return Err(FramingError::TooShort);
        }
        if bytes[..HEADER.len()] != HEADER {
            return Err(FramingError::WrongHeader);
        }
        Ok(Self(bytes))
    }

    /// The bytes as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as received, taken out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Length of the RFC 9458 §3.1 key config published in the TBS.
pub(crate) const KEY_CONFIG_LEN: usize = 74;
/// `response_nonce` length: max(Nn, Nk) of AES-256-GCM.
pub const RESPONSE_NONCE_LEN: usize = 32;

const REQUEST_LABEL: &[u8] = b"wasm-hv/v1 request";
const RESPONSE_LABEL: &[u8] = b"wasm-hv/v1 response";

/// RFC 9458 §3.1 key config for `pk_r`: key_id ‖ kem_id ‖ pkR ‖ sym_len (4) ‖ kdf_id ‖ aead_id.
pub(crate) fn key_config(pk_r: &[u8; SEC1_LEN]) -> [u8; KEY_CONFIG_LEN] {
    let mut out = [0; KEY_CONFIG_LEN];
    out[0] = KEY_ID;
    out[1..3].copy_from_slice(&KEM_ID.to_be_bytes());
    out[3..68].copy_from_slice(pk_r);
    out[68..70].copy_from_slice(&4u16.to_be_bytes());
    out[70..72].copy_from_slice(&KDF_ID.to_be_bytes());
    out[72..74].copy_from_slice(&AEAD_ID.to_be_bytes());
    out
}

/// `info = "wasm-hv/v1 request" ‖ 0x00 ‖ hdr ‖ announcement_hash` (58 bytes).
pub(crate) fn request_info(announcement_hash: &Digest) -> [u8; 58] {
    let mut info = [0; 58];
    info[..18].copy_from_slice(REQUEST_LABEL);
    info[19..26].copy_from_slice(&HEADER);
    info[26..].copy_from_slice(announcement_hash);
    info
}

/// A session's HPKE key pair. The private key zeroizes itself when dropped.
pub struct SessionKeyPair {
    private: <Active as crate::crypto::Backend>::KemPrivateKey,
    public: [u8; SEC1_LEN],
}

impl SessionKeyPair {
    #[cfg(test)]
    pub(crate) fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut ikm = Zeroizing::new([0; 32]);
        rng.fill_bytes(ikm.as_mut());
        Self::derive(ikm.as_ref())
    }

    /// RFC 9180 `DeriveKeyPair`, for known-answer tests.
    pub fn derive(ikm: &[u8]) -> Self {
        let (private, public) = Active::kem_derive_key_pair(ikm);
        Self { private, public }
    }

    /// `pkR`, uncompressed SEC1.
    pub fn public_key(&self) -> &[u8; SEC1_LEN] {
        &self.public
    }

    /// Opens `enc_request` (header already checked by the caller or not: it is checked again)
    /// and returns the plaintext and the key for the response. Every failure is the same opaque
    /// [`Error::Unseal`].
    pub fn open_request(
        &self,
        announcement_hash: &Digest,
        enc_request: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, ResponseKey), Error> {
        if enc_request.len() < MIN_REQUEST_LEN || enc_request[..HEADER.len()] != HEADER {
            return Err(Error::Unseal);
        }
        let (enc, ciphertext) = enc_request[HEADER.len()..].split_at(ENC_LEN);
        let mut context =
            Active::setup_receiver(&self.private, enc, &request_info(announcement_hash))
                .map_err(|_| Error::Unseal)?;
        let plaintext =
            ReceiverContext::open(&mut context, ciphertext, b"").map_err(|_| Error::Unseal)?;
        let response_key = ResponseKey::export(enc, |label, out| {
            ReceiverContext::export(&context, label, out)
        })?;
        Ok((Zeroizing::new(plaintext), response_key))
    }
}

/// Seals a request payload to `pk_r` (the client side of §4). Returns `enc_request` and the key
/// that opens the response. The ephemeral key is `DeriveKeyPair` of 32 bytes drawn from `rng`
/// (RFC 9180 §7.1.3), so the known answers can replay `ikmE` as the randomness.
pub fn seal_request(
    pk_r: &[u8],
    announcement_hash: &Digest,
    payload: &[u8],
    rng: &mut impl rand_core::CryptoRng,
) -> Result<(Vec<u8>, ResponseKey), Error> {
    let pk_r: &[u8; SEC1_LEN] = pk_r.try_into().map_err(|_| Error::InvalidKey)?;
    if !Active::is_valid_public_key(pk_r) {
        return Err(Error::InvalidKey);
    }
    let mut ikm_e = Zeroizing::new([0; 32]);
    rng.fill_bytes(ikm_e.as_mut());
    let (enc, mut context) = Active::setup_sender(pk_r, &request_info(announcement_hash), &ikm_e)
        .map_err(|_| Error::Seal)?;
    let ciphertext = SenderContext::seal(&mut context, payload, b"").map_err(|_| Error::Seal)?;
    let mut enc_request = Vec::with_capacity(HEADER.len() + ENC_LEN + ciphertext.len());
    enc_request.extend_from_slice(&HEADER);
    enc_request.extend_from_slice(&enc);
    enc_request.extend_from_slice(&ciphertext);
    let response_key = ResponseKey::export(&enc, |label, out| {
        SenderContext::export(&context, label, out)
    })?;
    Ok((enc_request, response_key))
}

/// The response key of one request: `secret = Export("wasm-hv/v1 response", 32)` and the
/// request's `enc`, which salts the response key derivation (§5).
pub struct ResponseKey {
    secret: Zeroizing<[u8; 32]>,
    enc: [u8; ENC_LEN],
}

impl ResponseKey {
    fn export(
        enc: &[u8],
        export: impl FnOnce(&[u8], &mut [u8]) -> Result<(), crate::crypto::Failure>,
    ) -> Result<Self, Error> {
        let mut secret = Zeroizing::new([0; 32]);
        export(RESPONSE_LABEL, secret.as_mut()).map_err(|_| Error::Unseal)?;
        let enc = enc.try_into().map_err(|_| Error::Unseal)?;
        Ok(Self { secret, enc })
    }

    /// `(key, nonce)` for one `response_nonce`.
    fn aead(&self, response_nonce: &[u8; RESPONSE_NONCE_LEN]) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
        let mut salt = [0; ENC_LEN + RESPONSE_NONCE_LEN];
        salt[..ENC_LEN].copy_from_slice(&self.enc);
        salt[ENC_LEN..].copy_from_slice(response_nonce);
        let mut key = Zeroizing::new([0; 32]);
        let mut nonce = [0; 12];
        Active::hkdf_sha256(
            &salt,
            self.secret.as_ref(),
            &mut [(b"key", key.as_mut()), (b"nonce", &mut nonce)],
        );
        (key, nonce)
    }

    /// `enc_response = response_nonce ‖ AES-256-GCM(key, nonce, "", result payload)`.
    pub fn seal(
        &self,
        result_payload: &[u8],
        response_nonce: &[u8; RESPONSE_NONCE_LEN],
    ) -> Result<Vec<u8>, Error> {
        let (key, nonce) = self.aead(response_nonce);
        let ciphertext = Active::aes256gcm_seal(&key, &nonce, b"", result_payload);
        let mut out = Vec::with_capacity(RESPONSE_NONCE_LEN + ciphertext.len());
        out.extend_from_slice(response_nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens `enc_response`; every failure is the same opaque [`Error::Unseal`].
    pub fn open(&self, enc_response: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        if enc_response.len() < RESPONSE_NONCE_LEN + TAG_LEN {
            return Err(Error::Unseal);
        }
        let (response_nonce, ciphertext) = enc_response.split_at(RESPONSE_NONCE_LEN);
        let response_nonce = response_nonce.try_into().map_err(|_| Error::Unseal)?;
        let (key, nonce) = self.aead(response_nonce);
        Active::aes256gcm_open(&key, &nonce, b"", ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| Error::Unseal)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Replays fixed bytes as randomness, so `SetupBaseS` uses the vector's `ikmE`.
    pub(crate) struct ReplayRng(pub(crate) Vec<u8>);

    impl rand_core::TryRng for ReplayRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            unimplemented!("hpke only fills byte buffers")
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            unimplemented!("hpke only fills byte buffers")
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
            assert!(dest.len() <= self.0.len(), "ran out of replayed randomness");
            let rest = self.0.split_off(dest.len());
            dest.copy_from_slice(&self.0);
            self.0 = rest;
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for ReplayRng {}

    /// The known answers through the public API of this module on the active backend (the
    /// backends' own tests check the intermediate values): skR/pkR from ikmR, `enc_request`
    /// from ikmE, the first encryption as the request's ciphertext, and the first export
    /// through the response key.
    #[test]
    fn seals_and_opens_the_rfc_9180_known_answers() {
        use crate::crypto::tests::{field, rfc9180_vectors};
        let v = rfc9180_vectors();
        let receiver = SessionKeyPair::derive(&field(&v, "ikmR"));
        assert_eq!(receiver.public_key().to_vec(), field(&v, "pkRm"));
        let pk_r = receiver.public_key();
        let info = field(&v, "info");
        let (enc, mut sender) =
            Active::setup_sender(pk_r, &info, &field(&v, "ikmE").try_into().unwrap()).unwrap();
        assert_eq!(enc.to_vec(), field(&v, "enc"));
        let mut receiver_context = Active::setup_receiver(&receiver.private, &enc, &info).unwrap();
        let first = &v["encryptions"][0];
        let ct =
            SenderContext::seal(&mut sender, &field(first, "pt"), &field(first, "aad")).unwrap();
        assert_eq!(ct, field(first, "ct"));
        assert_eq!(
            ReceiverContext::open(&mut receiver_context, &ct, &field(first, "aad")).unwrap(),
            field(first, "pt")
        );
    }

    #[test]
    fn request_and_response_round_trip() {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let keys = SessionKeyPair::generate(&mut rng);
        let hash = [9; 32];
        let (enc_request, client_key) =
            seal_request(keys.public_key(), &hash, b"payload", &mut rng).unwrap();
        assert_eq!(enc_request[..7], HEADER);
        let (plaintext, server_key) = keys.open_request(&hash, &enc_request).unwrap();
        assert_eq!(*plaintext, b"payload");
        let enc_response = server_key.seal(b"result", &[5; 32]).unwrap();
        assert_eq!(*client_key.open(&enc_response).unwrap(), b"result");
    }

    #[test]
    fn any_tampering_fails_opaquely() {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let keys = SessionKeyPair::generate(&mut rng);
        let (enc_request, client_key) =
            seal_request(keys.public_key(), &[1; 32], b"p", &mut rng).unwrap();
        for i in 0..enc_request.len() {
            let mut tampered = enc_request.clone();
            tampered[i] ^= 0x01;
            assert!(
                matches!(keys.open_request(&[1; 32], &tampered), Err(Error::Unseal)),
                "byte {i}"
            );
        }
        // Bound to the announcement it was sealed to.
        assert!(matches!(
            keys.open_request(&[2; 32], &enc_request),
            Err(Error::Unseal)
        ));
        assert!(matches!(
            keys.open_request(&[1; 32], &enc_request[..MIN_REQUEST_LEN - 1]),
            Err(Error::Unseal)
        ));
        let (_, server_key) = keys.open_request(&[1; 32], &enc_request).unwrap();
        let enc_response = server_key.seal(b"r", &[0; 32]).unwrap();
        for i in 0..enc_response.len() {
            let mut tampered = enc_response.clone();
            tampered[i] ^= 0x80;
            assert!(
                matches!(client_key.open(&tampered), Err(Error::Unseal)),
                "byte {i}"
            );
        }
    }

    #[test]
    fn info_is_58_bytes_as_specified() {
        let info = request_info(&[0xab; 32]);
        assert_eq!(&info[..19], b"wasm-hv/v1 request\0");
        assert_eq!(info[19..26], HEADER);
        assert_eq!(info[26..], [0xab; 32]);
    }
}
