//! A service of replicas (PROTOCOL.md §9): `GET /policy` from the daemon itself or from the
//! operator's file (read again when it changes), and the client that pins the policy, routes
//! each session to the replica whose key announced it, and refuses what the policy does not
//! vouch for. Replicas are real daemon processes; the load balancer in front of them is a small
//! router in the test, as HAProxy is configured: `/r/{n}/…` to replica n with the prefix
//! removed, anything else (`POST /sessions`, `GET /policy`) to each replica in turn.

mod process;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use wasm_hypervisor::client::protocol::payload::RequestPayload;
use wasm_hypervisor::client::protocol::policy::{Policy, PolicyLog};
use wasm_hypervisor::client::{ClientError, Execution, Replicas, VerifyError};

const PROGRAM: &str = include_str!("programs/hello.wat");

fn cli(command: &[&str], server: &str, client_dir: &Path) -> process::CliOutput {
    let client_dir = client_dir.to_str().unwrap();
    process::cli(&[command, &["--server", server, "--client-dir", client_dir]].concat())
}

fn program(dir: &Path) -> String {
    let path = dir.join("hello.wat");
    std::fs::write(&path, PROGRAM).unwrap();
    path.to_str().unwrap().to_owned()
}

fn trust_json(client_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(client_dir.join("trust.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let mut response = awc::Client::new().get(url).send().await.unwrap();
    let body = response.body().await.unwrap();
    (
        response.status().as_u16(),
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn vkey(daemon: &process::Daemon) -> String {
    let (status, body) = get(&daemon.url("/identity")).await;
    assert_eq!(status, 200);
    let identity: serde_json::Value = serde_json::from_str(&body).unwrap();
    identity["note_verifier_key"].as_str().unwrap().to_owned()
}

/// The policy `wasm-hypervisor policy` makes of the replicas at `urls`.
fn policy_of(urls: &[&str]) -> String {
    let made = process::cli(&[&["policy"][..], urls].concat());
    assert!(made.status.success(), "{made}");
    made.stdout
}

fn hello() -> RequestPayload {
    RequestPayload {
        wasm: wat::parse_str(PROGRAM).unwrap(),
        ..RequestPayload::default()
    }
}

/// Runs hello through the service at `service`, whose policy is `log` alone.
async fn run_hello_through(service: &str, log: PolicyLog) -> Result<Execution, ClientError> {
    let replicas = Replicas::new(service, Policy::new(vec![log]).unwrap());
    wasm_hypervisor::client::Client::new(service)
        .execute_routed(&replicas, &hello(), &BTreeMap::new())
        .await
}

/// The test's load balancer on its own thread (the CLI runs as a blocking child process), in
/// front of `backends`.
fn router(backends: Vec<SocketAddr>) -> SocketAddr {
    router_with(backends, Patience::Enough)
}

/// How long the router waits for an execute call's answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Patience {
    Enough,
    /// It forwards the call and waits for the replica, then answers `504` as HAProxy does when
    /// its server timeout fires just before the replica answers.
    TooLittle,
}

fn router_with(backends: Vec<SocketAddr>, patience: Patience) -> SocketAddr {
    let (bound, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let next = Arc::new(AtomicUsize::new(0));
            let backends = Arc::new(backends);
            let server = HttpServer::new(move || {
                let (next, backends) = (Arc::clone(&next), Arc::clone(&backends));
                App::new().default_service(web::to(
                    move |request: HttpRequest, body: web::Bytes| {
                        let (next, backends) = (Arc::clone(&next), Arc::clone(&backends));
                        async move {
                            let answer = forward(&request, body, &next, &backends).await;
                            if patience == Patience::TooLittle && request.path().ends_with("/execute") {
                                // What deploy/haproxy/haproxy.cfg answers.
                                return HttpResponse::GatewayTimeout()
                                    .content_type("application/json")
                                    .body(r#"{"error":{"code":"gateway_timeout","message":"the replica did not answer in time; poll the result at the same replica"}}"#);
                            }
                            answer
                        }
                    },
                ))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
            bound.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    addr.recv().unwrap()
}

async fn forward(
    request: &HttpRequest,
    body: web::Bytes,
    next: &AtomicUsize,
    backends: &[SocketAddr],
) -> HttpResponse {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let routed = path.strip_prefix("/r/").and_then(|rest| {
        let (n, tail) = rest.split_once('/')?;
        Some((backends.get(n.parse::<usize>().ok()?)?, format!("/{tail}")))
    });
    let (backend, path) = match routed {
        Some(routed) => routed,
        None => {
            let n = next.fetch_add(1, Ordering::Relaxed) % backends.len();
            (&backends[n], path.to_owned())
        }
    };
    let mut upstream =
        awc::Client::new().request(request.method().clone(), format!("http://{backend}{path}"));
    for name in ["content-type", "session-ticket"] {
        if let Some(value) = request.headers().get(name) {
            upstream = upstream.insert_header((name, value.clone()));
        }
    }
    let Ok(mut answer) = upstream.send_body(body).await else {
        // What deploy/haproxy/haproxy.cfg answers.
        return HttpResponse::BadGateway()
            .content_type("application/json")
            .body(r#"{"error":{"code":"replica_unavailable","message":"the replica closed the connection; do not send this request to another replica"}}"#);
    };
    let body = answer.body().limit(64 << 20).await.unwrap_or_default();
    let mut response = HttpResponse::build(answer.status());
    if let Some(content_type) = answer.headers().get("content-type") {
        response.insert_header(("content-type", content_type.clone()));
    }
    response.body(body)
}

#[actix_rt::test]
async fn get_policy_serves_the_daemon_alone_or_the_file_read_again_on_each_request() {
    let data = tempfile::tempdir().unwrap();
    let alone = process::start(data.path(), "127.0.0.1:0", &[]);
    let (status, text) = get(&alone.url("/policy")).await;
    assert_eq!(status, 200);
    assert_eq!(text, format!("log {}\nquorum none\n", vkey(&alone).await));

    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("policy.txt");
    let daemon = process::start(
        data.path(),
        "127.0.0.1:0",
        &["--policy-file", file.to_str().unwrap()],
    );
    let (status, body) = get(&daemon.url("/policy")).await;
    assert_eq!(status, 503, "no file yet: {body}");
    assert!(body.contains("\"policy_unavailable\""), "{body}");
    let own = format!("log {} {}\n", vkey(&daemon).await, daemon.url("/"));
    let both = format!(
        "{own}log {} {}\nquorum none\n",
        vkey(&alone).await,
        alone.url("/")
    );
    std::fs::write(&file, &both).unwrap();
    assert_eq!(get(&daemon.url("/policy")).await, (200, both));
    let changed = format!("# one replica left\n{own}quorum none\n");
    std::fs::write(&file, &changed).unwrap();
    assert_eq!(get(&daemon.url("/policy")).await, (200, changed));
    std::fs::write(&file, format!("{own}quorum some-witnesses\n")).unwrap();
    let (status, body) = get(&daemon.url("/policy")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"policy_unavailable\""), "{body}");
}

#[actix_rt::test]
async fn sessions_run_on_the_replica_that_announced_them_behind_a_load_balancer() {
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both replicas serve one file, written once they have made their keys.
    let served = data_a.path().join("served-policy.txt");
    let policy_file_arg = ["--policy-file", served.to_str().unwrap()];
    let a = process::start(data_a.path(), "127.0.0.1:0", &policy_file_arg);
    let b = process::start(data_b.path(), "127.0.0.1:0", &policy_file_arg);
    let lb = router(vec![a.addr, b.addr]);
    let service = format!("http://{lb}");
    let client_dir = tempfile::tempdir().unwrap();
    let made = policy_of(&[&format!("{service}/r/0"), &format!("{service}/r/1/")]);
    std::fs::write(&served, &made).unwrap();
    let policy = Policy::parse(made.as_bytes()).unwrap();
    assert_eq!(policy.logs().len(), 2);
    assert_eq!(
        policy.logs()[0].url.as_deref(),
        Some(format!("{service}/r/0/").as_str())
    );
    let policy_file = client_dir.path().join("policy.txt");
    std::fs::write(&policy_file, &made).unwrap();
    let policy_arg = ["--policy", policy_file.to_str().unwrap()];
    let program = program(client_dir.path());
    // The router alternates: four sessions are two on each replica, each executed there.
    for _ in 0..4 {
        let run = cli(
            &[&["run", &program][..], &policy_arg].concat(),
            &service,
            client_dir.path(),
        );
        assert!(run.status.success(), "{run}");
        assert_eq!(run.stdout, "hello\n");
    }
    let identities =
        trust_json(client_dir.path())["services"][format!("{service}/")]["identities"].clone();
    let identities = identities.as_object().unwrap();
    assert_eq!(identities.len(), 2);
    for (origin, known) in identities {
        let note = known["checkpoint"].as_str().unwrap();
        let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
        // Two sessions, a request and a result leaf each; at least the first two.
        assert!(size >= 2, "{origin} trusted at size {size}");
        assert!(
            known["url"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{service}/r/"))
        );
    }
    // The policy the replicas serve is the one pinned; a session is audited at the replica
    // whose log has it.
    let json = cli(
        &[&["run", "--json", &program][..], &policy_arg].concat(),
        &service,
        client_dir.path(),
    );
    assert!(json.status.success(), "{json}");
    let session: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let session_id = session["session_id"].as_str().unwrap();
    let audit = cli(&["audit", session_id], &service, client_dir.path());
    assert!(audit.status.success(), "{audit}");
    let all = cli(&["audit", "--all"], &service, client_dir.path());
    assert!(all.status.success(), "{all}");
    assert_eq!(
        all.stdout.matches("OK: verified against").count(),
        2,
        "{all}"
    );
    // The load generator routes as `run` does, so it can drive load through the balancer.
    let bench = cli(
        &[
            "bench",
            &program,
            "--sessions",
            "6",
            "--clients",
            "2",
            "--json",
        ],
        &service,
        client_dir.path(),
    );
    assert!(bench.status.success(), "{bench}");
    let figures: serde_json::Value = serde_json::from_str(&bench.stdout).unwrap();
    assert_eq!(figures["verified"], 6, "{bench}");
    assert_eq!(figures["errors"], 0, "{bench}");
}

/// Once, a load balancer's `504` ended the run, though the replica went on and kept the result.
#[actix_rt::test]
async fn after_a_gateway_timeout_the_result_comes_from_the_same_replica() {
    let data = tempfile::tempdir().unwrap();
    let replica = process::start(data.path(), "127.0.0.1:0", &[]);
    let lb = router_with(vec![replica.addr], Patience::TooLittle);
    let service = format!("http://{lb}");
    let log = PolicyLog {
        identity: replica.pinned().await,
        url: Some(format!("{service}/r/0/")),
    };
    let executed = run_hello_through(&service, log).await.unwrap();
    assert_eq!(executed.output.stdout, b"hello\n");
    assert_eq!(executed.replica_url, format!("{service}/r/0"));
}

/// Once, `audit` stopped at the first replica the load balancer said was down, though the
/// session was another's.
#[actix_rt::test]
async fn audit_asks_the_next_replica_when_one_is_down() {
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = process::start(data_a.path(), "127.0.0.1:0", &[]);
    let b = process::start(data_b.path(), "127.0.0.1:0", &[]);
    let origin_b = b.pinned().await.origin;
    let lb = router(vec![a.addr, b.addr]);
    let service = format!("http://{lb}");
    let client_dir = tempfile::tempdir().unwrap();
    let policy_file = client_dir.path().join("policy.txt");
    std::fs::write(
        &policy_file,
        policy_of(&[&format!("{service}/r/0"), &format!("{service}/r/1")]),
    )
    .unwrap();
    let policy_arg = ["--policy", policy_file.to_str().unwrap()];
    let program = program(client_dir.path());
    // The router alternates between the replicas: within a few runs one lands on `b`.
    let on_b = (0..4)
        .find_map(|_| {
            let run = cli(
                &[&["run", "--json", &program][..], &policy_arg].concat(),
                &service,
                client_dir.path(),
            );
            assert!(run.status.success(), "{run}");
            let session: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            let checkpoint = session["audit"]["checkpoint"].as_str().unwrap();
            (checkpoint.lines().next() == Some(origin_b.as_str()))
                .then(|| session["session_id"].as_str().unwrap().to_owned())
        })
        .expect("a session on the second replica");
    // The first replica in the policy goes down: the router answers for it as HAProxy does.
    drop(a);
    let audit = cli(
        &[&["audit", &on_b][..], &policy_arg].concat(),
        &service,
        client_dir.path(),
    );
    assert!(audit.status.success(), "{audit}");
    assert!(audit.stdout.contains("OK: verified against"), "{audit}");
}

#[actix_rt::test]
async fn a_replica_that_is_down_at_execute_is_an_error_and_nothing_goes_elsewhere() {
    let data = tempfile::tempdir().unwrap();
    let b = process::start(data.path(), "127.0.0.1:0", &[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    // Sessions open at `b`, which the policy says is reached at `/r/1/`: a replica that is down.
    let lb = router(vec![b.addr, dead]);
    let service = format!("http://{lb}");
    let log = PolicyLog {
        identity: b.pinned().await,
        url: Some(format!("{service}/r/1/")),
    };
    let refused = run_hello_through(&service, log).await.unwrap_err();
    let ClientError::ReplicaUnavailable {
        url,
        status,
        session_id,
    } = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(
        (url.as_str(), *status),
        (format!("{service}/r/1").as_str(), 502)
    );
    assert!(
        refused
            .to_string()
            .contains("must not be sent to another replica")
    );
    // The session was announced at `b` and its request went nowhere else.
    let (status, _) = get(&b.url(&format!("/sessions/{session_id}/result"))).await;
    assert_eq!(status, 404, "no execute reached the live replica");
}

#[actix_rt::test]
async fn an_announcement_by_a_key_outside_the_pinned_policy_is_refused() {
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = process::start(data_a.path(), "127.0.0.1:0", &[]);
    let b = process::start(data_b.path(), "127.0.0.1:0", &[]);
    let client_dir = tempfile::tempdir().unwrap();
    let policy_file = client_dir.path().join("policy.txt");
    let only_b = format!("log {} {}\nquorum none\n", vkey(&b).await, b.url("/"));
    std::fs::write(&policy_file, only_b).unwrap();
    let program = program(client_dir.path());
    let run = cli(
        &["run", &program, "--policy", policy_file.to_str().unwrap()],
        &a.url(""),
        client_dir.path(),
    );
    assert!(!run.status.success(), "{run}");
    assert!(
        run.stderr
            .contains("identity_fpr is not a key of the pinned policy"),
        "{run}"
    );
}

#[actix_rt::test]
async fn a_changed_policy_is_refused() {
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = data_a.path().join("policy.txt");
    let a = process::start(
        data_a.path(),
        "127.0.0.1:0",
        &["--policy-file", file.to_str().unwrap()],
    );
    let b = process::start(data_b.path(), "127.0.0.1:0", &[]);
    let own = format!("log {} {}\n", vkey(&a).await, a.url("/"));
    std::fs::write(&file, format!("{own}quorum none\n")).unwrap();
    let client_dir = tempfile::tempdir().unwrap();
    let program = program(client_dir.path());
    let first = cli(&["run", &program], &a.url(""), client_dir.path());
    assert!(first.status.success(), "{first}");
    assert!(first.stderr.contains("pinned"), "{first}");
    // The operator's file changes under the running daemon: its clients refuse the new policy.
    let grown = format!("{own}log {} {}\nquorum none\n", vkey(&b).await, b.url("/"));
    std::fs::write(&file, &grown).unwrap();
    let second = cli(&["run", &program], &a.url(""), client_dir.path());
    assert!(!second.status.success(), "{second}");
    assert!(second.stderr.contains("policy of"), "{second}");
    assert!(second.stderr.contains("changed"), "{second}");
    // A policy given out of band is held to the same pin.
    let out_of_band = client_dir.path().join("policy.txt");
    std::fs::write(&out_of_band, &grown).unwrap();
    let third = cli(
        &["run", &program, "--policy", out_of_band.to_str().unwrap()],
        &a.url(""),
        client_dir.path(),
    );
    assert!(!third.status.success(), "{third}");
    assert!(third.stderr.contains("changed"), "{third}");
}

#[actix_rt::test]
async fn a_result_whose_checkpoint_another_identity_signed_is_refused() {
    // Replica `liar` holds the announcing key but keeps its own log under another origin: its
    // checkpoints are not those of the identity the policy lists for that key.
    let (data, data_liar) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let honest = process::start(data.path(), "127.0.0.1:0", &[]);
    std::fs::copy(
        data.path().join("identity.key"),
        data_liar.path().join("identity.key"),
    )
    .unwrap();
    let liar = process::start(
        data_liar.path(),
        "127.0.0.1:0",
        &["--origin", "liar.example/log"],
    );
    let policy = Policy::new(vec![PolicyLog {
        identity: honest.pinned().await,
        url: None,
    }])
    .unwrap();
    let replicas = Replicas::new(&liar.url(""), policy);
    let payload = hello();
    let refused = liar
        .client
        .execute_routed(&replicas, &payload, &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ClientError::Refused(VerifyError::Protocol(_))),
        "{refused:?}"
    );
    // The honest replica's result passes the same checks.
    let replicas = Replicas::new(&honest.url(""), replicas.policy().clone());
    honest
        .client
        .execute_routed(&replicas, &payload, &BTreeMap::new())
        .await
        .unwrap();
}
