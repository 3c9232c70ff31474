//! The project's published protocol vectors (`protocol/vectors/wasm-hv-v1.json`): every value is
//! derived here from fixed inputs, and the test fails if the file and the code ever disagree.
//! Run with `REGENERATE_VECTORS=1` to rewrite the file after a deliberate change.

use serde_json::{Value, json};

use crate::announcement::{self, Announcement};
use crate::checkpoint::Checkpoint;
use crate::commitment;
use crate::identity::IdentityKey;
use crate::leaf::{Leaf, Outcome, RequestLeaf, ResultLeaf};
use crate::merkle::{self, MemoryTree};
use crate::payload::{Limits, OutputMap, RequestPayload, ResultPayload, Status};
use crate::sealing::{self, SessionKeyPair, tests::ReplayRng};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/wasm-hv-v1.json");

fn vectors() -> Value {
    let identity = IdentityKey::from_secret_bytes(&[0x11; 32]).unwrap();
    let session_key_ikm = [0x22; 32];
    let session_keys = SessionKeyPair::derive(&session_key_ikm);
    let session_id = [
        0x6f, 0x1e, 0x0c, 0x4a, 0x3b, 0x2d, 0x4c, 0x1e, 0x9f, 0x8a, 0x7b, 0x6c, 0x5d, 0x4e, 0x3f,
        0x21,
    ];
    let ticket = [0x33; 32];
    let server_seed = [0x44; 32];
    let client_seed = [0x99; 32];
    let ikm_e = [0x55; 32];
    let response_nonce = [0x66; 32];
    let input_blind = [0x77; 32];
    let output_blind = [0x88; 32];

    let announcement = Announcement {
        session_id,
        issued_at: 1_700_000_000,
        expires_at: 1_700_000_060,
        client_nonce: commitment::client_nonce(&ticket),
        identity_fpr: identity.public().fingerprint(),
        seed_commitment: commitment::seed_commitment(&server_seed),
        public_key: *session_keys.public_key(),
    };
    let tbs = announcement.to_tbs();
    let announcement_hash = announcement.hash();

    let request_payload = RequestPayload {
        // The smallest valid module: magic and version.
        wasm: vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
        entry: Some("main".into()),
        args: vec!["--flag".into()],
        env: vec![("KEY".into(), "value".into())],
        stdin: b"input".to_vec(),
        limits: crate::payload::RequestedLimits {
            fuel: Some(1_000_000),
            ..Default::default()
        },
        seed: Some(client_seed),
    }
    .encode();
    let (enc_request, client_response_key) = sealing::seal_request(
        session_keys.public_key(),
        &announcement_hash,
        &request_payload,
        &mut ReplayRng(ikm_e.to_vec()),
    )
    .unwrap();
    let (_, server_response_key) = session_keys
        .open_request(&announcement_hash, &enc_request)
        .unwrap();

    let output = OutputMap {
        status: Status::Ok,
        exit_code: Some(0),
        stdout: b"hello\n".to_vec(),
        stderr: Vec::new(),
        returns: None,
        error: None,
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 67_108_864,
            output_bytes: 1_048_576,
            timeout_ms: 10_000,
        },
        fuel_consumed: 1234,
        duration_us: 56,
        engine: "wasmi 2.0.0 lazy-translation".into(),
        server_seed,
        random_seed: commitment::random_seed(&server_seed, &client_seed),
    }
    .encode();
    let result_payload = ResultPayload {
        output: output.clone(),
        input_blind,
        output_blind,
    }
    .encode();
    let enc_response = server_response_key
        .seal(&result_payload, &response_nonce)
        .unwrap();
    assert_eq!(
        *client_response_key.open(&enc_response).unwrap(),
        result_payload
    );

    let request_commitment = commitment::request_commitment(&announcement_hash, &enc_request);
    let result_commitment = commitment::result_commitment(&request_commitment, &enc_response);
    let input_commitment = commitment::input_commitment(&input_blind, &request_payload);
    let output_commitment = commitment::output_commitment(&output_blind, &output);
    let request_leaf = Leaf::Request(RequestLeaf {
        session_id,
        time_ms: 1_700_000_001_000,
        announcement_hash,
        request_commitment,
    });
    let result_leaf = Leaf::Result(ResultLeaf {
        session_id,
        time_ms: 1_700_000_001_500,
        request_index: 41,
        outcome: Outcome::Executed,
        request_commitment,
        result_commitment,
        input_commitment,
        output_commitment,
    });

    // A log of seven leaves: this session's two, then five of other sessions.
    let mut log_leaves = vec![request_leaf.encode(), result_leaf.encode()];
    log_leaves.extend((2u8..7).map(|n| {
        Leaf::Request(RequestLeaf {
            session_id: [n; 16],
            time_ms: 1_700_000_002_000 + u64::from(n),
            announcement_hash: [n; 32],
            request_commitment: [n.wrapping_mul(3); 32],
        })
        .encode()
    }));
    let mut tree = MemoryTree::default();
    let leaf_hashes: Vec<_> = log_leaves
        .iter()
        .map(|leaf| merkle::leaf_hash(leaf))
        .collect();
    tree.push(&leaf_hashes[..3]).unwrap();
    let root_3 = tree.root();
    tree.push(&leaf_hashes[3..]).unwrap();
    let origin = identity.public().default_origin();
    let checkpoint = Checkpoint {
        origin,
        size: 7,
        root: tree.root(),
    };
    let inclusion = merkle::inclusion_proof(1, 7, &tree).unwrap();
    let consistency = merkle::consistency_proof(3, 7, &tree).unwrap();

    let h = |bytes: &[u8]| hex::encode(bytes);
    let hashes = |proof: &[[u8; 32]]| proof.iter().map(hex::encode).collect::<Vec<_>>();
    json!({
        "about": "wasm-hypervisor protocol v1 vectors (PROTOCOL.md). Every output is derived from the inputs; ECDSA uses RFC 6979 nonces with low-S, HPKE SetupBaseS draws ikmE as its randomness.",
        "inputs": {
            "identity_private_key": h(&[0x11; 32]),
            "session_key_ikm": h(&session_key_ikm),
            "session_id": "6f1e0c4a-3b2d-4c1e-9f8a-7b6c5d4e3f21",
            "issued_at": 1_700_000_000u64,
            "expires_at": 1_700_000_060u64,
            "ticket": h(&ticket),
            "server_seed": h(&server_seed),
            "client_seed": h(&client_seed),
            "ikmE": h(&ikm_e),
            "response_nonce": h(&response_nonce),
            "input_blind": h(&input_blind),
            "output_blind": h(&output_blind),
            "request_leaf_time_ms": 1_700_000_001_000u64,
            "result_leaf_time_ms": 1_700_000_001_500u64,
            "result_leaf_request_index": 41,
        },
        "identity_public_key": h(&identity.public().sec1()),
        "identity_spki": h(&identity.public().spki_der()),
        "identity_fingerprint": h(&identity.public().fingerprint()),
        "origin": identity.public().default_origin(),
        "note_verifier_key": identity.public().note_verifier_key(&identity.public().default_origin()),
        "session_public_key": h(session_keys.public_key()),
        "client_nonce": h(&announcement.client_nonce),
        "seed_commitment": h(&announcement.seed_commitment),
        "tbs": h(&tbs),
        "signature_input": h(&announcement::signing_input(&tbs)),
        "signature": h(&announcement.sign(&identity)),
        "announcement_hash": h(&announcement_hash),
        "info": h(&sealing::request_info(&announcement_hash)),
        "request_payload": h(&request_payload),
        "enc_request": h(&enc_request),
        "random_seed": h(&commitment::random_seed(&server_seed, &client_seed)),
        "output": h(&output),
        "result_payload": h(&result_payload),
        "enc_response": h(&enc_response),
        "request_commitment": h(&request_commitment),
        "result_commitment": h(&result_commitment),
        "input_commitment": h(&input_commitment),
        "output_commitment": h(&output_commitment),
        "request_leaf": h(&request_leaf.encode()),
        "result_leaf": h(&result_leaf.encode()),
        "log": {
            "about": "leaves 0 and 1 are request_leaf and result_leaf; leaves 2..6 are request leaves of sessions [n;16] with time_ms 1700000002000+n, announcement_hash [n;32], request_commitment [3n;32]",
            "leaves": log_leaves.iter().map(|leaf| h(leaf)).collect::<Vec<_>>(),
            "leaf_hashes": hashes(&leaf_hashes),
            "root_3": h(&root_3),
            "root_7": h(&checkpoint.root),
            "inclusion_proof_index_1_size_7": hashes(&inclusion),
            "consistency_proof_3_7": hashes(&consistency),
            "checkpoint_text": checkpoint.text(),
            "signed_checkpoint": checkpoint.sign(&identity),
        },
    })
}

