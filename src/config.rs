//! The daemon's configuration: `serve`'s flags, each also read from a `WASM_HYPERVISOR_…`
//! environment variable, turned into the settings of the server, supervisor and sandbox.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wasm_hypervisor_actors::auditor::store::StoreKind;
use wasm_hypervisor_actors::sandbox::SandboxConfig;
use wasm_hypervisor_actors::session::LimitsPolicy;
use wasm_hypervisor_actors::supervisor::{SupervisorConfig, default_worker_threads};
use wasm_hypervisor_protocol::identity::validate_origin;
use wasm_hypervisor_protocol::payload::Limits;

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreKind,
    /// `None`: derived from the identity key's fingerprint.
    pub origin: Option<String>,
    pub worker_threads: usize,
    pub supervisor: SupervisorConfig,
    pub limits: LimitsPolicy,
    pub sandbox: SandboxConfig,
}

impl ServerConfig {
    /// Defaults throughout, listening on `listen` with data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            store: StoreKind::default(),
            origin: None,
            worker_threads: default_worker_threads(),
            supervisor: SupervisorConfig::default(),
            limits: LimitsPolicy::default(),
            sandbox: SandboxConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        reason: reason.into(),
    }
}

/// `wasm-hypervisor serve` flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WASM_HYPERVISOR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the identity key (and the audit log).
    #[arg(long, env = "WASM_HYPERVISOR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Audit log store: `redb` (fsyncs every commit) or `sled` (see the README).
    #[arg(long, env = "WASM_HYPERVISOR_STORE", default_value_t = StoreKind::default())]
    pub store: StoreKind,
    /// Name of the signing key and log [default: wasm-hypervisor/<16 hex digits of the fingerprint>].
    #[arg(long, env = "WASM_HYPERVISOR_ORIGIN")]
    pub origin: Option<String>,
    /// Threads that run wasm [default: one per core].
    #[arg(long, env = "WASM_HYPERVISOR_WORKERS")]
    pub workers: Option<usize>,
    /// Executions running or queued before new ones get 503 [default: 4 × workers].
    #[arg(long, env = "WASM_HYPERVISOR_MAX_PENDING")]
    pub max_pending: Option<usize>,
    /// Sessions announced but not executed before new ones get 503.
    #[arg(
        long,
        env = "WASM_HYPERVISOR_MAX_OPEN_SESSIONS",
        default_value_t = 10_000
    )]
    pub max_open_sessions: usize,
    /// Seconds a session may wait for its execute call.
    #[arg(long, env = "WASM_HYPERVISOR_SESSION_TTL", default_value_t = 60)]
    pub session_ttl_secs: u64,
    /// Seconds a result stays available at GET /sessions/{id}/result.
    #[arg(long, env = "WASM_HYPERVISOR_RESULT_RETENTION", default_value_t = 600)]
    pub result_retention_secs: u64,
    /// Largest sealed request body, in bytes.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_REQUEST_BYTES", default_value_t = 16 << 20)]
    pub max_request_bytes: usize,
    /// Fuel when the request sets none.
    #[arg(long, env = "WASM_HYPERVISOR_DEFAULT_FUEL", default_value_t = LimitsPolicy::default().default.fuel)]
    pub default_fuel: u64,
    /// Most fuel a request may ask for.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_FUEL", default_value_t = LimitsPolicy::default().max.fuel)]
    pub max_fuel: u64,
    /// Linear memory bytes when the request sets none.
    #[arg(long, env = "WASM_HYPERVISOR_DEFAULT_MEMORY_BYTES", default_value_t = LimitsPolicy::default().default.memory_bytes)]
    pub default_memory_bytes: u64,
    /// Most linear memory bytes a request may ask for.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_MEMORY_BYTES", default_value_t = LimitsPolicy::default().max.memory_bytes)]
    pub max_memory_bytes: u64,
    /// stdout + stderr bytes when the request sets none.
    #[arg(long, env = "WASM_HYPERVISOR_DEFAULT_OUTPUT_BYTES", default_value_t = LimitsPolicy::default().default.output_bytes)]
    pub default_output_bytes: u64,
    /// Most stdout + stderr bytes a request may ask for.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_OUTPUT_BYTES", default_value_t = LimitsPolicy::default().max.output_bytes)]
    pub max_output_bytes: u64,
    /// Wall-clock milliseconds when the request sets none.
    #[arg(long, env = "WASM_HYPERVISOR_DEFAULT_TIMEOUT_MS", default_value_t = LimitsPolicy::default().default.timeout_ms)]
    pub default_timeout_ms: u64,
    /// Most wall-clock milliseconds a request may ask for.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_TIMEOUT_MS", default_value_t = LimitsPolicy::default().max.timeout_ms)]
    pub max_timeout_ms: u64,
    /// Table elements a program may have.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_TABLE_ELEMENTS", default_value_t = SandboxConfig::default().max_table_elements)]
    pub max_table_elements: u32,
    /// Nested calls a program may make.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_RECURSION_DEPTH", default_value_t = SandboxConfig::default().max_recursion_depth)]
    pub max_recursion_depth: usize,
    /// Bytes of value stack a program may use.
    #[arg(long, env = "WASM_HYPERVISOR_MAX_STACK_HEIGHT", default_value_t = SandboxConfig::default().max_stack_height)]
    pub max_stack_height: usize,
}

impl ServeArgs {
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
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
        let sandbox = SandboxConfig {
            max_table_elements: self.max_table_elements,
            max_recursion_depth: self.max_recursion_depth,
            max_stack_height: self.max_stack_height,
            ..SandboxConfig::default()
        };
        Ok(ServerConfig {
            listen: self.listen,
            data_dir: self.data_dir,
            store: self.store,
            origin: self.origin,
            worker_threads,
            supervisor: SupervisorConfig {
                session_ttl: Duration::from_secs(self.session_ttl_secs),
                result_retention: Duration::from_secs(self.result_retention_secs),
                max_open_sessions: self.max_open_sessions,
                max_pending_executions: self.max_pending.unwrap_or(4 * worker_threads),
                max_request_bytes: self.max_request_bytes,
            },
            limits,
            sandbox,
        })
    }
}
