//! Tests of the sandbox through `run`: one or more per status, the WASI surface, determinism.

use chacha20::cipher::StreamCipher;
use chacha20::{ChaCha20, KeyIvInit};

use super::*;

const LIMITS: Limits = Limits {
    fuel: 50_000_000,
    memory_bytes: 16 << 20,
    output_bytes: 1 << 20,
    timeout_ms: 60_000,
};

/// One test run: a WAT program and what it may observe, with defaults for everything else.
struct Case {
    wasm: Vec<u8>,
    entry: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
    seed: [u8; 32],
    issued_at: u64,
    limits: Limits,
    config: SandboxConfig,
}

impl Case {
    fn new(wat: &str) -> Self {
        Self::bytes(wat::parse_str(wat).expect("test WAT is valid"))
    }

    fn bytes(wasm: Vec<u8>) -> Self {
        Self {
            wasm,
            entry: "_start",
            args: Vec::new(),
            env: Vec::new(),
            stdin: Vec::new(),
            seed: [0; 32],
            issued_at: 1_700_000_000,
            limits: LIMITS,
            config: SandboxConfig::default(),
        }
    }

    fn entry(mut self, entry: &'static str) -> Self {
        self.entry = entry;
        self
    }

    fn limits(mut self, change: impl FnOnce(&mut Limits)) -> Self {
        change(&mut self.limits);
        self
    }

    fn config(mut self, change: impl FnOnce(&mut SandboxConfig)) -> Self {
        change(&mut self.config);
        self
    }

    fn run(&self) -> RunReport {
        let program = Program {
            wasm: &self.wasm,
            entry: self.entry,
            args: &self.args,
            env: &self.env,
            stdin: &self.stdin,
            random_seed: self.seed,
            issued_at_secs: self.issued_at,
        };
        run(&program, &self.limits, &self.config)
    }
}

/// A report without its one nondeterministic field.
fn deterministic_part(report: &RunReport) -> RunReport {
    RunReport {
        duration: Duration::ZERO,
        ..report.clone()
    }
}

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

