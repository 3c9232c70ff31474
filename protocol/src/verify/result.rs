//! The client's side of one execution: sealing to a checked announcement (§4), then every check
//! §5 asks of the answer before its output is trusted, the two seed checks of §5.1 included.

use zeroize::Zeroizing;

use super::{SignedCheckpoint, Verifier, VerifyError};
use crate::announcement::Announcement;
use crate::api;
use crate::commitment::{self, Digest};
use crate::leaf::{Leaf, Outcome};
use crate::merkle;
use crate::payload::{OutputMap, RequestPayload, ResultPayload, Status};
use crate::sealing::{self, ResponseKey};

/// An announcement that passed every check of §3: a session the client may seal to.
#[derive(Clone)]
pub struct AnnouncedSession {
    announcement: Announcement,
    tbs: Vec<u8>,
    ticket: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for AnnouncedSession {
    /// Without the ticket, which stays secret until execute.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnouncedSession")
            .field("announcement", &self.announcement)
            .finish_non_exhaustive()
    }
}

impl AnnouncedSession {
    pub(super) fn new(announcement: Announcement, tbs: Vec<u8>, ticket: [u8; 32]) -> Self {
        Self {
            announcement,
            tbs,
            ticket: Zeroizing::new(ticket),
        }
    }

    /// The TBS's values.
    pub fn announcement(&self) -> &Announcement {
        &self.announcement
    }

    /// The session id, as it goes in URLs.
    pub fn session_id(&self) -> String {
        api::SessionId(self.announcement.session_id).to_string()
    }

    /// Seals `payload` to the session's key (§4.3). Nothing has left the client yet.
    pub fn seal(
        self,
        payload: &RequestPayload,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<SealedRequest, VerifyError> {
        let announcement_hash = self.announcement.hash();
        let request_payload = Zeroizing::new(payload.encode());
        let (enc_request, response_key) = sealing::seal_request(
            &self.announcement.public_key,
            &announcement_hash,
            &request_payload,
            rng,
        )?;
        Ok(SealedRequest {
            request_commitment: commitment::request_commitment(&announcement_hash, &enc_request),
            client_seed: payload.seed.unwrap_or([0; 32]),
            session: self,
            request_payload,
            enc_request,
            response_key,
        })
    }
}

/// A request sealed to a checked session, with what the client needs to check its answer.
pub struct SealedRequest {
    session: AnnouncedSession,
    request_payload: Zeroizing<Vec<u8>>,
    /// The payload's `seed`, or 32 zero bytes when it has none (§4.1).
    client_seed: [u8; 32],
    enc_request: Vec<u8>,
    /// Binds the announcement and `enc_request`; known before the request leaves.
    pub request_commitment: Digest,
    response_key: ResponseKey,
}

impl SealedRequest {
    /// The session's id, as it goes in URLs.
    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// The `Session-Ticket` header's value: the secret behind `client_nonce`.
    pub fn ticket_hex(&self) -> String {
        hex::encode(*self.session.ticket)
    }

    /// The announcement's TBS, as received.
    pub fn tbs(&self) -> &[u8] {
        &self.session.tbs
    }

    /// The TBS's values.
    pub fn announcement(&self) -> &Announcement {
        &self.session.announcement
    }

    /// The request payload's plaintext: with `input_blind`, it opens `input_commitment`.
    pub fn request_payload(&self) -> &[u8] {
        &self.request_payload
    }

