//! The client's checks of `docs/PROTOCOL.md`, with no transport: identity pinning (§2), the
//! announcement (§3), the sealed result and its audit proof (§5, §6), and the trusted checkpoint
//! that every later answer must extend ([`CheckpointTracker`]). A client of any transport feeds
//! it the bodies it received and trusts nothing that has not passed it.

mod result;
mod tracker;

pub use result::{AnnouncedSession, SealedRequest, VerifiedResult};
pub use tracker::{CheckpointTracker, check_consistency, consistency_needed};

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::Error;
use crate::announcement::{self, Announcement, Expected};
use crate::api::{self, SUITE};
use crate::checkpoint::{self, Checkpoint};
use crate::commitment::{self, Digest};
use crate::identity::{IdentityPublicKey, validate_origin};
use crate::leaf::Leaf;
use crate::merkle;
use crate::payload::PayloadError;
use crate::policy::{Policy, PolicyLog};

/// Why a verifier refused what it was given. Nothing refused may be trusted or shown as output.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A signature, the announcement, a sealed message or a proof did not verify.
    #[error("verification failed: {0}")]
    Protocol(#[from] Error),
    /// The opened result or its output map is not valid CBOR of §5.
    #[error("the sealed result does not decode: {0}")]
    Payload(#[from] PayloadError),
    /// The published identity is not self-consistent, or not the pinned one.
    #[error("identity refused: {0}")]
    Identity(&'static str),
    /// A §5 or §6 check of an answer failed; the text says which.
    #[error("answer refused: {0}")]
    Refused(&'static str),
    /// The log does not extend the checkpoint trusted before: it was rewritten or rolled back.
    #[error(
        "the audit log is not consistent with a checkpoint seen before ({0}): it was rewritten or rolled back"
    )]
    Inconsistent(String),
}

/// An identity as a client pins it: the origin and the key, together (§2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedIdentity {
    /// The log's and the key's name, as `GET /identity` published it.
    pub origin: String,
    /// The identity public key.
    pub key: IdentityPublicKey,
}

impl PinnedIdentity {
    /// The identity a `GET /identity` body publishes, once its fields agree with each other:
    /// a valid origin, and the SPKI, fingerprint, note verifier key and suite of its key.
    pub fn from_published(published: &api::Identity) -> Result<Self, VerifyError> {
        validate_origin(&published.origin)
            .map_err(|_| VerifyError::Identity("the origin breaks §2's rules"))?;
        let key = IdentityPublicKey::from_sec1(&published.public_key)?;
        let consistent = published.suite == SUITE
            && published.spki == key.spki_der()
            && published.fingerprint == key.fingerprint()
            && published.note_verifier_key == key.note_verifier_key(&published.origin);
        if !consistent {
            return Err(VerifyError::Identity(
                "identity fields disagree with its key",
            ));
        }
        Ok(Self {
            origin: published.origin.clone(),
            key,
        })
    }

    /// `H3(SEC1 key)`, as announcements carry it in `identity_fpr`.
    pub fn fingerprint(&self) -> Digest {
        self.key.fingerprint()
    }
}

/// A checkpoint verified against a pinned identity, with the signed note it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The verified tree head.
    pub checkpoint: Checkpoint,
    note: String,
    /// The fingerprint of the key that signed it.
    signer: Digest,
}

/// The notes [`SignedCheckpoint::verify`] passed lately, oldest first. One checkpoint covers
/// every result of its batch, so a busy client checks each many times over, and its signature
/// is a sixth of a client's work per session. That check depends on the note, the origin and
/// the key alone, so a note that passed for an identity passes again for it without the check.
struct RecentlyVerified(Mutex<VecDeque<SignedCheckpoint>>);

impl RecentlyVerified {
    /// How many notes it keeps: more than the checkpoints a client's sessions in flight are
    /// proven against at once.
    const LEN: usize = 16;

    const fn new() -> Self {
        Self(Mutex::new(VecDeque::new()))
    }

    /// `note` as verified for `pinned` before, or else as `verify` verifies it now.
    fn verify(
        &self,
        note: &str,
        pinned: &PinnedIdentity,
        verify: impl FnOnce() -> Result<Checkpoint, Error>,
    ) -> Result<SignedCheckpoint, VerifyError> {
        let signer = pinned.fingerprint();
        let seen = self
            .lock()
            .iter()
            .find(|seen| {
                seen.note == note
                    && seen.signer == signer
                    && seen.checkpoint.origin == pinned.origin
            })
            .cloned();
        if let Some(seen) = seen {
            return Ok(seen);
        }
        let verified = SignedCheckpoint {
            checkpoint: verify()?,
            note: note.to_owned(),
            signer,
        };
        let mut recent = self.lock();
        if recent.len() == Self::LEN {
            recent.pop_front();
        }
        recent.push_back(verified.clone());
        Ok(verified)
    }

