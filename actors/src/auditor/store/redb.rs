//! The redb backend: one file, seven tables, one write transaction per batch.
//!
//! Values are raw bytes decoded by us rather than typed redb values, whose decoders panic on a
//! wrong length; keys stay typed because redb checks their fixed widths itself.
//!
//! Session ids are random (`docs/PROTOCOL.md` §3), so every write keyed by one lands on a
//! random page of its table, and a commit's cost grows with the table. Only the by-session
//! index is keyed so, with one entry per session: everything else is keyed by leaf index and
//! written at its table's end. A run at 64 clients lost a fifth of its throughput in ten
//! minutes while results, their eviction and each session's result leaf were keyed by session.

use std::path::Path;

use ::redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle as _,
};

use super::{
    Batch, Kept, LogStore, NOT_PENDING, StoreError, added_bytes, check_batch, check_last_leaf,
    clamp_range, collect_leaves, decode_checkpoint, decode_counter, decode_hash,
    decode_retained_value, decode_size, encode_retained_value, encode_size, results_to_drop,
    session_key, session_key_index, split_retained_value, subtree_fits,
};

const LEAVES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("leaves");
/// (level, index) → hash.
const SUBTREES: TableDefinition<'static, (u8, u64), &[u8]> = TableDefinition::new("subtrees");
/// session_id ‖ index (big-endian) → (), so a session's leaves are one prefix range: every
/// leaf but those that answer a request, which [`ANSWERS`] finds. Result leaves stored before
/// [`ANSWERS`] existed are here too.
const BY_SESSION: TableDefinition<'static, &[u8; 24], ()> = TableDefinition::new("by_session");
/// A request leaf's index → the index of the result leaf that answers it.
const ANSWERS: TableDefinition<'static, u64, u64> = TableDefinition::new("answers");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
/// Request leaves without a result leaf yet.
const PENDING: TableDefinition<'static, u64, ()> = TableDefinition::new("pending");
/// The result leaf's index → when its session ended ‖ the result body. Sessions end in the
/// order of their result leaves, so this is written at its end and evicted from its front.
const RESULTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("result_bodies");
/// An earlier layout, moved on opening: session_id → when it ended ‖ the result body.
const RESULTS_BY_SESSION: TableDefinition<'static, &[u8; 16], &[u8]> =
    TableDefinition::new("results");
/// An earlier layout, dropped on opening: the eviction order, seq → session_id ‖ ended_ms ‖
/// body length, which [`RESULTS`]'s own order now gives.
const RESULT_ORDER: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("result_order");

const SIZE: &str = "size";
const CHECKPOINT: &str = "checkpoint";
/// The bytes of all retained bodies.
const RESULT_BYTES: &str = "result_bytes";
/// An earlier layout's next seq in [`RESULT_ORDER`], dropped with it.
const RESULT_SEQ: &str = "result_seq";

fn backend(error: impl std::fmt::Display) -> StoreError {
    super::backend_error("redb", error)
}

pub(super) struct RedbStore {
    db: Database,
}

impl RedbStore {
    pub(super) fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(backend)?;
        // Create the tables up front so that readers never meet a missing one.
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(LEAVES).map_err(backend)?;
            txn.open_table(SUBTREES).map_err(backend)?;
            txn.open_table(BY_SESSION).map_err(backend)?;
            txn.open_table(ANSWERS).map_err(backend)?;
            txn.open_table(META).map_err(backend)?;
            txn.open_table(PENDING).map_err(backend)?;
            txn.open_table(RESULTS).map_err(backend)?;
            move_results_keyed_by_session(&txn)?;
            drop_result_order(&txn)?;
        }
        txn.commit().map_err(backend)?;

        let store = Self { db };
        let txn = store.read()?;
        let size = size_in(&txn)?;
        let last = txn.open_table(LEAVES).map_err(backend)?;
        let last = last.last().map_err(backend)?.map(|(key, _)| key.value());
        check_last_leaf(size, last)?;
        Ok(store)
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().map_err(backend)
    }
}

/// Moves the results kept in the layout before [`RESULTS`] into it, each under its session's
/// result leaf, and drops the old table: once, on the first opening after an upgrade.
fn move_results_keyed_by_session(txn: &::redb::WriteTransaction) -> Result<(), StoreError> {
    let old_layout = txn
        .list_tables()
        .map_err(backend)?
        .any(|table| table.name() == RESULTS_BY_SESSION.name());
    if !old_layout {
        return Ok(());
    }
    {
        let old = txn.open_table(RESULTS_BY_SESSION).map_err(backend)?;
        let by_session = txn.open_table(BY_SESSION).map_err(backend)?;
        let answers = txn.open_table(ANSWERS).map_err(backend)?;
        let mut results = txn.open_table(RESULTS).map_err(backend)?;
        for entry in old.iter().map_err(backend)? {
            let (session_id, value) = entry.map_err(backend)?;
            let index = session_leaves(&by_session, &answers, session_id.value())?
                .last()
                .copied()
                .ok_or(StoreError::Corrupt("a kept result's session has no leaves"))?;
            results.insert(index, value.value()).map_err(backend)?;
        }
    }
    txn.delete_table(RESULTS_BY_SESSION).map_err(backend)?;
    Ok(())
}

