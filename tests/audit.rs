//! The audit log over HTTP (`docs/PROTOCOL.md` §6): every consumed session leaves two leaves
//! whatever its outcome, proofs verify against signed checkpoints, the query endpoints validate
//! their parameters, and a restart turns orphaned requests into `aborted` results.

mod common;

use std::sync::Arc;

use common::{error_code, payload, start};
use wasm_hypervisor::client::SignedCheckpoint;
use wasm_hypervisor_protocol::api;
use wasm_hypervisor_protocol::commitment::{self, ABSENT};
use wasm_hypervisor_protocol::leaf::{Leaf, Outcome, RequestLeaf};
use wasm_hypervisor_protocol::merkle;

const OK_PROGRAM: &str = r#"(module (func (export "_start")))"#;

#[actix_rt::test]
async fn an_execution_is_logged_with_proofs_against_a_signed_checkpoint() {
    let daemon = start(|_| {});
    let pinned = daemon.pinned().await;
    let first = daemon
        .client
        .execute(&pinned, &payload(OK_PROGRAM), None)
        .await
        .unwrap();
    let second = daemon
        .client
        .execute(&pinned, &payload(OK_PROGRAM), Some(&first.checkpoint))
        .await
        .unwrap();
    assert_eq!((first.request_index, first.result_index), (0, 1));
    assert_eq!((second.request_index, second.result_index), (2, 3));

    let (leaves, checkpoint) = daemon
        .client
        .session_audit(&pinned, &first.session_id)
        .await
        .unwrap();
    assert_eq!(checkpoint.checkpoint.size, 4);
    let [(0, Leaf::Request(request)), (1, Leaf::Result(result))] = leaves.as_slice() else {
        panic!("expected a request and a result leaf: {leaves:?}");
    };
    assert_eq!(request.announcement_hash, commitment::h3(&first.tbs));
    assert_eq!(request.request_commitment, first.request_commitment);
    assert_eq!(result.outcome, Outcome::Executed);
    assert_eq!(
        [
            result.result_commitment,
            result.input_commitment,
            result.output_commitment
        ],
        [
            first.result_commitment,
            first.input_commitment,
            first.output_commitment
        ]
    );
    daemon
        .client
        .verify_consistency(&first.checkpoint.checkpoint, &checkpoint.checkpoint)
        .await
        .unwrap();

    // The record decodes the leaf with the protocol's field names.
    let (status, body) = daemon.get(&format!("/audit/{}", first.session_id)).await;
    assert_eq!(status, 200);
    let audit: api::SessionAudit = serde_json::from_slice(&body).unwrap();
    assert_eq!(audit.entries[1].record["kind"], "result");
    assert_eq!(audit.entries[1].record["outcome"], "executed");
    assert_eq!(audit.entries[1].record["request_index"], 0);
    assert_eq!(
        audit.entries[0].record["request_commitment"],
        hex::encode(first.request_commitment)
    );
    assert_eq!(audit.entries[0].record["session_id"], first.session_id);
}

#[actix_rt::test]
async fn unseal_failures_are_logged_without_plaintext_commitments() {
    let daemon = start(|_| {});
    let pinned = daemon.pinned().await;
    let session = daemon.open_session().await;
    let (mut enc_request, _) = session.seal(&payload(OK_PROGRAM).encode());
    let last = enc_request.len() - 1;
    enc_request[last] ^= 1;
    let (status, _) = session.execute(&daemon, enc_request).await;
    assert_eq!(status, 400);
    let (leaves, _) = daemon
        .client
        .session_audit(&pinned, session.id())
        .await
        .unwrap();
    let [(0, Leaf::Request(_)), (1, Leaf::Result(result))] = leaves.as_slice() else {
        panic!("expected a request and a result leaf: {leaves:?}");
    };
    assert_eq!(result.outcome, Outcome::UnsealFailed);
    assert_eq!(
        [
            result.result_commitment,
            result.input_commitment,
            result.output_commitment
        ],
        [ABSENT; 3]
    );
}

