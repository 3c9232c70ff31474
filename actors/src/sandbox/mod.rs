//! The sandbox: runs one WebAssembly program, a slice at a time, under hard limits (fuel,
//! memory, output, worker time) and reports how it ended, as the status table of `docs/PROTOCOL.md` §7 defines it.
//!
//! # How a run goes
//!
//! 1. A fresh wasmi [`Engine`] per run: recursion and stack limits are per engine, and a
//!    long-lived engine would keep every module's code. It consumes fuel, translates lazily but
//!    validates eagerly (`CompilationMode::Lazy` is documented as nondeterministic), charges no
//!    fuel for translation or validation (so fuel never depends on when a function was first
//!    translated, or on slicing), and enforces `EnforcedLimits::strict()`, so a module that is
//!    over the implementation's limits is `invalid_module`. It accepts every standard
//!    WebAssembly feature that wasmi runs deterministically, fixed-width SIMD and memory64
//!    included, and not relaxed SIMD (whose results may differ between implementations) nor
//!    the non-standard proposals; NaN results, SIMD lanes included, are canonicalized (wasmi's
//!    `deterministic` feature), so the float operations are deterministic too; [`ENGINE`] says
//!    so.
//! 2. Links: every import must be a preview-1 function with its real signature ([`wasi`]), and
//!    the entry must be an exported function without parameters whose results are numbers;
//!    otherwise `link_error`, before any guest code runs.
//! 3. Instantiation, which runs the module's start function, if any. wasmi runs it inside
//!    instantiation with a plain, non-resumable call, so it cannot be sliced and no time-limit
//!    check happens while it runs. It is bounded by fuel instead: instantiation gets
//!    min(unspent budget, `start_fuel`). If it runs out, the run is `out_of_fuel` when the
//!    budget was the smaller of the two, and otherwise a `trap` ("start function exceeded its
//!    fuel cap"): the server's cap, not the client's budget, stopped it. `start_fuel` therefore
//!    also bounds how long a start function can hold the thread past the time limit.
//! 4. The entry, in fuel slices, one per [`Run::step`]: a resumable call gets
//!    min(unspent budget, `fuel_slice`) fuel; when it runs out the run pauses and goes back to
//!    the run queue, and its next step checks the time limit and resumes the call with
//!    min(unspent budget, max(`fuel_slice`, fuel the next instruction needs)) more. If the
//!    budget cannot cover the next instruction the run is `out_of_fuel`. An instruction either
//!    gets all the fuel it needs or does not run, so the fuel consumed, and everything the guest
//!    can see (the clocks are fuel), is the same whatever the slice size. Host functions pay
//!    for the bytes they move from the same tank ([`wasi`]); one that finds it short tops it
//!    up by exactly what is missing, so the guest pauses right after it ([`fuel`]).
//!
//! `timeout_ms` counts the time the run's steps hold a worker, compilation included; the time
//! between steps, waiting for a worker, does not count.
//!
//! # Build requirement
//!
//! wasmi must be built with its `auto-dispatch` (or `portable-dispatch`) feature, which
//! `default-features = false` drops. Without either, wasmi 2.0 always dispatches instructions
//! by tail calls, and those only stop growing the native stack when LLVM turns them into jumps
//! (opt-level 2 and up): in a debug build a guest that runs a few thousand instructions without
//! returning overflows the thread's stack and aborts the whole process.
//!
//! # Memory
//!
//! `memory_bytes` bounds all linear memory together, counted by our own resource limiter
//! ([`limiter`]), which also records that it refused something: a memory that cannot be
//! instantiated within the limit is `memory_limit`, and a `memory.grow` past it returns -1 to
//! the guest, as the spec says; if the run then ends in a trap or a non-zero exit, that is
//! `memory_limit` too (§7), and a run that copes with the -1 and succeeds is `ok`.
//!
//! # Output and status
//!
//! stdout and stderr share `output_bytes`: a write that passes the cap keeps what fits and
//! stops the program (`output_limit`). A run ends in exactly one way, so §7's order reduces to
//! a mapping from that way to a status; see [`End`].

mod fuel;
mod guest;
mod host;
mod limiter;
mod wasi;

#[cfg(test)]
mod tests;

use std::time::Duration;

