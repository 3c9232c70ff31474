//! The audit log itself (`docs/PROTOCOL.md` §6): a store plus the Merkle tree and signed checkpoints
//! over it, and the sealed results kept beside their result leaves. Appends batches, answers
//! the audit and result queries, and on opening checks the tree's right edge against the
//! signed checkpoint and gives every request a crash cut off its `aborted` result.
//! Synchronous: it runs on the auditor's own thread, because every call may block on storage.
//!
//! Opening reads O(log n) subtree hashes and the pending requests, never the leaves, so a
//! restart costs the same at a thousand leaves as at ten million; re-verifying every leaf is
//! [`AuditLog::scrub_page`]'s job (and `audit --all`'s), through the one [`LogReplay`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasm_hypervisor_protocol::api::{Audit, ExecutedBody};
use wasm_hypervisor_protocol::checkpoint::{self, Checkpoint};
use wasm_hypervisor_protocol::commitment::{ABSENT, Digest};
use wasm_hypervisor_protocol::identity::IdentityKey;
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome, ResultLeaf};
use wasm_hypervisor_protocol::merkle::{self, ProofError, RightEdge, SubtreeHashes};
use wasm_hypervisor_protocol::replay::LogReplay;

use super::store::{Answer, Batch, LogStore, RetainedResult, Retention, StoreError};

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

/// A durable leaf, its proof and the checkpoint the proof is against; for an executed session's
/// result leaf, also the response body that was kept with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The leaf, its index and its proof.
    pub entry: Entry,
    /// The signed note the proof is against.
    pub checkpoint: String,
    /// The execute answer, byte for byte what `GET …/result` serves.
    pub body: Option<Vec<u8>>,
}

/// A leaf to append; a result leaf of an executed session carries its response body's head,
/// which the log completes with the leaf's proof and keeps.
#[derive(Debug)]
pub struct NewLeaf {
    /// The leaf to append.
    pub leaf: Leaf,
    /// For an executed session's result leaf: its response body without the `audit` object.
    pub response: Option<ExecutedBody>,
}

impl From<Leaf> for NewLeaf {
    fn from(leaf: Leaf) -> Self {
        Self {
            leaf,
            response: None,
        }
    }
}

/// How long results are kept, and how many bytes of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultRetention {
    /// How long after its session ended a result stays available. Default: 10 min.
    pub period: Duration,
    /// The most bytes of results kept on disk; past it the oldest go first. Default: 1 GiB.
    pub max_bytes: u64,
}

impl Default for ResultRetention {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(600),
            max_bytes: 1 << 30,
        }
    }
}

impl ResultRetention {
    /// Results of sessions that ended before this (Unix ms) have expired.
    fn expire_before_ms(&self) -> u64 {
        let period = u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX);
        unix_millis().saturating_sub(period)
    }
}

/// What the log knows of a session's result (`GET …/result` for a session not running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredResult {
    /// The body the execute call answered.
    Kept(Vec<u8>),
    /// Executed within retention, but its body was evicted to stay within the byte budget.
    Evicted,
    /// Ended without a sealed result (`unseal_failed`, `aborted`, `internal`).
    Failed {
        /// The result leaf's outcome.
        outcome: Outcome,
        /// The consumed session's, which the error body carries.
        request_commitment: Digest,
    },
    /// Consumed but never ended in the log: the daemon failed to log its end.
    Unfinished {
        /// The consumed session's, which the error body carries.
        request_commitment: Digest,
    },
    /// Never executed here, or past retention.
    Unknown,
}

/// Entries with proofs against one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// The entries, in index order.
    pub entries: Vec<Entry>,
    /// The signed note every proof is against.
    pub checkpoint: String,
}

