//! Every HTTP error of `docs/PROTOCOL.md` §4 and §7 against the real daemon: which errors consume a
//! session, which leave it usable, and that the first failure in §4's order wins.

mod common;

use std::time::Duration;

use common::{Daemon, error_code, payload, post_json, start};
use wasm_hypervisor_protocol::api::{OCTET_STREAM_CONTENT_TYPE, SEALED_REQUEST_CONTENT_TYPE};

const OK_PROGRAM: &str = r#"(module (func (export "_start")))"#;

/// Asserts an error response: status, code and whether it carries a request commitment.
fn assert_error(
    response: &(awc::http::StatusCode, Vec<u8>),
    status: u16,
    code: &str,
    consumed: bool,
) {
    assert_eq!(
        response.0.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&response.1)
    );
    let (actual_code, request_commitment) = error_code(&response.1);
    assert_eq!(actual_code, code);
    assert_eq!(
        request_commitment.is_some(),
        consumed,
        "request_commitment only once consumed"
    );
}

/// The session still works after an error that must not consume it.
async fn assert_still_usable(daemon: &Daemon, session: &common::Session) {
    let (enc_request, _) = session.seal(&payload(OK_PROGRAM).encode());
    let (status, body) = session.execute(daemon, enc_request).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[actix_rt::test]
async fn session_creation_rejects_bad_nonces_with_malformed_request() {
    let daemon = start(|_| {});
    for body in [
        serde_json::json!({}),
        serde_json::json!({"client_nonce": hex::encode([0u8; 32])}),
        serde_json::json!({"client_nonce": "abcd"}),
        serde_json::json!({"client_nonce": hex::encode([0xABu8; 32]).to_uppercase()}),
        serde_json::json!({"client_nonce": 7}),
    ] {
        let response = post_json(&daemon.url("/sessions"), &body).await;
        assert_error(&response, 400, "malformed_request", false);
    }
}

#[actix_rt::test]
async fn an_oversized_session_request_is_refused_in_the_error_format() {
    let daemon = start(|_| {});
    let padding = "x".repeat(5000);
    let response = post_json(
        &daemon.url("/sessions"),
        &serde_json::json!({"client_nonce": hex::encode([1u8; 32]), "padding": padding}),
    )
    .await;
    assert_error(&response, 413, "payload_too_large", false);
}

#[actix_rt::test]
async fn too_many_open_sessions_is_overloaded_with_retry_after() {
    let daemon = start(|config| config.supervisor.max_open_sessions = 1);
    daemon.open_session().await;
    // From an address that holds none: the total, not its share, is what ran out.
    let mut response = common::client_from(common::OTHER_ADDRESS)
        .post(daemon.url("/sessions"))
        .send_json(&serde_json::json!({"client_nonce": hex::encode([1u8; 32])}))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("Retry-After").is_some());
    let (code, _) = error_code(&response.body().await.unwrap());
    assert_eq!(code, "overloaded");
}

#[actix_rt::test]
async fn unknown_sessions_are_not_found() {
    let daemon = start(|_| {});
    for id in [
        "00000000-0000-4000-8000-000000000000",
        "not-a-uuid",
        "00000000-0000-4000-8000-00000000000A",
    ] {
        let response = daemon
            .execute_raw(id, Some("00"), SEALED_REQUEST_CONTENT_TYPE, vec![0; 100])
            .await;
        assert_error(&response, 404, "session_not_found", false);
        assert_error(
            &daemon.get(&format!("/sessions/{id}/result")).await,
            404,
            "session_not_found",
            false,
        );
    }
}

#[actix_rt::test]
async fn wrong_or_missing_tickets_are_refused_without_consuming_the_session() {
    let daemon = start(|_| {});
    let session = daemon.open_session().await;
    let (enc_request, _) = session.seal(&payload(OK_PROGRAM).encode());
    let other_ticket = hex::encode([7u8; 32]);
    for ticket in [
        None,
        Some(other_ticket.as_str()),
        Some("zz"),
        Some(&session.ticket_hex()[..62]),
    ] {
        let response = daemon
            .execute_raw(
                session.id(),
                ticket,
                SEALED_REQUEST_CONTENT_TYPE,
                enc_request.clone(),
            )
            .await;
        assert_error(&response, 403, "bad_ticket", false);
    }
    assert_still_usable(&daemon, &session).await;
}

