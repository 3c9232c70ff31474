//! `cargo bench -p wasm-hypervisor-protocol --bench crypto`: the protocol's own work per
//! session, on whichever crypto backend this build uses: the announcement (session key and
//! signature), sealing and opening a request, sealing a response, checking an announcement's
//! signature, and the two SHA3 passes over a 1 MiB body.

// criterion's macros define undocumented public functions.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wasm_hypervisor_protocol::announcement::{self, Announcement, Expected};
use wasm_hypervisor_protocol::commitment;
use wasm_hypervisor_protocol::identity::IdentityKey;
use wasm_hypervisor_protocol::sealing::{self, SessionKeyPair};

fn announcement(identity: &IdentityKey, keys: &SessionKeyPair) -> Announcement {
    Announcement {
        session_id: [7; 16],
        issued_at: 1_800_000_000,
        expires_at: 1_800_000_060,
        client_nonce: [1; 32],
        identity_fpr: identity.public().fingerprint(),
        seed_commitment: commitment::seed_commitment(&[2; 32]),
        public_key: *keys.public_key(),
    }
}

fn rng() -> impl rand_core::CryptoRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn protocol(c: &mut Criterion) {
    let identity = IdentityKey::from_secret_bytes(&[0x51; 32]).expect("a valid key");
    let keys = SessionKeyPair::derive(&[0x33; 32]);
    let announced = announcement(&identity, &keys);
    let hash = announced.hash();
    let payload = vec![0x42; 512];
    let (enc_request, response_key) =
        sealing::seal_request(keys.public_key(), &hash, &payload, &mut rng()).expect("sealed");

    c.bench_function("announce: session key + signature", |b| {
        b.iter_batched(
            || {
                getrandom::u64()
                    .expect("randomness")
                    .to_le_bytes()
                    .repeat(4)
            },
            |seed| {
                let keys = SessionKeyPair::derive(&seed);
                announcement(&identity, &keys).sign(&identity)
            },
            BatchSize::SmallInput,
        );
    });
    let signature = announced.sign(&identity);
    let tbs = announced.to_tbs();
    let public = identity.public();
    let expected = Expected {
        identity: &public,
        client_nonce: &announced.client_nonce,
        session_id: &announced.session_id,
        now_secs: announced.issued_at,
    };
    c.bench_function("check an announcement (signature and fields)", |b| {
        b.iter(|| announcement::verify(&tbs, &signature, &expected).expect("valid"));
    });
    c.bench_function("seal a 512-byte request (client)", |b| {
        b.iter(|| sealing::seal_request(keys.public_key(), &hash, &payload, &mut rng()));
    });
    c.bench_function("open a 512-byte request", |b| {
        b.iter(|| keys.open_request(&hash, &enc_request).expect("opens"));
    });
    c.bench_function("seal a 512-byte response", |b| {
        b.iter(|| response_key.seal(&payload, &[9; 32]).expect("sealed"));
    });

    let mib = vec![0x5a; 1 << 20];
    let mut group = c.benchmark_group("1 MiB");
    group.throughput(Throughput::Bytes(mib.len() as u64));
    group.bench_function("request commitment (one SHA3 pass)", |b| {
        b.iter(|| commitment::request_commitment(&hash, &mib));
    });
    group.bench_function("seal a request (client)", |b| {
        b.iter(|| sealing::seal_request(keys.public_key(), &hash, &mib, &mut rng()));
    });
    let (enc_mib, _) =
        sealing::seal_request(keys.public_key(), &hash, &mib, &mut rng()).expect("sealed");
    group.bench_function("open a request", |b| {
        b.iter(|| keys.open_request(&hash, &enc_mib).expect("opens"));
    });
    group.finish();
}

criterion_group!(benches, protocol);
criterion_main!(benches);
