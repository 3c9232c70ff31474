//! Hostile clients at the edge, against the real daemon process over HTTP: stalled uploads,
//! connection and session floods and junk from one address (127.0.0.1) must neither exhaust
//! the daemon nor lock out a client on another address (127.0.0.2: all of 127.0.0.0/8 is
//! loopback). Raw sockets, so a test controls every byte and the address it comes from.
//!
//! A test binary of its own, its tests one at a time: each loads the machine on purpose.
//! Every load loop is bounded in count and time.

mod process;
mod raw;

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use wasm_hypervisor_protocol::announcement::Announcement;
use wasm_hypervisor_protocol::api::{self, SEALED_REQUEST_CONTENT_TYPE, TICKET_HEADER};
use wasm_hypervisor_protocol::commitment;
use wasm_hypervisor_protocol::payload::RequestPayload;
use wasm_hypervisor_protocol::sealing::{self, HEADER};

use raw::{Conn, Response, refusals};

const FLOOD: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const HELLO: &str = include_str!("programs/hello.wat");

/// One test at a time: each is a load on purpose.
fn serially() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An announced session, its ticket and its announcement.
struct Opened {
    id: String,
    ticket: String,
    announcement: Announcement,
}

fn post_session(conn: &mut Conn) -> io::Result<(Response, Option<Opened>)> {
    let ticket: [u8; 32] = rand::<32>();
    let body = serde_json::json!({"client_nonce": hex::encode(commitment::client_nonce(&ticket))});
    let response = conn.request(
        "POST",
        "/sessions",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )?;
    let opened = (response.status == 201).then(|| {
        let created: api::SessionCreated = serde_json::from_slice(&response.body).unwrap();
        Opened {
            announcement: Announcement::from_tbs(&created.announcement).unwrap(),
            id: created.session_id,
            ticket: hex::encode(ticket),
        }
    });
    Ok((response, opened))
}

