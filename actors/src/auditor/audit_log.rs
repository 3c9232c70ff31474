//! The audit log itself (`docs/PROTOCOL.md` §6): a store plus the Merkle tree and signed
//! checkpoints over it. Verifies the whole log when opened, gives every orphaned request its
//! `aborted` result, appends batches and answers the audit queries. Synchronous: it runs on the
//! auditor's own thread, because every call may block on storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wasm_hypervisor_protocol::checkpoint::{self, Checkpoint};
use wasm_hypervisor_protocol::commitment::{ABSENT, Digest};
use wasm_hypervisor_protocol::identity::IdentityKey;
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome, ResultLeaf};
use wasm_hypervisor_protocol::merkle::{self, MemoryTree, ProofError, SubtreeHashes};

use super::store::{Batch, LogStore, StoreError};

/// The most entries one `GET /audit/entries` returns (§6).
pub(crate) const MAX_ENTRIES_PAGE: u64 = 1000;

/// Why the audit log could not append or answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The store failed; what was written is unknown until the log is reopened and verified.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored log does not verify: it was altered, truncated or rolled back.
    #[error("the audit log does not verify: {0}")]
    Tampered(String),
    /// A query's parameters are out of range; the message says which.
    #[error("{0}")]
    BadQuery(&'static str),
    /// An earlier write failed, so nothing more is accepted: the log fails closed.
    #[error("the audit log is unavailable after a storage failure")]
    Unavailable,
}

impl<E: Into<Self>> From<ProofError<E>> for AuditError {
    fn from(error: ProofError<E>) -> Self {
        match error {
            ProofError::Invalid(reason) => Self::BadQuery(reason),
            ProofError::Lookup(error) => error.into(),
        }
    }
}

/// One leaf with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The leaf's position in the log.
    pub index: u64,
    /// The leaf's bytes.
    pub leaf: Vec<u8>,
    /// RFC 9162 inclusion proof against the accompanying checkpoint.
    pub inclusion_proof: Vec<Digest>,
}

/// Entries with proofs against one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// The entries, in index order.
    pub entries: Vec<Entry>,
    /// The signed note every proof is against.
    pub checkpoint: String,
}

/// The verified log: the store plus its size and latest checkpoint, signed with the identity.
pub struct AuditLog {
    store: Box<dyn LogStore>,
    identity: Arc<IdentityKey>,
    origin: String,
    size: u64,
    checkpoint: String,
}

/// The store's subtree hashes as the Merkle algorithms look them up.
struct Stored<'a>(&'a dyn LogStore);

impl SubtreeHashes for Stored<'_> {
    type Error = AuditError;

    fn subtree_hash(&self, level: u8, index: u64) -> Result<Digest, AuditError> {
        self.0
            .subtree(level, index)?
            .ok_or(AuditError::Store(StoreError::Corrupt(
                "a subtree hash is missing",
            )))
    }
}

/// A batch's new subtree hashes over the store's, before the batch is written.
struct Overlay<'a> {
    fresh: HashMap<(u8, u64), Digest>,
    stored: Stored<'a>,
}

impl SubtreeHashes for Overlay<'_> {
    type Error = AuditError;

    fn subtree_hash(&self, level: u8, index: u64) -> Result<Digest, AuditError> {
        match self.fresh.get(&(level, index)) {
            Some(hash) => Ok(*hash),
            None => self.stored.subtree_hash(level, index),
        }
    }
}

impl AuditLog {
    /// Opens the log, verifies it from its first leaf against its signed checkpoint, and
    /// appends an `aborted` result leaf for every request leaf that has none. Returns the
    /// session ids that were aborted.
    pub fn open(
        store: Box<dyn LogStore>,
        identity: Arc<IdentityKey>,
        origin: String,
    ) -> Result<(Self, Vec<[u8; 16]>), AuditError> {
        let size = store.size()?;
        let orphans = verify_from_first_leaf(&*store, size, &identity, &origin)?;
        let checkpoint = match store.checkpoint()? {
            Some(note) => note,
            None => signed_checkpoint(&identity, &origin, 0, merkle::empty_root()),
        };
        let mut log = Self {
            store,
            identity,
            origin,
            size,
            checkpoint,
        };
        let aborted: Vec<[u8; 16]> = orphans.values().map(|leaf| leaf.session_id).collect();
        let results: Vec<Leaf> = orphans
            .into_iter()
            .map(|(request_index, request)| {
                Leaf::Result(ResultLeaf {
                    session_id: request.session_id,
                    time_ms: unix_millis(),
                    request_index,
                    outcome: Outcome::Aborted,
                    request_commitment: request.request_commitment,
                    result_commitment: ABSENT,
                    input_commitment: ABSENT,
                    output_commitment: ABSENT,
                })
            })
            .collect();
        if !results.is_empty() {
            log.append(&results)?;
        }
        Ok((log, aborted))
    }

