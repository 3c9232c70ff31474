//! `cargo bench -p wasm-hypervisor-actors`: what the sandbox costs a CPU-bound guest against
//! bare wasmi, how long one fuel slice takes (the granularity of the wall-clock limit) and what
//! one whole session costs (open, run, seal). Prints medians.

use std::time::{Duration, Instant};

use wasm_hypervisor_actors::sandbox::{self, Program, SandboxConfig};
use wasm_hypervisor_actors::session::{self, Job, LimitsPolicy};
use wasm_hypervisor_protocol::payload::{Limits, RequestPayload};
use wasm_hypervisor_protocol::sealing::{self, SessionKeyPair};
use zeroize::Zeroizing;

const ROUNDS: usize = 21;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `wasm` as a WASI command with no arguments, environment or input.
fn command(wasm: &[u8]) -> Program<'_> {
    Program {
        wasm,
        entry: "_start",
        args: &[],
        env: &[],
        stdin: &[],
        random_seed: [0; 32],
        issued_at_secs: 0,
    }
}

/// A WASI command that repeats `body` forever.
fn looping(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
          (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
          (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
          (memory (export "memory") 2)
          (func (export "_start") (loop $l {body} (br $l))))"#
    ))
    .expect("valid WAT")
}

fn slice_durations() {
    let config = SandboxConfig::default();
    let slices = 10;
    let limits = Limits {
        fuel: slices * config.fuel_slice,
        memory_bytes: 1 << 20,
        output_bytes: 1 << 10,
        timeout_ms: 60_000,
    };
    for (name, body) in [
        ("tight loop", ""),
        (
            "clock_time_get loop",
            "(drop (call $now (i32.const 1) (i64.const 0) (i32.const 0)))",
        ),
        (
            "random_get 64 KiB loop",
            "(drop (call $random (i32.const 0) (i32.const 65536)))",
        ),
    ] {
        let wasm = looping(body);
        let program = command(&wasm);
        let per_slice = median(
            (0..ROUNDS)
                .map(|_| sandbox::run(&program, &limits, &config).duration / slices as u32)
                .collect(),
        );
        println!(
            "one {}-fuel slice of a {name}: median {per_slice:?}",
            config.fuel_slice
        );
    }
}

fn whole_session() {
    let hello = wat::parse_str(include_str!("../../examples/hello.wat")).expect("valid WAT");
    let payload = RequestPayload {
        wasm: hello,
        ..RequestPayload::default()
    }
    .encode();
    let policy = LimitsPolicy::default();
    let config = SandboxConfig::default();
    let samples = (0..ROUNDS)
        .map(|round| {
            let keys = SessionKeyPair::derive(&[round as u8 + 1; 32]);
            let announcement_hash = [7; 32];
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            let (enc_request, _) =
                sealing::seal_request(keys.public_key(), &announcement_hash, &payload, &mut rng)
                    .expect("sealing to a valid key");
            let job = Job {
                session_id: [3; 16],
                keys,
                announcement_hash,
                issued_at: 0,
                server_seed: Zeroizing::new([1; 32]),
                enc_request,
            };
            let started = Instant::now();
            let finished = session::run(job, &policy, &config);
            assert!(matches!(finished, session::Finished::Sealed(_)));
            started.elapsed()
        })
        .collect();
    println!(
        "one hello-world session (open, run, seal): median {:?}",
        median(samples)
    );
}

/// A module of about `bytes` bytes whose code is `br_table`s of `targets` labels each, spread
/// over functions of about 64 KiB: the slowest code to validate per byte found here.
fn br_tables(bytes: usize, targets: usize) -> Vec<u8> {
    let table = format!(
        "(br_table {} (i32.const 0))\n",
        vec!["0"; targets].join(" ")
    );
    let per_function = (64 << 10) / (targets + 4);
    let functions = bytes / (64 << 10) + 1;
    let body = table.repeat(per_function);
    let mut wat = String::from("(module\n");
    for _ in 0..functions {
        wat.push_str(&format!("(func (block {body}))\n"));
    }
    wat.push(')');
    wat::parse_str(wat).expect("valid WAT")
}

