//! One session's execution from sealed request to sealed result, in the steps the lanes take:
//! [`open`] (open, decode, apply limits, commit to the plaintext, prepare the run), the run's
//! slices, then [`finish_run`] (build the output map and seal it). Synchronous and CPU-bound:
//! every step runs on a lane thread, never on an HTTP or actor thread.

use std::time::Duration;

use wasm_hypervisor_protocol::api::ExecutedBody;
use wasm_hypervisor_protocol::commitment::{self, Digest};
use wasm_hypervisor_protocol::payload::{
    Limits, OutputMap, RequestPayload, RequestedLimits, ResultPayload, Status,
};
use wasm_hypervisor_protocol::sealing::{RESPONSE_NONCE_LEN, ResponseKey, SessionKeyPair};
use zeroize::Zeroizing;

use crate::sandbox::{self, Program, Run, RunReport, SandboxConfig, Step};

/// The server's default and maximum for each limit a request may set (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsPolicy {
    /// Applied where a request asks for nothing.
    pub default: Limits,
    /// The most a request can get; larger requests are clamped to it.
    pub max: Limits,
}

impl Default for LimitsPolicy {
    fn default() -> Self {
        Self {
            default: Limits {
                fuel: 1_000_000_000,
                memory_bytes: 64 << 20,
                output_bytes: 1 << 20,
                timeout_ms: 10_000,
            },
            max: Limits {
                fuel: 10_000_000_000,
                memory_bytes: 256 << 20,
                output_bytes: 16 << 20,
                timeout_ms: 60_000,
            },
        }
    }
}

impl LimitsPolicy {
    /// A request may lower a limit but never raise it past the maximum.
    pub(crate) fn apply(&self, requested: &RequestedLimits) -> Limits {
        let pick =
            |asked: Option<u64>, default: u64, max: u64| asked.map_or(default, |v| v.min(max));
        Limits {
            fuel: pick(requested.fuel, self.default.fuel, self.max.fuel),
            memory_bytes: pick(
                requested.memory_bytes,
                self.default.memory_bytes,
                self.max.memory_bytes,
            ),
            output_bytes: pick(
                requested.output_bytes,
                self.default.output_bytes,
                self.max.output_bytes,
            ),
            timeout_ms: pick(
                requested.timeout_ms,
                self.default.timeout_ms,
                self.max.timeout_ms,
            ),
        }
    }
}

/// Everything a worker needs to run one consumed session. Dropping it zeroizes the session's
/// private key and server seed.
pub struct Job {
    /// The session's id, which the response body names.
    pub session_id: [u8; 16],
    /// The session's HPKE key pair, whose private key opens the request.
    pub keys: SessionKeyPair,
    /// `H3(TBS)`, part of the request's HPKE `info`.
    pub announcement_hash: Digest,
    /// The TBS's `issued_at`: the epoch of the guest's realtime clock.
    pub issued_at: u64,
    /// The server's share of the program's randomness, committed in the announcement.
    pub server_seed: Zeroizing<[u8; 32]>,
    /// The sealed request exactly as received.
    pub enc_request: Vec<u8>,
}

/// What the daemon may publish about a sealed result: the response body's head (with the
/// sealed bytes), commitments and, for its own log and metrics, the status.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The execute answer's head, with the sealed result; taken when the result leaf is
    /// appended, because the log completes the body and keeps it.
    pub(crate) response: Option<ExecutedBody>,
    /// Binds the request commitment and the sealed result.
    pub result_commitment: Digest,
    pub(crate) input_commitment: Digest,
    pub(crate) output_commitment: Digest,
    pub(crate) status: Status,
    pub(crate) fuel_consumed: u64,
    pub(crate) duration: Duration,
}

