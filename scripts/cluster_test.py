"""The cluster test, run by scripts/cluster-test (which prepares its Python environment): a
cluster of three replicas behind HAProxy (scripts/cluster-up), driven through the proxy by the
independent Python client (clients/python) doing what docs/PROTOCOL.md §9 asks of a client of a
replicated service: it pins the policy, finds each session's replica from the announcement's
identity_fpr, sends execute and result calls to that replica's prefix, requires the result's
checkpoint to be signed by that replica, and checks every log's consistency with every
checkpoint it saw. It asserts, in this order:

  policy     GET /policy through the proxy is the file cluster-up wrote (out of band), and
             each of its keys is its replica's GET /identity
  answers    the proxy's own /healthz and /readyz; 404 outside a replica's prefix
  load       every session executed on the replica that announced it, its result checkpoint
             signed by that replica, its audit entries at that replica alone; every replica used
  proxy      HAProxy killed and started again loses no session: sessions announced before run
             after, results fetched after are byte for byte the ones answered before
  drain      a replica sent SIGTERM finishes the sessions it announced (one running, one
             executed only after the signal) while new sessions go to the others; it stops
             and is started again
  kill       SIGKILL of a replica mid-run fails only calls in flight at that replica (a
             stream of short sessions, and long ones on every replica, run meanwhile; an
             announcement fails only with 502, in flight at the dying replica); once it is
             back, its sessions that were running answer 500 aborted with their
             request_commitment, and its log holds their aborted result leaves
  rust       the repository's Rust client (`run`, `bench`), given the policy, works through
             the same proxy
  logs       every replica's log is consistent with every checkpoint seen during the run
  stop       SIGTERM to cluster-up stops it and every process it started

Bounded: about 300 sessions; every wait has a deadline. Exits 1 with "FAIL: …" on the first
failure. Arguments: the cluster-up script, a state directory for it, and a port free on
127.0.0.10–13.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_der_public_key

from wasm_hypervisor_client import protocol
from wasm_hypervisor_client.client import Client, Http, ServerError
from wasm_hypervisor_client.conformance import HELLO_TEXT, SIG_VOID, hello_module, module
from wasm_hypervisor_client.protocol import Checkpoint, Identity

LOAD_SESSIONS = 150
STREAM = 40  # short sessions per stream while a replica is killed
RUST_SESSIONS = 30  # sessions of the Rust client's bench
THREADS = 6
# A long session: an endless loop, stopped by its time limit (or, on a fast machine, by the
# most fuel a request may have).
LONG = {"timeout_ms": 4000, "fuel": 10_000_000_000}
LONG_ENDS = ("timeout", "out_of_fuel")
SEALED_CT = "application/vnd.wasm-hypervisor.sealed-request"
STARTED = time.monotonic()


class Failure(Exception):
    pass


def say(message: str) -> None:
    print(f"cluster-test [{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failure(what)


def wait_for(what: str, condition, timeout: float = 60.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def loop_module() -> bytes:
    """_start: `loop br 0 end`, forever: the session ends by its time limit (status timeout)."""
    return module([], [(SIG_VOID, b"\x03\x40\x0c\x00\x0b")], [("_start", 0, 0)])


HELLO = hello_module()
LOOP = loop_module()


def payload(wasm: bytes, seed: bytes, limits: dict | None = None) -> bytes:
    request = {"wasm": wasm, "seed": seed}
    if limits:
        request["limits"] = limits
    return cbor2.dumps(request, canonical=True)


# ------------------------------------------------------------------------------------------
# The replicated service as a client sees it (§9)
# ------------------------------------------------------------------------------------------


class Replica:
    def __init__(self, n: int, url: str, ident: Identity):
        self.n, self.url, self.ident = n, url, ident
        self.http = Http(url, timeout=120)
        self.client = Client(url, timeout=120)


def identity_of_verifier_key(vkey: str) -> Identity:
    """A note verifier key of §2 (`origin+keyid+base64(0x02 ‖ SPKI DER)`) as an identity."""
    origin, key_id, encoded = vkey.split("+", 2)
    raw = base64.b64decode(encoded, validate=True)
    check(raw[:1] == b"\x02", f"verifier key {vkey}: not signature type 0x02")
    sec1 = load_der_public_key(raw[1:]).public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint)
    ident = Identity(origin, sec1)
    check(ident.key_id.hex() == key_id and ident.spki == raw[1:],
          f"verifier key {vkey}: its key ID is not H2(SPKI)[:4]")
    return ident


def parse_policy(text: str, service: str) -> dict[bytes, Replica]:
    """c2sp.org/tlog-policy with `log` lines and `quorum none`: replicas by fingerprint."""
    replicas: dict[bytes, Replica] = {}
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    check(lines[-1:] == ["quorum none"], f"policy does not end with `quorum none`: {text!r}")
    for line in lines[:-1]:
        words = line.split()
        check(len(words) == 3 and words[0] == "log", f"policy line is not `log KEY URL`: {line!r}")
        ident = identity_of_verifier_key(words[1])
        url = words[2]
        prefix = url[len(service):].strip("/")
        check(url.startswith(service + "/r/") and prefix[2:].isdigit(),
              f"policy URL {url} is not under {service}/r/{{n}}/")
        replicas[ident.fingerprint] = Replica(int(prefix[2:]), url.rstrip("/"), ident)
    check(len({r.ident.origin for r in replicas.values()}) == len(replicas),
          "two replicas share an origin")
    return replicas


class Service:
    """Sessions through the proxy, each then sent to the replica that announced it."""

    def __init__(self, url: str, replicas: dict[bytes, Replica]):
        self.url, self.lb, self.replicas = url, Http(url, timeout=120), replicas
        self.by_n = {r.n: r for r in replicas.values()}
        self.seen: dict[int, set[Checkpoint]] = defaultdict(set)  # checkpoints by replica
        self.lock = threading.Lock()

    def remember(self, replica: Replica, checkpoint: Checkpoint) -> None:
        with self.lock:
            self.seen[replica.n].add(checkpoint)

    def announce(self, retries: int = 0):
        """POST /sessions at the proxy; the replica from the TBS identity_fpr, and §3's checks
        against that replica's pinned identity. `retries`: times a 503 is tried again."""
        ticket = os.urandom(32)
        nonce = protocol.labeled("wasm-hv/v1 ticket", ticket)
        for attempt in range(retries + 1):
            answer = self.lb.post_json("/sessions", {"client_nonce": nonce.hex()})
            if answer.status != 503 or attempt == retries:
                break
            time.sleep(float(answer.headers.get("Retry-After") or 1) / 4)
        body = answer.expect(201, "POST /sessions")
        tbs = base64.b64decode(body["announcement"])
        replica = self.replicas.get(tbs[65:97])
        check(replica is not None, "an announcement's identity_fpr is no key of the policy")
        return replica, protocol.check_announcement(replica.ident, body, ticket, time.time())

    def execute(self, replica: Replica, session, wasm: bytes, limits: dict | None = None):
        seed = os.urandom(32)
        sealed = protocol.Sealed(session, payload(wasm, seed, limits), seed)
        answer = replica.http.request(
            "POST", f"/sessions/{session.id}/execute", sealed.enc_request,
            {"Content-Type": SEALED_CT, "Session-Ticket": session.ticket.hex()})
        body = answer.expect(200, f"execute at replica {replica.n}")
        # Every check of §5.4, the checkpoint's signature by this replica's identity included.
        result = protocol.check_result(replica.ident, sealed, body)
        self.remember(replica, result.checkpoint)
        return sealed, result, answer.body

    def run(self, wasm: bytes = HELLO, limits: dict | None = None):
        replica, session = self.announce(retries=5)
        sealed, result, raw = self.execute(replica, session, wasm, limits)
        return replica, session, sealed, result, raw

    def audit(self, replica: Replica, session_id: str) -> list[dict]:
        leaves, checkpoint = replica.client.session_audit(replica.ident, session_id)
        self.remember(replica, checkpoint)
        return [leaf for _, leaf in sorted(leaves, key=lambda entry: entry[0])]


