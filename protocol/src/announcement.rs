//! The signed session key announcement (§3): the 205-byte TBS, its signature, and the checks a
//! client makes before it seals anything to the announced key.

use crate::Error;
use crate::commitment::{Digest, h3};
use crate::crypto::{Active, Backend as _};
use crate::identity::{IdentityKey, IdentityPublicKey, SEC1_LEN};
use crate::sealing::{self, KEY_CONFIG_LEN};

pub(crate) const VERSION: u8 = 0x01;
/// The length of a TBS (§3).
pub const TBS_LEN: usize = 205;
/// How far a client lets the server's clock run behind its own when checking `expires_at`.
pub(crate) const MAX_CLOCK_SKEW_SECS: u64 = 30;

const SIGNATURE_LABEL: &[u8] = b"wasm-hv/v1 session-key";

/// The fields of a TBS. The key config is always this protocol's suite, so only `pkR` is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The session's UUID bytes, RFC 9562 order.
    pub session_id: [u8; 16],
    /// Unix seconds; the guest's realtime clock starts here.
    pub issued_at: u64,
    /// Unix seconds after which the session can no longer be executed.
    pub expires_at: u64,
    /// `H3` of the client's ticket, binding the announcement to that client.
    pub client_nonce: Digest,
    /// `H3` of the identity public key that signs the announcement.
    pub identity_fpr: Digest,
    /// Commits the server to its share of the program's randomness before it sees the client's.
    pub seed_commitment: Digest,
    /// `pkR`, the session's HPKE public key, uncompressed SEC1.
    pub public_key: [u8; SEC1_LEN],
}

impl Announcement {
    /// The 205-byte TBS the identity key signs.
    pub fn to_tbs(&self) -> [u8; TBS_LEN] {
        let mut tbs = [0; TBS_LEN];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            tbs[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&[VERSION]);
        put(&self.session_id);
        put(&self.issued_at.to_be_bytes());
        put(&self.expires_at.to_be_bytes());
        put(&self.client_nonce);
        put(&self.identity_fpr);
        put(&self.seed_commitment);
        put(&(KEY_CONFIG_LEN as u16).to_be_bytes());
        put(&sealing::key_config(&self.public_key));
        tbs
    }

    /// Parses a TBS, checking its version, length, suite and that `pkR` is a valid point.
    pub fn from_tbs(tbs: &[u8]) -> Result<Self, Error> {
        let tbs: &[u8; TBS_LEN] = tbs
            .try_into()
            .map_err(|_| Error::Announcement("TBS is not 205 bytes"))?;
        if tbs[0] != VERSION {
            return Err(Error::Announcement("unsupported version"));
        }
        let key_config_len = u16::from_be_bytes([tbs[129], tbs[130]]);
        let key_config = &tbs[131..];
        let mut public_key = [0; SEC1_LEN];
        public_key.copy_from_slice(&key_config[3..68]);
        if usize::from(key_config_len) != KEY_CONFIG_LEN
            || *key_config != sealing::key_config(&public_key)
        {
            return Err(Error::Announcement(
                "key config is not this protocol's suite",
            ));
        }
        if !Active::is_valid_public_key(&public_key) {
            return Err(Error::Announcement("pkR is not a valid P-256 point"));
        }
        Ok(Self {
            session_id: field(tbs, 1),
            issued_at: u64::from_be_bytes(field(tbs, 17)),
            expires_at: u64::from_be_bytes(field(tbs, 25)),
            client_nonce: field(tbs, 33),
            identity_fpr: field(tbs, 65),
            seed_commitment: field(tbs, 97),
            public_key,
        })
    }

    /// `H3(TBS)`: how the announcement is identified, never by its signature.
    pub fn hash(&self) -> Digest {
        h3(&self.to_tbs())
    }

    /// The identity key's DER signature over the TBS, with §3's label.
    pub fn sign(&self, identity: &IdentityKey) -> Vec<u8> {
        identity.sign(&signing_input(&self.to_tbs()))
    }
}

/// The `N` bytes of a fixed-layout record at `at`.
pub(crate) fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("offsets are within the fixed layout")
}

/// `"wasm-hv/v1 session-key" ‖ 0x00 ‖ TBS`.
pub(crate) fn signing_input(tbs: &[u8]) -> Vec<u8> {
    [SIGNATURE_LABEL, &[0], tbs].concat()
}

/// What the client expects of an announcement (§3).
pub struct Expected<'a> {
    /// The pinned identity key.
    pub identity: &'a IdentityPublicKey,
    /// The client's own nonce.
    pub client_nonce: &'a Digest,
    /// The session id of the JSON response, which goes into the URL.
    pub session_id: &'a [u8; 16],
    /// The client's clock, Unix seconds.
    pub now_secs: u64,
}

