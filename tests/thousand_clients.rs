//! A thousand clients at once, at default settings: all are admitted (the queue's bounds are
//! far above a thousand), none hangs, and a normal session works afterwards. A test binary of
//! its own, so that its thousand connections do not compete with other tests' daemons.

mod common;

use std::time::Duration;

use common::{payload, start};
use wasm_hypervisor::client::Client;
use wasm_hypervisor_protocol::payload::Status;

const HELLO: &str = include_str!("programs/hello.wat");
const CLIENTS: usize = 1000;

#[actix_rt::test]
async fn a_thousand_clients_at_once_are_all_admitted_and_served() {
    let daemon = start(|_| {});
    let pinned = daemon.pinned().await;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = Client::with_timeout(&daemon.url(""), Duration::from_secs(120));
            let pinned = pinned.clone();
            actix_rt::spawn(async move { client.execute(&pinned, &payload(HELLO), None).await })
        })
        .collect();
    for task in tasks {
        let execution = task
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(execution.output.stdout, b"hello\n");
    }
    let after = daemon
        .client
        .execute(&pinned, &payload(HELLO), None)
        .await
        .unwrap();
    assert_eq!(after.output.status, Status::Ok);
}
