//! The daemon's configuration: `serve`'s flags, each also read from a `WASM_HYPERVISOR_…`
//! environment variable, turned into the settings of the server, supervisor and sandbox.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use wasm_hypervisor_actors::auditor::audit_log::ResultRetention;
use wasm_hypervisor_actors::auditor::store::{DEFAULT_CACHE_BYTES, StoreKind};
use wasm_hypervisor_actors::budget::BudgetConfig;
use wasm_hypervisor_actors::sandbox::SandboxConfig;
use wasm_hypervisor_actors::session::LimitsPolicy;
use wasm_hypervisor_actors::shares::AddressShare;
use wasm_hypervisor_actors::supervisor::{SupervisorConfig, default_worker_threads};
use wasm_hypervisor_protocol::identity::validate_origin;
use wasm_hypervisor_protocol::payload::Limits;

pub use crate::edge::{ConnectionLimits, InvalidProxyAddress, TrustedProxies};
pub use crate::http::{BodyLimits, RateConfig};

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) listen: SocketAddr,
    /// Where `/metrics` (and the probes) are served, apart from the public API; `None`: not
    /// served. Default: none here, 127.0.0.1:9464 for `serve`.
    pub admin_listen: Option<SocketAddr>,
    /// Bounds of every public connection.
    pub connections: ConnectionLimits,
    /// How request bodies must arrive, and how many of their bytes may be in flight.
    pub bodies: BodyLimits,
    /// The part of each global resource (connections, open sessions, queued executions and
    /// their bytes, bytes of bodies being received) that one client address may hold; it
    /// replaces the shares in `budget` and `supervisor`. Default: 25 %.
    pub address_share: AddressShare,
    /// Requests per second per client address; `None`: unlimited. Default: none.
    pub rate: Option<RateConfig>,
    /// Serve HTTPS with this PEM certificate chain and private key.
    pub tls: Option<TlsFiles>,
    /// Holds the identity key and the audit log.
    pub data_dir: PathBuf,
    /// The audit log's backend.
    pub store: StoreKind,
    /// The store's page cache, in bytes. Default: 64 MiB.
    pub store_cache_bytes: usize,
    /// How long and how many bytes of finished results the log keeps.
    pub retention: ResultRetention,
    /// Re-verify every stored leaf in the background after start-up. Default: off.
    pub scrub: bool,
    /// Bytes of kept results being read and sent at once; past it `GET …/result` is answered
    /// 503. Default: 256 MiB.
    pub max_result_read_bytes: usize,
    /// `None`: derived from the identity key's fingerprint.
    pub origin: Option<String>,
    /// The policy file `GET /policy` serves (§9), read again on every request; `None`: a
    /// policy of this daemon alone. Default: none.
    pub policy_file: Option<PathBuf>,
    /// Wasm worker threads, each running one slice of one execution at a time. Default: one
    /// per core.
    pub worker_threads: usize,
    /// Threads for announcements and for hashing and opening requests. Default: one per core.
    pub crypto_threads: usize,
    /// The memory budget of running executions and the bounds of the queue waiting for it.
    pub budget: BudgetConfig,
    /// Session limits, time-outs and retention.
    pub supervisor: SupervisorConfig,
    /// How long a stopping daemon goes on serving the sessions it announced before it aborts
    /// what still runs. Default: 60 s, one session TTL.
    pub shutdown_grace: Duration,
    pub(crate) limits: LimitsPolicy,
    pub(crate) sandbox: SandboxConfig,
}

