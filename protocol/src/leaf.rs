//! The audit log's leaves (§6): the 90-byte request leaf and the 163-byte result leaf.

use crate::commitment::{ABSENT, Digest};

pub(crate) const VERSION: u8 = 0x01;
pub(crate) const REQUEST_LEAF_LEN: usize = 90;
pub(crate) const RESULT_LEAF_LEN: usize = 163;
const KIND_REQUEST: u8 = 0x01;
const KIND_RESULT: u8 = 0x02;

/// How a consumed session ended, as the log records it (its status stays sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A sealed result exists.
    Executed = 1,
    /// HPKE open failed.
    UnsealFailed = 11,
    /// The daemon stopped before the session ended.
    Aborted = 12,
    /// The daemon failed while running the session.
    Internal = 13,
}

impl Outcome {
    /// The name `record` uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::UnsealFailed => "unseal_failed",
            Self::Aborted => "aborted",
            Self::Internal => "internal",
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        [
            Self::Executed,
            Self::UnsealFailed,
            Self::Aborted,
            Self::Internal,
        ]
        .into_iter()
        .find(|outcome| *outcome as u8 == byte)
    }
}

/// Appended when a session is consumed, before the request is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLeaf {
    /// The session's UUID bytes.
    pub session_id: [u8; 16],
    /// When the session was consumed, Unix milliseconds.
    pub time_ms: u64,
    /// `H3(TBS)` of the announcement the request was sealed to.
    pub announcement_hash: Digest,
    /// Binds the announcement and the exact `enc_request` bytes.
    pub request_commitment: Digest,
}

/// Appended when a consumed session ends, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultLeaf {
    /// The session's UUID bytes.
    pub session_id: [u8; 16],
    /// When the session ended, Unix milliseconds.
    pub time_ms: u64,
    /// The index of the session's request leaf.
    pub request_index: u64,
    /// How the session ended.
    pub outcome: Outcome,
    /// Equal to the request leaf's.
    pub request_commitment: Digest,
    /// [`ABSENT`] unless a sealed result exists.
    pub result_commitment: Digest,
    /// [`ABSENT`] unless the request opened.
    pub input_commitment: Digest,
    /// [`ABSENT`] unless a sealed result exists.
    pub output_commitment: Digest,
}

/// Either kind of leaf, as decoded from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// A session was consumed.
    Request(RequestLeaf),
    /// A consumed session ended.
    Result(ResultLeaf),
}

/// Why bytes are not a valid leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// Not 90 bytes for a request leaf or 163 for a result leaf.
    #[error("leaf has the wrong length for its kind")]
    Length,
    /// A version or kind byte this version does not define.
    #[error("unknown leaf version or kind")]
    Kind,
    /// An outcome byte this version does not define.
    #[error("unknown outcome")]
    Outcome,
    /// A commitment is absent although the outcome says it exists.
    #[error("a commitment is absent where the outcome requires it")]
    MissingCommitment,
}

impl Leaf {
    /// The session the leaf belongs to.
    pub fn session_id(&self) -> &[u8; 16] {
        match self {
            Self::Request(leaf) => &leaf.session_id,
            Self::Result(leaf) => &leaf.session_id,
        }
    }

    /// When the leaf was appended (Unix ms).
    pub fn time_ms(&self) -> u64 {
        match self {
            Self::Request(leaf) => leaf.time_ms,
            Self::Result(leaf) => leaf.time_ms,
        }
    }

