//! The audit log's durable storage (`docs/PROTOCOL.md` §6): leaves, the Merkle subtree hashes they
//! complete, a by-session index and the latest signed checkpoint, behind one [`LogStore`] trait
//! with a redb and a sled backend.
//!
//! The auditor actor commits in groups: one [`Batch`] carries every leaf that arrived while the
//! previous batch was being written, the subtrees those leaves complete and the checkpoint
//! that covers them, and [`LogStore::append`] makes all of it visible and durable together or
//! not at all. The log size is stored explicitly and written in the same transaction, so it is
//! the commit point: readers never see a leaf, subtree or index entry at or beyond it, and a
//! batch whose `first_index` is not the current size is refused before anything is written,
//! which is what keeps a confused caller from leaving a gap or overwriting history.
//!
//! Leaves and checkpoints are opaque bytes here; the auditor owns their encoding. Values read
//! back are still checked (lengths, UTF-8, no holes below the size) and a mismatch is
//! [`StoreError::Corrupt`], never a panic, because the file may have been damaged outside us.
//!
//! redb is the default: a redb 4 commit with `Durability::Immediate` (its default, which we also
//! set explicitly) returns only after the file has been synced (`File::sync_data`, an
//! fdatasync). sled 0.34 is kept as an alternative, but its `flush()` issues `sync_file_range`
//! on Linux, which is not an fsync (sled issue #1452: data is not written durably), and its
//! README says to prefer SQLite where reliability is the primary constraint; see the `sled`
//! backend for the extra fsync we add.

mod redb;
mod sled;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One durable append: everything becomes visible and durable together, or not at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Batch<'a> {
    /// Must equal the store's current size, else [`StoreError::Conflict`].
    pub first_index: u64,
    /// Raw leaf bytes (90 or 163 bytes each; opaque to the store).
    pub leaves: &'a [Vec<u8>],
    /// `leaves[i]` belongs to `session_ids[i]`; feeds [`LogStore::session_indices`]. A result
    /// leaf's session must be its request's (see `answers`).
    pub session_ids: &'a [[u8; 16]],
    /// `(level, index, hash)` of the perfect subtrees this batch completes: the subtree
    /// covering leaves `[index·2^level, (index+1)·2^level)` must end after `first_index` and
    /// no later than the new size, so history is never rewritten.
    pub subtrees: &'a [(u8, u64, [u8; 32])],
    /// The signed note covering the new size. A batch without leaves only replaces it.
    pub checkpoint: &'a str,
    /// Indices of this batch's request leaves: they are pending until a result leaf answers
    /// them, so that a restart finds what a crash cut off without reading the log.
    pub requests_opened: &'a [u64],
    /// This batch's result leaves, each with the pending request leaf it answers, in leaf
    /// order; a request is answered once. A result leaf belongs to its request's session, so a
    /// backend may find it through the request.
    pub answers: &'a [Answer],
    /// Sealed results to keep for `GET …/result`, in leaf order, which is the order their
    /// sessions ended.
    pub results: &'a [RetainedResult<'a>],
    /// What of the results kept so far (and of `results`) is dropped in the same transaction.
    pub retention: Retention,
}

/// A result leaf and the request leaf it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The request leaf, appended in an earlier batch or earlier in this one.
    pub request_index: u64,
    /// The result leaf, in this batch.
    pub result_index: u64,
}

/// A session's result as `GET …/result` serves it, kept beside its result leaf.
#[derive(Debug, Clone, Copy)]
pub struct RetainedResult<'a> {
    /// The session the result belongs to; `GET …/result` looks it up by this.
    pub session_id: [u8; 16],
    /// The index of the session's result leaf, in this batch; a batch's results are in leaf
    /// order.
    pub leaf_index: u64,
    /// When the session ended (its result leaf's `time_ms`); retention counts from here.
    pub ended_ms: u64,
    /// The response body, byte for byte.
    pub body: &'a [u8],
}

/// Which retained results an append drops, oldest first: those that ended before
/// `expire_before_ms`, then more until the rest fit in `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Results of sessions that ended before this (Unix ms) are dropped.
    pub expire_before_ms: u64,
    /// The most bytes of result bodies kept.
    pub max_bytes: u64,
}

impl Default for Retention {
    /// Keeps everything.
    fn default() -> Self {
        Self {
            expire_before_ms: 0,
            max_bytes: u64::MAX,
        }
    }
}