/// Counts to 100 000 in a loop, then prints "done".
const WORK: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "done")
  (func (export "_start") (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

#[test]
fn hello_world_is_ok() {
    let report = Case::new(HELLO).run();
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(report.exit_code, Some(0));
    assert_eq!(report.stdout, b"hello\n");
    assert_eq!(report.stderr, b"");
    assert_eq!(report.returns, None);
    assert_eq!(report.error, None);
    assert!(report.fuel_consumed > 0);
}

#[test]
fn proc_exit_sets_the_exit_code() {
    let exit = |code: u32| {
        Case::new(&format!(
            r#"(module
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (func (export "_start") (call $exit (i32.const {code})) unreachable))"#
        ))
        .run()
    };
    let report = exit(3);
    assert_eq!(
        (report.status, report.exit_code, report.error),
        (Status::Exit, Some(3), None)
    );
    let report = exit(0);
    assert_eq!((report.status, report.exit_code), (Status::Ok, Some(0)));
}

#[test]
fn traps() {
    let unreachable = Case::new(r#"(module (func (export "_start") unreachable))"#).run();
    let out_of_bounds = Case::new(
        r#"(module (memory 1) (func (export "_start") (drop (i32.load (i32.const 70000)))))"#,
    )
    .run();
    let recursion =
        Case::new(r#"(module (func $f (call $f)) (func (export "_start") (call $f)))"#).run();
    for (report, reason) in [
        (unreachable, "unreachable"),
        (out_of_bounds, "out of bounds memory access"),
        (recursion, "call stack exhausted"),
    ] {
        assert_eq!(report.status, Status::Trap, "{report:?}");
        assert_eq!(report.exit_code, None);
        assert!(
            report.error.as_deref().is_some_and(|e| e.contains(reason)),
            "{report:?}"
        );
    }
}

#[test]
fn a_loop_runs_out_of_fuel() {
    let report = Case::new(SPIN).limits(|l| l.fuel = 10_000).run();
    assert_eq!(report.status, Status::OutOfFuel);
    assert_eq!(report.exit_code, None);
    assert!(
        report.fuel_consumed <= 10_000 && report.fuel_consumed > 9_000,
        "{report:?}"
    );
}

#[test]
fn a_loop_times_out() {
    let report = Case::new(SPIN)
        .limits(|l| {
            l.fuel = u64::MAX;
            l.timeout_ms = 50;
        })
        .run();
    assert_eq!(report.status, Status::Timeout);
    assert_eq!(report.exit_code, None);
}

#[test]
fn memory_over_the_limit_cannot_be_instantiated() {
    let report = Case::new(r#"(module (memory 10) (func (export "_start")))"#)
        .limits(|l| l.memory_bytes = 65_536)
        .run();
    assert_eq!(report.status, Status::MemoryLimit, "{report:?}");
    assert_eq!(report.exit_code, None);
    // A memory64 minimum whose byte size overflows is over any limit, not a link error.
    let report =
        Case::new(r#"(module (memory i64 0x1000000000000) (func (export "_start")))"#).run();
    assert_eq!(report.status, Status::MemoryLimit, "{report:?}");
}

const GROW: &str = r#"(module (memory 1)
  (func (export "grow") (result i32) (memory.grow (i32.const 2)))
  (func (export "_start") (if (i32.lt_s (memory.grow (i32.const 2)) (i32.const 0)) (then unreachable))))"#;

#[test]
fn a_refused_grow_returns_minus_one() {
    let report = Case::new(GROW)
        .entry("grow")
        .limits(|l| l.memory_bytes = 2 * 65_536)
        .run();
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(report.returns, Some(vec![ReturnValue::I32(-1)]));
    let report = Case::new(GROW)
        .entry("grow")
        .limits(|l| l.memory_bytes = 3 * 65_536)
        .run();
    assert_eq!(report.returns, Some(vec![ReturnValue::I32(1)]));
    // The grow's own fuel (2 pages / 64) does not fit in a slice: it is retried after a refill,
    // and must not be counted twice against the limit.
    let report = Case::new(GROW)
        .entry("grow")
        .limits(|l| l.memory_bytes = 3 * 65_536)
        .config(|c| c.fuel_slice = 100)
        .run();
    assert_eq!(report.returns, Some(vec![ReturnValue::I32(1)]));
}

#[test]
fn a_refused_grow_then_a_trap_is_memory_limit() {
    let report = Case::new(GROW)
        .limits(|l| l.memory_bytes = 2 * 65_536)
        .run();
    assert_eq!(report.status, Status::MemoryLimit, "{report:?}");
}

#[test]
fn output_is_cut_at_the_limit_in_write_order() {
    let report = Case::new(HELLO).limits(|l| l.output_bytes = 4).run();
    assert_eq!(report.status, Status::OutputLimit);
    assert_eq!(report.stdout, b"hell");
    assert_eq!(report.exit_code, None);

    let report = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "\10\00\00\00\03\00\00\00\13\00\00\00\04\00\00\00")
          (data (i32.const 16) "abcdefg")
          (func (export "_start")
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
            (drop (call $w (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 32)))
            unreachable))"#,
    )
    .limits(|l| l.output_bytes = 5)
    .run();
    assert_eq!(report.status, Status::OutputLimit, "{report:?}");
    assert_eq!(
        (&report.stdout[..], &report.stderr[..]),
        (&b"abc"[..], &b"de"[..])
    );
}

#[test]
fn garbage_is_an_invalid_module() {
    for wasm in [
        b"not wasm at all".to_vec(),
        b"\0asm\x01\0\0\0\x01\xff".to_vec(),
        Vec::new(),
    ] {
        let report = Case::bytes(wasm).run();
        assert_eq!(report.status, Status::InvalidModule, "{report:?}");
        assert!(report.error.is_some());
        assert_eq!(report.fuel_consumed, 0);
    }
}

#[test]
fn link_errors() {
    let cases = [
        (
            r#"(module (import "env" "foo" (func)) (func (export "_start")))"#,
            "_start",
            "unknown import `env.foo`",
        ),
        (
            r#"(module (import "wasi_snapshot_preview1" "nope" (func)) (func (export "_start")))"#,
            "_start",
            "unknown import `wasi_snapshot_preview1.nope`",
        ),
        (
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32))) (func (export "_start")))"#,
            "_start",
            "wrong signature",
        ),
        (
            r#"(module (import "wasi_snapshot_preview1" "memory" (memory 1)) (func (export "_start")))"#,
            "_start",
            "unknown import",
        ),
        (
            r#"(module (func (export "_start")))"#,
            "main",
            "no export `main`",
        ),
        (
            r#"(module (func (export "f") (param i32)))"#,
            "f",
            "entry `f` takes parameters",
        ),
        (
            r#"(module (func (export "r") (result funcref) (ref.null func)))"#,
            "r",
            "non-numeric",
        ),
        (r#"(module (memory (export "m") 1))"#, "m", "not a function"),
    ];
    for (wat, entry, reason) in cases {
        let report = Case::new(wat).entry(entry).run();
        assert_eq!(report.status, Status::LinkError, "{wat}: {report:?}");
        assert!(
            report.error.as_deref().is_some_and(|e| e.contains(reason)),
            "{report:?}"
        );
        assert_eq!(report.fuel_consumed, 0);
    }
}

#[test]
fn a_named_entry_returns_its_results() {
    let report = Case::new(
        r#"(module (func (export "main") (result i32 i64 f32 f64)
          (i32.const -1) (i64.const -5000000000) (f32.const 1.5) (f64.const -0.25)))"#,
    )
    .entry("main")
    .run();
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(
        report.returns,
        Some(vec![
            ReturnValue::I32(-1),
            ReturnValue::I64(-5_000_000_000),
            ReturnValue::F32(1.5f32.to_bits()),
            ReturnValue::F64((-0.25f64).to_bits()),
        ])
    );
    let report = Case::new(r#"(module (func (export "nothing")))"#)
        .entry("nothing")
        .run();
    assert_eq!(report.returns, Some(Vec::new()));
}