fn open_session(from: IpAddr, to: SocketAddr) -> Opened {
    let mut conn = Conn::open(from, to).expect("connects");
    let (response, opened) = post_session(&mut conn).expect("POST /sessions is answered");
    opened.unwrap_or_else(|| {
        panic!(
            "POST /sessions from {from}: {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
    })
}

fn execute(conn: &mut Conn, session: &Opened, body: &[u8]) -> io::Result<Response> {
    conn.request(
        "POST",
        &format!("/sessions/{}/execute", session.id),
        &[
            ("content-type", SEALED_REQUEST_CONTENT_TYPE),
            (TICKET_HEADER, &session.ticket),
        ],
        body,
    )
}

/// Seals `payload` to `session`.
fn seal(session: &Opened, payload: &RequestPayload) -> Vec<u8> {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (enc_request, _) = sealing::seal_request(
        &session.announcement.public_key,
        &session.announcement.hash(),
        &payload.encode(),
        &mut rng,
    )
    .unwrap();
    enc_request
}

/// Runs hello in `session` from `from`: the execute call's status.
fn run_hello(from: IpAddr, to: SocketAddr, session: &Opened) -> Response {
    let mut conn = Conn::open(from, to).expect("connects");
    execute(&mut conn, session, &seal(session, &process::payload(HELLO)))
        .expect("execute is answered")
}

fn assert_served(response: &Response) {
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

fn rand<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

fn start_default() -> (tempfile::TempDir, process::Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = process::start(dir.path(), "127.0.0.1:0", &[]);
    (dir, daemon)
}

/// Sixty uploads of a 16 MiB body, each holding back its last byte: once held 1 GiB for as
/// long as they stayed open. Now an address may have only its share of the bytes being received
/// (`429` past it), and a body that stops arriving is answered `408` without consuming its
/// session.
#[test]
fn stalled_uploads_get_408_and_hold_no_more_than_their_address_share() {
    let _one_at_a_time = serially();
    let (_dir, daemon) = start_default();
    let to = daemon.addr;
    const UPLOADS: usize = 60;
    const BODY: usize = 16 << 20;
    let sessions: Vec<Arc<Opened>> = (0..UPLOADS)
        .map(|_| Arc::new(open_session(FLOOD, to)))
        .collect();
    let pid = daemon.pid();
    let done = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak_rss) = (Arc::clone(&done), Arc::clone(&peak_rss));
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak_rss.fetch_max(process::rss_bytes(pid), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let all_but_the_last_byte = Arc::new(vec![0x5a; BODY - 1]);
    let uploads: Vec<_> = sessions
        .iter()
        .map(|session| {
            let (session, body) = (Arc::clone(session), Arc::clone(&all_but_the_last_byte));
            thread::spawn(move || {
                let mut conn = Conn::open(FLOOD, to).expect("connects");
                conn.head(
                    "POST",
                    &format!("/sessions/{}/execute", session.id),
                    &[
                        ("content-type", SEALED_REQUEST_CONTENT_TYPE),
                        (TICKET_HEADER, &session.ticket),
                    ],
                    BODY,
                );
                // A refused upload may be cut off while it is being written.
                for piece in body.chunks(1 << 20) {
                    if conn.stream.write_all(piece).is_err() {
                        break;
                    }
                }
                let answer = conn
                    .response()
                    .map(|response| (response.status, response.code()));
                (session, answer)
            })
        })
        .collect();
    let answers: Vec<_> = uploads
        .into_iter()
        .map(|upload| upload.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    let mut timed_out = Vec::new();
    let mut refused = 0;
    for (session, answer) in answers {
        match answer {
            Ok((408, code)) => {
                assert_eq!(code, "request_timeout");
                timed_out.push(session);
            }
            Ok((429, code)) => {
                assert_eq!(code, "rate_limited");
                refused += 1;
            }
            other => panic!("a stalled upload was answered {other:?}, not 408 or 429"),
        }
    }
    assert!(
        !timed_out.is_empty() && refused > 0,
        "{} timed out, {refused} refused",
        timed_out.len()
    );
    assert_eq!(
        refusals(&daemon, "body_bytes"),
        refused,
        "counted for the operator"
    );
    let peak = peak_rss.load(Ordering::Relaxed);
    assert!(
        peak < 400 << 20,
        "the daemon held {} MiB for {UPLOADS} stalled uploads",
        peak >> 20
    );
    // Nothing was consumed: the session of a timed-out upload still runs.
    let response = run_hello(FLOOD, to, &timed_out[0]);
    assert_served(&response);
}

/// Connections that send a head and one byte of body and then nothing once ran the daemon out
/// of file descriptors, and every other client timed out. Now one address may hold only its
/// share of the connections, fitted under the open-file limit, and the rest are served.
#[test]
fn a_connection_flood_from_one_address_leaves_another_served() {
    let _one_at_a_time = serially();
    let dir = tempfile::tempdir().unwrap();
    const OPEN_FILES: u32 = 2048;
    let daemon = process::start_with_open_file_limit(dir.path(), "127.0.0.1:0", OPEN_FILES, &[]);
    let to = daemon.addr;
    let mut flood = Vec::new();
    for _ in 0..OPEN_FILES + 100 {
        let Ok(mut conn) = Conn::open(FLOOD, to) else {
            break;
        };
        conn.head(
            "POST",
            "/sessions",
            &[("content-type", "application/json")],
            100,
        );
        let _ = conn.stream.write_all(b"{");
        flood.push(conn);
    }
    let started = Instant::now();
    let mut probe = Conn::open(OTHER, to).expect("another address connects");
    probe
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let health = probe.request("GET", "/healthz", &[], b"");
    assert!(
        matches!(&health, Ok(response) if response.status == 200),
        "GET /healthz from another address during the flood: {:?} after {:?}",
        health.map(|response| response.status),
        started.elapsed()
    );
    let session = open_session(OTHER, to);
    let response = run_hello(OTHER, to, &session);
    assert_served(&response);
    assert!(
        refusals(&daemon, "connections") > 0,
        "counted for the operator"
    );
    drop(flood);
}

/// A `POST /sessions` flood from one address once took every open session and left everyone
/// else `503` until they expired. Now the flood gets `429` at its share and another address
/// opens and runs sessions. A tenth of the default open sessions, so that a debug build fills
/// them well within their TTL.
#[test]
fn a_session_flood_from_one_address_leaves_another_able_to_run() {
    let _one_at_a_time = serially();
    let dir = tempfile::tempdir().unwrap();
    const MAX_OPEN: u64 = 1000;
    let daemon = process::start(
        dir.path(),
        "127.0.0.1:0",
        &["--max-open-sessions", &MAX_OPEN.to_string()],
    );
    let to = daemon.addr;
    const FLOODERS: usize = 4;
    const MOST: u64 = MAX_OPEN + 200;
    let sent = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let sent = Arc::clone(&sent);
            thread::spawn(move || {
                let mut conn = Conn::open(FLOOD, to).expect("connects");
                let deadline = Instant::now() + Duration::from_secs(60);
                while sent.fetch_add(1, Ordering::Relaxed) < MOST && Instant::now() < deadline {
                    let (response, opened) = post_session(&mut conn).expect("answered");
                    if opened.is_none() {
                        return Some(response);
                    }
                }
                None
            })
        })
        .collect();
    let refusals: Vec<Response> = flooders
        .into_iter()
        .filter_map(|flooder| flooder.join().unwrap())
        .collect();
    assert!(!refusals.is_empty(), "the flood was never refused");
    for refusal in &refusals {
        assert_eq!(
            (refusal.status, refusal.code().as_str()),
            (429, "rate_limited"),
            "{}",
            String::from_utf8_lossy(&refusal.body)
        );
        assert_eq!(refusal.header("retry-after"), Some("1"));
    }
    for _ in 0..3 {
        let session = open_session(OTHER, to);
        let response = run_hello(OTHER, to, &session);
        assert_served(&response);
    }
}

/// Junk execute bodies each consume a session, are hashed and append two durable leaves. From
/// one address they once filled the queue of admitted executions, and another address's
/// executions got `503`. Now the junk holds only its address's share of the queue (`429` past
/// it). Here the queue has four places, so that a few threads of junk keep it full.
#[test]
fn junk_from_one_address_leaves_anothers_executions_admitted() {
    let _one_at_a_time = serially();
    let dir = tempfile::tempdir().unwrap();
    let daemon = process::start(dir.path(), "127.0.0.1:0", &["--max-queued", "4"]);
    let to = daemon.addr;
    const JUNK_THREADS: usize = 32;
    let stop = Arc::new(AtomicBool::new(false));
    let junk_sent = Arc::new(AtomicU64::new(0));
    let junk: Vec<_> = (0..JUNK_THREADS)
        .map(|_| {
            let (stop, junk_sent) = (Arc::clone(&stop), Arc::clone(&junk_sent));
            thread::spawn(move || {
                let mut garbage = HEADER.to_vec();
                garbage.resize(200, 0x42);
                let deadline = Instant::now() + Duration::from_secs(90);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    // A refusal may close the connection: a new one each time.
                    let mut conn = Conn::open(FLOOD, to).expect("connects");
                    let Ok((_, Some(session))) = post_session(&mut conn) else {
                        continue;
                    };
                    let answer = execute(&mut conn, &session, &garbage).expect("answered");
                    assert!(
                        matches!(answer.status, 400 | 429 | 503),
                        "junk was answered {}",
                        answer.status
                    );
                    junk_sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Let the junk fill what it can.
    while junk_sent.load(Ordering::Relaxed) < 50 {
        thread::sleep(Duration::from_millis(10));
    }
    let mut answers = Vec::new();
    for _ in 0..20 {
        let session = open_session(OTHER, to);
        answers.push(run_hello(OTHER, to, &session).status);
    }
    stop.store(true, Ordering::Relaxed);
    for thread in junk {
        thread.join().unwrap();
    }
    assert!(
        answers.iter().all(|&status| status == 200),
        "another address's executions beside the junk: {answers:?}"
    );
}

/// A client that asks for a large result and never reads it once held its connection and the
/// result's bytes for ever. Now a write that makes no progress for `write-timeout-secs` closes
/// the connection.
#[test]
fn a_response_nobody_reads_is_cut_off_after_the_write_timeout() {
    let _one_at_a_time = serially();
    let dir = tempfile::tempdir().unwrap();
    let daemon = process::start(dir.path(), "127.0.0.1:0", &["--write-timeout-secs", "1"]);
    let to = daemon.addr;
    // 8 MiB of stdout, 128 writes of 64 KiB: a kept result of about 11 MiB, more than the
    // kernel's buffers hold.
    let loud = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 2)
        (func (export "_start") (local $i i32)
          (memory.fill (i32.const 0) (i32.const 97) (i32.const 65536))
          (i32.store (i32.const 65536) (i32.const 0))
          (i32.store (i32.const 65540) (i32.const 65536))
          (loop $again
            (drop (call $fd_write (i32.const 1) (i32.const 65536) (i32.const 1) (i32.const 65544)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $again (i32.lt_u (local.get $i) (i32.const 128))))))"#;
    let mut program = process::payload(loud);
    program.limits.output_bytes = Some(8 << 20);
    let session = open_session(FLOOD, to);
    let mut conn = Conn::open(FLOOD, to).expect("connects");
    let executed = execute(&mut conn, &session, &seal(&session, &program)).expect("answered");
    assert_eq!(executed.status, 200);
    let full_length = executed.body.len();
    assert!(full_length > 10 << 20, "{full_length} bytes");

    // A reader with a small window that stops reading.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(&SocketAddr::new(OTHER, 0).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let mut stalled = TcpStream::from(socket);
    write!(
        stalled,
        "GET /sessions/{}/result HTTP/1.1\r\nhost: daemon\r\n\r\n",
        session.id
    )
    .unwrap();
    thread::sleep(Duration::from_secs(3));
    // What the kernel buffered comes, then the end: the daemon gave up on the connection.
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = 0;
    let mut chunk = vec![0; 1 << 16];
    let ended = loop {
        match stalled.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(read) => received += read,
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    assert!(
        ended.is_ok() && received < full_length,
        "the unread response: {ended:?} after {received} of {full_length} bytes"
    );
}
