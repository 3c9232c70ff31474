"""The trust store: for each service, keyed by its normalized URL, the identities pinned for it
(origin → key) and each one's last trusted checkpoint (PROTOCOL.md §2, §6, §9). Changes are
made under an exclusive lock on `trust.json.lock` and written to a unique temporary file that
is renamed over `trust.json`, so concurrent runs neither lose changes nor tear the file.

The file (`<client dir>/trust.json`):

    {"version": 1, "services": {"http://127.0.0.1:8080/": {"identities": {
        "<origin>": {"public_key": "<base64 SEC1>", "fingerprint": "<hex>", "checkpoint": "<note>"}}}}}
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import tempfile
import urllib.parse
from contextlib import contextmanager

from .protocol import Checkpoint, Identity, VerificationError, verify_checkpoint

FILE_NAME = "trust.json"
LOCK_NAME = "trust.json.lock"
DEFAULT_PORTS = {"http": 80, "https": 443}


class TrustError(Exception):
    """The store cannot be used, or refuses an identity."""


def normalize_url(text: str) -> str:
    """One spelling per service: scheme and host lowercase, the default port left out, the
    path ending in exactly one "/"; http(s) only, no credentials, query or fragment."""
    parts = urllib.parse.urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{text!r} is not an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{text!r} carries credentials")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(f"{text!r} has a query or a fragment")
    host = parts.hostname
    if not host:
        raise ValueError(f"{text!r} has no host")
    port = parts.port
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}/"


class TrustStore:
    def __init__(self, client_dir: str):
        self.dir = client_dir
        self.path = os.path.join(client_dir, FILE_NAME)

    @contextmanager
    def _locked(self):
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, LOCK_NAME), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._load()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict:
        try:
            with open(self.path, "rb") as f:
                contents = json.load(f)
        except FileNotFoundError:
            return {"version": 1, "services": {}}
        except ValueError as e:
            raise TrustError(f"the trust store {self.path} is corrupt: {e}") from None
        if not isinstance(contents, dict) or contents.get("version") != 1:
            raise TrustError(f"the trust store {self.path} is not version 1")
        return contents

    def _write(self, contents: dict) -> None:
        fd, temporary = tempfile.mkstemp(prefix=".trust.json.", dir=self.dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(contents, f, indent=2, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    @staticmethod
    def _identity(origin: str, entry: dict) -> Identity:
        ident = Identity(origin, base64.b64decode(entry["public_key"]))
        if ident.fingerprint.hex() != entry.get("fingerprint"):
            raise TrustError(f"the pinned key of {origin} does not match its fingerprint")
        return ident

    def pin(self, service: str, seen: Identity) -> bool:
        """Trust on first use: pins `seen` if the service has no identity yet (True), else
        requires it to be one of those pinned (False), or raises TrustError."""
        service = normalize_url(service)
        with self._locked() as contents:
            identities = contents["services"].setdefault(service, {"identities": {}})["identities"]
            if not identities:
                identities[seen.origin] = {"public_key": base64.b64encode(seen.sec1).decode(),
                                           "fingerprint": seen.fingerprint.hex()}
                self._write(contents)
                return True
            entry = identities.get(seen.origin)
            if entry is None or self._identity(seen.origin, entry) != seen:
                raise TrustError(f"the identity of {service} changed: it is now {seen.origin}, but "
                                 f"{', '.join(identities)} is pinned in {self.path}; refusing to continue")
            return False

    def identities(self, service: str) -> list[Identity]:
        with self._locked() as contents:
            entry = contents["services"].get(normalize_url(service), {"identities": {}})
            return [self._identity(o, e) for o, e in entry["identities"].items()]

    def checkpoint(self, service: str, ident: Identity) -> Checkpoint | None:
        with self._locked() as contents:
            entry = contents["services"].get(normalize_url(service), {"identities": {}})
            note = entry["identities"].get(ident.origin, {}).get("checkpoint")
        if note is None:
            return None
        try:
            return verify_checkpoint(note, ident)
        except VerificationError as e:
            raise TrustError(f"the checkpoint trusted for {ident.origin} does not verify: {e}") from None

    def compare_and_swap(self, service: str, ident: Identity, expected: Checkpoint | None,
                         new: Checkpoint) -> bool:
        """Makes `new` the trusted checkpoint if the trusted one is still `expected`; False
        (nothing written) if another run changed it meanwhile."""
        service = normalize_url(service)
        with self._locked() as contents:
            entry = contents["services"].get(service, {"identities": {}})["identities"].get(ident.origin)
            if entry is None or self._identity(ident.origin, entry) != ident:
                raise TrustError(f"{ident.origin} is not pinned for {service}")
            current = entry.get("checkpoint")
            current = None if current is None else verify_checkpoint(current, ident)
            if (current is None) != (expected is None) or (
                    current is not None and (current.size, current.root) != (expected.size, expected.root)):
                return False
            entry["checkpoint"] = new.note
            self._write(contents)
            return True


def remember(client, store: TrustStore, service: str, ident: Identity, trusted: Checkpoint | None,
             seen: Checkpoint) -> None:
    """Keeps `seen` (proven to extend `trusted`) as the trusted checkpoint, proving consistency
    with whatever another run stored meanwhile; the larger of the two is kept."""
    for _ in range(16):
        stored = store.checkpoint(service, ident)
        if stored is not None and (trusted is None or (stored.size, stored.root) != (trusted.size, trusted.root)):
            if stored.size > seen.size:
                client.verify_consistency(seen, stored)
                return
            client.verify_consistency(stored, seen)
        if stored is not None and stored.size >= seen.size:
            return
        if store.compare_and_swap(service, ident, stored, seen):
            return
    raise TrustError(f"the trust store {store.path} kept changing under this run; try again")
