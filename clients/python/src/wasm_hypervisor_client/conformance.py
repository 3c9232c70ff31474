"""The conformance suite: every client check of the sealed execution protocol, version 1, run
against a real daemon, one line per check. Written from the protocol document, docs/PROTOCOL.md
(and the RFCs / C2SP specs it cites), alone, without reading the daemon's sources: if this client
and the daemon agree, two independent readings of the contract agree. Its last section runs the
package's own library and command line against the same daemon, and has the library refuse
results whose seeds were tampered with.

    wasm-hypervisor-py check http://127.0.0.1:8080

Prints one line per check and exits 1 with "FAIL: ..." on the first failure.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import time
import tempfile
import urllib.error
import uuid

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

from . import cli, protocol
from .client import Client
from .client import Http as LibraryHttp
from .protocol import H2, H3, leaf_hash, labeled, mth, node_hash, verify_consistency, verify_inclusion
from .trust import TrustStore

# --------------------------------------------------------------------------------------------
# Output and failure
# --------------------------------------------------------------------------------------------

CHECKS = 0


class Failure(Exception):
    pass


def ok(what: str) -> None:
    global CHECKS
    CHECKS += 1
    print(f"ok   {what}", flush=True)


def check(cond: bool, what: str, detail: str = "") -> None:
    if not cond:
        raise Failure(what + (f": {detail}" if detail else ""))
    ok(what)


def eq(got, want, what: str) -> None:
    def show(v):
        if isinstance(v, (bytes, bytearray)):
            return bytes(v).hex() if len(v) <= 200 else bytes(v[:200]).hex() + "…"
        return repr(v)

    check(got == want, what, f"got {show(got)}, want {show(want)}")


def section(title: str) -> None:
    print(f"---- {title}", flush=True)


# --------------------------------------------------------------------------------------------
# Primitives (PROTOCOL.md "Notation" and §1)
# --------------------------------------------------------------------------------------------


def u8(n: int) -> bytes:
    return n.to_bytes(1, "big")


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _failing(helper):
    """The library's strict decoder, its refusals reported as this suite's failures."""

    def strict(*args):
        try:
            return helper(*args)
        except protocol.VerificationError as e:
            raise Failure(str(e)) from None

    return strict


b64d = _failing(protocol.b64d)
hexd = _failing(protocol.hexd)
load_sec1_point = _failing(protocol.load_sec1_point)
strict_cbor = _failing(protocol.strict_cbor)

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def verify_ecdsa(pub: ec.EllipticCurvePublicKey, sig: bytes, msg: bytes, what: str) -> None:
    """ECDSA-P256-SHA256 over msg with a strict-DER signature (§1); reports low-S separately."""
    _failing(protocol.verify_ecdsa)(pub, sig, msg, what)
    ok(f"{what}: strict-DER ECDSA P-256/SHA-256 signature verifies")
    # Signers emit low-S (§1); verifiers accept either. Checked as daemon conformance.
    _, s = decode_dss_signature(sig)
    check(1 <= s <= P256_N // 2, f"{what}: signer emitted low-S (daemon conformance)")


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self, what: str):
        if self.content_type != "application/json":
            raise Failure(f"{what}: content type {self.content_type!r}, want application/json")
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise Failure(f"{what}: body is not JSON: {e}: {self.body[:200]!r}") from None


class Http(LibraryHttp):
    """The library's transport, its answers as this suite's responses (failures, not refusals)."""

    def __init__(self, base: str):
        super().__init__(base, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None) -> Response:
        answer = super().request(method, path, body, headers)
        return Response(answer.status, answer.headers, answer.body)


def expect_status(r: Response, status: int, what: str) -> None:
    check(r.status == status, f"{what}: HTTP {status}", f"got HTTP {r.status}: {r.body[:300]!r}")


def expect_error(r: Response, status: int, code: str, what: str, request_commitment="absent",
                 may_omit: bool = False):
    """A §7 error answer, checked whole and reported as one line.

    request_commitment: "absent" (the session was not consumed) or the bytes it must equal;
    may_omit: it may also be absent (409 on a consumed session: PROTOCOL.md does not say)."""
    if r.status != status:
        raise Failure(f"{what}: got HTTP {r.status}, want {status} {code}: {r.body[:300]!r}")
    body = r.json(what)
    if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        raise Failure(f"{what}: error body is not {{\"error\": {{...}}}}: {body!r}")
    err = body["error"]
    if err.get("code") != code:
        raise Failure(f"{what}: error code {err.get('code')!r}, want {code!r}")
    if not isinstance(err.get("message"), str):
        raise Failure(f"{what}: error message is not text: {err!r}")
    extra = set(body) - {"error", "request_commitment"}
    if extra:
        raise Failure(f"{what}: unexpected top-level keys {sorted(extra)} in {body!r}")
    rc = body.get("request_commitment")
    if request_commitment == "absent":
        if "request_commitment" in body:
            raise Failure(f"{what}: request_commitment present although the session was not consumed: {rc!r}")
        note = "no request_commitment"
    elif may_omit and "request_commitment" not in body:
        note = "no request_commitment (allowed here)"
    else:
        if hexd(rc, f"{what}: request_commitment", 32) != request_commitment:
            raise Failure(f"{what}: request_commitment {rc!r}, want {request_commitment.hex()}")
        note = "request_commitment = the consuming request's, recomputed"
    ok(f"{what}: HTTP {status} application/json {{error: {{code: {code}, message}}}}, {note}")
    return body


# --------------------------------------------------------------------------------------------
# RFC 9162 §2.1 Merkle tree (SHA-256)
# --------------------------------------------------------------------------------------------


def _self_test_merkle() -> None:
    """The verifiers above against proofs built from first principles (RFC 9162 §2.1.3.1/§2.1.4.1)."""

    def path(m, leaves):
        n = len(leaves)
        if n <= 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return path(m, leaves[:k]) + [mth(leaves[k:])]
        return path(m - k, leaves[k:]) + [mth(leaves[:k])]

    def subproof(m, leaves, b):
        n = len(leaves)
        if m == n:
            return [] if b else [mth(leaves)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
        return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]

    leaves = [bytes([i]) * (i + 1) for i in range(13)]
    for n in range(1, 14):
        root = mth(leaves[:n])
        for m in range(n):
            p = path(m, leaves[:n])
            assert verify_inclusion(m, n, leaf_hash(leaves[m]), p, root)
            assert not verify_inclusion(m, n, leaf_hash(leaves[m] + b"x"), p, root)
        for m in range(1, n + 1):
            p = subproof(m, leaves[:n], True) if m < n else []
            assert verify_consistency(m, n, mth(leaves[:m]), root, p), (m, n)
            if p:
                assert not verify_consistency(m, n, mth(leaves[:m]), root, p[:-1] + [b"\x00" * 32])


# --------------------------------------------------------------------------------------------
# Signed notes and checkpoints (c2sp.org/signed-note, c2sp.org/tlog-checkpoint, §6)
# --------------------------------------------------------------------------------------------


class Identity:
    def __init__(self, origin: str, sec1: bytes, spki: bytes, key: ec.EllipticCurvePublicKey):
        self.origin = origin
        self.sec1 = sec1
        self.spki = spki
        self.key = key
        self.fingerprint = H3(sec1)
        self.key_id = H2(spki)[:4]


class Checkpoint:
    def __init__(self, origin: str, size: int, root: bytes, text: str):
        self.origin, self.size, self.root, self.text = origin, size, root, text


def verify_checkpoint(note, ident: Identity, what: str) -> Checkpoint:
    if not isinstance(note, str):
        raise Failure(f"{what}: checkpoint is not text")
    bad = [c for c in note if (ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F]
    check(not bad, f"{what}: no control characters other than newline", f"found {bad!r}")
    split = note.rfind("\n\n")
    check(split >= 0 and note.endswith("\n"), f"{what}: signed note has text, blank line, signature lines")
    text, sigblock = note[: split + 1], note[split + 2 :]
    sig_lines = sigblock[:-1].split("\n") if sigblock else []
    check(len(sig_lines) >= 1, f"{what}: at least one signature line")
    ours = []
    for line in sig_lines:
        m = re.fullmatch(r"\u2014 ([^ +\n]+) ([A-Za-z0-9+/=]+)", line)
        check(m is not None, f"{what}: signature line is '— <name> <base64>'", repr(line))
        raw = b64d(m.group(2), f"{what}: signature line base64")
        check(len(raw) > 4, f"{what}: signature longer than its key ID")
        if m.group(1) == ident.origin and raw[:4] == ident.key_id:
            ours.append(raw[4:])
    check(len(ours) == 1, f"{what}: exactly one signature by (origin, key ID = H2(SPKI)[:4])",
          f"found {len(ours)} among {len(sig_lines)} lines")
    verify_ecdsa(ident.key, ours[0], text.encode("utf-8"), f"{what}: note signature")

    lines = text[:-1].split("\n")
    check(len(lines) == 3, f"{what}: note text is exactly origin, size and root lines (§6)", repr(text))
    eq(lines[0], ident.origin, f"{what}: checkpoint origin is the pinned origin")
    check(re.fullmatch(r"0|[1-9][0-9]*", lines[1]) is not None, f"{what}: tree size is decimal without leading zeros",
          repr(lines[1]))
    root = b64d(lines[2], f"{what}: root hash")
    eq(len(root), 32, f"{what}: root hash is 32 bytes")
    size = int(lines[1])
    if size == 0:
        eq(root, H2(b""), f"{what}: empty tree root is H2(\"\")")
    return Checkpoint(lines[0], size, root, note)


# --------------------------------------------------------------------------------------------
# Log leaves (§6)
# --------------------------------------------------------------------------------------------

OUTCOMES = {1: "executed", 11: "unseal_failed", 12: "aborted", 13: "internal"}
ZERO32 = b"\x00" * 32


def parse_request_leaf(leaf: bytes, what: str) -> dict:
    eq(len(leaf), 90, f"{what}: request leaf is 90 bytes")
    eq(leaf[0], 1, f"{what}: leaf version 1")
    eq(leaf[1], 1, f"{what}: leaf kind 1 (request)")
    return {
        "kind": "request",
        "session_id": leaf[2:18],
        "time_ms": int.from_bytes(leaf[18:26], "big"),
        "announcement_hash": leaf[26:58],
        "request_commitment": leaf[58:90],
    }


def parse_result_leaf(leaf: bytes, what: str) -> dict:
    eq(len(leaf), 163, f"{what}: result leaf is 163 bytes")
    eq(leaf[0], 1, f"{what}: leaf version 1")
    eq(leaf[1], 2, f"{what}: leaf kind 2 (result)")
    return {
        "kind": "result",
        "session_id": leaf[2:18],
        "time_ms": int.from_bytes(leaf[18:26], "big"),
        "request_index": int.from_bytes(leaf[26:34], "big"),
        "outcome": leaf[34],
        "request_commitment": leaf[35:67],
        "result_commitment": leaf[67:99],
        "input_commitment": leaf[99:131],
        "output_commitment": leaf[131:163],
    }


def check_record(record, parsed: dict, what: str) -> None:
    """The JSON `record` of GET /audit/{id}: the leaf's fields by name, hashes in hex."""
    check(isinstance(record, dict), f"{what}: record is an object")
    for k, v in parsed.items():
        check(k in record, f"{what}: record has {k}")
        got = record[k]
        if k == "session_id":
            eq(got, str(uuid.UUID(bytes=v)), f"{what}: record.session_id")
        elif k == "outcome":
            eq(got, OUTCOMES.get(v, f"<unknown {v}>"), f"{what}: record.outcome")
        elif isinstance(v, bytes):
            eq(hexd(got, f"{what}: record.{k}", 32), v, f"{what}: record.{k}")
        else:
            eq(got, v, f"{what}: record.{k}")
    if "version" in record:
        eq(record["version"], 1, f"{what}: record.version")