/// How a run of a consumed session ended.
#[derive(Debug, Clone)]
pub enum Finished {
    /// A sealed result exists, whatever the program's status.
    Sealed(Box<Sealed>),
    /// The request did not open.
    UnsealFailed,
    /// The reason is for the daemon's log only, never for the client.
    Internal(&'static str),
}

/// A session whose request opened, between the crypto lane and the wasm lane.
pub(crate) enum Opened {
    /// The request did not open.
    UnsealFailed,
    /// The daemon failed; the reason is for its log only.
    Internal(&'static str),
    /// The payload decoded; the run waits for its slices.
    Run {
        run: Box<Run>,
        /// Memory to reserve before the run may start, at its own limits.
        reservation_bytes: u64,
        sealing: Sealing,
    },
    /// The payload did not decode: the output map is `bad_payload` already.
    BadPayload {
        output_map: Box<OutputMap>,
        sealing: Sealing,
    },
}

/// What sealing the result needs once the program has run. The plaintext is gone by then:
/// its commitment is made when it is opened.
pub(crate) struct Sealing {
    session_id: [u8; 16],
    request_commitment: Digest,
    input_commitment: Digest,
    input_blind: [u8; 32],
    response_key: ResponseKey,
    server_seed: Zeroizing<[u8; 32]>,
    random_seed: [u8; 32],
    limits: Limits,
}

/// Requests at least this long are hashed for their commitment on a thread of their own while
/// the lane's thread opens them: the two SHA3 passes over a large request (its sealed bytes,
/// and its plaintext for the input commitment) then take the time of one. A thread costs tens
/// of microseconds, what hashing about 10 KiB does.
const PARALLEL_COMMITMENT_MIN_BYTES: usize = 64 << 10;

/// Commits to one session's request, opens it and prepares its run: the crypto lane's
/// job. The commitment goes into the request leaf, which must be durable before the run starts.
pub(crate) fn open(job: Job, policy: &LimitsPolicy, config: &SandboxConfig) -> (Digest, Opened) {
    let Job {
        session_id,
        keys,
        announcement_hash,
        issued_at,
        server_seed,
        enc_request,
    } = job;
    let commit = || commitment::request_commitment(&announcement_hash, &enc_request);
    // A panic past the commitment ends the session as `internal`, with both its leaves, as
    // any other failure to open it does: only the lane's own catch would lose the commitment.
    let unseal = || {
        guarded(|| {
            let opened = keys.open_request(&announcement_hash, &enc_request);
            // The private key has done its one job; dropping it zeroizes it.
            drop(keys);
            opened.ok().map(|(plaintext, response_key)| {
                let input_blind = random_bytes::<32>()?;
                let input_commitment = commitment::input_commitment(&input_blind, &plaintext);
                Ok((plaintext, response_key, input_blind, input_commitment))
            })
        })
        .unwrap_or(Some(Err(OPENING_PANICKED)))
    };
    let (request_commitment, unsealed) = if enc_request.len() < PARALLEL_COMMITMENT_MIN_BYTES {
        (commit(), unseal())
    } else {
        std::thread::scope(|scope| {
            match std::thread::Builder::new().spawn_scoped(scope, commit) {
                Ok(hashing) => {
                    let unsealed = unseal();
                    let commitment = hashing
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (commitment, unsealed)
                }
                // No thread to be had: the same work, one pass after the other.
                Err(_) => (commit(), unseal()),
            }
        })
    };
    drop(enc_request);
    let opened = match unsealed {
        None => Opened::UnsealFailed,
        Some(Err(reason)) => Opened::Internal(reason),
        Some(Ok((plaintext, response_key, input_blind, input_commitment))) => {
            let sealing = Sealing {
                session_id,
                request_commitment,
                input_commitment,
                input_blind,
                response_key,
                random_seed: commitment::random_seed(&server_seed, &[0; 32]),
                server_seed,
                limits: policy.default,
            };
            guarded(|| prepare(plaintext, sealing, issued_at, policy, config))
                .unwrap_or(Opened::Internal(OPENING_PANICKED))
        }
    };
    (request_commitment, opened)
}

const OPENING_PANICKED: &str = "opening the request panicked";

/// `step`, or `None` if it panicked.
fn guarded<T>(step: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).ok()
}

/// Decodes an opened request's payload and prepares its run, at the limits it asked for
/// within `policy`.
fn prepare(
    plaintext: Zeroizing<Vec<u8>>,
    mut sealing: Sealing,
    issued_at: u64,
    policy: &LimitsPolicy,
    config: &SandboxConfig,
) -> Opened {
    let payload = match RequestPayload::decode(&plaintext) {
        Ok(payload) => Zeroizing::new(payload),
        Err(error) => {
            let output_map = OutputMap {
                status: Status::BadPayload,
                exit_code: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
                returns: None,
                error: Some(error.to_string()),
                limits: policy.default,
                fuel_consumed: 0,
                duration_us: 0,
                engine: sandbox::ENGINE.to_owned(),
                server_seed: *sealing.server_seed,
                random_seed: sealing.random_seed,
            };
            return Opened::BadPayload {
                output_map: Box::new(output_map),
                sealing,
            };
        }
    };
    drop(plaintext);
    sealing.limits = policy.apply(&payload.limits);
    sealing.random_seed =
        commitment::random_seed(&sealing.server_seed, &payload.seed.unwrap_or([0; 32]));
    let program = Program {
        wasm: &payload.wasm,
        entry: payload.entry.as_deref().unwrap_or("_start"),
        args: &payload.args,
        env: &payload.env,
        stdin: &payload.stdin,
        random_seed: sealing.random_seed,
        issued_at_secs: issued_at,
    };
    Opened::Run {
        run: Run::new(&program, sealing.limits, config),
        reservation_bytes: reservation_bytes(&payload, &sealing.limits, config),
        sealing,
    }
}

/// The memory a run may come to hold, at its own limits: its linear memory, its output, the
/// value stack, and its module and inputs with room for their translation (wasmi's code is a
/// few times the size of the Wasm it comes from).
fn reservation_bytes(payload: &RequestPayload, limits: &Limits, config: &SandboxConfig) -> u64 {
    let inputs = payload.wasm.len().saturating_mul(4)
        + payload.stdin.len()
        + payload.args.iter().map(String::len).sum::<usize>()
        + payload
            .env
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum::<usize>();
    limits
        .memory_bytes
        .saturating_add(limits.output_bytes)
        .saturating_add(config.max_stack_height as u64)
        .saturating_add(inputs as u64)
}

/// Builds the output map of a run that ended, and seals it: the job of the slice that ended it.
pub(crate) fn finish_run(sealing: Sealing, report: RunReport) -> Finished {
    let output_map = OutputMap {
        status: report.status,
        exit_code: report.exit_code,
        stdout: report.stdout,
        stderr: report.stderr,
        returns: report.returns,
        error: report.error,
        limits: sealing.limits,
        fuel_consumed: report.fuel_consumed,
        duration_us: u64::try_from(report.duration.as_micros()).unwrap_or(u64::MAX),
        engine: sandbox::ENGINE.to_owned(),
        server_seed: *sealing.server_seed,
        random_seed: sealing.random_seed,
    };
    seal(sealing, &Zeroizing::new(output_map))
}

/// Seals an output map into the result payload and computes the commitments.
pub(crate) fn seal(sealing: Sealing, output_map: &OutputMap) -> Finished {
    match try_seal(sealing, output_map) {
        Ok(sealed) => Finished::Sealed(Box::new(sealed)),
        Err(reason) => Finished::Internal(reason),
    }
}

fn try_seal(sealing: Sealing, output_map: &OutputMap) -> Result<Sealed, &'static str> {
    let output_blind = random_bytes::<32>()?;
    let result_payload = Zeroizing::new(ResultPayload {
        output: output_map.encode(),
        input_blind: sealing.input_blind,
        output_blind,
    });
    let enc_response = sealing
        .response_key
        .seal(
            &Zeroizing::new(result_payload.encode()),
            &random_bytes::<RESPONSE_NONCE_LEN>()?,
        )
        .map_err(|_| "sealing the response failed")?;
    let result_commitment =
        commitment::result_commitment(&sealing.request_commitment, &enc_response);
    Ok(Sealed {
        response: Some(ExecutedBody::new(
            &sealing.session_id,
            sealing.request_commitment,
            result_commitment,
            &enc_response,
        )),
        result_commitment,
        input_commitment: sealing.input_commitment,
        output_commitment: commitment::output_commitment(&output_blind, &result_payload.output),
        status: output_map.status,
        fuel_consumed: output_map.fuel_consumed,
        duration: Duration::from_micros(output_map.duration_us),
    })
}

