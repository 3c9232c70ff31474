//! Connections from a trusted proxy (`--trusted-proxies`), against the real daemon process:
//! the proxy (127.0.0.10, as HAProxy's `source` would set it) begins each connection with a
//! PROXY protocol v2 header, and the client address it names is what every per-address share
//! counts; a trusted peer that sends no header gets no HTTP, and any other peer's header is
//! only bad HTTP. Raw sockets, so a test controls every byte and the address it comes from.

mod common;
mod process;
mod raw;

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use wasm_hypervisor::config::TlsFiles;

use raw::{Conn, Response, refusals};

const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10));
const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const ANOTHER_UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const CLIENT_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: daemon\r\n\r\n";

/// The PROXY v2 header HAProxy sends for a TCP client at `client` (port 40000), with a TLV.
fn relayed_for(client: Ipv4Addr) -> Vec<u8> {
    let mut header = SIGNATURE.to_vec();
    header.extend([0x21, 0x11, 0, 12 + 7]);
    header.extend(client.octets());
    header.extend([127, 0, 0, 1]);
    header.extend(40000_u16.to_be_bytes());
    header.extend(8080_u16.to_be_bytes());
    // PP2_TYPE_AUTHORITY "daemon": skipped.
    header.extend([0x02, 0, 4]);
    header.extend(b"host");
    header
}

/// The header of HAProxy's health checks (`check-send-proxy`): LOCAL, no addresses.
fn local() -> Vec<u8> {
    let mut header = SIGNATURE.to_vec();
    header.extend([0x20, 0x00, 0, 0]);
    header
}

/// A connection from `from`; the test's own sockets do not fail.
fn connect(from: IpAddr, to: SocketAddr) -> Conn {
    Conn::open(from, to).expect("connects")
}

/// Sends `prefix` and a request in one write, as a proxy does.
fn send(conn: &mut Conn, prefix: &[u8], request: &[u8]) {
    conn.send(&[prefix, request].concat()).expect("sent");
}

