//! The verifier against a daemon played here from the protocol's own pieces: an honest answer
//! passes, and each check refuses the answer that breaks it, the seed checks of §5.1 included.

use super::*;
use crate::announcement::Announcement;
use crate::identity::IdentityKey;
use crate::leaf::{Outcome, RequestLeaf, ResultLeaf};
use crate::merkle::{MemoryTree, consistency_proof, inclusion_proof, leaf_hash};
use crate::payload::{Limits, OutputMap, RequestPayload, ResultPayload, Status};
use crate::sealing::SessionKeyPair;

const NOW: u64 = 1_700_000_000;
const CLIENT_SEED: [u8; 32] = [9; 32];
const SERVER_SEED: [u8; 32] = [5; 32];
const TICKET: [u8; 32] = [1; 32];

fn identity_key() -> IdentityKey {
    IdentityKey::from_secret_bytes(&[0x42; 32]).unwrap()
}

fn pinned() -> PinnedIdentity {
    let public = identity_key().public();
    PinnedIdentity {
        origin: public.default_origin(),
        key: public,
    }
}

fn published(key: &IdentityKey) -> api::Identity {
    let public = key.public();
    api::Identity::of(&public, public.default_origin())
}

/// The daemon's side of one session.
struct Daemon {
    key: IdentityKey,
    session_key: SessionKeyPair,
    announcement: Announcement,
    /// Leaves already in the log before this session's.
    earlier: u64,
}

impl Daemon {
    fn new() -> Self {
        let key = identity_key();
        let session_key = SessionKeyPair::derive(&[3; 32]);
        let announcement = Announcement {
            session_id: [0xaa; 16],
            issued_at: NOW,
            expires_at: NOW + 60,
            client_nonce: commitment::client_nonce(&TICKET),
            identity_fpr: key.public().fingerprint(),
            seed_commitment: commitment::seed_commitment(&SERVER_SEED),
            public_key: *session_key.public_key(),
        };
        Self {
            key,
            session_key,
            announcement,
            earlier: 3,
        }
    }

    fn created(&self) -> api::SessionCreated {
        api::SessionCreated {
            session_id: api::SessionId(self.announcement.session_id).to_string(),
            expires_at: "2023-11-14T22:14:20Z".into(),
            announcement: self.announcement.to_tbs().to_vec(),
            signature: self.announcement.sign(&self.key),
        }
    }

    /// Opens the request and answers it, letting `adjust` change the output map first.
    fn execute(&self, enc_request: &[u8], adjust: impl FnOnce(&mut OutputMap)) -> api::Executed {
        let announcement_hash = self.announcement.hash();
        let (plaintext, response_key) = self
            .session_key
            .open_request(&announcement_hash, enc_request)
            .unwrap();
        let seed = RequestPayload::decode(&plaintext)
            .map(|payload| payload.seed.unwrap_or([0; 32]))
            .unwrap_or([0; 32]);
        let mut output = OutputMap {
            status: Status::Ok,
            exit_code: Some(0),
            stdout: b"hello\n".to_vec(),
            stderr: Vec::new(),
            returns: None,
            error: None,
            limits: Limits {
                fuel: 1_000_000,
                memory_bytes: 1 << 20,
                output_bytes: 4096,
                timeout_ms: 1000,
            },
            fuel_consumed: 10,
            duration_us: 1,
            engine: "test".into(),
            server_seed: SERVER_SEED,
            random_seed: commitment::random_seed(&SERVER_SEED, &seed),
        };
        adjust(&mut output);
        let output = output.encode();
        let (input_blind, output_blind) = ([0x11; 32], [0x22; 32]);
        let result_payload = ResultPayload {
            output: output.clone(),
            input_blind,
            output_blind,
        }
        .encode();
        let sealed_result = response_key.seal(&result_payload, &[7; 32]).unwrap();
        let request_commitment = commitment::request_commitment(&announcement_hash, enc_request);
        let result_commitment = commitment::result_commitment(&request_commitment, &sealed_result);
        let request_index = self.earlier;
        let request_leaf = Leaf::Request(RequestLeaf {
            session_id: self.announcement.session_id,
            time_ms: NOW * 1000,
            announcement_hash,
            request_commitment,
        });
        let result_leaf = Leaf::Result(ResultLeaf {
            session_id: self.announcement.session_id,
            time_ms: NOW * 1000 + 5,
            request_index,
            outcome: Outcome::Executed,
            request_commitment,
            result_commitment,
            input_commitment: commitment::input_commitment(&input_blind, &plaintext),
            output_commitment: commitment::output_commitment(&output_blind, &output),
        })
        .encode();
        let mut tree = self.log();
        tree.push(&[leaf_hash(&request_leaf.encode()), leaf_hash(&result_leaf)])
            .unwrap();
        api::Executed {
            session_id: api::SessionId(self.announcement.session_id).to_string(),
            outcome: "executed".into(),
            request_commitment,
            result_commitment,
            sealed_result,
            audit: api::Audit {
                request_index,
                result_index: request_index + 1,
                leaf: result_leaf,
                inclusion_proof: inclusion_proof(request_index + 1, tree.size(), &tree).unwrap(),
                checkpoint: self.checkpoint(&tree).sign(&self.key),
            },
        }
    }

