//! The listeners: every connection from accept to close. Built from actix-server and
//! actix-http's `HttpService` rather than actix-web's `HttpServer`, which has no per-address
//! connection cap and no write timeout (actix-web issue #1751): here a public connection is
//! admitted against the total and its address's share of connections, given time bounds for
//! its request heads, its keep-alive and its writes, and only then handed to HTTP. A
//! connection from a trusted proxy is counted against the total at once and against the share
//! of the client the proxy relays for once its PROXY header has said who that is (`proxy`);
//! HTTP sees that client as the connection's peer. Request bodies are bounded where they are
//! read (`http::body`); `/metrics` is served only on the admin listener.

mod proxy;
mod stream;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::BoxBody;
use actix_http::{HttpService, KeepAlive, Protocol, Request, Response};
use actix_rt::net::TcpStream;
use actix_server::Server;
use actix_service::{Service, ServiceFactory, ServiceFactoryExt as _, fn_service};
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_web::web;
use futures_util::future::{Either, LocalBoxFuture, Ready, ready};
use wasm_hypervisor_actors::Error;
use wasm_hypervisor_actors::metrics::Metrics;
use wasm_hypervisor_actors::shares::{ClientAddress, Refusal, Share};

use crate::http::{self, AppState};
pub use proxy::{InvalidProxyAddress, TrustedProxies};
use proxy::{ProxyHeaderError, read_header};
use stream::EdgeStream;

/// The bounds of every public connection, and whom it is counted against.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Public connections open at once; a connection past it, or past its address's share of
    /// it, is closed at once (on plain HTTP after a `429` or `503`, if the socket takes it
    /// without waiting). Lowered at start-up to what the open-file limit leaves.
    /// Default: 10 000.
    pub max_connections: usize,
    /// Longest wait for a request's head (its line and headers), and for the PROXY header of
    /// a trusted proxy's connection before that; then the connection is closed. Default: 10 s.
    pub header_timeout: Duration,
    /// Longest a connection may stay idle between requests. Default: 15 s.
    pub keep_alive: Duration,
    /// Longest a write may wait for the client to read; then the connection is closed.
    /// Default: 30 s.
    pub write_timeout: Duration,
    /// Peers whose connections must begin with a PROXY protocol v2 header, whose source
    /// address is then the client's for every per-address share; any other peer's bytes are
    /// HTTP. Default: none.
    pub trusted_proxies: TrustedProxies,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// File descriptors kept for everything but public connections: the store, the listeners, the
/// runtime's own, and admin connections.
const RESERVED_FILES: u64 = 256;

/// How long a closing connection waits for the client's side of a TLS close.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Connections waiting to be accepted, as actix-web has it.
const BACKLOG: i32 = 1024;

impl ConnectionLimits {
    /// Raises the open-file limit to its hard limit and lowers `max_connections` to what
    /// that leaves, so that the daemon refuses connections before the OS refuses it files.
    pub(crate) fn fit_open_file_limit(&mut self) {
        let limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(error) => {
                log::warn!("cannot read the open-file limit: {error}");
                return;
            }
        };
        let room = usize::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
        if room < self.max_connections {
            log::warn!(
                "the open-file limit is {limit}: at most {room} public connections, not {}",
                self.max_connections
            );
            self.max_connections = room.max(1);
        }
    }
}

/// The daemon's listeners, running.
pub(crate) struct Listeners {
    pub(crate) server: Server,
    pub(crate) public: SocketAddr,
    pub(crate) admin: Option<SocketAddr>,
}

