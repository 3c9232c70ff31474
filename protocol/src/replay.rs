//! The one replay of the audit log (§6): leaves in index order are decoded, every result leaf
//! must answer an open request leaf of the same session with the same request commitment, and
//! the tree is recomputed on its right edge. The daemon's scrub, `audit --all` and the tests
//! all check a log through this, so they cannot disagree about what a valid log is.

use std::collections::BTreeMap;

use crate::checkpoint::Checkpoint;
use crate::commitment::Digest;
use crate::leaf::{Leaf, RequestLeaf};
use crate::merkle::{self, RightEdge, Subtree};

/// Why a log does not replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// A leaf that is no request or result leaf of this protocol.
    #[error("leaf {index} does not decode: {reason}")]
    Undecodable {
        /// The leaf's position.
        index: u64,
        /// What the decoder said.
        reason: String,
    },
    /// A result leaf whose `request_index` names no request leaf still waiting for its result.
    #[error("result leaf {index} answers no open request leaf")]
    UnansweredResult {
        /// The result leaf's position.
        index: u64,
    },
    /// A result leaf whose session or request commitment differs from its request leaf's.
    #[error(
        "result leaf {index} and its request leaf disagree on the session or the request commitment"
    )]
    MismatchedPair {
        /// The result leaf's position.
        index: u64,
    },
    /// More leaves than a tree can hold.
    #[error("the log grew past 2^63 leaves")]
    TooLarge,
    /// The leaves hash to another root than the checkpoint's.
    #[error("the {size} leaves do not hash to the checkpoint's root")]
    RootMismatch {
        /// The number of leaves replayed.
        size: u64,
    },
    /// The checkpoint covers another number of leaves than were replayed.
    #[error("{replayed} leaves were replayed but the checkpoint covers {signed}")]
    SizeMismatch {
        /// The number of leaves replayed.
        replayed: u64,
        /// The checkpoint's tree size.
        signed: u64,
    },
}

/// A log replayed so far: its right edge and its request leaves still without a result leaf.
#[derive(Debug, Clone, Default)]
pub struct LogReplay {
    tree: RightEdge,
    open_requests: BTreeMap<u64, RequestLeaf>,
}

impl LogReplay {
    /// Replays the next leaves, which follow the ones replayed so far; returns the perfect
    /// subtrees they complete, so that a store's copies can be compared with them.
    pub fn push(&mut self, leaves: &[impl AsRef<[u8]>]) -> Result<Vec<Subtree>, ReplayError> {
        let mut hashes = Vec::with_capacity(leaves.len());
        for (index, bytes) in (self.tree.size()..).zip(leaves) {
            let bytes = bytes.as_ref();
            match Leaf::decode(bytes).map_err(|error| ReplayError::Undecodable {
                index,
                reason: error.to_string(),
            })? {
                Leaf::Request(request) => {
                    self.open_requests.insert(index, request);
                }
                Leaf::Result(result) => {
                    let request = self
                        .open_requests
                        .remove(&result.request_index)
                        .ok_or(ReplayError::UnansweredResult { index })?;
                    if (request.session_id, request.request_commitment)
                        != (result.session_id, result.request_commitment)
                    {
                        return Err(ReplayError::MismatchedPair { index });
                    }
                }
            }
            hashes.push(merkle::leaf_hash(bytes));
        }
        self.tree.push(&hashes).map_err(|_| ReplayError::TooLarge)
    }

    /// Leaves replayed so far.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The root of the leaves replayed so far.
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// Request leaves that no result leaf has answered yet, by index.
    pub fn open_requests(&self) -> &BTreeMap<u64, RequestLeaf> {
        &self.open_requests
    }