# --------------------------------------------------------------------------------------------
# A tiny WebAssembly binary assembler (no compiler): enough for the test programs below
# --------------------------------------------------------------------------------------------


def uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        done = (n == 0 and not b & 0x40) or (n == -1 and b & 0x40)
        out.append(b | (0 if done else 0x80))
        if done:
            return bytes(out)


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def name(s: str) -> bytes:
    return vec([bytes([c]) for c in s.encode()])


I32, I64 = 0x7F, 0x7E


def i32c(n: int) -> bytes:
    return b"\x41" + sleb(n)


def i64c(n: int) -> bytes:
    return b"\x42" + sleb(n)


def store(addr: int, value: int) -> bytes:  # i32.store (addr) (value)
    return i32c(addr) + i32c(value) + b"\x36\x02\x00"


def store_loaded(addr: int, src: int) -> bytes:  # mem[addr] = i32.load(src)
    return i32c(addr) + i32c(src) + b"\x28\x02\x00" + b"\x36\x02\x00"


def call(idx: int, *args: int, drop: bool = True) -> bytes:
    return b"".join(i32c(a) for a in args) + b"\x10" + uleb(idx) + (b"\x1a" if drop else b"")


def module(imports, funcs, exports, memory_pages=None, data=()) -> bytes:
    """imports: [(mod, field, (params, results))]; funcs: [((params, results), body)];
    exports: [(name, kind, index)] with kind 0 func / 2 memory; data: [(offset, bytes)]."""
    types: list = []

    def tidx(sig):
        if sig not in types:
            types.append(sig)
        return types.index(sig)

    imp = [name(m) + name(f) + b"\x00" + uleb(tidx(sig)) for m, f, sig in imports]
    fns = [uleb(tidx(sig)) for sig, _ in funcs]
    type_sec = vec([b"\x60" + vec([bytes([p]) for p in ps]) + vec([bytes([r]) for r in rs]) for ps, rs in types])

    def sec(i, content):
        return bytes([i]) + uleb(len(content)) + content

    out = b"\x00asm\x01\x00\x00\x00" + sec(1, type_sec)
    if imp:
        out += sec(2, vec(imp))
    out += sec(3, vec(fns))
    if memory_pages is not None:
        out += sec(5, vec([b"\x00" + uleb(memory_pages)]))
    out += sec(7, vec([name(n) + bytes([k]) + uleb(i) for n, k, i in exports]))
    bodies = []
    for _, body in funcs:
        code = vec([]) + body + b"\x0b"
        bodies.append(uleb(len(code)) + code)
    out += sec(10, vec(bodies))
    if data:
        out += sec(11, vec([b"\x00" + i32c(off) + b"\x0b" + vec([bytes([c]) for c in d]) for off, d in data]))
    return out