/// Opens, runs and seals one session on this thread: for benchmarks and tests. The daemon
/// spreads the same steps over its lanes.
pub fn run(job: Job, policy: &LimitsPolicy, config: &SandboxConfig) -> Finished {
    match open(job, policy, config).1 {
        Opened::UnsealFailed => Finished::UnsealFailed,
        Opened::Internal(reason) => Finished::Internal(reason),
        Opened::BadPayload {
            output_map,
            sealing,
        } => seal(sealing, &output_map),
        Opened::Run {
            mut run, sealing, ..
        } => loop {
            match run.step() {
                Step::Yielded(next) => run = next,
                Step::Ended(report) => break finish_run(sealing, report),
            }
        },
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], &'static str> {
    crate::os_random().map_err(|_| "the OS random number generator failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request sealed to a fresh session key, as the supervisor hands it over.
    fn job(payload: &RequestPayload) -> Job {
        let keys = SessionKeyPair::derive(&[9; 32]);
        let announcement_hash = [7; 32];
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let (enc_request, _) = wasm_hypervisor_protocol::sealing::seal_request(
            keys.public_key(),
            &announcement_hash,
            &payload.encode(),
            &mut rng,
        )
        .unwrap();
        Job {
            session_id: [3; 16],
            keys,
            announcement_hash,
            issued_at: 0,
            server_seed: Zeroizing::new([1; 32]),
            enc_request,
        }
    }

    #[test]
    fn small_and_large_requests_are_committed_to_and_opened_alike() {
        let policy = LimitsPolicy::default();
        let config = SandboxConfig::default();
        for stdin_len in [0, PARALLEL_COMMITMENT_MIN_BYTES] {
            let payload = RequestPayload {
                wasm: wat::parse_str("(module (func (export \"_start\")))").unwrap(),
                stdin: vec![5; stdin_len],
                ..RequestPayload::default()
            };
            let job = job(&payload);
            let expected = commitment::request_commitment(&job.announcement_hash, &job.enc_request);
            let (request_commitment, opened) = open(job, &policy, &config);
            assert_eq!(request_commitment, expected, "stdin of {stdin_len} bytes");
            let Opened::Run { sealing, .. } = opened else {
                panic!("a valid request opens and is ready to run");
            };
            assert_eq!(sealing.request_commitment, expected);
            assert_eq!(
                sealing.input_commitment,
                commitment::input_commitment(&sealing.input_blind, &payload.encode())
            );
        }
    }

    #[test]
    fn a_large_request_that_does_not_open_is_still_committed_to() {
        let mut job = job(&RequestPayload::default());
        job.enc_request.resize(2 * PARALLEL_COMMITMENT_MIN_BYTES, 0);
        let expected = commitment::request_commitment(&job.announcement_hash, &job.enc_request);
        let (request_commitment, opened) =
            open(job, &LimitsPolicy::default(), &SandboxConfig::default());
        assert_eq!(request_commitment, expected);
        assert!(matches!(opened, Opened::UnsealFailed));
    }

    #[test]
    fn requests_may_lower_limits_but_never_raise_them() {
        let policy = LimitsPolicy::default();
        let applied = policy.apply(&RequestedLimits {
            fuel: Some(5),
            memory_bytes: Some(u64::MAX),
            output_bytes: None,
            timeout_ms: Some(policy.max.timeout_ms),
        });
        assert_eq!(applied.fuel, 5);
        assert_eq!(applied.memory_bytes, policy.max.memory_bytes);
        assert_eq!(applied.output_bytes, policy.default.output_bytes);
        assert_eq!(applied.timeout_ms, policy.max.timeout_ms);
    }
}
