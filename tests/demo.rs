//! `meldkluis demo` as someone trying Meldkluis meets it: it prints the
//! insecure passphrase it made, and leaves no `meldkluis-demo-*` folder
//! behind, neither after a failed start nor after Ctrl-C (issue 12).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meldkluis");

fn demo_folders(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("meldkluis-demo-"))
        .collect()
}

#[test]
fn a_failed_start_leaves_no_folder() {
    let tmp = tempfile::tempdir().unwrap();
    // The port is taken: the demo cannot listen.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = Command::new(BIN)
        .args(["demo", "--listen", &address])
        .env("TMPDIR", tmp.path())
        .env_remove("MELDKLUIS_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(demo_folders(tmp.path()), Vec::<String>::new());
}

#[test]
fn it_prints_its_passphrase_and_ctrl_c_removes_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("TMPDIR", tmp.path())
        .env_remove("MELDKLUIS_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut shown = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in lines.by_ref() {
        let line = line.unwrap();
        shown.push_str(&line);
        shown.push('\n');
        if line.starts_with("Meldkluis listening on") || Instant::now() > deadline {
            break;
        }
    }
    assert!(
        shown.contains("Passphrase (INSECURE, published, demo only): demo-onveilig-insecure"),
        "{shown}"
    );
    assert_eq!(demo_folders(tmp.path()).len(), 1, "{shown}");
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(demo_folders(tmp.path()), Vec::<String>::new());
}