use wasm_hypervisor_protocol::payload::{Limits, ReturnValue, Status};
use wasmi::errors::{ErrorKind, InstantiationError, MemoryError};
use wasmi::{
    CompilationMode, Config, CustomFuelCosts, EnforcedLimits, Engine, Error, ExternType, Instance,
    Linker, Module, ResumableCall, ResumableCallOutOfFuel, Store, TrapCode, Val, ValType,
};

use self::fuel::{Meter, WorkerClock};
use self::host::{Host, Stop};
use self::limiter::Limiter;

/// The engine, the configuration that fuel accounting depends on, and the fuel rate of the
/// host functions (the output map's `engine`, PROTOCOL.md §8).
pub(crate) const ENGINE: &str =
    "wasmi 2.0.0 lazy-translation canonical-nan host-16-bytes-per-fuel simd memory64";

/// The default of [`SandboxConfig::max_module_bytes`]. The slowest validation measured on the
/// 2-core development machine (release build, `cargo bench --bench sandbox`) was code dense with
/// `br_table`s: 135 MiB/s on a quiet machine, 41 MiB/s while a build loaded it. A module this
/// size therefore holds a worker for about 30 ms, at most about 100 ms, past its time limit.
pub const DEFAULT_MAX_MODULE_BYTES: usize = 4 << 20;

/// An entry name that panics the worker thread, so that tests can prove a panic costs one
/// session and nothing else. Debug builds only: in a release build no request can reach it.
#[cfg(debug_assertions)]
pub const PANIC_ENTRY: &str = "wasm-hypervisor-test-panic";

/// wasmi's own minimum value stack height in bytes (the default it allocates up front).
const MIN_STACK_HEIGHT: usize = 1_000;

/// Server-wide knobs of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Elements each table may have, initially or after `table.grow`; a module whose table
    /// starts larger is `invalid_module`, and a larger `table.grow` returns -1. Default: 10 000.
    pub max_table_elements: u32,
    /// Nested calls a program may make before it traps with a stack overflow.
    /// Default: 1 000 (wasmi's default).
    pub max_recursion_depth: usize,
    /// Bytes of wasmi's value stack a program may use before it traps with a stack overflow.
    /// Default: 1 000 000 (wasmi's default).
    pub max_stack_height: usize,
    /// Fuel per slice: after each, the run goes back to the run queue and its worker time is
    /// checked against its time limit. In a release build a slice takes about 1 ms of a tight
    /// loop and 10–13 ms of a loop of WASI calls (`cargo bench -p wasm-hypervisor-actors --bench sandbox`). Default: 1 000 000.
    pub fuel_slice: u64,
    /// Most fuel a module's start function may use; it runs inside instantiation, unsliced.
    /// Default: 1 000 000 (one slice).
    pub start_fuel: u64,
    /// Largest module accepted; a larger one is `invalid_module`. wasmi validates a module in
    /// one call that cannot be sliced, so this bounds how long a run can hold a worker past
    /// its time limit: the size divided by the worst-case validation rate. Default: 4 MiB
    /// ([`DEFAULT_MAX_MODULE_BYTES`]).
    pub max_module_bytes: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            max_table_elements: 10_000,
            max_recursion_depth: 1_000,
            max_stack_height: 1_000_000,
            fuel_slice: 1_000_000,
            start_fuel: 1_000_000,
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
        }
    }
}

/// One program and everything it may observe.
#[derive(Debug, Clone, Copy)]
pub struct Program<'a> {
    /// The module, in binary format.
    pub wasm: &'a [u8],
    /// The export to call: `_start` for a WASI command, or any function without parameters.
    pub entry: &'a str,
    /// `argv[1..]`; `argv[0]` is `"program"`.
    pub args: &'a [String],
    /// The environment, in this order.
    pub env: &'a [(String, String)],
    /// What the program reads from fd 0.
    pub stdin: &'a [u8],
    /// Key of the `random_get` keystream.
    pub random_seed: [u8; 32],
    /// The realtime clock's epoch, in Unix seconds.
    pub issued_at_secs: u64,
}