/// Writes the string table of `args` or `environ` to stdout and returns the count.
fn table_program(kind: &str) -> String {
    format!(
        r#"(module
          (import "wasi_snapshot_preview1" "{kind}_sizes_get" (func $sizes (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "{kind}_get" (func $get (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "main") (result i32 i32)
            (drop (call $sizes (i32.const 0) (i32.const 4)))
            (drop (call $get (i32.const 1024) (i32.const 2048)))
            (i32.store (i32.const 8) (i32.const 2048))
            (i32.store (i32.const 12) (i32.load (i32.const 4)))
            (drop (call $w (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16)))
            (i32.load (i32.const 0))
            (i32.sub (i32.load (i32.const 1028)) (i32.load (i32.const 1024)))))"#
    )
}

#[test]
fn args_and_env_are_visible() {
    let mut case = Case::new(&table_program("args")).entry("main");
    case.args = vec!["a".into(), "b c".into()];
    let report = case.run();
    assert_eq!(report.stdout, b"program\0a\0b c\0", "{report:?}");
    assert_eq!(
        report.returns,
        Some(vec![ReturnValue::I32(3), ReturnValue::I32(8)])
    );

    let mut case = Case::new(&table_program("environ")).entry("main");
    case.env = vec![("A".into(), "1".into()), ("B".into(), "two".into())];
    let report = case.run();
    assert_eq!(report.stdout, b"A=1\0B=two\0", "{report:?}");
    assert_eq!(
        report.returns,
        Some(vec![ReturnValue::I32(2), ReturnValue::I32(4)])
    );
}

#[test]
fn stdin_reads_advance_to_end_of_file() {
    let mut case = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (loop $l
              (i32.store (i32.const 0) (i32.const 100))
              (i32.store (i32.const 4) (i32.const 4))
              (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
              (if (i32.load (i32.const 8)) (then
                (i32.store (i32.const 16) (i32.const 100))
                (i32.store (i32.const 20) (i32.load (i32.const 8)))
                (drop (call $w (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
                (br $l))))))"#,
    );
    case.stdin = b"stdin is ten+".to_vec();
    let report = case.run();
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(report.stdout, b"stdin is ten+");
}

#[test]
fn clocks_advance_with_work() {
    let report = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "main") (result i64 i64 i64) (local $i i32)
            (drop (call $now (i32.const 1) (i64.const 0) (i32.const 0)))
            (loop $l
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
            (drop (call $now (i32.const 1) (i64.const 0) (i32.const 8)))
            (drop (call $now (i32.const 0) (i64.const 0) (i32.const 16)))
            (i64.load (i32.const 0)) (i64.load (i32.const 8)) (i64.load (i32.const 16))))"#,
    )
    .entry("main")
    .run();
    let Some(
        [
            ReturnValue::I64(before),
            ReturnValue::I64(after),
            ReturnValue::I64(realtime),
        ],
    ) = report.returns.as_deref()
    else {
        panic!("{report:?}");
    };
    assert!(*after >= before + 1000, "{before} → {after}");
    let since_epoch = realtime - 1_700_000_000 * 1_000_000_000;
    assert!(since_epoch >= *after && since_epoch as u64 <= report.fuel_consumed);
}

const RANDOM: &str = r#"(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $random (i32.const 100) (i32.const 16)))
    (drop (call $random (i32.const 116) (i32.const 48)))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 64))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

#[test]
fn random_get_is_the_rfc_8439_keystream() {
    // RFC 8439 Appendix A.1, test vector #1: zero key, zero nonce, block counter 0.
    let report = Case::new(RANDOM).run();
    assert_eq!(
        report.stdout[..16],
        [
            0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86,
            0xbd, 0x28
        ]
    );

    let mut case = Case::new(RANDOM);
    case.seed = std::array::from_fn(|i| i as u8 * 7 + 1);
    let mut expected = [0u8; 64];
    ChaCha20::new(&case.seed.into(), &[0; 12].into()).apply_keystream(&mut expected);
    assert_eq!(case.run().stdout, expected);
}

/// Uses everything outside input the guest can see: the clocks, randomness, and output.
const OBSERVER: &str = r#"(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i32) (local $round i32)
    (loop $rounds
      (loop $l
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.mul (local.get $round) (i32.const 997)))))
      (drop (call $now (i32.const 1) (i64.const 0) (i32.const 100)))
      (drop (call $now (i32.const 0) (i64.const 0) (i32.const 108)))
      (drop (call $random (i32.const 116) (i32.const 12)))
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 28))
      (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $round (i32.add (local.get $round) (i32.const 1)))
      (br_if $rounds (i32.lt_u (local.get $round) (i32.const 20))))))"#;

#[test]
fn runs_are_deterministic_whatever_the_slice_size() {
    let run = |slice: u64| {
        let report = Case::new(OBSERVER).config(|c| c.fuel_slice = slice).run();
        assert_eq!(report.status, Status::Ok, "{report:?}");
        deterministic_part(&report)
    };
    let reference = run(1_000_000);
    assert_eq!(reference.stdout.len(), 20 * 28);
    assert_eq!(run(1_000_000), reference);
    assert_eq!(run(1_000), reference);
    assert_eq!(run(1), reference);
}

#[test]
fn fuel_consumed_does_not_depend_on_the_slice_size() {
    for fuel in [LIMITS.fuel, 123_457] {
        let run = |slice: u64| {
            deterministic_part(
                &Case::new(WORK)
                    .limits(|l| l.fuel = fuel)
                    .config(|c| c.fuel_slice = slice)
                    .run(),
            )
        };
        let reference = run(1_000_000);
        assert_eq!(run(1_000), reference);
        assert_eq!(run(7), reference);
    }
    let ok = Case::new(WORK).run();
    assert_eq!((ok.status, &ok.stdout[..]), (Status::Ok, &b"done"[..]));
    let starved = Case::new(WORK).limits(|l| l.fuel = 123_457).run();
    assert_eq!(
        (starved.status, &starved.stdout[..]),
        (Status::OutOfFuel, &b""[..])
    );
}

const START_SPINS: &str =
    r#"(module (start $s) (func $s (loop $l (br $l))) (func (export "_start")))"#;

#[test]
fn the_start_function_is_capped() {
    let report = Case::new(START_SPINS)
        .config(|c| c.start_fuel = 10_000)
        .run();
    assert_eq!(report.status, Status::Trap, "{report:?}");
    assert_eq!(
        report.error.as_deref(),
        Some("start function exceeded its fuel cap of 10000")
    );
    assert!(report.fuel_consumed <= 10_000);

    let report = Case::new(START_SPINS)
        .limits(|l| l.fuel = 5_000)
        .config(|c| c.start_fuel = 10_000)
        .run();
    assert_eq!(report.status, Status::OutOfFuel, "{report:?}");
}

