//! The audit log's Merkle tree (RFC 9162 §2.1 over SHA-256): hashing, the perfect subtrees a store
//! keeps, and the roots and proofs computed from them and verified with ct-merkle.
//!
//! A store holds the hash of every *finished perfect subtree*, addressed by `(level, index)`: level
//! 0 index `i` is leaf `i`'s hash, level `k` index `i` covers leaves `[i·2^k, (i+1)·2^k)`. Such a
//! subtree never changes once its last leaf is appended, so [`new_subtrees`] yields exactly the rows
//! to write in the append's transaction, and any earlier tree size can still be proven.
//!
//! Which nodes a proof needs comes from ct-merkle's `indices_for_inclusion_proof` and
//! `indices_for_consistency_proof`; what is written here is the rest, which ct-merkle cannot do for
//! a store of perfect subtrees. Its indices name nodes of an array-based (RFC 9420) tree, and a
//! node on the tree's right edge covers a partial range that no store row holds, so each node is
//! mapped to its leaf range and that range's hash folded from the perfect subtrees of its binary
//! decomposition (the same right fold as MTH, which splits at the largest power of two below
//! `n`). A proof has at most one such partial node, so it costs at most `2·⌈log2 n⌉ + 1` lookups;
//! a root costs one per set bit of the size.
//!
//! Verification is ct-merkle's `RootHash::verify_inclusion` and `verify_consistency`. Its inclusion
//! verifier hashes the leaf itself and has no entry point for a precomputed leaf hash, so
//! [`verify_inclusion`] takes the leaf bytes (which every auditor holds, §6); feeding it a leaf
//! hash would mean a fake `Digest` that skips the leaf hashing, and a verifier is the wrong place
//! for that trick. ct-merkle's index functions panic on an empty tree, an index outside it and
//! sizes above 2^63, so every entry point checks those bounds first.

use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::commitment::Digest;

/// Above 2^63 leaves ct-merkle's node indices overflow; no log gets anywhere near it.
const MAX_SIZE: u64 = 1 << 63;

/// `H2(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Digest {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(leaf)
        .finalize()
        .into()
}

