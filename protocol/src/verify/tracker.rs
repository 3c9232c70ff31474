//! The last checkpoint a client trusted for one log, and the proofs that let it move forward:
//! as transparency-dev's tessera client keeps its `LogStateTracker`, a newer checkpoint is
//! accepted only with an RFC 9162 consistency proof from the trusted one, and a smaller tree
//! (a rollback) or another tree of the same size (a fork) never is.

use super::{PinnedIdentity, SignedCheckpoint, VerifyError};
use crate::checkpoint::Checkpoint;
use crate::commitment::Digest;
use crate::merkle;

/// Which consistency proof shows that `new` extends `trusted`: `Some((old, new))` sizes for
/// `GET /audit/consistency?old=…&new=…`, or `None` when none is needed (nothing was trusted
/// yet, the trusted tree is empty, or `new` is the same tree). A smaller `new` is a rollback and
/// another root at the same size a fork: both are refused here, before anything is fetched.
pub fn consistency_needed(
    trusted: &Checkpoint,
    new: &Checkpoint,
) -> Result<Option<(u64, u64)>, VerifyError> {
    if trusted.origin != new.origin {
        return Err(VerifyError::Inconsistent(format!(
            "checkpoints of two logs, {} and {}",
            trusted.origin, new.origin
        )));
    }
    if new.size < trusted.size {
        return Err(VerifyError::Inconsistent(format!(
            "the tree shrank from size {} to {}",
            trusted.size, new.size
        )));
    }
    if new.size == trusted.size {
        return if new.root == trusted.root {
            Ok(None)
        } else {
            Err(VerifyError::Inconsistent(format!(
                "two different trees of size {}",
                new.size
            )))
        };
    }
    if trusted.size == 0 {
        return Ok(None);
    }
    Ok(Some((trusted.size, new.size)))
}

/// Checks that `new` extends `trusted` with `proof` (RFC 9162 §2.1.4); `proof` is ignored when
/// [`consistency_needed`] says none is needed.
pub fn check_consistency(
    trusted: &Checkpoint,
    new: &Checkpoint,
    proof: &[Digest],
) -> Result<(), VerifyError> {
    let Some((old, size)) = consistency_needed(trusted, new)? else {
        return Ok(());
    };
    merkle::verify_consistency(old, size, &trusted.root, &new.root, proof)
        .map_err(|error| VerifyError::Inconsistent(format!("from size {old} to {size}: {error}")))
}

/// The last checkpoint trusted for one pinned identity's log. It only moves forward, and only
/// with a proof.
#[derive(Debug, Clone)]
pub struct CheckpointTracker {
    identity: PinnedIdentity,
    latest: Option<SignedCheckpoint>,
}

impl CheckpointTracker {
    /// A tracker that trusts `latest` (if any) for `identity`'s log; `latest` must be signed by
    /// that identity.
    pub fn new(
        identity: PinnedIdentity,
        latest: Option<SignedCheckpoint>,
    ) -> Result<Self, VerifyError> {
        if let Some(latest) = &latest
            && !latest.is_signed_by(&identity)
        {
            return Err(VerifyError::Refused(
                "the trusted checkpoint is not the pinned identity's",
            ));
        }
        Ok(Self { identity, latest })
    }

    /// The identity whose log this tracks.
    pub fn identity(&self) -> &PinnedIdentity {
        &self.identity
    }

    /// The last trusted checkpoint, `None` before the first.
    pub fn latest(&self) -> Option<&SignedCheckpoint> {
        self.latest.as_ref()
    }

    /// The consistency proof to fetch before [`Self::update`] to `new`, as
    /// [`consistency_needed`] says; refuses a rollback or a fork at once.
    pub fn proof_needed(&self, new: &Checkpoint) -> Result<Option<(u64, u64)>, VerifyError> {
        match &self.latest {
            Some(latest) => consistency_needed(&latest.checkpoint, new),
            None => Ok(None),
        }
    }

    /// Moves to `new` once `proof` shows that it extends the trusted checkpoint. A checkpoint
    /// of another identity, a smaller tree, another tree of the same size or a proof that does
    /// not verify leaves the tracker as it was.
    pub fn update(&mut self, new: SignedCheckpoint, proof: &[Digest]) -> Result<(), VerifyError> {
        if !new.is_signed_by(&self.identity) {
            return Err(VerifyError::Refused(
                "the checkpoint is not the pinned identity's",
            ));
        }
        if let Some(latest) = &self.latest {
            check_consistency(&latest.checkpoint, &new.checkpoint, proof)?;
        }
        self.latest = Some(new);
        Ok(())
    }
}
