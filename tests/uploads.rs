//! Streamed attachment uploads against a real server (docs/api.md
//! "Uploads", protocol.md §3a): chunks, resume after a cut connection,
//! every refusal leaving nothing behind, the quota and a really full disk.

mod common;

use std::io::Write;
use std::net::TcpStream;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Melder, Server, make_vault, seal_attachment};
use meldkluis::format::envelope::{Attachment, Envelope};
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

fn server_with_vault(
    env: &[(&str, &str)],
) -> (Server, meldkluis::review::Vault, tempfile::TempDir) {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-test");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/vp-test.json"), vault.card.to_json()).unwrap();
    (Server::start_in_env(dir, &[], env), vault, vault_dir)
}

/// Random-looking bytes, cheap to make: a counter through SHA-256.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    use sha2::Digest;
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        let mut hasher = sha2::Sha256::new();
        hasher.update([seed]);
        hasher.update(counter.to_le_bytes());
        out.extend_from_slice(&hasher.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// A report naming `uploads`, with their envelope entries.
fn report_with(
    melder: &Melder,
    vault: &meldkluis::review::Vault,
    files: &[(&str, meldkluis::format::envelope::StreamedFile)],
) -> Value {
    let mut envelope: Envelope = melder.report_envelope("Zie de bijlagen.", &["vp-test"]);
    for (name, file) in files {
        envelope.attachments.push(Attachment::streamed(
            *name,
            "application/octet-stream",
            *file,
        ));
    }
    let sealed = envelope
        .seal(&[vault.recipient(), melder.derived.reply_recipient().into()])
        .unwrap();
    json!({
        "counsellors": ["vp-test"],
        "lookup_key": melder.derived.lookup_key.to_hex(),
        "message": STANDARD.encode(sealed),
        "uploads": files.iter().map(|(_, f)| f.upload.to_hex()).collect::<Vec<_>>(),
    })
}

fn status(server: &Server, upload: &str) -> common::Response {
    server.post_json("/api/v1/uploads/status", &json!({ "upload": upload }))
}

#[test]
fn chunks_make_a_durable_attachment_that_a_report_claims_once() {
    let (server, vault, _v) = server_with_vault(&[]);
    let melder = Melder::new();
    let plaintext = bytes(3 * MIB + 12_345, 1);
    let (file, mut streamed) = seal_attachment(
        &plaintext,
        &[vault.recipient(), melder.derived.reply_recipient().into()],
    );
    let limits = server.get("/api/v1/limits").json();
    assert_eq!(limits["max_attachment_bytes"], 500 * MIB);
    assert_eq!(limits["max_attachments"], 20);

    let id = server.upload(&file, MIB);
    let answer = status(&server, &id).json();
    assert_eq!(answer["complete"], true);
    assert_eq!(answer["received"], file.len());
    assert_eq!(server.upload_files(), vec![format!("{id}.age")]);
    // The bytes on disk are exactly the age file, which decrypts to the
    // padded plaintext.
    let stored = server.stored_upload(&id);
    assert_eq!(stored, file);
    let decrypted = age::decrypt(&melder.derived.reply_identity(), &stored).unwrap();
    assert_eq!(&decrypted[..plaintext.len()], &plaintext[..]);
    assert!(decrypted[plaintext.len()..].iter().all(|&b| b == 0));

    streamed.upload = meldkluis::format::ids::UploadId::parse(&id).unwrap();
    let request = report_with(&melder, &vault, &[("bewijs.bin", streamed)]);
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);
    // The identical request again is a retry, not a second claim.
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 200);
    // Another report cannot claim the same upload; nothing changes.
    let before = server.table_counts();
    let other = Melder::new();
    let stolen = report_with(&other, &vault, &[("bewijs.bin", streamed)]);
    let refused = server.post_json("/api/v1/reports", &stolen);
    assert_eq!(
        (refused.status, refused.error().as_str()),
        (404, "unknown_upload")
    );
    assert_eq!(server.table_counts(), before);
    // A claimed upload cannot be cancelled or written.
    let cancel = server.post_json("/api/v1/uploads/cancel", &json!({ "upload": id }));
    assert_eq!(cancel.error(), "unknown_upload");
    assert_eq!(
        server.send_chunk(&id, file.len(), b"x").error(),
        "unknown_upload"
    );
    assert!(server.upload_files().contains(&format!("{id}.age")));
}

