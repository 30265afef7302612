//! The online server: stores ciphertext it cannot read, serves the web pages,
//! and answers the courier. `app(state)` builds the router; `serve` runs it on
//! a listener the caller made, so tests start real servers on port 0.

pub mod backup;
pub mod config;
#[cfg(feature = "review")]
pub mod demo;
pub mod error;
pub mod handlers;
pub mod inbox_key;
pub mod pow;
pub mod read_pool;
pub mod sheet;
pub mod store;
pub mod uploads;
pub mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use crate::format::card::Card;
use config::Config;
use error::AppError;
use handlers::pages::Site;
use handlers::v1;
use store::Store;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    /// Signs every inbox manifest (inbox_key.rs).
    pub inbox_key: ed25519_dalek::SigningKey,
    /// Threads for thread look-ups (read_pool.rs).
    reads: read_pool::ReadPool,
    pub uploads: Arc<uploads::Uploads>,
    /// Challenges and the load they follow (pow.rs); in memory only.
    pub pow: pow::Pow,
    /// The counsellor cards being served; replaced whole on SIGHUP
    /// (`reload_cards`).
    cards: std::sync::RwLock<Arc<std::collections::BTreeMap<String, Card>>>,
    keys_dir: std::path::PathBuf,
    pub site: Site,
    pub security_contact: Option<String>,
    /// What organisations tell their melders (config.rs `Organisation`).
    pub organisations: std::collections::BTreeMap<String, config::Organisation>,
    /// Days a closed case stays on the server (shown to melders as a date).
    pub retention_days: u32,
}

impl Inner {
    /// The cards being served now.
    pub fn cards(&self) -> Arc<std::collections::BTreeMap<String, Card>> {
        self.cards.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The retention of each served counsellor's cases, where its
    /// organisation sets its own (`[organisations.<id>] retention_days`).
    pub fn retention_by_counsellor(&self) -> std::collections::BTreeMap<String, u32> {
        self.cards()
            .values()
            .filter_map(|card| {
                let days = self.organisations.get(&card.org_id())?.retention_days?;
                Some((card.id.clone(), days))
            })
            .collect()
    }

    /// Reads `keys/` again. All of it or nothing: with any problem (a bad
    /// or duplicate card, none at all) the running set stays served and the
    /// problems are returned, to be logged. Returns the number of cards.
    pub fn reload_cards(&self) -> Result<usize, Vec<config::ConfigError>> {
        let (cards, problems) = config::check_cards(&self.keys_dir).map_err(|e| vec![e])?;
        if !problems.is_empty() {
            return Err(problems);
        }
        if cards.is_empty() {
            return Err(vec![config::ConfigError::NoCards(self.keys_dir.clone())]);
        }
        let count = cards.len();
        *self.cards.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cards);
        Ok(count)
    }
}