WASI = "wasi_snapshot_preview1"
SIG4 = ((I32, I32, I32, I32), (I32,))  # fd_write / fd_read
SIG2 = ((I32, I32), (I32,))  # random_get, args_*, environ_*
SIG_VOID = ((), ())

HELLO_TEXT = b"hello from the interop client\n"


def hello_module() -> bytes:
    """(module (import "wasi_snapshot_preview1" "fd_write" ...) (memory (export "memory") 1)
    (data (i32.const 64) "hello …\\n")
    (func (export "_start") iovec{64,len}@0; fd_write(1, 0, 1, 8); drop))"""
    body = store(0, 64) + store(4, len(HELLO_TEXT)) + call(0, 1, 0, 1, 8)
    return module(
        [(WASI, "fd_write", SIG4)],
        [(SIG_VOID, body)],
        [("memory", 2, 0), ("_start", 0, 1)],
        memory_pages=1,
        data=[(64, HELLO_TEXT)],
    )


def random_module(n: int = 48) -> bytes:
    """random_get(64, n) then fd_write(1, iovec{64, n}): stdout is the first n bytes of the §8 stream."""
    body = call(0, 64, n) + store(0, 64) + store(4, n) + call(1, 1, 0, 1, 8)
    return module(
        [(WASI, "random_get", SIG2), (WASI, "fd_write", SIG4)],
        [(SIG_VOID, body)],
        [("memory", 2, 0), ("_start", 0, 2)],
        memory_pages=1,
    )


def io_module() -> bytes:
    """Writes the argv buffer, the environ buffer and stdin (one fd_read) to stdout, and a fixed
    line to stderr. Imports: 0 args_sizes_get, 1 args_get, 2 environ_sizes_get, 3 environ_get,
    4 fd_read, 5 fd_write."""
    err = b"to stderr\n"
    iov = 32
    body = (
        call(0, 0, 4)  # argc@0, argv_buf_size@4
        + call(1, 1024, 2048)  # argv ptrs@1024, buf@2048
        + store(iov, 2048) + store_loaded(iov + 4, 4) + call(5, 1, iov, 1, 20)
        + call(2, 8, 12)  # envc@8, environ_buf_size@12
        + call(3, 4096, 5120)
        + store(iov, 5120) + store_loaded(iov + 4, 12) + call(5, 1, iov, 1, 20)
        + store(iov, 8192) + store(iov + 4, 4096) + call(4, 0, iov, 1, 16)  # nread@16
        + store(iov, 8192) + store_loaded(iov + 4, 16) + call(5, 1, iov, 1, 20)
        + store(iov, 256) + store(iov + 4, len(err)) + call(5, 2, iov, 1, 20)
    )
    return module(
        [
            (WASI, "args_sizes_get", SIG2),
            (WASI, "args_get", SIG2),
            (WASI, "environ_sizes_get", SIG2),
            (WASI, "environ_get", SIG2),
            (WASI, "fd_read", SIG4),
            (WASI, "fd_write", SIG4),
        ],
        [(SIG_VOID, body)],
        [("memory", 2, 0), ("_start", 0, 6)],
        memory_pages=1,
        data=[(256, err)],
    )


def exit_module(code: int) -> bytes:
    """_start calls proc_exit(code)."""
    return module(
        [(WASI, "proc_exit", ((I32,), ()))],
        [(SIG_VOID, call(0, code, drop=False))],
        [("memory", 2, 0), ("_start", 0, 1)],
        memory_pages=1,
    )


def returns_module() -> bytes:
    """No imports; export "answer" () -> i32 returning -1 (a non-_start entry, §5 `returns`)."""
    return module([], [(((), (I32,)), i32c(-1))], [("answer", 0, 0)])


# --------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------

SUITE = CipherSuite.new(KEMId.DHKEM_P256_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)
SEALED_CT = "application/vnd.wasm-hypervisor.sealed-request"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
MAX_SKEW = 30