/// `H2(0x01 ‖ left ‖ right)`.
pub(crate) fn node_hash(left: &Digest, right: &Digest) -> Digest {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The empty tree's root, `H2("")` (RFC 9162 §2.1.1).
pub fn empty_root() -> Digest {
    Sha256::digest(b"").into()
}

/// Where the hashes of finished perfect subtrees come from: a database, a file, a map.
pub trait SubtreeHashes {
    /// Why a lookup failed.
    type Error;

    /// The hash of the perfect subtree covering leaves `[index·2^level, (index+1)·2^level)`.
    fn subtree_hash(&self, level: u8, index: u64) -> Result<Digest, Self::Error>;
}

/// A finished perfect subtree as a store keeps it: `(level, index, hash)`.
pub(crate) type Subtree = (u8, u64, Digest);

/// Why a tree computation over stored hashes failed.
#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    /// The sizes or index are out of range; the message says which rule they break.
    #[error("{0}")]
    Invalid(&'static str),
    /// A subtree hash could not be looked up.
    #[error("subtree hash lookup failed")]
    Lookup(#[source] E),
}

/// Every perfect subtree completed by appending `leaf_hashes` to a tree of `size_before` leaves,
/// leaves included, as `(level, index, hash)` in append order. Looks up only the pre-existing
/// right-edge subtrees that the new leaves complete: at most one per set bit of `size_before`.
pub fn new_subtrees<L: SubtreeHashes + ?Sized>(
    size_before: u64,
    leaf_hashes: &[Digest],
    lookup: &L,
) -> Result<Vec<Subtree>, ProofError<L::Error>> {
    u64::try_from(leaf_hashes.len())
        .ok()
        .and_then(|count| size_before.checked_add(count))
        .filter(|&size| size <= MAX_SIZE)
        .ok_or(ProofError::Invalid("tree size above 2^63"))?;
    let mut subtrees = Vec::with_capacity(2 * leaf_hashes.len());
    // This batch's subtrees still on the right edge, highest level first: a new leaf merges with
    // these before it needs any older subtree from the store.
    let mut fresh: Vec<(u8, Digest)> = Vec::new();
    for (index, leaf) in (size_before..).zip(leaf_hashes) {
        let (mut level, mut hash) = (0u8, *leaf);
        subtrees.push((0, index, hash));
        // Leaf `index` completes one subtree per trailing one bit of `index`.
        while (index >> level) & 1 == 1 {
            let left = match fresh.last() {
                Some(&(top, left)) if top == level => {
                    fresh.pop();
                    left
                }
                _ => lookup
                    .subtree_hash(level, (index >> level) - 1)
                    .map_err(ProofError::Lookup)?,
            };
            hash = node_hash(&left, &hash);
            level += 1;
            subtrees.push((level, index >> level, hash));
        }
        fresh.push((level, hash));
    }
    Ok(subtrees)
}

/// The root of the first `size` leaves: the perfect subtrees of `size`'s binary decomposition,
/// folded right to left. One lookup per set bit of `size`; any `size` up to the current one.
pub fn root<L: SubtreeHashes + ?Sized>(size: u64, lookup: &L) -> Result<Digest, L::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(0, size, lookup)
}

/// RFC 9162 §2.1.3.1 `PATH(index, D[size])`, for any `size` up to the current one.
pub fn inclusion_proof<L: SubtreeHashes + ?Sized>(
    index: u64,
    size: u64,
    lookup: &L,
) -> Result<Vec<Digest>, ProofError<L::Error>> {
    if index >= size {
        return Err(ProofError::Invalid(
            "leaf index must be below the tree size",
        ));
    }
    if size > MAX_SIZE {
        return Err(ProofError::Invalid("tree size above 2^63"));
    }
    let nodes = ct_merkle::indices_for_inclusion_proof(size, index);
    nodes_hashes(&nodes, size, lookup)
}

/// RFC 9162 §2.1.4.1 `PROOF(old, D[new])`, for `1 ≤ old ≤ new` up to the current size.
pub fn consistency_proof<L: SubtreeHashes + ?Sized>(
    old: u64,
    new: u64,
    lookup: &L,
) -> Result<Vec<Digest>, ProofError<L::Error>> {
    if old == 0 {
        return Err(ProofError::Invalid("old tree size must be at least 1"));
    }
    if old > new {
        return Err(ProofError::Invalid("old tree size above the new one"));
    }
    if new > MAX_SIZE {
        return Err(ProofError::Invalid("tree size above 2^63"));
    }
    let nodes = ct_merkle::indices_for_consistency_proof(old, new - old);
    nodes_hashes(&nodes, new, lookup)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves with `root`.
pub fn verify_inclusion(
    leaf: &[u8],
    index: u64,
    size: u64,
    proof: &[Digest],
    root: &Digest,
) -> Result<(), Error> {
    if index >= size {
        return Err(Error::Checkpoint("leaf index must be below the tree size"));
    }
    if size > MAX_SIZE {
        return Err(Error::Checkpoint("tree size above 2^63"));
    }
    RootHash::<Sha256>::new((*root).into(), size)
        .verify_inclusion(&leaf, index, &InclusionProof::from_digests(&digests(proof)))
        .map_err(|_| Error::Checkpoint("inclusion proof does not match the root"))
}

/// Checks that the tree of `new` leaves with `new_root` extends the one of `old` with `old_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Digest,
    new_root: &Digest,
    proof: &[Digest],
) -> Result<(), Error> {
    if old == 0 {
        return Err(Error::Checkpoint("old tree size must be at least 1"));
    }
    if old > new {
        return Err(Error::Checkpoint("old tree size above the new one"));
    }
    if new > MAX_SIZE {
        return Err(Error::Checkpoint("tree size above 2^63"));
    }
    RootHash::<Sha256>::new((*new_root).into(), new)
        .verify_consistency(
            &RootHash::new((*old_root).into(), old),
            &ConsistencyProof::from_digests(&digests(proof)),
        )
        .map_err(|_| Error::Checkpoint("consistency proof does not match the roots"))
}

fn digests(proof: &[Digest]) -> Vec<ct_merkle::digest::Output<Sha256>> {
    proof.iter().map(|&hash| hash.into()).collect()
}

/// The hashes of ct-merkle's array-tree nodes in a tree of `size` leaves. Node `x` at level `k`
/// (its trailing one bits) covers leaves from `(x >> (k+1)) << k`, up to `2^k` of them, cut at
/// `size`.
fn nodes_hashes<L: SubtreeHashes + ?Sized>(
    nodes: &[u64],
    size: u64,
    lookup: &L,
) -> Result<Vec<Digest>, ProofError<L::Error>> {
    nodes
        .iter()
        .map(|&node| {
            let level = node.trailing_ones();
            let start = node.checked_shr(level + 1).unwrap_or(0) << level;
            let end = start.saturating_add(1 << level).min(size);
            range_hash(start, end, lookup).map_err(ProofError::Lookup)
        })
        .collect()
}

/// MTH of leaves `[start, end)`, where `start` is a multiple of the smallest power of two not
/// below `end - start` (true of every range MTH's recursion produces): one lookup per set bit of
/// the length, smallest subtree first.
fn range_hash<L: SubtreeHashes + ?Sized>(
    start: u64,
    end: u64,
    lookup: &L,
) -> Result<Digest, L::Error> {
    let length = end - start;
    let mut chunk_end = end;
    let mut folded: Option<Digest> = None;
    for level in (0..64u8).filter(|&level| (length >> level) & 1 == 1) {
        let chunk_start = chunk_end - (1 << level);
        let hash = lookup.subtree_hash(level, chunk_start >> level)?;
        folded = Some(match folded {
            Some(right) => node_hash(&hash, &right),
            None => hash,
        });
        chunk_end = chunk_start;
    }
    Ok(folded.expect("proof nodes and roots cover at least one leaf"))
}

/// The right edge of a tree: the perfect subtrees of its size's binary decomposition, highest
/// first. That is all that appending leaves and computing the root need, so a log held this way
/// costs O(log n) memory however long it grows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RightEdge {
    size: u64,
    /// `(level, hash)`, one per set bit of `size`, highest level first.
    subtrees: Vec<(u8, Digest)>,
}

