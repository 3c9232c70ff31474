"""The checks of docs/PROTOCOL.md, without transport: identity (§2), the announcement (§3),
sealing (§4), the sealed result with its seeds and audit proof (§5, §6), checkpoints and
consistency (§6). Written from the protocol document and the RFCs / C2SP specs it cites alone.

Every check raises VerificationError; nothing that has not passed them is returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from dataclasses import dataclass

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from pyhpke import AEADId, CipherSuite, KDFId, KEMId


class VerificationError(Exception):
    """An answer failed a check of the protocol: it must not be trusted."""


class InconsistentLog(VerificationError):
    """The log does not extend a checkpoint trusted before: rewritten or rolled back."""


# ------------------------------------------------------------------------------------------
# Primitives (Conventions, §1)
# ------------------------------------------------------------------------------------------

ZERO32 = b"\x00" * 32
MAX_SKEW = 30
SUITE = CipherSuite.new(KEMId.DHKEM_P256_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)
SEALED_CONTENT_TYPE = "application/vnd.wasm-hypervisor.sealed-request"
HDR = b"\x00\x00\x10\x00\x01\x00\x02"
OUTCOMES = {1: "executed", 11: "unseal_failed", 12: "aborted", 13: "internal"}


def H3(*parts: bytes) -> bytes:
    return hashlib.sha3_256(b"".join(parts)).digest()


def H2(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def labeled(label: str, *parts: bytes) -> bytes:
    """H3(label ‖ 0x00 ‖ parts…), the shape of every labelled hash of the protocol."""
    return H3(label.encode("ascii"), b"\x00", *parts)


def b64d(s, what: str) -> bytes:
    """Strict RFC 4648 §4 base64: padding required, no stray characters, zero pad bits."""
    if not isinstance(s, str):
        raise VerificationError(f"{what}: not a base64 string: {s!r}")
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VerificationError(f"{what}: invalid base64 {s!r}: {e}") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise VerificationError(f"{what}: non-canonical base64: {s!r}")
    return raw


def b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hexd(s, what: str, n: int | None = None) -> bytes:
    if not isinstance(s, str) or not re.fullmatch(r"(?:[0-9a-f]{2})*", s):
        raise VerificationError(f"{what}: not lowercase hex: {s!r}")
    raw = bytes.fromhex(s)
    if n is not None and len(raw) != n:
        raise VerificationError(f"{what}: {len(raw)} bytes, want {n}")
    return raw


def load_sec1_point(raw: bytes, what: str) -> ec.EllipticCurvePublicKey:
    if len(raw) != 65 or raw[0] != 0x04:
        raise VerificationError(f"{what}: not a 65-byte uncompressed SEC1 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as e:
        raise VerificationError(f"{what}: not a valid P-256 point: {e}") from None


def verify_ecdsa(key: ec.EllipticCurvePublicKey, sig: bytes, msg: bytes, what: str) -> None:
    """ECDSA-P256-SHA256 with a strict-DER signature (§1); high-S is accepted."""
    try:
        r, s = decode_dss_signature(sig)
    except ValueError:
        raise VerificationError(f"{what}: signature is not DER") from None
    if encode_dss_signature(r, s) != sig:
        raise VerificationError(f"{what}: signature is not strict DER")
    try:
        key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError(f"{what}: signature does not verify") from None


def strict_cbor(raw: bytes, what: str):
    try:
        return cbor2.loads(raw, allow_indefinite=False, allow_duplicate_keys=False, max_depth=16)
    except Exception as e:  # noqa: BLE001 - any decoder error is a refusal
        raise VerificationError(f"{what}: not valid CBOR: {e}") from None


# ------------------------------------------------------------------------------------------
# Identity (§2)
# ------------------------------------------------------------------------------------------


class Identity:
    """An identity as a client pins it: origin and key together."""

    def __init__(self, origin: str, sec1: bytes):
        if not (isinstance(origin, str) and 1 <= len(origin.encode()) <= 255
                and all(0x21 <= ord(c) <= 0x7E and c != "+" for c in origin)):
            raise VerificationError(f"origin breaks §2's rules: {origin!r}")
        self.origin = origin
        self.sec1 = bytes(sec1)
        self.key = load_sec1_point(self.sec1, "identity public key")
        self.spki = self.key.public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        self.fingerprint = H3(self.sec1)
        self.key_id = H2(self.spki)[:4]

    def __eq__(self, other) -> bool:
        return isinstance(other, Identity) and (self.origin, self.sec1) == (other.origin, other.sec1)

    def __hash__(self) -> int:
        return hash((self.origin, self.sec1))

    def __repr__(self) -> str:
        return f"Identity({self.origin!r}, fingerprint {self.fingerprint.hex()})"

    @property
    def note_verifier_key(self) -> str:
        key = b64e(b"\x02" + self.spki)
        return f"{self.origin}+{self.key_id.hex()}+{key}"

    @classmethod
    def from_published(cls, body) -> "Identity":
        """A GET /identity body, once its fields agree with each other."""
        if not isinstance(body, dict):
            raise VerificationError("identity: not a JSON object")
        ident = cls(body.get("origin"), b64d(body.get("public_key"), "identity public_key"))
        consistent = (b64d(body.get("spki"), "identity spki") == ident.spki
                      and hexd(body.get("fingerprint"), "identity fingerprint", 32) == ident.fingerprint
                      and body.get("note_verifier_key") == ident.note_verifier_key
                      and body.get("suite") == {"kem": 16, "kdf": 1, "aead": 2})
        if not consistent:
            raise VerificationError("identity fields disagree with its key")
        return ident


# ------------------------------------------------------------------------------------------
# Merkle tree (RFC 9162 §2.1) and checkpoints (§6)
# ------------------------------------------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    return H2(b"\x00", leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return H2(b"\x01", left, right)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over leaf data."""
    n = len(leaves)
    if n == 0:
        return H2(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index: int, size: int, lhash: bytes, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, lhash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_hash: bytes, second_hash: bytes,
                       path: list[bytes]) -> bool:
    """RFC 9162 §2.1.4.2 (first == second: empty proof, equal roots)."""
    if first < 1 or first > second:
        return False
    if first == second:
        return not path and first_hash == second_hash
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_hash] + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str