/// The log: the store plus the tree's right edge and the latest checkpoint, signed with the
/// identity, and the retention of the results kept beside the leaves.
pub struct AuditLog {
    store: Box<dyn LogStore>,
    identity: Arc<IdentityKey>,
    origin: String,
    /// All of the tree that appends and roots need; the rest is in the store.
    edge: RightEdge,
    checkpoint: String,
    retention: ResultRetention,
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

/// A batch's new subtree hashes over the log's before the batch is written. Every hash an
/// inclusion proof of a batch's leaf needs is one the batch completes or one on the old right
/// edge (its left siblings are the perfect subtrees of its index's binary decomposition, which
/// the old size shares up to the first subtree the batch completes), so appending reads nothing
/// from the store; the store stays the fallback.
struct Overlay<'a> {
    fresh: HashMap<(u8, u64), Digest>,
    old_edge: &'a RightEdge,
    stored: Stored<'a>,
}

impl SubtreeHashes for Overlay<'_> {
    type Error = AuditError;

    fn subtree_hash(&self, level: u8, index: u64) -> Result<Digest, AuditError> {
        if let Some(hash) = self.fresh.get(&(level, index)) {
            return Ok(*hash);
        }
        match self.old_edge.subtree_hash(level, index) {
            Ok(hash) => Ok(hash),
            Err(_) => self.stored.subtree_hash(level, index),
        }
    }
}

impl AuditLog {
    /// Opens the log: checks the stored right edge of the tree against the signed checkpoint,
    /// and appends an `aborted` result leaf for every pending request (one a crash cut off).
    /// Returns the session ids that were aborted.
    pub fn open(
        store: Box<dyn LogStore>,
        identity: Arc<IdentityKey>,
        origin: String,
        retention: ResultRetention,
    ) -> Result<(Self, Vec<[u8; 16]>), AuditError> {
        let tampered = |reason: String| AuditError::Tampered(reason);
        let size = store.size()?;
        let edge = RightEdge::load(size, &Stored(&*store)).map_err(|error| match error {
            ProofError::Invalid(reason) => tampered(reason.to_owned()),
            ProofError::Lookup(error) => error,
        })?;
        let checkpoint = match store.checkpoint()? {
            None if size == 0 => signed_checkpoint(&identity, &origin, 0, merkle::empty_root()),
            None => return Err(tampered("the log has leaves but no checkpoint".into())),
            Some(note) => {
                let signed =
                    checkpoint::verify(&note, &origin, &identity.public()).map_err(|error| {
                        tampered(format!(
                            "the stored checkpoint does not verify for origin {origin}: {error}"
                        ))
                    })?;
                if (signed.size, signed.root) != (size, edge.root()) {
                    return Err(tampered(format!(
                        "the stored checkpoint covers {} leaves with another root than the {size} stored",
                        signed.size
                    )));
                }
                note
            }
        };
        let mut log = Self {
            store,
            identity,
            origin,
            edge,
            checkpoint,
            retention,
        };
        let aborted = log.abort_pending()?;
        Ok((log, aborted))
    }

    /// Appends an `aborted` result leaf for every request leaf still waiting for its result:
    /// what a crash cut off, on opening, or what a shutdown's grace period cut off. Returns the
    /// session ids.
    pub fn abort_pending(&mut self) -> Result<Vec<[u8; 16]>, AuditError> {
        let mut aborted = Vec::new();
        for index in self.store.pending_requests()? {
            match self.store.leaf(index)?.as_deref().map(Leaf::decode) {
                Some(Ok(Leaf::Request(request))) => {
                    aborted.push(NewLeaf::from(Leaf::Result(ResultLeaf {
                        session_id: request.session_id,
                        time_ms: unix_millis(),
                        request_index: index,
                        outcome: Outcome::Aborted,
                        request_commitment: request.request_commitment,
                        result_commitment: ABSENT,
                        input_commitment: ABSENT,
                        output_commitment: ABSENT,
                    })))
                }
                _ => {
                    return Err(AuditError::Tampered(format!(
                        "pending request {index} is not a request leaf"
                    )));
                }
            }
        }
        let session_ids = aborted.iter().map(|new| *new.leaf.session_id()).collect();
        if !aborted.is_empty() {
            self.append(aborted)?;
        }
        Ok(session_ids)
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.edge.size()
    }