/// A backend for the audit log: leaves, subtree hashes and the checkpoint, appended atomically.
pub trait LogStore: Send + 'static {
    /// Number of leaves in the log.
    fn size(&self) -> Result<u64, StoreError>;
    /// Writes the batch in one transaction; durable on return.
    fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError>;
    /// `None` at or beyond the size.
    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Leaves `[start, end)`, with `end` clamped to the size; empty if `start` is not below it.
    /// The caller bounds the range: this allocates whatever it is asked for.
    fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;
    /// `None` if the subtree does not fit in the log's size or was never stored.
    fn subtree(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError>;
    /// Indices of the session's leaves, ascending.
    fn session_indices(&self, session_id: &[u8; 16]) -> Result<Vec<u64>, StoreError>;
    /// The latest checkpoint, `None` before the first append.
    fn checkpoint(&self) -> Result<Option<String>, StoreError>;
    /// Indices of the request leaves no result leaf has answered yet, ascending.
    fn pending_requests(&self) -> Result<Vec<u64>, StoreError>;
    /// A retained result: when its session ended (Unix ms) and its body.
    fn retained_result(&self, session_id: &[u8; 16]) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
    /// The bytes of all retained bodies together.
    fn retained_bytes(&self) -> Result<u64, StoreError>;
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The filesystem failed.
    #[error("audit log I/O failed: {0}")]
    Io(String),
    /// The database failed in a way other than I/O.
    #[error("audit log storage failed: {0}")]
    Backend(String),
    /// The batch does not start at the end of the log: two writers, or a caller bug.
    #[error("the batch starts at leaf {got} but the log has {expected} leaves")]
    Conflict {
        /// The store's size.
        expected: u64,
        /// The batch's `first_index`.
        got: u64,
    },
    /// A caller bug; nothing was written.
    #[error("invalid batch: {0}")]
    InvalidBatch(&'static str),
    /// The stored data breaks the store's own invariants.
    #[error("the audit log storage is corrupt: {0}")]
    Corrupt(&'static str),
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error.to_string())
    }
}

/// Which backend holds the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StoreKind {
    /// A single redb file.
    #[default]
    Redb,
    /// A sled directory.
    Sled,
}

impl StoreKind {
    /// Every backend, for choosing by name and for testing each.
    pub const ALL: [Self; 2] = [Self::Redb, Self::Sled];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::Sled => "sled",
        }
    }

    /// Where this backend keeps the log under `data_dir`: a file for redb, a directory for sled.
    pub fn location(self, data_dir: &Path) -> PathBuf {
        match self {
            Self::Redb => data_dir.join("log.redb"),
            Self::Sled => data_dir.join("log.sled"),
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store name that is neither `redb` nor `sled`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown store {0:?}: expected \"redb\" or \"sled\"")]
pub struct ParseStoreKindError(String);

impl FromStr for StoreKind {
    type Err = ParseStoreKindError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| ParseStoreKindError(text.to_owned()))
    }
}

/// The store's page cache when no other size is configured: enough for the right edge, the
/// recent leaves and the by-session index's hot pages, and far below redb's and sled's own
/// default of 1 GiB, which a daemon would otherwise fill with cold leaves. Default: 64 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Opens the log under `data_dir` (created if missing), creating an empty one the first time,
/// with a page cache of [`DEFAULT_CACHE_BYTES`].
pub fn open(kind: StoreKind, data_dir: &Path) -> Result<Box<dyn LogStore>, StoreError> {
    open_with_cache(kind, data_dir, DEFAULT_CACHE_BYTES)
}

/// [`open`] with a page cache of `cache_bytes`.
pub fn open_with_cache(
    kind: StoreKind,
    data_dir: &Path,
    cache_bytes: usize,
) -> Result<Box<dyn LogStore>, StoreError> {
    std::fs::create_dir_all(data_dir)?;
    let location = kind.location(data_dir);
    Ok(match kind {
        StoreKind::Redb => Box::new(redb::RedbStore::open(&location, cache_bytes)?),
        StoreKind::Sled => Box::new(sled::SledStore::open(&location, cache_bytes)?),
    })
}

fn backend_error(backend: &str, error: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("{backend}: {error}"))
}

/// Why a batch is refused whose answer's request is not pending, or is answered twice.
const NOT_PENDING: &str = "an answer's request leaf is not pending";