impl ServerConfig {
    /// Defaults throughout, listening on `listen` with data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            admin_listen: None,
            connections: ConnectionLimits::default(),
            bodies: BodyLimits::default(),
            address_share: AddressShare::DEFAULT,
            rate: None,
            tls: None,
            data_dir,
            store: StoreKind::default(),
            store_cache_bytes: DEFAULT_CACHE_BYTES,
            retention: ResultRetention::default(),
            scrub: false,
            max_result_read_bytes: DEFAULT_MAX_RESULT_READ_BYTES,
            origin: None,
            policy_file: None,
            worker_threads: default_worker_threads(),
            crypto_threads: default_worker_threads(),
            budget: BudgetConfig::default(),
            supervisor: SupervisorConfig::default(),
            shutdown_grace: Duration::from_secs(60),
            limits: LimitsPolicy::default(),
            sandbox: SandboxConfig::default(),
        }
    }
}

/// The default of `--max-result-read-bytes`: sixteen of the largest results at once.
pub const DEFAULT_MAX_RESULT_READ_BYTES: usize = 256 << 20;

/// PEM files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server certificate first, then any intermediates.
    pub certificate_chain: PathBuf,
    /// The certificate's private key.
    pub private_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub(crate) struct ConfigError {
    pub(crate) setting: &'static str,
    pub(crate) reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

/// `wasm-hypervisor serve` flags. Each setting comes from its flag, else its environment
/// variable, else the `--config` file (its key is the flag's name), else its default.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// TOML file of settings, keyed by flag name (e.g. `max-fuel = 5000000000`).
    #[arg(long, env = "WASM_HYPERVISOR_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Log filter: a level (error, warn, info, debug, trace) or an env_logger filter;
    /// `RUST_LOG`, if set, wins.
    #[arg(long, env = "WASM_HYPERVISOR_LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: String,
    /// Address to listen on.
    #[arg(long, env = "WASM_HYPERVISOR_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Address of the admin listener, which serves /metrics (and /healthz, /readyz); `off`
    /// serves none. Keep it off the public network.
    #[arg(
        long,
        env = "WASM_HYPERVISOR_ADMIN_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub(crate) admin_listen: String,
    /// Public connections open at once (lowered to what the open-file limit leaves).
    #[arg(long, env = "WASM_HYPERVISOR_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub(crate) max_connections: usize,
    /// Percent of each global resource (connections, open sessions, queued executions and
    /// their bytes, bytes of bodies being received) one client address may hold; past it, 429.
    #[arg(
        long,
        env = "WASM_HYPERVISOR_ADDRESS_SHARE_PERCENT",
        default_value_t = 25
    )]
    pub(crate) address_share_percent: u8,
    /// Seconds a client has to send a request's line and headers.
    #[arg(long, env = "WASM_HYPERVISOR_HEADER_TIMEOUT_SECS", default_value_t = ConnectionLimits::default().header_timeout.as_secs())]
    pub(crate) header_timeout_secs: u64,
    /// Seconds an idle connection is kept open between requests.
    #[arg(long, env = "WASM_HYPERVISOR_KEEP_ALIVE_SECS", default_value_t = ConnectionLimits::default().keep_alive.as_secs())]
    pub(crate) keep_alive_secs: u64,
    /// Seconds a response may wait for the client to read before the connection is closed.
    #[arg(long, env = "WASM_HYPERVISOR_WRITE_TIMEOUT_SECS", default_value_t = ConnectionLimits::default().write_timeout.as_secs())]
    pub(crate) write_timeout_secs: u64,
    /// Proxies (comma-separated IP addresses or CIDR prefixes) whose connections must begin
    /// with a PROXY protocol v2 header; its source address is then the client address that
    /// the per-address shares count. Other peers' bytes are never read as a PROXY header.
    /// [default: none]
    #[arg(long, env = "WASM_HYPERVISOR_TRUSTED_PROXIES")]
    pub(crate) trusted_proxies: Option<String>,
    /// Seconds a request body may pause, and may take before --body-min-rate applies; then 408.
    #[arg(long, env = "WASM_HYPERVISOR_BODY_TIMEOUT_SECS", default_value_t = BodyLimits::default().timeout.as_secs())]
    pub(crate) body_timeout_secs: u64,
    /// Bytes per second a request body must average after its first --body-timeout-secs; 0: no minimum.
    #[arg(long, env = "WASM_HYPERVISOR_BODY_MIN_RATE", default_value_t = BodyLimits::default().min_rate)]
    pub(crate) body_min_rate: u64,
    /// Bytes of request bodies being received at once before requests get 503.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_BODY_BYTES_IN_FLIGHT", default_value_t = BodyLimits::default().max_in_flight)]
    pub(crate) max_body_bytes_in_flight: u64,
    /// Requests per second each client address may make (health probes aside); 0: no limit.
    #[arg(long, env = "WASM_HYPERVISOR_RATE_PER_ADDRESS", default_value_t = 0)]
    pub(crate) rate_per_address: u32,
    /// Requests an idle address may make at once under --rate-per-address.
    #[arg(long, env = "WASM_HYPERVISOR_RATE_BURST", default_value_t = 50)]
    pub(crate) rate_burst: u32,
    /// PEM certificate chain: serve HTTPS instead of HTTP (needs --tls-key).
    #[arg(long, env = "WASM_HYPERVISOR_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "WASM_HYPERVISOR_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Directory for the identity key (and the audit log).
    #[arg(long, env = "WASM_HYPERVISOR_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,
    /// Audit log store: `redb` (fsyncs every commit) or `sled` (see the README).
    #[arg(long, env = "WASM_HYPERVISOR_STORE", default_value_t = StoreKind::default())]
    pub(crate) store: StoreKind,
    /// Name of the signing key and log [default: wasm-hypervisor/<16 hex digits of the fingerprint>].
    #[arg(long, env = "WASM_HYPERVISOR_ORIGIN")]
    pub(crate) origin: Option<String>,
    /// The service's policy (PROTOCOL.md §9: one `log <note verifier key> <URL>` line per
    /// replica, `quorum none`), served at `GET /policy` and read again on every request
    /// [default: none, a policy of this daemon alone: `log <its note verifier key>` without a
    /// URL].
    #[arg(long, env = "WASM_HYPERVISOR_POLICY_FILE")]
    pub(crate) policy_file: Option<PathBuf>,
    /// Threads that run wasm [default: one per core].
    #[arg(long, env = "WASM_HYPERVISOR_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// Threads for announcements and for hashing and opening requests [default: one per core].
    #[arg(long, env = "WASM_HYPERVISOR_CRYPTO_WORKERS")]
    pub(crate) crypto_workers: Option<usize>,
    /// Bytes that running executions may reserve together, each at its own limits (linear
    /// memory, output, stack, module and inputs); an execution that does not fit waits
    /// [default: half the machine's memory].
    #[arg(long, env = "WASM_HYPERVISOR_MEMORY_BUDGET")]
    pub(crate) memory_budget: Option<u64>,
    /// Executions admitted but not started before execute gets 503.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_QUEUED", default_value_t = BudgetConfig::default().max_queued)]
    pub(crate) max_queued: usize,
    /// Bytes of request bodies of executions admitted but not started before execute gets 503.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_QUEUED_BYTES", default_value_t = BudgetConfig::default().max_queued_bytes)]
    pub(crate) max_queued_bytes: u64,
    /// Largest module a program may have; larger is invalid_module.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_MODULE_BYTES", default_value_t = SandboxConfig::default().max_module_bytes)]
    pub(crate) max_module_bytes: usize,
    /// Sessions announced but not executed before new ones get 503.
    #[arg(
        long,
        env = "WASM_HYPERVISOR_MAX_OPEN_SESSIONS",
        default_value_t = 10_000
    )]
    pub(crate) max_open_sessions: usize,
    /// Seconds a stopping daemon (SIGTERM, SIGINT) goes on serving the sessions it announced
    /// before it gives what still runs an `aborted` result and exits.
    #[arg(long, env = "WASM_HYPERVISOR_SHUTDOWN_GRACE", default_value_t = 60)]
    pub(crate) shutdown_grace_secs: u64,
    /// Seconds a session may wait for its execute call.
    #[arg(long, env = "WASM_HYPERVISOR_SESSION_TTL", default_value_t = 60)]
    pub(crate) session_ttl_secs: u64,
    /// Seconds a result stays available at GET /sessions/{id}/result, across restarts.
    #[arg(long, env = "WASM_HYPERVISOR_RESULT_RETENTION", default_value_t = 600)]
    pub(crate) result_retention_secs: u64,
    /// Bytes of results kept on disk; past it the oldest are evicted (410 result_evicted).
    #[arg(long, env = "WASM_HYPERVISOR_RESULT_BUDGET_BYTES", default_value_t = ResultRetention::default().max_bytes)]
    pub(crate) result_budget_bytes: u64,
    /// Bytes of kept results being sent at once before GET /sessions/{id}/result gets 503.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_RESULT_READ_BYTES", default_value_t = DEFAULT_MAX_RESULT_READ_BYTES)]
    pub(crate) max_result_read_bytes: usize,
    /// The audit store's page cache, in bytes.
    #[arg(long, env = "WASM_HYPERVISOR_STORE_CACHE_BYTES", default_value_t = DEFAULT_CACHE_BYTES)]
    pub(crate) store_cache_bytes: usize,
    /// Re-verify every stored leaf in the background after start-up; a mismatch stops the
    /// daemon from taking work (start-up itself checks only the tree's right edge).
    #[arg(long, env = "WASM_HYPERVISOR_SCRUB", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) scrub: bool,
    /// Largest sealed request body, in bytes.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_REQUEST_BYTES", default_value_t = 16 << 20)]
    pub(crate) max_request_bytes: usize,
    /// Fuel when the request sets none.
    #[arg(long, env = "WASM_HYPERVISOR_DEFAULT_FUEL", default_value_t = LimitsPolicy::default().default.fuel)]
    pub(crate) default_fuel: u64,
    /// Most fuel a request may ask for.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_FUEL", default_value_t = LimitsPolicy::default().max.fuel)]
    pub(crate) max_fuel: u64,
    /// Linear memory bytes when the request sets none.
    #[arg(long, env = "WASM_HYPERVISOR_DEFAULT_MEMORY_BYTES", default_value_t = LimitsPolicy::default().default.memory_bytes)]
    pub(crate) default_memory_bytes: u64,
    /// Most linear memory bytes a request may ask for.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_MEMORY_BYTES", default_value_t = LimitsPolicy::default().max.memory_bytes)]
    pub(crate) max_memory_bytes: u64,
    /// stdout + stderr bytes when the request sets none.
    #[arg(long, env = "WASM_HYPERVISOR_DEFAULT_OUTPUT_BYTES", default_value_t = LimitsPolicy::default().default.output_bytes)]
    pub(crate) default_output_bytes: u64,
    /// Most stdout + stderr bytes a request may ask for.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_OUTPUT_BYTES", default_value_t = LimitsPolicy::default().max.output_bytes)]
    pub(crate) max_output_bytes: u64,
    /// Wall-clock milliseconds when the request sets none.
    #[arg(long, env = "WASM_HYPERVISOR_DEFAULT_TIMEOUT_MS", default_value_t = LimitsPolicy::default().default.timeout_ms)]
    pub(crate) default_timeout_ms: u64,
    /// Most wall-clock milliseconds a request may ask for.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_TIMEOUT_MS", default_value_t = LimitsPolicy::default().max.timeout_ms)]
    pub(crate) max_timeout_ms: u64,
    /// Table elements a program may have.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_TABLE_ELEMENTS", default_value_t = SandboxConfig::default().max_table_elements)]
    pub(crate) max_table_elements: u32,
    /// Nested calls a program may make.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_RECURSION_DEPTH", default_value_t = SandboxConfig::default().max_recursion_depth)]
    pub(crate) max_recursion_depth: usize,
    /// Bytes of value stack a program may use.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_STACK_HEIGHT", default_value_t = SandboxConfig::default().max_stack_height)]
    pub(crate) max_stack_height: usize,
}