    /// The number of leaves, all durable.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    /// Appends `leaves` in one durable transaction with the subtrees they complete and the
    /// checkpoint that covers them; returns each leaf with its proof against that checkpoint.
    pub fn append(&mut self, leaves: &[Leaf]) -> Result<Proven, AuditError> {
        let encoded: Vec<Vec<u8>> = leaves.iter().map(Leaf::encode).collect();
        let session_ids: Vec<[u8; 16]> = leaves.iter().map(|leaf| *leaf.session_id()).collect();
        let hashes: Vec<Digest> = encoded.iter().map(|leaf| merkle::leaf_hash(leaf)).collect();
        let stored = Stored(&*self.store);
        let subtrees = merkle::new_subtrees(self.size, &hashes, &stored)?;
        let new_size = self.size + encoded.len() as u64;
        let overlay = Overlay {
            fresh: subtrees.iter().map(|&(l, i, h)| ((l, i), h)).collect(),
            stored,
        };
        let root = merkle::root(new_size, &overlay)?;
        let checkpoint = signed_checkpoint(&self.identity, &self.origin, new_size, root);
        self.store.append(&Batch {
            first_index: self.size,
            leaves: &encoded,
            session_ids: &session_ids,
            subtrees: &subtrees,
            checkpoint: &checkpoint,
        })?;
        let first_index = self.size;
        self.size = new_size;
        self.checkpoint = checkpoint;
        let entries = (first_index..)
            .zip(encoded)
            .map(|(index, leaf)| self.entry(index, leaf))
            .collect::<Result<_, _>>()?;
        Ok(Proven {
            entries,
            checkpoint: self.checkpoint.clone(),
        })
    }

    fn entry(&self, index: u64, leaf: Vec<u8>) -> Result<Entry, AuditError> {
        let inclusion_proof = merkle::inclusion_proof(index, self.size, &Stored(&*self.store))?;
        Ok(Entry {
            index,
            leaf,
            inclusion_proof,
        })
    }

    /// A session's leaves with proofs against the latest checkpoint (`GET /audit/{id}`).
    pub(crate) fn session(&self, session_id: &[u8; 16]) -> Result<Proven, AuditError> {
        let entries = self
            .store
            .session_indices(session_id)?
            .into_iter()
            .map(|index| {
                let leaf = self
                    .store
                    .leaf(index)?
                    .ok_or(StoreError::Corrupt("an indexed leaf is missing"))?;
                self.entry(index, leaf)
            })
            .collect::<Result<_, _>>()?;
        Ok(Proven {
            entries,
            checkpoint: self.checkpoint.clone(),
        })
    }

    /// RFC 9162 §2.1.4 consistency proof; needs 1 ≤ old ≤ new ≤ size.
    pub(crate) fn consistency(&self, old: u64, new: u64) -> Result<Vec<Digest>, AuditError> {
        if old == 0 || old > new || new > self.size {
            return Err(AuditError::BadQuery(
                "consistency needs 1 <= old <= new <= tree size",
            ));
        }
        Ok(merkle::consistency_proof(old, new, &Stored(&*self.store))?)
    }

    /// Leaves `[start, end)`, `end` clamped to `start + 1000` and to the size.
    pub(crate) fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
        if start > self.size {
            return Err(AuditError::BadQuery("start is beyond the tree size"));
        }
        let end = end
            .min(start.saturating_add(MAX_ENTRIES_PAGE))
            .min(self.size);
        Ok((start..).zip(self.store.leaves(start, end)?).collect())
    }
}