/// How a run ended: the output map's fields that the sandbox decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub(crate) status: Status,
    /// The `proc_exit` code for `ok` and `exit` (0 when the entry returned); `None` otherwise.
    pub(crate) exit_code: Option<u32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    /// The entry's results when a non-`_start` entry returned (possibly empty); `None` for
    /// `_start` and for runs that ended any other way.
    pub(crate) returns: Option<Vec<ReturnValue>>,
    /// Why the run did not simply succeed; `None` for `ok` and `exit`.
    pub(crate) error: Option<String>,
    /// Fuel the run consumed, the same however it was sliced.
    pub fuel_consumed: u64,
    /// Worker time of the run's slices, compilation included; the one field that is not
    /// deterministic.
    pub duration: Duration,
}

/// Runs `program` under `limits` to its end on this thread, one slice after another: for
/// tests and benchmarks. The daemon interleaves [`Run::step`]s of many runs instead.
pub fn run(program: &Program<'_>, limits: &Limits, config: &SandboxConfig) -> RunReport {
    let mut run = Run::new(program, *limits, config);
    loop {
        match run.step() {
            Step::Yielded(next) => run = next,
            Step::Ended(report) => return report,
        }
    }
}

/// One run between two slices: everything it needs to go on is owned here, so any worker
/// thread can take its next slice.
pub struct Run {
    store: Store<Host>,
    stage: Stage,
    limits: Limits,
    config: SandboxConfig,
    /// Whether the entry is `_start`, whose results the report leaves out.
    entry_is_start: bool,
}

/// Where a run is: not compiled yet, or paused in its entry between slices.
#[allow(clippy::large_enum_variant)] // one per run, moved once a slice
enum Stage {
    Compile {
        wasm: Vec<u8>,
        entry: String,
    },
    Call {
        paused: ResumableCallOutOfFuel,
        required_fuel: u64,
        outputs: Vec<Val>,
    },
}

/// What one slice of a run left.
pub enum Step {
    /// Paused between slices: put it back in the run queue.
    Yielded(Box<Run>),
    /// It ended; the report is the output map's part that the sandbox decides.
    Ended(RunReport),
}

// Runs travel between worker threads between slices; an upgrade of wasmi that made its store
// or its paused calls `!Send` must fail to compile here, not at the scheduler.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Run>();
    assert_send::<Store<Host>>();
    assert_send::<ResumableCallOutOfFuel>();
};

impl Run {
    /// Prepares `program`; nothing is compiled or run until the first [`Run::step`].
    pub fn new(program: &Program<'_>, limits: Limits, config: &SandboxConfig) -> Box<Self> {
        let meter = Meter::new(
            limits.fuel,
            config.fuel_slice,
            WorkerClock::new(limits.timeout_ms),
        );
        let engine = Engine::new(&engine_config(config));
        let host = Host::new(
            program,
            limits.output_bytes,
            meter,
            Limiter::new(limits.memory_bytes, config.max_table_elements),
        );
        let mut store = Store::new(&engine, host);
        store.limiter(|host| &mut host.limits);
        Box::new(Self {
            store,
            stage: Stage::Compile {
                wasm: program.wasm.to_vec(),
                entry: program.entry.to_owned(),
            },
            limits,
            config: *config,
            entry_is_start: program.entry == "_start",
        })
    }

    /// Runs one slice: the first compiles, links and instantiates the module (the start
    /// function included); each later one runs the entry for up to `fuel_slice` fuel. The
    /// slice's wall time counts against `timeout_ms`; the time between slices does not.
    pub fn step(self: Box<Self>) -> Step {
        let Self {
            mut store,
            stage,
            limits,
            config,
            entry_is_start,
        } = *self;
        store.data_mut().meter.clock_mut().start_slice();
        let next = match stage {
            Stage::Compile { wasm, entry } => start(&mut store, &config, &wasm, &entry),
            Stage::Call {
                paused,
                required_fuel,
                mut outputs,
            } => fuel::refill(&mut store, required_fuel)
                .map_err(End::from)
                .and_then(|()| pause(paused.resume(&mut store, &mut outputs), outputs)),
        };
        store.data_mut().meter.clock_mut().end_slice();
        match next {
            Ok(stage) => Step::Yielded(Box::new(Self {
                store,
                stage,
                limits,
                config,
                entry_is_start,
            })),
            Err(end) => Step::Ended(report(end, store, &limits, entry_is_start)),
        }
    }
}

