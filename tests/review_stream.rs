//! Streamed attachments on the counsellor's laptop (protocol.md §3a, §6):
//! an inbox carrying large attachments is imported as a stream with the real
//! vault code, the attachments stay encrypted in the vault, and `export`
//! decrypts them as a stream, checking head hash, length and padding; a
//! damaged one is refused and leaves no file. The large test runs the real
//! `meldkluis-review` binary and measures its peak memory.
//!
//! The inboxes are made with `Inbox::seal_to`, as the server's courier
//! makes them, from attachment files encrypted as the web page does.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use age::secrecy::SecretString;
use meldkluis::format::agefile::{attachment_padded_length, check_attachment};
use meldkluis::format::bundle::{EntryAttachment, Inbox, InboxEntry};
use meldkluis::format::card::CounsellorKind;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Attachment, Envelope, Kind, StreamedFile};
use meldkluis::format::ids::{CaseId, MessageId, UploadId};
use meldkluis::review::attachment::Damage;
use meldkluis::review::vault::NewCounsellor;
use meldkluis::review::{Vault, commands};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

const PASSPHRASE: &str = "test passphrase";
const MIB: u64 = 1024 * 1024;

fn make_vault(dir: &Path) -> Vault {
    Vault::init(
        dir,
        SecretString::from(PASSPHRASE.to_owned()),
        NewCounsellor {
            id: "vp-jansen".into(),
            name: "Mr. A. Jansen".into(),
            organisation: "Ministerie van Testzaken".into(),
            org: None,
            kind: CounsellorKind::External,
            description: String::new(),
        },
    )
    .unwrap()
}

/// The server's side of things: uploads on disk and the messages that
/// claimed them, sealed into inbox files with `Inbox::seal_to`.
struct Server {
    dir: PathBuf,
    entries: Vec<InboxEntry>,
}

/// One attachment as the melder's browser made it.
struct Made {
    file: StreamedFile,
    /// SHA-256 of the melder's original file.
    sha256: [u8; 32],
}

