//! The redb backend: one file, seven tables, one write transaction per batch.
//!
//! Values are raw bytes decoded by us rather than typed redb values, whose decoders panic on a
//! wrong length; keys stay typed because redb checks their fixed widths itself.

use std::path::Path;

use ::redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle as _,
};

use super::{
    Batch, LogStore, Retained, StoreError, check_batch, check_last_leaf, clamp_range,
    collect_leaves, decode_checkpoint, decode_counter, decode_hash, decode_retained_value,
    decode_size, encode_retained_value, encode_size, numbered, results_to_drop, session_key,
    session_key_index, subtree_fits,
};

const LEAVES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("leaves");
/// (level, index) → hash.
const SUBTREES: TableDefinition<'static, (u8, u64), &[u8]> = TableDefinition::new("subtrees");
/// session_id ‖ index (big-endian) → (), so a session's leaves are one prefix range.
const BY_SESSION: TableDefinition<'static, &[u8; 24], ()> = TableDefinition::new("by_session");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
/// Request leaves without a result leaf yet.
const PENDING: TableDefinition<'static, u64, ()> = TableDefinition::new("pending");
/// The result leaf's index → when its session ended ‖ the result body. Results end in the
/// order of their leaves, so this is written at its end and evicted from its front; keyed by
/// the session id, as it once was (`results`, moved here on opening), every result written and
/// evicted landed on a random page of a gigabyte table, and a long run slowed by a fifth.
const RESULTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("result_bodies");
/// The layout before: session_id → when it ended ‖ the result body.
const RESULTS_BY_SESSION: TableDefinition<'static, &[u8; 16], &[u8]> =
    TableDefinition::new("results");
/// Eviction order: seq → session_id ‖ ended_ms ‖ body length.
const RESULT_ORDER: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("result_order");

const SIZE: &str = "size";
const CHECKPOINT: &str = "checkpoint";
/// The next retained result's seq, and the bytes of all retained bodies.
const RESULT_SEQ: &str = "result_seq";
const RESULT_BYTES: &str = "result_bytes";

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
            txn.open_table(META).map_err(backend)?;
            txn.open_table(PENDING).map_err(backend)?;
            txn.open_table(RESULTS).map_err(backend)?;
            txn.open_table(RESULT_ORDER).map_err(backend)?;
            move_results_keyed_by_session(&txn)?;
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
        let mut results = txn.open_table(RESULTS).map_err(backend)?;
        for entry in old.iter().map_err(backend)? {
            let (session_id, value) = entry.map_err(backend)?;
            let index = result_leaf(&by_session, session_id.value())?
                .ok_or(StoreError::Corrupt("a kept result's session has no leaves"))?;
            results.insert(index, value.value()).map_err(backend)?;
        }
    }
    txn.delete_table(RESULTS_BY_SESSION).map_err(backend)?;
    Ok(())
}

/// The last leaf of `session_id`: its result leaf, once it has one.
fn result_leaf(
    by_session: &impl ReadableTable<&'static [u8; 24], ()>,
    session_id: &[u8; 16],
) -> Result<Option<u64>, StoreError> {
    let (low, high) = (
        session_key(session_id, 0),
        session_key(session_id, u64::MAX),
    );
    let last = by_session
        .range::<&[u8; 24]>(&low..=&high)
        .map_err(backend)?
        .next_back()
        .transpose()
        .map_err(backend)?;
    last.map(|(key, _)| session_key_index(key.value()))
        .transpose()
}

fn size_in(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let meta = txn.open_table(META).map_err(backend)?;
    let size = meta.get(SIZE).map_err(backend)?;
    decode_size(size.as_ref().map(|value| value.value()))
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
            let size = decode_size(
                meta.get(SIZE)
                    .map_err(backend)?
                    .as_ref()
                    .map(|value| value.value()),
            )?;
            // On error the transaction is dropped, which aborts it: nothing was written.
            let new_size = check_batch(batch, size)?;

            let mut leaves = txn.open_table(LEAVES).map_err(backend)?;
            let mut by_session = txn.open_table(BY_SESSION).map_err(backend)?;
            for ((index, leaf), session_id) in (size..).zip(batch.leaves).zip(batch.session_ids) {
                leaves.insert(index, leaf.as_slice()).map_err(backend)?;
                by_session
                    .insert(&session_key(session_id, index), ())
                    .map_err(backend)?;
            }
            let mut subtrees = txn.open_table(SUBTREES).map_err(backend)?;
            for (level, index, hash) in batch.subtrees {
                subtrees
                    .insert((*level, *index), hash.as_slice())
                    .map_err(backend)?;
            }
            let mut pending = txn.open_table(PENDING).map_err(backend)?;
            for index in batch.requests_opened {
                pending.insert(*index, ()).map_err(backend)?;
            }
            for index in batch.requests_answered {
                pending.remove(*index).map_err(backend)?;
            }

            let counter = |meta: &::redb::Table<'_, &str, &[u8]>, key| {
                let value = meta.get(key).map_err(backend)?;
                decode_counter(value.as_ref().map(|value| value.value()))
            };
            let next_seq = counter(&meta, RESULT_SEQ)?;
            let stored_bytes = counter(&meta, RESULT_BYTES)?;
            let new: Vec<_> = numbered(batch.results, next_seq).collect();
            let added: u64 = new.iter().map(|(retained, _)| retained.len).sum();
            let mut order = txn.open_table(RESULT_ORDER).map_err(backend)?;
            let (dropped, remaining) = results_to_drop(
                order
                    .iter()
                    .map_err(backend)?
                    .map(|entry| {
                        let (seq, value) = entry.map_err(backend)?;
                        Retained::decode(seq.value(), value.value())
                    })
                    .chain(new.iter().map(|(retained, _)| Ok(*retained))),
                stored_bytes.saturating_add(added),
                batch.retention,
            )?;
            let mut results = txn.open_table(RESULTS).map_err(backend)?;
            for gone in dropped.iter().filter(|gone| gone.seq < next_seq) {
                order.remove(gone.seq).map_err(backend)?;
                if let Some(index) = result_leaf(&by_session, &gone.session_id)? {
                    results.remove(index).map_err(backend)?;
                }
            }
            // What is dropped is a prefix in seq order, so new results past it are kept.
            let kept_from = dropped.last().map_or(0, |gone| gone.seq + 1);
            for (retained, result) in new.iter().filter(|(retained, _)| retained.seq >= kept_from) {
                order
                    .insert(retained.seq, retained.encode().as_slice())
                    .map_err(backend)?;
                results
                    .insert(result.leaf_index, encode_retained_value(result).as_slice())
                    .map_err(backend)?;
            }
            let next_seq = next_seq + new.len() as u64;
            meta.insert(RESULT_SEQ, encode_size(next_seq).as_slice())
                .map_err(backend)?;
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
        let by_session = txn.open_table(BY_SESSION).map_err(backend)?;
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
            if index < size {
                indices.push(index);
            }
        }
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
        let by_session = txn.open_table(BY_SESSION).map_err(backend)?;
        let Some(index) = result_leaf(&by_session, session_id)? else {
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
        let meta = txn.open_table(META).map_err(backend)?;
        let value = meta.get(RESULT_BYTES).map_err(backend)?;
        decode_counter(value.as_ref().map(|value| value.value()))
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