impl RightEdge {
    /// Loads the edge of a tree of `size` leaves from `lookup`: one lookup per set bit of `size`.
    pub fn load<L: SubtreeHashes + ?Sized>(
        size: u64,
        lookup: &L,
    ) -> Result<Self, ProofError<L::Error>> {
        if size > MAX_SIZE {
            return Err(ProofError::Invalid("tree size above 2^63"));
        }
        let subtrees = edge_levels(size)
            .map(|level| Ok((level, lookup.subtree_hash(level, (size >> level) - 1)?)))
            .collect::<Result<_, _>>()
            .map_err(ProofError::Lookup)?;
        Ok(Self { size, subtrees })
    }

    /// Appends leaves by their hashes; returns the subtrees they complete, as [`new_subtrees`].
    pub fn push(&mut self, leaf_hashes: &[Digest]) -> Result<Vec<Subtree>, ProofError<Error>> {
        let completed = new_subtrees(self.size, leaf_hashes, self)?;
        let new_size = self.size + leaf_hashes.len() as u64;
        // The new edge's subtrees are either old edge subtrees or among those just completed.
        let find = |level: u8| {
            let index = (new_size >> level) - 1;
            completed
                .iter()
                .rev()
                .find(|&&(l, i, _)| (l, i) == (level, index))
                .map(|&(_, _, hash)| hash)
                .or_else(|| self.subtree_hash(level, index).ok())
                .expect("every subtree of the new edge is old or just completed")
        };
        let subtrees = edge_levels(new_size)
            .map(|level| (level, find(level)))
            .collect();
        self.subtrees = subtrees;
        self.size = new_size;
        Ok(completed)
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root: the edge folded right to left, as MTH splits it.
    pub fn root(&self) -> Digest {
        self.subtrees
            .iter()
            .rev()
            .map(|&(_, hash)| hash)
            .reduce(|right, left| node_hash(&left, &right))
            .unwrap_or_else(empty_root)
    }
}

impl SubtreeHashes for RightEdge {
    type Error = Error;

