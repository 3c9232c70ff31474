//! The state one execution's host functions work on: argv and environ, the stdin cursor, the
//! capped output, the random keystream, the virtual clocks, the fuel meter and the store's
//! resource limits.
//!
//! The host's copies of the request's inputs (argv, environ, stdin) are [`Secret`]s: their
//! bytes are overwritten with zeros when the execution ends and the host is dropped, whatever
//! way the run ended. Each is allocated once at its final size, so no reallocation leaves an
//! unwiped copy behind.

use chacha20::cipher::StreamCipher;
use chacha20::{ChaCha20, KeyIvInit};
use wasmi::errors::HostError;
use zeroize::Zeroizing;

use super::Program;
use super::fuel::Meter;
use super::limiter::Limiter;

/// Why a host function stops the program. It travels through wasmi as a host error and is
/// downcast again when the call returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Stop {
    #[error("proc_exit({0})")]
    Exit(u32),
    #[error("the output limit was reached")]
    OutputLimit,
    #[error("the fuel limit was reached")]
    OutOfFuel,
    #[error("the time limit was reached")]
    TimedOut,
    /// Anything else a host function refuses to continue from; the run ends as a trap.
    #[error("{0}")]
    Trap(&'static str),
}

impl HostError for Stop {}

/// Where `fd_write` sends bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

/// stdout and stderr, which together may hold at most `output_bytes`.
#[derive(Debug)]
pub(super) struct Output {
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
    room: u64,
}

impl Output {
    fn new(cap: u64) -> Self {
        Self {
            stdout: Vec::new(),
            stderr: Vec::new(),
            room: cap,
        }
    }

    /// How many more bytes stdout and stderr may take together.
    pub(super) fn room(&self) -> u64 {
        self.room
    }

    /// Keeps what fits of `bytes`; if that is not all of them the program must stop.
    pub(super) fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Stop> {
        let fits = usize::try_from(self.room)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let (kept, cut) = bytes.split_at(fits);
        match stream {
            Stream::Stdout => self.stdout.extend_from_slice(kept),
            Stream::Stderr => self.stderr.extend_from_slice(kept),
        }
        self.room = self
            .room
            .saturating_sub(u64::try_from(fits).unwrap_or(u64::MAX));
        if cut.is_empty() {
            Ok(())
        } else {
            Err(Stop::OutputLimit)
        }
    }
}

/// Bytes of the request's inputs, zeroed when dropped.
pub(super) type Secret = Zeroizing<Vec<u8>>;

/// The store's data: everything the guest can observe besides its own memory.
pub(super) struct Host {
    /// argv, `argv[0]` included, without terminators.
    pub(super) args: Vec<Secret>,
    /// `KEY=VALUE` strings, without terminators.
    pub(super) env: Vec<Secret>,
    stdin: Secret,
    stdin_read: usize,
    pub(super) output: Output,
    keystream: ChaCha20,
    realtime_base_ns: u64,
    pub(super) meter: Meter,
    pub(super) limits: Limiter,
}

impl Host {
    pub(super) fn new(
        program: &Program<'_>,
        output_bytes: u64,
        meter: Meter,
        limits: Limiter,
    ) -> Self {
        let argv0 = std::iter::once("program");
        Self {
            args: argv0
                .chain(program.args.iter().map(String::as_str))
                .map(|arg| Zeroizing::new(arg.as_bytes().to_vec()))
                .collect(),
            env: program
                .env
                .iter()
                .map(|(key, value)| env_entry(key, value))
                .collect(),
            stdin: Zeroizing::new(program.stdin.to_vec()),
            stdin_read: 0,
            output: Output::new(output_bytes),
            // RFC 8439 ChaCha20: 96-bit zero nonce, and the block counter starts at 0.
            keystream: ChaCha20::new(&program.random_seed.into(), &[0; 12].into()),
            // Saturating: an absurd `issued_at` gives a pinned clock, not a wrapped one.
            realtime_base_ns: program.issued_at_secs.saturating_mul(1_000_000_000),
            meter,
            limits,
        }
    }

    /// How many stdin bytes have not been read yet.
    pub(super) fn stdin_unread(&self) -> usize {
        self.stdin.len().saturating_sub(self.stdin_read)
    }