/// Binds the public listener at `public` (HTTPS with `tls`) and the admin listener at `admin`
/// and starts serving both.
pub(crate) fn serve(
    (public, admin): (SocketAddr, Option<SocketAddr>),
    tls: Option<rustls::ServerConfig>,
    limits: &ConnectionLimits,
    connections: Arc<Share>,
    state: &web::Data<AppState>,
) -> std::io::Result<Listeners> {
    if !limits.trusted_proxies.is_empty() {
        log::info!(
            "connections from {} must begin with a PROXY protocol v2 header",
            limits.trusted_proxies
        );
    }
    // The daemon stops in phases on its own signal handling (`run_until_signalled`).
    let builder = Server::build().disable_signals();
    let listener = bind(public)?;
    let public = listener.local_addr()?;
    let gate = Gate {
        connections,
        metrics: Arc::clone(&state.metrics),
        write_timeout: limits.write_timeout,
        header_timeout: limits.header_timeout,
        trusted_proxies: Arc::new(limits.trusted_proxies.clone()),
        answers_in_plain_text: tls.is_none(),
    };
    let (head, state_for_public) = (HeadLimits::from(limits), state.clone());
    let builder = match tls {
        None => builder.listen("public", listener, move || {
            gate.clone().around(plain(
                head.http(http::public_service(state_for_public.clone())),
            ))
        })?,
        Some(mut tls) => {
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder.listen("public", listener, move || {
                gate.clone().around(secure(
                    tls.clone(),
                    head.http(http::public_service(state_for_public.clone())),
                ))
            })?
        }
    };
    let (builder, admin) = match admin {
        None => (builder, None),
        Some(admin) => {
            let listener = bind(admin)?;
            let admin = listener.local_addr()?;
            let state = state.clone();
            let builder = builder.listen("admin", listener, move || {
                head.http(http::admin_service(state.clone())).tcp()
            })?;
            (builder, Some(admin))
        }
    };
    Ok(Listeners {
        server: builder.run(),
        public,
        admin,
    })
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The time bounds actix-http keeps for a connection: its request heads and its keep-alive.
#[derive(Debug, Clone, Copy)]
struct HeadLimits {
    header_timeout: Duration,
    keep_alive: Duration,
}

impl From<&ConnectionLimits> for HeadLimits {
    fn from(limits: &ConnectionLimits) -> Self {
        Self {
            header_timeout: limits.header_timeout,
            keep_alive: limits.keep_alive,
        }
    }
}

impl HeadLimits {
    /// HTTP/1.1 over a stream of type `T`, serving `service`.
    fn http<T, S>(self, service: S) -> HttpService<T, S, BoxBody>
    where
        S: ServiceFactory<Request, Config = (), InitError = ()>,
        S::Error: Into<Response<BoxBody>> + 'static,
        S::Response: Into<Response<BoxBody>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
    {
        HttpService::build()
            .client_request_timeout(self.header_timeout)
            .keep_alive(KeepAlive::Timeout(self.keep_alive))
            .client_disconnect_timeout(DISCONNECT_TIMEOUT)
            .finish(service)
    }
}

/// Plain HTTP on an admitted connection.
fn plain<S>(
    http: S,
) -> impl ServiceFactory<EdgeStream, Config = (), Response = (), Error = (), InitError = ()>
where
    S: ServiceFactory<
            (EdgeStream, Protocol, Option<SocketAddr>),
            Config = (),
            Response = (),
            InitError = (),
        >,
{
    fn_service(|io: EdgeStream| {
        let peer = io.peer();
        ready(Ok::<_, ()>((io, Protocol::Http1, Some(peer))))
    })
    .and_then(http.map_err(|_| ()))
}

/// HTTPS on an admitted connection: the TLS handshake (bounded by actix-tls's 3 s), then HTTP.
fn secure<S>(
    tls: rustls::ServerConfig,
    http: S,
) -> impl ServiceFactory<EdgeStream, Config = (), Response = (), Error = (), InitError = ()>
where
    S: ServiceFactory<
            (TlsStream<EdgeStream>, Protocol, Option<SocketAddr>),
            Config = (),
            Response = (),
            InitError = (),
        >,
{
    Acceptor::new(tls)
        .map_err(|_| ())
        .and_then(fn_service(|io: TlsStream<EdgeStream>| {
            let peer = io.get_ref().0.peer();
            ready(Ok::<_, ()>((io, Protocol::Http1, Some(peer))))
        }))
        .and_then(http.map_err(|_| ()))
}

/// Admits a public connection against the total and its address's share of connections: the
/// peer's, or for a trusted proxy's connection the address its PROXY header relays.
#[derive(Clone)]
struct Gate {
    connections: Arc<Share>,
    metrics: Arc<Metrics>,
    write_timeout: Duration,
    header_timeout: Duration,
    trusted_proxies: Arc<TrustedProxies>,
    /// Whether a refusal can be told in HTTP; on HTTPS it cannot before a handshake, which
    /// a refusal that costs nothing does not make.
    answers_in_plain_text: bool,
}

impl Gate {
    fn around<F>(self, inner: F) -> Gated<F> {
        Gated { gate: self, inner }
    }

    /// Closes a connection that its address's share or the total has no room for.
    fn refuse(&self, io: &TcpStream, refusal: Refusal) {
        self.metrics.refused("connections");
        if self.answers_in_plain_text {
            // Only what has arrived and what the socket takes at once: a refusal waits for
            // nobody. Reading first lets the close be a FIN, not a reset that would discard
            // the answer before the client reads it.
            let _ = io.try_read(&mut [0; 4096]);
            let answer = http::canned_response(&Error::refused(refusal, "connections"));
            let _ = io.try_write(&answer);
        }
    }
}

/// The gate in front of a connection's pipeline.
struct Gated<F> {
    gate: Gate,
    inner: F,
}

impl<F> ServiceFactory<TcpStream> for Gated<F>
where
    F: ServiceFactory<EdgeStream, Config = (), Response = (), Error = (), InitError = ()>,
    F::Service: 'static,
    F::Future: 'static,
{
    type Response = ();
    type Error = ();
    type Config = ();
    type Service = GatedService<F::Service>;
    type InitError = ();
    type Future = LocalBoxFuture<'static, Result<Self::Service, ()>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let inner = self.inner.new_service(());
        let gate = self.gate.clone();
        Box::pin(async move {
            Ok(GatedService {
                gate,
                inner: Rc::new(inner.await?),
            })
        })
    }
}

