//! The plaintext payloads of `docs/PROTOCOL.md` §4 and §5: the request payload, the output map and
//! the result payload, with their strict CBOR decoders and deterministic encoders.

use std::collections::HashSet;
use std::fmt;

use crate::cbor::{self, Reader, Writer};

/// Limits a request asks for (`limits` in §4); `None` means "the server's default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestedLimits {
    /// Fuel the program may burn before `out_of_fuel`.
    pub fuel: Option<u64>,
    /// The most linear memory the program may hold before `memory_limit`.
    pub memory_bytes: Option<u64>,
    /// The most stdout and stderr bytes, together, before `output_limit`.
    pub output_bytes: Option<u64>,
    /// The time the program may run on a worker before `timeout`.
    pub timeout_ms: Option<u64>,
}

/// The limits an execution ran under (`limits` in the output map: all four keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel the program could burn; `fuel_consumed` never exceeds it.
    pub fuel: u64,
    /// Linear memory the program could hold.
    pub memory_bytes: u64,
    /// stdout and stderr bytes, together, the program could write.
    pub output_bytes: u64,
    /// Milliseconds the program could run on a worker.
    pub timeout_ms: u64,
}

/// The decoded request payload (§4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPayload {
    /// The WebAssembly module, in the binary format.
    pub wasm: Vec<u8>,
    /// The export to call; `None` means `_start`.
    pub entry: Option<String>,
    /// WASI `argv[1..]`; `argv[0]` is always `"program"`.
    pub args: Vec<String>,
    /// In the order the payload lists them (the payload's bytes are committed, so the order is
    /// fixed).
    pub env: Vec<(String, String)>,
    /// What the program reads from fd 0.
    pub stdin: Vec<u8>,
    /// The limits the client asks for, before the server clamps them.
    pub limits: RequestedLimits,
    /// The client's share of the program's randomness; `None` means 32 zero bytes.
    pub seed: Option<[u8; 32]>,
}

/// The `status` of an execution (§7), in the order in which the first match wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The time limit ran out.
    Timeout,
    /// The fuel limit ran out.
    OutOfFuel,
    /// stdout and stderr together passed `output_bytes`.
    OutputLimit,
    /// Memory could not be had within `memory_bytes`.
    MemoryLimit,
    /// Not a valid module, or over the engine's limits.
    InvalidModule,
    /// An import the sandbox lacks, or no usable entry export.
    LinkError,
    /// The request opened but is not a valid request payload.
    BadPayload,
    /// Any other WebAssembly trap.
    Trap,
    /// `proc_exit(n)` with `n` other than 0.
    Exit,
    /// The entry returned, or called `proc_exit(0)`.
    Ok,
}

/// One result of a non-`_start` entry (`returns` in §5). Floats are kept as their IEEE-754 bit
/// patterns, which is also how they are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnValue {
    /// An `i32` result.
    I32(i32),
    /// An `i64` result.
    I64(i64),
    /// An `f32` result, as its bit pattern.
    F32(u32),
    /// An `f64` result, as its bit pattern.
    F64(u64),
}

/// The output map (§5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputMap {
    /// How the execution ended.
    pub status: Status,
    /// The `proc_exit` argument for `ok` and `exit` (0 when the entry returned); `None` otherwise.
    pub exit_code: Option<u32>,
    /// stdout in the order written, cut at `output_bytes` together with stderr.
    pub stdout: Vec<u8>,
    /// stderr in the order written, cut at `output_bytes` together with stdout.
    pub stderr: Vec<u8>,
    /// Present only for a non-`_start` entry.
    pub returns: Option<Vec<ReturnValue>>,
    /// Why the program did not end `ok`, for a human; never host paths or secrets.
    pub error: Option<String>,
    /// The limits actually applied, after clamping.
    pub limits: Limits,
    /// Fuel the program burned; deterministic for a given engine.
    pub fuel_consumed: u64,
    /// Microseconds the program ran on a worker: the one value a re-run does not reproduce.
    pub duration_us: u64,
    /// The engine and configuration that ran the program, which fix its fuel accounting (§8).
    pub engine: String,
    /// Opens the announcement's `seed_commitment`.
    pub server_seed: [u8; 32],
    /// The seed of the program's `random_get` keystream, from both parties' shares.
    pub random_seed: [u8; 32],
}

/// The result payload (§5): the output map's exact bytes and the two commitment blinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultPayload {
    /// The output map's encoding, exactly the bytes `output_commitment` covers.
    pub output: Vec<u8>,
    /// Opens `input_commitment` together with the request payload.
    pub input_blind: [u8; 32],
    /// Opens `output_commitment` together with `output`.
    pub output_blind: [u8; 32],
}

impl From<Limits> for RequestedLimits {
    fn from(limits: Limits) -> Self {
        Self {
            fuel: Some(limits.fuel),
            memory_bytes: Some(limits.memory_bytes),
            output_bytes: Some(limits.output_bytes),
            timeout_ms: Some(limits.timeout_ms),
        }
    }
}