fn signed_checkpoint(identity: &IdentityKey, origin: &str, size: u64, root: Digest) -> String {
    Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    }
    .sign(identity)
}

/// Recomputes the tree from every stored leaf, checks it against the stored subtrees and the
/// signed checkpoint, and returns the request leaves that have no result leaf, by index.
fn verify_from_first_leaf(
    store: &dyn LogStore,
    size: u64,
    identity: &IdentityKey,
    origin: &str,
) -> Result<BTreeMap<u64, wasm_hypervisor_protocol::leaf::RequestLeaf>, AuditError> {
    let tampered = |reason: String| AuditError::Tampered(reason);
    let mut recomputed = MemoryTree::default();
    let mut orphans = BTreeMap::new();
    let mut start = 0;
    while start < size {
        let page = store.leaves(start, start.saturating_add(MAX_ENTRIES_PAGE))?;
        if page.is_empty() {
            return Err(tampered(format!("leaf {start} is missing")));
        }
        let mut hashes = Vec::with_capacity(page.len());
        for (index, bytes) in (start..).zip(&page) {
            match Leaf::decode(bytes).map_err(|error| tampered(format!("leaf {index}: {error}")))? {
                Leaf::Request(request) => {
                    orphans.insert(index, request);
                }
                Leaf::Result(result) => {
                    let matches = orphans.get(&result.request_index).is_some_and(|request| {
                        request.session_id == result.session_id
                            && request.request_commitment == result.request_commitment
                    });
                    if !matches {
                        return Err(tampered(format!(
                            "result leaf {index} does not answer an open request leaf"
                        )));
                    }
                    orphans.remove(&result.request_index);
                }
            }
            hashes.push(merkle::leaf_hash(bytes));
        }
        let subtrees = recomputed
            .push(&hashes)
            .map_err(|error| tampered(error.to_string()))?;
        for (level, index, hash) in subtrees {
            if store.subtree(level, index)? != Some(hash) {
                return Err(tampered(format!(
                    "stored subtree ({level}, {index}) differs from its leaves"
                )));
            }
        }
        start += page.len() as u64;
    }
    let root = recomputed.root();
    match store.checkpoint()? {
        None if size == 0 => {}
        None => return Err(tampered("the log has leaves but no checkpoint".into())),
        Some(note) => {
            let signed =
                checkpoint::verify(&note, origin, &identity.public()).map_err(|error| {
                    tampered(format!(
                        "the stored checkpoint does not verify for origin {origin}: {error}"
                    ))
                })?;
            if (signed.size, signed.root) != (size, root) {
                return Err(tampered(format!(
                    "the stored checkpoint covers {} leaves with another root than the {size} stored",
                    signed.size
                )));
            }
        }
    }
    Ok(orphans)
}