/// The `serve` arguments to parse again with the `--config` file's settings placed before the
/// command line's, for every setting that neither a flag nor an environment variable gave: the
/// file fills gaps and never overrides.
pub(crate) fn arguments_with_config_file(
    serve: &clap::Command,
    matches: &ArgMatches,
    path: &Path,
    command_line: Vec<OsString>,
) -> Result<Vec<OsString>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| invalid("config", format!("cannot read {}: {error}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|error| invalid("config", format!("{}: {error}", path.display())))?;
    let mut from_file = Vec::new();
    for (key, value) in table {
        let id = key.replace('-', "_");
        let known = serve.get_arguments().any(|arg| arg.get_id() == id.as_str()) && id != "config";
        if !known {
            return Err(invalid(
                "config",
                format!("{}: unknown setting `{key}`", path.display()),
            ));
        }
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            other => {
                return Err(invalid(
                    "config",
                    format!(
                        "{}: `{key}` must be a string, an integer or a boolean, not {}",
                        path.display(),
                        other.type_str()
                    ),
                ));
            }
        };
        if matches!(
            matches.value_source(&id),
            None | Some(ValueSource::DefaultValue)
        ) {
            from_file.push(OsString::from(format!(
                "--{}={value}",
                id.replace('_', "-")
            )));
        }
    }
    let mut arguments = command_line;
    // After the program name and the subcommand.
    let at = arguments
        .iter()
        .position(|argument| argument == "serve")
        .map_or(arguments.len(), |serve| serve + 1);
    arguments.splice(at..at, from_file);
    Ok(arguments)
}

