//! The CLI's trust store (`<client dir>/trust.json`, the client crate's): one pin per service
//! whatever the spelling of its URL, and concurrent runs that neither tear the file nor lose
//! the newest trusted checkpoint.

mod process;

use std::path::Path;

const PROGRAM: &str = include_str!("programs/hello.wat");

fn trust_json(client_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(client_dir.join("trust.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cli(command: &[&str], server: &str, client_dir: &Path) -> process::CliOutput {
    let client_dir = client_dir.to_str().unwrap();
    process::cli(&[command, &["--server", server, "--client-dir", client_dir]].concat())
}

#[actix_rt::test]
async fn two_spellings_of_a_daemon_url_share_one_pin() {
    let data = tempfile::tempdir().unwrap();
    let daemon = process::start(data.path(), "127.0.0.1:0", &[]);
    let client_dir = tempfile::tempdir().unwrap();
    let spellings = [
        format!("http://{}/", daemon.addr),
        format!("http://{}", daemon.addr),
        format!("HTTP://{}//", daemon.addr),
    ];
    for (n, server) in spellings.iter().enumerate() {
        let audit = cli(&["audit", "--all"], server, client_dir.path());
        assert!(audit.status.success(), "{audit}");
        assert_eq!(
            audit.stderr.contains("pinned"),
            n == 0,
            "only the first use pins: {audit}"
        );
    }
    let services = trust_json(client_dir.path())["services"].clone();
    let services = services.as_object().unwrap();
    assert_eq!(
        services.keys().collect::<Vec<_>>(),
        [&format!("http://{}/", daemon.addr)]
    );
}

#[actix_rt::test]
async fn concurrent_runs_keep_the_trust_store_whole() {
    const RUNS: usize = 4;
    let data = tempfile::tempdir().unwrap();
    let daemon = process::start(data.path(), "127.0.0.1:0", &[]);
    let client_dir = tempfile::tempdir().unwrap();
    let program = client_dir.path().join("hello.wat");
    std::fs::write(&program, PROGRAM).unwrap();
    let first = cli(
        &["run", program.to_str().unwrap()],
        &format!("http://{}", daemon.addr),
        client_dir.path(),
    );
    assert!(first.status.success(), "{first}");

    let runs: Vec<_> = (0..RUNS)
        .map(|n| {
            // Half of them spell the URL another way: still the same service.
            let server = if n % 2 == 0 {
                format!("http://{}", daemon.addr)
            } else {
                format!("http://{}/", daemon.addr)
            };
            let (program, client_dir) = (program.clone(), client_dir.path().to_owned());
            std::thread::spawn(move || {
                cli(&["run", program.to_str().unwrap()], &server, &client_dir)
            })
        })
        .collect();
    for run in runs {
        let run = run.join().unwrap();
        assert!(run.status.success(), "{run}");
        assert_eq!(run.stdout, "hello\n", "{run}");
        assert!(!run.stderr.contains("pinned"), "{run}");
    }

    // Every run's leaves are in the log; the store trusts the newest checkpoint any run saw,
    // and the whole log is consistent with it.
    let services = trust_json(client_dir.path())["services"].clone();
    let identities = services.as_object().unwrap().values().next().unwrap()["identities"].clone();
    let identity = identities
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    let note = identity["checkpoint"].as_str().unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(size, 2 * (RUNS as u64 + 1), "{note}");
    let audit = cli(
        &["audit", "--all"],
        &format!("http://{}", daemon.addr),
        client_dir.path(),
    );
    assert!(audit.status.success(), "{audit}");
    let names: Vec<String> = std::fs::read_dir(client_dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|name| ["trust.json", "trust.json.lock", "hello.wat"].contains(&name.as_str())),
        "{names:?}"
    );
}