#[actix_rt::test]
async fn malformed_requests_do_not_consume_the_session() {
    let daemon = start(|_| {});
    let session = daemon.open_session().await;
    let (enc_request, _) = session.seal(&payload(OK_PROGRAM).encode());
    let ticket = session.ticket_hex();
    let mut wrong_header = enc_request.clone();
    wrong_header[6] = 0x01; // AES-128-GCM
    let cases = [
        ("text/plain", enc_request.clone()),
        ("application/json", enc_request.clone()),
        (
            SEALED_REQUEST_CONTENT_TYPE,
            enc_request[..7 + 65 + 15].to_vec(),
        ),
        (SEALED_REQUEST_CONTENT_TYPE, Vec::new()),
        (SEALED_REQUEST_CONTENT_TYPE, wrong_header),
    ];
    for (content_type, body) in cases {
        let response = daemon
            .execute_raw(session.id(), Some(&ticket), content_type, body)
            .await;
        assert_error(&response, 400, "malformed_request", false);
    }
    // The other accepted content type works.
    let (status, _) = daemon
        .execute_raw(
            session.id(),
            Some(&ticket),
            OCTET_STREAM_CONTENT_TYPE,
            enc_request,
        )
        .await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn oversized_bodies_are_refused_without_consuming_the_session() {
    let daemon = start(|config| config.supervisor.max_request_bytes = 1000);
    let session = daemon.open_session().await;
    let response = daemon
        .execute_raw(
            session.id(),
            Some(&session.ticket_hex()),
            SEALED_REQUEST_CONTENT_TYPE,
            vec![0; 1001],
        )
        .await;
    assert_error(&response, 413, "payload_too_large", false);
    assert_still_usable(&daemon, &session).await;
}

#[actix_rt::test]
async fn any_flipped_byte_is_an_opaque_unseal_failure_that_consumes_the_session() {
    let daemon = start(|_| {});
    let pristine = daemon
        .open_session()
        .await
        .seal(&payload(OK_PROGRAM).encode())
        .0;
    // Past the header (whose changes are malformed_request), through enc, ciphertext and tag.
    for position in [7, 7 + 64, 7 + 65, pristine.len() - 1] {
        let session = daemon.open_session().await;
        let (mut enc_request, _) = session.seal(&payload(OK_PROGRAM).encode());
        enc_request[position] ^= 0x01;
        let first = session.execute(&daemon, enc_request.clone()).await;
        assert_error(&first, 400, "unseal_failed", true);
        let (_, body) = &first;
        let message: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            message["error"]["message"], "the request could not be opened",
            "says nothing of why"
        );
        let expected = wasm_hypervisor_protocol::commitment::request_commitment(
            &session.announcement.hash(),
            &enc_request,
        );
        assert_eq!(message["request_commitment"], hex::encode(expected));
        // Consumed: a second attempt is refused, and the result repeats the error.
        assert_error(
            &session.execute(&daemon, enc_request).await,
            409,
            "session_used",
            false,
        );
        let again = daemon
            .get(&format!("/sessions/{}/result", session.id()))
            .await;
        assert_eq!(again, first);
    }
}

#[actix_rt::test]
async fn a_session_runs_once() {
    let daemon = start(|_| {});
    let session = daemon.open_session().await;
    let (enc_request, _) = session.seal(&payload(OK_PROGRAM).encode());
    assert_eq!(session.execute(&daemon, enc_request.clone()).await.0, 200);
    assert_error(
        &session.execute(&daemon, enc_request).await,
        409,
        "session_used",
        false,
    );
}

#[actix_rt::test]
async fn expired_sessions_are_gone_and_expiry_wins_over_a_bad_ticket() {
    let daemon = start(|config| config.supervisor.session_ttl = Duration::ZERO);
    let session = daemon.open_session().await;
    assert_eq!(
        session.created.expires_at.len(),
        "2026-11-24T03:52:31Z".len()
    );
    // expires_at == issued_at, so the session is past it within the next second.
    actix_rt::time::sleep(Duration::from_millis(2100)).await;
    let (enc_request, _) = session.seal(&payload(OK_PROGRAM).encode());
    assert_error(
        &session.execute(&daemon, enc_request.clone()).await,
        410,
        "session_expired",
        false,
    );
    let response = daemon
        .execute_raw(session.id(), None, "text/plain", enc_request)
        .await;
    assert_error(&response, 410, "session_expired", false);
}