/// Why a payload was refused. The messages are short and safe to show the client: they name
/// fields, and quote payload content only as key names, capped at 64 characters and escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not strictly well-formed CBOR (§4's rules).
    #[error(transparent)]
    Cbor(#[from] cbor::Error),
    /// The top level is not a map.
    #[error("the payload must be a CBOR map")]
    NotAMap,
    /// A map key is not text.
    #[error("map keys must be text")]
    KeyNotText,
    /// A key this version does not define: refused, so that a typo cannot drop a limit.
    #[error("unknown key `{key}`{}", in_map(*.map))]
    UnknownKey {
        /// The nested map the key was in; `None` at the top level.
        map: Option<&'static str>,
        /// The key, shortened and escaped for display.
        key: String,
    },
    /// A key that appears twice in one map.
    #[error("duplicate key `{key}`{}", in_map(*.map))]
    DuplicateKey {
        /// The nested map the key was in; `None` at the top level.
        map: Option<&'static str>,
        /// The key, shortened and escaped for display.
        key: String,
    },
    /// A required key is absent.
    #[error("missing `{0}`")]
    Missing(&'static str),
    /// A value of the wrong CBOR type.
    #[error("`{key}` must be {expected}")]
    WrongType {
        /// The key whose value it is.
        key: &'static str,
        /// What the key's value must be, in words.
        expected: &'static str,
    },
    /// A value of the right type that breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(&'static str),
    /// An output map whose `status` is not one of §7.
    #[error("unknown status `{0}`")]
    UnknownStatus(String),
}

fn in_map(map: Option<&'static str>) -> String {
    map.map(|name| format!(" in {name}")).unwrap_or_default()
}

/// A key name as it may appear in an error message: at most 64 characters, control and quote
/// characters escaped, so a hostile key cannot make a long or multi-line message.
fn shown(key: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = key.chars().take(MAX).flat_map(char::escape_debug).collect();
    if key.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

impl PayloadError {
    fn unknown(map: Option<&'static str>, key: &str) -> Self {
        Self::UnknownKey {
            map,
            key: shown(key),
        }
    }
}

const UNSIGNED: &str = "an unsigned integer";
const BYTES_32: &str = "32 bytes";
const ARGS: &str = "an array of text";
const ENV: &str = "a map of text to text";
const RETURNS: &str = "an array of [type, value] pairs";

/// Names the field a reader type error happened in.
trait Field<T> {
    fn field(self, key: &'static str, expected: &'static str) -> Result<T, PayloadError>;
}

impl<T> Field<T> for Result<T, cbor::Error> {
    fn field(self, key: &'static str, expected: &'static str) -> Result<T, PayloadError> {
        self.map_err(|e| match e {
            cbor::Error::Type => PayloadError::WrongType { key, expected },
            e => e.into(),
        })
    }
}

/// Reads the `n` entries of a map with a fixed set of text keys. Repeats are refused before
/// `field` sees them; `field` refuses unknown keys itself, so `seen` only ever holds known ones.
fn fields<'a>(
    r: &mut Reader<'a>,
    n: usize,
    map: Option<&'static str>,
    mut field: impl FnMut(&mut Reader<'a>, &'a str) -> Result<(), PayloadError>,
) -> Result<(), PayloadError> {
    let mut seen: Vec<&str> = Vec::new();
    for _ in 0..n {
        let key = r.text().map_err(|e| match e {
            cbor::Error::Type => PayloadError::KeyNotText,
            e => e.into(),
        })?;
        if seen.contains(&key) {
            return Err(PayloadError::DuplicateKey {
                map,
                key: shown(key),
            });
        }
        seen.push(key);
        field(r, key)?;
    }
    Ok(())
}

fn bytes32(r: &mut Reader<'_>, key: &'static str) -> Result<[u8; 32], PayloadError> {
    r.bytes()
        .field(key, BYTES_32)?
        .try_into()
        .map_err(|_| PayloadError::WrongType {
            key,
            expected: BYTES_32,
        })
}

fn read_limits(r: &mut Reader<'_>) -> Result<RequestedLimits, PayloadError> {
    let n = r.map_len().field("limits", "a map")?;
    let mut limits = RequestedLimits::default();
    fields(r, n, Some("limits"), |r, key| {
        match key {
            "fuel" => limits.fuel = Some(r.uint().field("limits.fuel", UNSIGNED)?),
            "memory_bytes" => {
                limits.memory_bytes = Some(r.uint().field("limits.memory_bytes", UNSIGNED)?);
            }
            "output_bytes" => {
                limits.output_bytes = Some(r.uint().field("limits.output_bytes", UNSIGNED)?);
            }
            "timeout_ms" => {
                limits.timeout_ms = Some(r.uint().field("limits.timeout_ms", UNSIGNED)?)
            }
            other => return Err(PayloadError::unknown(Some("limits"), other)),
        }
        Ok(())
    })?;
    Ok(limits)
}

fn write_limits(w: &mut Writer, limits: &RequestedLimits) {
    w.map(|m| {
        let keys = [
            ("fuel", limits.fuel),
            ("memory_bytes", limits.memory_bytes),
            ("output_bytes", limits.output_bytes),
            ("timeout_ms", limits.timeout_ms),
        ];
        for (key, value) in keys {
            if let Some(value) = value {
                m.entry(key, |w| w.uint(value));
            }
        }
    });
}

/// WASI hands arguments and environment entries to the guest as NUL-terminated `KEY=value`
/// C strings, so a NUL anywhere, or a `=` in a key, could not arrive as sent.
fn read_args(r: &mut Reader<'_>) -> Result<Vec<String>, PayloadError> {
    let n = r.array_len().field("args", ARGS)?;
    let mut args = Vec::new();
    for _ in 0..n {
        let arg = r.text().field("args", ARGS)?;
        if arg.contains('\0') {
            return Err(PayloadError::Invalid("`args` must not contain NUL"));
        }
        args.push(arg.to_owned());
    }
    Ok(args)
}

/// See [`read_args`] for why NUL and `=` are refused.
fn read_env(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, PayloadError> {
    let n = r.map_len().field("env", ENV)?;
    // A set, not a scan of `env`, so a payload of many tiny entries stays linear.
    let mut seen = HashSet::new();
    let mut env = Vec::new();
    for _ in 0..n {
        let key = r.text().field("env", ENV)?;
        let value = r.text().field("env", ENV)?;
        if !seen.insert(key) {
            return Err(PayloadError::DuplicateKey {
                map: Some("env"),
                key: shown(key),
            });
        }
        if key.contains('\0') || value.contains('\0') {
            return Err(PayloadError::Invalid("`env` must not contain NUL"));
        }
        if key.contains('=') {
            return Err(PayloadError::Invalid("`env` keys must not contain `=`"));
        }
        env.push((key.to_owned(), value.to_owned()));
    }
    Ok(env)
}

/// Plaintexts are wiped when the daemon is done with them (`Zeroizing<RequestPayload>`).
impl zeroize::Zeroize for RequestPayload {
    fn zeroize(&mut self) {
        self.wasm.zeroize();
        self.entry.zeroize();
        self.args.zeroize();
        for (key, value) in &mut self.env {
            key.zeroize();
            value.zeroize();
        }
        self.env.clear();
        self.stdin.zeroize();
        self.seed.zeroize();
    }
}

impl zeroize::Zeroize for ResultPayload {
    fn zeroize(&mut self) {
        self.output.zeroize();
        self.input_blind.zeroize();
        self.output_blind.zeroize();
    }
}

impl zeroize::Zeroize for OutputMap {
    fn zeroize(&mut self) {
        self.stdout.zeroize();
        self.stderr.zeroize();
        self.error.zeroize();
        self.returns = None;
    }
}

impl RequestPayload {
    /// Decodes a request payload strictly (§4).
    ///
    /// Beyond §4's list, and as our reading of it: a NUL in `args` or `env`, a `=` in an `env`
    /// key (WASI passes these as NUL-terminated `KEY=value` C strings) and an empty `entry` are
    /// refused too.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let mut r = Reader::new(bytes)?;
        let n = r.map_len().map_err(|_| PayloadError::NotAMap)?;
        let mut wasm = None;
        let mut payload = Self::default();
        fields(&mut r, n, None, |r, key| {
            match key {
                "wasm" => wasm = Some(r.bytes().field("wasm", "bytes")?.to_vec()),
                "entry" => {
                    let entry = r.text().field("entry", "text")?;
                    if entry.is_empty() {
                        return Err(PayloadError::Invalid("`entry` must not be empty"));
                    }
                    payload.entry = Some(entry.to_owned());
                }
                "args" => payload.args = read_args(r)?,
                "env" => payload.env = read_env(r)?,
                "stdin" => payload.stdin = r.bytes().field("stdin", "bytes")?.to_vec(),
                "limits" => payload.limits = read_limits(r)?,
                "seed" => payload.seed = Some(bytes32(r, "seed")?),
                other => return Err(PayloadError::unknown(None, other)),
            }
            Ok(())
        })?;
        r.end()?;
        payload.wasm = wasm.ok_or(PayloadError::Missing("wasm"))?;
        Ok(payload)
    }

    /// Encodes deterministically, leaving out every field that holds its default. Like any map,
    /// `env` comes out sorted by key; duplicate `env` keys make a payload the daemon refuses.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.map(|m| {
            m.entry("wasm", |w| w.bytes(&self.wasm));
            if let Some(entry) = &self.entry {
                m.entry("entry", |w| w.text(entry));
            }
            if !self.args.is_empty() {
                m.entry("args", |w| {
                    w.array(self.args.len());
                    self.args.iter().for_each(|arg| w.text(arg));
                });
            }
            if !self.env.is_empty() {
                m.entry("env", |w| {
                    w.map(|env| {
                        for (key, value) in &self.env {
                            env.entry(key, |w| w.text(value));
                        }
                    })
                });
            }
            if !self.stdin.is_empty() {
                m.entry("stdin", |w| w.bytes(&self.stdin));
            }
            if self.limits != RequestedLimits::default() {
                m.entry("limits", |w| write_limits(w, &self.limits));
            }
            if let Some(seed) = &self.seed {
                m.entry("seed", |w| w.bytes(seed));
            }
        });
        w.finish()
    }
}

