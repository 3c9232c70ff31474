//! The sled backend: one tree whose keys are prefixed by kind, written by one `apply_batch`
//! per batch, then flushed.
//!
//! One tree and a batch rather than a multi-tree transaction because sled's transactional
//! insert reads every key before writing it, which made appends 10–25% slower in debug-build
//! measurements; sled recovers a batch atomically all the same. The size check runs before the
//! batch is applied, which is race-free because `append` takes `&mut self` and sled's file lock
//! keeps other processes out.
//!
//! sled 0.34's `flush()` ends in `sync_file_range` on Linux, which flushes neither the drive's
//! cache nor the file's metadata (sled issue #1452), so after it we fsync sled's log file,
//! `db`, ourselves. That relies on sled 0.34's file layout and does not settle its other
//! crash-consistency doubts; the `store` module doc says why redb is the default.

use std::fs::{File, OpenOptions};
use std::path::Path;

use ::sled::{Db, IVec, Tree};

use super::{
    Batch, Kept, LogStore, NOT_PENDING, StoreError, added_bytes, check_batch, check_last_leaf,
    clamp_range, collect_leaves, decode_checkpoint, decode_counter, decode_hash,
    decode_retained_value, decode_size, encode_retained_value, encode_size, results_to_drop,
    session_key, session_key_index, subtree_fits,
};

// Key prefixes: one byte, then the kind's own key.
/// index (big-endian) → leaf, so key order is log order.
const LEAF: u8 = b'L';
/// level ‖ index (big-endian) → hash.
const SUBTREE: u8 = b'S';
/// session_id ‖ index (big-endian) → empty, so a session's leaves are one prefix scan.
const BY_SESSION: u8 = b'I';
/// index (big-endian) → empty: a request leaf without a result leaf yet.
const PENDING: u8 = b'P';
/// session_id → when it ended ‖ the result body.
const RESULT: u8 = b'R';
/// seq (big-endian) → session_id ‖ ended_ms ‖ body length: the eviction order.
const RESULT_ORDER: u8 = b'O';
const SIZE: &[u8] = b"Msize";
const CHECKPOINT: &[u8] = b"Mcheckpoint";
/// The next retained result's seq, and the bytes of all retained bodies.
const RESULT_SEQ: &[u8] = b"Mresult_seq";
const RESULT_BYTES: &[u8] = b"Mresult_bytes";

/// `prefix` ‖ a big-endian u64: pending requests and the eviction order.
fn indexed_key(prefix: u8, index: u64) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn decode_indexed_key(prefix: u8, key: &[u8]) -> Result<u64, StoreError> {
    key.strip_prefix(&[prefix])
        .and_then(|index| <[u8; 8]>::try_from(index).ok())
        .map(u64::from_be_bytes)
        .ok_or(StoreError::Corrupt("an indexed key is not 9 bytes"))
}

/// A retained result's place in the eviction order: its seq there, ascending with the time its
/// session ended, and its session, whose [`RESULT`] entry goes with it.
type OrderKey = (u64, [u8; 16]);

const ORDER_VALUE_LEN: usize = 32;

fn encode_order_value(kept: &Kept<OrderKey>) -> [u8; ORDER_VALUE_LEN] {
    let mut value = [0; ORDER_VALUE_LEN];
    value[..16].copy_from_slice(&kept.key.1);
    value[16..24].copy_from_slice(&kept.ended_ms.to_be_bytes());
    value[24..].copy_from_slice(&kept.len.to_be_bytes());
    value
}

fn decode_order_entry(key: &[u8], value: &[u8]) -> Result<Kept<OrderKey>, StoreError> {
    let corrupt = StoreError::Corrupt("a retained result's order entry is not 32 bytes");
    let value: &[u8; ORDER_VALUE_LEN] = value.try_into().map_err(|_| corrupt)?;
    let word = |at: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&value[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    let mut session_id = [0; 16];
    session_id.copy_from_slice(&value[..16]);
    Ok(Kept {
        key: (decode_indexed_key(RESULT_ORDER, key)?, session_id),
        ended_ms: word(16),
        len: word(24),
    })
}

fn result_key(session_id: &[u8; 16]) -> [u8; 17] {
    let mut key = [RESULT; 17];
    key[1..].copy_from_slice(session_id);
    key
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    super::backend_error("sled", error)
}

fn leaf_key(index: u64) -> [u8; 9] {
    indexed_key(LEAF, index)
}

fn decode_leaf_key(key: &[u8]) -> Result<u64, StoreError> {
    decode_indexed_key(LEAF, key)
}

fn subtree_key(level: u8, index: u64) -> [u8; 10] {
    let mut key = [SUBTREE; 10];
    key[1] = level;
    key[2..].copy_from_slice(&index.to_be_bytes());
    key
}

fn by_session_key(session_id: &[u8; 16], index: u64) -> [u8; 25] {
    let mut key = [BY_SESSION; 25];
    key[1..].copy_from_slice(&session_key(session_id, index));
    key
}

fn by_session_prefix(session_id: &[u8; 16]) -> [u8; 17] {
    let mut prefix = [BY_SESSION; 17];
    prefix[1..].copy_from_slice(session_id);
    prefix
}

pub(super) struct SledStore {
    db: Db,
    log: Tree,
    /// sled's log file, kept open for the fsync after each flush.
    log_file: File,
}

impl SledStore {
    pub(super) fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = open_db(path, cache_bytes)?;
        let store = Self {
            log: db.open_tree("log").map_err(backend)?,
            // Write access because some platforms refuse to sync a read-only handle.
            log_file: OpenOptions::new()
                .read(true)
                .write(true)
                .open(path.join("db"))?,
            db,
        };
        let last = match store.log.scan_prefix([LEAF]).next_back() {
            Some(entry) => Some(decode_leaf_key(&entry.map_err(backend)?.0)?),
            None => None,
        };
        check_last_leaf(store.size()?, last)?;
        Ok(store)
    }
}