impl AsRef<store::Store> for AppState {
    fn as_ref(&self) -> &store::Store {
        &self.store
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Why the server did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot open the database: {0}")]
    Store(#[from] store::StoreError),
    #[error("the embedded web pages are broken: {0}")]
    Site(#[from] handlers::pages::SiteError),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot start the read threads: {0}")]
    Threads(String),
    #[error("the inbox-signing key: {0}")]
    InboxKey(#[from] inbox_key::InboxKeyError),
}

impl AppState {
    /// Loads the cards, opens the database and renders the pages.
    pub fn open(config: &Config) -> Result<Self, ServeError> {
        config.validate()?;
        let (cards, problems) = config::serving_cards(&config.keys_dir)?;
        for problem in problems {
            tracing::warn!("{problem} — this card is left out; the others are served");
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|source| {
            config::ConfigError::DataDir {
                path: config.data_dir.clone(),
                source,
            }
        })?;
        let store = Store::open_configured(config)?;
        tracing::info!("store: {}", store.backend());
        #[cfg(feature = "postgres")]
        if let Store::Postgres(pg) = &store {
            tracing::info!("database link: {}", pg.link());
            if let Some(warning) = pg.link().warning() {
                tracing::warn!("{warning}");
            }
        }
        let uploads = uploads::Uploads::open(config, &store)?;
        let inbox_key = inbox_key::for_config(config)?;
        Ok(AppState(Arc::new(Inner {
            store,
            inbox_key,
            reads: read_pool::ReadPool::start(READ_THREADS)
                .map_err(|e| ServeError::Threads(e.to_string()))?,
            uploads: Arc::new(uploads),
            pow: match &config.pow_key {
                Some(key) => pow::Pow::with_key(key.key_bytes(), config.pow_max_factor),
                None => pow::Pow::with_max_factor(config.pow_max_factor),
            },
            cards: std::sync::RwLock::new(Arc::new(cards)),
            keys_dir: config.keys_dir.clone(),
            site: if std::env::var_os("MELDKLUIS_BENCH_BASELINE").is_some() {
                tracing::warn!(
                    "MELDKLUIS_BENCH_BASELINE is set: serving the pages as before issue 15 \
                     (uncompressed, every module preloaded), for benches/tor.mjs only"
                );
                Site::build_baseline()?
            } else {
                Site::build_served()?
            },
            security_contact: config.security_contact.clone(),
            organisations: config.organisations.clone(),
            retention_days: config.retention_days,
        })))
    }
}

/// Threads of the read pool. Two keep look-ups going while one waits for
/// the disk; more would only wake more threads.
const READ_THREADS: usize = 2;

impl AppState {
    /// Runs `work`, which reads the store, on the read pool's threads and
    /// waits for it as a task.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let state = self.clone();
        self.reads
            .run(move || work(&state))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))
    }
}

/// Headers on every answer (DESIGN §1): no third-party anything, no caching,
/// no referrer, no framing, no cookies. Built once (`from_static` checks
/// every byte of a name it does not know).
static SECURITY_HEADERS: std::sync::LazyLock<[(HeaderName, HeaderValue); 10]> =
    std::sync::LazyLock::new(|| {
        [
            (
                "content-security-policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            ),
            ("referrer-policy", "no-referrer"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("cache-control", "no-store"),
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-origin"),
            // Nothing from another origin may be embedded, even if a page
            // were changed to ask for it.
            ("cross-origin-embedder-policy", "require-corp"),
            (
                "permissions-policy",
                "camera=(), microphone=(), geolocation=(), interest-cohort=()",
            ),
            ("x-robots-tag", "noindex, nofollow"),
        ]
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
    });

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.reserve(SECURITY_HEADERS.len());
    for (name, value) in SECURITY_HEADERS.iter() {
        headers.insert(name.clone(), value.clone());
    }
    headers.remove(header::SET_COOKIE);
    response
}

/// The most bytes of request headers (names, values and their line
/// endings) a request may carry (docs/api.md).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Refuses what the API does not speak before any handler runs: HTTP
/// versions other than 1.1 (1.0 has no `Host` rule and closes after each
/// answer; the server speaks only 1.1), and headers over
/// `MAX_HEADER_BYTES` in all.
async fn request_hygiene(request: Request, next: Next) -> Response {
    if request.version() != axum::http::Version::HTTP_11 {
        return AppError::HttpVersion.into_response();
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return AppError::HeadersTooLarge.into_response();
    }
    next.run(request).await
}

/// Lets a request that makes the server store something new through only
/// with an accepted proof of work (pow.rs).
async fn require_pow(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(pow::HEADER)
        .and_then(|v| v.to_str().ok());
    match state.pow.verify(header) {
        Ok(()) => next.run(request).await,
        Err(pow::Refusal::Missing) => AppError::PowRequired.into_response(),
        Err(pow::Refusal::Invalid) => AppError::PowInvalid.into_response(),
    }
}

/// `GET /api/v1/pow`: a new challenge.
async fn pow_challenge(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<pow::Challenge> {
    axum::Json(state.pow.challenge())
}

/// `GET /healthz`, for a proxy or load balancer in front of several
/// nodes: 200 `ok` when this node's store answers, 503 when it does not.
/// It says nothing else: no counts, no versions, no times.
async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.read(|state| state.store.ping()).await {
        Ok(Ok(())) => (axum::http::StatusCode::OK, "ok\n").into_response(),
        _ => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response(),
    }
}

async fn method_not_allowed() -> Response {
    AppError::MethodNotAllowed.into_response()
}

pub fn app(state: AppState, config: &Config) -> Router {
    let pow = || middleware::from_fn_with_state(state.clone(), require_pow);
    let api = Router::new()
        .route("/pow", get(pow_challenge))
        .route("/organisations", get(v1::counsellors::list_organisations))
        .route("/counsellors", get(v1::counsellors::list))
        .route("/reports", post(v1::reports::create).route_layer(pow()))
        .route("/thread", post(v1::thread::fetch))
        .route(
            "/thread/messages",
            post(v1::thread::follow_up).route_layer(pow()),
        )
        .route("/courier/sync", post(v1::courier::sync))
        .route("/limits", get(v1::uploads::limits))
        .route("/uploads", post(v1::uploads::create).route_layer(pow()))
        .route(
            "/uploads/chunk",
            // Streamed to disk, never whole in memory: the chunk handler
            // counts its own limit, so the global body limit does not apply.
            post(v1::uploads::chunk).layer(DefaultBodyLimit::disable()),
        )
        .route("/uploads/status", post(v1::uploads::status))
        .route("/uploads/cancel", post(v1::uploads::cancel))
        .method_not_allowed_fallback(method_not_allowed);
    let router = Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route(
            "/.well-known/security.txt",
            get(handlers::pages::security_txt),
        )
        .fallback(handlers::pages::serve)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .layer(middleware::from_fn(request_hygiene))
        .layer(middleware::from_fn(security_headers));
    let router = match &config.onion_location {
        // Tor Browser offers the onion address of the page being read.
        Some(onion) => {
            let onion: Arc<str> = onion.trim_end_matches('/').into();
            router.layer(middleware::from_fn(move |request: Request, next: Next| {
                let onion = onion.clone();
                async move {
                    let value = format!("{onion}{}", request.uri().path());
                    let mut response = next.run(request).await;
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        response
                            .headers_mut()
                            .insert(HeaderName::from_static("onion-location"), value);
                    }
                    response
                }
            }))
        }
        None => router,
    };
    router.with_state(state)
}

/// Runs the server on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let retention = tokio::spawn(retention_loop(state.clone(), config.retention_days));
    let reloads = tokio::spawn(reload_cards_on_hangup(state.clone()));
    let app = app(state, config);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // The peer address is dropped unread: it is never stored or logged.
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or similar: back off, keep serving.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Load shedding: beyond the limit a new connection is closed at
                // once, so the ones being served keep their speed.
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                connections.spawn(serve_connection(stream, app.clone(), slot, closed.clone()));
            }
            _ = &mut shutdown => break,
        }
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    retention.abort();
    reloads.abort();
    Ok(())
}