struct GatedService<S> {
    gate: Gate,
    /// Shared with the connections still reading their PROXY header.
    inner: Rc<S>,
}

impl<S> Service<TcpStream> for GatedService<S>
where
    S: Service<EdgeStream, Response = (), Error = ()> + 'static,
{
    type Response = ();
    type Error = ();
    type Future =
        Either<Either<Ready<Result<(), ()>>, S::Future>, LocalBoxFuture<'static, Result<(), ()>>>;

    actix_service::forward_ready!(inner);

    fn call(&self, io: TcpStream) -> Self::Future {
        let Ok(peer) = io.peer_addr() else {
            return Either::Left(Either::Left(ready(Ok(()))));
        };
        if self.gate.trusted_proxies.trust(peer.ip()) {
            return Either::Right(self.relay(io, peer));
        }
        match self.gate.connections.take(ClientAddress::of(peer.ip()), 1) {
            Ok(place) => Either::Left(Either::Right(self.inner.call(EdgeStream::new(
                io,
                peer,
                place,
                self.gate.write_timeout,
            )))),
            Err(refusal) => {
                self.gate.refuse(&io, refusal);
                Either::Left(Either::Left(ready(Ok(()))))
            }
        }
    }
}

impl<S> GatedService<S>
where
    S: Service<EdgeStream, Response = (), Error = ()> + 'static,
{
    /// A trusted proxy's connection: its place in the total is held while its PROXY header is
    /// read, and then charged to the share of the client the header names, never to the
    /// proxy's own, which would make every client behind the proxy one address.
    fn relay(
        &self,
        mut io: TcpStream,
        proxy: SocketAddr,
    ) -> LocalBoxFuture<'static, Result<(), ()>> {
        let mut place = match self.gate.connections.take_unassigned(1) {
            Ok(place) => place,
            Err(refusal) => {
                self.gate.refuse(&io, refusal);
                return Box::pin(ready(Ok(())));
            }
        };
        let gate = self.gate.clone();
        let inner = Rc::clone(&self.inner);
        Box::pin(async move {
            let header = actix_rt::time::timeout(gate.header_timeout, read_header(&mut io))
                .await
                .unwrap_or(Err(ProxyHeaderError::TimedOut));
            let client = match header {
                Ok(relayed) => relayed.unwrap_or(proxy),
                Err(error) => {
                    gate.metrics.refused("proxy_header");
                    log::debug!("closed a connection from the trusted proxy {proxy}: {error}");
                    return Ok(());
                }
            };
            if let Err(refusal) = place.assign_to(ClientAddress::of(client.ip())) {
                gate.refuse(&io, refusal);
                return Ok(());
            }
            inner
                .call(EdgeStream::new(io, client, place, gate.write_timeout))
                .await
        })
    }
}