/// Byte for byte where the backend signs with RFC 6979 nonces (RustCrypto). A hedged signer
/// (aws-lc) makes other, equally valid signatures: there, every other value is compared, and the
/// two signatures are checked to verify, low-S, under the published key.
#[test]
fn published_vectors_match_the_code() {
    let computed = vectors();
    let published: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    if !<crate::crypto::Active as crate::crypto::Backend>::DETERMINISTIC_SIGNATURES {
        assert!(
            std::env::var_os("REGENERATE_VECTORS").is_none(),
            "regenerate on the RustCrypto backend (default features), whose signatures are deterministic"
        );
        let bytes = |name: &str| hex::decode(computed[name].as_str().unwrap()).unwrap();
        let public =
            crate::identity::IdentityPublicKey::from_sec1(&bytes("identity_public_key")).unwrap();
        let signature = bytes("signature");
        public
            .verify(&bytes("signature_input"), &signature)
            .unwrap();
        let (_, s) = crate::crypto::parse_der_signature(&signature).unwrap();
        assert!(crate::crypto::is_low_s(&s));
        let note = computed["log"]["signed_checkpoint"].as_str().unwrap();
        crate::checkpoint::verify(note, computed["origin"].as_str().unwrap(), &public).unwrap();
        let without_signatures = |v: &Value| {
            let mut v = v.clone();
            v["signature"] = Value::Null;
            let note = v["log"]["signed_checkpoint"].as_str().unwrap();
            v["log"]["signed_checkpoint"] = note.rsplit_once(' ').unwrap().0.into();
            v
        };
        assert_eq!(
            without_signatures(&published),
            without_signatures(&computed)
        );
        return;
    }
    let rendered = serde_json::to_string_pretty(&computed).unwrap() + "\n";
    if std::env::var_os("REGENERATE_VECTORS").is_some() {
        std::fs::write(PATH, &rendered).unwrap();
    }
    assert_eq!(
        published, computed,
        "run with REGENERATE_VECTORS=1 after a deliberate change"
    );
}