    /// The latest signed checkpoint.
    pub(crate) fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    /// Appends `leaves` in one durable transaction with the subtrees they complete, the
    /// checkpoint that covers them and the response bodies they carry; returns each leaf with
    /// its proof against that checkpoint and its body.
    pub fn append(&mut self, leaves: Vec<NewLeaf>) -> Result<Vec<Appended>, AuditError> {
        let encoded: Vec<Vec<u8>> = leaves.iter().map(|new| new.leaf.encode()).collect();
        let session_ids: Vec<[u8; 16]> = leaves.iter().map(|new| *new.leaf.session_id()).collect();
        let hashes: Vec<Digest> = encoded.iter().map(|leaf| merkle::leaf_hash(leaf)).collect();
        let mut edge = self.edge.clone();
        let subtrees = edge
            .push(&hashes)
            .map_err(|_| StoreError::InvalidBatch("the log size would overflow"))?;
        let new_size = edge.size();
        let checkpoint = signed_checkpoint(&self.identity, &self.origin, new_size, edge.root());
        let overlay = Overlay {
            fresh: subtrees.iter().map(|&(l, i, h)| ((l, i), h)).collect(),
            old_edge: &self.edge,
            stored: Stored(&*self.store),
        };
        let mut requests_opened = Vec::new();
        let mut answers = Vec::new();
        let mut appended = Vec::with_capacity(leaves.len());
        let mut ended = Vec::with_capacity(leaves.len());
        for ((index, leaf), new) in (self.size()..).zip(&encoded).zip(leaves) {
            let inclusion_proof = merkle::inclusion_proof(index, new_size, &overlay)?;
            let body = match &new.leaf {
                Leaf::Request(_) => {
                    requests_opened.push(index);
                    None
                }
                Leaf::Result(result) => {
                    answers.push(Answer {
                        request_index: result.request_index,
                        result_index: index,
                    });
                    new.response.map(|head| {
                        head.finish(&Audit {
                            request_index: result.request_index,
                            result_index: index,
                            leaf: leaf.clone(),
                            inclusion_proof: inclusion_proof.clone(),
                            checkpoint: checkpoint.clone(),
                        })
                    })
                }
            };
            ended.push(new.leaf.time_ms());
            appended.push(Appended {
                entry: Entry {
                    index,
                    leaf: leaf.clone(),
                    inclusion_proof,
                },
                checkpoint: checkpoint.clone(),
                body,
            });
        }
        let results: Vec<RetainedResult<'_>> = appended
            .iter()
            .zip(session_ids.iter().zip(ended))
            .filter_map(|(appended, (session_id, ended_ms))| {
                Some(RetainedResult {
                    session_id: *session_id,
                    leaf_index: appended.entry.index,
                    ended_ms,
                    body: appended.body.as_deref()?,
                })
            })
            .collect();
        self.store.append(&Batch {
            first_index: self.size(),
            leaves: &encoded,
            session_ids: &session_ids,
            subtrees: &subtrees,
            checkpoint: &checkpoint,
            requests_opened: &requests_opened,
            answers: &answers,
            results: &results,
            retention: Retention {
                expire_before_ms: self.retention.expire_before_ms(),
                max_bytes: self.retention.max_bytes,
            },
        })?;
        self.edge = edge;
        self.checkpoint = checkpoint;
        Ok(appended)
    }

    fn entry(&self, index: u64, leaf: Vec<u8>) -> Result<Entry, AuditError> {
        let inclusion_proof = merkle::inclusion_proof(index, self.size(), &Stored(&*self.store))?;
        Ok(Entry {
            index,
            leaf,
            inclusion_proof,
        })
    }