def get_identity(http: Http) -> Identity:
    section("identity (§2)")
    r = http.get("/identity")
    expect_status(r, 200, "GET /identity")
    body = r.json("GET /identity")
    origin = body.get("origin")
    check(isinstance(origin, str) and 1 <= len(origin.encode()) <= 255
          and all(0x21 <= ord(c) <= 0x7E and c != "+" for c in origin),
          "origin is 1-255 bytes of 0x21-0x7E without '+'", repr(origin))
    sec1 = b64d(body.get("public_key"), "public_key")
    key = load_sec1_point(sec1, "public_key")
    ok("public_key is a valid uncompressed P-256 point")
    spki = b64d(body.get("spki"), "spki")
    try:
        spki_key = serialization.load_der_public_key(spki)
    except ValueError as e:
        raise Failure(f"spki does not parse as SPKI DER: {e}") from None
    check(isinstance(spki_key, ec.EllipticCurvePublicKey) and isinstance(spki_key.curve, ec.SECP256R1),
          "spki is a P-256 key")
    eq(spki_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint), sec1,
       "spki holds the same key as public_key")
    eq(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo), spki,
       "spki is the canonical DER encoding")
    ident = Identity(origin, sec1, spki, key)
    eq(hexd(body.get("fingerprint"), "fingerprint", 32), ident.fingerprint, "fingerprint = H3(SEC1 public key)")
    eq(body.get("suite"), {"kem": 16, "kdf": 1, "aead": 2}, "suite ids (kem 16, kdf 1, aead 2)")
    vk_key = base64.b64encode(b"\x02" + spki).decode("ascii")
    want_vk = f"{origin}+{ident.key_id.hex()}+{vk_key}"
    eq(body.get("note_verifier_key"), want_vk, "note_verifier_key = origin+keyID+base64(0x02 ‖ SPKI)")
    if re.fullmatch(r"wasm-hypervisor/[0-9a-f]{16}", origin):
        eq(origin, "wasm-hypervisor/" + ident.fingerprint.hex()[:16], "default origin names the fingerprint")
    return ident