def verify_checkpoint(note, ident: Identity) -> Checkpoint:
    """A signed note of §6.3, verified against the pinned (origin, key)."""
    if not isinstance(note, str):
        raise VerificationError("checkpoint: not text")
    if any(c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) for c in note):
        raise VerificationError("checkpoint: control character")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise VerificationError("checkpoint: not text, blank line, signature lines")
    text, sigblock = note[: split + 1], note[split + 2:]
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(line == "" for line in lines[3:]):
        raise VerificationError("checkpoint: not origin, size and root lines")
    if lines[0] != ident.origin:
        raise VerificationError("checkpoint: origin is not the pinned one")
    if re.fullmatch(r"0|[1-9][0-9]*", lines[1]) is None or int(lines[1]) >= 1 << 64:
        raise VerificationError("checkpoint: size is not a canonical u64")
    root = b64d(lines[2], "checkpoint root")
    if len(root) != 32:
        raise VerificationError("checkpoint: root is not 32 bytes")
    verified = False
    sig_lines = sigblock[:-1].split("\n") if sigblock else []
    if not sig_lines:
        raise VerificationError("checkpoint: no signature line")
    for line in sig_lines[:100]:
        m = re.fullmatch(r"\u2014 ([^ +\n]+) ([A-Za-z0-9+/=]+)", line)
        if m is None:
            raise VerificationError("checkpoint: malformed signature line")
        raw = b64d(m.group(2), "checkpoint signature")
        if len(raw) <= 4:
            raise VerificationError("checkpoint: signature shorter than its key ID")
        if m.group(1) == ident.origin and raw[:4] == ident.key_id:
            verify_ecdsa(ident.key, raw[4:], text.encode("utf-8"), "checkpoint")
            verified = True
    if len(sig_lines) > 100 or not verified:
        raise VerificationError("checkpoint: no verifying signature by the pinned identity")
    return Checkpoint(lines[0], int(lines[1]), root, note)