/// Checks `batch` against the store's current `size` and returns the size after it.
fn check_batch(batch: &Batch<'_>, size: u64) -> Result<u64, StoreError> {
    if batch.first_index != size {
        return Err(StoreError::Conflict {
            expected: size,
            got: batch.first_index,
        });
    }
    if batch.leaves.len() != batch.session_ids.len() {
        return Err(StoreError::InvalidBatch(
            "leaves and session_ids differ in length",
        ));
    }
    let new_size = u64::try_from(batch.leaves.len())
        .ok()
        .and_then(|count| size.checked_add(count))
        .ok_or(StoreError::InvalidBatch("the log size would overflow"))?;
    let in_batch = |index: u64| size <= index && index < new_size;
    let answers_in_order =
        batch.answers.iter().all(|answer| {
            in_batch(answer.result_index) && answer.request_index < answer.result_index
        }) && batch
            .answers
            .is_sorted_by(|a, b| a.result_index < b.result_index);
    if !answers_in_order {
        return Err(StoreError::InvalidBatch(
            "the answers are not this batch's leaves in order, each after its request",
        ));
    }
    let mut requests: Vec<u64> = batch.answers.iter().map(|a| a.request_index).collect();
    requests.sort_unstable();
    if requests.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(StoreError::InvalidBatch(NOT_PENDING));
    }
    let results_in_order = batch
        .results
        .iter()
        .all(|result| in_batch(result.leaf_index))
        && batch
            .results
            .is_sorted_by(|a, b| a.leaf_index < b.leaf_index);
    if !results_in_order {
        return Err(StoreError::InvalidBatch(
            "the results are not this batch's leaves in order",
        ));
    }
    for &(level, index, _) in batch.subtrees {
        match subtree_end(level, index) {
            Some(end) if size < end && end <= new_size => {}
            _ => {
                return Err(StoreError::InvalidBatch(
                    "a subtree is not completed by this batch",
                ));
            }
        }
    }
    Ok(new_size)
}

/// One past the last leaf of subtree `(level, index)`, if that fits in a `u64`.
fn subtree_end(level: u8, index: u64) -> Option<u64> {
    if level >= 64 {
        return None;
    }
    u64::try_from((u128::from(index) + 1) << level).ok()
}

/// Whether subtree `(level, index)` lies within a log of `size` leaves.
fn subtree_fits(level: u8, index: u64, size: u64) -> bool {
    subtree_end(level, index).is_some_and(|end| end <= size)
}

/// `[start, end)` clamped to `size`, or `None` if empty.
fn clamp_range(start: u64, end: u64, size: u64) -> Option<(u64, u64)> {
    let end = end.min(size);
    (start < end).then_some((start, end))
}

// Both backends keep the size as 8 big-endian bytes; a fresh store has none.
fn encode_size(size: u64) -> [u8; 8] {
    size.to_be_bytes()
}

fn decode_size(bytes: Option<&[u8]>) -> Result<u64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(bytes)
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("the stored log size is not 8 bytes")),
    }
}

/// A counter kept beside the size, in the same form; absent means 0.
fn decode_counter(bytes: Option<&[u8]>) -> Result<u64, StoreError> {
    decode_size(bytes).map_err(|_| StoreError::Corrupt("a stored counter is not 8 bytes"))
}

fn decode_hash(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Corrupt("a subtree hash is not 32 bytes"))
}

fn decode_checkpoint(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("the checkpoint is not UTF-8"))
}

const SESSION_KEY_LEN: usize = 24;

/// session_id ‖ index (big-endian), so one session's entries are a contiguous, ascending
/// prefix range.
fn session_key(session_id: &[u8; 16], index: u64) -> [u8; SESSION_KEY_LEN] {
    let mut key = [0; SESSION_KEY_LEN];
    key[..16].copy_from_slice(session_id);
    key[16..].copy_from_slice(&index.to_be_bytes());
    key
}

fn session_key_index(key: &[u8]) -> Result<u64, StoreError> {
    key.get(16..)
        .and_then(|suffix| <[u8; 8]>::try_from(suffix).ok())
        .filter(|_| key.len() == SESSION_KEY_LEN)
        .map(u64::from_be_bytes)
        .ok_or(StoreError::Corrupt("a by-session key is not 24 bytes"))
}

/// Every leaf below the size must exist and nothing may lie beyond it; checked on open so a
/// damaged store is refused before the auditor signs a checkpoint on top of it.
fn check_last_leaf(size: u64, last_leaf: Option<u64>) -> Result<(), StoreError> {
    let consistent = match last_leaf {
        None => size == 0,
        Some(last) => last.checked_add(1) == Some(size),
    };
    if consistent {
        Ok(())
    } else {
        Err(StoreError::Corrupt("the leaves disagree with the log size"))
    }
}

/// A kept result as eviction sees it; `key` is what its backend removes it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kept<K> {
    key: K,
    ended_ms: u64,
    len: u64,
}

impl<K> Kept<K> {
    /// One of the batch's results, to be kept under `key`.
    fn new(key: K, result: &RetainedResult<'_>) -> Self {
        Self {
            key,
            ended_ms: result.ended_ms,
            len: result.body.len() as u64,
        }
    }
}