#[test]
fn a_cut_connection_keeps_what_arrived_and_the_upload_resumes() {
    let (server, vault, _v) = server_with_vault(&[]);
    let melder = Melder::new();
    let plaintext = bytes(2 * MIB, 2);
    let (file, _) = seal_attachment(
        &plaintext,
        &[vault.recipient(), melder.derived.reply_recipient().into()],
    );
    let id = server.create_upload(file.len()).json()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    // A chunk that promises 1 MiB but the connection dies after 600 KB.
    let cut_at = 600_000;
    {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(
            stream,
            "POST /api/v1/uploads/chunk HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \
             application/octet-stream\r\nUpload-Id: {id}\r\nUpload-Offset: 0\r\nContent-Length: \
             {}\r\n\r\n",
            MIB
        )
        .unwrap();
        stream.write_all(&file[..cut_at]).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // The server notices the cut and keeps the bytes.
    let mut received = 0;
    for _ in 0..50 {
        received = status(&server, &id).json()["received"].as_u64().unwrap() as usize;
        if received == cut_at {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(received, cut_at);
    // A chunk at the wrong offset is refused and changes nothing.
    let wrong = server.send_chunk(&id, 0, &file[..1000]);
    assert_eq!(
        (wrong.status, wrong.error().as_str()),
        (409, "wrong_offset")
    );
    assert_eq!(status(&server, &id).json()["received"], cut_at);
    // Resume from what the server holds.
    let mut offset = received;
    while offset < file.len() {
        let end = (offset + MIB).min(file.len());
        let answer = server.send_chunk(&id, offset, &file[offset..end]);
        assert_eq!(answer.status, 200, "{}", answer.error());
        offset = answer.json()["received"].as_u64().unwrap() as usize;
    }
    let stored = server.stored_upload(&id);
    assert_eq!(stored, file, "byte-identical after the resume");
}

#[test]
fn refused_chunks_and_requests_leave_nothing_behind() {
    let (server, vault, _v) = server_with_vault(&[]);
    let melder = Melder::new();
    let (file, _) = seal_attachment(
        &bytes(100_000, 3),
        &[vault.recipient(), melder.derived.reply_recipient().into()],
    );
    let id = server.create_upload(file.len()).json()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    server.send_chunk(&id, 0, &file[..50_000]);
    let big = server.create_upload(6 * MIB).json()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    let before = (server.table_counts(), server.upload_files());
    let chunk = |headers: &[(&str, &str)], body: &[u8]| {
        server.request_with("POST", "/api/v1/uploads/chunk", headers, body)
    };
    let ct = ("Content-Type", "application/octet-stream");
    let cases: Vec<(&str, common::Response)> = vec![
        ("no id", chunk(&[ct, ("Upload-Offset", "50000")], b"x")),
        (
            "bad id",
            chunk(&[ct, ("Upload-Id", "ZZ"), ("Upload-Offset", "50000")], b"x"),
        ),
        (
            "upper-case id",
            chunk(
                &[
                    ct,
                    ("Upload-Id", &id.to_uppercase()),
                    ("Upload-Offset", "50000"),
                ],
                b"x",
            ),
        ),
        ("no offset", chunk(&[ct, ("Upload-Id", &id)], b"x")),
        (
            "negative offset",
            chunk(&[ct, ("Upload-Id", &id), ("Upload-Offset", "-1")], b"x"),
        ),
        (
            "huge offset",
            chunk(
                &[
                    ct,
                    ("Upload-Id", &id),
                    ("Upload-Offset", "99999999999999999999999"),
                ],
                b"x",
            ),
        ),
        (
            "wrong type",
            chunk(
                &[
                    ("Content-Type", "application/json"),
                    ("Upload-Id", &id),
                    ("Upload-Offset", "50000"),
                ],
                b"x",
            ),
        ),
        ("unknown id", server.send_chunk(&"ab".repeat(16), 0, b"x")),
        (
            "past the end",
            server.send_chunk(&id, 50_000, &vec![7u8; file.len()]),
        ),
        (
            "over a chunk",
            server.send_chunk(&big, 0, &vec![7u8; 4 * MIB + 1]),
        ),
    ];
    for (what, answer) in &cases {
        assert!(answer.status >= 400, "{what}: {}", answer.status);
        assert_eq!(
            (server.table_counts(), server.upload_files()),
            before,
            "{what} changed something"
        );
        assert_eq!(status(&server, &id).json()["received"], 50_000, "{what}");
    }
    let codes: Vec<String> = cases.iter().map(|(_, a)| a.error()).collect();
    assert_eq!(
        codes,
        [
            "bad_upload",
            "bad_upload",
            "bad_upload",
            "bad_upload",
            "bad_upload",
            "bad_upload",
            "unsupported_media_type",
            "unknown_upload",
            "bad_upload",
            "too_large"
        ]
    );
    // Hostile create and status bodies.
    for body in [
        json!({}),
        json!({ "length": -1 }),
        json!({ "length": 0 }),
        json!({ "length": "12" }),
        json!({ "length": 12, "name": "x" }),
        json!({ "length": 1u64 << 60 }),
    ] {
        let answer = server.post_json("/api/v1/uploads", &body);
        assert!(answer.status >= 400, "{body}");
        assert_eq!(
            (server.table_counts(), server.upload_files()),
            before,
            "{body}"
        );
    }
    assert_eq!(
        server
            .post_json("/api/v1/uploads", &json!({ "length": 1u64 << 60 }))
            .error(),
        "too_large"
    );
    for body in [
        json!({}),
        json!({ "upload": "x" }),
        json!({ "upload": id, "more": 1 }),
    ] {
        assert_eq!(status(&server, &body.to_string()).status, 400);
        assert_eq!(
            server.post_json("/api/v1/uploads/status", &body).status,
            400
        );
    }
    // Reports naming bad upload lists.
    let twice = report_with(&melder, &vault, &[]);
    let mut twice = twice;
    twice["uploads"] = json!([id, id]);
    assert_eq!(
        server.post_json("/api/v1/reports", &twice).error(),
        "bad_upload"
    );
    let mut pending = report_with(&melder, &vault, &[]);
    pending["uploads"] = json!([id]);
    assert_eq!(
        server.post_json("/api/v1/reports", &pending).error(),
        "unknown_upload"
    );
    assert_eq!((server.table_counts(), server.upload_files()), before);
}

#[test]
fn a_file_that_is_not_a_padded_age_stream_is_refused_and_removed() {
    let (server, vault, _v) = server_with_vault(&[]);
    let recipient = vault.recipient();
    let unpadded =
        meldkluis::format::encrypt(std::slice::from_ref(&recipient), &bytes(5000, 4)).unwrap();
    let passphrase = age::encrypt(
        &age::scrypt::Recipient::new(age::secrecy::SecretString::from("x".to_owned())),
        &[0u8; 4096],
    )
    .unwrap();
    let (good, _) = seal_attachment(&bytes(5000, 4), &[recipient]);
    let mut flipped_header = good.clone();
    flipped_header[40] = b'!';
    let mut cut = good.clone();
    cut.truncate(good.len() - 1);
    for (what, file, code) in [
        ("random bytes", bytes(10_000, 5), "not_age"),
        ("unpadded", unpadded, "not_padded"),
        ("passphrase", passphrase, "bad_recipient_type"),
        ("damaged header", flipped_header, "not_age"),
        ("one byte short", cut, "not_padded"),
    ] {
        let before = server.table_counts();
        let id = server.create_upload(file.len()).json()["upload"]
            .as_str()
            .unwrap()
            .to_string();
        let answer = server.send_chunk(&id, 0, &file);
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (400, code),
            "{what}"
        );
        assert_eq!(
            status(&server, &id).status,
            404,
            "{what}: the upload is gone"
        );
        assert_eq!(server.upload_files(), Vec::<String>::new(), "{what}");
        assert_eq!(server.table_counts(), before, "{what}");
    }
}

#[test]
fn the_quota_and_the_disk_reserve_refuse_with_storage_full_and_write_nothing() {
    let (server, vault, _v) = server_with_vault(&[
        ("MELDKLUIS_MAX_ATTACHMENT_BYTES", "1048576"),
        ("MELDKLUIS_UPLOAD_QUOTA_BYTES", "2500000"),
    ]);
    let (file, _) = seal_attachment(&bytes(MIB, 6), &[vault.recipient()]);
    assert_eq!(
        server.get("/api/v1/limits").json()["max_attachment_bytes"],
        MIB
    );
    let first = server.upload(&file, MIB);
    // Declaring reserves nothing (issue 14): a second and a third are taken,
    // and only bytes count.
    let new_upload = || {
        server.create_upload(file.len()).json()["upload"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (second, third) = (new_upload(), new_upload());
    assert_eq!(server.send_chunk(&second, 0, &file[..600_000]).status, 200);
    // The third's bytes no longer fit: storage_full, nothing of them kept.
    let before = (server.table_counts(), server.upload_files());
    let refused = server.send_chunk(&third, 0, &file);
    assert_eq!(
        (refused.status, refused.error().as_str()),
        (507, "storage_full")
    );
    assert_eq!((server.table_counts(), server.upload_files()), before);
    assert_eq!(status(&server, &third).json()["received"], 0);
    // Larger than the attachment limit allows: too_large, before any quota.
    let (big, _) = seal_attachment(&bytes(MIB + 200_000, 7), &[vault.recipient()]);
    assert_eq!(server.create_upload(big.len()).error(), "too_large");
    // Cancelling frees the room, and the third goes through.
    let cancel = server.post_json("/api/v1/uploads/cancel", &json!({ "upload": second }));
    assert_eq!(cancel.json()["cancelled"], true);
    let sent = server.send_chunk(&third, 0, &file);
    assert_eq!(sent.json()["complete"], true, "{}", sent.error());
    assert_eq!(server.upload_files(), {
        let mut names = vec![format!("{first}.age"), format!("{third}.age")];
        names.sort();
        names
    });
    drop(server);

    // A reserve larger than any disk: nothing fits.
    let (server, _vault, _v) =
        server_with_vault(&[("MELDKLUIS_MIN_FREE_BYTES", "1000000000000000000")]);
    let before = (server.table_counts(), server.upload_files());
    assert_eq!(server.create_upload(10_000).error(), "storage_full");
    assert_eq!((server.table_counts(), server.upload_files()), before);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> SmallDisk {
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "meldkluis-test",
            ])
            .arg(at)
            .status()
            .expect("mount(8) runs");
        // Needs root (as in CI and on the development machine).
        assert!(
            status.success(),
            "this test mounts a small tmpfs and needs root"
        );
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The data directory on a 48 MiB tmpfs: a really full disk, not a
/// simulated one.
#[test]
fn a_full_disk_refuses_cleanly_and_the_store_stays_consistent() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = make_vault(vault_dir.path(), "vp-test");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("keys/vp-test.json"), vault.card.to_json()).unwrap();
    let disk = SmallDisk::mount(&dir.path().join("data"), "48m");
    let tmpfs = disk.0.clone();
    let server = Server::start_in_env(
        dir,
        &[],
        &[
            ("MELDKLUIS_MIN_FREE_BYTES", "0"),
            ("MELDKLUIS_MAX_ATTACHMENT_BYTES", "20971520"),
        ],
    );
    let melder = Melder::new();
    // An earlier report, which must survive everything below.
    let envelope = melder.report_envelope("Eerste melding.", &["vp-test"]);
    assert_eq!(
        server
            .submit_report(&melder, &envelope, &[vault.recipient()])
            .status,
        201
    );

    let (file, mut streamed) = seal_attachment(&bytes(18 * MIB, 8), &[vault.recipient()]);
    let first = server.create_upload(file.len()).json()["upload"]
        .as_str()
        .unwrap()
        .to_string();
    // Declaring reserves nothing: a second one is taken too.
    assert_eq!(server.create_upload(file.len()).status, 201);

    // Someone else fills the disk to the last byte.
    let mut filler = std::fs::File::create(tmpfs.join("filler")).unwrap();
    let block = vec![0u8; 1 << 20];
    while filler.write_all(&block).is_ok() {}
    let _ = filler.write_all(&block[..4096]);
    drop(filler);
    // Its bytes find no room: storage_full, and the upload holds what it
    // held before the refused chunk, nothing more.
    let pieces: Vec<&[u8]> = file.chunks(4 * MIB).collect();
    let refused = server.send_chunk(&first, 0, pieces[0]);
    assert_eq!(
        (refused.status, refused.error().as_str()),
        (507, "storage_full")
    );
    assert_eq!(status(&server, &first).json()["received"], 0);
    // A new upload finds no room: storage_full, nothing written.
    let before = server.table_counts();
    assert_eq!(server.create_upload(10_000).error(), "storage_full");
    assert_eq!(server.table_counts(), before);
    // Space comes back: the upload goes on from where it was.
    std::fs::remove_file(tmpfs.join("filler")).unwrap();
    for (i, piece) in pieces.iter().enumerate() {
        let answer = server.send_chunk(&first, i * 4 * MIB, piece);
        assert_eq!(answer.status, 200, "chunk {i}: {}", answer.error());
    }
    assert_eq!(status(&server, &first).json()["complete"], true);
    // Someone fills the disk again.
    let mut filler = std::fs::File::create(tmpfs.join("filler")).unwrap();
    while filler.write_all(&block).is_ok() {}
    let _ = filler.write_all(&block[..4096]);
    drop(filler);
    // A report cannot commit on a full disk: refused, nothing half-stored.
    streamed.upload = meldkluis::format::ids::UploadId::parse(&first).unwrap();
    let other = Melder::new();
    let request = report_with(&other, &vault, &[("groot.bin", streamed)]);
    let refused = server.post_json("/api/v1/reports", &request);
    assert!(
        refused.status == 507 || refused.status == 201,
        "a full disk gives storage_full or (if the page fit) success: {}",
        refused.status
    );
    if refused.status == 507 {
        assert_eq!(refused.error(), "storage_full");
        assert_eq!(
            server
                .post_json("/api/v1/thread", &other.thread_request())
                .status,
            404,
            "nothing of the refused report is visible"
        );
    }
    // Space comes back: asking the status finishes the upload, the same
    // request now succeeds, and the earlier report is intact.
    std::fs::remove_file(tmpfs.join("filler")).unwrap();
    assert_eq!(status(&server, &first).json()["complete"], true);
    let retried = server.post_json("/api/v1/reports", &request);
    assert!(matches!(retried.status, 200 | 201), "{}", retried.error());
    assert_eq!(
        server
            .post_json("/api/v1/thread", &melder.thread_request())
            .status,
        200
    );
    assert_eq!(
        server
            .post_json("/api/v1/thread", &other.thread_request())
            .status,
        200
    );
    let stored = server.stored_upload(&first);
    assert_eq!(stored, file);
    drop(server);
    drop(disk);
}

/// SIGKILL at random moments while chunks arrive: after each restart the
/// upload holds a prefix of what was sent (or is complete and whole), no
/// stray file is left, and it resumes to a byte-identical file.
#[test]
fn uploads_survive_sigkill_and_resume_byte_identical() {
    let (mut server, vault, _v) = server_with_vault(&[]);
    let (file, _) = seal_attachment(&bytes(32 * MIB, 9), &[vault.recipient()]);
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move |n: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % n
    };
    let (mut cut_mid_upload, mut complete_at_kill) = (0, 0);
    for round in 0..8 {
        let id = server.create_upload(file.len()).json()["upload"]
            .as_str()
            .unwrap()
            .to_string();
        let port = server.port;
        let sender = {
            let (id, file) = (id.clone(), file.clone());
            std::thread::spawn(move || {
                // Chunks of 512 KiB, as fast as they go, until the server dies.
                let mut offset = 0;
                while offset < file.len() {
                    let end = (offset + 512 * 1024).min(file.len());
                    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        return;
                    };
                    let head = format!(
                        "POST /api/v1/uploads/chunk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                         Content-Type: application/octet-stream\r\nUpload-Id: {id}\r\n\
                         Upload-Offset: {offset}\r\nContent-Length: {}\r\n\r\n",
                        end - offset
                    );
                    if stream.write_all(head.as_bytes()).is_err()
                        || stream.write_all(&file[offset..end]).is_err()
                    {
                        return;
                    }
                    let mut answer = Vec::new();
                    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
                    if !answer.starts_with(b"HTTP/1.1 200") {
                        return;
                    }
                    offset = end;
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20 + random(250)));
        server.kill();
        let _ = sender.join();
        let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
        server = Server::start_in(dir);
        let answer = status(&server, &id).json();
        let received = answer["received"].as_u64().unwrap() as usize;
        if answer["complete"] == true {
            complete_at_kill += 1;
            assert_eq!(server.stored_upload(&id), file, "round {round}");
        } else {
            cut_mid_upload += 1;
            let part = server.stored_upload(&id);
            assert_eq!(part.len(), received, "round {round}");
            assert_eq!(
                part[..],
                file[..received],
                "round {round}: a prefix of what was sent"
            );
        }
        // Nothing else in the folder but this round's and earlier rounds'
        // complete files.
        for name in server.upload_files() {
            assert!(
                name.ends_with(".age") || name == format!("{id}.part"),
                "stray {name}"
            );
        }
        let mut offset = received;
        while offset < file.len() {
            let end = (offset + MIB).min(file.len());
            let answer = server.send_chunk(&id, offset, &file[offset..end]);
            assert_eq!(answer.status, 200, "round {round}: {}", answer.error());
            offset = end;
        }
        assert_eq!(
            server.stored_upload(&id),
            file,
            "round {round}: byte-identical after the resume"
        );
    }
    println!(
        "8 kills: {cut_mid_upload} mid-upload (resumed), {complete_at_kill} after completion; \
         every file byte-identical"
    );
}

/// The whole path with real parts: two attachments uploaded in chunks, a
/// report claiming them, a courier sync through the server's streamed
/// inbox, the reviewer's import, and an export that is byte-identical. A
/// second report whose envelope names an upload the server swapped for
/// another file is caught by the head hash and leaves no file.
#[test]
fn attachments_reach_the_counsellor_byte_identical_and_a_swap_is_caught() {
    use meldkluis::review::commands;
    use sha2::Digest;
    let (server, mut vault, _v) = server_with_vault(&[]);
    let melder = Melder::new();
    let recipients = [vault.recipient(), melder.derived.reply_recipient().into()];
    let big = bytes(40 * MIB + 3, 10);
    let small = bytes(MIB, 11);
    let mut files = Vec::new();
    for (name, plaintext) in [("video.mp4", &big), ("notulen.pdf", &small)] {
        let (file, mut streamed) = seal_attachment(plaintext, &recipients);
        let id = server.upload(&file, 4 * MIB);
        streamed.upload = meldkluis::format::ids::UploadId::parse(&id).unwrap();
        files.push((name, streamed));
    }
    let request = report_with(&melder, &vault, &files);
    assert_eq!(server.post_json("/api/v1/reports", &request).status, 201);

    // An attacker's report: its envelope names upload A with A's head hash,
    // but what the upload holds is another file to the same recipients (a
    // server swapping the bytes would produce exactly this).
    let thief = Melder::new();
    let (_, mut claimed) = seal_attachment(&bytes(200_000, 12), &[vault.recipient()]);
    let (forged, _) = seal_attachment(&bytes(200_000, 13), &[vault.recipient()]);
    let id = server.upload(&forged, MIB);
    claimed.upload = meldkluis::format::ids::UploadId::parse(&id).unwrap();
    let swapped = report_with(&thief, &vault, &[("swapped.bin", claimed)]);
    assert_eq!(server.post_json("/api/v1/reports", &swapped).status, 201);

    let answer = server.sync(&commands::outbox(&mut vault).unwrap());
    assert_eq!(answer.status, 200);
    commands::import(&mut vault, &answer.body).unwrap();
    let export_dir = tempfile::tempdir().unwrap();
    let mut exported = Vec::new();
    let mut refused = Vec::new();
    let cases: Vec<_> = vault.state.cases.keys().copied().collect();
    for case in cases {
        let report = commands::export(&vault, &case, export_dir.path()).unwrap();
        exported.extend(report.written);
        refused.extend(report.refused.into_iter().map(|r| r.name));
    }
    let digest = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
    let mut found: Vec<(String, String)> = exported
        .iter()
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                digest(&std::fs::read(path).unwrap()),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("01-notulen.pdf".to_string(), digest(&small)),
            ("01-video.mp4".to_string(), digest(&big)),
        ]
    );
    assert_eq!(refused, vec!["01-swapped.bin".to_string()]);
    let left: Vec<_> = std::fs::read_dir(export_dir.path()).unwrap().collect();
    assert_eq!(left.len(), 2, "nothing of the swapped file was written");
}