    /// Nothing can leave the list half-changed, so a panic elsewhere while it was held does not
    /// make it unusable.
    fn lock(&self) -> MutexGuard<'_, VecDeque<SignedCheckpoint>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

static RECENTLY_VERIFIED: RecentlyVerified = RecentlyVerified::new();

impl SignedCheckpoint {
    /// Verifies a signed note against the pinned identity (§6.3).
    pub fn verify(note: &str, pinned: &PinnedIdentity) -> Result<Self, VerifyError> {
        RECENTLY_VERIFIED.verify(note, pinned, || {
            checkpoint::verify(note, &pinned.origin, &pinned.key)
        })
    }

    /// The signed note, byte for byte as received: what a trust store keeps.
    pub fn note(&self) -> &str {
        &self.note
    }

    /// Whether `identity` signed it.
    pub fn is_signed_by(&self, identity: &PinnedIdentity) -> bool {
        self.signer == identity.fingerprint() && self.checkpoint.origin == identity.origin
    }
}

/// The checks of one pinned identity's answers (§2, §3, §5, §6), without transport.
#[derive(Debug, Clone)]
pub struct Verifier {
    identity: PinnedIdentity,
}

impl Verifier {
    /// A verifier of the answers of the service whose identity is `identity`.
    pub fn new(identity: PinnedIdentity) -> Self {
        Self { identity }
    }

    /// The pinned identity.
    pub fn identity(&self) -> &PinnedIdentity {
        &self.identity
    }

    /// Pinning (§2): the published identity is self-consistent and exactly the pinned one.
    pub fn check_identity(&self, published: &api::Identity) -> Result<(), VerifyError> {
        if PinnedIdentity::from_published(published)? != self.identity {
            return Err(VerifyError::Identity("not the pinned (origin, key)"));
        }
        Ok(())
    }

    /// The log of `policy` that made an announcement: the one whose key's fingerprint is the
    /// TBS's `identity_fpr` (§9), never a JSON field. Only a lookup: the announcement is
    /// trusted once [`Self::check_announcement`] of that log's identity passed.
    pub fn announcing_log<'p>(
        policy: &'p Policy,
        created: &api::SessionCreated,
    ) -> Result<&'p PolicyLog, VerifyError> {
        let announcement = Announcement::from_tbs(&created.announcement)?;
        policy
            .log_by_fingerprint(&announcement.identity_fpr)
            .ok_or(VerifyError::Identity(
                "the announcement's identity_fpr is not a key of the pinned policy",
            ))
    }

    /// Every check §3 asks of a client before it seals: the signature against the pinned key,
    /// the version, its own `client_nonce` (from `ticket`), the TBS `session_id` equal to the
    /// JSON one, `expires_at` not past (30 s of skew allowed at `now_secs`), `identity_fpr`, the
    /// suite and `pkR`. The session it returns uses the TBS values, never the JSON copies.
    pub fn check_announcement(
        &self,
        created: &api::SessionCreated,
        ticket: &[u8; 32],
        now_secs: u64,
    ) -> Result<AnnouncedSession, VerifyError> {
        let session_id = api::SessionId::parse(&created.session_id).ok_or(VerifyError::Refused(
            "session_id is not a canonical lowercase UUID",
        ))?;
        let client_nonce = commitment::client_nonce(ticket);
        let announcement: Announcement = announcement::verify(
            &created.announcement,
            &created.signature,
            &Expected {
                identity: &self.identity.key,
                client_nonce: &client_nonce,
                session_id: &session_id.0,
                now_secs,
            },
        )?;
        Ok(AnnouncedSession::new(
            announcement,
            created.announcement.clone(),
            *ticket,
        ))
    }

    /// Verifies a checkpoint note against the pinned identity.
    pub fn check_checkpoint(&self, note: &str) -> Result<SignedCheckpoint, VerifyError> {
        SignedCheckpoint::verify(note, &self.identity)
    }

    /// `GET /audit/{session_id}` (§6.4): the checkpoint is the pinned identity's, every entry is a
    /// valid leaf of `session_id`, and each is included in the checkpoint's tree. Returns the
    /// leaves with their indices, in the body's order.
    pub fn check_session_audit(
        &self,
        session_id: &str,
        audit: &api::SessionAudit,
    ) -> Result<(Vec<(u64, Leaf)>, SignedCheckpoint), VerifyError> {
        let signed = self.check_checkpoint(&audit.checkpoint)?;
        let wanted = api::SessionId::parse(session_id)
            .ok_or(VerifyError::Refused("not a canonical session id"))?;
        let checkpoint = &signed.checkpoint;
        let mut leaves = Vec::with_capacity(audit.entries.len());
        for entry in &audit.entries {
            let leaf = Leaf::decode(&entry.leaf)
                .map_err(|_| VerifyError::Refused("an audit entry is not a valid leaf"))?;
            if *leaf.session_id() != wanted.0 {
                return Err(VerifyError::Refused(
                    "an audit entry belongs to another session",
                ));
            }
            merkle::verify_inclusion(
                &entry.leaf,
                entry.index,
                checkpoint.size,
                &entry.inclusion_proof,
                &checkpoint.root,
            )?;
            leaves.push((entry.index, leaf));
        }
        Ok((leaves, signed))
    }
}

#[cfg(test)]
mod tests;
