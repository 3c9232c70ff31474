"""HTTP transport around the checks of protocol.py: a client of one daemon that returns only
what passed them."""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from . import protocol
from .protocol import Checkpoint, Identity, InconsistentLog, VerificationError


class ServerError(Exception):
    """The daemon answered with a §7 error body (or an unexpected status)."""

    def __init__(self, status: int, code: str, message: str, request_commitment: str | None = None):
        super().__init__(f"the daemon answered {status} {code}: {message}")
        self.status, self.code, self.message, self.request_commitment = status, code, message, request_commitment


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self, what: str):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise VerificationError(f"{what}: body is not JSON: {e}") from None

    def expect(self, status: int, what: str):
        """The JSON body of a `status` answer, or the §7 error as ServerError."""
        if self.status != status:
            try:
                err = json.loads(self.body)
                raise ServerError(self.status, err["error"]["code"], err["error"]["message"],
                                  err.get("request_commitment"))
            except (ValueError, KeyError, TypeError):
                raise ServerError(self.status, "unexpected", f"{what}: {self.body[:200]!r}") from None
        return self.json(what)


class Http:
    """Plain urllib: no proxy, optional custom CA for https."""

    def __init__(self, base: str, ca_file: str | None = None, timeout: float = 300):
        self.base = base.rstrip("/")
        self.timeout = timeout
        handlers: list = [urllib.request.ProxyHandler({})]
        if ca_file is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
        self.opener = urllib.request.build_opener(*handlers)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None) -> Response:
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=self.timeout) as r:
                return Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read())

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post_json(self, path: str, obj) -> Response:
        return self.request("POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})


@dataclass
class Execution:
    """A verified execution: the opened output and what proves it later."""
    session: protocol.Session
    sealed: protocol.Sealed
    result: protocol.Result
    raw_body: bytes

    @property
    def output(self) -> dict:
        return self.result.output

    @property
    def checkpoint(self) -> Checkpoint:
        return self.result.checkpoint


class Client:
    """A client of the daemon at `base` that verifies everything before trusting it."""

    def __init__(self, base: str, ca_file: str | None = None, timeout: float = 300):
        self.http = Http(base, ca_file, timeout)

    def identity(self) -> Identity:
        """GET /identity, checked for internal consistency; pinning it is the caller's choice."""
        return Identity.from_published(self.http.get("/identity").expect(200, "GET /identity"))

    def checkpoint(self, ident: Identity) -> Checkpoint:
        r = self.http.get("/audit/checkpoint")
        if r.status != 200:
            r.expect(200, "GET /audit/checkpoint")
        return protocol.verify_checkpoint(r.body.decode("utf-8"), ident)

    def verify_consistency(self, trusted: Checkpoint, new: Checkpoint) -> None:
        """Proves that `new` extends `trusted`, fetching the proof when one is needed."""
        sizes = protocol.consistency_needed(trusted, new)
        proof: list[bytes] = []
        if sizes is not None:
            r = self.http.get(f"/audit/consistency?old={sizes[0]}&new={sizes[1]}")
            try:
                body = r.expect(200, "GET /audit/consistency")
            except ServerError as e:
                raise InconsistentLog(f"from size {sizes[0]} to {sizes[1]}: {e}") from None
            proof = [protocol.b64d(p, "consistency proof") for p in body.get("proof") or []]
        protocol.check_consistency(trusted, new, proof)

    def open_session(self, ident: Identity) -> protocol.Session:
        ticket = os.urandom(32)
        nonce = protocol.labeled("wasm-hv/v1 ticket", ticket)
        body = self.http.post_json("/sessions", {"client_nonce": nonce.hex()}).expect(201, "POST /sessions")
        return protocol.check_announcement(ident, body, ticket, time.time())

    def execute(self, ident: Identity, payload: bytes, seed: bytes | None,
                trusted: Checkpoint | None = None) -> Execution:
        """Runs one program end to end: the checks of §3 before sealing (and that the log
        still extends `trusted`), every check of §5 on the answer, and its checkpoint's
        consistency with `trusted`. `payload` is the request payload's CBOR, `seed` its seed."""
        session = self.open_session(ident)
        if trusted is not None:
            self.verify_consistency(trusted, self.checkpoint(ident))
        sealed = protocol.Sealed(session, payload, seed)
        r = self.http.request("POST", f"/sessions/{session.id}/execute", sealed.enc_request,
                              {"Content-Type": protocol.SEALED_CONTENT_TYPE,
                               "Session-Ticket": session.ticket.hex()})
        body = r.expect(200, "execute")
        result = protocol.check_result(ident, sealed, body)
        if trusted is not None:
            self.verify_consistency(trusted, result.checkpoint)
        return Execution(session, sealed, result, r.body)

    def session_audit(self, ident: Identity, session_id: str):
        body = self.http.get(f"/audit/{session_id}").expect(200, "GET /audit/{id}")
        return protocol.check_session_audit(ident, session_id, body)

    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        body = self.http.get(f"/audit/entries?start={start}&end={end}").expect(200, "GET /audit/entries")
        return [(e.get("index"), protocol.b64d(e.get("leaf"), "entry leaf")) for e in body.get("entries") or []]
