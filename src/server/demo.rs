//! `meldkluis demo`: a throwaway counsellor vault with an INSECURE, known
//! passphrase, a server on loopback, and the exact commands for a round trip.
//! Only for trying Meldkluis out; it refuses any non-loopback address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;

use super::config::{Config, DEFAULT_MAX_BODY_BYTES};
use super::{AppState, ServeError};
use crate::format::card::CounsellorKind;
use crate::review::vault::{NewCounsellor, Vault};

pub const DEMO_PASSPHRASE: &str = "demo-onveilig-insecure";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo only listens on a loopback address (127.0.0.1 or ::1), not {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot set up the demo in {path}: {problem}")]
    Setup { path: PathBuf, problem: String },
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Where the demo keeps its files.
pub struct DemoSetup {
    pub root: PathBuf,
    pub config: Config,
    pub vault: PathBuf,
    pub passphrase_file: PathBuf,
}

/// Removes the demo's folder when dropped: after Ctrl-C, and when the
/// start fails, so no `meldkluis-demo-*` folder with a vault is left behind.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes the vault, card and directories under a fresh temporary directory;
/// on failure it leaves nothing behind.
pub fn prepare(listen: SocketAddr) -> Result<DemoSetup, DemoError> {
    if !listen.ip().is_loopback() {
        return Err(DemoError::NotLoopback(listen));
    }
    let mut tag = [0u8; 4];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut tag);
    let root = std::env::temp_dir().join(format!("meldkluis-demo-{}", hex::encode(tag)));
    fill(root.clone(), listen).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&root);
    })
}

fn fill(root: PathBuf, listen: SocketAddr) -> Result<DemoSetup, DemoError> {
    let setup_error = |path: &Path, problem: String| DemoError::Setup {
        path: path.to_path_buf(),
        problem,
    };
    let keys = root.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| setup_error(&keys, e.to_string()))?;
    let passphrase_file = root.join("passphrase.txt");
    std::fs::write(&passphrase_file, format!("{DEMO_PASSPHRASE}\n"))
        .map_err(|e| setup_error(&passphrase_file, e.to_string()))?;
    let vault_dir = root.join("vault");
    let vault = Vault::init(
        &vault_dir,
        SecretString::from(DEMO_PASSPHRASE.to_owned()),
        NewCounsellor {
            id: "demo".into(),
            name: "DEMO — onveilige testsleutel / insecure test key".into(),
            organisation: "Meldkluis demo".into(),
            org: None,
            kind: CounsellorKind::External,
            description: "Alleen om te proberen; niet voor echte meldingen. / For trying out only; not for real reports.".into(),
        },
    )
    .map_err(|e| setup_error(&vault_dir, e.to_string()))?;
    let card = keys.join("demo.json");
    std::fs::write(&card, vault.card.to_json()).map_err(|e| setup_error(&card, e.to_string()))?;
    Ok(DemoSetup {
        config: Config {
            listen,
            data_dir: root.join("data"),
            keys_dir: keys,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            security_contact: Some("mailto:security@demo.invalid".into()),
            ..Config::default()
        },
        root,
        vault: vault_dir,
        passphrase_file,
    })
}

/// A counsellor's program to print: the sibling binary if it was built,
/// otherwise through cargo.
fn sibling_command(name: &str) -> String {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|path| path.exists());
    match sibling {
        Some(path) => path.display().to_string(),
        None => format!("cargo run -q --bin {name} --"),
    }
}

pub fn instructions(setup: &DemoSetup, url: &str) -> String {
    let r = sibling_command("meldkluis-review");
    let desk = sibling_command("meldkluis-desk");
    let root = setup.root.display();
    let vault = setup.vault.display();
    let pass = setup.passphrase_file.display();
    let passphrase = DEMO_PASSPHRASE;
    format!(
        "\
==> Meldkluis DEMO — ONVEILIGE DEMO-SLEUTEL / INSECURE DEMO KEY
    The counsellor key below has a published passphrase. Never use it for real reports.
    Passphrase (INSECURE, published, demo only): {passphrase}
    Everything under Files is removed when the demo stops.

Melder:      {url}/          (English: {url}/en)
Files:       {root}

Counsellor, in a window (the desktop program; the passphrase above; as the
USB stick's folder under Sync, use {root}):
  {desk} --vault {vault}

Or the command line, in a second terminal:
  export MELDKLUIS_VAULT={vault}
  R=\"{r} --passphrase-file {pass}\"
  $R outbox {root}/outbox.tar                      # a signed sync request
  curl -sS --fail-with-body -H 'Content-Type: application/octet-stream' \\
       --data-binary @{root}/outbox.tar {url}/api/v1/courier/sync -o {root}/inbox.age
                                                   # or upload it on {url}/koerier
  $R import {root}/inbox.age
  $R list
  $R show <first characters of the case id>
  echo 'Dank voor uw melding.' | $R reply <case>
  $R outbox {root}/outbox.tar                      # then the courier step again
Then read the reply on {url}/mijn-melding with the code.
Stop with Ctrl-C.
"
    )
}

/// Runs the demo until Ctrl-C.
/// Its folder is removed when it stops, however it stops.
pub async fn run(listen: SocketAddr) -> Result<(), DemoError> {
    let setup = prepare(listen)?;
    let _cleanup = RemoveOnDrop(setup.root.clone());
    let state = AppState::open(&setup.config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(ServeError::Io)?;
    let url = format!("http://{}", listener.local_addr().map_err(ServeError::Io)?);
    let shutdown = super::shutdown_signal();
    println!("{}", instructions(&setup, &url));
    println!("Meldkluis listening on {url}");
    super::serve(listener, state, &setup.config, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_loopback() {
        for addr in ["0.0.0.0:8080", "192.168.1.10:8080", "[::]:8080"] {
            assert!(matches!(
                prepare(addr.parse().unwrap()),
                Err(DemoError::NotLoopback(_))
            ));
        }
    }
}