    /// Whether the replayed leaves are exactly the ones `checkpoint` covers (its signature is
    /// the caller's to check).
    pub fn matches(&self, checkpoint: &Checkpoint) -> Result<(), ReplayError> {
        if self.size() != checkpoint.size {
            return Err(ReplayError::SizeMismatch {
                replayed: self.size(),
                signed: checkpoint.size,
            });
        }
        if self.root() != checkpoint.root {
            return Err(ReplayError::RootMismatch { size: self.size() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf::{Outcome, ResultLeaf};

    fn request(n: u8) -> RequestLeaf {
        RequestLeaf {
            session_id: [n; 16],
            time_ms: u64::from(n),
            announcement_hash: [n; 32],
            request_commitment: [n.wrapping_add(1); 32],
        }
    }

    fn result(request: &RequestLeaf, request_index: u64) -> ResultLeaf {
        ResultLeaf {
            session_id: request.session_id,
            time_ms: request.time_ms + 1,
            request_index,
            outcome: Outcome::Executed,
            request_commitment: request.request_commitment,
            result_commitment: [7; 32],
            input_commitment: [8; 32],
            output_commitment: [9; 32],
        }
    }

    fn encode(leaves: &[Leaf]) -> Vec<Vec<u8>> {
        leaves.iter().map(Leaf::encode).collect()
    }

    #[test]
    fn a_valid_log_replays_to_its_root_with_its_open_requests() {
        let (a, b) = (request(1), request(2));
        let leaves = encode(&[
            Leaf::Request(a.clone()),
            Leaf::Request(b),
            Leaf::Result(result(&a, 0)),
        ]);
        let mut replay = LogReplay::default();
        replay.push(&leaves[..1]).unwrap();
        replay.push(&leaves[1..]).unwrap();
        let hashes: Vec<_> = leaves.iter().map(|leaf| merkle::leaf_hash(leaf)).collect();
        let mut tree = merkle::MemoryTree::default();
        tree.push(&hashes).unwrap();
        let checkpoint = Checkpoint {
            origin: "test/log".into(),
            size: 3,
            root: tree.root(),
        };
        replay.matches(&checkpoint).unwrap();
        assert_eq!(replay.open_requests().keys().collect::<Vec<_>>(), [&1]);
        let longer = Checkpoint {
            size: 4,
            ..checkpoint.clone()
        };
        assert!(matches!(
            replay.matches(&longer),
            Err(ReplayError::SizeMismatch { .. })
        ));
        let other_root = Checkpoint {
            root: [0; 32],
            ..checkpoint
        };
        assert!(matches!(
            replay.matches(&other_root),
            Err(ReplayError::RootMismatch { .. })
        ));
    }

    #[test]
    fn a_result_must_answer_an_open_request_of_its_session_with_its_commitment() {
        let a = request(1);
        let mut wrong_commitment = result(&a, 0);
        wrong_commitment.request_commitment = [0xee; 32];
        let mut wrong_session = result(&a, 0);
        wrong_session.session_id = [0xee; 16];
        for (leaves, expected) in [
            (
                vec![Leaf::Request(a.clone()), Leaf::Result(wrong_commitment)],
                ReplayError::MismatchedPair { index: 1 },
            ),
            (
                vec![Leaf::Request(a.clone()), Leaf::Result(wrong_session)],
                ReplayError::MismatchedPair { index: 1 },
            ),
            (
                vec![Leaf::Request(a.clone()), Leaf::Result(result(&a, 5))],
                ReplayError::UnansweredResult { index: 1 },
            ),
            (
                vec![
                    Leaf::Request(a.clone()),
                    Leaf::Result(result(&a, 0)),
                    Leaf::Result(result(&a, 0)),
                ],
                ReplayError::UnansweredResult { index: 2 },
            ),
        ] {
            let mut replay = LogReplay::default();
            assert_eq!(replay.push(&encode(&leaves)), Err(expected));
        }
        let mut replay = LogReplay::default();
        assert!(matches!(
            replay.push(&[[0u8; 10]]),
            Err(ReplayError::Undecodable { index: 0, .. })
        ));
    }
}