    /// The log before this session: `earlier` leaves of other sessions.
    fn log(&self) -> MemoryTree {
        let mut tree = MemoryTree::default();
        let leaves: Vec<Digest> = (0..self.earlier).map(|i| leaf_hash(&[i as u8])).collect();
        tree.push(&leaves).unwrap();
        tree
    }

    fn checkpoint(&self, tree: &MemoryTree) -> Checkpoint {
        Checkpoint {
            origin: self.key.public().default_origin(),
            size: tree.size(),
            root: tree.root(),
        }
    }
}

fn payload(seed: Option<[u8; 32]>) -> RequestPayload {
    RequestPayload {
        wasm: b"\0asm\x01\0\0\0".to_vec(),
        seed,
        ..RequestPayload::default()
    }
}

fn seal(daemon: &Daemon, payload: &RequestPayload) -> SealedRequest {
    let session = Verifier::new(pinned())
        .check_announcement(&daemon.created(), &TICKET, NOW)
        .unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    session.seal(payload, &mut rng).unwrap()
}

/// The answer to a request with [`CLIENT_SEED`], its output map changed by `adjust`.
fn check(adjust: impl FnOnce(&mut OutputMap)) -> Result<VerifiedResult, VerifyError> {
    let daemon = Daemon::new();
    let sealed = seal(&daemon, &payload(Some(CLIENT_SEED)));
    let executed = daemon.execute(sealed.enc_request(), adjust);
    Verifier::new(pinned()).check_result(&sealed, &executed)
}

fn refused_because(result: Result<VerifiedResult, VerifyError>, why: &str) {
    match result {
        Err(VerifyError::Refused(reason)) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a refusal for {why}, got {other:?}"),
    }
}

#[test]
fn an_honest_result_passes_every_check() {
    let verified = check(|_| {}).unwrap();
    assert_eq!(verified.output.stdout, b"hello\n");
    assert_eq!(
        verified.output.random_seed,
        commitment::random_seed(&SERVER_SEED, &CLIENT_SEED)
    );
    assert_eq!((verified.request_index, verified.result_index), (3, 4));
    assert_eq!(verified.checkpoint.checkpoint.size, 5);
}

#[test]
fn a_result_whose_random_seed_is_not_derived_from_both_shares_is_refused() {
    // A server grinding the program's randomness: any other value than the derivation.
    refused_because(check(|output| output.random_seed[0] ^= 1), "random_seed");
    // The server's share alone, as if the client had sent no seed.
    refused_because(
        check(|output| output.random_seed = commitment::random_seed(&SERVER_SEED, &[0; 32])),
        "random_seed",
    );
}

#[test]
fn a_result_whose_server_seed_does_not_open_the_seed_commitment_is_refused() {
    // Another server seed, with a random_seed honestly derived from it: only the commitment
    // made in the announcement, before the client's seed was known, catches it.
    refused_because(
        check(|output| {
            output.server_seed = [6; 32];
            output.random_seed = commitment::random_seed(&[6; 32], &CLIENT_SEED);
        }),
        "seed_commitment",
    );
}