/// The first slice: compiles, links and instantiates, then calls the entry until this slice's
/// fuel runs out.
fn start(
    store: &mut Store<Host>,
    config: &SandboxConfig,
    wasm: &[u8],
    entry: &str,
) -> Result<Stage, End> {
    #[cfg(debug_assertions)]
    if entry == PANIC_ENTRY {
        panic!("the test-only entry {PANIC_ENTRY} panics its worker");
    }
    if wasm.len() > config.max_module_bytes {
        return Err(End::InvalidModule(format!(
            "the module is larger than the sandbox's limit of {} bytes",
            config.max_module_bytes
        )));
    }
    let engine = store.engine().clone();
    let module =
        Module::new(&engine, wasm).map_err(|error| End::InvalidModule(one_line(&error)))?;
    store.data().meter.clock().check()?;
    check_imports(&module)?;
    let results = check_entry(&module, entry)?;
    let linker = wasi::linker(&engine).map_err(|error| End::LinkError(error.to_string()))?;
    let instance = instantiate(store, &linker, &module, config.start_fuel)?;
    store.data().meter.clock().check()?;
    let entry = instance
        .get_func(&*store, entry)
        .ok_or_else(|| End::LinkError(format!("no export {}", quoted(entry))))?;
    let mut outputs = vec![Val::I32(0); results];
    let first = store.data().meter.unspent().min(config.fuel_slice);
    fuel::grant(&mut *store, first);
    let call = entry.call_resumable(&mut *store, &[], &mut outputs);
    pause(call, outputs)
}

/// Where the entry call stopped: finished (an end), or out of this slice's fuel.
fn pause(call: Result<ResumableCall, Error>, outputs: Vec<Val>) -> Result<Stage, End> {
    match call.map_err(classify)? {
        ResumableCall::Finished => Err(End::Returned(outputs)),
        ResumableCall::HostTrap(trap) => Err(classify(trap.into_host_error())),
        ResumableCall::OutOfFuel(paused) => Ok(Stage::Call {
            required_fuel: paused.required_fuel(),
            paused,
            outputs,
        }),
    }
}

/// The wasmi configuration every run uses: fuel, limits and the exact feature set of
/// [`ENGINE`]. Public so that benchmarks can run bare wasmi exactly as configured here.
pub fn engine_config(config: &SandboxConfig) -> Config {
    let mut engine = Config::default();
    engine
        .consume_fuel(true)
        .compilation_mode(CompilationMode::LazyTranslation)
        .fuel_cost(CustomFuelCosts {
            // wasmi's default; only translation and validation become free.
            bytes_copied_per_fuel: 64,
            fuel_per_bytes_translated: 0,
            fuel_per_bytes_validated: 0,
        })
        .enforced_limits(EnforcedLimits::strict())
        .ignore_custom_sections(true)
        // Every feature set explicitly, whatever wasmi's defaults: [`ENGINE`] names this set.
        .wasm_mutable_global(true) // standard (Wasm 2.0), deterministic
        .wasm_sign_extension(true) // standard (Wasm 2.0), deterministic
        .wasm_saturating_float_to_int(true) // standard (Wasm 2.0), deterministic
        .wasm_multi_value(true) // standard (Wasm 2.0), deterministic
        .wasm_bulk_memory(true) // standard (Wasm 2.0), deterministic; fuel per byte moved
        .wasm_reference_types(true) // standard (Wasm 2.0), deterministic
        .floats(true) // standard; NaN results canonicalized by wasmi's `deterministic` feature
        .wasm_simd(true) // standard (Wasm 2.0); lanes use the same canonicalizing float ops
        .wasm_relaxed_simd(false) // standard (Wasm 3.0) but implementation-defined results
        .wasm_tail_call(true) // standard (Wasm 3.0), deterministic
        .wasm_extended_const(true) // standard (Wasm 3.0), deterministic
        .wasm_memory64(true) // standard (Wasm 3.0); our limiter bounds 64-bit memories too
        .wasm_multi_memory(true) // standard (Wasm 3.0); `EnforcedLimits::strict` allows 1 memory
        .wasm_custom_page_sizes(false) // a proposal, not (yet) standard WebAssembly
        .wasm_wide_arithmetic(false) // a proposal, not (yet) standard WebAssembly
        .set_max_recursion_depth(config.max_recursion_depth)
        // wasmi panics if the maximum is below the minimum, so lower the minimum first.
        .set_min_stack_height(config.max_stack_height.min(MIN_STACK_HEIGHT))
        .set_max_stack_height(config.max_stack_height);
    engine
}

