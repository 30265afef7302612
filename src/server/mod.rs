//! The online server: stores ciphertext it cannot read, serves the web pages,
//! and answers the courier. `app(state)` builds the router; `serve` runs it on
//! a listener the caller made, so tests start real servers on port 0.

pub mod backup;
pub mod config;
#[cfg(feature = "review")]
pub mod demo;
pub mod error;
pub mod handlers;
pub mod read_pool;
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
    /// Threads for thread look-ups (read_pool.rs).
    reads: read_pool::ReadPool,
    pub uploads: Arc<uploads::Uploads>,
    pub cards: std::collections::BTreeMap<String, Card>,
    pub site: Site,
    pub security_contact: Option<String>,
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
}

impl AppState {
    /// Loads the cards, opens the database and renders the pages.
    pub fn open(config: &Config) -> Result<Self, ServeError> {
        config.validate()?;
        let cards = config::load_cards(&config.keys_dir)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| {
            config::ConfigError::DataDir {
                path: config.data_dir.clone(),
                source,
            }
        })?;
        let store = Store::open(&config.database_path())?;
        let uploads = uploads::Uploads::open(config, &store)?;
        Ok(AppState(Arc::new(Inner {
            store,
            reads: read_pool::ReadPool::start(READ_THREADS)
                .map_err(|e| ServeError::Threads(e.to_string()))?,
            uploads: Arc::new(uploads),
            cards,
            site: Site::build()?,
            security_contact: config.security_contact.clone(),
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
static SECURITY_HEADERS: std::sync::LazyLock<[(HeaderName, HeaderValue); 9]> =
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

async fn method_not_allowed() -> Response {
    AppError::MethodNotAllowed.into_response()
}

pub fn app(state: AppState, config: &Config) -> Router {
    let api = Router::new()
        .route("/organisations", get(v1::counsellors::list_organisations))
        .route("/counsellors", get(v1::counsellors::list))
        .route("/reports", post(v1::reports::create))
        .route("/thread", post(v1::thread::fetch))
        .route("/thread/messages", post(v1::thread::follow_up))
        .route("/courier/sync", post(v1::courier::sync))
        .route("/limits", get(v1::uploads::limits))
        .route("/uploads", post(v1::uploads::create))
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
    Ok(())
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
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = async { let _ = closing.wait_for(|closing| *closing).await; } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Deletes closed cases once their retention period has passed: at start,
/// then every hour; and uploads abandoned for `uploads::IDLE_LIMIT`, every
/// minute. A failure is logged (without any case detail) and retried.
async fn retention_loop(state: AppState, retention_days: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut minutes = 0u32;
    loop {
        tick.tick().await;
        let hourly = minutes % 60 == 0;
        minutes = minutes.wrapping_add(1);
        let cutoff = crate::format::day::Day(
            crate::format::day::Day::today().0 - time::Duration::days(i64::from(retention_days)),
        );
        let store = state.clone();
        let purge = move || -> Result<(usize, usize), String> {
            let (cases, expired) = if hourly {
                let purged = store
                    .store
                    .purge_closed(cutoff)
                    .map_err(|e| e.to_string())?;
                let expired = store
                    .uploads
                    .expire(&store.store, crate::format::day::Day::today())
                    .map_err(|e| e.to_string())?;
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

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