    /// The leaf's bytes, as the log stores and hashes them.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Request(leaf) => [
                &[VERSION, KIND_REQUEST][..],
                &leaf.session_id,
                &leaf.time_ms.to_be_bytes(),
                &leaf.announcement_hash,
                &leaf.request_commitment,
            ]
            .concat(),
            Self::Result(leaf) => [
                &[VERSION, KIND_RESULT][..],
                &leaf.session_id,
                &leaf.time_ms.to_be_bytes(),
                &leaf.request_index.to_be_bytes(),
                &[leaf.outcome as u8],
                &leaf.request_commitment,
                &leaf.result_commitment,
                &leaf.input_commitment,
                &leaf.output_commitment,
            ]
            .concat(),
        }
    }

    /// Parses a leaf and checks the rule of §6: a zero commitment is valid only for the
    /// outcomes without a sealed result.
    pub fn decode(bytes: &[u8]) -> Result<Self, LeafError> {
        use crate::announcement::field;
        let expected_len = match bytes.get(..2) {
            Some([VERSION, KIND_REQUEST]) => REQUEST_LEAF_LEN,
            Some([VERSION, KIND_RESULT]) => RESULT_LEAF_LEN,
            _ => return Err(LeafError::Kind),
        };
        if bytes.len() != expected_len {
            return Err(LeafError::Length);
        }
        let session_id = field(bytes, 2);
        let time_ms = u64::from_be_bytes(field(bytes, 18));
        if expected_len == REQUEST_LEAF_LEN {
            return Ok(Self::Request(RequestLeaf {
                session_id,
                time_ms,
                announcement_hash: field(bytes, 26),
                request_commitment: field(bytes, 58),
            }));
        }
        let leaf = ResultLeaf {
            session_id,
            time_ms,
            request_index: u64::from_be_bytes(field(bytes, 26)),
            outcome: Outcome::from_byte(bytes[34]).ok_or(LeafError::Outcome)?,
            request_commitment: field(bytes, 35),
            result_commitment: field(bytes, 67),
            input_commitment: field(bytes, 99),
            output_commitment: field(bytes, 131),
        };
        let executed = leaf.outcome == Outcome::Executed;
        let any_absent = [
            &leaf.result_commitment,
            &leaf.input_commitment,
            &leaf.output_commitment,
        ]
        .contains(&&ABSENT);
        if leaf.request_commitment == ABSENT || (executed && any_absent) {
            return Err(LeafError::MissingCommitment);
        }
        Ok(Self::Result(leaf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_leaf(outcome: Outcome) -> ResultLeaf {
        ResultLeaf {
            session_id: [1; 16],
            time_ms: 1_700_000_000_123,
            request_index: 41,
            outcome,
            request_commitment: [2; 32],
            result_commitment: [3; 32],
            input_commitment: [4; 32],
            output_commitment: [5; 32],
        }
    }

    #[test]
    fn leaves_have_the_specified_layout_and_round_trip() {
        let request = Leaf::Request(RequestLeaf {
            session_id: [1; 16],
            time_ms: 0x0102_0304_0506_0708,
            announcement_hash: [6; 32],
            request_commitment: [7; 32],
        });
        let bytes = request.encode();
        assert_eq!(bytes.len(), REQUEST_LEAF_LEN);
        assert_eq!(bytes[..2], [1, 1]);
        assert_eq!(bytes[18..26], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Leaf::decode(&bytes).unwrap(), request);

        let result = Leaf::Result(result_leaf(Outcome::Executed));
        let bytes = result.encode();
        assert_eq!(bytes.len(), RESULT_LEAF_LEN);
        assert_eq!(bytes[..2], [1, 2]);
        assert_eq!(bytes[26..34], 41u64.to_be_bytes());
        assert_eq!(bytes[34], 1);
        assert_eq!(Leaf::decode(&bytes).unwrap(), result);
    }

    #[test]
    fn absent_commitments_are_valid_only_without_a_sealed_result() {
        let mut leaf = result_leaf(Outcome::UnsealFailed);
        leaf.result_commitment = ABSENT;
        leaf.input_commitment = ABSENT;
        leaf.output_commitment = ABSENT;
        assert!(Leaf::decode(&Leaf::Result(leaf.clone()).encode()).is_ok());
        leaf.outcome = Outcome::Executed;
        assert_eq!(
            Leaf::decode(&Leaf::Result(leaf).encode()),
            Err(LeafError::MissingCommitment)
        );
    }

    #[test]
    fn malformed_leaves_are_rejected() {
        let bytes = Leaf::Result(result_leaf(Outcome::Aborted)).encode();
        assert_eq!(Leaf::decode(&bytes[..162]), Err(LeafError::Length));
        let mut kind = bytes.clone();
        kind[1] = 3;
        assert_eq!(Leaf::decode(&kind), Err(LeafError::Kind));
        let mut outcome = bytes;
        outcome[34] = 2;
        assert_eq!(Leaf::decode(&outcome), Err(LeafError::Outcome));
        assert_eq!(Leaf::decode(&[]), Err(LeafError::Kind));
    }
}