/// How a run ended; exactly one of these happens, which is what makes §7's "first match wins"
/// a plain mapping (see [`status`]).
#[derive(Debug)]
enum End {
    /// The entry returned these values.
    Returned(Vec<Val>),
    /// `proc_exit(code)`.
    Exited(u32),
    Trapped(String),
    OutOfFuel,
    TimedOut,
    OutputLimit,
    /// Memory could not be instantiated (`None`), or a refused `memory.grow` was followed by
    /// this trap or exit.
    MemoryLimit(Option<String>),
    InvalidModule(String),
    LinkError(String),
}

impl From<Stop> for End {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Exit(code) => Self::Exited(code),
            Stop::OutputLimit => Self::OutputLimit,
            Stop::OutOfFuel => Self::OutOfFuel,
            Stop::TimedOut => Self::TimedOut,
            Stop::Trap(_) => Self::Trapped(stop.to_string()),
        }
    }
}

/// Every import must be a preview-1 function with its real signature.
fn check_imports(module: &Module) -> Result<(), End> {
    for import in module.imports() {
        let name = quoted(&format!("{}.{}", import.module(), import.name()));
        let known = (import.module() == wasi::MODULE)
            .then(|| wasi::signature(import.name()))
            .flatten();
        let Some((params, results)) = known else {
            return Err(End::LinkError(format!("unknown import {name}")));
        };
        match import.ty() {
            ExternType::Func(ty) if ty.params() == params && ty.results() == results => {}
            ExternType::Func(_) => {
                return Err(End::LinkError(format!(
                    "import {name} has the wrong signature"
                )));
            }
            _ => return Err(End::LinkError(format!("import {name} is not a function"))),
        }
    }
    Ok(())
}

/// The entry must be an exported function without parameters and with numeric results;
/// returns how many results it has.
fn check_entry(module: &Module, entry: &str) -> Result<usize, End> {
    let name = quoted(entry);
    let ty = match module.get_export(entry) {
        Some(ExternType::Func(ty)) => ty,
        Some(_) => return Err(End::LinkError(format!("export {name} is not a function"))),
        None => return Err(End::LinkError(format!("no export {name}"))),
    };
    if !ty.params().is_empty() {
        return Err(End::LinkError(format!("entry {name} takes parameters")));
    }
    let numeric = |ty: &ValType| {
        matches!(
            ty,
            ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64
        )
    };
    if !ty.results().iter().all(numeric) {
        return Err(End::LinkError(format!(
            "entry {name} returns a non-numeric value"
        )));
    }
    Ok(ty.results().len())
}

/// Instantiates the module, running its start function under the fuel cap of the module docs.
fn instantiate(
    store: &mut Store<Host>,
    linker: &Linker<Host>,
    module: &Module,
    start_fuel: u64,
) -> Result<Instance, End> {
    let unspent = store.data().meter.unspent();
    fuel::grant(&mut *store, unspent.min(start_fuel));
    let instance =
        linker
            .instantiate_and_start(&mut *store, module)
            .map_err(|error| match classify(error) {
                End::OutOfFuel if start_fuel < unspent => End::Trapped(format!(
                    "start function exceeded its fuel cap of {start_fuel}"
                )),
                end => end,
            })?;
    store.data_mut().meter.allow_refills();
    Ok(instance)
}

/// Sorts a wasmi error into the way the run ended.
fn classify(error: Error) -> End {
    if let Some(stop) = error.downcast_ref::<Stop>() {
        return stop.clone().into();
    }
    if error.as_trap_code() == Some(TrapCode::OutOfFuel) {
        return End::OutOfFuel;
    }
    match error.kind() {
        ErrorKind::Instantiation(InstantiationError::FailedToInstantiateMemory(
            MemoryError::ResourceLimiterDeniedAllocation
            | MemoryError::OutOfSystemMemory
            | MemoryError::MinimumSizeOverflow,
        )) => End::MemoryLimit(None),
        ErrorKind::Instantiation(InstantiationError::FailedToInstantiateTable(_)) => {
            End::InvalidModule("a table exceeds the sandbox's limit on table elements".into())
        }
        ErrorKind::Instantiation(InstantiationError::ElementSegmentDoesNotFit { .. }) => {
            End::Trapped(TrapCode::TableOutOfBounds.to_string())
        }
        ErrorKind::Linker(_) | ErrorKind::Instantiation(_) => End::LinkError(error.to_string()),
        // Lazy translation meets a function's body only when it is first called.
        ErrorKind::Wasm(_)
        | ErrorKind::Read(_)
        | ErrorKind::Translation(_)
        | ErrorKind::UserLimits(_)
        | ErrorKind::ImplementationLimits(_)
        | ErrorKind::Ir(_) => End::InvalidModule(one_line(&error)),
        _ => End::Trapped(error.to_string()),
    }
}