/// On SIGHUP, reads the cards again (`Inner::reload_cards`): a bad new
/// card is refused with its problem in the log, and the running set stays.
async fn reload_cards_on_hangup(state: AppState) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::error!("cards: cannot listen for SIGHUP; restart to reload cards");
            return;
        };
        while hangups.recv().await.is_some() {
            let state = state.clone();
            match tokio::task::spawn_blocking(move || state.reload_cards()).await {
                Ok(Ok(count)) => tracing::info!("cards: reloaded, serving {count} card(s)"),
                Ok(Err(problems)) => {
                    for problem in &problems {
                        tracing::error!("cards: not reloaded: {problem}");
                    }
                    tracing::error!(
                        "cards: the running set stays served until keys/ passes \
                         `meldkluis check-config`"
                    );
                }
                Err(e) => tracing::error!("cards: reload failed: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}

/// At most this many connections at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 1024;
/// A client must send its request headers within this time (slowloris);
/// it also closes idle keep-alive connections.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    _slot: tokio::sync::OwnedSemaphorePermit,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    use tower::ServiceExt;
    let service =
        hyper_util::service::TowerToHyperService::new(app.map_request(
            |request: Request<hyper::body::Incoming>| request.map(axum::body::Body::new),
        ));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    let connection = builder.serve_connection(
        hyper_util::rt::TokioIo::new(HeadersOnEveryAnswer::new(stream)),
        service,
    );
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = async { let _ = closing.wait_for(|closing| *closing).await; } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// hyper answers some broken requests itself (a malformed request line or
/// header: 400; too large: 431) before the router, and so before
/// `security_headers`, sees them. This connection wrapper adds the security
/// headers to such an answer: a response head without a
/// Content-Security-Policy is one the router did not make. hyper writes a
/// whole head in one write (the wrapper is not vectored, so hyper
/// flattens), and after its own error answer it closes the connection.
struct HeadersOnEveryAnswer<T> {
    inner: T,
    /// A rewritten head (and whatever followed it) still to be written.
    pending: Vec<u8>,
    written: usize,
}

impl<T> HeadersOnEveryAnswer<T> {
    fn new(inner: T) -> Self {
        HeadersOnEveryAnswer {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// `bytes` with the security headers added to its head, if it is a response
/// head the router did not make.
fn with_security_headers(bytes: &[u8]) -> Option<Vec<u8>> {
    if !bytes.starts_with(b"HTTP/1.") {
        return None;
    }
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &bytes[..end];
    if head
        .windows(24)
        .any(|w| w.eq_ignore_ascii_case(b"content-security-policy:"))
    {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + 1024);
    out.extend_from_slice(head);
    for (name, value) in SECURITY_HEADERS.iter() {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(&bytes[end..]);
    Some(out)
}

impl<T: tokio::io::AsyncWrite + Unpin> HeadersOnEveryAnswer<T> {
    fn poll_pending(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while self.written < self.pending.len() {
            let inner = std::pin::Pin::new(&mut self.inner);
            match inner.poll_write(cx, &self.pending[self.written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for HeadersOnEveryAnswer<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for HeadersOnEveryAnswer<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        match self.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(rewritten) = with_security_headers(buf) {
            self.pending = rewritten;
            // Taken whole; written by this and the next calls.
            if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.poll_pending(cx) {
            std::task::Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.poll_pending(cx) {
            std::task::Poll::Ready(Ok(())) => std::pin::Pin::new(&mut self.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

/// Deletes closed cases once their retention period has passed, then
/// settles the days before today (PostgreSQL: one transaction id and a
/// random order per day, docs/postgresql.md): at start, then every hour;
/// and uploads abandoned for `uploads::IDLE_LIMIT`, every minute. A
/// failure is logged (without any case detail) and retried.
async fn retention_loop(state: AppState, retention_days: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut minutes = 0u32;
    loop {
        tick.tick().await;
        let hourly = minutes % 60 == 0;
        minutes = minutes.wrapping_add(1);
        let today = crate::format::day::Day::today();
        let store = state.clone();
        let purge = move || -> Result<(usize, usize), String> {
            let (cases, expired) = if hourly {
                let purged = store
                    .store
                    .purge_expired(today, store.retention_by_counsellor(), retention_days)
                    .map_err(|e| e.to_string())?;
                let expired = store
                    .uploads
                    .expire(&store.store, crate::format::day::Day::today())
                    .map_err(|e| e.to_string())?;
                store
                    .store
                    .settle(today)
                    .map_err(|e| format!("settling: {e}"))?;
                (purged.cases, expired)
            } else {
                let expired = store
                    .uploads
                    .expire_idle(&store.store, uploads::IDLE_LIMIT)
                    .map_err(|e| e.to_string())?;
                (0, expired)
            };
            Ok((cases, expired))
        };
        match tokio::task::spawn_blocking(purge).await {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((cases, expired))) => tracing::info!(
                "retention: deleted {cases} closed case(s), {expired} abandoned upload(s)"
            ),
            Ok(Err(e)) => tracing::error!("retention: {e}"),
            Err(e) => tracing::error!("retention: {e}"),
        }
    }
}

/// Completes on SIGTERM or Ctrl-C. The handlers are in place when this
/// returns, not only once the future first runs: a start-up line such as
/// "listening on" is printed after it, and a Ctrl-C that follows that
/// line at once must stop the server cleanly (the demo then removes its
/// folder), not kill it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(interrupt) => {},
                _ = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