# ------------------------------------------------------------------------------------------
# The cluster under test
# ------------------------------------------------------------------------------------------


class Cluster:
    def __init__(self, script: str, state: Path, port: int):
        self.state = state
        self.log = open(state.parent / "cluster-up.log", "wb")
        env = dict(os.environ, CLUSTER_DIR=str(state), CLUSTER_PORT=str(port),
                   # The drain phase waits for the grace only if something goes wrong.
                   WASM_HYPERVISOR_SHUTDOWN_GRACE="30", RUST_LOG="info")
        self.process = subprocess.Popen([script, "3"], env=env, stdout=subprocess.PIPE,
                                        stderr=self.log, stdin=subprocess.DEVNULL)
        first: list[bytes] = []
        reader = threading.Thread(target=lambda: first.append(self.process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(180)
        check(bool(first and first[0].strip()),
              "cluster-up printed no service URL within 180 s (see cluster-up.log)")
        self.url = first[0].decode().strip()

    def pid(self, name: str) -> int:
        path = self.state / (f"{name}/pid" if name.startswith("r") else f"{name}.pid")
        return int(path.read_text())

    def pids(self) -> list[int]:
        return [self.pid(name) for name in ("r1", "r2", "r3", "haproxy")]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running; cluster-up reaps its children.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def restarted(cluster: Cluster, name: str, old_pid: int, health_url: str) -> None:
    wait_for(f"{name} to be started again", lambda: cluster.pid(name) != old_pid)
    http = Http(health_url, timeout=5)

    def healthy():
        try:
            return http.get("/healthz").status == 200
        except OSError:
            return False
    wait_for(f"{name} to answer at {health_url}", healthy)


# ------------------------------------------------------------------------------------------
# The phases
# ------------------------------------------------------------------------------------------


def phase_proxy_answers(service: Service) -> None:
    """What the proxy answers itself: its probes, and no session call without a prefix."""
    check(service.lb.get("/healthz").status == 200, "the proxy's GET /healthz is not 200")
    check(service.lb.get("/readyz").status == 200, "the proxy's GET /readyz is not 200")
    stray = service.lb.request("POST", f"/sessions/{uuid.uuid4()}/execute", b"x" * 100,
                               {"Content-Type": SEALED_CT, "Session-Ticket": "00" * 32})
    check(stray.status == 404 and stray.json("stray execute")["error"]["code"] == "not_found",
          f"an execute call without a replica's prefix answered {stray.status}")
    check(service.lb.get("/r/9/identity").status == 404, "an unknown prefix did not answer 404")
    say("proxy: its own /healthz and /readyz; 404 for calls outside /r/{n}/ and unknown prefixes")


def phase_load(service: Service) -> list:
    say(f"load: {LOAD_SESSIONS} sessions through the proxy, {THREADS} at a time")
    with ThreadPoolExecutor(THREADS) as pool:
        runs = list(pool.map(lambda _: service.run(), range(LOAD_SESSIONS)))
    per_replica = Counter(replica.n for replica, *_ in runs)
    for replica, session, sealed, result, _ in runs:
        check(result.output.get("status") == "ok" and result.output.get("stdout") == HELLO_TEXT,
              f"session {session.id}: unexpected output {result.output.get('status')}")
    check(set(per_replica) == set(service.by_n),
          f"not every replica announced sessions: {dict(per_replica)}")
    say(f"load: all {LOAD_SESSIONS} verified; sessions per replica {dict(sorted(per_replica.items()))}")
    # Each session's leaves are at the replica that announced it, and at no other.
    for replica, session, sealed, result, _ in runs[:12]:
        leaves = service.audit(replica, session.id)
        check([leaf["kind"] for leaf in leaves] == ["request", "result"]
              and leaves[0]["request_commitment"] == sealed.request_commitment
              and leaves[1]["outcome"] == 1,
              f"session {session.id}: its audit at replica {replica.n} is not request, executed")
        for other in service.by_n.values():
            if other is not replica:
                answer = other.http.get(f"/sessions/{session.id}/result")
                check(answer.status == 404,
                      f"session {session.id} of replica {replica.n} is known at {other.n}")
    say("load: audit entries of 12 sessions at their replica, unknown elsewhere")
    return runs


def phase_proxy_restart(service: Service, cluster: Cluster, earlier: list) -> None:
    say("proxy: announce 6 sessions, SIGKILL HAProxy, execute them once it is back")
    announced = [service.announce(retries=5) for _ in range(6)]
    old = cluster.pid("haproxy")
    os.kill(old, signal.SIGKILL)
    restarted(cluster, "haproxy", old, cluster.url)
    for n in service.by_n:
        wait_for(f"the proxy to see replica {n}",
                 lambda n=n: service.lb.get(f"/r/{n}/healthz").status == 200, timeout=30)
    for replica, session in announced:
        _, result, _ = service.execute(replica, session, HELLO)
        check(result.output.get("status") == "ok", f"session {session.id}: not ok after the restart")
    for replica, session, _, _, raw in earlier[:9]:
        answer = replica.http.get(f"/sessions/{session.id}/result")
        check(answer.status == 200 and answer.body == raw,
              f"session {session.id}: its result differs after the proxy's restart")
    say("proxy: 6 sessions announced before the restart ran after it; 9 earlier results identical")


def announce_on(service: Service, targets: dict[int, int], limit: int = 60) -> list:
    """Announces until each replica n in `targets` has announced targets[n] sessions; returns
    them all (the others' too, which the caller must execute or let expire)."""
    got: list = []
    counts: Counter = Counter()
    while any(counts[n] < want for n, want in targets.items()):
        check(len(got) < limit, f"{limit} announcements did not reach {targets}: {dict(counts)}")
        replica, session = service.announce(retries=5)
        got.append((replica, session))
        counts[replica.n] += 1
    return got


def readyz_status(replica: Replica) -> int:
    try:
        return replica.http.get("/readyz").status
    except OSError:
        return 0


def result_state(replica: Replica, session_id: str) -> int:
    try:
        return replica.http.get(f"/sessions/{session_id}/result").status
    except OSError:
        return 0


def phase_drain(service: Service, cluster: Cluster) -> None:
    target = service.by_n[1]
    say(f"drain: replica {target.n} gets SIGTERM with one session running and one not yet executed")
    announced = announce_on(service, {target.n: 2})
    mine = [(r, s) for r, s in announced if r is target]
    others = [(r, s) for r, s in announced if r is not target]
    (_, running), (_, pending) = mine[0], mine[-1]
    with ThreadPoolExecutor(4) as pool:
        long_run = pool.submit(service.execute, target, running, LOOP, LONG)
        wait_for("the long session to run", lambda: result_state(target, running.id) == 202)
        old = cluster.pid("r1")
        os.kill(old, signal.SIGTERM)
        wait_for(f"replica {target.n} to report not ready", lambda: readyz_status(target) == 503)
        # Once the proxy's checks see it (two failed checks a second apart), every new
        # session is announced by another replica.
        meanwhile: list = []
        streak = [0]

        def ready_streak():
            try:
                meanwhile.append(service.announce(retries=0))
                streak[0] += 1
            except ServerError as error:
                check(error.status == 503, f"POST /sessions while draining: {error}")
                streak[0] = 0
            return streak[0] >= 6
        wait_for("six announcements in a row, none refused", ready_streak, timeout=30, step=0.05)
        check(all(replica is not target for replica, _ in meanwhile),
              "a draining replica announced a session")
        fresh = [service.announce(retries=0) for _ in range(12)]
        check(all(replica is not target for replica, _ in fresh),
              f"a draining replica announced a session: {[r.n for r, _ in fresh]}")
        check(len({replica.n for replica, _ in fresh}) == 2,
              "the other two replicas did not share the new sessions")
        # The draining replica still executes what it announced.
        _, result, _ = service.execute(target, pending, HELLO)
        check(result.output.get("status") == "ok", "the pending session did not run while draining")
        _, result, _ = long_run.result(timeout=120)
        check(result.output.get("status") in LONG_ENDS,
              f"the running session ended {result.output.get('status')}, not at its limit")
        leftovers = others + meanwhile + fresh
        list(pool.map(lambda rs: service.execute(rs[0], rs[1], HELLO), leftovers))
    # Nothing of it is open any more: it stops, and cluster-up starts it again.
    restarted(cluster, "r1", old, target.url)
    wait_for(f"replica {target.n} to be ready again", lambda: readyz_status(target) == 200)

    # Until the proxy's checks see it ready, new sessions go to the other two.
    def announced_by_target():
        replica, session = service.announce(retries=5)
        service.execute(replica, session, HELLO)
        return replica is target
    wait_for(f"the proxy to send a new session to replica {target.n}", announced_by_target,
             timeout=30, step=0.2)
    say(f"drain: replica {target.n} ran its 2 sessions after SIGTERM, announced none of "
        f"{len(fresh)} new ones, stopped, and is back")


def phase_kill(service: Service, cluster: Cluster) -> None:
    victim = service.by_n[2]
    say(f"kill: SIGKILL replica {victim.n} while long sessions run on every replica")
    announced = announce_on(service, {n: 2 for n in service.by_n})
    stop_stream = threading.Event()
    stream_failures: list = []
    stream_runs: Counter = Counter()

    def stream():
        # Short sessions all along (at most STREAM each). A call may fail only at the victim's
        # prefix; an announcement only with 502, the proxy's answer when the replica it sent
        # it to dropped the connection: one in flight at the victim as it died (a dead one is
        # never sent anything: the connection is refused, and `ready` redispatches).
        for _ in range(STREAM):
            if stop_stream.is_set():
                break
            time.sleep(0.05)
            try:
                replica, session = service.announce(retries=0)
            except ServerError as error:
                check(error.status == 502, f"an announcement failed while a replica died: {error}")
                stream_failures.append((victim.n, repr(error)))
                continue
            try:
                service.execute(replica, session, HELLO)
                stream_runs[replica.n] += 1
            except (ServerError, OSError) as error:
                stream_failures.append((replica.n, repr(error)))

    def long(replica_session):
        replica, session = replica_session
        try:
            return service.execute(replica, session, LOOP, LONG)
        except (ServerError, OSError) as error:
            return error

    with ThreadPoolExecutor(len(announced) + 2) as pool:
        streams = [pool.submit(stream) for _ in range(2)]
        futures = [pool.submit(long, rs) for rs in announced]
        for replica, session in announced:
            wait_for(f"session {session.id} to run at replica {replica.n}",
                     lambda r=replica, s=session: result_state(r, s.id) == 202)
        old = cluster.pid("r2")
        os.kill(old, signal.SIGKILL)
        outcomes = [future.result(timeout=120) for future in futures]
        restarted(cluster, "r2", old, victim.url)
        stop_stream.set()
        for future in streams:
            future.result(timeout=120)
    for (replica, session), outcome in zip(announced, outcomes):
        if replica is victim:
            check(isinstance(outcome, Exception),
                  f"session {session.id} at the killed replica was answered")
        else:
            check(not isinstance(outcome, Exception),
                  f"session {session.id} at replica {replica.n} failed: {outcome!r}")
            check(outcome[1].output.get("status") in LONG_ENDS,
                  f"a long session ended {outcome[1].output.get('status')}, not at its limit")
    check(all(n == victim.n for n, _ in stream_failures),
          f"calls failed at replicas other than the killed one: {stream_failures}")
    failed = [(r, s) for (r, s), o in zip(announced, outcomes) if isinstance(o, Exception)]
    say(f"kill: {len(failed)} calls in flight at replica {victim.n} failed, the other "
        f"{len(announced) - len(failed)} long ones ran; short ones: {dict(stream_runs)} ran, "
        f"{len(stream_failures)} failed at replica {victim.n}")
    # Back: what was running is aborted, with the commitment of what we sent, in its log.
    for replica, session in failed:
        answer = replica.http.get(f"/sessions/{session.id}/result")
        body = answer.json("result after a crash")
        sealed_commitment = body.get("request_commitment")
        check(answer.status == 500 and body.get("error", {}).get("code") == "aborted",
              f"session {session.id}: after the restart {answer.status} {answer.body[:120]!r}")
        leaves = service.audit(replica, session.id)
        check([leaf["kind"] for leaf in leaves] == ["request", "result"]
              and leaves[1]["outcome"] == 12
              and leaves[1]["request_commitment"].hex() == sealed_commitment
              and leaves[0]["request_commitment"].hex() == sealed_commitment,
              f"session {session.id}: the log does not hold its request and aborted result")
    say(f"kill: the {len(failed)} sessions answer 500 aborted with their request_commitment, "
        "and the log holds their aborted results")


def phase_rust_client(service: Service, state: Path) -> None:
    """The repository's own client (`wasm-hypervisor run` and `bench`), given the policy out of
    band, through the same proxy: it routes by the policy as this test does."""
    binary = os.environ["WASM_HYPERVISOR_BIN"]
    client_dir = state.parent / "rust-client"
    common = ["--server", service.url, "--client-dir", str(client_dir),
              "--policy", str(state / "policy")]
    hello = Path(__file__).resolve().parent.parent / "examples" / "hello.wat"
    ran = subprocess.run([binary, "run", *common, str(hello)], capture_output=True, text=True,
                         timeout=60)
    check(ran.returncode == 0 and ran.stdout.startswith("hello"),
          f"wasm-hypervisor run through the proxy: {ran.returncode} {ran.stderr.strip()[-300:]}")
    bench = subprocess.run([binary, "bench", *common, "--sessions", str(RUST_SESSIONS),
                            "--clients", "4", str(hello)], capture_output=True, text=True,
                           timeout=120)
    check(bench.returncode == 0,
          f"wasm-hypervisor bench through the proxy: {bench.returncode} {bench.stderr.strip()[-300:]}")
    say(f"rust client: run and a bench of {RUST_SESSIONS} sessions verified through the proxy")


def phase_logs(service: Service) -> None:
    total = 0
    for n, replica in sorted(service.by_n.items()):
        current = replica.client.checkpoint(replica.ident)
        for seen in sorted(service.seen[n], key=lambda c: c.size):
            replica.client.verify_consistency(seen, current)
            total += 1
    say(f"logs: every replica's log is consistent with the {total} checkpoints seen")


def main() -> int:
    script, state, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    cluster = Cluster(script, state, port)
    stopped = False
    try:
        say(f"cluster-up: {cluster.url}")
        policy = Http(cluster.url, timeout=10).get("/policy")
        check(policy.status == 200, f"GET /policy answered {policy.status}")
        # Out of band: the file cluster-up wrote, and each replica's own GET /identity.
        check(policy.body == (state / "policy").read_bytes(), "GET /policy differs from the file")
        replicas = parse_policy(policy.body.decode(), cluster.url)
        check(sorted(r.n for r in replicas.values()) == [1, 2, 3], "the policy has not 3 replicas")
        for replica in replicas.values():
            check(replica.client.identity() == replica.ident,
                  f"replica {replica.n}'s GET /identity is not its policy key")
        service = Service(cluster.url, replicas)
        say("policy: 3 replicas, each key its replica's GET /identity")
        phase_proxy_answers(service)
        runs = phase_load(service)
        phase_proxy_restart(service, cluster, runs)
        phase_drain(service, cluster)
        phase_kill(service, cluster)
        phase_rust_client(service, state)
        phase_logs(service)
        pids = cluster.pids()
        code = cluster.stop()
        stopped = True
        check(code == 0, f"cluster-up exited with {code}")
        check(not any(alive(pid) for pid in pids), "a process of the cluster outlived cluster-up")
        say("stop: cluster-up and every process it started have exited")
    except (Failure, ServerError, protocol.VerificationError) as error:
        print(f"cluster-test: FAIL: {error}", flush=True)
        return 1
    finally:
        if not stopped and cluster.process.poll() is None:
            cluster.process.send_signal(signal.SIGINT)
            cluster.process.send_signal(signal.SIGINT)
            cluster.process.wait(timeout=60)
    say("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