/// sled frees its locked file lazily, some time after the last handle is dropped, so an
/// in-process reopen (a restarted auditor, the tests) can briefly find the lock held. Another
/// process holding it still fails, just a second later.
fn open_db(path: &Path, cache_bytes: usize) -> Result<Db, StoreError> {
    const ATTEMPTS: u32 = 40;
    let config = ::sled::Config::new()
        .path(path)
        .cache_capacity(u64::try_from(cache_bytes).unwrap_or(u64::MAX));
    let mut attempt = 1;
    loop {
        match config.open() {
            Err(::sled::Error::Io(error)) if is_lock_held(&error) && attempt < ATTEMPTS => {
                std::thread::sleep(std::time::Duration::from_millis(25));
                attempt += 1;
            }
            result => return result.map_err(backend),
        }
    }
}

// sled 0.34 reports a held lock as an `Other` error with only this text to tell it apart.
fn is_lock_held(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::Other
        && error.to_string().starts_with("could not acquire lock")
}

fn decode_ivec_size(value: Option<IVec>) -> Result<u64, StoreError> {
    decode_size(value.as_deref())
}

impl LogStore for SledStore {
    fn size(&self) -> Result<u64, StoreError> {
        decode_ivec_size(self.log.get(SIZE).map_err(backend)?)
    }

    fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let size = self.size()?;
        let new_size = check_batch(batch, size)?;
        let mut writes = ::sled::Batch::default();
        for ((index, leaf), session_id) in (size..).zip(batch.leaves).zip(batch.session_ids) {
            writes.insert(&leaf_key(index), leaf.as_slice());
            writes.insert(&by_session_key(session_id, index), &[]);
        }
        for (level, index, hash) in batch.subtrees {
            writes.insert(&subtree_key(*level, *index), hash);
        }
        for index in batch.requests_opened {
            writes.insert(&indexed_key(PENDING, *index), &[]);
        }
        for answer in batch.answers {
            let key = indexed_key(PENDING, answer.request_index);
            let opened_here = batch.requests_opened.contains(&answer.request_index);
            if !opened_here && !self.log.contains_key(key).map_err(backend)? {
                return Err(StoreError::InvalidBatch(NOT_PENDING));
            }
            writes.remove(&key);
        }