    /// Only the edge's own subtrees are held.
    fn subtree_hash(&self, level: u8, index: u64) -> Result<Digest, Error> {
        self.subtrees
            .iter()
            .find(|&&(l, _)| l == level)
            .filter(|_| (self.size >> level).checked_sub(1) == Some(index))
            .map(|&(_, hash)| hash)
            .ok_or(Error::Checkpoint("no such subtree on the right edge"))
    }
}

/// The levels of the perfect subtrees that make up a tree of `size` leaves, highest first.
fn edge_levels(size: u64) -> impl Iterator<Item = u8> {
    (0..64u8).rev().filter(move |level| size >> level & 1 == 1)
}

/// A whole tree held in memory, grown leaf by leaf: the reference the tests and the published
/// vectors prove against. Checking a log needs only its [`RightEdge`].
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct MemoryTree {
    subtrees: std::collections::HashMap<(u8, u64), Digest>,
    size: u64,
}

#[cfg(test)]
impl MemoryTree {
    /// Appends leaves by their hashes; returns the subtrees they complete.
    pub(crate) fn push(
        &mut self,
        leaf_hashes: &[Digest],
    ) -> Result<Vec<Subtree>, ProofError<Error>> {
        let new = new_subtrees(self.size, leaf_hashes, self)?;
        self.subtrees.extend(
            new.iter()
                .map(|&(level, index, hash)| ((level, index), hash)),
        );
        self.size += leaf_hashes.len() as u64;
        Ok(new)
    }

    /// The number of leaves pushed.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 9162 root hash of the leaves pushed.
    pub(crate) fn root(&self) -> Digest {
        root(self.size, self).expect("every subtree of a pushed tree is held")
    }
}

#[cfg(test)]
impl SubtreeHashes for MemoryTree {
    type Error = Error;

    fn subtree_hash(&self, level: u8, index: u64) -> Result<Digest, Error> {
        self.subtrees
            .get(&(level, index))
            .copied()
            .ok_or(Error::Checkpoint("no such subtree in the tree"))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashMap;

    use serde_json::Value;

    use super::*;

    /// An in-memory store, fed only by `new_subtrees`, that counts its lookups.
    #[derive(Default)]
    struct MemoryStore {
        hashes: HashMap<(u8, u64), Digest>,
        size: u64,
        lookups: Cell<usize>,
    }

    #[derive(Debug, PartialEq)]
    struct Missing(u8, u64);

    impl SubtreeHashes for MemoryStore {
        type Error = Missing;

        fn subtree_hash(&self, level: u8, index: u64) -> Result<Digest, Missing> {
            self.lookups.set(self.lookups.get() + 1);
            self.hashes
                .get(&(level, index))
                .copied()
                .ok_or(Missing(level, index))
        }
    }

    impl MemoryStore {
        fn append(&mut self, leaf_hashes: &[Digest]) {
            for (level, index, hash) in new_subtrees(self.size, leaf_hashes, self).unwrap() {
                assert!(self.hashes.insert((level, index), hash).is_none());
            }
            self.size += leaf_hashes.len() as u64;
        }

        /// Appends in uneven batches (1, 2, …, 7 leaves, repeating).
        fn with_leaf_hashes(leaf_hashes: &[Digest]) -> Self {
            let mut store = Self::default();
            let mut rest = leaf_hashes;
            for batch in (1..=7).cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at(batch.min(rest.len()));
                store.append(now);
                rest = later;
            }
            store
        }

        fn counted<T>(&self, f: impl FnOnce(&Self) -> T) -> (T, usize) {
            self.lookups.set(0);
            let out = f(self);
            (out, self.lookups.get())
        }
    }