#[test]
fn a_start_function_can_exit_and_write() {
    let report = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "\10\00\00\00\02\00\00\00")
          (data (i32.const 16) "hi")
          (start $s)
          (func $s (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8))) (call $exit (i32.const 7)))
          (func (export "_start") unreachable))"#,
    )
    .run();
    assert_eq!(
        (report.status, report.exit_code, &report.stderr[..]),
        (Status::Exit, Some(7), &b"hi"[..])
    );
}

#[test]
fn every_preview1_function_links_and_the_rest_are_enosys() {
    let types = |types: &[ValType]| {
        types
            .iter()
            .map(|ty| if *ty == ValType::I64 { " i64" } else { " i32" })
            .collect::<String>()
    };
    let imports: String = wasi::PREVIEW1
        .iter()
        .map(|(name, params, results)| {
            format!(
                r#"(import "wasi_snapshot_preview1" "{name}" (func ${name} (param{}) (result{})))"#,
                types(params),
                types(results)
            )
        })
        .collect();
    let report = Case::new(&format!(
        r#"(module {imports} (memory (export "memory") 1)
          (func (export "main") (result i32 i32 i32)
            (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
              (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0))
            (call $fd_sync (i32.const 3))
            (call $sched_yield)))"#
    ))
    .entry("main")
    .run();
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(
        report.returns,
        Some(vec![
            ReturnValue::I32(52),
            ReturnValue::I32(52),
            ReturnValue::I32(0)
        ])
    );
}