    /// `enc_request`, the body of the execute call.
    pub fn enc_request(&self) -> &[u8] {
        &self.enc_request
    }
}

/// An answer that passed every check of §5: only now is its output trusted.
#[derive(Debug, Clone)]
pub struct VerifiedResult {
    /// The decoded output map.
    pub output: OutputMap,
    /// The opened result: the output map's bytes and both blinds.
    pub result_payload: ResultPayload,
    /// `enc_response`, as received.
    pub enc_response: Vec<u8>,
    /// Binds the announcement and `enc_request`.
    pub request_commitment: Digest,
    /// Binds `request_commitment` and `enc_response`.
    pub result_commitment: Digest,
    /// Hides and binds the request payload.
    pub input_commitment: Digest,
    /// Hides and binds the output map's bytes.
    pub output_commitment: Digest,
    /// The session's request leaf's index.
    pub request_index: u64,
    /// The result leaf's index, proven included in `checkpoint`.
    pub result_index: u64,
    /// The checkpoint the result leaf was proven against.
    pub checkpoint: SignedCheckpoint,
}

impl Verifier {
    /// Every check §5 asks of an execute answer, in order: the body names the session and
    /// `executed`; both wire commitments are recomputed; the result opens and decodes;
    /// `server_seed` opens the announcement's `seed_commitment`; `random_seed` is
    /// `H3("wasm-hv/v1 random" ‖ 0x00 ‖ server_seed ‖ seed)` (the all-zero seed for
    /// `bad_payload`, §5.3); the result leaf records this execution; the checkpoint is the pinned
    /// identity's; and the leaf is included in it. Consistency with the trusted checkpoint is
    /// the [`super::CheckpointTracker`]'s part.
    pub fn check_result(
        &self,
        sealed: &SealedRequest,
        executed: &api::Executed,
    ) -> Result<VerifiedResult, VerifyError> {
        let request_commitment = sealed.request_commitment;
        let result_commitment =
            commitment::result_commitment(&request_commitment, &executed.sealed_result);
        if executed.session_id != sealed.session_id() || executed.outcome != "executed" {
            return Err(VerifyError::Refused(
                "the answer is not this session's executed result",
            ));
        }
        if executed.request_commitment != request_commitment
            || executed.result_commitment != result_commitment
        {
            return Err(VerifyError::Refused(
                "the wire commitments do not bind what was sent and received",
            ));
        }
        let opened = sealed.response_key.open(&executed.sealed_result)?;
        let result_payload = ResultPayload::decode(&opened)?;
        let output = OutputMap::decode(&result_payload.output)?;
        if commitment::seed_commitment(&output.server_seed) != sealed.announcement().seed_commitment
        {
            return Err(VerifyError::Refused(
                "server_seed does not open the announcement's seed_commitment",
            ));
        }
        let seed = if output.status == Status::BadPayload {
            [0; 32]
        } else {
            sealed.client_seed
        };
        if output.random_seed != commitment::random_seed(&output.server_seed, &seed) {
            return Err(VerifyError::Refused(
                "random_seed is not H3(\"wasm-hv/v1 random\" ‖ 0x00 ‖ server_seed ‖ seed)",
            ));
        }
        let input_commitment =
            commitment::input_commitment(&result_payload.input_blind, &sealed.request_payload);
        let output_commitment =
            commitment::output_commitment(&result_payload.output_blind, &result_payload.output);

        let audit = &executed.audit;
        let checkpoint = self.check_checkpoint(&audit.checkpoint)?;
        let Ok(Leaf::Result(leaf)) = Leaf::decode(&audit.leaf) else {
            return Err(VerifyError::Refused("the audit leaf is not a result leaf"));
        };
        let records_this_execution = leaf.session_id == sealed.announcement().session_id
            && leaf.request_index == audit.request_index
            && leaf.request_index < audit.result_index
            && leaf.outcome == Outcome::Executed
            && [
                leaf.request_commitment,
                leaf.result_commitment,
                leaf.input_commitment,
                leaf.output_commitment,
            ] == [
                request_commitment,
                result_commitment,
                input_commitment,
                output_commitment,
            ];
        if !records_this_execution {
            return Err(VerifyError::Refused(
                "the result leaf does not record this execution",
            ));
        }
        merkle::verify_inclusion(
            &audit.leaf,
            audit.result_index,
            checkpoint.checkpoint.size,
            &audit.inclusion_proof,
            &checkpoint.checkpoint.root,
        )?;
        Ok(VerifiedResult {
            output,
            result_payload,
            enc_response: executed.sealed_result.clone(),
            request_commitment,
            result_commitment,
            input_commitment,
            output_commitment,
            request_index: audit.request_index,
            result_index: audit.result_index,
            checkpoint,
        })
    }
}