    fn leaves(count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| format!("leaf {i}").into_bytes())
            .collect()
    }

    /// RFC 9162 §2.1 read literally over the leaves themselves, the reference for everything, with
    /// `MTH(D[start:end])` memoised as `mth[start][end]` to keep a debug build quick.
    struct Reference {
        mth: Vec<Vec<Digest>>,
    }

    impl Reference {
        fn new(leaves: &[Vec<u8>]) -> Self {
            let n = leaves.len();
            let mut mth = vec![vec![empty_root(); n + 1]; n + 1];
            for length in 1..=n {
                for start in 0..=n - length {
                    let end = start + length;
                    mth[start][end] = if length == 1 {
                        leaf_hash(&leaves[start])
                    } else {
                        let mid = start + split(length);
                        node_hash(&mth[start][mid], &mth[mid][end])
                    };
                }
            }
            Self { mth }
        }

        /// `PATH(m, D[start:end])`, `m` counted from leaf 0.
        fn path(&self, m: usize, start: usize, end: usize) -> Vec<Digest> {
            if end - start <= 1 {
                return vec![];
            }
            let mid = start + split(end - start);
            let (mut path, sibling) = if m < mid {
                (self.path(m, start, mid), self.mth[mid][end])
            } else {
                (self.path(m, mid, end), self.mth[start][mid])
            };
            path.push(sibling);
            path
        }

        /// `SUBPROOF(m - start, D[start:end], complete)`, `m` counted from leaf 0.
        fn subproof(&self, m: usize, start: usize, end: usize, complete: bool) -> Vec<Digest> {
            if m == end {
                return if complete {
                    vec![]
                } else {
                    vec![self.mth[start][end]]
                };
            }
            let mid = start + split(end - start);
            let (mut proof, sibling) = if m <= mid {
                (self.subproof(m, start, mid, complete), self.mth[mid][end])
            } else {
                (self.subproof(m, mid, end, false), self.mth[start][mid])
            };
            proof.push(sibling);
            proof
        }
    }

    /// The largest power of two below `n`.
    fn split(n: usize) -> usize {
        1 << (n - 1).ilog2()
    }

    /// One bit flipped in `proof[at]`; the sweeps rotate `at` so every position gets its turn
    /// without verifying every proof once per element (SHA-256 is slow in a debug build).
    fn flipped(proof: &[Digest], at: usize) -> Vec<Digest> {
        let mut proof = proof.to_vec();
        proof[at][7] ^= 0x20;
        proof
    }

    fn hex32(value: &Value) -> Digest {
        hex::decode(value.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    }

    fn hex_list(value: &Value) -> Vec<Digest> {
        value.as_array().unwrap().iter().map(hex32).collect()
    }

    #[test]
    fn hashes_follow_rfc_9162() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut prefixed = vec![0x01];
        prefixed.extend([1; 32]);
        prefixed.extend([2; 32]);
        assert_eq!(
            node_hash(&[1; 32], &[2; 32]),
            <[u8; 32]>::from(Sha256::digest(&prefixed))
        );
        assert_eq!(leaf_hash(b"ab"), <[u8; 32]>::from(Sha256::digest(b"\0ab")));
    }

