//! `meldkluis`: the server and the operator's commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meldkluis::server::config::{Config, DEFAULT_MAX_BODY_BYTES};
use meldkluis::server::{self, AppState};

#[derive(Parser)]
#[command(
    name = "meldkluis",
    version,
    about = "Meldkluis server: stores encrypted reports it cannot read"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (put a TLS reverse proxy in front).
        #[arg(long, env = "MELDKLUIS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Directory for the database.
        #[arg(long, env = "MELDKLUIS_DATA", default_value = "data")]
        data: PathBuf,
        /// Directory with the counsellor cards (`<id>.json`).
        #[arg(long, env = "MELDKLUIS_KEYS", default_value = "keys")]
        keys: PathBuf,
        /// Largest request body in bytes.
        #[arg(long, env = "MELDKLUIS_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
        /// Contact for /.well-known/security.txt (mailto: or https: URI).
        #[arg(long, env = "MELDKLUIS_SECURITY_CONTACT")]
        security_contact: Option<String>,
    },
    /// Try Meldkluis locally with a throwaway, INSECURE counsellor key.
    Demo {
        /// Loopback address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

fn init_logging() {
    // No timestamps and no request lines: a log line must never tell when a
    // melder did something (DESIGN §1). Only start-up and internal errors.
    tracing_subscriber::fmt()
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("meldkluis: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                listen,
                data,
                keys,
                max_body_bytes,
                security_contact,
            } => {
                let config = Config {
                    listen,
                    data_dir: data,
                    keys_dir: keys,
                    max_body_bytes,
                    security_contact,
                };
                serve(config).await
            }
            Command::Demo { listen } => server::demo::run(listen).await.map_err(|e| e.to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("meldkluis: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let state = AppState::open(&config).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("Meldkluis listening on http://{address}");
    tracing::info!("serving {} counsellor card(s)", state.cards.len());
    server::serve(listener, state, &config, server::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