/// Every check §3 asks of a client before it seals, in one place. Returns the TBS's values,
/// which the client uses rather than the JSON copies.
pub fn verify(
    tbs: &[u8],
    signature: &[u8],
    expected: &Expected<'_>,
) -> Result<Announcement, Error> {
    expected.identity.verify(&signing_input(tbs), signature)?;
    let announcement = Announcement::from_tbs(tbs)?;
    if announcement.client_nonce != *expected.client_nonce {
        return Err(Error::Announcement("client_nonce is not ours"));
    }
    if announcement.session_id != *expected.session_id {
        return Err(Error::Announcement(
            "session_id differs from the response's",
        ));
    }
    if announcement.expires_at.saturating_add(MAX_CLOCK_SKEW_SECS) <= expected.now_secs {
        return Err(Error::Announcement("expired"));
    }
    if announcement.identity_fpr != expected.identity.fingerprint() {
        return Err(Error::Announcement(
            "identity_fpr is not the pinned identity's",
        ));
    }
    Ok(announcement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commitment;
    use crate::sealing::SessionKeyPair;

    fn fixture() -> (IdentityKey, Announcement) {
        let identity = IdentityKey::from_secret_bytes(&[0x42; 32]).unwrap();
        let announcement = Announcement {
            session_id: [0xaa; 16],
            issued_at: 1_700_000_000,
            expires_at: 1_700_000_060,
            client_nonce: commitment::client_nonce(&[1; 32]),
            identity_fpr: identity.public().fingerprint(),
            seed_commitment: commitment::seed_commitment(&[2; 32]),
            public_key: *SessionKeyPair::derive(&[3; 32]).public_key(),
        };
        (identity, announcement)
    }

    fn expected<'a>(
        identity: &'a IdentityPublicKey,
        a: &'a Announcement,
        now_secs: u64,
    ) -> Expected<'a> {
        Expected {
            identity,
            client_nonce: &a.client_nonce,
            session_id: &a.session_id,
            now_secs,
        }
    }

    #[test]
    fn tbs_layout_round_trips() {
        let (_, announcement) = fixture();
        let tbs = announcement.to_tbs();
        assert_eq!(tbs[0], 1);
        assert_eq!(tbs[129..131], [0, 74]);
        assert_eq!(tbs[131..134], [0x00, 0x00, 0x10]);
        assert_eq!(tbs[199..205], [0, 4, 0, 1, 0, 2]);
        assert_eq!(Announcement::from_tbs(&tbs).unwrap(), announcement);
    }

    #[test]
    fn a_valid_announcement_verifies_and_every_check_can_fail() {
        let (identity, a) = fixture();
        let public = identity.public();
        let tbs = a.to_tbs();
        let signature = a.sign(&identity);
        verify(&tbs, &signature, &expected(&public, &a, a.issued_at)).unwrap();
        // Within the skew allowance, then past it.
        verify(&tbs, &signature, &expected(&public, &a, a.expires_at + 29)).unwrap();
        assert!(verify(&tbs, &signature, &expected(&public, &a, a.expires_at + 30)).is_err());

        let other = IdentityKey::from_secret_bytes(&[0x43; 32])
            .unwrap()
            .public();
        assert!(matches!(
            verify(&tbs, &signature, &expected(&other, &a, a.issued_at)),
            Err(Error::BadSignature)
        ));
        let mut flipped = tbs;
        flipped[40] ^= 1;
        assert!(verify(&flipped, &signature, &expected(&public, &a, a.issued_at)).is_err());

        let wrong_nonce = [0; 32];
        let e = Expected {
            client_nonce: &wrong_nonce,
            ..expected(&public, &a, a.issued_at)
        };
        assert!(verify(&tbs, &signature, &e).is_err());
        let wrong_id = [0xbb; 16];
        let e = Expected {
            session_id: &wrong_id,
            ..expected(&public, &a, a.issued_at)
        };
        assert!(verify(&tbs, &signature, &e).is_err());
    }

    #[test]
    fn signed_but_malformed_tbs_is_rejected() {
        let (identity, a) = fixture();
        let public = identity.public();
        let mut cases = Vec::new();
        let mut version = a.to_tbs();
        version[0] = 2;
        cases.push(version.to_vec());
        let mut suite = a.to_tbs();
        suite[204] = 1; // AES-128-GCM
        cases.push(suite.to_vec());
        let mut point = a.to_tbs();
        point[140] ^= 1; // pkR off the curve
        cases.push(point.to_vec());
        let mut fpr = a.clone();
        fpr.identity_fpr = [0; 32];
        cases.push(fpr.to_tbs().to_vec());
        cases.push(a.to_tbs()[..204].to_vec());
        for tbs in cases {
            let signature = identity.sign(&signing_input(&tbs));
            assert!(verify(&tbs, &signature, &expected(&public, &a, a.issued_at)).is_err());
        }
    }
}