    /// Copies the next unread stdin bytes into `buf`; 0 means end of file.
    pub(super) fn read_stdin(&mut self, buf: &mut [u8]) -> usize {
        let unread = self.stdin.get(self.stdin_read..).unwrap_or_default();
        let n = unread.len().min(buf.len());
        if let (Some(to), Some(from)) = (buf.get_mut(..n), unread.get(..n)) {
            to.copy_from_slice(from);
        }
        self.stdin_read = self.stdin_read.saturating_add(n);
        n
    }

    /// Fills `buf` with the next bytes of the keystream.
    pub(super) fn fill_random(&mut self, buf: &mut [u8]) -> Result<(), Stop> {
        // 2^32 blocks (256 GiB) is the end of an RFC 8439 keystream; no run gets there, but it
        // must not panic if one tried.
        self.keystream
            .try_write_keystream(buf)
            .map_err(|_| Stop::Trap("random_get: the keystream is exhausted"))
    }

    /// The virtual clock `id` in nanoseconds, given the fuel consumed so far; `None` for the
    /// clocks we do not offer (the CPU-time clocks).
    pub(super) fn clock_ns(&self, id: u32, fuel_consumed: u64) -> Option<u64> {
        match id {
            REALTIME => Some(self.realtime_base_ns.saturating_add(fuel_consumed)),
            MONOTONIC => Some(fuel_consumed),
            _ => None,
        }
    }
}

/// `KEY=VALUE`, built in one allocation of its exact size (`format!` would grow its buffer and
/// leave the smaller copies unwiped).
fn env_entry(key: &str, value: &str) -> Secret {
    let mut entry = Vec::with_capacity(key.len().saturating_add(value.len()).saturating_add(1));
    entry.extend_from_slice(key.as_bytes());
    entry.push(b'=');
    entry.extend_from_slice(value.as_bytes());
    Zeroizing::new(entry)
}

/// Preview-1 clock ids.
pub(super) const REALTIME: u32 = 0;
pub(super) const MONOTONIC: u32 = 1;

#[cfg(test)]
mod tests {
    use zeroize::ZeroizeOnDrop;

    use super::super::fuel::WorkerClock;
    use super::*;

    /// Compiles only for values that zero their memory when dropped.
    fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    #[test]
    fn the_copies_of_the_inputs_are_wiped_on_drop() {
        let args = ["a b".to_owned()];
        let env = [("KEY".to_owned(), "secret value".to_owned())];
        let program = Program {
            wasm: &[],
            entry: "_start",
            args: &args,
            env: &env,
            stdin: b"stdin secret",
            random_seed: [0; 32],
            issued_at_secs: 0,
        };
        let meter = Meter::new(0, 0, WorkerClock::new(0));
        let host = Host::new(&program, 0, meter, Limiter::new(0, 0));
        wiped_on_drop(&host.stdin);
        for item in host.args.iter().chain(&host.env) {
            wiped_on_drop(item);
        }
        assert_eq!(&host.stdin[..], b"stdin secret");
        let table = |items: &[Secret]| items.iter().map(|i| i.to_vec()).collect::<Vec<_>>();
        assert_eq!(table(&host.args), [&b"program"[..], b"a b"]);
        assert_eq!(table(&host.env), [b"KEY=secret value"]);
        // One exact allocation: no outgrown buffer was left behind unwiped.
        assert_eq!(host.env[0].capacity(), host.env[0].len());
    }

    #[test]
    fn output_keeps_what_fits_in_write_order() {
        let mut output = Output::new(5);
        assert_eq!(output.write(Stream::Stdout, b"abc"), Ok(()));
        assert_eq!(output.write(Stream::Stderr, b"de"), Ok(()));
        assert_eq!(output.write(Stream::Stdout, b""), Ok(()));
        assert_eq!(output.write(Stream::Stdout, b"f"), Err(Stop::OutputLimit));
        assert_eq!(
            (&output.stdout[..], &output.stderr[..]),
            (&b"abc"[..], &b"de"[..])
        );

        let mut output = Output::new(4);
        assert_eq!(
            output.write(Stream::Stderr, b"xyz!?"),
            Err(Stop::OutputLimit)
        );
        assert_eq!(output.stderr, b"xyz!");
    }
}