def consistency_needed(trusted: Checkpoint, new: Checkpoint) -> tuple[int, int] | None:
    """The (old, new) sizes of the proof that `new` extends `trusted`, or None if none is
    needed. A smaller tree (rollback) or another root at the same size (fork) is refused."""
    if trusted.origin != new.origin:
        raise InconsistentLog(f"checkpoints of two logs, {trusted.origin} and {new.origin}")
    if new.size < trusted.size:
        raise InconsistentLog(f"the tree shrank from size {trusted.size} to {new.size}")
    if new.size == trusted.size:
        if new.root != trusted.root:
            raise InconsistentLog(f"two different trees of size {new.size}")
        return None
    return None if trusted.size == 0 else (trusted.size, new.size)


def check_consistency(trusted: Checkpoint, new: Checkpoint, proof: list[bytes]) -> None:
    sizes = consistency_needed(trusted, new)
    if sizes is not None and not verify_consistency(sizes[0], sizes[1], trusted.root, new.root, proof):
        raise InconsistentLog(f"from size {sizes[0]} to {sizes[1]}: the proof does not verify")


# ------------------------------------------------------------------------------------------
# Leaves (§6.2)
# ------------------------------------------------------------------------------------------


def parse_leaf(leaf: bytes) -> dict:
    if len(leaf) < 2 or leaf[0] != 1 or leaf[1] not in (1, 2):
        raise VerificationError("leaf: unknown version or kind")
    common = {"session_id": leaf[2:18], "time_ms": int.from_bytes(leaf[18:26], "big")}
    if leaf[1] == 1:
        if len(leaf) != 90:
            raise VerificationError("request leaf is not 90 bytes")
        return {"kind": "request", **common, "announcement_hash": leaf[26:58],
                "request_commitment": leaf[58:90]}
    if len(leaf) != 163:
        raise VerificationError("result leaf is not 163 bytes")
    if leaf[34] not in OUTCOMES:
        raise VerificationError("result leaf: unknown outcome")
    return {"kind": "result", **common, "request_index": int.from_bytes(leaf[26:34], "big"),
            "outcome": leaf[34], "request_commitment": leaf[35:67], "result_commitment": leaf[67:99],
            "input_commitment": leaf[99:131], "output_commitment": leaf[131:163]}


# ------------------------------------------------------------------------------------------
# Sessions: announcement (§3), sealing (§4), result (§5)
# ------------------------------------------------------------------------------------------


class Session:
    """An announcement that passed every check of §3, with the TBS values."""

    def __init__(self, session_id: str, ticket: bytes, tbs: bytes):
        self.id = session_id
        self.ticket = ticket
        self.tbs = tbs
        self.issued_at = int.from_bytes(tbs[17:25], "big")
        self.expires_at = int.from_bytes(tbs[25:33], "big")
        self.seed_commitment = tbs[97:129]
        self.pkr = tbs[134:199]
        self.announcement_hash = H3(tbs)


def check_announcement(ident: Identity, body, ticket: bytes, now: float) -> Session:
    """Every check §3 asks before sealing; the session uses the TBS values."""
    if not isinstance(body, dict):
        raise VerificationError("announcement: not a JSON object")
    sid = body.get("session_id")
    if not isinstance(sid, str) or not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", sid):
        raise VerificationError("announcement: session_id is not a lowercase UUID")
    tbs = b64d(body.get("announcement"), "announcement")
    sig = b64d(body.get("signature"), "announcement signature")
    verify_ecdsa(ident.key, sig, b"wasm-hv/v1 session-key\x00" + tbs, "announcement")
    if len(tbs) != 205 or tbs[0] != 1:
        raise VerificationError("announcement: not a 205-byte version 1 TBS")
    if tbs[33:65] != labeled("wasm-hv/v1 ticket", ticket):
        raise VerificationError("announcement: client_nonce is not ours")
    if tbs[1:17] != uuid.UUID(sid).bytes:
        raise VerificationError("announcement: TBS session_id differs from the JSON one")
    if now >= int.from_bytes(tbs[25:33], "big") + MAX_SKEW:
        raise VerificationError("announcement: expired")
    if tbs[65:97] != ident.fingerprint:
        raise VerificationError("announcement: identity_fpr is not the pinned identity's")
    if tbs[129:131] != b"\x00\x4a" or tbs[131:134] != b"\x00\x00\x10" or tbs[199:205] != b"\x00\x04\x00\x01\x00\x02":
        raise VerificationError("announcement: key config is not this protocol's suite")
    load_sec1_point(tbs[134:199], "announcement pkR")
    return Session(sid, ticket, tbs)