#[test]
fn fd_and_poll_errnos() {
    let report = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
          (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
          (import "wasi_snapshot_preview1" "clock_res_get" (func $res (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "\00\00\01\00\05\00\00\00")
          (func (export "main") (result i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)
            (call $write (i32.const 5) (i32.const 0) (i32.const 1) (i32.const 8))
            (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
            (call $read (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))
            (call $write (i32.const 1) (i32.const 0) (i32.const 1025) (i32.const 8))
            (call $prestat (i32.const 3) (i32.const 16))
            (call $fdstat (i32.const 1) (i32.const 16))
            (i32.load8_u (i32.const 16))
            (call $fdstat (i32.const 3) (i32.const 16))
            (call $seek (i32.const 1) (i64.const 0) (i32.const 0) (i32.const 16))
            (call $close (i32.const 2))
            (call $close (i32.const 9))
            (call $now (i32.const 2) (i64.const 0) (i32.const 16))
            (call $res (i32.const 1) (i32.const 65535))
            ;; one clock subscription (userdata 42) and one for fd 0 (userdata 43)
            (i64.store (i32.const 200) (i64.const 42))
            (i64.store (i32.const 248) (i64.const 43))
            (i32.store8 (i32.const 256) (i32.const 1))
            (call $poll (i32.const 200) (i32.const 400) (i32.const 2) (i32.const 500))
            (i32.add (i32.load (i32.const 500)) (i32.mul (i32.const 10) (i32.wrap_i64 (i64.load (i32.const 400)))))
            (i32.add (i32.load16_u (i32.const 408)) (i32.mul (i32.const 1000) (i32.load16_u (i32.const 440))))))"#,
    )
    .entry("main")
    .run();
    let errnos: Vec<i32> = report
        .returns
        .unwrap_or_default()
        .into_iter()
        .map(|value| match value {
            ReturnValue::I32(value) => value,
            other => panic!("{other:?}"),
        })
        .collect();
    #[rustfmt::skip]
    let expected = vec![
        8,       // fd_write to fd 5: EBADF
        21,      // fd_write from an iovec past the end of memory: EFAULT
        8,       // fd_read from fd 1: EBADF
        28,      // more than IOV_MAX iovecs: EINVAL
        8,       // fd_prestat_get: EBADF, no preopens
        0, 2,    // fd_fdstat_get(1): a character device
        8,       // fd_fdstat_get(3): EBADF
        70,      // fd_seek(1): ESPIPE
        0, 8,    // fd_close(2) succeeds, fd_close(9) is EBADF
        28,      // the CPU-time clocks: EINVAL
        21,      // clock_res_get writing past the end of memory: EFAULT
        0, 422,  // poll_oneoff: two events, the first for userdata 42
        0,       // the clock (due: relative timeout 0) and fd 0 events have no error
    ];
    assert_eq!(errnos, expected);
    assert_eq!(report.stdout, b"");
}

#[test]
fn odd_inputs_do_not_panic() {
    let hello = wat::parse_str(HELLO).expect("valid");
    for index in 0..hello.len() {
        for byte in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut wasm = hello.clone();
            wasm[index] = byte;
            let report = Case::bytes(wasm)
                .limits(|l| {
                    l.fuel = 100_000;
                    l.output_bytes = 64;
                })
                .run();
            assert!(report.stdout.len() + report.stderr.len() <= 64);
        }
    }
    for config in [
        SandboxConfig {
            max_stack_height: 0,
            max_recursion_depth: 0,
            fuel_slice: 0,
            start_fuel: 0,
            max_table_elements: 0,
            max_module_bytes: 0,
        },
        SandboxConfig {
            max_stack_height: usize::MAX,
            max_recursion_depth: usize::MAX,
            fuel_slice: u64::MAX,
            start_fuel: u64::MAX,
            max_table_elements: u32::MAX,
            max_module_bytes: usize::MAX,
        },
    ] {
        for limits in [
            Limits {
                fuel: 0,
                memory_bytes: 0,
                output_bytes: 0,
                timeout_ms: 0,
            },
            Limits {
                fuel: u64::MAX,
                memory_bytes: u64::MAX,
                output_bytes: u64::MAX,
                timeout_ms: u64::MAX,
            },
        ] {
            let report = Case::new(HELLO)
                .config(|c| *c = config)
                .limits(|l| *l = limits)
                .run();
            assert_ne!(report.status, Status::BadPayload);
        }
    }
}

#[test]
fn zero_limits_end_the_run_early() {
    let report = Case::new(HELLO).limits(|l| l.timeout_ms = 0).run();
    assert_eq!(report.status, Status::Timeout);
    let report = Case::new(HELLO).limits(|l| l.fuel = 0).run();
    assert_eq!(
        (report.status, report.fuel_consumed),
        (Status::OutOfFuel, 0)
    );
    let report = Case::new(HELLO).limits(|l| l.memory_bytes = 0).run();
    assert_eq!(report.status, Status::MemoryLimit);
    let report = Case::new(HELLO).limits(|l| l.output_bytes = 0).run();
    assert_eq!(
        (report.status, &report.stdout[..]),
        (Status::OutputLimit, &b""[..])
    );
}

#[test]
fn a_table_over_the_cap_is_an_invalid_module() {
    let report = Case::new(r#"(module (table 11 funcref) (func (export "_start")))"#)
        .config(|c| c.max_table_elements = 10)
        .run();
    assert_eq!(report.status, Status::InvalidModule, "{report:?}");
}

#[test]
fn guest_chosen_names_are_quoted_short() {
    let long = "x".repeat(1000);
    let quoted = quoted(&format!("{long}\n"));
    assert!(
        quoted.chars().count() < 70 && quoted.ends_with("…`"),
        "{quoted}"
    );
    assert_eq!(super::quoted("a\nb"), "`a\\nb`");
}

/// Spins on `call` forever, with 8 MiB of memory.
fn call_loop(call: &str) -> String {
    format!(
        r#"(module
          (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
          (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
          (memory (export "memory") 128)
          (func (export "_start") (loop $l {call} (br $l))))"#
    )
}

const RANDOM_64K: &str = "(drop (call $random (i32.const 0) (i32.const 65536)))";

#[test]
fn host_work_is_paid_in_fuel_and_cannot_outrun_the_deadline() {
    let report = Case::new(&call_loop(RANDOM_64K))
        .limits(|l| {
            l.fuel = u64::MAX;
            l.timeout_ms = 50;
        })
        .run();
    assert_eq!(report.status, Status::Timeout);
    let report = Case::new(&call_loop(RANDOM_64K))
        .limits(|l| l.fuel = 100_000)
        .run();
    assert_eq!(report.status, Status::OutOfFuel);
    // 24 calls of 4 096 fuel each, and a little for the loop.
    assert!(report.fuel_consumed / 4_096 == 24, "{report:?}");
}

#[test]
fn host_calls_in_the_start_function_respect_its_cap() {
    let report = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
          (memory (export "memory") 1)
          (start $s)
          (func $s (drop (call $random (i32.const 0) (i32.const 65536))))
          (func (export "_start")))"#,
    )
    .config(|c| c.start_fuel = 1_000)
    .run();
    assert_eq!(report.status, Status::Trap, "{report:?}");
    assert!(report.fuel_consumed < 1_000);
}

/// Calls preview-1 function `name` once with `args`, which the program loads from memory, so
/// that every call of one function runs the same instructions whatever its arguments. Returns
/// the errno, the u64 at 1024 (where the calls below write their results) and the report.
/// An iovec at 512 points at 4 bytes at 600.
fn call_once(name: &str, args: &[u64], stdin: &[u8]) -> (i32, i64, RunReport) {
    let (_, params, _) = wasi::PREVIEW1
        .iter()
        .find(|(known, _, _)| *known == name)
        .expect("a preview-1 function");
    assert_eq!(params.len(), args.len(), "{name}");
    let mut types = String::new();
    let mut loads = String::new();
    for (index, ty) in params.iter().enumerate() {
        let ty = if *ty == ValType::I64 { "i64" } else { "i32" };
        types.push_str(&format!(" {ty}"));
        loads.push_str(&format!(" ({ty}.load (i32.const {}))", 8 * index));
    }
    let data: String = args
        .iter()
        .flat_map(|arg| arg.to_le_bytes())
        .map(|byte| format!("\\{byte:02x}"))
        .collect();
    let mut case = Case::new(&format!(
        r#"(module
          (import "wasi_snapshot_preview1" "{name}" (func $f (param{types}) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "{data}")
          (data (i32.const 512) "\58\02\00\00\04\00\00\00")
          (func (export "main") (result i32 i64)
            (call $f{loads})
            (i64.load (i32.const 1024))))"#
    ))
    .entry("main");
    case.stdin = stdin.to_vec();
    let report = case.run();
    match report.returns.as_deref() {
        Some(&[ReturnValue::I32(errno), ReturnValue::I64(at_1024)]) => (errno, at_1024, report),
        _ => panic!("{name} {args:?}: {report:?}"),
    }
}

/// Arguments a call must refuse, and the errno it refuses them with.
type Invalid = (&'static [u64], i32);

#[test]
fn host_functions_check_their_arguments_before_charging() {
    const END: u64 = 65_536;
    const MAX: u64 = u32::MAX as u64;
    // (function, valid arguments, bytes charged for them, invalid arguments and their errno)
    #[rustfmt::skip]
    let cases: &[(&str, &[u64], u64, &[Invalid])] = &[
        ("random_get", &[1024, 4096], 4096, &[
            (&[END - 100, 4096], 21),
            (&[1024, MAX], 21),
            (&[MAX, 1], 21),
        ]),
        ("clock_time_get", &[1, 0, 1024], 8, &[(&[2, 0, 1024], 28), (&[1, 0, END - 7], 21)]),
        ("clock_res_get", &[0, 1024], 8, &[(&[3, 1024], 28), (&[0, END - 4], 21)]),
        ("fd_fdstat_get", &[1, 1024], 24, &[(&[1, END - 23], 21)]),
        ("args_sizes_get", &[1024, 1028], 8, &[(&[1024, END - 3], 21), (&[MAX, 1028], 21)]),
        ("environ_sizes_get", &[1024, 1028], 8, &[(&[END, 1028], 21)]),
        // argv is "program": 8 bytes and a 4-byte pointer.
        ("args_get", &[1024, 2048], 12, &[(&[1024, END - 7], 21), (&[END - 3, 2048], 21)]),
        ("fd_write", &[1, 512, 1, 1024], 12, &[
            (&[1, 512, 1, MAX], 21),
            (&[1, END - 4, 1, 1024], 21),
            (&[1, 512, 1025, 1024], 28),
        ]),
        // stdin "abc": 8 bytes of iovec and 3 read.
        ("fd_read", &[0, 512, 1, 1024], 11, &[(&[0, 512, 1, END - 2], 21)]),
        ("poll_oneoff", &[2048, 4096, 1, 1024], 80, &[
            (&[2048, 4096, MAX, 1024], 28),
            (&[2048, 4096, 0, 1024], 28),
            (&[2048, 4096, 10_000_000, 1024], 21),
            (&[2048, END - 31, 1, 1024], 21),
            (&[2048, 4096, 1, END], 21),
        ]),
    ];
    for &(name, valid, charged, invalid) in cases {
        let (errno, _, ok) = call_once(name, valid, b"abc");
        assert_eq!(
            (ok.status, errno),
            (Status::Ok, 0),
            "{name} {valid:?}: {ok:?}"
        );
        for &(args, expected) in invalid {
            let (errno, written, report) = call_once(name, args, b"abc");
            assert_eq!(errno, expected, "{name} {args:?}: {report:?}");
            // Nothing paid for the bytes, and nothing done: no output, no result written.
            assert_eq!(
                report.fuel_consumed + charged.div_ceil(16),
                ok.fuel_consumed,
                "{name} {args:?}"
            );
            assert_eq!(
                (written, &report.stdout[..]),
                (0, &b""[..]),
                "{name} {args:?}"
            );
        }
    }
}

#[test]
fn a_failed_read_leaves_stdin_unread() {
    let mut case = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "\64\00\00\00\08\00\00\00\c8\00\00\00\08\00\00\00")
          (func (export "main") (result i32 i32 i32 i64)
            (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 65535))
            (call $r (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 16))
            (i32.load (i32.const 16))
            (i64.load (i32.const 200))))"#,
    )
    .entry("main");
    case.stdin = b"12345678".to_vec();
    assert_eq!(
        case.run().returns,
        Some(vec![
            ReturnValue::I32(21),
            ReturnValue::I32(0),
            ReturnValue::I32(8),
            ReturnValue::I64(i64::from_le_bytes(*b"12345678"))
        ])
    );
}

