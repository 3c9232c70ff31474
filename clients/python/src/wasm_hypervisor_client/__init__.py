"""An independent client of the wasm-hypervisor sealed execution protocol (docs/PROTOCOL.md),
written from the protocol document alone: `protocol` holds the transport-free checks, `client`
the HTTP transport around them, `trust` the trust store, `cli` the command line
(`wasm-hypervisor-py run | audit | check`), and `conformance` the check suite CI runs against
the real daemon."""

from .client import Client, Execution, ServerError
from .protocol import Checkpoint, Identity, InconsistentLog, VerificationError
from .trust import TrustError, TrustStore, normalize_url, remember

__all__ = [
    "Checkpoint", "Client", "Execution", "Identity", "InconsistentLog", "ServerError", "TrustError",
    "TrustStore", "VerificationError", "normalize_url", "remember",
]