fn post_session(conn: &mut Conn, prefix: &[u8]) -> io::Result<Response> {
    let mut nonce = [0; 32];
    getrandom::fill(&mut nonce).unwrap();
    let body = format!("{{\"client_nonce\":\"{}\"}}", hex::encode(nonce));
    let request = format!(
        "POST /sessions HTTP/1.1\r\nhost: daemon\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    send(conn, prefix, request.as_bytes());
    conn.response()
}

fn assert_status(response: &Response, status: u16) {
    assert_eq!(
        response.status,
        status,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

/// Four connections and four open sessions, one of each per address.
fn start_small(extra: &[&str]) -> (tempfile::TempDir, process::Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--trusted-proxies",
        "127.0.0.10",
        "--max-connections",
        "4",
        "--max-open-sessions",
        "4",
        "--address-share-percent",
        "25",
    ];
    args.extend(extra);
    let daemon = process::start(dir.path(), "127.0.0.1:0", &args);
    (dir, daemon)
}

/// Once, every client behind a proxy was the proxy's one address: the second of them was
/// refused. Now each relayed client has its own share of connections and of sessions, and the
/// proxy's own health checks are not counted against what it relays.
#[test]
fn each_client_a_trusted_proxy_relays_is_counted_on_its_own_address() {
    let (_dir, daemon) = start_small(&[]);
    let to = daemon.addr;

    let mut a = connect(PROXY, to);
    assert_status(&post_session(&mut a, &relayed_for(CLIENT_A)).unwrap(), 201);
    // The same connection, so no second header: HTTP counts this session against A too.
    let second = post_session(&mut a, b"").unwrap();
    assert_status(&second, 429);

    let mut a_again = connect(PROXY, to);
    send(&mut a_again, &relayed_for(CLIENT_A), HEALTHZ);
    let refused = a_again.response().expect("a refusal in HTTP");
    assert_status(&refused, 429);
    assert!(
        String::from_utf8_lossy(&refused.body).contains("connections"),
        "A's one connection is its share"
    );

    let mut b = connect(PROXY, to);
    assert_status(&post_session(&mut b, &relayed_for(CLIENT_B)).unwrap(), 201);

    let mut health_check = connect(PROXY, to);
    send(&mut health_check, &local(), HEALTHZ);
    assert_status(&health_check.response().unwrap(), 200);
    assert_eq!(refusals(&daemon, "proxy_header"), 0);
}

/// A trusted peer's connection that does not begin with a PROXY v2 header (plain HTTP, a
/// version 1 header, or nothing within the header timeout) is closed without an answer.
#[test]
fn a_trusted_peer_without_a_proxy_header_gets_no_http() {
    let (_dir, daemon) = start_small(&["--header-timeout-secs", "1"]);
    let to = daemon.addr;

    let mut plain = connect(PROXY, to);
    send(&mut plain, b"", HEALTHZ);
    assert!(plain.closed_in_silence(), "plain HTTP from the proxy");

    let mut version_1 = connect(PROXY, to);
    send(
        &mut version_1,
        b"PROXY TCP4 192.0.2.1 127.0.0.1 40000 8080\r\n",
        HEALTHZ,
    );
    assert!(version_1.closed_in_silence(), "a version 1 header");

    let mut silent = connect(PROXY, to);
    assert!(silent.closed_in_silence(), "nothing sent");

    assert_eq!(refusals(&daemon, "proxy_header"), 3);
    let mut other = connect(UNTRUSTED, to);
    send(&mut other, b"", HEALTHZ);
    assert_status(&other.response().unwrap(), 200);
}

/// The bytes that relay a client from the trusted proxy are bad HTTP from any other peer, and
/// do not move that peer off its own address's share.
#[test]
fn an_untrusted_peers_proxy_header_is_not_read() {
    let (_dir, daemon) = start_small(&[]);
    let to = daemon.addr;

    let mut relayed = connect(PROXY, to);
    send(&mut relayed, &relayed_for(CLIENT_A), HEALTHZ);
    assert_status(&relayed.response().unwrap(), 200);

    let mut forged = connect(UNTRUSTED, to);
    send(&mut forged, &relayed_for(CLIENT_A), HEALTHZ);
    match forged.response() {
        Ok(response) => assert_status(&response, 400),
        Err(error) => assert!(
            matches!(
                error.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
            "{error}"
        ),
    }

    // Another address, so that the forged connection's own closing cannot matter.
    let mut own = connect(ANOTHER_UNTRUSTED, to);
    send(&mut own, b"", HEALTHZ);
    assert_status(&own.response().unwrap(), 200);
    let mut claims_another = connect(ANOTHER_UNTRUSTED, to);
    send(&mut claims_another, &relayed_for(CLIENT_B), HEALTHZ);
    // Refused at accept, before its bytes are read; they may come too late to be read at all,
    // and then the refusal's answer is lost to a reset.
    if let Ok(response) = claims_another.response() {
        assert_status(&response, 429);
    }
    assert_eq!(
        refusals(&daemon, "connections"),
        1,
        "its own address's share refused it"
    );
    assert_eq!(refusals(&daemon, "proxy_header"), 0);
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `GET /healthz` over TLS on `conn`, after `prefix` in plain: the status.
fn healthz_over_tls(conn: Conn, prefix: &[u8]) -> io::Result<u16> {
    let mut stream = conn.stream;
    stream.write_all(prefix)?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(fixture("ca.crt")).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(client, stream);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: daemon\r\nconnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    // The daemon may close without TLS's close_notify once it has answered.
    if let Err(error) = tls.read_to_end(&mut answer)
        && answer.is_empty()
    {
        return Err(error);
    }
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other("not an HTTP response"))
}

/// On HTTPS the proxy's header comes before the TLS handshake (HAProxy in TCP mode), which
/// must then see every byte after it. In process: the daemon process helper reads HTTP only.
#[actix_rt::test]
async fn over_https_the_proxy_header_precedes_the_handshake() {
    let daemon = common::start(|config| {
        config.tls = Some(TlsFiles {
            certificate_chain: fixture("localhost.crt"),
            private_key: fixture("localhost.key"),
        });
        config.connections.trusted_proxies = "127.0.0.10".parse().unwrap();
    });
    let to = daemon.addr;
    let statuses = actix_rt::task::spawn_blocking(move || {
        [
            healthz_over_tls(connect(PROXY, to), &relayed_for(CLIENT_A)),
            healthz_over_tls(connect(PROXY, to), &local()),
            healthz_over_tls(connect(UNTRUSTED, to), b""),
            healthz_over_tls(connect(UNTRUSTED, to), &relayed_for(CLIENT_A)),
        ]
        .map(|status| status.ok())
    })
    .await
    .unwrap();
    assert_eq!(
        statuses,
        [Some(200), Some(200), Some(200), None],
        "relayed, LOCAL, untrusted, and an untrusted peer's header, which is no handshake"
    );
}