#[test]
fn published_signature_verifies_and_openings_match() {
    let v = vectors();
    let bytes = |name: &str| hex::decode(v[name].as_str().unwrap()).unwrap();
    let public =
        crate::identity::IdentityPublicKey::from_sec1(&bytes("identity_public_key")).unwrap();
    public
        .verify(&bytes("signature_input"), &bytes("signature"))
        .unwrap();
    assert_eq!(bytes("tbs").len(), announcement::TBS_LEN);
    assert_eq!(bytes("info").len(), 58);
    assert_eq!(bytes("request_leaf").len(), 90);
    assert_eq!(bytes("result_leaf").len(), 163);
    let session = SessionKeyPair::derive(&[0x22; 32]);
    let hash: [u8; 32] = bytes("announcement_hash").try_into().unwrap();
    let (payload, _) = session.open_request(&hash, &bytes("enc_request")).unwrap();
    assert_eq!(*payload, bytes("request_payload"));

    let log = &v["log"];
    let digest = |value: &Value| -> [u8; 32] {
        hex::decode(value.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let proof = |name: &str| {
        log[name]
            .as_array()
            .unwrap()
            .iter()
            .map(digest)
            .collect::<Vec<_>>()
    };
    let note = log["signed_checkpoint"].as_str().unwrap();
    let checkpoint =
        crate::checkpoint::verify(note, v["origin"].as_str().unwrap(), &public).unwrap();
    assert_eq!(
        (checkpoint.size, checkpoint.root),
        (7, digest(&log["root_7"]))
    );
    assert_eq!(log["leaves"][1], v["result_leaf"]);
    merkle::verify_inclusion(
        &bytes("result_leaf"),
        1,
        7,
        &proof("inclusion_proof_index_1_size_7"),
        &checkpoint.root,
    )
    .unwrap();
    merkle::verify_consistency(
        3,
        7,
        &digest(&log["root_3"]),
        &checkpoint.root,
        &proof("consistency_proof_3_7"),
    )
    .unwrap();
}