class Sealed:
    """A request sealed to a checked session (§4.3), with what opens its answer."""

    def __init__(self, session: Session, payload: bytes, client_seed: bytes | None):
        self.session = session
        self.payload = payload
        self.client_seed = ZERO32 if client_seed is None else client_seed
        info = b"wasm-hv/v1 request\x00" + HDR + session.announcement_hash
        self.enc, self.ctx = SUITE.create_sender_context(SUITE.kem.deserialize_public_key(session.pkr), info)
        self.enc_request = HDR + self.enc + self.ctx.seal(payload, b"")
        self.request_commitment = labeled("wasm-hv/v1 request-commitment", session.announcement_hash,
                                          self.enc_request)

    def response_aead(self, response_nonce: bytes) -> tuple[AESGCM, bytes]:
        """§5.3: the response key and nonce for one response_nonce."""
        secret = self.ctx.export(b"wasm-hv/v1 response", 32)
        prk = HKDF.extract(hashes.SHA256(), self.enc + response_nonce, secret)
        key = HKDFExpand(hashes.SHA256(), 32, b"key").derive(prk)
        nonce = HKDFExpand(hashes.SHA256(), 12, b"nonce").derive(prk)
        return AESGCM(key), nonce

    def open_response(self, enc_response: bytes) -> bytes:
        if len(enc_response) < 32 + 16:
            raise VerificationError("sealed_result is too short")
        aead, nonce = self.response_aead(enc_response[:32])
        try:
            return aead.decrypt(nonce, enc_response[32:], b"")
        except Exception:  # noqa: BLE001
            raise VerificationError("sealed_result does not open") from None


@dataclass
class Result:
    """An answer that passed every check of §5: only now is its output trusted."""
    session_id: str
    output: dict
    output_bytes: bytes
    enc_response: bytes
    input_blind: bytes
    output_blind: bytes
    request_commitment: bytes
    result_commitment: bytes
    input_commitment: bytes
    output_commitment: bytes
    request_index: int
    result_index: int
    checkpoint: Checkpoint


