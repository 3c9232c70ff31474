//! HTTPS: with `--tls-cert`/`--tls-key` the daemon speaks only TLS, and the client trusts just
//! the certificate it was given.

mod common;

use std::path::PathBuf;

use wasm_hypervisor::client::Client;
use wasm_hypervisor::config::TlsFiles;
use wasm_hypervisor_protocol::payload::Status;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[actix_rt::test]
async fn a_session_runs_over_https_and_only_with_the_right_certificate() {
    let daemon = common::start(|config| {
        config.tls = Some(TlsFiles {
            certificate_chain: fixture("localhost.crt"),
            private_key: fixture("localhost.key"),
        });
    });
    let url = format!("https://{}", daemon.addr);
    let client = Client::with_ca(&url, &fixture("ca.crt")).unwrap();
    let pinned = client.identity().await.unwrap();
    let program = common::payload(r#"(module (func (export "_start")))"#);
    let execution = client.execute(&pinned, &program, None).await.unwrap();
    assert_eq!(execution.output.status, Status::Ok);

    // Without the certificate the client refuses the connection, and plain HTTP gets nowhere.
    assert!(Client::new(&url).identity().await.is_err());
    assert!(daemon.client.identity().await.is_err());
}