#[test]
fn without_a_seed_and_for_bad_payload_the_client_share_is_zero() {
    let daemon = Daemon::new();
    let verifier = Verifier::new(pinned());
    let sealed = seal(&daemon, &payload(None));
    let executed = daemon.execute(sealed.enc_request(), |_| {});
    verifier.check_result(&sealed, &executed).unwrap();

    // bad_payload: the daemon derives random_seed from the all-zero seed whatever was sent.
    let sealed = seal(&daemon, &payload(Some(CLIENT_SEED)));
    let executed = daemon.execute(sealed.enc_request(), |output| {
        output.status = Status::BadPayload;
        output.random_seed = commitment::random_seed(&SERVER_SEED, &[0; 32]);
    });
    verifier.check_result(&sealed, &executed).unwrap();
    let sealed = seal(&daemon, &payload(Some(CLIENT_SEED)));
    let executed = daemon.execute(sealed.enc_request(), |output| {
        output.status = Status::BadPayload;
    });
    refused_because(verifier.check_result(&sealed, &executed), "random_seed");
}

#[test]
fn every_other_result_check_refuses_what_breaks_it() {
    let daemon = Daemon::new();
    let verifier = Verifier::new(pinned());
    let sealed = seal(&daemon, &payload(Some(CLIENT_SEED)));
    let honest = daemon.execute(sealed.enc_request(), |_| {});
    verifier.check_result(&sealed, &honest).unwrap();

    let mut wrong = honest.clone();
    wrong.result_commitment[0] ^= 1;
    refused_because(verifier.check_result(&sealed, &wrong), "wire commitments");
    let mut wrong = honest.clone();
    wrong.outcome = "running".into();
    refused_because(verifier.check_result(&sealed, &wrong), "executed");
    let mut wrong = honest.clone();
    wrong.audit.request_index += 1;
    refused_because(verifier.check_result(&sealed, &wrong), "result leaf");
    let mut wrong = honest.clone();
    wrong.audit.leaf[140] ^= 1;
    refused_because(verifier.check_result(&sealed, &wrong), "result leaf");
    let mut wrong = honest.clone();
    wrong.audit.inclusion_proof[0][0] ^= 1;
    assert!(matches!(
        verifier.check_result(&sealed, &wrong),
        Err(VerifyError::Protocol(Error::Checkpoint(_)))
    ));
    let mut wrong = honest.clone();
    wrong.audit.checkpoint = wrong.audit.checkpoint.replacen('5', "6", 1);
    assert!(verifier.check_result(&sealed, &wrong).is_err());
    // A checkpoint signed by another key.
    let mut wrong = honest;
    let other = IdentityKey::from_secret_bytes(&[0x43; 32]).unwrap();
    let tree_size = daemon.earlier + 2;
    let note = wrong.audit.checkpoint.clone();
    let root = checkpoint::verify(&note, &pinned().origin, &pinned().key)
        .unwrap()
        .root;
    wrong.audit.checkpoint = Checkpoint {
        origin: pinned().origin,
        size: tree_size,
        root,
    }
    .sign(&other);
    assert!(verifier.check_result(&sealed, &wrong).is_err());
}

#[test]
fn the_announcement_is_checked_against_the_pinned_identity_and_the_ticket() {
    let daemon = Daemon::new();
    let verifier = Verifier::new(pinned());
    let created = daemon.created();
    verifier.check_announcement(&created, &TICKET, NOW).unwrap();
    assert!(
        verifier
            .check_announcement(&created, &[2; 32], NOW)
            .is_err()
    );
    assert!(
        verifier
            .check_announcement(&created, &TICKET, NOW + 60 + 30)
            .is_err()
    );
    let mut other_id = created.clone();
    other_id.session_id = api::SessionId([0xbb; 16]).to_string();
    assert!(
        verifier
            .check_announcement(&other_id, &TICKET, NOW)
            .is_err()
    );
    let mut uppercase = created.clone();
    uppercase.session_id = uppercase.session_id.to_uppercase();
    assert!(
        verifier
            .check_announcement(&uppercase, &TICKET, NOW)
            .is_err()
    );
    let stranger = Verifier::new(PinnedIdentity {
        origin: pinned().origin,
        key: IdentityKey::from_secret_bytes(&[0x43; 32])
            .unwrap()
            .public(),
    });
    assert!(stranger.check_announcement(&created, &TICKET, NOW).is_err());
}