impl Server {
    fn new(dir: &Path) -> Server {
        std::fs::create_dir_all(dir.join("uploads")).unwrap();
        Server {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    fn upload_path(&self, upload: &UploadId) -> PathBuf {
        self.dir.join("uploads").join(format!("{upload}.age"))
    }

    /// Encrypts a generated file of `size` bytes as the web page does
    /// (streamed, padded with zeros — or with `padding` to forge a bad one)
    /// to `recipients`, and stores it as an upload.
    fn upload(
        &self,
        size: u64,
        seed: u64,
        padding: u8,
        recipients: &[age::x25519::Recipient],
    ) -> Made {
        let upload = UploadId::random();
        let path = self.upload_path(&upload);
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .unwrap();
        let mut writer = encryptor
            .wrap_output(BufWriter::new(File::create(&path).unwrap()))
            .unwrap();
        let mut hash = Sha256::new();
        // 1 MiB of random bytes, each copy stamped with its number: fast to
        // make, never the same twice.
        let mut block = vec![0u8; MIB as usize];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut block);
        let mut left = size;
        let mut n = 0u64;
        while left > 0 {
            block[..8].copy_from_slice(&n.to_le_bytes());
            let take = left.min(MIB) as usize;
            hash.update(&block[..take]);
            writer.write_all(&block[..take]).unwrap();
            left -= take as u64;
            n += 1;
        }
        let mut pad = attachment_padded_length(size) - size;
        let fill = vec![padding; MIB as usize];
        while pad > 0 {
            let take = pad.min(MIB) as usize;
            writer.write_all(&fill[..take]).unwrap();
            pad -= take as u64;
        }
        writer.finish().unwrap().flush().unwrap();
        Made {
            file: StreamedFile {
                size,
                upload,
                head_sha256: head_sha256(&path),
            },
            sha256: hash.finalize().into(),
        }
    }

    /// A report naming `attachments` (and inline ones), as the page sends it.
    fn report(
        &mut self,
        vault: &Vault,
        melder: &age::x25519::Identity,
        attachments: Vec<Attachment>,
        case: CaseId,
    ) -> MessageId {
        let mut envelope = Envelope::new(Kind::Report, "Zie de bijlagen.");
        envelope.reply_recipient = Some(melder.to_public().to_string());
        envelope.counsellors = vec!["vp-jansen".into()];
        let streamed: Vec<EntryAttachment> = attachments
            .iter()
            .filter_map(|a| a.stream())
            .map(|s| EntryAttachment {
                upload: s.upload,
                length: std::fs::metadata(self.upload_path(&s.upload))
                    .unwrap()
                    .len(),
            })
            .collect();
        envelope.attachments = attachments;
        let body = envelope
            .seal(&[vault.recipient(), melder.to_public()])
            .unwrap();
        let id = MessageId::random();
        self.entries.push(InboxEntry {
            seq: self.entries.len() as u64 + 1,
            id,
            case,
            author: "melder".into(),
            kind: "report".into(),
            day: Day::today(),
            body,
            attachments: streamed,
        });
        id
    }

    /// Seals everything into an inbox file, streaming the uploads from disk.
    fn inbox(&self, vault: &Vault, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        let out = BufWriter::new(File::create(&path).unwrap());
        let mut open = |upload: &UploadId| -> std::io::Result<Box<dyn Read>> {
            Ok(Box::new(File::open(self.upload_path(upload))?))
        };
        Inbox::seal_to(
            out,
            "vp-jansen",
            0,
            &[],
            &self.entries,
            &vault.recipient(),
            &mut open,
        )
        .unwrap()
        .flush()
        .unwrap();
        path
    }
}

fn head_sha256(path: &Path) -> [u8; 32] {
    let len = std::fs::metadata(path).unwrap().len();
    let mut prefix = vec![0u8; len.min(65_536) as usize];
    File::open(path).unwrap().read_exact(&mut prefix).unwrap();
    let shape = check_attachment(&prefix, len).unwrap();
    Sha256::digest(&prefix[..shape.head_len]).into()
}

fn sha256_file(path: &Path) -> [u8; 32] {
    let mut hash = Sha256::new();
    std::io::copy(&mut File::open(path).unwrap(), &mut hash).unwrap();
    hash.finalize().into()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs the reviewer binary, polling its peak resident memory (VmHWM) until
/// it exits; returns its output and that peak in KiB.
fn reviewer_measured(vault: &Path, args: &[&str]) -> (String, u64) {
    let passphrase = vault.with_extension("passphrase");
    std::fs::write(&passphrase, format!("{PASSPHRASE}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meldkluis-review"))
        .arg("--vault")
        .arg(vault)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .args(args)
        .env_remove("MELDKLUIS_VAULT")
        .env("MELDKLUIS_LANG", "nl")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        // VmHWM only grows; the last reading before exit is the peak but for
        // the final millisecond.
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(status.success(), "meldkluis-review {args:?}: {text}");
    (text, peak)
}

/// Re-encrypts the vault's identity file with a cheap passphrase work
/// factor. Unlocking with the real one (age's scrypt, calibrated to about a
/// second) takes about 256 MiB for a moment whatever the command, which
/// would hide what importing and exporting themselves take.
fn cheapen_unlock(vault_dir: &Path) {
    let path = vault_dir.join("identity.age");
    let passphrase = || SecretString::from(PASSPHRASE.to_owned());
    let sealed = std::fs::read(&path).unwrap();
    let identity = age::scrypt::Identity::new(passphrase());
    let text = age::decrypt(&identity, &sealed).unwrap();
    let mut recipient = age::scrypt::Recipient::new(passphrase());
    recipient.set_work_factor(10);
    std::fs::write(&path, age::encrypt(&recipient, &text).unwrap()).unwrap();
}

/// Import and export of one inbox with one streamed attachment of `size`
/// bytes through the binary; returns the peak memory of each, in KiB.
fn binary_round_trip(size: u64) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("vault");
    let vault = make_vault(&vault_dir);
    cheapen_unlock(&vault_dir);
    let melder = age::x25519::Identity::generate();
    let mut server = Server::new(&dir.path().join("server"));
    let made = server.upload(size, size, 0, &[vault.recipient(), melder.to_public()]);
    let case = CaseId::random();
    server.report(
        &vault,
        &melder,
        vec![Attachment::streamed(
            "opname.bin",
            "application/octet-stream",
            made.file,
        )],
        case,
    );
    let inbox = server.inbox(&vault, "inbox.age");
    // The melder's copy on the server is not needed any more; keep the disk
    // use of the large run down.
    std::fs::remove_file(server.upload_path(&made.file.upload)).unwrap();

    let (imported, import_peak) =
        reviewer_measured(&vault_dir, &["import", inbox.to_str().unwrap()]);
    assert!(imported.contains("Bijlagen: 1."), "{imported}");
    std::fs::remove_file(&inbox).unwrap();
    let stored = vault_dir
        .join("attachments")
        .join(format!("{}.age", made.file.upload));
    assert_eq!(head_sha256(&stored), made.file.head_sha256);

    let out = dir.path().join("export");
    let (exported, export_peak) = reviewer_measured(
        &vault_dir,
        &["export", &case.to_hex()[..8], "--to", out.to_str().unwrap()],
    );
    assert!(exported.contains("Geschreven bestanden: 1"), "{exported}");
    assert_eq!(names_in(&out), ["01-opname.bin"]);
    let exported_file = out.join("01-opname.bin");
    assert_eq!(std::fs::metadata(&exported_file).unwrap().len(), size);
    assert_eq!(sha256_file(&exported_file), made.sha256);
    (import_peak, export_peak)
}

/// The size of the large attachment, in MiB (`MELDKLUIS_STREAM_TEST_MIB`,
/// at least 200 by default so the figure means something).
fn large_mib() -> u64 {
    std::env::var("MELDKLUIS_STREAM_TEST_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// The attachments of a case as the views show them.
fn attachments_shown(
    vault: &meldkluis::review::Vault,
    case: &meldkluis::format::ids::CaseId,
) -> Vec<meldkluis::review::views::AttachmentView> {
    use meldkluis::review::views::{self, Content};
    views::case(vault, case, Day::today())
        .unwrap()
        .messages
        .into_iter()
        .flat_map(|m| match m.content {
            Content::Readable(r) => r.attachments,
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_large_streamed_attachment_round_trips_through_the_reviewer_in_bounded_memory() {
    // Not a bucket boundary: the padding is exercised too.
    let large = large_mib() * MIB + 12_345;
    let (small_import, small_export) = binary_round_trip(MIB);
    let (large_import, large_export) = binary_round_trip(large);
    // For comparison: any command with the vault's real identity file.
    let dir = tempfile::tempdir().unwrap();
    make_vault(&dir.path().join("vault"));
    let (_, unlock) = reviewer_measured(&dir.path().join("vault"), &["list"]);
    eprintln!(
        "meldkluis-review peak memory (VmHWM): import {} KiB, export {} KiB with a {:.1} MiB \
         attachment; import {} KiB, export {} KiB with a 1 MiB attachment (identity unlocked \
         with a cheap scrypt work factor); `list` with age's calibrated scrypt: {} KiB",
        large_import,
        large_export,
        large as f64 / MIB as f64,
        small_import,
        small_export,
        unlock,
    );
    // What an attachment adds is a few buffers, not its size.
    for (what, small, large) in [
        ("import", small_import, large_import),
        ("export", small_export, large_export),
    ] {
        assert!(
            large < small + 8 * 1024 && large < 32 * 1024,
            "{what}: {large} KiB with the large attachment, {small} KiB with the small one"
        );
    }
}

#[test]
fn streamed_attachments_import_once_stay_encrypted_and_export_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(&dir.path().join("vault"));
    let melder = age::x25519::Identity::generate();
    let mut server = Server::new(&dir.path().join("server"));
    let recipients = [vault.recipient(), melder.to_public()];
    // An empty file, one just above a bucket, one over several age chunks.
    let made: Vec<Made> = [(0, 1), (5000, 2), (300_000, 3)]
        .into_iter()
        .map(|(size, seed)| server.upload(size, seed, 0, &recipients))
        .collect();
    let case = CaseId::random();
    let names = ["leeg.txt", "\u{1b}[2J../../scan.pdf", "opname.wav"];
    let mut attachments: Vec<Attachment> = made
        .iter()
        .zip(names)
        .map(|(m, name)| Attachment::streamed(name, "application/octet-stream", m.file))
        .collect();
    attachments.push(Attachment::inline("notitie.txt", "text/plain", b"klein"));
    server.report(&vault, &melder, attachments, case);
    let inbox = server.inbox(&vault, "inbox.age");

    let summary = commands::import_from(&mut vault, File::open(&inbox).unwrap()).unwrap();
    assert_eq!(
        (summary.new_cases, summary.new_messages, summary.attachments),
        (1, 1, 3)
    );
    assert_eq!(summary.damaged_attachments, 0);
    let record = &vault.state.cases[&case].messages[0];
    assert_eq!(
        record.attachments,
        made.iter().map(|m| m.file.upload).collect::<Vec<_>>()
    );
    // Only ciphertext in the vault: the stored files are the uploads, byte
    // for byte.
    for m in &made {
        assert_eq!(
            std::fs::read(vault.attachment_path(&m.file.upload)).unwrap(),
            std::fs::read(server.upload_path(&m.file.upload)).unwrap()
        );
    }
    // Idempotent: the same inbox again changes nothing.
    let paths: Vec<PathBuf> = made
        .iter()
        .map(|m| vault.attachment_path(&m.file.upload))
        .collect();
    let modified = |p: &PathBuf| std::fs::metadata(p).unwrap().modified().unwrap();
    let before: Vec<_> = paths.iter().map(modified).collect();
    let again = commands::import_from(&mut vault, File::open(&inbox).unwrap()).unwrap();
    assert_eq!((again.new_messages, again.attachments), (0, 0));
    assert_eq!(paths.iter().map(modified).collect::<Vec<_>>(), before);
    assert_eq!(vault.state.cases[&case].messages.len(), 1);

    let shown = attachments_shown(&vault, &case);
    for (name, size) in [
        ("leeg.txt", 0),
        ("\u{1b}[2J../../scan.pdf", 5000),
        ("opname.wav", 300_000),
        ("notitie.txt", 5),
    ] {
        let found = shown.iter().find(|a| a.name.raw() == name).unwrap();
        assert_eq!((found.size, &found.damage), (size, &None), "{name}");
    }
    // Shown, the hostile name is neutralised.
    let hostile = shown
        .iter()
        .find(|a| a.name.raw().contains("scan"))
        .unwrap();
    assert_eq!(hostile.name.line(), "\\u{001b}[2J../../scan.pdf");

    let out = dir.path().join("export");
    let report = commands::export(&vault, &case, &out).unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(
        names_in(&out),
        [
            "01-leeg.txt",
            "01-notitie.txt",
            "01-opname.wav",
            "01-scan.pdf"
        ]
    );
    let expected_names = ["01-leeg.txt", "01-scan.pdf", "01-opname.wav"];
    for (m, name) in made.iter().zip(expected_names) {
        let path = out.join(name);
        assert_eq!(sha256_file(&path), m.sha256, "{name}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), m.file.size);
    }
    assert_eq!(std::fs::read(out.join("01-notitie.txt")).unwrap(), b"klein");
    assert_eq!(report.written.len(), 4);
    // Exporting again never overwrites.
    let second = commands::export(&vault, &case, &out).unwrap();
    assert_eq!(second.written.len(), 4);
    assert!(second.written.iter().all(|p| !report.written.contains(p)));
    assert_eq!(names_in(&out).len(), 8);

    // Purge removes the attachments with the case.
    vault.state.cases.get_mut(&case).unwrap().closed = Some(Day::today());
    commands::purge(&mut vault, &[case]).unwrap();
    for m in &made {
        assert!(!vault.attachment_path(&m.file.upload).exists());
    }
}

#[test]
fn damaged_attachments_are_refused_leave_no_file_and_spare_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(&dir.path().join("vault"));
    let melder = age::x25519::Identity::generate();
    let mut server = Server::new(&dir.path().join("server"));
    let recipients = [vault.recipient(), melder.to_public()];
    let upload = |server: &Server, size, seed| server.upload(size, seed, 0, &recipients);

    let good = upload(&server, 70_000, 1);
    // Swapped: the server delivers another file, encrypted to the same
    // recipients and of the same size, under the upload the envelope names.
    let swapped = upload(&server, 70_000, 2);
    let impostor = upload(&server, 70_000, 3);
    std::fs::copy(
        server.upload_path(&impostor.file.upload),
        server.upload_path(&swapped.file.upload),
    )
    .unwrap();
    // Flipped and truncated: damaged in the vault after the import.
    let flipped = upload(&server, 200_000, 4);
    let truncated = upload(&server, 200_000, 5);
    // Padding that is not zero, and a size that is not the one encrypted.
    let bad_padding = server.upload(5000, 6, 0xff, &recipients);
    let mut wrong_size = upload(&server, 9000, 7);
    wrong_size.file.size = 5000;
    // Not encrypted to this counsellor at all.
    let stranger = server.upload(5000, 8, 0, &[melder.to_public()]);
    // Named by the message but not in the inbox.
    let missing = StreamedFile {
        size: 10,
        upload: UploadId::random(),
        head_sha256: [7; 32],
    };

    let case = CaseId::random();
    let streamed = |name: &str, file: StreamedFile| {
        Attachment::streamed(name, "application/octet-stream", file)
    };
    let id = server.report(
        &vault,
        &melder,
        vec![
            streamed("goed.pdf", good.file),
            streamed("verwisseld.pdf", swapped.file),
            streamed("omgedraaid.pdf", flipped.file),
            streamed("afgekapt.pdf", truncated.file),
            streamed("opvulling.pdf", bad_padding.file),
            streamed("grootte.pdf", wrong_size.file),
            streamed("vreemd.pdf", stranger.file),
        ],
        case,
    );
    let entry = server.entries.iter_mut().find(|e| e.id == id).unwrap();
    // The message names `missing` too, but the server never had it.
    let mut envelope = Envelope::open(&entry.body, &[&melder]).unwrap();
    envelope
        .attachments
        .push(streamed("ontbreekt.pdf", missing));
    entry.body = envelope
        .seal(&[vault.recipient(), melder.to_public()])
        .unwrap();
    let inbox = server.inbox(&vault, "inbox.age");

    let summary = commands::import_from(&mut vault, File::open(&inbox).unwrap()).unwrap();
    assert_eq!(summary.attachments, 7);
    // Swapped, wrong size and missing show already on import; the others
    // only age itself can find.
    assert_eq!(summary.damaged_attachments, 3);

    let damage = |path: PathBuf, f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = std::fs::read(&path).unwrap();
        f(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
    };
    damage(vault.attachment_path(&flipped.file.upload), &|b| {
        let at = b.len() - 70_000;
        b[at] ^= 0x01;
    });
    damage(vault.attachment_path(&truncated.file.upload), &|b| {
        b.truncate(b.len() - 1000);
    });

    let shown = attachments_shown(&vault, &case);
    for (name, damaged) in [
        ("goed.pdf", false),
        ("verwisseld.pdf", true),
        ("grootte.pdf", true),
        ("ontbreekt.pdf", true),
        ("afgekapt.pdf", true),
    ] {
        let found = shown.iter().find(|a| a.name.raw() == name).unwrap();
        assert_eq!(
            found.damage.is_some(),
            damaged,
            "{name}: {:?}",
            found.damage
        );
    }

    let out = dir.path().join("export");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("al-hier.txt"), b"van eerder").unwrap();
    let report = commands::export(&vault, &case, &out).unwrap();
    // Only the good file is written; nothing else, no temporary file.
    assert_eq!(names_in(&out), ["01-goed.pdf", "al-hier.txt"]);
    assert_eq!(sha256_file(&out.join("01-goed.pdf")), good.sha256);
    assert_eq!(
        std::fs::read(out.join("al-hier.txt")).unwrap(),
        b"van eerder"
    );
    let refused: Vec<(&str, &Damage)> = report
        .refused
        .iter()
        .map(|r| (r.name.as_str(), &r.damage))
        .collect();
    assert_eq!(refused.len(), 7, "{refused:?}");
    let of = |name: &str| refused.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(of("01-verwisseld.pdf"), &Damage::WrongFile);
    assert!(matches!(of("01-omgedraaid.pdf"), Damage::Undecryptable(_)));
    assert!(matches!(of("01-afgekapt.pdf"), Damage::NotAge(_)));
    assert_eq!(of("01-opvulling.pdf"), &Damage::Padding);
    assert_eq!(of("01-grootte.pdf"), &Damage::WrongLength);
    assert!(matches!(of("01-vreemd.pdf"), Damage::Undecryptable(_)));
    assert_eq!(of("01-ontbreekt.pdf"), &Damage::Missing);
    // The messages say so in both languages.
    let text = Damage::WrongFile.to_string();
    assert!(
        text.contains("niet het bestand") && text.contains("not the file"),
        "{text}"
    );
}

#[test]
fn a_damaged_inbox_is_refused_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = make_vault(&dir.path().join("vault"));
    let melder = age::x25519::Identity::generate();
    let mut server = Server::new(&dir.path().join("server"));
    let recipients = [vault.recipient(), melder.to_public()];
    let first = server.upload(300_000, 1, 0, &recipients);
    let second = server.upload(5000, 2, 0, &recipients);
    let case = CaseId::random();
    server.report(
        &vault,
        &melder,
        vec![Attachment::streamed(
            "a.bin",
            "application/octet-stream",
            first.file,
        )],
        case,
    );
    server.report(
        &vault,
        &melder,
        vec![Attachment::streamed(
            "b.bin",
            "application/octet-stream",
            second.file,
        )],
        case,
    );
    let inbox = std::fs::read(server.inbox(&vault, "inbox.age")).unwrap();
    let state_file = dir.path().join("vault/state.age");
    let saved_state = std::fs::read(&state_file).unwrap();
    let attachments_dir = dir.path().join("vault/attachments");
    let messages_dir = dir.path().join("vault/messages");
    // A crash during an earlier import left a partial file.
    std::fs::write(
        attachments_dir.join(format!("{}.age.part", first.file.upload)),
        b"half",
    )
    .unwrap();

    let mut flipped = inbox.clone();
    flipped[inbox.len() / 2] ^= 0x40;
    let mut hostile: Vec<(String, Vec<u8>)> = vec![("flipped".into(), flipped)];
    // Cut inside the first attachment, after it, inside the second message,
    // and just before the end.
    for cut in [200_000, 320_000, inbox.len() - 6000, inbox.len() - 1] {
        hostile.push((format!("cut at {cut}"), inbox[..cut].to_vec()));
    }
    for (what, bytes) in hostile {
        let err = commands::import_from(&mut vault, &bytes[..]).unwrap_err();
        assert!(
            matches!(err, meldkluis::review::ReviewError::Inbox(_)),
            "{what}: {err}"
        );
        assert!(vault.state.cases.is_empty(), "{what}");
        assert_eq!(vault.state.inbox_ack, 0);
        assert!(
            names_in(&attachments_dir).is_empty(),
            "{what}: {:?}",
            names_in(&attachments_dir)
        );
        assert!(names_in(&messages_dir).is_empty(), "{what}");
        // Nor on disk: the saved state is the one from before.
        assert_eq!(std::fs::read(&state_file).unwrap(), saved_state, "{what}");
    }
    let summary = commands::import_from(&mut vault, &inbox[..]).unwrap();
    assert_eq!((summary.new_messages, summary.attachments), (2, 2));
    assert_eq!(names_in(&attachments_dir).len(), 2);
}
