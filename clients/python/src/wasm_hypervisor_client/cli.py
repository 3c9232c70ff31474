"""The command line: `run` seals a WebAssembly module to the daemon and prints its verified
output, `audit` verifies the daemon's log, `check` runs the conformance suite against a daemon.

    wasm-hypervisor-py run program.wasm [--server URL] [-- ARGS...]
    wasm-hypervisor-py audit SESSION_ID | --all
    wasm-hypervisor-py check http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error

import cbor2

from . import conformance, protocol
from .client import Client, ServerError
from .protocol import VerificationError
from .trust import TrustError, TrustStore, normalize_url, remember


def default_client_dir() -> str:
    return os.environ.get("WASM_HYPERVISOR_CLIENT_DIR") or os.path.join(os.path.expanduser("~"), ".wasm-hypervisor-py")


def connect(args):
    service = normalize_url(args.server)
    client = Client(service, ca_file=args.ca_cert)
    store = TrustStore(args.client_dir)
    ident = client.identity()
    if store.pin(service, ident):
        print(f"wasm-hypervisor-py: pinned {service} as {ident.origin} (fingerprint {ident.fingerprint.hex()})",
              file=sys.stderr)
    return service, client, store, ident, store.checkpoint(service, ident)


def run(args) -> int:
    with open(args.program, "rb") as f:
        wasm = f.read()
    seed = os.urandom(32)
    payload: dict = {"wasm": wasm, "seed": seed}
    if args.entry:
        payload["entry"] = args.entry
    if args.args:
        payload["args"] = args.args
    if args.env:
        payload["env"] = dict(kv.split("=", 1) for kv in args.env)
    if args.stdin:
        with open(args.stdin, "rb") as f:
            payload["stdin"] = f.read()
    limits = {k: v for k, v in (("fuel", args.fuel), ("memory_bytes", args.memory),
                                ("output_bytes", args.output), ("timeout_ms", args.timeout)) if v is not None}
    if limits:
        payload["limits"] = limits
    service, client, store, ident, trusted = connect(args)
    execution = client.execute(ident, cbor2.dumps(payload, canonical=True), seed, trusted)
    remember(client, store, service, ident, trusted, execution.checkpoint)
    out = execution.output
    if args.json:
        shown = {k: (v.hex() if k.endswith("_seed") else v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                 for k, v in out.items()}
        shown["session_id"] = execution.session.id
        shown["audit"] = {"request_index": execution.result.request_index,
                          "result_index": execution.result.result_index,
                          "checkpoint": execution.checkpoint.note}
        print(json.dumps(shown, indent=2))
    else:
        sys.stdout.buffer.write(out.get("stdout", b""))
        sys.stdout.flush()
        sys.stderr.buffer.write(out.get("stderr", b""))
        sys.stderr.flush()
    if out["status"] in ("ok", "exit"):
        code = out.get("exit_code")
        return code if isinstance(code, int) and code < 256 else 1
    print(f"wasm-hypervisor-py: the program ended with status `{out['status']}`: {out.get('error')}", file=sys.stderr)
    return 125


def audit(args) -> int:
    service, client, store, ident, trusted = connect(args)
    if args.all:
        checkpoint = client.checkpoint(ident)
        leaves: list[bytes] = []
        while len(leaves) < checkpoint.size:
            page = client.entries(len(leaves), checkpoint.size)
            if not page:
                raise VerificationError(f"the daemon returned no entries from {len(leaves)}")
            for index, leaf in page:
                if index != len(leaves):
                    raise VerificationError(f"entry {index} came out of order")
                protocol.parse_leaf(leaf)
                leaves.append(leaf)
        if protocol.mth(leaves) != checkpoint.root:
            raise VerificationError(f"the {checkpoint.size} entries do not hash to the signed root")
        print(f"{checkpoint.size} entries hash to the signed root")
    else:
        entries, checkpoint = client.session_audit(ident, args.session_id)
        kinds = sorted(leaf["kind"] for _, leaf in entries)
        if kinds != ["request", "result"]:
            raise VerificationError(f"session {args.session_id} has leaves {kinds}, not one request and one result")
        (qi, q), (_, s) = sorted(entries, key=lambda e: e[1]["kind"])
        if s["request_index"] != qi or s["request_commitment"] != q["request_commitment"]:
            raise VerificationError("the result leaf does not answer the request leaf")
        print(f"session {args.session_id}: outcome {protocol.OUTCOMES[s['outcome']]}, both leaves included")
    if trusted is not None:
        client.verify_consistency(trusted, checkpoint)
        print(f"consistent with the checkpoint trusted before (size {trusted.size})")
    remember(client, store, service, ident, trusted, checkpoint)
    print(f"OK: verified against {ident.origin} at size {checkpoint.size}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wasm-hypervisor-py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def client_options(p):
        p.add_argument("--server", default=os.environ.get("WASM_HYPERVISOR_SERVER", "http://127.0.0.1:8080"))
        p.add_argument("--client-dir", default=default_client_dir(),
                       help="where trust.json keeps pinned identities and trusted checkpoints")
        p.add_argument("--ca-cert", default=os.environ.get("WASM_HYPERVISOR_CA_CERT"),
                       help="PEM certificate (or CA) to trust for an https server")

    p = commands.add_parser("run", help="seal a .wasm module to the daemon, verify the answer, print its output")
    p.add_argument("program")
    p.add_argument("args", nargs="*")
    p.add_argument("--stdin")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE, repeatable")
    p.add_argument("--entry")
    p.add_argument("--fuel", type=int)
    p.add_argument("--memory", type=int)
    p.add_argument("--output", type=int)
    p.add_argument("--timeout", type=int)
    p.add_argument("--json", action="store_true")
    client_options(p)
    p = commands.add_parser("audit", help="verify one session's leaves, or (--all) the whole log")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("session_id", nargs="?")
    group.add_argument("--all", action="store_true")
    client_options(p)
    p = commands.add_parser("check", help="run the conformance suite against a daemon")
    p.add_argument("server")

    args = parser.parse_args(argv)
    if args.command == "check":
        return conformance.run(args.server)
    if args.command == "run" and any("=" not in kv or kv.startswith("=") for kv in args.env):
        parser.error("--env takes KEY=VALUE")
    try:
        return run(args) if args.command == "run" else audit(args)
    except (VerificationError, ServerError, TrustError, ValueError, OSError, urllib.error.URLError) as e:
        print(f"wasm-hypervisor-py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
