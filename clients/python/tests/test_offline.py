"""Offline tests of the library: URL normalization, the trust store (one pin per service, no
lost update under concurrent writers), and the consistency rules of the checkpoint checks."""

import multiprocessing
import os
import tempfile
import unittest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wasm_hypervisor_client import protocol
from wasm_hypervisor_client.protocol import Checkpoint, Identity, InconsistentLog
from wasm_hypervisor_client.trust import TrustError, TrustStore, normalize_url


def identity(n: int) -> Identity:
    key = ec.derive_private_key(1000 + n, ec.SECP256R1())
    sec1 = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return Identity(f"test/{n}", sec1)


def signed(n: int, size: int) -> Checkpoint:
    """A checkpoint of identity(n)'s log, signed as §6.3 says."""
    ident = identity(n)
    key = ec.derive_private_key(1000 + n, ec.SECP256R1())
    text = f"{ident.origin}\n{size}\n{protocol.b64e(bytes([size]) * 32)}\n"
    sig = key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    note = f"{text}\n\u2014 {ident.origin} {protocol.b64e(ident.key_id + sig)}\n"
    return protocol.verify_checkpoint(note, ident)


def pin_many(client_dir: str, writer: int, count: int) -> None:
    store = TrustStore(client_dir)
    for n in range(count):
        assert store.pin(f"http://writer{writer}-{n}:1", identity(1))


class NormalizeUrl(unittest.TestCase):
    def test_spellings_of_one_service_are_one(self):
        for spellings, normal in [
            (["http://127.0.0.1:8080", "http://127.0.0.1:8080/", "HTTP://127.0.0.1:8080//"], "http://127.0.0.1:8080/"),
            (["http://Example.COM:80", "http://example.com/"], "http://example.com/"),
            (["https://example.com:443/", "https://EXAMPLE.com"], "https://example.com/"),
            (["http://h:1/r/0", "http://h:1/r/0/"], "http://h:1/r/0/"),
            (["http://[::1]:8080"], "http://[::1]:8080/"),
        ]:
            for spelling in spellings:
                self.assertEqual(normalize_url(spelling), normal, spelling)
        for invalid in ["127.0.0.1:8080", "ftp://h/", "http://user:pw@h/", "http://h/?x=1", "http://h/#top", "http://"]:
            with self.assertRaises(ValueError, msg=invalid):
                normalize_url(invalid)


class Store(unittest.TestCase):
    def test_two_spellings_share_one_pin(self):
        with tempfile.TemporaryDirectory() as d:
            store = TrustStore(d)
            self.assertTrue(store.pin("http://127.0.0.1:8080/", identity(1)))
            self.assertFalse(store.pin("http://127.0.0.1:8080", identity(1)))
            with self.assertRaises(TrustError):
                store.pin("HTTP://127.0.0.1:8080", identity(2))
            self.assertEqual(store.identities("http://127.0.0.1:8080"), [identity(1)])

    def test_checkpoints_move_by_compare_and_swap(self):
        with tempfile.TemporaryDirectory() as d:
            store, ident = TrustStore(d), identity(1)
            at3, at5 = signed(1, 3), signed(1, 5)
            with self.assertRaises(TrustError):
                store.compare_and_swap("http://h:1", ident, None, at3)
            store.pin("http://h:1", ident)
            self.assertIsNone(store.checkpoint("http://h:1", ident))
            self.assertTrue(store.compare_and_swap("http://h:1", ident, None, at3))
            # A run that started before at3 was stored does not overwrite it.
            self.assertFalse(store.compare_and_swap("http://h:1/", ident, None, at5))
            self.assertEqual(store.checkpoint("http://h:1", ident), at3)
            self.assertTrue(store.compare_and_swap("http://h:1", ident, at3, at5))
            self.assertEqual(store.checkpoint("HTTP://h:1//", ident), at5)
            with self.assertRaises(TrustError):
                store.compare_and_swap("http://h:1", identity(2), None, signed(2, 9))

    def test_concurrent_writers_lose_nothing(self):
        writers, count = 6, 10
        with tempfile.TemporaryDirectory() as d:
            ctx = multiprocessing.get_context("fork")
            processes = [ctx.Process(target=pin_many, args=(d, w, count)) for w in range(writers)]
            for p in processes:
                p.start()
            for p in processes:
                p.join()
                self.assertEqual(p.exitcode, 0)
            store = TrustStore(d)
            for w in range(writers):
                for n in range(count):
                    self.assertEqual(store.identities(f"http://writer{w}-{n}:1"), [identity(1)])
            self.assertEqual(sorted(os.listdir(d)), ["trust.json", "trust.json.lock"])


class Consistency(unittest.TestCase):
    def test_growth_needs_a_proof_rollback_and_fork_are_refused(self):
        leaves = [bytes([i]) for i in range(7)]
        at3 = Checkpoint("o", 3, protocol.mth(leaves[:3]), "")
        at7 = Checkpoint("o", 7, protocol.mth(leaves), "")
        self.assertEqual(protocol.consistency_needed(at3, at7), (3, 7))
        self.assertIsNone(protocol.consistency_needed(at7, at7))
        self.assertIsNone(protocol.consistency_needed(Checkpoint("o", 0, protocol.H2(b""), ""), at7))
        with self.assertRaises(InconsistentLog):
            protocol.consistency_needed(at7, at3)
        with self.assertRaises(InconsistentLog):
            protocol.consistency_needed(at7, Checkpoint("o", 7, b"\x00" * 32, ""))
        with self.assertRaises(InconsistentLog):
            protocol.check_consistency(at3, at7, [b"\x00" * 32])


if __name__ == "__main__":
    unittest.main()