impl Status {
    /// Every status, in §7's order (the first match wins).
    pub(crate) const ALL: [Self; 10] = [
        Self::Timeout,
        Self::OutOfFuel,
        Self::OutputLimit,
        Self::MemoryLimit,
        Self::InvalidModule,
        Self::LinkError,
        Self::BadPayload,
        Self::Trap,
        Self::Exit,
        Self::Ok,
    ];

    /// The wire name (§7).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::OutOfFuel => "out_of_fuel",
            Self::OutputLimit => "output_limit",
            Self::MemoryLimit => "memory_limit",
            Self::InvalidModule => "invalid_module",
            Self::LinkError => "link_error",
            Self::BadPayload => "bad_payload",
            Self::Trap => "trap",
            Self::Exit => "exit",
            Self::Ok => "ok",
        }
    }

    pub(crate) fn from_str_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ReturnValue {
    fn write(self, w: &mut Writer) {
        w.array(2);
        match self {
            Self::I32(v) => {
                w.text("i32");
                w.int(v.into());
            }
            Self::I64(v) => {
                w.text("i64");
                w.int(v);
            }
            Self::F32(bits) => {
                w.text("f32");
                w.uint(bits.into());
            }
            Self::F64(bits) => {
                w.text("f64");
                w.uint(bits);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        if r.array_len().field("returns", RETURNS)? != 2 {
            return Err(PayloadError::WrongType {
                key: "returns",
                expected: RETURNS,
            });
        }
        let out_of_range = |_| PayloadError::Invalid("a `returns` value does not fit its type");
        Ok(match r.text().field("returns", RETURNS)? {
            "i32" => Self::I32(
                r.int()
                    .field("returns", RETURNS)?
                    .try_into()
                    .map_err(out_of_range)?,
            ),
            "i64" => Self::I64(r.int().field("returns", RETURNS)?),
            "f32" => Self::F32(
                r.uint()
                    .field("returns", RETURNS)?
                    .try_into()
                    .map_err(out_of_range)?,
            ),
            "f64" => Self::F64(r.uint().field("returns", RETURNS)?),
            _ => return Err(PayloadError::Invalid("unknown `returns` type")),
        })
    }
}

impl OutputMap {
    /// Encodes in RFC 8949 §4.2.1 core deterministic encoding (§5); `returns` only when `Some`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.map(|m| {
            m.entry("status", |w| w.text(self.status.as_str()));
            m.entry("exit_code", |w| match self.exit_code {
                Some(code) => w.uint(code.into()),
                None => w.null(),
            });
            m.entry("stdout", |w| w.bytes(&self.stdout));
            m.entry("stderr", |w| w.bytes(&self.stderr));
            if let Some(returns) = &self.returns {
                m.entry("returns", |w| {
                    w.array(returns.len());
                    returns.iter().for_each(|value| value.write(w));
                });
            }
            m.entry("error", |w| match &self.error {
                Some(error) => w.text(error),
                None => w.null(),
            });
            m.entry("limits", |w| write_limits(w, &self.limits.into()));
            m.entry("fuel_consumed", |w| w.uint(self.fuel_consumed));
            m.entry("duration_us", |w| w.uint(self.duration_us));
            m.entry("engine", |w| w.text(&self.engine));
            m.entry("server_seed", |w| w.bytes(&self.server_seed));
            m.entry("random_seed", |w| w.bytes(&self.random_seed));
        });
        w.finish()
    }

    /// Decodes strictly, as a client should: every key but `returns` is required, no others
    /// are allowed. Key order and encoding forms are not checked.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let mut r = Reader::new(bytes)?;
        let n = r.map_len().map_err(|_| PayloadError::NotAMap)?;
        let (mut status, mut exit_code, mut stdout, mut stderr) = (None, None, None, None);
        let (mut returns, mut error, mut limits, mut fuel_consumed) = (None, None, None, None);
        let (mut duration_us, mut engine, mut server_seed, mut random_seed) =
            (None, None, None, None);
        fields(&mut r, n, None, |r, key| {
            match key {
                "status" => {
                    let name = r.text().field("status", "text")?;
                    let parsed = Status::from_str_name(name);
                    status = Some(parsed.ok_or_else(|| PayloadError::UnknownStatus(shown(name)))?);
                }
                "exit_code" => {
                    const EXIT_CODE: &str = "an unsigned 32-bit integer or null";
                    let too_big = |_| PayloadError::WrongType {
                        key: "exit_code",
                        expected: EXIT_CODE,
                    };
                    exit_code = Some(if r.null() {
                        None
                    } else {
                        let code = r.uint().field("exit_code", EXIT_CODE)?;
                        Some(u32::try_from(code).map_err(too_big)?)
                    });
                }
                "stdout" => stdout = Some(r.bytes().field("stdout", "bytes")?.to_vec()),
                "stderr" => stderr = Some(r.bytes().field("stderr", "bytes")?.to_vec()),
                "returns" => {
                    let n = r.array_len().field("returns", RETURNS)?;
                    returns = Some(
                        (0..n)
                            .map(|_| ReturnValue::read(r))
                            .collect::<Result<_, _>>()?,
                    );
                }
                "error" => {
                    error = Some(if r.null() {
                        None
                    } else {
                        Some(r.text().field("error", "text or null")?.to_owned())
                    });
                }
                "limits" => limits = Some(read_limits(r)?),
                "fuel_consumed" => fuel_consumed = Some(r.uint().field("fuel_consumed", UNSIGNED)?),
                "duration_us" => duration_us = Some(r.uint().field("duration_us", UNSIGNED)?),
                "engine" => engine = Some(r.text().field("engine", "text")?.to_owned()),
                "server_seed" => server_seed = Some(bytes32(r, "server_seed")?),
                "random_seed" => random_seed = Some(bytes32(r, "random_seed")?),
                other => return Err(PayloadError::unknown(None, other)),
            }
            Ok(())
        })?;
        r.end()?;
        let limits = limits.ok_or(PayloadError::Missing("limits"))?;
        Ok(Self {
            status: status.ok_or(PayloadError::Missing("status"))?,
            exit_code: exit_code.ok_or(PayloadError::Missing("exit_code"))?,
            stdout: stdout.ok_or(PayloadError::Missing("stdout"))?,
            stderr: stderr.ok_or(PayloadError::Missing("stderr"))?,
            returns,
            error: error.ok_or(PayloadError::Missing("error"))?,
            limits: Limits {
                fuel: limits.fuel.ok_or(PayloadError::Missing("limits.fuel"))?,
                memory_bytes: limits
                    .memory_bytes
                    .ok_or(PayloadError::Missing("limits.memory_bytes"))?,
                output_bytes: limits
                    .output_bytes
                    .ok_or(PayloadError::Missing("limits.output_bytes"))?,
                timeout_ms: limits
                    .timeout_ms
                    .ok_or(PayloadError::Missing("limits.timeout_ms"))?,
            },
            fuel_consumed: fuel_consumed.ok_or(PayloadError::Missing("fuel_consumed"))?,
            duration_us: duration_us.ok_or(PayloadError::Missing("duration_us"))?,
            engine: engine.ok_or(PayloadError::Missing("engine"))?,
            server_seed: server_seed.ok_or(PayloadError::Missing("server_seed"))?,
            random_seed: random_seed.ok_or(PayloadError::Missing("random_seed"))?,
        })
    }
}