        let counter = |key| decode_counter(self.log.get(key).map_err(backend)?.as_deref());
        let next_seq = counter(RESULT_SEQ)?;
        let new: Vec<_> = (next_seq..)
            .zip(batch.results)
            .map(|(seq, result)| Kept::new((seq, result.session_id), result))
            .collect();
        let (dropped, remaining) = results_to_drop(
            self.log
                .scan_prefix([RESULT_ORDER])
                .map(|entry| {
                    let (key, value) = entry.map_err(backend)?;
                    decode_order_entry(&key, &value)
                })
                .chain(new.iter().copied().map(Ok)),
            counter(RESULT_BYTES)?.saturating_add(added_bytes(batch.results)),
            batch.retention,
        )?;
        for (seq, session_id) in dropped.iter().filter(|(seq, _)| *seq < next_seq) {
            writes.remove(&indexed_key(RESULT_ORDER, *seq));
            writes.remove(&result_key(session_id));
        }
        // What is dropped is a prefix in seq order, so new results past it are kept.
        let kept_from = dropped.last().map_or(0, |(seq, _)| seq + 1);
        for (kept, result) in new.iter().zip(batch.results) {
            if kept.key.0 >= kept_from {
                writes.insert(
                    &indexed_key(RESULT_ORDER, kept.key.0),
                    &encode_order_value(kept),
                );
                writes.insert(
                    &result_key(&result.session_id),
                    encode_retained_value(result),
                );
            }
        }
        writes.insert(RESULT_SEQ, &encode_size(next_seq + new.len() as u64));
        writes.insert(RESULT_BYTES, &encode_size(remaining));
        writes.insert(SIZE, &encode_size(new_size));
        writes.insert(CHECKPOINT, batch.checkpoint.as_bytes());
        self.log.apply_batch(writes).map_err(backend)?;
        self.db.flush().map_err(backend)?;
        self.log_file.sync_all()?;
        Ok(())
    }

    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if index >= self.size()? {
            return Ok(None);
        }
        match self.log.get(leaf_key(index)).map_err(backend)? {
            Some(leaf) => Ok(Some(leaf.to_vec())),
            None => Err(StoreError::Corrupt("a leaf below the log size is missing")),
        }
    }

    fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let Some((start, end)) = clamp_range(start, end, self.size()?) else {
            return Ok(Vec::new());
        };
        let range = self.log.range(leaf_key(start)..leaf_key(end));
        collect_leaves(
            start,
            end,
            range.map(|entry| {
                let (key, leaf) = entry.map_err(backend)?;
                Ok((decode_leaf_key(&key)?, leaf.to_vec()))
            }),
        )
    }

    fn subtree(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        if !subtree_fits(level, index, self.size()?) {
            return Ok(None);
        }
        let hash = self.log.get(subtree_key(level, index)).map_err(backend)?;
        hash.map(|hash| decode_hash(&hash)).transpose()
    }

    fn session_indices(&self, session_id: &[u8; 16]) -> Result<Vec<u64>, StoreError> {
        let size = self.size()?;
        let mut indices = Vec::new();
        for entry in self.log.scan_prefix(by_session_prefix(session_id)) {
            let (key, _) = entry.map_err(backend)?;
            let index = session_key_index(key.get(1..).unwrap_or_default())?;
            if index < size {
                indices.push(index);
            }
        }
        Ok(indices)
    }

    fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        let checkpoint = self.log.get(CHECKPOINT).map_err(backend)?;
        checkpoint
            .map(|checkpoint| decode_checkpoint(checkpoint.to_vec()))
            .transpose()
    }

    fn pending_requests(&self) -> Result<Vec<u64>, StoreError> {
        self.log
            .scan_prefix([PENDING])
            .map(|entry| decode_indexed_key(PENDING, &entry.map_err(backend)?.0))
            .collect()
    }

    fn retained_result(&self, session_id: &[u8; 16]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let value = self.log.get(result_key(session_id)).map_err(backend)?;
        value.map(|value| decode_retained_value(&value)).transpose()
    }

    fn retained_bytes(&self) -> Result<u64, StoreError> {
        decode_counter(self.log.get(RESULT_BYTES).map_err(backend)?.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_leaves(dir: &tempfile::TempDir) -> SledStore {
        let mut store = SledStore::open(
            &dir.path().join("log.sled"),
            super::super::DEFAULT_CACHE_BYTES,
        )
        .unwrap();
        let leaves = [vec![1; 90], vec![2; 163]];
        store
            .append(&Batch {
                first_index: 0,
                leaves: &leaves,
                session_ids: &[[1; 16]; 2],
                subtrees: &[(1, 0, [3; 32])],
                checkpoint: "origin\n2\nroot\n",
                ..Batch::default()
            })
            .unwrap();
        store
    }

    /// Reopens the store after `damage` wrote behind its back.
    fn reopen(dir: &tempfile::TempDir, store: SledStore) -> Result<SledStore, StoreError> {
        store.db.flush().unwrap();
        drop(store);
        SledStore::open(
            &dir.path().join("log.sled"),
            super::super::DEFAULT_CACHE_BYTES,
        )
    }

    #[test]
    fn bad_values_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_leaves(&dir);
        store.log.insert(subtree_key(1, 0), &[3; 31]).unwrap();
        store.log.insert(CHECKPOINT, &[0xff, 0xfe]).unwrap();
        store.log.insert(by_session_prefix(&[1; 16]), &[]).unwrap();
        let store = reopen(&dir, store).unwrap();
        assert!(matches!(store.subtree(1, 0), Err(StoreError::Corrupt(_))));
        assert!(matches!(store.checkpoint(), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            store.session_indices(&[1; 16]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn bad_size_is_refused_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_leaves(&dir);
        store.log.insert(SIZE, &[2; 4]).unwrap();
        let Err(StoreError::Corrupt(_)) = reopen(&dir, store) else {
            panic!("a 4-byte size was accepted");
        };

        let dir = tempfile::tempdir().unwrap();
        let store = store_with_leaves(&dir);
        store.log.remove(SIZE).unwrap();
        let Err(StoreError::Corrupt(_)) = reopen(&dir, store) else {
            panic!("a missing size was accepted with leaves present");
        };
    }

    #[test]
    fn missing_leaf_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_leaves(&dir);
        store.log.remove(leaf_key(0)).unwrap();
        let store = reopen(&dir, store).unwrap();
        assert!(matches!(store.leaf(0), Err(StoreError::Corrupt(_))));
        assert!(matches!(store.leaves(0, 2), Err(StoreError::Corrupt(_))));
        assert_eq!(store.leaf(1).unwrap(), Some(vec![2; 163]));
    }
}