impl ServeArgs {
    pub(crate) fn into_config(self) -> Result<ServerConfig, ConfigError> {
        if let Some(origin) = &self.origin {
            validate_origin(origin).map_err(|error| invalid("origin", error.to_string()))?;
        }
        let worker_threads = self.workers.unwrap_or_else(default_worker_threads);
        if worker_threads == 0 {
            return Err(invalid("workers", "must be at least 1"));
        }
        let limits = LimitsPolicy {
            default: Limits {
                fuel: self.default_fuel,
                memory_bytes: self.default_memory_bytes,
                output_bytes: self.default_output_bytes,
                timeout_ms: self.default_timeout_ms,
            },
            max: Limits {
                fuel: self.max_fuel,
                memory_bytes: self.max_memory_bytes,
                output_bytes: self.max_output_bytes,
                timeout_ms: self.max_timeout_ms,
            },
        };
        for (setting, default, max) in [
            ("default-fuel", limits.default.fuel, limits.max.fuel),
            (
                "default-memory-bytes",
                limits.default.memory_bytes,
                limits.max.memory_bytes,
            ),
            (
                "default-output-bytes",
                limits.default.output_bytes,
                limits.max.output_bytes,
            ),
            (
                "default-timeout-ms",
                limits.default.timeout_ms,
                limits.max.timeout_ms,
            ),
        ] {
            if default > max {
                return Err(invalid(
                    setting,
                    format!("{default} is above its maximum {max}"),
                ));
            }
        }
        let crypto_threads = self.crypto_workers.unwrap_or_else(default_worker_threads);
        if crypto_threads == 0 {
            return Err(invalid("crypto-workers", "must be at least 1"));
        }
        if self.memory_budget == Some(0) {
            return Err(invalid("memory-budget", "must be above 0"));
        }
        let address_share = AddressShare::percent(self.address_share_percent)
            .ok_or_else(|| invalid("address-share-percent", "must be 1 to 100"))?;
        let budget = BudgetConfig {
            memory_bytes: self
                .memory_budget
                .unwrap_or_else(|| BudgetConfig::default().memory_bytes),
            max_queued: self.max_queued,
            max_queued_bytes: self.max_queued_bytes,
            address_share,
        };
        let admin_listen = match self.admin_listen.as_str() {
            "off" => None,
            addr => Some(addr.parse().map_err(|_| {
                invalid(
                    "admin-listen",
                    format!("`{addr}` is not an address:port or `off`"),
                )
            })?),
        };
        if self.max_connections == 0 {
            return Err(invalid("max-connections", "must be at least 1"));
        }
        let trusted_proxies = self
            .trusted_proxies
            .as_deref()
            .unwrap_or_default()
            .parse::<TrustedProxies>()
            .map_err(|error| invalid("trusted-proxies", error.to_string()))?;
        let rate = match (
            NonZeroU32::new(self.rate_per_address),
            NonZeroU32::new(self.rate_burst),
        ) {
            (None, _) => None,
            (Some(per_second), Some(burst)) => Some(RateConfig { per_second, burst }),
            (Some(_), None) => return Err(invalid("rate-burst", "must be at least 1")),
        };
        let sandbox = SandboxConfig {
            max_table_elements: self.max_table_elements,
            max_recursion_depth: self.max_recursion_depth,
            max_stack_height: self.max_stack_height,
            max_module_bytes: self.max_module_bytes,
            ..SandboxConfig::default()
        };
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(certificate_chain), Some(private_key)) => Some(TlsFiles {
                certificate_chain,
                private_key,
            }),
            (None, None) => None,
            _ => return Err(invalid("tls-cert", "--tls-cert and --tls-key go together")),
        };
        Ok(ServerConfig {
            listen: self.listen,
            admin_listen,
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                header_timeout: Duration::from_secs(self.header_timeout_secs),
                keep_alive: Duration::from_secs(self.keep_alive_secs),
                write_timeout: Duration::from_secs(self.write_timeout_secs),
                trusted_proxies,
            },
            bodies: BodyLimits {
                timeout: Duration::from_secs(self.body_timeout_secs),
                min_rate: self.body_min_rate,
                max_in_flight: self.max_body_bytes_in_flight,
            },
            address_share,
            rate,
            tls,
            data_dir: self.data_dir,
            store: self.store,
            store_cache_bytes: self.store_cache_bytes,
            retention: ResultRetention {
                period: Duration::from_secs(self.result_retention_secs),
                max_bytes: self.result_budget_bytes,
            },
            scrub: self.scrub,
            max_result_read_bytes: self.max_result_read_bytes,
            origin: self.origin,
            policy_file: self.policy_file,
            worker_threads,
            crypto_threads,
            budget,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            supervisor: SupervisorConfig {
                session_ttl: Duration::from_secs(self.session_ttl_secs),
                max_open_sessions: self.max_open_sessions,
                address_share,
                max_request_bytes: self.max_request_bytes,
            },
            limits,
            sandbox,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    enum TestCli {
        Serve(ServeArgs),
    }

    /// Parses `serve ARGS` with `file` as the `--config` file.
    fn parse(file: &str, args: &[&str]) -> Result<ServerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, file).unwrap();
        let mut command_line: Vec<OsString> = vec!["test".into(), "serve".into()];
        command_line.extend(args.iter().map(OsString::from));
        let command = TestCli::command();
        let matches = command.clone().try_get_matches_from(&command_line).unwrap();
        let (_, serve_matches) = matches.subcommand().unwrap();
        let serve = command.find_subcommand("serve").unwrap();
        let arguments = arguments_with_config_file(serve, serve_matches, &path, command_line)?;
        let TestCli::Serve(args) = TestCli::try_parse_from(arguments).unwrap();
        args.into_config()
    }

    #[test]
    fn the_file_fills_what_flags_leave_unset() {
        let config = parse(
            "max-fuel = 5000\ndefault-fuel = 100\norigin = \"example.org/log\"\nstore = \"sled\"\nscrub = true\n",
            &["--default-fuel", "50"],
        )
        .unwrap();
        assert_eq!(config.limits.max.fuel, 5000);
        assert_eq!(config.limits.default.fuel, 50, "a flag beats the file");
        assert_eq!(config.origin.as_deref(), Some("example.org/log"));
        assert_eq!(config.store, StoreKind::Sled);
        assert!(config.scrub);
        assert_eq!(
            config.supervisor.session_ttl,
            Duration::from_secs(60),
            "defaults stay"
        );
    }

    #[test]
    fn invalid_configuration_names_the_setting() {
        let unknown = parse("max-fule = 1\n", &[]).unwrap_err();
        assert!(unknown.to_string().contains("max-fule"), "{unknown}");
        let inconsistent = parse("max-fuel = 10\n", &[]).unwrap_err();
        assert_eq!(inconsistent.setting, "default-fuel");
        let origin = parse("origin = \"has space\"\n", &[]).unwrap_err();
        assert_eq!(origin.setting, "origin");
        let workers = parse("workers = 0\n", &[]).unwrap_err();
        assert_eq!(workers.setting, "workers");
        let crypto = parse("crypto-workers = 0\n", &[]).unwrap_err();
        assert_eq!(crypto.setting, "crypto-workers");
        let budget = parse("memory-budget = 0\n", &[]).unwrap_err();
        assert_eq!(budget.setting, "memory-budget");
    }

    #[test]
    fn the_edge_bounds_are_settings_and_the_admin_listener_can_be_off() {
        let config = parse(
            "admin-listen = \"off\"\naddress-share-percent = 10\nbody-timeout-secs = 3\nrate-per-address = 5\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.admin_listen, None);
        assert_eq!(config.address_share, AddressShare::percent(10).unwrap());
        assert_eq!(config.budget.address_share, config.address_share);
        assert_eq!(config.supervisor.address_share, config.address_share);
        assert_eq!(config.bodies.timeout, Duration::from_secs(3));
        assert_eq!(config.rate.map(|rate| rate.per_second.get()), Some(5));
        let defaults = parse("", &[]).unwrap();
        assert_eq!(
            defaults.admin_listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(defaults.connections.max_connections, 10_000);
        assert_eq!(defaults.rate, None, "no rate unless asked for");
        assert!(
            defaults.connections.trusted_proxies.is_empty(),
            "no proxy is trusted unless named"
        );
        let behind_proxies = parse("trusted-proxies = \"127.0.0.10, 10.0.0.0/8\"\n", &[]).unwrap();
        assert_eq!(
            behind_proxies.connections.trusted_proxies.to_string(),
            "127.0.0.10/32,10.0.0.0/8"
        );
        for (file, setting) in [
            ("address-share-percent = 0\n", "address-share-percent"),
            ("admin-listen = \"loopback\"\n", "admin-listen"),
            ("max-connections = 0\n", "max-connections"),
            ("rate-per-address = 1\nrate-burst = 0\n", "rate-burst"),
            ("trusted-proxies = \"10.0.0.0/40\"\n", "trusted-proxies"),
        ] {
            assert_eq!(parse(file, &[]).unwrap_err().setting, setting, "{file}");
        }
    }

    #[test]
    fn the_budget_and_its_queue_are_settings() {
        let config = parse(
            "memory-budget = 1073741824\nmax-queued = 7\nmax-queued-bytes = 1000\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            config.budget,
            BudgetConfig {
                memory_bytes: 1 << 30,
                max_queued: 7,
                max_queued_bytes: 1000,
                address_share: AddressShare::DEFAULT,
            }
        );
        let defaults = parse("", &[]).unwrap();
        assert_eq!(defaults.budget, BudgetConfig::default());
        assert!(
            defaults.budget.max_queued >= 1000,
            "a thousand executions are admitted"
        );
    }
}