#[actix_rt::test]
async fn the_identity_is_published_as_specified() {
    let daemon = start(|config| config.origin = Some("example.org/hypervisor".into()));
    let (status, body) = daemon.get("/identity").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["origin"], "example.org/hypervisor");
    assert_eq!(
        json["suite"],
        serde_json::json!({"kem": 16, "kdf": 1, "aead": 2})
    );
    let key =
        wasm_hypervisor_protocol::encoding::base64_decode(json["public_key"].as_str().unwrap())
            .unwrap();
    assert_eq!(key.len(), 65);
    assert_eq!(
        json["fingerprint"],
        hex::encode(wasm_hypervisor_protocol::commitment::h3(&key))
    );
    assert!(
        json["note_verifier_key"]
            .as_str()
            .unwrap()
            .starts_with("example.org/hypervisor+")
    );
    // The client accepts it as consistent.
    daemon.pinned().await;
}

/// Posts `enc_request` in the background; the handle yields the answer's status.
fn execute_in_background(
    daemon: &Daemon,
    session: &common::Session,
    enc_request: Vec<u8>,
) -> actix_rt::task::JoinHandle<u16> {
    let url = daemon.url(&format!("/sessions/{}/execute", session.id()));
    let ticket = session.ticket_hex();
    actix_rt::spawn(async move {
        awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish()
            .post(url)
            .insert_header(("Content-Type", SEALED_REQUEST_CONTENT_TYPE))
            .insert_header(("Session-Ticket", ticket))
            .send_body(enc_request)
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

/// Waits, bounded, until the session's execution is consumed (its result says running).
async fn until_running(daemon: &Daemon, session: &common::Session) {
    let result_path = format!("/sessions/{}/result", session.id());
    for _ in 0..500 {
        if daemon.get(&result_path).await.0 == 202 {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "session {} never ran: {:?}",
        session.id(),
        daemon.get(&result_path).await
    );
}

#[actix_rt::test]
async fn a_full_queue_refuses_executions_without_consuming_them() {
    // Every execution reserves the whole budget, so one runs and one waits in the queue.
    let daemon = start(|config| {
        config.budget.memory_bytes = 1;
        config.budget.max_queued = 1;
    });
    let spin = wasm_hypervisor_protocol::payload::RequestPayload {
        limits: wasm_hypervisor_protocol::payload::RequestedLimits {
            // The most fuel there is, so that only the clock ends it, however fast wasmi.
            fuel: Some(u64::MAX),
            timeout_ms: Some(1000),
            ..Default::default()
        },
        ..payload(r#"(module (func (export "_start") (loop (br 0))))"#)
    };
    let busy = daemon.open_session().await;
    let (busy_request, _) = busy.seal(&spin.encode());
    let queued = daemon.open_session().await;
    let (queued_request, _) = queued.seal(&payload(OK_PROGRAM).encode());
    let refused = daemon.open_session().await;
    let (refused_request, _) = refused.seal(&payload(OK_PROGRAM).encode());

    let running = execute_in_background(&daemon, &busy, busy_request);
    until_running(&daemon, &busy).await;
    // Until the first has left the queue for its worker, the queue is full: try again.
    let queued_path = format!("/sessions/{}/result", queued.id());
    let mut waiting = execute_in_background(&daemon, &queued, queued_request.clone());
    for _ in 0..500 {
        if daemon.get(&queued_path).await.0 == 202 {
            break;
        }
        if waiting.is_finished() {
            // The queue is full (503), or, from the first one's address, that address holds
            // its one place of it (429).
            let status = waiting.await.unwrap();
            assert!(
                matches!(status, 429 | 503),
                "refused while the first still queued: {status}"
            );
            waiting = execute_in_background(&daemon, &queued, queued_request.clone());
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    until_running(&daemon, &queued).await;

    // From an address that holds no place: the queue, not its share, is what is full.
    let mut answer = common::client_from(common::OTHER_ADDRESS)
        .post(daemon.url(&format!("/sessions/{}/execute", refused.id())))
        .insert_header(("Content-Type", SEALED_REQUEST_CONTENT_TYPE))
        .insert_header(("Session-Ticket", refused.ticket_hex()))
        .send_body(refused_request.clone())
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().get("Retry-After").is_some());
    assert_eq!(error_code(&answer.body().await.unwrap()).0, "overloaded");

    assert_eq!(running.await.unwrap(), 200);
    assert_eq!(waiting.await.unwrap(), 200, "the queued one ran after it");
    let (status, body) = refused.execute(&daemon, refused_request).await;
    assert_eq!(
        status,
        200,
        "refused, not consumed: {}",
        String::from_utf8_lossy(&body)
    );
}