/// The wall clock in Unix milliseconds, as leaves record time; 0 before 1970.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use wasm_hypervisor_protocol::leaf::RequestLeaf;

    use super::*;
    use crate::auditor::store::{self, StoreKind};

    fn identity() -> Arc<IdentityKey> {
        Arc::new(IdentityKey::from_secret_bytes(&[0x31; 32]).unwrap())
    }

    fn request(n: u8) -> Leaf {
        Leaf::Request(RequestLeaf {
            session_id: [n; 16],
            time_ms: u64::from(n),
            announcement_hash: [n; 32],
            request_commitment: [n.wrapping_add(1); 32],
        })
    }

    /// A store whose reads an attacker controls, over a real one.
    struct Tampered {
        inner: Box<dyn LogStore>,
        flip_leaf: Option<u64>,
        hide_leaf: Option<u64>,
        report_size: Option<u64>,
    }

    impl LogStore for Tampered {
        fn size(&self) -> Result<u64, StoreError> {
            Ok(self.report_size.unwrap_or(self.inner.size()?))
        }
        fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
            self.inner.append(batch)
        }
        fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.leaf(index)
        }
        fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            let mut leaves = Vec::new();
            for (index, mut leaf) in (start..).zip(self.inner.leaves(start, end)?) {
                if Some(index) == self.flip_leaf {
                    leaf[20] ^= 1; // a byte of time_ms: the leaf still decodes
                }
                if Some(index) != self.hide_leaf {
                    leaves.push(leaf);
                }
            }
            Ok(leaves)
        }
        fn subtree(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
            self.inner.subtree(level, index)
        }
        fn session_indices(&self, session_id: &[u8; 16]) -> Result<Vec<u64>, StoreError> {
            self.inner.session_indices(session_id)
        }
        fn checkpoint(&self) -> Result<Option<String>, StoreError> {
            self.inner.checkpoint()
        }
    }

    /// A log of five request leaves, written in two batches, then reopened through `tamper`.
    fn reopen_tampered(
        tamper: impl FnOnce(&mut Tampered),
    ) -> Result<(AuditLog, Vec<[u8; 16]>), AuditError> {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store::open(StoreKind::Redb, dir.path()).unwrap();
            let (mut log, _) = AuditLog::open(store, identity(), "test/log".into()).unwrap();
            log.append(&[request(1), request(2)]).unwrap();
            log.append(&[request(3), request(4), request(5)]).unwrap();
        }
        let mut store = Tampered {
            inner: store::open(StoreKind::Redb, dir.path()).unwrap(),
            flip_leaf: None,
            hide_leaf: None,
            report_size: None,
        };
        tamper(&mut store);
        AuditLog::open(Box::new(store), identity(), "test/log".into())
    }

    #[test]
    fn an_intact_log_reopens_and_aborts_its_orphans() {
        let (log, aborted) = reopen_tampered(|_| {}).unwrap();
        assert_eq!(aborted, [[1; 16], [2; 16], [3; 16], [4; 16], [5; 16]]);
        assert_eq!(log.size(), 10);
        let proven = log.session(&[3; 16]).unwrap();
        let [request, result] = proven.entries.as_slice() else {
            panic!("two leaves");
        };
        let Ok(Leaf::Result(result_leaf)) = Leaf::decode(&result.leaf) else {
            panic!("a result leaf");
        };
        assert_eq!(
            (result_leaf.outcome, result_leaf.request_index),
            (Outcome::Aborted, request.index)
        );
        let checkpoint =
            checkpoint::verify(&proven.checkpoint, "test/log", &identity().public()).unwrap();
        merkle::verify_inclusion(
            &result.leaf,
            result.index,
            checkpoint.size,
            &result.inclusion_proof,
            &checkpoint.root,
        )
        .unwrap();
    }

    #[test]
    fn a_changed_byte_a_dropped_leaf_or_a_truncated_tail_is_refused() {
        for (what, tamper) in [
            (
                "changed byte",
                Box::new(|store: &mut Tampered| store.flip_leaf = Some(3))
                    as Box<dyn FnOnce(&mut Tampered)>,
            ),
            (
                "dropped leaf",
                Box::new(|store: &mut Tampered| store.hide_leaf = Some(1)),
            ),
            (
                "truncated tail",
                Box::new(|store: &mut Tampered| store.report_size = Some(4)),
            ),
        ] {
            assert!(
                matches!(reopen_tampered(tamper), Err(AuditError::Tampered(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn another_origin_or_key_does_not_verify_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store::open(StoreKind::Sled, dir.path()).unwrap();
            let (mut log, _) = AuditLog::open(store, identity(), "test/log".into()).unwrap();
            log.append(&[request(1)]).unwrap();
        }
        let store = store::open(StoreKind::Sled, dir.path()).unwrap();
        let other_origin = AuditLog::open(store, identity(), "test/other".into());
        assert!(matches!(other_origin, Err(AuditError::Tampered(_))));
    }

    #[test]
    fn queries_are_bounded_and_validated() {
        let (log, _) = reopen_tampered(|_| {}).unwrap();
        assert!(matches!(
            log.consistency(0, 3),
            Err(AuditError::BadQuery(_))
        ));
        assert!(matches!(
            log.consistency(4, 3),
            Err(AuditError::BadQuery(_))
        ));
        assert!(matches!(
            log.consistency(3, 11),
            Err(AuditError::BadQuery(_))
        ));
        assert!(log.consistency(3, 10).is_ok());
        assert!(matches!(log.entries(11, 12), Err(AuditError::BadQuery(_))));
        assert_eq!(log.entries(10, 20).unwrap(), []);
        assert_eq!(log.entries(8, u64::MAX).unwrap().len(), 2);
    }
}