#[test]
fn the_announcing_log_is_found_by_identity_fpr_among_the_policy_logs() {
    use crate::policy::{Policy, PolicyLog};
    let stranger = IdentityKey::from_secret_bytes(&[0x43; 32])
        .unwrap()
        .public();
    let log = |identity: PinnedIdentity, url: &str| PolicyLog {
        identity,
        url: Some(url.into()),
    };
    let other = PinnedIdentity {
        origin: stranger.default_origin(),
        key: stranger,
    };
    let policy = Policy::new(vec![
        log(other.clone(), "http://a/"),
        log(pinned(), "http://b/"),
    ])
    .unwrap();
    let created = Daemon::new().created();
    let found = Verifier::announcing_log(&policy, &created).unwrap();
    assert_eq!(found.identity, pinned());
    assert_eq!(found.url.as_deref(), Some("http://b/"));
    let without = Policy::new(vec![log(other, "http://a/")]).unwrap();
    assert!(matches!(
        Verifier::announcing_log(&without, &created),
        Err(VerifyError::Identity(_))
    ));
}

#[test]
fn a_published_identity_is_pinned_only_when_its_fields_agree() {
    let key = identity_key();
    let identity = published(&key);
    assert_eq!(PinnedIdentity::from_published(&identity).unwrap(), pinned());
    let verifier = Verifier::new(pinned());
    verifier.check_identity(&identity).unwrap();

    let mut wrong = identity.clone();
    wrong.fingerprint[0] ^= 1;
    assert!(PinnedIdentity::from_published(&wrong).is_err());
    let mut renamed = identity;
    renamed.origin = "another/origin".into();
    renamed.note_verifier_key = key.public().note_verifier_key(&renamed.origin);
    PinnedIdentity::from_published(&renamed).unwrap();
    assert!(verifier.check_identity(&renamed).is_err());
    let other = published(&IdentityKey::from_secret_bytes(&[0x43; 32]).unwrap());
    assert!(verifier.check_identity(&other).is_err());
}

/// A log of `size` leaves and its signed checkpoint.
fn log_of(size: u64, key: &IdentityKey) -> (MemoryTree, SignedCheckpoint) {
    let mut tree = MemoryTree::default();
    let leaves: Vec<Digest> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    tree.push(&leaves).unwrap();
    let note = Checkpoint {
        origin: key.public().default_origin(),
        size,
        root: tree.root(),
    }
    .sign(key);
    (tree, SignedCheckpoint::verify(&note, &pinned()).unwrap())
}

#[test]
fn the_tracker_accepts_consistent_growth_only() {
    let key = identity_key();
    let (_, at3) = log_of(3, &key);
    let (tree7, at7) = log_of(7, &key);
    let (_, at0) = log_of(0, &key);
    let mut tracker = CheckpointTracker::new(pinned(), None).unwrap();
    assert_eq!(tracker.proof_needed(&at3.checkpoint).unwrap(), None);
    tracker.update(at0, &[]).unwrap();
    assert_eq!(tracker.proof_needed(&at3.checkpoint).unwrap(), None);
    tracker.update(at3.clone(), &[]).unwrap();

    assert_eq!(tracker.proof_needed(&at7.checkpoint).unwrap(), Some((3, 7)));
    let proof = consistency_proof(3, 7, &tree7).unwrap();
    // A proof that does not verify leaves the tracker where it was.
    let mut broken = proof.clone();
    broken[0][0] ^= 1;
    assert!(matches!(
        tracker.update(at7.clone(), &broken),
        Err(VerifyError::Inconsistent(_))
    ));
    assert_eq!(tracker.latest(), Some(&at3));
    tracker.update(at7.clone(), &proof).unwrap();
    assert_eq!(tracker.latest(), Some(&at7));
    // The same checkpoint again needs no proof.
    assert_eq!(tracker.proof_needed(&at7.checkpoint).unwrap(), None);
    tracker.update(at7.clone(), &[]).unwrap();

    // Rolled back: a smaller tree, even one that is a prefix of the trusted one.
    assert!(matches!(
        tracker.proof_needed(&at3.checkpoint),
        Err(VerifyError::Inconsistent(_))
    ));
    assert!(tracker.update(at3, &[]).is_err());
    assert_eq!(tracker.latest(), Some(&at7));
}