    #[test]
    fn known_answers_from_transparency_dev() {
        let vectors: Value =
            serde_json::from_str(include_str!("../testdata/rfc6962-vectors.json")).unwrap();
        let leaves: Vec<Vec<u8>> = vectors["leaves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|leaf| hex::decode(leaf.as_str().unwrap()).unwrap())
            .collect();
        let leaf_hashes: Vec<Digest> = leaves.iter().map(|leaf| leaf_hash(leaf)).collect();

        let mut store = MemoryStore::default();
        store.append(&leaf_hashes);
        let expected: HashMap<(u8, u64), Digest> = (0u8..)
            .zip(vectors["node_hashes"].as_array().unwrap())
            .flat_map(|(level, row)| {
                (0u64..)
                    .zip(hex_list(row))
                    .map(move |(i, hash)| ((level, i), hash))
            })
            .collect();
        assert_eq!(store.hashes, expected);

        for (size, expected) in (0u64..).zip(vectors["roots"].as_array().unwrap()) {
            assert_eq!(root(size, &store).unwrap(), hex32(expected), "size {size}");
        }
        for vector in vectors["inclusion"].as_array().unwrap() {
            let (index, size) = (
                vector["index"].as_u64().unwrap(),
                vector["size"].as_u64().unwrap(),
            );
            let proof = inclusion_proof(index, size, &store).unwrap();
            assert_eq!(proof, hex_list(&vector["proof"]), "{index} in {size}");
            let root = root(size, &store).unwrap();
            verify_inclusion(&leaves[index as usize], index, size, &proof, &root).unwrap();
        }
        for vector in vectors["consistency"].as_array().unwrap() {
            let (old, new) = (
                vector["old"].as_u64().unwrap(),
                vector["new"].as_u64().unwrap(),
            );
            let proof = consistency_proof(old, new, &store).unwrap();
            assert_eq!(proof, hex_list(&vector["proof"]), "{old} to {new}");
            let (old_root, new_root) = (root(old, &store).unwrap(), root(new, &store).unwrap());
            verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
        }
    }

    #[test]
    fn batched_appends_store_every_perfect_subtree() {
        let leaves = leaves(70);
        let leaf_hashes: Vec<Digest> = leaves.iter().map(|leaf| leaf_hash(leaf)).collect();
        let store = MemoryStore::with_leaf_hashes(&leaf_hashes);
        let mut one_by_one = MemoryStore::default();
        for hash in &leaf_hashes {
            one_by_one.append(std::slice::from_ref(hash));
        }
        assert_eq!(store.hashes, one_by_one.hashes);
        // 70 leaves hold 70 + 35 + 17 + 8 + 4 + 2 + 1 perfect subtrees.
        assert_eq!(store.hashes.len(), 137);
        let reference = Reference::new(&leaves);
        for (&(level, index), hash) in &store.hashes {
            let start = (index << level) as usize;
            let reference = reference.mth[start][start + (1 << level)];
            assert_eq!(*hash, reference, "({level}, {index})");
        }
        assert!(new_subtrees(3, &[], &store).unwrap().is_empty());
    }

    #[test]
    fn every_proof_up_to_70_leaves_matches_the_rfc_and_verifies() {
        let leaves = leaves(70);
        let leaf_hashes: Vec<Digest> = leaves.iter().map(|leaf| leaf_hash(leaf)).collect();
        let store = MemoryStore::with_leaf_hashes(&leaf_hashes);
        let reference = Reference::new(&leaves);
        let roots: Vec<Digest> = (0..=70).map(|size| root(size, &store).unwrap()).collect();
        for (size, size_root) in roots.iter().enumerate() {
            assert_eq!(*size_root, reference.mth[0][size], "root {size}");
        }

        for size in 1..=70u64 {
            let root = &roots[size as usize];
            for index in 0..size {
                let leaf = &leaves[index as usize];
                let proof = inclusion_proof(index, size, &store).unwrap();
                let expected = reference.path(index as usize, 0, size as usize);
                assert_eq!(proof, expected, "{index} in {size}");
                verify_inclusion(leaf, index, size, &proof, root).unwrap();
                if !proof.is_empty() {
                    let bad = flipped(&proof, (index + size) as usize % proof.len());
                    assert!(verify_inclusion(leaf, index, size, &bad, root).is_err());
                }
                assert!(verify_inclusion(b"other", index, size, &proof, root).is_err());
                if index + 1 < size {
                    assert!(verify_inclusion(leaf, index + 1, size, &proof, root).is_err());
                }
            }
        }

        for new in 1..=70u64 {
            for old in 1..=new {
                let (old_root, new_root) = (&roots[old as usize], &roots[new as usize]);
                let proof = consistency_proof(old, new, &store).unwrap();
                let expected = reference.subproof(old as usize, 0, new as usize, true);
                assert_eq!(proof, expected, "{old} to {new}");
                verify_consistency(old, new, old_root, new_root, &proof).unwrap();
                if !proof.is_empty() {
                    let bad = flipped(&proof, (old + new) as usize % proof.len());
                    assert!(verify_consistency(old, new, old_root, new_root, &bad).is_err());
                }
                if old != new {
                    let wrong = &roots[old as usize - 1];
                    assert!(verify_consistency(old, new, wrong, new_root, &proof).is_err());
                    assert!(verify_consistency(old, new, old_root, old_root, &proof).is_err());
                    assert!(verify_consistency(old, new, old_root, new_root, &[]).is_err());
                }
            }
        }
    }

    /// The cost bound of the module doc, on 100 000 leaves: at most `2·⌈log2 n⌉ + 1` lookups.
    #[test]
    fn proofs_cost_logarithmic_lookups() {
        const N: u64 = 100_000;
        let leaf = |index: u64| index.to_be_bytes();
        let leaf_hashes: Vec<Digest> = (0..N).map(|index| leaf_hash(&leaf(index))).collect();
        let store = MemoryStore::with_leaf_hashes(&leaf_hashes);
        assert_eq!(store.hashes.len() as u64, 2 * N - u64::from(N.count_ones()));

        let bound = |n: u64| 2 * n.next_power_of_two().ilog2() as usize + 1;
        let sizes = [1, 2, 3, 5, 1_000, 65_535, 65_536, 65_537, 99_999, N];
        let (mut worst_inclusion, mut worst_consistency, mut worst_root) = (0, 0, 0);
        for &size in &sizes {
            let (size_root, lookups) = store.counted(|store| root(size, store).unwrap());
            assert_eq!(lookups, size.count_ones() as usize);
            worst_root = worst_root.max(lookups);
            let ends = [size / 2, size.saturating_sub(2), size - 1];
            for index in (0..size).step_by(4_999).chain(ends) {
                let (proof, lookups) =
                    store.counted(|store| inclusion_proof(index, size, store).unwrap());
                assert!(lookups <= bound(size), "{index} in {size}: {lookups}");
                worst_inclusion = worst_inclusion.max(lookups);
                verify_inclusion(&leaf(index), index, size, &proof, &size_root).unwrap();
            }
            for &old in sizes.iter().filter(|&&old| old <= size) {
                let (proof, lookups) =
                    store.counted(|store| consistency_proof(old, size, store).unwrap());
                assert!(lookups <= bound(size), "{old} to {size}: {lookups}");
                worst_consistency = worst_consistency.max(lookups);
                let old_root = root(old, &store).unwrap();
                verify_consistency(old, size, &old_root, &size_root, &proof).unwrap();
            }
        }
        println!(
            "n = {N}: bound {}, worst lookups: inclusion {worst_inclusion}, consistency \
             {worst_consistency}, root {worst_root}",
            bound(N)
        );
    }

    #[test]
    fn invalid_inputs_are_errors_not_panics() {
        let store = MemoryStore::with_leaf_hashes(&[[1; 32], [2; 32], [3; 32]]);
        let invalid = |result: Result<Vec<Digest>, ProofError<Missing>>| {
            matches!(result, Err(ProofError::Invalid(_)))
        };
        assert!(invalid(inclusion_proof(0, 0, &store)));
        assert!(invalid(inclusion_proof(3, 3, &store)));
        assert!(invalid(inclusion_proof(u64::MAX - 1, u64::MAX, &store)));
        assert!(invalid(consistency_proof(0, 3, &store)));
        assert!(invalid(consistency_proof(0, 0, &store)));
        assert!(invalid(consistency_proof(3, 2, &store)));
        assert!(invalid(consistency_proof(1, u64::MAX, &store)));
        assert!(matches!(
            new_subtrees(u64::MAX, &[[0; 32]], &store),
            Err(ProofError::Invalid(_))
        ));
        assert!(matches!(
            new_subtrees(MAX_SIZE, &[[0; 32]], &store),
            Err(ProofError::Invalid(_))
        ));
        // Beyond the stored tree the store says so; nothing panics.
        assert!(matches!(
            inclusion_proof(0, 4, &store),
            Err(ProofError::Lookup(Missing(..)))
        ));
        assert!(root(5, &store).is_err());

        let root = [7; 32];
        assert!(verify_inclusion(b"", 0, 0, &[], &root).is_err());
        assert!(verify_inclusion(b"", 1, 1, &[], &root).is_err());
        assert!(verify_inclusion(b"", u64::MAX - 1, u64::MAX, &[], &root).is_err());
        assert!(verify_inclusion(b"", MAX_SIZE, MAX_SIZE + 1, &[], &root).is_err());
        assert!(verify_inclusion(b"", MAX_SIZE - 1, MAX_SIZE, &[root; 63], &root).is_err());
        assert!(verify_consistency(0, 0, &root, &root, &[]).is_err());
        assert!(verify_consistency(0, 1, &root, &root, &[]).is_err());
        assert!(verify_consistency(2, 1, &root, &root, &[]).is_err());
        assert!(verify_consistency(1, u64::MAX, &root, &root, &[]).is_err());
        assert!(verify_consistency(1, MAX_SIZE, &root, &root, &[root; 63]).is_err());
        assert!(verify_consistency(3, 4, &root, &root, &[root; 100]).is_err());
        // Equal sizes need equal roots and an empty proof.
        verify_consistency(3, 3, &root, &root, &[]).unwrap();
        assert!(verify_consistency(3, 3, &root, &[8; 32], &[]).is_err());
        assert!(verify_consistency(3, 3, &root, &root, &[root]).is_err());
    }

    #[test]
    fn memory_tree_roots_match_the_rfc_at_every_size() {
        let leaves = leaves(40);
        let reference = Reference::new(&leaves);
        let mut tree = MemoryTree::default();
        assert_eq!(tree.root(), empty_root());
        for (size, leaf) in (1..).zip(&leaves) {
            tree.push(&[leaf_hash(leaf)]).unwrap();
            assert_eq!(
                (tree.size(), tree.root()),
                (size, reference.mth[0][size as usize])
            );
        }
    }

    #[test]
    fn the_right_edge_grows_and_loads_like_the_whole_tree() {
        let hashes: Vec<Digest> = (0u32..70).map(|n| leaf_hash(&n.to_be_bytes())).collect();
        let mut whole = MemoryTree::default();
        let mut edge = RightEdge::default();
        assert_eq!(edge.root(), empty_root());
        let mut start = 0;
        for batch in [1, 2, 3, 1, 8, 13, 42] {
            let end = start + batch;
            let completed = edge.push(&hashes[start..end]).unwrap();
            assert_eq!(completed, whole.push(&hashes[start..end]).unwrap());
            assert_eq!((edge.size(), edge.root()), (whole.size(), whole.root()));
            let loaded = RightEdge::load(whole.size(), &whole).unwrap();
            assert_eq!(loaded, edge);
            start = end;
        }
        assert_eq!(start, 70);
    }
}