#[test]
fn there_are_no_sockets() {
    let report = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "sock_recv" (func $recv (param i32 i32 i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "sock_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "sock_shutdown" (func $shutdown (param i32 i32) (result i32)))
          (func (export "main") (result i32 i32 i32 i32 i32 i32 i32 i32 i32)
            (call $shutdown (i32.const 0) (i32.const 3))
            (call $shutdown (i32.const 1) (i32.const 1))
            (call $shutdown (i32.const 2) (i32.const 2))
            (call $shutdown (i32.const 3) (i32.const 3))
            (call $shutdown (i32.const -1) (i32.const 3))
            (call $accept (i32.const 1) (i32.const 0) (i32.const 0))
            (call $accept (i32.const 4) (i32.const 0) (i32.const 0))
            (call $recv (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
            (call $send (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))"#,
    )
    .entry("main")
    .run();
    let errnos = [57, 57, 57, 8, 8, 57, 8, 57, 8].map(ReturnValue::I32);
    assert_eq!(report.returns.as_deref(), Some(&errnos[..]), "{report:?}");
}

/// A clock subscription's 48 bytes, as a WAT data string.
fn clock_sub(userdata: u64, id: u32, timeout: u64, flags: u16) -> String {
    let mut sub = [0u8; 48];
    sub[..8].copy_from_slice(&userdata.to_le_bytes());
    sub[16..20].copy_from_slice(&id.to_le_bytes());
    sub[24..32].copy_from_slice(&timeout.to_le_bytes());
    sub[40..42].copy_from_slice(&flags.to_le_bytes());
    sub.iter().map(|byte| format!("\\{byte:02x}")).collect()
}

/// An fd_read (tag 1) or fd_write (tag 2) subscription's 48 bytes, as a WAT data string.
fn fd_sub(userdata: u64, tag: u8, fd: u32) -> String {
    let mut sub = [0u8; 48];
    sub[..8].copy_from_slice(&userdata.to_le_bytes());
    sub[8] = tag;
    sub[16..20].copy_from_slice(&fd.to_le_bytes());
    sub.iter().map(|byte| format!("\\{byte:02x}")).collect()
}

#[test]
fn poll_reports_the_standard_streams_ready() {
    const CLOCK: u64 = 0x0123_45678;
    const STDIN: u64 = 0x8765_43210;
    const MS_200: u64 = 200_000_000;
    const ABSTIME: u16 = 1;
    let polls = [
        // wasi-testsuite poll_oneoff_stdio, stdin: a clock 200 ms away and stdin.
        vec![clock_sub(CLOCK, 1, MS_200, 0), fd_sub(STDIN, 1, 0)],
        // … stdout and stderr: the clock must not fire ahead of them.
        vec![
            fd_sub(1, 2, 1),
            fd_sub(2, 2, 2),
            clock_sub(CLOCK, 1, MS_200, 0),
        ],
        // Due clocks fire beside fd events, others do not; wrong directions and fds are EBADF.
        vec![
            clock_sub(7, 0, 0, 0),
            fd_sub(8, 1, 1),
            fd_sub(9, 2, 0),
            fd_sub(10, 1, 5),
            clock_sub(11, 1, 0, ABSTIME),
            clock_sub(12, 1, u64::MAX, ABSTIME),
            clock_sub(13, 2, 0, 0),
        ],
        // Clocks alone: the poll sleeps, and every clock fires (virtual time stands still).
        vec![
            clock_sub(20, 1, MS_200, 0),
            clock_sub(21, 0, u64::MAX, ABSTIME),
        ],
    ];
    let data: String = polls
        .iter()
        .enumerate()
        .map(|(i, subs)| {
            format!(
                "(data (i32.const {}) \"{}\")",
                0x100 + 0x400 * i,
                subs.concat()
            )
        })
        .collect();
    let calls: String = polls
        .iter()
        .enumerate()
        .map(|(i, subs)| {
            format!(
                "(i32.store (i32.const {}) (call $poll (i32.const {}) (i32.const {}) (i32.const {}) (i32.const {})))",
                0x1010 + 4 * i,
                0x100 + 0x400 * i,
                0x2000 + 0x400 * i,
                subs.len(),
                0x1000 + 4 * i
            )
        })
        .collect();
    let mut case = Case::new(&format!(
        r#"(module
          (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          {data}
          (data (i32.const 0x20) "\00\10\00\00\00\20\00\00")
          (func (export "_start")
            {calls}
            (drop (call $w (i32.const 1) (i32.const 0x20) (i32.const 1) (i32.const 0x28)))))"#
    ));
    case.stdin = b"hello".to_vec();
    let report = case.run();
    assert_eq!(report.status, Status::Ok, "{report:?}");
    let dump = &report.stdout;
    let u32_at = |at: usize| u32::from_le_bytes(dump[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(dump[at..at + 8].try_into().unwrap());
    let events = |i: usize| {
        (0..u32_at(4 * i) as usize)
            .map(|k| {
                let at = 0x1000 + 0x400 * i + 32 * k;
                let error = u16::from_le_bytes([dump[at + 8], dump[at + 9]]);
                // (userdata, error, type, nbytes, flags)
                (
                    u64_at(at),
                    error,
                    dump[at + 10],
                    u64_at(at + 16),
                    dump[at + 24],
                )
            })
            .collect::<Vec<_>>()
    };
    let errnos: Vec<u32> = (0..4).map(|i| u32_at(0x10 + 4 * i)).collect();
    assert_eq!(errnos, [0, 0, 0, 0]);
    let room = LIMITS.output_bytes;
    assert_eq!(events(0), [(STDIN, 0, 1, 5, 0)]);
    assert_eq!(events(1), [(1, 0, 2, room, 0), (2, 0, 2, room, 0)]);
    assert_eq!(
        events(2),
        [
            (7, 0, 0, 0, 0),
            (8, 8, 1, 0, 0),
            (9, 8, 2, 0, 0),
            (10, 8, 1, 0, 0),
            (11, 0, 0, 0, 0),
            (13, 28, 0, 0, 0),
        ]
    );
    assert_eq!(events(3), [(20, 0, 0, 0, 0), (21, 0, 0, 0, 0)]);
}

/// The entry's results, for a run that must end `ok`.
fn returns(case: Case) -> Vec<ReturnValue> {
    let report = case.run();
    assert_eq!(report.status, Status::Ok, "{report:?}");
    report.returns.expect("a named entry")
}

#[test]
fn simd_runs_and_its_nans_are_canonical() {
    // Float lanes from memory (computed when the program runs) and from constants (which wasmi
    // may fold when it translates), with NaNs of either sign and with payloads in the inputs.
    let case = Case::new(
        r#"(module
          (memory 1)
          (data (i32.const 0) "\01\00\a0\7f\01\00\c0\ff\00\00\80\bf\00\00\00\00")
          (data (i32.const 16) "\00\00\80\3f\00\00\80\3f\00\00\00\00\00\00\00\00")
          (func (export "main") (result i32 i32 i32 i32 i32 i32 i32 i32 i64 i64)
            (local $a v128) (local $b v128)
            (local.set $a (v128.load (i32.const 0)))
            (local.set $b (v128.load (i32.const 16)))
            ;; i32x4.add: [1, 2, 3, 4] + [10, 20, 30, -1]
            (i32x4.extract_lane 0 (i32x4.add (v128.const i32x4 1 2 3 4) (v128.const i32x4 10 20 30 -1)))
            (i32x4.extract_lane 3 (i32x4.add (v128.const i32x4 1 2 3 4) (v128.const i32x4 10 20 30 -1)))
            ;; sNaN 0x7fa00001 + 1, -NaN 0xffc00001 + 1, sqrt(-1), 0 / 0
            (i32.reinterpret_f32 (f32x4.extract_lane 0 (f32x4.add (local.get $a) (local.get $b))))
            (i32.reinterpret_f32 (f32x4.extract_lane 1 (f32x4.add (local.get $a) (local.get $b))))
            (i32.reinterpret_f32 (f32x4.extract_lane 2 (f32x4.sqrt (local.get $a))))
            (i32.reinterpret_f32 (f32x4.extract_lane 3 (f32x4.div (local.get $a) (local.get $a))))
            ;; min with a NaN lane, and a constant 0 / 0
            (i32.reinterpret_f32 (f32x4.extract_lane 1 (f32x4.min (local.get $a) (local.get $b))))
            (i32.reinterpret_f32 (f32x4.extract_lane 0
              (f32x4.div (v128.const f32x4 0 0 0 0) (v128.const f32x4 0 0 0 0))))
            ;; the f32 sNaN promoted, and -1 * sNaN in f64 lanes
            (i64.reinterpret_f64 (f64x2.extract_lane 0 (f64x2.promote_low_f32x4 (local.get $a))))
            (i64.reinterpret_f64 (f64x2.extract_lane 1
              (f64x2.mul (v128.const f64x2 1 -1) (v128.const i64x2 0 0xfff4000000000001))))))"#,
    )
    .entry("main");
    const CANONICAL_F32: i32 = 0x7fc0_0000;
    const CANONICAL_F64: i64 = 0x7ff8_0000_0000_0000;
    let mut expected = vec![ReturnValue::I32(11), ReturnValue::I32(3)];
    expected.extend([ReturnValue::I32(CANONICAL_F32); 6]);
    expected.extend([ReturnValue::I64(CANONICAL_F64); 2]);
    assert_eq!(returns(case), expected);
}

#[test]
fn memory64_runs_under_the_memory_limit() {
    const PROGRAM: &str = r#"(module
      (memory i64 1)
      (func (export "main") (result i64 i64 i64 i64)
        (i64.store (i64.const 65528) (i64.const 0x0102030405060708))
        (memory.grow (i64.const 1))
        (i64.store (i64.const 131064) (i64.const -2))
        (i64.add (i64.load (i64.const 65528)) (i64.load (i64.const 131064)))
        (memory.size)
        (memory.grow (i64.const 0x100000000)))
      (func (export "beyond_4_gib") (result i64)
        (i64.load (i64.const 0x100000000)))
      (func (export "grow_or_trap")
        (if (i64.lt_s (memory.grow (i64.const 2)) (i64.const 0)) (then unreachable))))"#;
    let case = Case::new(PROGRAM)
        .entry("main")
        .limits(|l| l.memory_bytes = 2 * 65_536);
    // 1 page, grown to 2, refused 2^32 more pages (2^48 bytes) by the limit: -1.
    assert_eq!(
        returns(case),
        [1, 0x0102_0304_0506_0706, 2, -1].map(ReturnValue::I64)
    );
    // 64-bit addresses do not wrap at 4 GiB.
    let report = Case::new(PROGRAM).entry("beyond_4_gib").run();
    assert_eq!(report.status, Status::Trap, "{report:?}");
    // A refused grow followed by a trap, and a memory too large to instantiate.
    let report = Case::new(PROGRAM)
        .entry("grow_or_trap")
        .limits(|l| l.memory_bytes = 2 * 65_536)
        .run();
    assert_eq!(report.status, Status::MemoryLimit, "{report:?}");
    let report = Case::new(r#"(module (memory i64 3) (func (export "_start")))"#)
        .limits(|l| l.memory_bytes = 2 * 65_536)
        .run();
    assert_eq!(report.status, Status::MemoryLimit, "{report:?}");
}

#[test]
fn wasi_works_with_a_64_bit_memory() {
    let report = Case::new(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") i64 1)
          (data (i64.const 0) "\10\00\00\00\03\00\00\00")
          (data (i64.const 16) "m64")
          (func (export "_start") (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .run();
    assert_eq!(
        (report.status, &report.stdout[..]),
        (Status::Ok, &b"m64"[..])
    );
}

#[test]
fn tail_calls_and_extended_constants_run() {
    // 100 000 calls deep is far past `max_recursion_depth`, unless they are tail calls.
    let case = Case::new(
        r#"(module
          (global $g i32 (i32.add (i32.const 40) (i32.mul (i32.const 1) (i32.const 2))))
          (func $count (param $n i32) (param $acc i64) (result i64)
            (if (result i64) (i32.eqz (local.get $n))
              (then (local.get $acc))
              (else (return_call $count (i32.sub (local.get $n) (i32.const 1))
                (i64.add (local.get $acc) (i64.const 1))))))
          (func (export "main") (result i64 i32)
            (call $count (i32.const 100000) (i64.const 0))
            (global.get $g)))"#,
    )
    .entry("main");
    assert_eq!(
        returns(case),
        [ReturnValue::I64(100_000), ReturnValue::I32(42)]
    );
}

#[test]
fn non_standard_and_nondeterministic_features_are_invalid() {
    for wat in [
        // relaxed SIMD: its results may differ between implementations
        r#"(module (func (export "_start") (drop (f32x4.relaxed_madd
          (v128.const f32x4 1 1 1 1) (v128.const f32x4 1 1 1 1) (v128.const f32x4 1 1 1 1)))))"#,
        r#"(module (func (export "_start") (drop (i8x16.relaxed_swizzle
          (v128.const i64x2 0 0) (v128.const i64x2 0 0)))))"#,
        // wide arithmetic and custom page sizes: proposals, not standard
        r#"(module (func (export "_start") (drop (drop (i64.add128
          (i64.const 1) (i64.const 0) (i64.const 1) (i64.const 0))))))"#,
        r#"(module (memory 1 (pagesize 1)) (func (export "_start")))"#,
        // multi-memory is standard, but the strict limits allow a single memory
        r#"(module (memory 1) (memory 1) (func (export "_start")))"#,
    ] {
        let report = Case::new(wat).run();
        assert_eq!(report.status, Status::InvalidModule, "{wat}: {report:?}");
    }
}