class Session:
    """One announced session, with the TBS fields as the client verified them (§3)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def fmt_time(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def open_session(http: Http, ident: Identity, what: str) -> Session:
    ticket = os.urandom(32)
    client_nonce = labeled("wasm-hv/v1 ticket", ticket)
    r = http.post_json("/sessions", {"client_nonce": client_nonce.hex()})
    expect_status(r, 201, f"{what}: POST /sessions")
    body = r.json(f"{what}: POST /sessions")
    sid = body.get("session_id")
    check(isinstance(sid, str) and UUID_RE.fullmatch(sid) is not None,
          f"{what}: session_id is a lowercase UUID v4", repr(sid))
    tbs = b64d(body.get("announcement"), f"{what}: announcement")
    sig = b64d(body.get("signature"), f"{what}: signature")
    eq(len(tbs), 205, f"{what}: TBS is 205 bytes")
    verify_ecdsa(ident.key, sig, b"wasm-hv/v1 session-key\x00" + tbs, f"{what}: announcement")

    version = tbs[0]
    tbs_sid = tbs[1:17]
    issued_at = int.from_bytes(tbs[17:25], "big")
    expires_at = int.from_bytes(tbs[25:33], "big")
    tbs_nonce = tbs[33:65]
    identity_fpr = tbs[65:97]
    seed_commitment = tbs[97:129]
    kc_len = int.from_bytes(tbs[129:131], "big")
    kc = tbs[131:205]

    eq(version, 1, f"{what}: TBS version 1")
    eq(tbs_nonce, client_nonce, f"{what}: TBS client_nonce is ours")
    eq(tbs_sid, uuid.UUID(sid).bytes, f"{what}: TBS session_id equals the JSON session_id")
    now = time.time()
    check(expires_at > now - MAX_SKEW, f"{what}: expires_at is in the future (±{MAX_SKEW} s)",
          f"expires_at {expires_at}, now {now:.0f}")
    check(issued_at <= expires_at, f"{what}: issued_at <= expires_at")
    check(abs(issued_at - now) <= MAX_SKEW, f"{what}: issued_at is now (±{MAX_SKEW} s)",
          f"issued_at {issued_at}, now {now:.0f}")
    eq(body.get("expires_at"), fmt_time(expires_at), f"{what}: JSON expires_at equals the TBS value")
    eq(identity_fpr, ident.fingerprint, f"{what}: TBS identity_fpr is the pinned fingerprint")
    eq(kc_len, 74, f"{what}: key_config_len 74")
    key_id, kem_id, pkr, sym_len, kdf_id, aead_id = kc[0], kc[1:3], kc[3:68], kc[68:70], kc[70:72], kc[72:74]
    eq(key_id, 0, f"{what}: key_config key_id 0")
    eq(kem_id, u16(0x0010), f"{what}: key_config kem_id 0x0010")
    eq(sym_len, u16(4), f"{what}: key_config sym_len 4")
    eq(kdf_id, u16(0x0001), f"{what}: key_config kdf_id 0x0001")
    eq(aead_id, u16(0x0002), f"{what}: key_config aead_id 0x0002")
    load_sec1_point(pkr, f"{what}: pkR")
    ok(f"{what}: pkR is a valid uncompressed P-256 point")
    return Session(
        id=sid, ticket=ticket, client_nonce=client_nonce, tbs=tbs, issued_at=issued_at, expires_at=expires_at,
        seed_commitment=seed_commitment, key_id=key_id, pkr=pkr, announcement_hash=H3(tbs),
    )


def seal(s: Session, payload: bytes):
    """§4: returns (enc_request, enc, ctxS)."""
    hdr = u8(s.key_id) + u16(0x0010) + u16(0x0001) + u16(0x0002)
    info = b"wasm-hv/v1 request\x00" + hdr + s.announcement_hash
    assert len(info) == 58
    enc, ctx = SUITE.create_sender_context(SUITE.kem.deserialize_public_key(s.pkr), info)
    ct = ctx.seal(payload, b"")
    assert len(enc) == 65
    return hdr + enc + ct, enc, ctx


def execute(http: Http, s: Session, enc_request: bytes, ticket_hex: str | None = None,
            content_type: str = SEALED_CT) -> Response:
    headers = {"Content-Type": content_type}
    t = s.ticket.hex() if ticket_hex is None else ticket_hex
    if t != "":
        headers["Session-Ticket"] = t
    return http.request("POST", f"/sessions/{s.id}/execute", enc_request, headers)


OUTPUT_KEYS = {"status", "exit_code", "stdout", "stderr", "error", "limits", "fuel_consumed", "duration_us",
               "engine", "server_seed", "random_seed"}
LIMIT_KEYS = {"fuel", "memory_bytes", "output_bytes", "timeout_ms"}


class Outcome:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def run_and_verify(http: Http, ident: Identity, s: Session, payload: bytes, what: str,
                   client_seed: bytes | None, non_start: bool = False) -> Outcome:
    """Seal, execute and do every MUST of §5/§6 on the 200 answer; returns what was opened."""
    enc_request, enc, ctx = seal(s, payload)
    r = execute(http, s, enc_request)
    expect_status(r, 200, f"{what}: POST /sessions/{{id}}/execute")
    body = r.json(f"{what}: execute")
    eq(body.get("session_id"), s.id, f"{what}: response session_id")
    eq(body.get("outcome"), "executed", f"{what}: response outcome")

    request_commitment = labeled("wasm-hv/v1 request-commitment", s.announcement_hash, enc_request)
    eq(hexd(body.get("request_commitment"), f"{what}: request_commitment", 32), request_commitment,
       f"{what}: request_commitment = H3(label ‖ 0 ‖ announcement_hash ‖ enc_request)")
    enc_response = b64d(body.get("sealed_result"), f"{what}: sealed_result")
    result_commitment = labeled("wasm-hv/v1 result-commitment", request_commitment, enc_response)
    eq(hexd(body.get("result_commitment"), f"{what}: result_commitment", 32), result_commitment,
       f"{what}: result_commitment = H3(label ‖ 0 ‖ request_commitment ‖ enc_response)")

    # §5 response key
    check(len(enc_response) >= 32 + 16, f"{what}: enc_response holds response_nonce and a GCM tag")
    secret = ctx.export(b"wasm-hv/v1 response", 32)
    response_nonce = enc_response[:32]
    prk = HKDF.extract(hashes.SHA256(), enc + response_nonce, secret)  # RFC 5869 Extract(salt, IKM)
    key = HKDFExpand(hashes.SHA256(), 32, b"key").derive(prk)
    nonce = HKDFExpand(hashes.SHA256(), 12, b"nonce").derive(prk)
    try:
        result_payload = AESGCM(key).decrypt(nonce, enc_response[32:], b"")
    except Exception:  # noqa: BLE001
        raise Failure(f"{what}: sealed_result does not open with the §5 response key") from None
    ok(f"{what}: sealed_result opens (Export → HKDF(enc ‖ response_nonce) → AES-256-GCM)")

    result = strict_cbor(result_payload, f"{what}: result payload")
    check(isinstance(result, dict), f"{what}: result payload is a CBOR map")
    eq(set(result), {"output", "input_blind", "output_blind"}, f"{what}: result payload keys")
    output_bytes, input_blind, output_blind = result["output"], result["input_blind"], result["output_blind"]
    check(isinstance(output_bytes, bytes), f"{what}: output is bytes")
    check(isinstance(input_blind, bytes) and len(input_blind) == 32, f"{what}: input_blind is 32 bytes")
    check(isinstance(output_blind, bytes) and len(output_blind) == 32, f"{what}: output_blind is 32 bytes")
    input_commitment = labeled("wasm-hv/v1 input", input_blind, payload)
    output_commitment = labeled("wasm-hv/v1 output", output_blind, output_bytes)

    out = strict_cbor(output_bytes, f"{what}: output map")
    check(isinstance(out, dict), f"{what}: output map is a CBOR map")
    eq(cbor2.dumps(out, canonical=True), output_bytes, f"{what}: output map is core-deterministic CBOR")
    want_keys = OUTPUT_KEYS | ({"returns"} if non_start else set())
    eq(set(out), want_keys, f"{what}: output map keys")
    check(isinstance(out["status"], str), f"{what}: status is text")
    check(out["exit_code"] is None or (isinstance(out["exit_code"], int) and out["exit_code"] >= 0),
          f"{what}: exit_code is unsigned or null")
    check(isinstance(out["stdout"], bytes) and isinstance(out["stderr"], bytes), f"{what}: stdout/stderr are bytes")
    check(out["error"] is None or isinstance(out["error"], str), f"{what}: error is text or null")
    lim = out["limits"]
    check(isinstance(lim, dict) and set(lim) == LIMIT_KEYS
          and all(isinstance(v, int) and v >= 0 for v in lim.values()),
          f"{what}: limits reports all four as unsigned", repr(lim))
    for k in ("fuel_consumed", "duration_us"):
        check(isinstance(out[k], int) and out[k] >= 0, f"{what}: {k} is unsigned")
    check(isinstance(out["engine"], str) and out["engine"] != "", f"{what}: engine is text", repr(out["engine"]))
    server_seed = out["server_seed"]
    check(isinstance(server_seed, bytes) and len(server_seed) == 32, f"{what}: server_seed is 32 bytes")
    eq(labeled("wasm-hv/v1 server-seed", server_seed), s.seed_commitment,
       f"{what}: server_seed opens the announcement's seed_commitment")
    eff_seed = ZERO32 if client_seed is None else client_seed
    eq(out["random_seed"], labeled("wasm-hv/v1 random", server_seed, eff_seed),
       f"{what}: random_seed = H3(label ‖ 0 ‖ server_seed ‖ seed)")

    # audit object (§5, §6)
    audit = body.get("audit")
    check(isinstance(audit, dict), f"{what}: response has an audit object")
    leaf = b64d(audit.get("leaf"), f"{what}: audit.leaf")
    rl = parse_result_leaf(leaf, f"{what}: audit.leaf")
    request_index, result_index = audit.get("request_index"), audit.get("result_index")
    check(isinstance(request_index, int) and isinstance(result_index, int) and 0 <= request_index < result_index,
          f"{what}: 0 <= request_index < result_index", f"{request_index}, {result_index}")
    eq(rl["session_id"], uuid.UUID(s.id).bytes, f"{what}: leaf session_id")
    eq(rl["request_index"], request_index, f"{what}: leaf request_index")
    eq(rl["outcome"], 1, f"{what}: leaf outcome 1 (executed)")
    eq(rl["request_commitment"], request_commitment, f"{what}: leaf request_commitment")
    eq(rl["result_commitment"], result_commitment, f"{what}: leaf result_commitment")
    eq(rl["input_commitment"], input_commitment, f"{what}: leaf input_commitment = H3(label ‖ 0 ‖ input_blind ‖ payload)")
    eq(rl["output_commitment"], output_commitment,
       f"{what}: leaf output_commitment = H3(label ‖ 0 ‖ output_blind ‖ output)")
    now_ms = time.time() * 1000
    check(s.issued_at * 1000 - MAX_SKEW * 1000 <= rl["time_ms"] <= now_ms + MAX_SKEW * 1000,
          f"{what}: leaf time_ms is between issued_at and now", str(rl["time_ms"]))
    cp = verify_checkpoint(audit.get("checkpoint"), ident, f"{what}: audit.checkpoint")
    check(result_index < cp.size, f"{what}: result_index < checkpoint size", f"{result_index} vs {cp.size}")
    proof = [b64d(p, f"{what}: inclusion_proof") for p in audit.get("inclusion_proof", [])]
    check(all(len(p) == 32 for p in proof), f"{what}: inclusion proof hashes are 32 bytes")
    check(verify_inclusion(result_index, cp.size, leaf_hash(leaf), proof, cp.root),
          f"{what}: RFC 9162 inclusion of the result leaf at result_index in the checkpoint")
    extra = set(body) - {"session_id", "outcome", "request_commitment", "result_commitment", "sealed_result", "audit"}
    check(not extra, f"{what}: no unexpected keys in the execute response", repr(sorted(extra)))

    return Outcome(session=s, payload=payload, enc_request=enc_request, raw_body=r.body, out=out,
                   request_commitment=request_commitment, result_commitment=result_commitment,
                   input_commitment=input_commitment, output_commitment=output_commitment,
                   leaf=leaf, request_index=request_index, result_index=result_index, checkpoint=cp)


def chacha20_stream(key: bytes, n: int) -> bytes:
    # cryptography's ChaCha20 nonce = 32-bit LE block counter ‖ 96-bit nonce: all zero here (§8).
    enc = Cipher(algorithms.ChaCha20(key, b"\x00" * 16), mode=None).encryptor()
    return enc.update(b"\x00" * n)


def request_payload(wasm: bytes, **fields) -> bytes:
    return cbor2.dumps({"wasm": wasm, **fields}, canonical=True)


def check_audit_session(http: Http, ident: Identity, sid: str, want_req: dict, want_res: dict,
                        result_leaf: bytes | None, what: str) -> Checkpoint:
    """GET /audit/{id}: two entries, both leaves as expected, both proofs against its checkpoint."""
    r = http.get(f"/audit/{sid}")
    expect_status(r, 200, f"{what}: GET /audit/{{id}}")
    body = r.json(f"{what}: GET /audit/{{id}}")
    eq(body.get("session_id"), sid, f"{what}: audit session_id")
    cp = verify_checkpoint(body.get("checkpoint"), ident, f"{what}: audit checkpoint")
    entries = body.get("entries")
    check(isinstance(entries, list) and len(entries) == 2, f"{what}: two audit entries (request, result)",
          repr(entries)[:300])
    leaves = []
    for i, e in enumerate(entries):
        idx = e.get("index")
        leaf = b64d(e.get("leaf"), f"{what}: entry {i} leaf")
        proof = [b64d(p, f"{what}: entry {i} proof") for p in e.get("inclusion_proof", [])]
        check(isinstance(idx, int) and 0 <= idx < cp.size, f"{what}: entry {i} index within the checkpoint")
        check(verify_inclusion(idx, cp.size, leaf_hash(leaf), proof, cp.root),
              f"{what}: entry {i} RFC 9162 inclusion proof against the audit checkpoint")
        leaves.append((idx, leaf, e.get("record")))
    (qi, ql, qrec), (si, sl, srec) = leaves
    rq = parse_request_leaf(ql, f"{what}: request entry")
    check_record(qrec, rq, f"{what}: request entry")
    for k, v in want_req.items():
        eq(rq[k], v, f"{what}: request leaf {k}")
    rs = parse_result_leaf(sl, f"{what}: result entry")
    check_record(srec, rs, f"{what}: result entry")
    eq(rs["request_index"], qi, f"{what}: result leaf points at the request entry's index")
    check(qi < si, f"{what}: request entry precedes result entry")
    check(rq["time_ms"] <= rs["time_ms"], f"{what}: request time_ms <= result time_ms")
    for k, v in want_res.items():
        eq(rs[k], v, f"{what}: result leaf {k}")
    if result_leaf is not None:
        eq(sl, result_leaf, f"{what}: result entry is the execute response's leaf")
    return cp


def check_consistency(http: Http, old: Checkpoint, new: Checkpoint, what: str) -> None:
    if old.size == 0:
        ok(f"{what}: nothing to prove from the empty tree")
        return
    r = http.get(f"/audit/consistency?old={old.size}&new={new.size}")
    expect_status(r, 200, f"{what}: GET /audit/consistency?old={old.size}&new={new.size}")
    body = r.json(f"{what}: consistency")
    eq((body.get("old"), body.get("new")), (old.size, new.size), f"{what}: consistency old/new echoed")
    proof = [b64d(p, f"{what}: consistency proof") for p in body.get("proof", [])]
    check(all(len(p) == 32 for p in proof), f"{what}: consistency proof hashes are 32 bytes")
    check(verify_consistency(old.size, new.size, old.root, new.root, proof),
          f"{what}: RFC 9162 consistency {old.size} → {new.size} ({len(proof)} hashes)")


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def main(base: str) -> None:
    _self_test_merkle()
    ok("RFC 9162 inclusion/consistency verifiers pass their self-test")
    http = Http(base)
    ident = get_identity(http)

    r = http.get("/audit/checkpoint")
    expect_status(r, 200, "GET /audit/checkpoint")
    check(r.content_type == "text/plain", "GET /audit/checkpoint is text/plain", r.content_type)
    first_cp = verify_checkpoint(r.body.decode("utf-8"), ident, "initial checkpoint")

    # ---------------------------------------------------------------- hello world, with detours
    section("session A: hello world (§3-§6), after a wrong ticket and a wrong content type")
    a = open_session(http, ident, "A")
    limits = {"fuel": 1_000_000, "memory_bytes": 1 << 20, "output_bytes": 4096, "timeout_ms": 5000}
    seed_a = os.urandom(32)
    payload_a = request_payload(hello_module(), args=["one", "two"], env={"LANG": "C"}, stdin=b"unused",
                                limits=limits, seed=seed_a)
    enc_req_probe, _, _ = seal(a, payload_a)
    expect_error(execute(http, a, enc_req_probe, ticket_hex=os.urandom(32).hex()), 403, "bad_ticket",
                 "A: wrong Session-Ticket")
    expect_error(execute(http, a, enc_req_probe, ticket_hex=""), 403, "bad_ticket", "A: missing Session-Ticket")
    expect_error(execute(http, a, enc_req_probe, ticket_hex=a.ticket.hex().upper() + "zz"), 403, "bad_ticket",
                 "A: malformed Session-Ticket")
    expect_error(execute(http, a, enc_req_probe, content_type="text/plain"), 400, "malformed_request",
                 "A: wrong content type")
    expect_error(execute(http, a, enc_req_probe[:7 + 65 + 15]), 400, "malformed_request",
                 "A: body shorter than 7 + 65 + 16 bytes")
    bad_hdr = bytes([enc_req_probe[0] ^ 1]) + enc_req_probe[1:]
    expect_error(execute(http, a, bad_hdr), 400, "malformed_request", "A: header differing from the key config")
    A = run_and_verify(http, ident, a, payload_a, "A", seed_a)
    eq(A.out["status"], "ok", "A: status ok")
    eq(A.out["exit_code"], 0, "A: exit_code 0")
    eq(A.out["stdout"], HELLO_TEXT, "A: stdout is the module's string")
    eq(A.out["stderr"], b"", "A: stderr empty")
    eq(A.out["limits"], limits, "A: the applied limits are the requested ones (all below the server maxima)")
    check(0 < A.out["fuel_consumed"] <= limits["fuel"], "A: 0 < fuel_consumed <= fuel limit")

    r = http.get(f"/sessions/{a.id}/result")
    expect_status(r, 200, "A: GET /sessions/{id}/result")
    eq(r.body, A.raw_body, "A: GET /sessions/{id}/result is byte-identical to the execute body")
    expect_error(execute(http, a, A.enc_request), 409, "session_used", "A: execute again",
                 request_commitment=A.request_commitment, may_omit=True)

    cp_a = check_audit_session(
        http, ident, a.id,
        {"session_id": uuid.UUID(a.id).bytes, "announcement_hash": a.announcement_hash,
         "request_commitment": A.request_commitment},
        {}, A.leaf, "A")
    check_consistency(http, A.checkpoint, cp_a, "A: execute checkpoint → audit checkpoint")

    # ---------------------------------------------------------------- randomness (§5, §8)
    section("session B: random_get is the ChaCha20 stream of random_seed (§8)")
    b = open_session(http, ident, "B")
    seed_b = os.urandom(32)
    B = run_and_verify(http, ident, b, request_payload(random_module(48), seed=seed_b), "B", seed_b)
    eq(B.out["status"], "ok", "B: status ok")
    eq(B.out["exit_code"], 0, "B: exit_code 0")
    eq(B.out["stdout"], chacha20_stream(B.out["random_seed"], 48),
       "B: stdout = ChaCha20(key = random_seed, nonce 0, counter 0) keystream")

    section("session B2: no seed means 32 zero bytes (§4)")
    b2 = open_session(http, ident, "B2")
    B2 = run_and_verify(http, ident, b2, request_payload(random_module(16)), "B2", None)
    eq(B2.out["stdout"], chacha20_stream(B2.out["random_seed"], 16), "B2: stdout is the stream of random_seed")

    # ---------------------------------------------------------------- args, env, stdin, stderr
    section("session C: argv (argv[0] = \"program\"), environ, stdin, stderr (§4)")
    c = open_session(http, ident, "C")
    stdin_c = b"stdin bytes \x00\xff\n"
    C = run_and_verify(http, ident, c, request_payload(io_module(), args=["first", "second arg"],
                                                      env={"GREETING": "hi there"}, stdin=stdin_c), "C", None)
    eq(C.out["status"], "ok", "C: status ok")
    eq(C.out["stdout"], b"program\x00first\x00second arg\x00" + b"GREETING=hi there\x00" + stdin_c,
       "C: stdout = argv buffer ‖ environ buffer ‖ stdin")
    eq(C.out["stderr"], b"to stderr\n", "C: stderr")

    # ---------------------------------------------------------------- statuses
    section("session D: proc_exit(7) is status exit (§7)")
    d = open_session(http, ident, "D")
    D = run_and_verify(http, ident, d, request_payload(exit_module(7)), "D", None)
    eq(D.out["status"], "exit", "D: status exit")
    eq(D.out["exit_code"], 7, "D: exit_code 7")

    section("session E: a non-_start entry reports returns (§5)")
    e = open_session(http, ident, "E")
    E = run_and_verify(http, ident, e, request_payload(returns_module(), entry="answer"), "E", None, non_start=True)
    eq(E.out["status"], "ok", "E: status ok")
    eq(E.out["exit_code"], 0, "E: exit_code 0 (the entry returned)")
    eq(E.out["returns"], [["i32", -1]], "E: returns [[\"i32\", -1]]")

    section("session F: an unknown payload key is bad_payload (§4, §5)")
    f = open_session(http, ident, "F")
    F = run_and_verify(http, ident, f, request_payload(hello_module(), argz=["typo"], seed=os.urandom(32)), "F", None)
    eq(F.out["status"], "bad_payload", "F: status bad_payload")
    eq(F.out["exit_code"], None, "F: exit_code null")
    eq((F.out["stdout"], F.out["stderr"]), (b"", b""), "F: empty stdout and stderr")
    eq(F.out["fuel_consumed"], 0, "F: fuel_consumed 0")
    ok("F: random_seed used the all-zero seed despite the payload's seed (checked above)")

    # ---------------------------------------------------------------- error paths
    section("errors (§4, §7)")
    unknown = str(uuid.uuid4())
    ghost = Session(id=unknown, ticket=os.urandom(32))
    expect_error(execute(http, ghost, enc_req_probe), 404, "session_not_found", "unknown session execute")
    expect_error(http.post_json("/sessions", {"client_nonce": "00" * 32}), 400, "malformed_request",
                 "POST /sessions with an all-zero client_nonce")
    expect_error(http.post_json("/sessions", {}), 400, "malformed_request", "POST /sessions without client_nonce")
    expect_error(http.post_json("/sessions", {"client_nonce": "abc"}), 400, "malformed_request",
                 "POST /sessions with a malformed client_nonce")

    g = open_session(http, ident, "G")
    enc_req_g, _, _ = seal(g, request_payload(hello_module()))
    flipped = bytearray(enc_req_g)
    flipped[7 + 65 + 3] ^= 0x01  # a ciphertext byte
    flipped = bytes(flipped)
    rc_flipped = labeled("wasm-hv/v1 request-commitment", g.announcement_hash, flipped)
    err_g = expect_error(execute(http, g, flipped), 400, "unseal_failed", "G: flipped ciphertext byte",
                         request_commitment=rc_flipped)
    expect_error(execute(http, g, enc_req_g), 409, "session_used", "G: retry with the intact request",
                 request_commitment=rc_flipped, may_omit=True)
    r = http.get(f"/sessions/{g.id}/result")
    got = expect_error(r, 400, "unseal_failed", "G: GET /sessions/{id}/result repeats the error",
                       request_commitment=rc_flipped)
    eq(got, err_g, "G: repeated error body equals the execute one")
    check_audit_session(
        http, ident, g.id,
        {"session_id": uuid.UUID(g.id).bytes, "announcement_hash": g.announcement_hash,
         "request_commitment": rc_flipped},
        {"outcome": 11, "request_commitment": rc_flipped, "result_commitment": ZERO32,
         "input_commitment": ZERO32, "output_commitment": ZERO32},
        None, "G")

    # ---------------------------------------------------------------- the whole log
    section("log (§6)")
    r = http.get("/audit/checkpoint")
    expect_status(r, 200, "GET /audit/checkpoint (latest)")
    latest = verify_checkpoint(r.body.decode("utf-8"), ident, "latest checkpoint")
    check(latest.size >= A.checkpoint.size, "latest checkpoint is not smaller than session A's")
    check_consistency(http, A.checkpoint, latest, "A's execute checkpoint → latest")
    check_consistency(http, first_cp, latest, "initial checkpoint → latest")

    leaves: list[bytes] = []
    while len(leaves) < latest.size:
        r = http.get(f"/audit/entries?start={len(leaves)}&end={latest.size}")
        expect_status(r, 200, f"GET /audit/entries?start={len(leaves)}")
        entries = r.json("entries").get("entries")
        check(isinstance(entries, list) and entries, "entries page is non-empty")
        for en in entries:
            if en.get("index") != len(leaves):
                raise Failure(f"entries out of order: index {en.get('index')!r} where {len(leaves)} was due")
            leaves.append(b64d(en.get("leaf"), "entry leaf"))
    ok(f"GET /audit/entries returned indices 0..{len(leaves) - 1} in order")
    eq(mth(leaves), latest.root, f"MTH of all {len(leaves)} entries equals the latest checkpoint's root")
    req_idx = {i for i, lf in enumerate(leaves) if lf[1:2] == b"\x01"}
    answered = {int.from_bytes(lf[26:34], "big") for lf in leaves if lf[1:2] == b"\x02"}
    eq(sorted(req_idx - answered), [], "every request leaf has a result leaf")
    want_sessions = {uuid.UUID(x.id).bytes for x in (a, b, b2, c, d, f, g, e)}
    check(want_sessions <= {lf[2:18] for lf in leaves}, "every session of this run is in the log")
    r = http.get(f"/audit/entries?start={latest.size + 1}&end={latest.size + 2}")
    expect_status(r, 400, "GET /audit/entries with start beyond the tree size")

    library(base)

    print(f"PASS: {CHECKS} checks against {base}", flush=True)


# --------------------------------------------------------------------------------------------
# The package's own library and command line, against the same daemon
# --------------------------------------------------------------------------------------------


def refused(what: str, why: str, attempt) -> None:
    """`attempt()` must raise the library's VerificationError, for the reason `why`."""
    try:
        attempt()
    except protocol.VerificationError as e:
        check(why in str(e), f"{what}: refused because {why}", str(e))
        return
    raise Failure(f"{what}: the library accepted it")