/// How long the largest module takes to validate, which no slice can interrupt: the overrun
/// past a time limit that `max_module_bytes` allows.
fn validation_overrun() {
    let config = SandboxConfig {
        max_module_bytes: usize::MAX,
        ..SandboxConfig::default()
    };
    let limits = Limits {
        fuel: 1_000_000,
        memory_bytes: 1 << 20,
        output_bytes: 1 << 10,
        timeout_ms: 1,
    };
    for targets in [1, 16, 1000] {
        for mib in [1, 4] {
            let wasm = br_tables(mib << 20, targets);
            let program = command(&wasm);
            let took = median(
                (0..5)
                    .map(|_| sandbox::run(&program, &limits, &config).duration)
                    .collect(),
            );
            let rate = wasm.len() as f64 / took.as_secs_f64() / f64::from(1 << 20);
            println!(
                "validating {:.2} MiB of br_table with {targets} targets: median {took:?} ({rate:.1} MiB/s)",
                wasm.len() as f64 / f64::from(1 << 20)
            );
        }
    }
}

/// The same module in bare wasmi, with the sandbox's engine configuration and all the fuel it
/// needs: compiled, instantiated and its `_start` called, with no host, limiter or slicing.
fn bare_wasmi(wasm: &[u8], config: &SandboxConfig) -> (Duration, u64) {
    let started = Instant::now();
    let engine = wasmi::Engine::new(&sandbox::engine_config(config));
    let module = wasmi::Module::new(&engine, wasm).expect("a valid module");
    let mut store = wasmi::Store::new(&engine, ());
    store.set_fuel(u64::MAX).expect("fuel is on");
    let instance = wasmi::Linker::new(&engine)
        .instantiate_and_start(&mut store, &module)
        .expect("no imports to satisfy");
    instance
        .get_typed_func::<(), ()>(&store, "_start")
        .expect("a _start export")
        .call(&mut store, ())
        .expect("the countdown returns");
    let took = started.elapsed();
    (took, u64::MAX - store.get_fuel().expect("fuel is on"))
}

/// What the sandbox costs a CPU-bound guest: the same run in `fuel_slice` slices, each a
/// [`sandbox::Run::step`] as the wasm lane takes them, in one slice, and in bare wasmi with the
/// same engine configuration.
fn slicing_overhead() {
    let wasm = wat::parse_str(
        r#"(module (func (export "_start") (local $n i32)
          (local.set $n (i32.const 100000000))
          (loop $l
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br_if $l (local.get $n)))))"#,
    )
    .expect("valid WAT");
    let program = command(&wasm);
    let limits = Limits {
        fuel: u64::MAX,
        memory_bytes: 1 << 20,
        output_bytes: 1 << 10,
        timeout_ms: 600_000,
    };
    let sandboxed = |fuel_slice| {
        let config = SandboxConfig {
            fuel_slice,
            ..SandboxConfig::default()
        };
        move || {
            let started = Instant::now();
            let report = sandbox::run(&program, &limits, &config);
            (started.elapsed(), report.fuel_consumed)
        }
    };
    let variants: [Box<dyn Fn() -> (Duration, u64)>; 3] = [
        Box::new(sandboxed(SandboxConfig::default().fuel_slice)),
        Box::new(sandboxed(u64::MAX)),
        Box::new(|| bare_wasmi(&wasm, &SandboxConfig::default())),
    ];
    // Round by round, so that a change in the machine's load falls on all three alike.
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut fuel = Vec::new();
    for _ in 0..ROUNDS {
        for (variant, samples) in variants.iter().zip(&mut samples) {
            let (took, consumed) = variant();
            samples.push(took);
            fuel.push(consumed);
        }
    }
    assert!(
        fuel.windows(2).all(|pair| pair[0] == pair[1]),
        "slicing and the sandbox change no fuel"
    );
    let [sliced, one_slice, bare] = samples.map(median);
    let against = |base: Duration| (sliced.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0;
    println!(
        "a 100 M-turn countdown: sliced {sliced:?}, one slice {one_slice:?}, bare wasmi {bare:?}: slicing costs {:+.1} %, the sandbox sliced against bare wasmi {:+.1} %",
        against(one_slice),
        against(bare),
    );
}

fn main() {
    slicing_overhead();
    validation_overrun();
    slice_durations();
    whole_session();
}