impl ResultPayload {
    /// Encodes deterministically, like the output map it carries.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.map(|m| {
            m.entry("output", |w| w.bytes(&self.output));
            m.entry("input_blind", |w| w.bytes(&self.input_blind));
            m.entry("output_blind", |w| w.bytes(&self.output_blind));
        });
        w.finish()
    }

    /// Decodes strictly: exactly the three keys. `output` stays raw bytes, since they are what
    /// `output_commitment` binds; decode them with [`OutputMap::decode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let mut r = Reader::new(bytes)?;
        let n = r.map_len().map_err(|_| PayloadError::NotAMap)?;
        let (mut output, mut input_blind, mut output_blind) = (None, None, None);
        fields(&mut r, n, None, |r, key| {
            match key {
                "output" => output = Some(r.bytes().field("output", "bytes")?.to_vec()),
                "input_blind" => input_blind = Some(bytes32(r, "input_blind")?),
                "output_blind" => output_blind = Some(bytes32(r, "output_blind")?),
                other => return Err(PayloadError::unknown(None, other)),
            }
            Ok(())
        })?;
        r.end()?;
        Ok(Self {
            output: output.ok_or(PayloadError::Missing("output"))?,
            input_blind: input_blind.ok_or(PayloadError::Missing("input_blind"))?,
            output_blind: output_blind.ok_or(PayloadError::Missing("output_blind"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex with any whitespace, so byte strings can be laid out item by item.
    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    fn request(s: &str) -> Result<RequestPayload, PayloadError> {
        RequestPayload::decode(&h(s))
    }

    // Encoded text keys used below.
    const WASM: &str = "64 7761736d";
    const ARGS_KEY: &str = "64 61726773";
    const ENV_KEY: &str = "63 656e76";
    const LIMITS: &str = "66 6c696d697473";
    const FUEL: &str = "64 6675656c";

    fn full_request() -> RequestPayload {
        RequestPayload {
            wasm: b"\0asm\x01\0\0\0".to_vec(),
            entry: Some("run".into()),
            args: vec!["a".into(), "".into(), "ünï".into()],
            env: vec![
                ("A".into(), "1".into()),
                ("B".into(), "".into()),
                ("PATH".into(), "/x".into()),
            ],
            stdin: b"input".to_vec(),
            limits: RequestedLimits {
                fuel: Some(1 << 40),
                memory_bytes: None,
                output_bytes: Some(0),
                timeout_ms: Some(5),
            },
            seed: Some([7; 32]),
        }
    }

    #[test]
    fn request_round_trips() {
        let full = full_request();
        assert_eq!(RequestPayload::decode(&full.encode()), Ok(full));
        let minimal = RequestPayload {
            wasm: vec![1],
            ..Default::default()
        };
        assert_eq!(minimal.encode(), h(&format!("a1 {WASM} 41 01")));
        assert_eq!(RequestPayload::decode(&minimal.encode()), Ok(minimal));
    }

    #[test]
    fn request_encoding_is_deterministic() {
        let payload = RequestPayload {
            wasm: vec![0],
            entry: Some("run".into()),
            args: vec!["a".into()],
            limits: RequestedLimits {
                fuel: Some(1),
                ..Default::default()
            },
            ..Default::default()
        };
        // args, wasm (4-byte keys, bytewise), entry (5), limits (6).
        let expected = format!(
            "a4 {ARGS_KEY} 81 6161  {WASM} 41 00  65 656e747279 63 72756e  {LIMITS} a1 {FUEL} 01"
        );
        assert_eq!(payload.encode(), h(&expected));
    }

    #[test]
    fn env_is_encoded_sorted_and_decoded_in_wire_order() {
        let payload = RequestPayload {
            wasm: vec![],
            env: vec![
                ("BB".into(), "1".into()),
                ("C".into(), "2".into()),
                ("A".into(), "3".into()),
            ],
            ..Default::default()
        };
        let sorted = h(&format!(
            "a2 {ENV_KEY} a3 6141 6133 6143 6132 624242 6131 {WASM} 40"
        ));
        assert_eq!(payload.encode(), sorted);
        let unsorted = h(&format!("a2 {WASM} 40 {ENV_KEY} a2 6143 6132 6141 6133"));
        let decoded = RequestPayload::decode(&unsorted).unwrap();
        assert_eq!(
            decoded.env,
            [("C".into(), "2".into()), ("A".into(), "3".into())]
        );
    }

    #[test]
    fn non_shortest_forms_are_accepted() {
        // A 4-byte key with a one-byte length, and a bytes length in two bytes.
        let decoded = request("a1 78 04 7761736d 59 0001 ff").unwrap();
        assert_eq!(decoded.wasm, [0xff]);
    }

    #[test]
    fn duplicates_are_rejected() {
        let err = request(&format!("a2 {WASM} 40 {WASM} 40")).unwrap_err();
        assert_eq!(
            err,
            PayloadError::DuplicateKey {
                map: None,
                key: "wasm".into()
            }
        );
        assert_eq!(err.to_string(), "duplicate key `wasm`");

        let err = request(&format!("a2 {WASM} 40 {LIMITS} a2 {FUEL} 01 {FUEL} 02")).unwrap_err();
        assert_eq!(err.to_string(), "duplicate key `fuel` in limits");

        let err = request(&format!("a2 {WASM} 40 {ENV_KEY} a2 6141 6131 6141 6132")).unwrap_err();
        assert_eq!(err.to_string(), "duplicate key `A` in env");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = request(&format!("a2 {WASM} 40 63 666f6f 00")).unwrap_err();
        assert_eq!(err.to_string(), "unknown key `foo`");
        let err = request(&format!("a2 {WASM} 40 {LIMITS} a1 64 66756c65 01")).unwrap_err();
        assert_eq!(
            err,
            PayloadError::UnknownKey {
                map: Some("limits"),
                key: "fule".into()
            }
        );
        assert_eq!(err.to_string(), "unknown key `fule` in limits");
    }

    #[test]
    fn key_names_in_messages_are_capped_and_escaped() {
        let long = "k".repeat(100);
        let err = request(&format!("a2 {WASM} 40 78 64 {}  00", hex::encode(&long))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unknown key `{}…`", "k".repeat(64))
        );
        let err = request(&format!("a2 {WASM} 40 62 0a41 00")).unwrap_err();
        assert_eq!(err.to_string(), "unknown key `\\nA`");
    }

    #[test]
    fn structural_errors() {
        use cbor::Error::*;
        let cases = [
            // A tag in front of the `wasm` value, and one in front of the whole payload.
            (format!("a1 {WASM} c0 40"), Tag),
            (format!("c0 a1 {WASM} 40"), Tag),
            // Indefinite-length bytes, array and map.
            (format!("a1 {WASM} 5f 41 00 ff"), Indefinite),
            (format!("a2 {WASM} 40 {ARGS_KEY} 9f ff"), Indefinite),
            (format!("bf {WASM} 40 ff"), Indefinite),
            // args nests 8 arrays below the top-level map: 9 levels.
            (
                format!("a2 {WASM} 40 {ARGS_KEY} {}80", "81".repeat(7)),
                TooDeep,
            ),
            (format!("a1 {WASM} 40 00"), Trailing),
            (format!("a1 {WASM} 42 00"), Truncated),
            (format!("a2 {WASM} 40"), Truncated),
            (String::new(), Truncated),
            // A byte string declaring 2^64 - 1 bytes: refused from the input length alone.
            (format!("a1 {WASM} 5b ffffffffffffffff 00"), Truncated),
            (format!("a1 {WASM} 40 ff"), Trailing),
            ("a1 62 c328 40".to_string(), InvalidUtf8),
        ];
        for (input, expected) in cases {
            assert_eq!(
                request(&input),
                Err(PayloadError::Cbor(expected)),
                "{input}"
            );
        }
        assert_eq!(
            PayloadError::Cbor(TooDeep).to_string(),
            "nesting deeper than 8"
        );
        assert_eq!(PayloadError::Cbor(Tag).to_string(), "tags are not allowed");
        assert_eq!(PayloadError::Cbor(Truncated).to_string(), "truncated CBOR");
    }

    #[test]
    fn eight_levels_are_structurally_fine() {
        // Same shape as the 9-level case with one level less: now only the type is wrong.
        let err = request(&format!("a2 {WASM} 40 {ARGS_KEY} {}80", "81".repeat(6))).unwrap_err();
        assert_eq!(err.to_string(), "`args` must be an array of text");
    }

    #[test]
    fn wrong_types_are_rejected() {
        let cases = [
            (
                format!("a2 {WASM} 40 {LIMITS} a1 {FUEL} 61 31"),
                "`limits.fuel` must be an unsigned integer",
            ),
            (
                format!("a2 {WASM} 40 {LIMITS} a1 {FUEL} 20"),
                "`limits.fuel` must be an unsigned integer",
            ),
            (
                format!("a2 {WASM} 40 {LIMITS} a1 {FUEL} f93c00"),
                "`limits.fuel` must be an unsigned integer",
            ),
            (
                format!("a2 {WASM} 40 {LIMITS} 80"),
                "`limits` must be a map",
            ),
            (
                format!("a2 {WASM} 40 {ARGS_KEY} 82 6161 01"),
                "`args` must be an array of text",
            ),
            (
                format!("a2 {WASM} 40 {ENV_KEY} a1 6141 01"),
                "`env` must be a map of text to text",
            ),
            (
                format!("a2 {WASM} 40 {ENV_KEY} a1 01 6141"),
                "`env` must be a map of text to text",
            ),
            (format!("a1 {WASM} 60"), "`wasm` must be bytes"),
            (
                format!("a2 {WASM} 40 65 737464696e f6"),
                "`stdin` must be bytes",
            ),
            (
                format!("a2 {WASM} 40 65 656e747279 40"),
                "`entry` must be text",
            ),
            (
                format!("a2 {WASM} 40 64 73656564 58 1f {}", "00".repeat(31)),
                "`seed` must be 32 bytes",
            ),
            (
                format!("a2 {WASM} 40 64 73656564 60"),
                "`seed` must be 32 bytes",
            ),
            (format!("a2 {WASM} 40 01 00"), "map keys must be text"),
            ("80".into(), "the payload must be a CBOR map"),
            ("a0".into(), "missing `wasm`"),
        ];
        for (input, message) in cases {
            assert_eq!(request(&input).unwrap_err().to_string(), message, "{input}");
        }
    }

    #[test]
    fn strings_wasi_cannot_pass_are_rejected() {
        let cases = [
            (
                format!("a2 {WASM} 40 {ARGS_KEY} 81 63 610062"),
                "`args` must not contain NUL",
            ),
            (
                format!("a2 {WASM} 40 {ENV_KEY} a1 62 4100 6131"),
                "`env` must not contain NUL",
            ),
            (
                format!("a2 {WASM} 40 {ENV_KEY} a1 6141 62 3100"),
                "`env` must not contain NUL",
            ),
            (
                format!("a2 {WASM} 40 {ENV_KEY} a1 63 413d42 6131"),
                "`env` keys must not contain `=`",
            ),
            (
                format!("a2 {WASM} 40 65 656e747279 60"),
                "`entry` must not be empty",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(request(&input).unwrap_err().to_string(), message, "{input}");
        }
        // `=` is fine in a value.
        let ok = request(&format!("a2 {WASM} 40 {ENV_KEY} a1 6141 63 613d62")).unwrap();
        assert_eq!(ok.env, [("A".into(), "a=b".into())]);
    }

    #[test]
    fn no_input_panics() {
        // Every prefix, and every single-byte change to a few values, of a full payload.
        let full = full_request().encode();
        for len in 0..full.len() {
            assert!(
                RequestPayload::decode(&full[..len]).is_err(),
                "prefix {len}"
            );
        }
        for i in 0..full.len() {
            for byte in [
                0x00, 0x17, 0x1f, 0x3b, 0x5b, 0x7f, 0x9b, 0xbb, 0xc0, 0xf6, 0xff,
            ] {
                let mut changed = full.clone();
                changed[i] = byte;
                let _ = RequestPayload::decode(&changed);
                let _ = OutputMap::decode(&changed);
            }
        }
    }

    fn minimal_output() -> OutputMap {
        OutputMap {
            status: Status::Ok,
            exit_code: Some(0),
            stdout: vec![],
            stderr: vec![],
            returns: None,
            error: None,
            limits: Limits {
                fuel: 1,
                memory_bytes: 2,
                output_bytes: 3,
                timeout_ms: 4,
            },
            fuel_consumed: 5,
            duration_us: 6,
            engine: "e".into(),
            server_seed: [0x11; 32],
            random_seed: [0x22; 32],
        }
    }

    #[test]
    fn output_map_key_order_is_deterministic() {
        // RFC 8949 §4.2.1: keys sorted by their encoded bytes, so by length, then bytewise.
        let expected = concat!(
            "ab",
            "65 6572726f72 f6",                 // "error": null
            "66 656e67696e65 61 65",            // "engine": "e"
            "66 6c696d697473 a4",               // "limits": {
            "  64 6675656c 01",                 //   "fuel": 1
            "  6a 74696d656f75745f6d73 04",     //   "timeout_ms": 4
            "  6c 6d656d6f72795f6279746573 02", //   "memory_bytes": 2
            "  6c 6f75747075745f6279746573 03", //   "output_bytes": 3 }
            "66 737461747573 62 6f6b",          // "status": "ok"
            "66 737464657272 40",               // "stderr": h''
            "66 7374646f7574 40",               // "stdout": h''
            "69 657869745f636f6465 00",         // "exit_code": 0
            "6b 6475726174696f6e5f7573 06",     // "duration_us": 6
            "6b 72616e646f6d5f73656564 5820",   // "random_seed":
            "  2222222222222222222222222222222222222222222222222222222222222222",
            "6b 7365727665725f73656564 5820", // "server_seed":
            "  1111111111111111111111111111111111111111111111111111111111111111",
            "6d 6675656c5f636f6e73756d6564 05", // "fuel_consumed": 5
        );
        let output = minimal_output();
        assert_eq!(hex::encode(output.encode()), hex::encode(h(expected)));
        assert_eq!(OutputMap::decode(&output.encode()), Ok(output));
    }

    #[test]
    fn returns_encoding() {
        let output = OutputMap {
            status: Status::Trap,
            exit_code: None,
            returns: Some(vec![
                ReturnValue::I32(-1),
                ReturnValue::F32(1.0f32.to_bits()),
                ReturnValue::I64(i64::MIN),
                ReturnValue::F64(0x7ff8_0000_0000_0000),
            ]),
            error: Some("unreachable".into()),
            ..minimal_output()
        };
        let expected = concat!(
            "67 72657475726e73 84",               // "returns": [
            "  82 63 693332 20",                  //   ["i32", -1]
            "  82 63 663332 1a 3f800000",         //   ["f32", 0x3f800000]
            "  82 63 693634 3b 7fffffffffffffff", // ["i64", -2^63]
            "  82 63 663634 1b 7ff8000000000000", // ["f64", quiet NaN bits] ]
        );
        let encoded = output.encode();
        let expected = h(expected);
        assert!(
            encoded.windows(expected.len()).any(|w| w == expected),
            "{}",
            hex::encode(&encoded)
        );
        assert_eq!(OutputMap::decode(&encoded), Ok(output.clone()));
        let empty = OutputMap {
            returns: Some(vec![]),
            ..output
        };
        assert_eq!(OutputMap::decode(&empty.encode()), Ok(empty));
    }

    /// The minimal output map's encoding with `from` replaced by `to` (both hex).
    fn edited_output(from: &str, to: &str) -> Result<OutputMap, PayloadError> {
        let encoded = hex::encode(minimal_output().encode());
        let (from, to) = (hex::encode(h(from)), hex::encode(h(to)));
        assert!(encoded.contains(&from));
        OutputMap::decode(&h(&encoded.replacen(&from, &to, 1)))
    }

    #[test]
    fn output_map_decoding_is_strict() {
        let cases = [
            (
                "ab 65 6572726f72",
                "ab 65 6572726f73",
                "unknown key `erros`",
            ),
            (
                "69 657869745f636f6465 00",
                "69 657869745f636f6465 20",
                "`exit_code` must be an unsigned 32-bit integer or null",
            ),
            ("62 6f6b", "62 6f6f", "unknown status `oo`"),
            (
                "6d 6675656c5f636f6e73756d6564 05",
                "6d 6675656c5f636f6e73756d6564 60",
                "`fuel_consumed` must be an unsigned integer",
            ),
            (
                "a4 64 6675656c 01",
                "a5 64 6675656c 01 64 6675656c 01",
                "duplicate key `fuel` in limits",
            ),
            ("a4 64 6675656c 01 6a", "a3 6a", "missing `limits.fuel`"),
            ("ab 65 6572726f72 f6", "aa", "missing `error`"),
        ];
        for (from, to, message) in cases {
            assert_eq!(
                edited_output(from, to).unwrap_err().to_string(),
                message,
                "{to}"
            );
        }
        assert_eq!(edited_output("ab", "ab").unwrap(), minimal_output());
        // A `returns` entry put first (decoding does not check key order) whose i32 is 2^31.
        let returns = h("ac 67 72657475726e73 81 82 63 693332 1a 80000000");
        let with_returns = [&returns[..], &minimal_output().encode()[1..]].concat();
        assert_eq!(
            OutputMap::decode(&with_returns).unwrap_err().to_string(),
            "a `returns` value does not fit its type"
        );
    }

    #[test]
    fn result_payload() {
        let payload = ResultPayload {
            output: vec![0xa0],
            input_blind: [1; 32],
            output_blind: [2; 32],
        };
        let expected = concat!(
            "a3",
            "66 6f7574707574 41 a0",          // "output"
            "6b 696e7075745f626c696e64 5820", // "input_blind"
            "  0101010101010101010101010101010101010101010101010101010101010101",
            "6c 6f75747075745f626c696e64 5820", // "output_blind"
            "  0202020202020202020202020202020202020202020202020202020202020202",
        );
        assert_eq!(hex::encode(payload.encode()), hex::encode(h(expected)));
        assert_eq!(ResultPayload::decode(&payload.encode()), Ok(payload));

        let short =
            h("a3 66 6f7574707574 40 6b 696e7075745f626c696e64 40 6c 6f75747075745f626c696e64 40");
        assert_eq!(
            ResultPayload::decode(&short).unwrap_err().to_string(),
            "`input_blind` must be 32 bytes"
        );
        let missing = h("a1 66 6f7574707574 40");
        assert_eq!(
            ResultPayload::decode(&missing).unwrap_err().to_string(),
            "missing `input_blind`"
        );
    }

    #[test]
    fn status_names() {
        let names = [
            "timeout",
            "out_of_fuel",
            "output_limit",
            "memory_limit",
            "invalid_module",
            "link_error",
            "bad_payload",
            "trap",
            "exit",
            "ok",
        ];
        for (status, name) in Status::ALL.into_iter().zip(names) {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(Status::from_str_name(name), Some(status));
        }
        assert_eq!(Status::from_str_name("OK"), None);
    }
}