def library(base: str) -> None:
    section("library: a verified execution, and forged seeds refused (§5.1)")
    client = Client(base)
    ident = client.identity()
    ok("library: GET /identity is self-consistent")
    session = client.open_session(ident)
    ok("library: the announcement passes every check of §3")
    seed = os.urandom(32)
    sealed = protocol.Sealed(session, request_payload(random_module(16), seed=seed), seed)
    r = client.http.request("POST", f"/sessions/{session.id}/execute", sealed.enc_request,
                            {"Content-Type": SEALED_CT, "Session-Ticket": session.ticket.hex()})
    body = r.expect(200, "library: execute")
    result = protocol.check_result(ident, sealed, body)
    eq(result.output["stdout"], chacha20_stream(result.output["random_seed"], 16),
       "library: the honest result passes every check of §5")

    def forged(change):
        """The daemon's answer with its output map changed, sealed again with the response key
        (which the client holds) and its result_commitment recomputed: only the seed checks and
        the result leaf (which commits to the original output) stand in the way."""
        out = dict(result.output)
        change(out)
        output = cbor2.dumps(out, canonical=True)
        payload = cbor2.dumps({"output": output, "input_blind": result.input_blind,
                               "output_blind": result.output_blind}, canonical=True)
        nonce = os.urandom(32)
        aead, aead_nonce = sealed.response_aead(nonce)
        enc_response = nonce + aead.encrypt(aead_nonce, payload, b"")
        return {**body, "sealed_result": base64.b64encode(enc_response).decode(),
                "result_commitment": labeled("wasm-hv/v1 result-commitment", sealed.request_commitment,
                                             enc_response).hex()}

    refused("library: a re-sealed answer with untouched seeds", "result leaf",
            lambda: protocol.check_result(ident, sealed, forged(lambda out: None)))
    other = os.urandom(32)
    refused("library: another server_seed, random_seed derived from it", "seed_commitment",
            lambda: protocol.check_result(ident, sealed, forged(lambda out: out.update(
                server_seed=other, random_seed=labeled("wasm-hv/v1 random", other, seed)))))
    refused("library: a random_seed not derived from both shares", "random_seed",
            lambda: protocol.check_result(ident, sealed, forged(lambda out: out.update(
                random_seed=labeled("wasm-hv/v1 random", out["server_seed"], b"\x00" * 32)))))
    refused("library: a random_seed ground by the server", "random_seed",
            lambda: protocol.check_result(ident, sealed, forged(lambda out: out.update(random_seed=os.urandom(32)))))

    section("command line: run and audit, two spellings of the URL share one pin")
    with tempfile.TemporaryDirectory() as client_dir:
        program = os.path.join(client_dir, "hello.wasm")
        with open(program, "wb") as f:
            f.write(hello_module())
        rest = base.split("://", 1)[1].rstrip("/")
        spellings = [f"http://{rest}/", f"http://{rest}", f"HTTP://{rest}//"]
        for n, server in enumerate(spellings):
            eq(cli.main(["run", program, "--server", server, "--client-dir", client_dir]), 0,
               f"command line: run via {server} exits 0")
            eq(len(TrustStore(client_dir).identities(server)), 1, f"command line: one identity pinned for {server}")
        with open(os.path.join(client_dir, "trust.json")) as f:
            services = json.load(f)["services"]
        eq(list(services), [cli.normalize_url(base)], "command line: the three spellings are one service in trust.json")
        eq(cli.main(["audit", "--all", "--server", base, "--client-dir", client_dir]), 0,
           "command line: audit --all exits 0")


def run(base: str) -> int:
    """Runs the whole suite; 0 when every check passed, 1 on the first failure."""
    if not re.match(r"https?://", base):
        print("usage: wasm-hypervisor-py check http://HOST:PORT", file=sys.stderr)
        return 2
    try:
        main(base)
    except (Failure, protocol.VerificationError) as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"FAIL: cannot talk to the daemon at {base}: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