/// The status of an end (§7). One end per run, so the table's order shows only in which ends
/// exist: a timeout is noticed before anything else between slices, and `proc_exit(0)` is `ok`.
fn status(end: &End) -> Status {
    match end {
        End::TimedOut => Status::Timeout,
        End::OutOfFuel => Status::OutOfFuel,
        End::OutputLimit => Status::OutputLimit,
        End::MemoryLimit(_) => Status::MemoryLimit,
        End::InvalidModule(_) => Status::InvalidModule,
        End::LinkError(_) => Status::LinkError,
        End::Trapped(_) => Status::Trap,
        End::Exited(0) | End::Returned(_) => Status::Ok,
        End::Exited(_) => Status::Exit,
    }
}

fn report(end: End, store: Store<Host>, limits: &Limits, entry_is_start: bool) -> RunReport {
    let fuel_consumed = fuel::consumed(&store);
    let host = store.into_data();
    let duration = host.meter.clock().used();
    let end = match end {
        End::Trapped(reason) if host.limits.refused() => End::MemoryLimit(Some(reason)),
        End::Exited(code @ 1..) if host.limits.refused() => {
            End::MemoryLimit(Some(format!("proc_exit({code})")))
        }
        end => end,
    };
    let output = host.output;
    RunReport {
        status: status(&end),
        exit_code: match end {
            End::Returned(_) => Some(0),
            End::Exited(code) => Some(code),
            _ => None,
        },
        returns: match &end {
            End::Returned(values) if !entry_is_start => {
                Some(values.iter().filter_map(return_value).collect())
            }
            _ => None,
        },
        error: reason(end, limits),
        stdout: output.stdout,
        stderr: output.stderr,
        fuel_consumed,
        duration,
    }
}

/// The `error` text: why the run did not simply succeed.
fn reason(end: End, limits: &Limits) -> Option<String> {
    match end {
        End::Returned(_) | End::Exited(_) => None,
        End::Trapped(reason) | End::InvalidModule(reason) | End::LinkError(reason) => Some(reason),
        End::OutOfFuel => Some(format!("the fuel limit of {} ran out", limits.fuel)),
        End::TimedOut => Some(format!(
            "the time limit of {} ms ran out",
            limits.timeout_ms
        )),
        End::OutputLimit => Some(format!("the output passed {} bytes", limits.output_bytes)),
        End::MemoryLimit(None) => Some(format!(
            "the memory does not fit in {} bytes",
            limits.memory_bytes
        )),
        End::MemoryLimit(Some(then)) => Some(format!(
            "a memory.grow past {} bytes was refused, then: {then}",
            limits.memory_bytes
        )),
    }
}

fn return_value(value: &Val) -> Option<ReturnValue> {
    match value {
        Val::I32(value) => Some(ReturnValue::I32(*value)),
        Val::I64(value) => Some(ReturnValue::I64(*value)),
        Val::F32(value) => Some(ReturnValue::F32(value.to_bits())),
        Val::F64(value) => Some(ReturnValue::F64(value.to_bits())),
        // `check_entry` admits numeric results only.
        _ => None,
    }
}

/// wasmparser's messages can span lines (byte dumps), and `error` is one line.
fn one_line(error: &Error) -> String {
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A guest-chosen name, quoted for an error message: escaped and cut to keep `error` short.
fn quoted(name: &str) -> String {
    const MAX_CHARS: usize = 64;
    let mut quoted: String = name
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(MAX_CHARS).is_some() {
        quoted.push('…');
    }
    format!("`{quoted}`")
}