def check_result(ident: Identity, sealed: Sealed, body) -> Result:
    """Every check §5.4 asks of an execute answer, the seeds of §5.1 included. Consistency with
    the trusted checkpoint is the caller's (check_consistency)."""
    if not isinstance(body, dict):
        raise VerificationError("result: not a JSON object")
    if body.get("session_id") != sealed.session.id or body.get("outcome") != "executed":
        raise VerificationError("result: not this session's executed result")
    enc_response = b64d(body.get("sealed_result"), "sealed_result")
    result_commitment = labeled("wasm-hv/v1 result-commitment", sealed.request_commitment, enc_response)
    if (hexd(body.get("request_commitment"), "request_commitment", 32) != sealed.request_commitment
            or hexd(body.get("result_commitment"), "result_commitment", 32) != result_commitment):
        raise VerificationError("result: the wire commitments do not bind what was sent and received")
    result = strict_cbor(sealed.open_response(enc_response), "result payload")
    if not (isinstance(result, dict) and set(result) == {"output", "input_blind", "output_blind"}
            and isinstance(result["output"], bytes)
            and all(isinstance(result[k], bytes) and len(result[k]) == 32 for k in ("input_blind", "output_blind"))):
        raise VerificationError("result payload is not {output, input_blind, output_blind}")
    output_bytes = result["output"]
    out = strict_cbor(output_bytes, "output map")
    if not isinstance(out, dict) or not isinstance(out.get("status"), str):
        raise VerificationError("output map is not a map with a status")
    server_seed, random_seed = out.get("server_seed"), out.get("random_seed")
    if not (isinstance(server_seed, bytes) and len(server_seed) == 32
            and isinstance(random_seed, bytes) and len(random_seed) == 32):
        raise VerificationError("output map: server_seed and random_seed are not 32 bytes")
    if labeled("wasm-hv/v1 server-seed", server_seed) != sealed.session.seed_commitment:
        raise VerificationError("server_seed does not open the announcement's seed_commitment")
    seed = ZERO32 if out["status"] == "bad_payload" else sealed.client_seed
    if random_seed != labeled("wasm-hv/v1 random", server_seed, seed):
        raise VerificationError("random_seed is not H3(\"wasm-hv/v1 random\" ‖ 0x00 ‖ server_seed ‖ seed)")
    input_commitment = labeled("wasm-hv/v1 input", result["input_blind"], sealed.payload)
    output_commitment = labeled("wasm-hv/v1 output", result["output_blind"], output_bytes)

    audit = body.get("audit")
    if not isinstance(audit, dict):
        raise VerificationError("result: no audit object")
    checkpoint = verify_checkpoint(audit.get("checkpoint"), ident)
    leaf = b64d(audit.get("leaf"), "audit leaf")
    parsed = parse_leaf(leaf)
    request_index, result_index = audit.get("request_index"), audit.get("result_index")
    if not (isinstance(request_index, int) and isinstance(result_index, int)
            and parsed["kind"] == "result"
            and parsed["session_id"] == uuid.UUID(sealed.session.id).bytes
            and parsed["request_index"] == request_index < result_index
            and parsed["outcome"] == 1
            and (parsed["request_commitment"], parsed["result_commitment"], parsed["input_commitment"],
                 parsed["output_commitment"]) == (sealed.request_commitment, result_commitment,
                                                  input_commitment, output_commitment)):
        raise VerificationError("the result leaf does not record this execution")
    proof = [b64d(p, "inclusion proof") for p in audit.get("inclusion_proof") or []]
    if not all(len(p) == 32 for p in proof) or not verify_inclusion(
            result_index, checkpoint.size, leaf_hash(leaf), proof, checkpoint.root):
        raise VerificationError("the result leaf is not included in the checkpoint")
    return Result(sealed.session.id, out, output_bytes, enc_response, result["input_blind"],
                  result["output_blind"], sealed.request_commitment, result_commitment, input_commitment,
                  output_commitment, request_index, result_index, checkpoint)


def check_session_audit(ident: Identity, session_id: str, body) -> tuple[list[tuple[int, dict]], Checkpoint]:
    """GET /audit/{id} (§6.4): every entry a leaf of the session, included in the checkpoint."""
    if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
        raise VerificationError("audit: not {entries, checkpoint}")
    checkpoint = verify_checkpoint(body.get("checkpoint"), ident)
    leaves = []
    for entry in body["entries"]:
        index = entry.get("index") if isinstance(entry, dict) else None
        if not isinstance(index, int):
            raise VerificationError("audit: entry without an index")
        leaf = b64d(entry.get("leaf"), "audit leaf")
        parsed = parse_leaf(leaf)
        if parsed["session_id"] != uuid.UUID(session_id).bytes:
            raise VerificationError("audit: an entry belongs to another session")
        proof = [b64d(p, "inclusion proof") for p in entry.get("inclusion_proof") or []]
        if not verify_inclusion(index, checkpoint.size, leaf_hash(leaf), proof, checkpoint.root):
            raise VerificationError(f"audit: entry {index} is not included in the checkpoint")
        leaves.append((index, parsed))
    return leaves, checkpoint