    /// A session's leaves, decoded.
    fn session_leaves(&self, session_id: &[u8; 16]) -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
        self.store
            .session_indices(session_id)?
            .into_iter()
            .map(|index| {
                let leaf = self
                    .store
                    .leaf(index)?
                    .ok_or(StoreError::Corrupt("an indexed leaf is missing"))?;
                Ok((index, leaf))
            })
            .collect()
    }

    /// A session's leaves with proofs against the latest checkpoint (`GET /audit/{id}`).
    pub fn session(&self, session_id: &[u8; 16]) -> Result<Proven, AuditError> {
        let entries = self
            .session_leaves(session_id)?
            .into_iter()
            .map(|(index, leaf)| self.entry(index, leaf))
            .collect::<Result<_, _>>()?;
        Ok(Proven {
            entries,
            checkpoint: self.checkpoint.clone(),
        })
    }

    /// What `GET …/result` answers for a session that is not running: its kept body, or what
    /// its result leaf says, within the retention period.
    pub fn result(&self, session_id: &[u8; 16]) -> Result<StoredResult, AuditError> {
        let expire_before_ms = self.retention.expire_before_ms();
        if let Some((ended_ms, body)) = self.store.retained_result(session_id)?
            && ended_ms >= expire_before_ms
        {
            return Ok(StoredResult::Kept(body));
        }
        let (mut request, mut result) = (None, None);
        for (_, leaf) in self.session_leaves(session_id)? {
            match Leaf::decode(&leaf)
                .map_err(|_| StoreError::Corrupt("a stored leaf does not decode"))?
            {
                Leaf::Request(leaf) => request = Some(leaf),
                Leaf::Result(leaf) => result = Some(leaf),
            }
        }
        Ok(match (request, result) {
            (_, Some(result)) if result.time_ms < expire_before_ms => StoredResult::Unknown,
            (_, Some(result)) if result.outcome == Outcome::Executed => StoredResult::Evicted,
            (_, Some(result)) => StoredResult::Failed {
                outcome: result.outcome,
                request_commitment: result.request_commitment,
            },
            (Some(request), None) => StoredResult::Unfinished {
                request_commitment: request.request_commitment,
            },
            (None, None) => StoredResult::Unknown,
        })
    }

    /// RFC 9162 §2.1.4 consistency proof; needs 1 ≤ old ≤ new ≤ size.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Digest>, AuditError> {
        if old == 0 || old > new || new > self.size() {
            return Err(AuditError::BadQuery(
                "consistency needs 1 <= old <= new <= tree size",
            ));
        }
        Ok(merkle::consistency_proof(old, new, &Stored(&*self.store))?)
    }

    /// Leaves `[start, end)`, `end` clamped to `start + 1000` and to the size.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
        if start > self.size() {
            return Err(AuditError::BadQuery("start is beyond the tree size"));
        }
        let end = end
            .min(start.saturating_add(MAX_ENTRIES_PAGE))
            .min(self.size());
        Ok((start..).zip(self.store.leaves(start, end)?).collect())
    }

    /// Replays the next page of stored leaves into `replay` and checks every subtree they
    /// complete against the stored one: the full verification that opening skips, a page at a
    /// time so that appends go on between pages. Returns whether the replay reached the size.
    pub fn scrub_page(&self, replay: &mut LogReplay) -> Result<bool, AuditError> {
        let start = replay.size();
        if start >= self.size() {
            return Ok(true);
        }
        let page = self
            .store
            .leaves(start, start.saturating_add(MAX_ENTRIES_PAGE))?;
        if page.is_empty() {
            return Err(AuditError::Tampered(format!("leaf {start} is missing")));
        }
        let subtrees = replay
            .push(&page)
            .map_err(|error| AuditError::Tampered(error.to_string()))?;
        for (level, index, hash) in subtrees {
            if self.store.subtree(level, index)? != Some(hash) {
                return Err(AuditError::Tampered(format!(
                    "stored subtree ({level}, {index}) differs from its leaves"
                )));
            }
        }
        Ok(replay.size() >= self.size())
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use wasm_hypervisor_protocol::api::Executed;
    use wasm_hypervisor_protocol::leaf::RequestLeaf;

    use super::*;
    use crate::auditor::store::{self, StoreKind};

    fn identity() -> Arc<IdentityKey> {
        Arc::new(IdentityKey::from_secret_bytes(&[0x31; 32]).unwrap())
    }

    fn request_leaf(n: u8) -> RequestLeaf {
        RequestLeaf {
            session_id: [n; 16],
            time_ms: u64::from(n),
            announcement_hash: [n; 32],
            request_commitment: [n.wrapping_add(1); 32],
        }
    }

    fn request(n: u8) -> NewLeaf {
        Leaf::Request(request_leaf(n)).into()
    }

    /// The result leaf answering `request(n)` at `request_index`, ended at `time_ms`.
    fn result(n: u8, request_index: u64, outcome: Outcome, time_ms: u64) -> NewLeaf {
        let request = request_leaf(n);
        let executed = outcome == Outcome::Executed;
        let commitment = |byte| if executed { [byte; 32] } else { ABSENT };
        NewLeaf {
            leaf: Leaf::Result(ResultLeaf {
                session_id: request.session_id,
                time_ms,
                request_index,
                outcome,
                request_commitment: request.request_commitment,
                result_commitment: commitment(7),
                input_commitment: commitment(8),
                output_commitment: commitment(9),
            }),
            response: executed.then(|| {
                ExecutedBody::new(
                    &request.session_id,
                    request.request_commitment,
                    [7; 32],
                    &[n; 300],
                )
            }),
        }
    }

    fn open(store: Box<dyn LogStore>) -> Result<(AuditLog, Vec<[u8; 16]>), AuditError> {
        AuditLog::open(
            store,
            identity(),
            "test/log".into(),
            ResultRetention::default(),
        )
    }

    /// A store whose reads an attacker controls, over a real one; it counts the reads of leaves
    /// and subtrees.
    struct Tampered {
        inner: Box<dyn LogStore>,
        flip_leaf: Option<u64>,
        hide_leaf: Option<u64>,
        report_size: Option<u64>,
        leaf_reads: Arc<AtomicUsize>,
        subtree_reads: Arc<AtomicUsize>,
    }

    impl Tampered {
        fn over(inner: Box<dyn LogStore>) -> Self {
            Self {
                inner,
                flip_leaf: None,
                hide_leaf: None,
                report_size: None,
                leaf_reads: Arc::default(),
                subtree_reads: Arc::default(),
            }
        }
    }

    impl LogStore for Tampered {
        fn size(&self) -> Result<u64, StoreError> {
            Ok(self.report_size.unwrap_or(self.inner.size()?))
        }
        fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
            self.inner.append(batch)
        }
        fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
            self.leaf_reads.fetch_add(1, Ordering::Relaxed);
            self.inner.leaf(index)
        }
        fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            let mut leaves = Vec::new();
            for (index, mut leaf) in (start..).zip(self.inner.leaves(start, end)?) {
                self.leaf_reads.fetch_add(1, Ordering::Relaxed);
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
            self.subtree_reads.fetch_add(1, Ordering::Relaxed);
            self.inner.subtree(level, index)
        }
        fn session_indices(&self, session_id: &[u8; 16]) -> Result<Vec<u64>, StoreError> {
            self.inner.session_indices(session_id)
        }
        fn checkpoint(&self) -> Result<Option<String>, StoreError> {
            self.inner.checkpoint()
        }
        fn pending_requests(&self) -> Result<Vec<u64>, StoreError> {
            self.inner.pending_requests()
        }
        fn retained_result(
            &self,
            session_id: &[u8; 16],
        ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
            self.inner.retained_result(session_id)
        }
        fn retained_bytes(&self) -> Result<u64, StoreError> {
            self.inner.retained_bytes()
        }
    }

    /// A log of five request leaves, written in two batches, then reopened through `tamper`.
    fn reopen_tampered(
        tamper: impl FnOnce(&mut Tampered),
    ) -> Result<(AuditLog, Vec<[u8; 16]>), AuditError> {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = open(store::open(StoreKind::Redb, dir.path()).unwrap()).unwrap();
            log.append(vec![request(1), request(2)]).unwrap();
            log.append(vec![request(3), request(4), request(5)])
                .unwrap();
        }
        let mut store = Tampered::over(store::open(StoreKind::Redb, dir.path()).unwrap());
        tamper(&mut store);
        open(Box::new(store))
    }

    /// Scrubs the whole log.
    fn scrub(log: &AuditLog) -> Result<LogReplay, AuditError> {
        let mut replay = LogReplay::default();
        while !log.scrub_page(&mut replay)? {}
        Ok(replay)
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
        let replay = scrub(&log).unwrap();
        assert_eq!(replay.size(), 10);
        assert!(replay.open_requests().is_empty());
    }

    #[test]
    fn opening_reads_the_right_edge_and_the_pending_requests_not_the_leaves() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = open(store::open(StoreKind::Redb, dir.path()).unwrap()).unwrap();
            for batch in 0..25u8 {
                let first = log.size();
                let mut leaves = Vec::new();
                for n in 0..20u8 {
                    let id = batch.wrapping_mul(20).wrapping_add(n);
                    leaves.push(request(id));
                    leaves.push(result(id, first + 2 * u64::from(n), Outcome::Internal, 1));
                }
                log.append(leaves).unwrap();
            }
            log.append(vec![request(200), request(201)]).unwrap();
            assert_eq!(log.size(), 1002);
        }
        let store = Tampered::over(store::open(StoreKind::Redb, dir.path()).unwrap());
        let (leaf_reads, subtree_reads) = (
            Arc::clone(&store.leaf_reads),
            Arc::clone(&store.subtree_reads),
        );
        let (_, aborted) = open(Box::new(store)).unwrap();
        assert_eq!(aborted, [[200; 16], [201; 16]]);
        assert_eq!(
            leaf_reads.load(Ordering::Relaxed),
            2,
            "only the two pending requests"
        );
        // The right edge of 1002 leaves, then at most two proofs for the aborted results.
        let subtree_reads = subtree_reads.load(Ordering::Relaxed);
        assert!(
            subtree_reads <= 1002u64.count_ones() as usize + 2 * 2 * 11,
            "{subtree_reads} subtree reads"
        );
    }

    #[test]
    fn appending_proves_each_leaf_without_reading_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Tampered::over(store::open(StoreKind::Redb, dir.path()).unwrap());
        let subtree_reads = Arc::clone(&store.subtree_reads);
        let (mut log, _) = open(Box::new(store)).unwrap();
        let mut id = 0u8;
        // Batches of 1 to 9 leaves cross every kind of boundary between old and new subtrees.
        for batch_len in (1..=9u8).cycle().take(54) {
            let leaves = (0..batch_len)
                .map(|_| {
                    id = id.wrapping_add(1);
                    request(id)
                })
                .collect();
            let before = subtree_reads.load(Ordering::Relaxed);
            let appended = log.append(leaves).unwrap();
            assert_eq!(subtree_reads.load(Ordering::Relaxed), before);
            for appended in appended {
                let from_store = log
                    .entry(appended.entry.index, appended.entry.leaf.clone())
                    .unwrap();
                assert_eq!(appended.entry, from_store);
            }
        }
        assert_eq!(log.size(), 6 * 45);
    }

    #[test]
    fn a_truncated_tail_is_refused_on_opening_and_a_changed_or_dropped_leaf_by_the_scrub() {
        let truncated = reopen_tampered(|store| store.report_size = Some(4)).err();
        assert!(
            matches!(truncated, Some(AuditError::Tampered(_))),
            "{truncated:?}"
        );
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
        ] {
            let (log, _) = reopen_tampered(tamper).unwrap();
            assert!(
                matches!(scrub(&log), Err(AuditError::Tampered(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn another_origin_or_key_does_not_verify_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = open(store::open(StoreKind::Sled, dir.path()).unwrap()).unwrap();
            log.append(vec![request(1)]).unwrap();
        }
        let store = store::open(StoreKind::Sled, dir.path()).unwrap();
        let other_origin = AuditLog::open(
            store,
            identity(),
            "test/other".into(),
            ResultRetention::default(),
        );
        assert!(matches!(other_origin, Err(AuditError::Tampered(_))));
    }

    #[test]
    fn an_executed_result_is_kept_with_its_leaf_and_served_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now = unix_millis();
        let answered = {
            let (mut log, _) = open(store::open(StoreKind::Redb, dir.path()).unwrap()).unwrap();
            log.append(vec![request(1)]).unwrap();
            let mut appended = log
                .append(vec![result(1, 0, Outcome::Executed, now)])
                .unwrap();
            let appended = appended.pop().unwrap();
            let body = appended.body.clone().unwrap();
            let executed: Executed = serde_json::from_slice(&body).unwrap();
            assert_eq!(executed.sealed_result, [1; 300]);
            assert_eq!(executed.audit.result_index, 1);
            assert_eq!(executed.audit.leaf, appended.entry.leaf);
            assert_eq!(
                executed.audit.inclusion_proof,
                appended.entry.inclusion_proof
            );
            assert_eq!(executed.audit.checkpoint, appended.checkpoint);
            body
        };
        let (log, _) = open(store::open(StoreKind::Redb, dir.path()).unwrap()).unwrap();
        assert_eq!(log.result(&[1; 16]).unwrap(), StoredResult::Kept(answered));
    }

    #[test]
    fn a_result_lookup_says_what_became_of_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(StoreKind::Redb, dir.path()).unwrap();
        let retention = ResultRetention {
            period: Duration::from_secs(600),
            max_bytes: 2000,
        };
        let (mut log, _) = AuditLog::open(store, identity(), "test/log".into(), retention).unwrap();
        let now = unix_millis();
        let long_ago = now - 601_000;
        log.append((1..=5).map(request).collect()).unwrap();
        log.append(vec![
            result(1, 0, Outcome::Executed, now),
            result(2, 1, Outcome::UnsealFailed, now),
            result(3, 2, Outcome::Aborted, long_ago),
        ])
        .unwrap();
        // Bodies of about 1.4 KB each: of the three, only the newest fits in 2,000 bytes.
        log.append(vec![request(6), request(7)]).unwrap();
        log.append(vec![
            result(6, 8, Outcome::Executed, now),
            result(7, 9, Outcome::Executed, now),
        ])
        .unwrap();
        assert_eq!(log.result(&[1; 16]).unwrap(), StoredResult::Evicted);
        assert_eq!(log.result(&[6; 16]).unwrap(), StoredResult::Evicted);
        assert!(matches!(
            log.result(&[7; 16]).unwrap(),
            StoredResult::Kept(_)
        ));
        assert_eq!(
            log.result(&[2; 16]).unwrap(),
            StoredResult::Failed {
                outcome: Outcome::UnsealFailed,
                request_commitment: [3; 32]
            }
        );
        assert_eq!(
            log.result(&[3; 16]).unwrap(),
            StoredResult::Unknown,
            "expired"
        );
        assert_eq!(
            log.result(&[4; 16]).unwrap(),
            StoredResult::Unfinished {
                request_commitment: [5; 32]
            }
        );
        assert_eq!(log.result(&[9; 16]).unwrap(), StoredResult::Unknown);
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