/// The oldest results to drop so that the rest satisfy `retention`. `oldest_first` yields what
/// is kept (stored ones, then the batch's new ones) and is read only as far as needed, so an
/// append costs O(1) amortized however many results are kept. Returns their keys, oldest first,
/// with the bytes that remain.
fn results_to_drop<K>(
    oldest_first: impl Iterator<Item = Result<Kept<K>, StoreError>>,
    mut total_bytes: u64,
    retention: Retention,
) -> Result<(Vec<K>, u64), StoreError> {
    let mut dropped = Vec::new();
    for kept in oldest_first {
        let kept = kept?;
        if kept.ended_ms >= retention.expire_before_ms && total_bytes <= retention.max_bytes {
            break;
        }
        total_bytes = total_bytes.saturating_sub(kept.len);
        dropped.push(kept.key);
    }
    Ok((dropped, total_bytes))
}

/// The bytes of the batch's results' bodies.
fn added_bytes(results: &[RetainedResult<'_>]) -> u64 {
    results.iter().map(|result| result.body.len() as u64).sum()
}

/// A retained result's stored value: when the session ended, then the body.
fn encode_retained_value(result: &RetainedResult<'_>) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + result.body.len());
    value.extend_from_slice(&result.ended_ms.to_be_bytes());
    value.extend_from_slice(result.body);
    value
}

/// A retained result's stored value as when its session ended and its body.
fn split_retained_value(value: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (ended, body) = value.split_first_chunk::<8>().ok_or(StoreError::Corrupt(
        "a retained result is shorter than 8 bytes",
    ))?;
    Ok((u64::from_be_bytes(*ended), body))
}

fn decode_retained_value(value: &[u8]) -> Result<(u64, Vec<u8>), StoreError> {
    split_retained_value(value).map(|(ended_ms, body)| (ended_ms, body.to_vec()))
}

/// Checks that a range scan over `[start, end)` found every leaf, in order.
fn collect_leaves(
    start: u64,
    end: u64,
    entries: impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>>,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let capacity = usize::try_from(end - start).unwrap_or(0);
    let mut leaves = Vec::with_capacity(capacity.min(1 << 16));
    let mut expected = start;
    for entry in entries {
        let (index, leaf) = entry?;
        if index != expected {
            return Err(StoreError::Corrupt("a leaf below the log size is missing"));
        }
        leaves.push(leaf);
        expected += 1;
    }
    if expected != end {
        return Err(StoreError::Corrupt("a leaf below the log size is missing"));
    }
    Ok(leaves)
}

/// Stores that fail on purpose, for the tests of the layers above.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Batch, LogStore, StoreError};

    /// A disk that fills up after `writes_left` appends.
    pub(crate) struct FillingDisk {
        inner: Box<dyn LogStore>,
        writes_left: usize,
    }

    impl FillingDisk {
        pub(crate) fn over(inner: Box<dyn LogStore>, writes_left: usize) -> Self {
            Self { inner, writes_left }
        }
    }

    impl LogStore for FillingDisk {
        fn size(&self) -> Result<u64, StoreError> {
            self.inner.size()
        }
        fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
            if self.writes_left == 0 {
                return Err(StoreError::Io("No space left on device".into()));
            }
            self.writes_left -= 1;
            self.inner.append(batch)
        }
        fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.leaf(index)
        }
        fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            self.inner.leaves(start, end)
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
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn leaf_bytes(index: u64) -> Vec<u8> {
        let len = if index.is_multiple_of(2) { 90 } else { 163 };
        let mut leaf = vec![(index % 251) as u8; len];
        leaf[..8].copy_from_slice(&index.to_be_bytes());
        leaf
    }

    fn hash(level: u8, index: u64) -> [u8; 32] {
        let mut hash = [level; 32];
        hash[..8].copy_from_slice(&index.to_be_bytes());
        hash
    }

    /// Two leaves per session, as a request leaf and its result leaf would be.
    fn default_session(index: u64) -> [u8; 16] {
        let mut id = [0xab; 16];
        id[8..].copy_from_slice(&(index / 2).to_be_bytes());
        id
    }

    /// Every perfect subtree completed by appending leaves `[first, end)`, level 0 included.
    fn completed_subtrees(first: u64, end: u64) -> Vec<(u8, u64, [u8; 32])> {
        let mut subtrees = Vec::new();
        for count in first + 1..=end {
            let mut level = 0;
            while level < 64 && count.is_multiple_of(1 << level) {
                let index = (count >> level) - 1;
                subtrees.push((level, index, hash(level, index)));
                level += 1;
            }
        }
        subtrees
    }

    fn checkpoint_for(size: u64) -> String {
        format!("example.com/log\n{size}\nroot-{size}\n")
    }

    fn append_with(
        store: &mut dyn LogStore,
        first: u64,
        count: u64,
        session: impl Fn(u64) -> [u8; 16],
    ) -> Result<(), StoreError> {
        let end = first + count;
        let leaves: Vec<_> = (first..end).map(leaf_bytes).collect();
        let session_ids: Vec<_> = (first..end).map(session).collect();
        let subtrees = completed_subtrees(first, end);
        let checkpoint = checkpoint_for(end);
        store.append(&Batch {
            first_index: first,
            leaves: &leaves,
            session_ids: &session_ids,
            subtrees: &subtrees,
            checkpoint: &checkpoint,
            ..Batch::default()
        })
    }

    fn append(store: &mut dyn LogStore, first: u64, count: u64) {
        append_with(store, first, count, default_session).unwrap();
    }

    /// Everything a log of `size` leaves built by [`append`] must read back.
    fn assert_log(store: &dyn LogStore, size: u64) {
        assert_eq!(store.size().unwrap(), size);
        for index in 0..size {
            assert_eq!(store.leaf(index).unwrap(), Some(leaf_bytes(index)));
        }
        assert_eq!(store.leaf(size).unwrap(), None);
        let all: Vec<_> = (0..size).map(leaf_bytes).collect();
        assert_eq!(store.leaves(0, size).unwrap(), all);
        for (level, index, hash) in completed_subtrees(0, size) {
            assert_eq!(store.subtree(level, index).unwrap(), Some(hash));
        }
        for session in 0..size.div_ceil(2) {
            let expected: Vec<_> = (session * 2..(session * 2 + 2).min(size)).collect();
            let id = default_session(session * 2);
            assert_eq!(store.session_indices(&id).unwrap(), expected);
        }
        let checkpoint = (size > 0).then(|| checkpoint_for(size));
        assert_eq!(store.checkpoint().unwrap(), checkpoint);
    }

    fn open_in(kind: StoreKind, dir: &tempfile::TempDir) -> Box<dyn LogStore> {
        open(kind, dir.path()).unwrap()
    }

    fn empty_store(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(kind, &dir);
        assert_eq!(store.size().unwrap(), 0);
        assert_eq!(store.checkpoint().unwrap(), None);
        assert_eq!(store.leaf(0).unwrap(), None);
        assert_eq!(store.leaves(0, 10).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(store.subtree(0, 0).unwrap(), None);
        assert_eq!(store.session_indices(&[0; 16]).unwrap(), Vec::<u64>::new());
        assert!(kind.location(dir.path()).exists());
    }

    fn appends_read_back(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_in(kind, &dir);

        // The empty log's checkpoint is written by a batch without leaves.
        let checkpoint = checkpoint_for(0);
        let empty = Batch {
            first_index: 0,
            leaves: &[],
            session_ids: &[],
            subtrees: &[],
            checkpoint: &checkpoint,
            ..Batch::default()
        };
        store.append(&empty).unwrap();
        assert_eq!(store.size().unwrap(), 0);
        assert_eq!(store.checkpoint().unwrap(), Some(checkpoint));

        let mut size = 0;
        for count in [3, 1, 0, 12, 1, 7] {
            append(&mut *store, size, count);
            size += count;
            assert_log(&*store, size);
        }
        assert_eq!(size, 24);
        // A subtree is absent until the leaves it covers exist.
        assert_eq!(store.subtree(3, 2).unwrap(), Some(hash(3, 2)));
        assert_eq!(store.subtree(4, 0).unwrap(), Some(hash(4, 0)));
        assert_eq!(store.subtree(4, 1).unwrap(), None);
        assert_eq!(store.subtree(5, 0).unwrap(), None);
        assert_eq!(store.subtree(0, 24).unwrap(), None);
        assert_eq!(store.subtree(64, 0).unwrap(), None);
        assert_eq!(store.subtree(63, u64::MAX).unwrap(), None);
    }

    fn sessions_span_batches(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_in(kind, &dir);
        let (a, b) = ([1; 16], [2; 16]);
        // Interleaved across three batches, as concurrent sessions are.
        let owner = |index: u64| if index % 3 == 1 { b } else { a };
        append_with(&mut *store, 0, 4, owner).unwrap();
        append_with(&mut *store, 4, 2, owner).unwrap();
        append_with(&mut *store, 6, 5, owner).unwrap();
        assert_eq!(store.session_indices(&a).unwrap(), [0, 2, 3, 5, 6, 8, 9]);
        assert_eq!(store.session_indices(&b).unwrap(), [1, 4, 7, 10]);
        // Neighbouring ids share no prefix range.
        let mut near = a;
        near[15] = 0;
        assert_eq!(store.session_indices(&near).unwrap(), Vec::<u64>::new());
        near[15] = 3;
        assert_eq!(store.session_indices(&near).unwrap(), Vec::<u64>::new());
    }

    fn leaves_clamps(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_in(kind, &dir);
        append(&mut *store, 0, 10);
        let range = |start, end| (start..end).map(leaf_bytes).collect::<Vec<_>>();
        assert_eq!(store.leaves(0, 10).unwrap(), range(0, 10));
        assert_eq!(store.leaves(2, 5).unwrap(), range(2, 5));
        assert_eq!(store.leaves(7, 100).unwrap(), range(7, 10));
        assert_eq!(store.leaves(0, u64::MAX).unwrap(), range(0, 10));
        assert_eq!(store.leaves(9, 10).unwrap(), range(9, 10));
        for (start, end) in [
            (10, 11),
            (10, 10),
            (5, 5),
            (7, 3),
            (11, 20),
            (u64::MAX, u64::MAX),
        ] {
            assert_eq!(store.leaves(start, end).unwrap(), Vec::<Vec<u8>>::new());
        }
    }

    fn rejected_batches_change_nothing(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_in(kind, &dir);
        append(&mut *store, 0, 5);

        for first in [0, 4, 6, u64::MAX - 3] {
            assert_eq!(
                append_with(&mut *store, first, 3, default_session),
                Err(StoreError::Conflict {
                    expected: 5,
                    got: first
                })
            );
        }

        let leaves = [leaf_bytes(5), leaf_bytes(6)];
        let checkpoint = checkpoint_for(7);
        let valid = Batch {
            first_index: 5,
            leaves: &leaves,
            session_ids: &[[9; 16]; 2],
            subtrees: &[(0, 5, [7; 32]), (0, 6, [7; 32]), (1, 2, [7; 32])],
            checkpoint: &checkpoint,
            ..Batch::default()
        };
        let invalid = [
            Batch {
                session_ids: &[[9; 16]; 1],
                ..valid
            },
            // Already complete before the batch: rewriting it would rewrite history.
            Batch {
                subtrees: &[(0, 4, [7; 32])],
                ..valid
            },
            Batch {
                subtrees: &[(2, 1, [7; 32])],
                ..valid
            },
            Batch {
                subtrees: &[(0, 7, [7; 32])],
                ..valid
            },
            Batch {
                subtrees: &[(64, 0, [7; 32])],
                ..valid
            },
        ];
        for batch in &invalid {
            assert!(matches!(
                store.append(batch),
                Err(StoreError::InvalidBatch(_))
            ));
        }

        assert_log(&*store, 5);
        assert_eq!(store.session_indices(&[9; 16]).unwrap(), Vec::<u64>::new());
        assert_eq!(store.subtree(0, 4).unwrap(), Some(hash(0, 4)));

        // The store is still usable, and the valid form of the same batch goes through.
        store.append(&valid).unwrap();
        assert_eq!(store.size().unwrap(), 7);
        assert_eq!(store.session_indices(&[9; 16]).unwrap(), [5, 6]);
        assert_eq!(store.subtree(1, 2).unwrap(), Some([7; 32]));
    }

    fn reopen_keeps_everything(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_in(kind, &dir);
        append(&mut *store, 0, 6);
        append(&mut *store, 6, 11);
        drop(store);

        let mut store = open_in(kind, &dir);
        assert_log(&*store, 17);
        append(&mut *store, 17, 4);
        drop(store);

        let store = open_in(kind, &dir);
        assert_log(&*store, 21);
    }

    /// Group commit at scale: durable transactions of 1000 leaves each, every subtree level
    /// stored. 100 of them for redb; 50 for sled, which in a debug build is too slow for 100
    /// to stay near 10 s.
    fn large_log(kind: StoreKind) {
        const BATCH: u64 = 1_000;
        let size: u64 = match kind {
            StoreKind::Redb => 100_000,
            StoreKind::Sled => 50_000,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_in(kind, &dir);
        let started = Instant::now();
        for first in (0..size).step_by(BATCH as usize) {
            append(&mut *store, first, BATCH);
        }
        let appended = started.elapsed();
        drop(store);

        let store = open_in(kind, &dir);
        assert_eq!(store.size().unwrap(), size);
        assert_eq!(store.leaf(size - 1).unwrap(), Some(leaf_bytes(size - 1)));
        assert_eq!(store.leaf(size / 2).unwrap(), Some(leaf_bytes(size / 2)));
        assert_eq!(store.leaf(size).unwrap(), None);
        let tail: Vec<_> = (size - BATCH..size).map(leaf_bytes).collect();
        assert_eq!(store.leaves(size - BATCH, size + BATCH).unwrap(), tail);
        let top = size.ilog2() as u8;
        assert_eq!(store.subtree(top, 0).unwrap(), Some(hash(top, 0)));
        assert_eq!(store.subtree(top + 1, 0).unwrap(), None);
        assert_eq!(
            store.subtree(5, size / 32 - 1).unwrap(),
            Some(hash(5, size / 32 - 1))
        );
        assert_eq!(store.subtree(5, size / 32).unwrap(), None);
        let session = default_session(size / 2);
        assert_eq!(
            store.session_indices(&session).unwrap(),
            [size / 2, size / 2 + 1]
        );
        assert_eq!(store.checkpoint().unwrap(), Some(checkpoint_for(size)));
        eprintln!(
            "{kind}: appended {size} leaves in {appended:?}, reopened and read in {:?}",
            started.elapsed() - appended
        );
    }

    /// A batch of one result leaf for each of `results`, which it keeps under `retention`.
    fn keep(
        store: &mut dyn LogStore,
        results: &[RetainedResult<'_>],
        retention: Retention,
    ) -> Result<(), StoreError> {
        let first = store.size()?;
        let end = first + results.len() as u64;
        let leaves: Vec<_> = (first..end).map(leaf_bytes).collect();
        let session_ids: Vec<_> = results.iter().map(|result| result.session_id).collect();
        let subtrees = completed_subtrees(first, end);
        let checkpoint = checkpoint_for(end);
        let results: Vec<_> = results
            .iter()
            .zip(first..)
            .map(|(result, leaf_index)| RetainedResult {
                leaf_index,
                ..*result
            })
            .collect();
        store.append(&Batch {
            first_index: first,
            leaves: &leaves,
            session_ids: &session_ids,
            subtrees: &subtrees,
            checkpoint: &checkpoint,
            results: &results,
            retention,
            ..Batch::default()
        })
    }

    /// A result of session `[n; 16]`; [`keep`] gives it its leaf.
    fn result(n: u8, ended_ms: u64, body: &[u8]) -> RetainedResult<'_> {
        RetainedResult {
            session_id: [n; 16],
            leaf_index: 0,
            ended_ms,
            body,
        }
    }

    fn results_stay_within_retention_and_budget(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_in(kind, &dir);
        let body = |n: u8| vec![n; 100];
        let (a, b, c, d) = (body(1), body(2), body(3), vec![4; 400]);
        keep(
            &mut *store,
            &[result(1, 100, &a), result(2, 200, &b)],
            Retention::default(),
        )
        .unwrap();
        assert_eq!(store.retained_result(&[1; 16]).unwrap(), Some((100, a)));
        assert_eq!(store.retained_bytes().unwrap(), 200);

        // Over the budget, the oldest goes first.
        let budget = Retention {
            expire_before_ms: 0,
            max_bytes: 250,
        };
        keep(&mut *store, &[result(3, 300, &c)], budget).unwrap();
        assert_eq!(store.retained_result(&[1; 16]).unwrap(), None);
        assert_eq!(store.retained_result(&[2; 16]).unwrap(), Some((200, b)));
        assert_eq!(store.retained_bytes().unwrap(), 200);

        // Past its retention a result goes even when there is room.
        let expiry = Retention {
            expire_before_ms: 250,
            max_bytes: 250,
        };
        keep(&mut *store, &[], expiry).unwrap();
        assert_eq!(store.retained_result(&[2; 16]).unwrap(), None);
        assert_eq!(
            store.retained_result(&[3; 16]).unwrap(),
            Some((300, c.clone()))
        );
        assert_eq!(store.retained_bytes().unwrap(), 100);

        // A result larger than the whole budget is not kept, and takes the older ones with it.
        keep(&mut *store, &[result(4, 400, &d)], budget).unwrap();
        assert_eq!(store.retained_result(&[3; 16]).unwrap(), None);
        assert_eq!(store.retained_result(&[4; 16]).unwrap(), None);
        assert_eq!(store.retained_bytes().unwrap(), 0);

        keep(&mut *store, &[result(5, 500, &c)], budget).unwrap();
        drop(store);
        let store = open_in(kind, &dir);
        assert_eq!(store.retained_result(&[5; 16]).unwrap(), Some((500, c)));
        assert_eq!(store.retained_bytes().unwrap(), 100);
    }

    /// Appends one leaf per session in `sessions`: a request where `opened` says so, else a
    /// result for the request `answers` pairs it with.
    fn append_sessions(
        store: &mut dyn LogStore,
        sessions: &[[u8; 16]],
        opened: &[u64],
        answers: &[Answer],
    ) -> Result<(), StoreError> {
        let first = store.size()?;
        let end = first + sessions.len() as u64;
        let leaves: Vec<_> = (first..end).map(leaf_bytes).collect();
        let subtrees = completed_subtrees(first, end);
        let checkpoint = checkpoint_for(end);
        store.append(&Batch {
            first_index: first,
            leaves: &leaves,
            session_ids: sessions,
            subtrees: &subtrees,
            checkpoint: &checkpoint,
            requests_opened: opened,
            answers,
            ..Batch::default()
        })
    }

    fn answer(request_index: u64, result_index: u64) -> Answer {
        Answer {
            request_index,
            result_index,
        }
    }

    /// Requests stay pending until answered, and a session's result leaf is found with its
    /// request leaf across batches and a reopening.
    fn results_answer_their_requests(kind: StoreKind) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_in(kind, &dir);
        let (a, b, c, d) = ([1; 16], [2; 16], [3; 16], [4; 16]);
        append_sessions(&mut *store, &[a, b, c], &[0, 1, 2], &[]).unwrap();
        append_sessions(&mut *store, &[b, d, a], &[4], &[answer(1, 3), answer(0, 5)]).unwrap();
        drop(store);
        let mut store = open_in(kind, &dir);
        assert_eq!(store.pending_requests().unwrap(), [2, 4]);
        assert_eq!(store.session_indices(&a).unwrap(), [0, 5]);
        assert_eq!(store.session_indices(&b).unwrap(), [1, 3]);
        assert_eq!(store.session_indices(&c).unwrap(), [2]);

        // An answer must be one of the batch's leaves, in order, after its request, and answer
        // a pending request once.
        for answers in [
            [answer(4, 5), answer(2, 7)],
            [answer(2, 6), answer(4, 4)],
            [answer(4, 7), answer(2, 6)],
            [answer(2, 6), answer(4, 8)],
            [answer(2, 6), answer(2, 7)],
            [answer(1, 6), answer(4, 7)],
            [answer(2, 6), answer(3, 7)],
        ] {
            assert!(matches!(
                append_sessions(&mut *store, &[d, c], &[], &answers),
                Err(StoreError::InvalidBatch(_))
            ));
        }
        assert_eq!(store.size().unwrap(), 6);
        assert_eq!(store.pending_requests().unwrap(), [2, 4]);

        // Kept results must be the batch's own leaves, in order.
        let body = [7; 10];
        let kept = |leaf_index| RetainedResult {
            leaf_index,
            ..result(4, 1, &body)
        };
        for results in [[kept(6), kept(8)], [kept(7), kept(6)], [kept(5), kept(6)]] {
            let (leaves, subtrees) = ([leaf_bytes(6), leaf_bytes(7)], completed_subtrees(6, 8));
            let checkpoint = checkpoint_for(8);
            let batch = Batch {
                first_index: 6,
                leaves: &leaves,
                session_ids: &[d, c],
                subtrees: &subtrees,
                checkpoint: &checkpoint,
                results: &results,
                ..Batch::default()
            };
            assert!(matches!(
                store.append(&batch),
                Err(StoreError::InvalidBatch(_))
            ));
        }
        assert_eq!(store.size().unwrap(), 6);
        append_sessions(&mut *store, &[d, c], &[], &[answer(4, 6), answer(2, 7)]).unwrap();
        assert_eq!(store.pending_requests().unwrap(), Vec::<u64>::new());
        assert_eq!(store.session_indices(&c).unwrap(), [2, 7]);
    }

    macro_rules! for_each_backend {
        ($($test:ident),* $(,)?) => {
            mod redb_backend {
                $(#[test]
                fn $test() {
                    super::$test(super::StoreKind::Redb);
                })*
            }
            mod sled_backend {
                $(#[test]
                fn $test() {
                    super::$test(super::StoreKind::Sled);
                })*
            }
        };
    }

    for_each_backend!(
        empty_store,
        appends_read_back,
        sessions_span_batches,
        leaves_clamps,
        rejected_batches_change_nothing,
        reopen_keeps_everything,
        large_log,
        results_stay_within_retention_and_budget,
        results_answer_their_requests,
    );

    #[test]
    fn store_kind_round_trips() {
        for kind in StoreKind::ALL {
            assert_eq!(kind.to_string().parse::<StoreKind>(), Ok(kind));
        }
        assert_eq!(StoreKind::default(), StoreKind::Redb);
        assert!("Redb".parse::<StoreKind>().is_err());
        assert!("".parse::<StoreKind>().is_err());
    }

    #[test]
    fn decoders_refuse_bad_lengths() {
        assert_eq!(decode_size(None), Ok(0));
        assert_eq!(decode_size(Some(&[0; 8])), Ok(0));
        assert!(matches!(
            decode_size(Some(&[0; 7])),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(decode_hash(&[0; 31]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            decode_checkpoint(vec![0xff]),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(session_key_index(&session_key(&[1; 16], 42)), Ok(42));
        assert!(matches!(
            session_key_index(&[0; 23]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            session_key_index(&[0; 25]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(check_last_leaf(0, None).is_ok());
        assert!(check_last_leaf(3, Some(2)).is_ok());
        assert!(check_last_leaf(3, Some(3)).is_err());
        assert!(check_last_leaf(0, Some(0)).is_err());
        assert!(check_last_leaf(1, None).is_err());
    }
}