#[actix_rt::test]
async fn sessions_that_never_executed_leave_nothing() {
    let daemon = start(|_| {});
    let session = daemon.open_session().await;
    assert_eq!(daemon.get(&format!("/audit/{}", session.id())).await.0, 404);
    let (status, body) = daemon.get("/audit/checkpoint").await;
    assert_eq!(status, 200);
    let note = String::from_utf8(body).unwrap();
    let empty = SignedCheckpoint::verify(&note, &daemon.pinned().await).unwrap();
    assert_eq!(
        (empty.checkpoint.size, empty.checkpoint.root),
        (0, merkle::empty_root())
    );
}

#[actix_rt::test]
async fn query_parameters_are_validated() {
    let daemon = start(|_| {});
    let pinned = daemon.pinned().await;
    for _ in 0..3 {
        daemon
            .client
            .execute(&pinned, &payload(OK_PROGRAM), None)
            .await
            .unwrap();
    }
    for path in [
        "/audit/consistency?old=0&new=6",
        "/audit/consistency?old=3&new=2",
        "/audit/consistency?old=1&new=7",
        "/audit/consistency?old=1",
        "/audit/consistency?old=x&new=2",
        "/audit/entries?start=7&end=8",
        "/audit/entries?start=-1&end=2",
    ] {
        let (status, body) = daemon.get(path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(error_code(&body).0, "malformed_request", "{path}");
    }
    let (status, body) = daemon.get("/audit/consistency?old=2&new=6").await;
    assert_eq!(status, 200);
    let consistency: api::Consistency = serde_json::from_slice(&body).unwrap();
    assert_eq!((consistency.old, consistency.new), (2, 6));
    assert!(!consistency.proof.is_empty());

    let (status, body) = daemon.get("/audit/entries?start=4&end=1000000").await;
    assert_eq!(status, 200);
    let entries: api::Entries = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        entries
            .entries
            .iter()
            .map(|entry| entry.index)
            .collect::<Vec<_>>(),
        [4, 5]
    );
    let (_, body) = daemon.get("/audit/entries?start=6&end=9").await;
    assert_eq!(
        serde_json::from_slice::<api::Entries>(&body)
            .unwrap()
            .entries,
        []
    );
    assert_eq!(daemon.get("/audit/not-a-session").await.0, 404);
}

#[actix_rt::test]
async fn a_restart_turns_orphaned_requests_into_aborted_results() {
    let data_dir = tempfile::tempdir().unwrap();
    let identity =
        Arc::new(wasm_hypervisor::identity_file::load_or_create(data_dir.path()).unwrap());
    let origin = identity.public().default_origin();
    let session_id = [0x5a; 16];
    let request_commitment = [7; 32];
    {
        // A daemon that crashed after logging a request leaf: the leaf, and nothing after it.
        let store =
            wasm_hypervisor_actors::auditor::store::open(Default::default(), data_dir.path())
                .unwrap();
        let (mut log, aborted) = wasm_hypervisor_actors::auditor::audit_log::AuditLog::open(
            store,
            Arc::clone(&identity),
            origin.clone(),
            Default::default(),
        )
        .unwrap();
        assert!(aborted.is_empty());
        log.append(vec![
            Leaf::Request(RequestLeaf {
                session_id,
                time_ms: 1,
                announcement_hash: [6; 32],
                request_commitment,
            })
            .into(),
        ])
        .unwrap();
    }
    let data_path = data_dir.path().to_owned();
    let daemon = start(move |config| config.data_dir = data_path);
    let session = api::SessionId(session_id).to_string();
    let (status, body) = daemon.get(&format!("/sessions/{session}/result")).await;
    assert_eq!(status, 500);
    let (code, commitment) = error_code(&body);
    assert_eq!(
        (code.as_str(), commitment),
        ("aborted", Some(hex::encode(request_commitment)))
    );
    let (leaves, _) = daemon
        .client
        .session_audit(&daemon.pinned().await, &session)
        .await
        .unwrap();
    let [(0, Leaf::Request(_)), (1, Leaf::Result(result))] = leaves.as_slice() else {
        panic!("expected the request and its aborted result: {leaves:?}");
    };
    assert_eq!(
        (
            result.outcome,
            result.request_index,
            result.request_commitment
        ),
        (Outcome::Aborted, 0, request_commitment)
    );
    drop(data_dir);
}