#[test]
fn the_tracker_refuses_a_fork_and_a_rewritten_history() {
    let key = identity_key();
    let (_, at4) = log_of(4, &key);
    let mut tracker = CheckpointTracker::new(pinned(), Some(at4.clone())).unwrap();
    // Another tree of size 4 (other leaves): a fork.
    let mut forked = MemoryTree::default();
    forked.push(&[[1; 32], [2; 32], [3; 32], [4; 32]]).unwrap();
    let fork = Checkpoint {
        origin: key.public().default_origin(),
        size: 4,
        root: forked.root(),
    };
    let fork = SignedCheckpoint::verify(&fork.sign(&key), &pinned()).unwrap();
    assert!(matches!(
        tracker.update(fork, &[]),
        Err(VerifyError::Inconsistent(_))
    ));
    // The forked tree grown to 6: its proof from 4 cannot match the trusted root.
    forked.push(&[[5; 32], [6; 32]]).unwrap();
    let grown = Checkpoint {
        origin: key.public().default_origin(),
        size: 6,
        root: forked.root(),
    };
    let grown = SignedCheckpoint::verify(&grown.sign(&key), &pinned()).unwrap();
    let proof = consistency_proof(4, 6, &forked).unwrap();
    assert!(matches!(
        tracker.update(grown, &proof),
        Err(VerifyError::Inconsistent(_))
    ));
    assert_eq!(tracker.latest(), Some(&at4));

    // A checkpoint of another identity is neither trusted nor tracked.
    let other = IdentityKey::from_secret_bytes(&[0x43; 32]).unwrap();
    let other_pin = PinnedIdentity {
        origin: other.public().default_origin(),
        key: other.public(),
    };
    let (_, theirs) = log_of(4, &key);
    assert!(CheckpointTracker::new(other_pin, Some(theirs)).is_err());
}

#[test]
fn session_audit_entries_are_checked_for_session_and_inclusion() {
    let daemon = Daemon::new();
    let sealed = seal(&daemon, &payload(Some(CLIENT_SEED)));
    let executed = daemon.execute(sealed.enc_request(), |_| {});
    let verifier = Verifier::new(pinned());
    let verified = verifier.check_result(&sealed, &executed).unwrap();
    let session_id = sealed.session_id();
    let body = api::SessionAudit {
        session_id: session_id.clone(),
        entries: vec![api::AuditEntry {
            index: verified.result_index,
            leaf: executed.audit.leaf.clone(),
            record: serde_json::Value::Null,
            inclusion_proof: executed.audit.inclusion_proof.clone(),
        }],
        checkpoint: executed.audit.checkpoint,
    };
    let (leaves, _) = verifier.check_session_audit(&session_id, &body).unwrap();
    assert_eq!(leaves.len(), 1);
    let other = api::SessionId([0xcc; 16]).to_string();
    assert!(verifier.check_session_audit(&other, &body).is_err());
    let mut moved = body;
    moved.entries[0].index -= 1;
    assert!(verifier.check_session_audit(&session_id, &moved).is_err());
}

/// A note that passed once passes again without a second check, and only for the identity it
/// passed for: another key, another origin or other bytes are checked in full; and no more
/// than [`RecentlyVerified::LEN`] notes are kept.
#[test]
fn a_checkpoint_verified_before_passes_only_for_its_identity() {
    let recent = RecentlyVerified::new();
    let checks = std::cell::Cell::new(0);
    let verify = |note: &str, pinned: &PinnedIdentity| {
        recent.verify(note, pinned, || {
            checks.set(checks.get() + 1);
            checkpoint::verify(note, &pinned.origin, &pinned.key)
        })
    };
    let key = identity_key();
    let (_, signed) = log_of(5, &key);
    assert_eq!(verify(signed.note(), &pinned()).unwrap(), signed);
    assert_eq!(verify(signed.note(), &pinned()).unwrap(), signed);
    assert_eq!(checks.get(), 1, "the second time is remembered");

    let other_key = PinnedIdentity {
        origin: pinned().origin,
        key: IdentityKey::from_secret_bytes(&[0x43; 32])
            .unwrap()
            .public(),
    };
    let other_origin = PinnedIdentity {
        origin: "another/origin".into(),
        key: key.public(),
    };
    let tampered = signed.note().replacen("\n5\n", "\n6\n", 1);
    assert!(verify(signed.note(), &other_key).is_err());
    assert!(verify(signed.note(), &other_origin).is_err());
    assert!(verify(&tampered, &pinned()).is_err());
    assert_eq!(checks.get(), 4, "each of them checked in full");

    for size in 6..6 + RecentlyVerified::LEN as u64 {
        verify(log_of(size, &key).1.note(), &pinned()).unwrap();
    }
    assert_eq!(recent.lock().len(), RecentlyVerified::LEN);
    verify(signed.note(), &pinned()).unwrap();
    assert_eq!(
        checks.get(),
        5 + RecentlyVerified::LEN,
        "the oldest note was let go and is checked again"
    );
}
