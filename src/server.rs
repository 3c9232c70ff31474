//! Starting the daemon (identity, audit log, lanes, supervisor and HTTP server, in that order)
//! and stopping it in phases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_rt::signal::unix::{SignalKind, signal};
use futures_util::future::Either;

use actix::{Actor as _, Arbiter, ArbiterHandle};
use actix_web::web;
use wasm_hypervisor_actors::auditor::audit_log::{AuditError, AuditLog};
use wasm_hypervisor_actors::auditor::store::{self, StoreError, StoreKind};
use wasm_hypervisor_actors::auditor::{Auditor, Close, LogHealth, Scrub};
use wasm_hypervisor_actors::budget::MemoryBudget;
use wasm_hypervisor_actors::executor::Lanes;
use wasm_hypervisor_actors::metrics::Metrics;
use wasm_hypervisor_actors::shares::Share;
use wasm_hypervisor_actors::supervisor::{Draining, Outstanding, Supervisor};
use wasm_hypervisor_protocol::api;
use wasm_hypervisor_protocol::identity::IdentityKey;
use wasm_hypervisor_protocol::verify::PinnedIdentity;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ServerConfig, TlsFiles};
use crate::edge;
use crate::http::{self, AppState, Bodies, RateLimit, Readiness};
use crate::identity_file::{self, IdentityFileError};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The identity key could not be loaded or created.
    #[error("cannot load the identity key")]
    Identity(#[from] IdentityFileError),
    /// The audit log's store could not be opened.
    #[error("cannot open the audit log")]
    Store(#[from] StoreError),
    /// The stored audit log does not verify, or its orphans could not be closed.
    #[error(transparent)]
    Log(#[from] AuditError),
    /// The data directory holds a log of the other store, which this start would ignore.
    #[error(
        "{dir} holds a {found} audit log; start with --store {found}, or move it away to start a new log"
    )]
    OtherStore {
        /// The data directory.
        dir: String,
        /// The store the existing log is in.
        found: StoreKind,
    },
    /// The OS refused to deliver SIGTERM or SIGINT.
    #[error("cannot listen for SIGTERM and SIGINT")]
    Signals(#[source] std::io::Error),
    /// The HTTP server stopped by itself.
    #[error("the HTTP server stopped")]
    Serve(#[source] std::io::Error),
    /// The lanes' threads could not be started.
    #[error("cannot start the worker threads")]
    Threads(#[source] std::io::Error),
    /// The TLS certificate chain or key cannot be read or used.
    #[error("cannot use the TLS certificate or key {path}: {reason}")]
    Tls {
        /// The file at fault.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// A daemon that is listening.
pub struct RunningServer {
    /// The bound address (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// The admin listener's bound address, if it has one.
    pub admin_addr: Option<SocketAddr>,
    /// The actix server handle: await it to serve, or stop it.
    pub server: actix_server::Server,
    /// What `GET /identity` serves.
    pub identity: api::Identity,
    /// What a phased stop needs.
    stopping: Stopping,
}

/// The parts of a running daemon a phased stop talks to.
struct Stopping {
    draining: Draining,
    supervisor: Addr<Supervisor>,
    auditor: Addr<Auditor>,
    grace: Duration,
}

/// How often a draining daemon looks whether its announced sessions have ended.
const DRAIN_POLL: Duration = Duration::from_millis(100);

impl RunningServer {
    /// Serves until SIGTERM or SIGINT, then stops in phases ([`Self::drain`]) and returns.
    pub async fn run_until_signalled(self) -> Result<(), ServerError> {
        let handle = self.server.handle();
        let mut serving = actix_rt::spawn(self.server);
        let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
        let signalled = async {
            futures_util::future::select(Box::pin(terminate.recv()), Box::pin(interrupt.recv()))
                .await;
        };
        match futures_util::future::select(&mut serving, Box::pin(signalled)).await {
            Either::Left((served, _)) => {
                return match served {
                    Ok(served) => served.map_err(ServerError::Serve),
                    Err(failed) => Err(ServerError::Serve(std::io::Error::other(
                        failed.to_string(),
                    ))),
                };
            }
            Either::Right(((), _)) => {}
        }
        drain(&self.stopping).await;
        handle.stop(false).await;
        Ok(())
    }
}

/// The phased stop: report not ready and refuse new sessions, go on serving execute and result
/// calls for the sessions already announced until they have all ended or the grace period has
/// passed, then give what still runs an `aborted` result leaf and make the log durable. Not
/// actix-web's own graceful stop, which closes the listener at once.
async fn drain(stopping: &Stopping) {
    stopping.draining.start();
    log::info!(
        "draining: no new sessions; waiting up to {:?} for the announced ones",
        stopping.grace
    );
    let deadline = std::time::Instant::now() + stopping.grace;
    loop {
        match stopping.supervisor.send(Outstanding).await {
            Ok((0, 0)) | Err(_) => break,
            Ok((open, running)) if std::time::Instant::now() >= deadline => {
                log::warn!(
                    "grace period over: {open} announced sessions unused, {running} executions cut off"
                );
                break;
            }
            Ok(_) => actix_rt::time::sleep(DRAIN_POLL).await,
        }
    }
    match stopping.auditor.send(Close).await {
        Ok(Ok(aborted)) => {
            for session_id in &aborted {
                log::warn!(
                    "session {} was cut off by the stop; logged as aborted",
                    api::SessionId(*session_id)
                );
            }
            log::info!("audit log closed and durable; stopping");
        }
        Ok(Err(error)) => log::error!("closing the audit log failed: {error}"),
        Err(_) => log::error!("the auditor is gone; the log was not closed"),
    }
}

/// How often the per-address rate limiter forgets idle addresses.
const RATE_TABLE_SWEEP: Duration = Duration::from_secs(60);

/// Starts the daemon inside the current actix system and returns once it listens.
pub fn start(mut config: ServerConfig) -> Result<RunningServer, ServerError> {
    // One share for every resource; the actors' settings carry it to them.
    config.budget.address_share = config.address_share;
    config.supervisor.address_share = config.address_share;
    config.connections.fit_open_file_limit();
    let identity = Arc::new(identity_file::load_or_create(&config.data_dir)?);
    let identity_body = identity_body(&identity, config.origin.as_deref());
    log::info!(
        "identity {} (origin {})",
        hex::encode(identity_body.fingerprint),
        identity_body.origin
    );
    let policy = http::PolicySource::new(
        config.policy_file.clone(),
        PinnedIdentity {
            origin: identity_body.origin.clone(),
            key: identity.public(),
        },
    );
    let metrics = Arc::new(Metrics::default());
    // The supervisor and the auditor share one thread: a session's appends pass between them
    // without a wake-up, and neither does work that would hold the other up.
    let control = Arbiter::new().handle();
    let (auditor, log_health) = open_audit_log(
        &config,
        &control,
        &identity,
        &identity_body.origin,
        Arc::clone(&metrics),
    )?;
    let lanes = Lanes::start(
        (config.worker_threads, config.crypto_threads),
        MemoryBudget::new(config.budget),
        config.limits,
        config.sandbox,
    )
    .map_err(ServerError::Threads)?;
    let draining = Draining::default();
    let readiness = Readiness {
        log_health: log_health.clone(),
        draining: draining.clone(),
    };
    let supervisor = {
        let (config, auditor, draining, metrics) = (
            config.supervisor.clone(),
            auditor.clone(),
            draining.clone(),
            Arc::clone(&metrics),
        );
        Supervisor::start_in_arbiter(&control, move |_| {
            Supervisor::new(
                config,
                identity,
                lanes,
                (auditor, log_health),
                draining,
                metrics,
            )
        })
    };
    let stopping = Stopping {
        draining,
        supervisor: supervisor.clone(),
        auditor: auditor.clone(),
        grace: config.shutdown_grace,
    };
    let rate = config.rate.map(|rate| Arc::new(RateLimit::new(rate)));
    if let Some(rate) = rate.clone() {
        actix_rt::spawn(async move {
            let mut sweep = actix_rt::time::interval(RATE_TABLE_SWEEP);
            loop {
                sweep.tick().await;
                rate.forget_idle();
            }
        });
    }
    let state = web::Data::new(AppState {
        supervisor,
        auditor,
        readiness,
        identity: identity_body.clone(),
        policy,
        max_request_bytes: config.supervisor.max_request_bytes,
        result_reads: http::ReadBudget::new(config.max_result_read_bytes),
        bodies: Bodies::new(config.bodies, config.address_share, Arc::clone(&metrics)),
        metrics,
        rate,
    });
    let tls = config.tls.as_ref().map(tls_config).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let connections = Share::new(
        config.connections.max_connections as u64,
        config.address_share,
    );
    let listeners = edge::serve(
        (config.listen, config.admin_listen),
        tls,
        &config.connections,
        connections,
        &state,
    )
    .map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    if let Some(admin) = listeners.admin {
        log::info!("metrics at http://{admin}/metrics");
    }
    log::info!("listening on {scheme}://{}", listeners.public);
    Ok(RunningServer {
        addr: listeners.public,
        admin_addr: listeners.admin,
        server: listeners.server,
        identity: identity_body,
        stopping,
    })
}

/// Opens and verifies the log, aborts what a crash cut off, and starts the auditor.
fn open_audit_log(
    config: &ServerConfig,
    arbiter: &ArbiterHandle,
    identity: &Arc<IdentityKey>,
    origin: &str,
    metrics: Arc<Metrics>,
) -> Result<(Addr<Auditor>, LogHealth), ServerError> {
    // A log of the other kind must not be silently replaced by an empty one.
    for other in StoreKind::ALL
        .into_iter()
        .filter(|kind| *kind != config.store)
    {
        if other.location(&config.data_dir).exists()
            && !config.store.location(&config.data_dir).exists()
        {
            return Err(ServerError::OtherStore {
                dir: config.data_dir.display().to_string(),
                found: other,
            });
        }
    }
    let store = store::open_with_cache(config.store, &config.data_dir, config.store_cache_bytes)?;
    let (log, aborted) = AuditLog::open(
        store,
        Arc::clone(identity),
        origin.to_owned(),
        config.retention,
    )?;
    for session_id in &aborted {
        log::warn!(
            "session {} was cut off by a restart; logged as aborted",
            api::SessionId(*session_id)
        );
    }
    log::info!(
        "audit log ({}) opened: {} leaves, its right edge matches the signed checkpoint",
        config.store,
        log.size()
    );
    let (auditor, health) = Auditor::start_with(log, metrics, arbiter);
    if config.scrub {
        let scrub = auditor.send(Scrub);
        actix_rt::spawn(async move {
            // A failure is logged by the auditor, which also fails the log closed.
            if let Ok(Ok(verified)) = scrub.await {
                log::info!("audit log scrub: all {verified} leaves verify");
            }
        });
    }
    Ok((auditor, health))
}

/// A rustls server config (aws-lc-rs provider, TLS 1.2 and 1.3) from PEM files.
fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, ServerError> {
    let tls_error = |path: &std::path::Path, reason: String| ServerError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&files.certificate_chain)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| tls_error(&files.certificate_chain, error.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key)
        .map_err(|error| tls_error(&files.private_key, error.to_string()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
    .map_err(|error| tls_error(&files.certificate_chain, error.to_string()))
}

fn identity_body(identity: &IdentityKey, origin: Option<&str>) -> api::Identity {
    let public = identity.public();
    let origin = origin.map_or_else(|| public.default_origin(), str::to_owned);
    api::Identity::of(&public, origin)
}