/// Drops the eviction order of the layout before [`RESULTS`]' own order gave it: once, on the
/// first opening after an upgrade.
fn drop_result_order(txn: &::redb::WriteTransaction) -> Result<(), StoreError> {
    if txn.delete_table(RESULT_ORDER).map_err(backend)? {
        let mut meta = txn.open_table(META).map_err(backend)?;
        meta.remove(RESULT_SEQ).map_err(backend)?;
    }
    Ok(())
}

/// The indices of `session_id`'s leaves, ascending: those indexed under it and the result
/// leaves that answer them.
fn session_leaves(
    by_session: &impl ReadableTable<&'static [u8; 24], ()>,
    answers: &impl ReadableTable<u64, u64>,
    session_id: &[u8; 16],
) -> Result<Vec<u64>, StoreError> {
    let (low, high) = (
        session_key(session_id, 0),
        session_key(session_id, u64::MAX),
    );
    let mut indices = Vec::new();
    for entry in by_session
        .range::<&[u8; 24]>(&low..=&high)
        .map_err(backend)?
    {
        let (key, _) = entry.map_err(backend)?;
        let index = session_key_index(key.value())?;
        indices.push(index);
        if let Some(result) = answers.get(index).map_err(backend)? {
            indices.push(result.value());
        }
    }
    indices.sort_unstable();
    indices.dedup();
    Ok(indices)
}

/// A stored result as eviction sees it.
fn kept(index: u64, value: &[u8]) -> Result<Kept<u64>, StoreError> {
    let (ended_ms, body) = split_retained_value(value)?;
    Ok(Kept {
        key: index,
        ended_ms,
        len: body.len() as u64,
    })
}

fn size_in(txn: &ReadTransaction) -> Result<u64, StoreError> {
    meta_value(&txn.open_table(META).map_err(backend)?, SIZE, decode_size)
}

/// The meta value under `key` as `decode` reads it; `decode` is given `None` if there is none.
fn meta_value(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
    decode: fn(Option<&[u8]>) -> Result<u64, StoreError>,
) -> Result<u64, StoreError> {
    let value = meta.get(key).map_err(backend)?;
    decode(value.as_ref().map(|value| value.value()))
}

impl LogStore for RedbStore {
    fn size(&self) -> Result<u64, StoreError> {
        size_in(&self.read()?)
    }

    fn append(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        // Immediate is redb 4's default; stated so that a changed default cannot weaken it.
        txn.set_durability(Durability::Immediate).map_err(backend)?;
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let size = meta_value(&meta, SIZE, decode_size)?;
            // On error the transaction is dropped, which aborts it: nothing was written.
            let new_size = check_batch(batch, size)?;

            let mut leaves = txn.open_table(LEAVES).map_err(backend)?;
            let mut by_session = txn.open_table(BY_SESSION).map_err(backend)?;
            let mut answers = txn.open_table(ANSWERS).map_err(backend)?;
            let mut pending = txn.open_table(PENDING).map_err(backend)?;
            let mut answer_at = batch
                .answers
                .iter()
                .map(|answer| answer.result_index)
                .peekable();
            for ((index, leaf), session_id) in (size..).zip(batch.leaves).zip(batch.session_ids) {
                leaves.insert(index, leaf.as_slice()).map_err(backend)?;
                if answer_at.next_if_eq(&index).is_none() {
                    by_session
                        .insert(&session_key(session_id, index), ())
                        .map_err(backend)?;
                }
            }
            for index in batch.requests_opened {
                pending.insert(*index, ()).map_err(backend)?;
            }
            for answer in batch.answers {
                if pending
                    .remove(answer.request_index)
                    .map_err(backend)?
                    .is_none()
                {
                    return Err(StoreError::InvalidBatch(NOT_PENDING));
                }
                answers
                    .insert(answer.request_index, answer.result_index)
                    .map_err(backend)?;
            }
            let mut subtrees = txn.open_table(SUBTREES).map_err(backend)?;
            for (level, index, hash) in batch.subtrees {
                subtrees
                    .insert((*level, *index), hash.as_slice())
                    .map_err(backend)?;
            }

            let stored_bytes = meta_value(&meta, RESULT_BYTES, decode_counter)?;
            let mut results = txn.open_table(RESULTS).map_err(backend)?;
            let (dropped, remaining) = results_to_drop(
                results
                    .iter()
                    .map_err(backend)?
                    .map(|entry| {
                        let (index, value) = entry.map_err(backend)?;
                        kept(index.value(), value.value())
                    })
                    .chain(
                        batch
                            .results
                            .iter()
                            .map(|result| Ok(Kept::new(result.leaf_index, result))),
                    ),
                stored_bytes.saturating_add(added_bytes(batch.results)),
                batch.retention,
            )?;
            for index in dropped.iter().filter(|&&index| index < size) {
                results.remove(*index).map_err(backend)?;
            }
            // What is dropped is a prefix in leaf order, so new results past it are kept.
            let kept_from = dropped.last().map_or(0, |index| index + 1);
            for result in batch
                .results
                .iter()
                .filter(|result| result.leaf_index >= kept_from)
            {
                results
                    .insert(result.leaf_index, encode_retained_value(result).as_slice())
                    .map_err(backend)?;
            }
            meta.insert(RESULT_BYTES, encode_size(remaining).as_slice())
                .map_err(backend)?;
            meta.insert(SIZE, encode_size(new_size).as_slice())
                .map_err(backend)?;
            meta.insert(CHECKPOINT, batch.checkpoint.as_bytes())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        if index >= size_in(&txn)? {
            return Ok(None);
        }
        let leaves = txn.open_table(LEAVES).map_err(backend)?;
        match leaves.get(index).map_err(backend)? {
            Some(leaf) => Ok(Some(leaf.value().to_vec())),
            None => Err(StoreError::Corrupt("a leaf below the log size is missing")),
        }
    }

    fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let Some((start, end)) = clamp_range(start, end, size_in(&txn)?) else {
            return Ok(Vec::new());
        };
        let leaves = txn.open_table(LEAVES).map_err(backend)?;
        let range = leaves.range(start..end).map_err(backend)?;
        collect_leaves(
            start,
            end,
            range.map(|entry| {
                let (index, leaf) = entry.map_err(backend)?;
                Ok((index.value(), leaf.value().to_vec()))
            }),
        )
    }

    fn subtree(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let txn = self.read()?;
        if !subtree_fits(level, index, size_in(&txn)?) {
            return Ok(None);
        }
        let subtrees = txn.open_table(SUBTREES).map_err(backend)?;
        let hash = subtrees.get((level, index)).map_err(backend)?;
        hash.map(|hash| decode_hash(hash.value())).transpose()
    }

    fn session_indices(&self, session_id: &[u8; 16]) -> Result<Vec<u64>, StoreError> {
        let txn = self.read()?;
        let size = size_in(&txn)?;
        let mut indices = session_leaves(
            &txn.open_table(BY_SESSION).map_err(backend)?,
            &txn.open_table(ANSWERS).map_err(backend)?,
            session_id,
        )?;
        indices.retain(|&index| index < size);
        Ok(indices)
    }

    fn checkpoint(&self) -> Result<Option<String>, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META).map_err(backend)?;
        let checkpoint = meta.get(CHECKPOINT).map_err(backend)?;
        checkpoint
            .map(|checkpoint| decode_checkpoint(checkpoint.value().to_vec()))
            .transpose()
    }

    fn pending_requests(&self) -> Result<Vec<u64>, StoreError> {
        let txn = self.read()?;
        let pending = txn.open_table(PENDING).map_err(backend)?;
        pending
            .iter()
            .map_err(backend)?
            .map(|entry| Ok(entry.map_err(backend)?.0.value()))
            .collect()
    }

    fn retained_result(&self, session_id: &[u8; 16]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let txn = self.read()?;
        let leaves = session_leaves(
            &txn.open_table(BY_SESSION).map_err(backend)?,
            &txn.open_table(ANSWERS).map_err(backend)?,
            session_id,
        )?;
        // A session's result leaf is its last.
        let Some(&index) = leaves.last() else {
            return Ok(None);
        };
        let results = txn.open_table(RESULTS).map_err(backend)?;
        let value = results.get(index).map_err(backend)?;
        value
            .map(|value| decode_retained_value(value.value()))
            .transpose()
    }

    fn retained_bytes(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        meta_value(
            &txn.open_table(META).map_err(backend)?,
            RESULT_BYTES,
            decode_counter,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Overwrites one meta or subtree value behind the store's back.
    fn damage(path: &Path, write: impl FnOnce(&::redb::WriteTransaction)) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        write(&txn);
        txn.commit().unwrap();
    }

    fn store_with_leaves(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let path = dir.path().join("log.redb");
        let mut store = RedbStore::open(&path, super::super::DEFAULT_CACHE_BYTES).unwrap();
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
        path
    }

    /// A data directory from before [`RESULTS`]: its kept result, keyed by session id, is
    /// served after the upgrade, from the new table, and the old one is gone.
    #[test]
    fn results_kept_by_session_id_are_moved_on_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_leaves(&dir);
        let kept = [[0, 0, 0, 0, 0, 0, 0, 9].as_slice(), b"the body"].concat();
        damage(&path, |txn| {
            txn.delete_table(RESULTS).unwrap();
            let mut old = txn.open_table(RESULTS_BY_SESSION).unwrap();
            old.insert(&[1; 16], kept.as_slice()).unwrap();
        });
        let store = RedbStore::open(&path, super::super::DEFAULT_CACHE_BYTES).unwrap();
        assert_eq!(
            store.retained_result(&[1; 16]).unwrap(),
            Some((9, b"the body".to_vec())),
            "under the session's result leaf, 1"
        );
        let txn = store.read().unwrap();
        assert!(
            !txn.list_tables()
                .unwrap()
                .any(|table| table.name() == RESULTS_BY_SESSION.name())
        );
    }

    /// A data directory whose results had an eviction order of their own loses it on
    /// opening, and its results are then evicted in leaf order.
    #[test]
    fn the_eviction_order_before_is_dropped_on_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_leaves(&dir);
        let kept = [[0, 0, 0, 0, 0, 0, 0, 9].as_slice(), b"the body"].concat();
        damage(&path, |txn| {
            let mut order = txn.open_table(RESULT_ORDER).unwrap();
            order.insert(0, [1; 32].as_slice()).unwrap();
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(RESULT_SEQ, encode_size(1).as_slice()).unwrap();
            meta.insert(RESULT_BYTES, encode_size(8).as_slice())
                .unwrap();
            let mut results = txn.open_table(RESULTS).unwrap();
            results.insert(1, kept.as_slice()).unwrap();
        });
        let mut store = RedbStore::open(&path, super::super::DEFAULT_CACHE_BYTES).unwrap();
        {
            let txn = store.read().unwrap();
            assert!(
                !txn.list_tables()
                    .unwrap()
                    .any(|table| table.name() == RESULT_ORDER.name())
            );
            let meta = txn.open_table(META).unwrap();
            assert!(meta.get(RESULT_SEQ).unwrap().is_none());
        }
        assert_eq!(
            store.retained_result(&[1; 16]).unwrap(),
            Some((9, b"the body".to_vec()))
        );
        store
            .append(&Batch {
                first_index: 2,
                checkpoint: "origin\n2\nroot\n",
                retention: crate::auditor::store::Retention {
                    expire_before_ms: 10,
                    max_bytes: u64::MAX,
                },
                ..Batch::default()
            })
            .unwrap();
        assert_eq!(store.retained_result(&[1; 16]).unwrap(), None);
        assert_eq!(store.retained_bytes().unwrap(), 0);
    }

    #[test]
    fn bad_subtree_hash_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_leaves(&dir);
        damage(&path, |txn| {
            let mut table = txn.open_table(SUBTREES).unwrap();
            table.insert((1, 0), [3; 31].as_slice()).unwrap();
        });
        let store = RedbStore::open(&path, super::super::DEFAULT_CACHE_BYTES).unwrap();
        assert!(matches!(store.subtree(1, 0), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn bad_checkpoint_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_leaves(&dir);
        damage(&path, |txn| {
            let mut table = txn.open_table(META).unwrap();
            table.insert(CHECKPOINT, [0xff, 0xfe].as_slice()).unwrap();
        });
        let store = RedbStore::open(&path, super::super::DEFAULT_CACHE_BYTES).unwrap();
        assert!(matches!(store.checkpoint(), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn bad_size_is_refused_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_leaves(&dir);
        damage(&path, |txn| {
            let mut table = txn.open_table(META).unwrap();
            table.insert(SIZE, [2; 4].as_slice()).unwrap();
        });
        assert!(matches!(
            RedbStore::open(&path, super::super::DEFAULT_CACHE_BYTES),
            Err(StoreError::Corrupt(_))
        ));

        damage(&path, |txn| {
            let mut table = txn.open_table(META).unwrap();
            table.insert(SIZE, encode_size(3).as_slice()).unwrap();
        });
        assert!(matches!(
            RedbStore::open(&path, super::super::DEFAULT_CACHE_BYTES),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn missing_leaf_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_with_leaves(&dir);
        damage(&path, |txn| {
            let mut table = txn.open_table(LEAVES).unwrap();
            table.remove(0).unwrap();
        });
        // The last leaf still matches the size, so only reads of the hole notice it.
        let store = RedbStore::open(&path, super::super::DEFAULT_CACHE_BYTES).unwrap();
        assert!(matches!(store.leaf(0), Err(StoreError::Corrupt(_))));
        assert!(matches!(store.leaves(0, 2), Err(StoreError::Corrupt(_))));
        assert_eq!(store.leaf(1).unwrap(), Some(vec![2; 163]));
    }
}
