//! Starts a real daemon on 127.0.0.1:0 with its own data directory, and speaks the protocol to
//! it step by step, so tests can break any step on purpose.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;

use awc::http::StatusCode;
use wasm_hypervisor::client::{Client, PinnedIdentity};
use wasm_hypervisor::config::ServerConfig;
use wasm_hypervisor_protocol::announcement::Announcement;
use wasm_hypervisor_protocol::api;
use wasm_hypervisor_protocol::commitment;
use wasm_hypervisor_protocol::payload::RequestPayload;
use wasm_hypervisor_protocol::sealing::{self, ResponseKey};

pub(crate) struct Daemon {
    pub(crate) addr: SocketAddr,
    /// The admin listener (`/metrics`), on an ephemeral port; `None` for [`Daemon::connect`].
    pub(crate) admin_addr: Option<SocketAddr>,
    pub(crate) identity: api::Identity,
    pub(crate) client: Client,
    /// `None` for a daemon started elsewhere ([`Daemon::connect`]).
    _data_dir: Option<tempfile::TempDir>,
}

/// A daemon with the default configuration as changed by `adjust`.
pub(crate) fn start(adjust: impl FnOnce(&mut ServerConfig)) -> Daemon {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), data_dir.path().to_owned());
    config.worker_threads = 2;
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    adjust(&mut config);
    let running = wasm_hypervisor::server::start(config).unwrap();
    actix_rt::spawn(running.server);
    Daemon {
        addr: running.addr,
        admin_addr: running.admin_addr,
        identity: running.identity,
        client: Client::new(&format!("http://{}", running.addr)),
        _data_dir: Some(data_dir),
    }
}

impl Daemon {
    /// Speaks to a daemon started elsewhere, such as a process the test restarts.
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let url = format!("http://{addr}");
        let mut response = awc::Client::new()
            .get(format!("{url}/identity"))
            .send()
            .await
            .unwrap();
        Self {
            addr,
            admin_addr: None,
            identity: response.json().await.unwrap(),
            client: Client::new(&url),
            _data_dir: None,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) async fn pinned(&self) -> PinnedIdentity {
        self.client.identity().await.unwrap()
    }

    /// `POST /sessions` with a fresh ticket.
    pub(crate) async fn open_session(&self) -> Session {
        let ticket: [u8; 32] = rand_bytes();
        let (status, body) = post_json(
            &self.url("/sessions"),
            &serde_json::json!({"client_nonce": hex::encode(commitment::client_nonce(&ticket))}),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let created: api::SessionCreated = serde_json::from_slice(&body).unwrap();
        Session {
            announcement: Announcement::from_tbs(&created.announcement).unwrap(),
            created,
            ticket,
        }
    }

    /// `POST /sessions/{id}/execute` with full control of every part.
    pub(crate) async fn execute_raw(
        &self,
        session_id: &str,
        ticket: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = awc::Client::new()
            .post(self.url(&format!("/sessions/{session_id}/execute")))
            .insert_header(("Content-Type", content_type));
        if let Some(ticket) = ticket {
            request = request.insert_header((api::TICKET_HEADER, ticket));
        }
        let mut response = request.send_body(body).await.unwrap();
        let body = response.body().limit(64 << 20).await.unwrap().to_vec();
        (response.status(), body)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Vec<u8>) {
        get(&self.url(path)).await
    }

    /// `GET` on the admin listener.
    pub(crate) async fn admin_get(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let admin = self.admin_addr.expect("the daemon has an admin listener");
        get(&format!("http://{admin}{path}")).await
    }
}

pub(crate) struct Session {
    pub(crate) created: api::SessionCreated,
    pub(crate) announcement: Announcement,
    pub(crate) ticket: [u8; 32],
}

impl Session {
    pub(crate) fn id(&self) -> &str {
        &self.created.session_id
    }

    pub(crate) fn ticket_hex(&self) -> String {
        hex::encode(self.ticket)
    }

    /// Seals raw payload bytes to this session's key.
    pub(crate) fn seal(&self, payload: &[u8]) -> (Vec<u8>, ResponseKey) {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        sealing::seal_request(
            &self.announcement.public_key,
            &self.announcement.hash(),
            payload,
            &mut rng,
        )
        .unwrap()
    }

    pub(crate) async fn execute(
        &self,
        daemon: &Daemon,
        enc_request: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        daemon
            .execute_raw(
                self.id(),
                Some(&self.ticket_hex()),
                api::SEALED_REQUEST_CONTENT_TYPE,
                enc_request,
            )
            .await
    }
}

/// A second client address: all of 127.0.0.0/8 is loopback.
pub(crate) const OTHER_ADDRESS: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// An HTTP client whose connections come from `address`, which its shares are counted against.
pub(crate) fn client_from(address: std::net::IpAddr) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().local_address(address))
        .finish()
}

pub(crate) async fn get(url: &str) -> (StatusCode, Vec<u8>) {
    let mut response = awc::Client::new().get(url).send().await.unwrap();
    let body = response.body().limit(64 << 20).await.unwrap().to_vec();
    (response.status(), body)
}

pub(crate) async fn post_json(url: &str, json: &serde_json::Value) -> (StatusCode, Vec<u8>) {
    let mut response = awc::Client::new().post(url).send_json(json).await.unwrap();
    let body = response.body().await.unwrap().to_vec();
    (response.status(), body)
}

/// The §7 error body's code, checked to be well-formed.
pub(crate) fn error_code(body: &[u8]) -> (String, Option<String>) {
    let error: api::ErrorBody = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not an error body: {}", String::from_utf8_lossy(body)));
    assert!(!error.error.message.is_empty());
    (error.error.code, error.request_commitment)
}

pub(crate) fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

pub(crate) fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap()
}

/// A payload that runs `wat` with default settings.
pub(crate) fn payload(wat: &str) -> RequestPayload {
    RequestPayload {
        wasm: wasm(wat),
        ..RequestPayload::default()
    }
}
