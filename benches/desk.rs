//! The desktop program's figures (issue 12), each beside a baseline
//! measured in the same run (docs/performance.md records one run):
//!
//! - unlock to overview with 1,000 cases: `Vault::open`, `views::overview`
//!   and the first frame of the overview (headless, through egui's layout),
//!   against the passphrase's scrypt alone, which any unlock pays;
//! - import of an inbox with 100 reports, against decrypting the same inbox
//!   with the age crate into nothing (the cryptographic floor);
//! - peak memory while previewing a 20 MiB PNG (decode + the texture's
//!   pixels), in a child process, against the same child only reading the
//!   file.
//!
//! Run: `cargo bench --bench desk` (or `-- unlock|import|preview`).

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use age::secrecy::SecretString;
use meldkluis::format::bundle::{Inbox, InboxEntry};
use meldkluis::format::card::CounsellorKind;
use meldkluis::format::day::Day;
use meldkluis::format::envelope::{Envelope, Kind};
use meldkluis::format::ids::{CaseId, MessageId, UploadId};
use meldkluis::review::vault::NewCounsellor;
use meldkluis::review::{Vault, commands, views};

fn passphrase() -> SecretString {
    SecretString::from("benchmark passphrase".to_owned())
}

fn counsellor(dir: &Path) -> Vault {
    Vault::init(
        &dir.join("vault"),
        passphrase(),
        NewCounsellor {
            id: "vp-bench".into(),
            name: "Bench".into(),
            organisation: "Bench".into(),
            org: None,
            kind: CounsellorKind::External,
            description: String::new(),
        },
    )
    .unwrap()
}

/// An inbox of `n` reports, sealed as the server's courier seals it.
fn inbox(vault: &Vault, n: usize, first_seq: u64) -> Vec<u8> {
    let melder = age::x25519::Identity::generate();
    let categories = ["fraud-or-abuse-of-power", "undesirable-behaviour", "other"];
    let entries: Vec<InboxEntry> = (0..n)
        .map(|i| {
            let mut envelope = Envelope::new(
                Kind::Report,
                format!(
                    "Melding {i}: er gaat iets mis op afdeling {}. {}",
                    i % 17,
                    "Toelichting. ".repeat(20)
                ),
            );
            envelope.reply_recipient = Some(melder.to_public().to_string());
            envelope.counsellors = vec!["vp-bench".into()];
            envelope.category = Some(categories[i % 3].into());
            InboxEntry {
                seq: first_seq + i as u64,
                id: MessageId::random(),
                case: CaseId::random(),
                author: "melder".into(),
                kind: "report".into(),
                day: Day::today(),
                body: envelope
                    .seal(&[vault.recipient(), melder.to_public()])
                    .unwrap(),
                attachments: vec![],
            }
        })
        .collect();
    let mut none = |_: &UploadId| -> std::io::Result<Box<dyn Read>> { unreachable!() };
    Inbox::seal_to(
        Vec::new(),
        "vp-bench",
        0,
        &[],
        &entries,
        &vault.recipient(),
        &mut none,
    )
    .unwrap()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn unlock_to_overview() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = counsellor(dir.path());
    let bytes = inbox(&vault, 1000, 1);
    commands::import(&mut vault, &bytes).unwrap();
    assert_eq!(vault.state.cases.len(), 1000);
    drop(vault);
    let identity = std::fs::read(dir.path().join("vault/identity.age")).unwrap();
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    let mut frame = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let mut scrypt = age::scrypt::Identity::new(passphrase());
        scrypt.set_max_work_factor(22);
        age::decrypt(&scrypt, &identity).unwrap();
        floor.push(started.elapsed());

        let started = Instant::now();
        let vault = Vault::open(&dir.path().join("vault"), passphrase()).unwrap();
        let cases = views::overview(&vault, Day::today());
        assert_eq!(cases.len(), 1000);
        ours.push(started.elapsed());

        // The first frame of the overview, laid out by egui (headless).
        let mut app = meldkluis::desk::DeskApp::new(dir.path().join("vault"), Day::today);
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "benchmark passphrase\n").unwrap();
        app.start(meldkluis::desk::StartOptions {
            passphrase_file: Some(pass),
            ..Default::default()
        })
        .unwrap();
        let ctx = egui::Context::default();
        let started = Instant::now();
        let mut output = ctx.run_ui(egui::RawInput::default(), |ui| app.ui(ui));
        output.textures_delta.clear(); // no renderer in a benchmark
        frame.push(started.elapsed());
    }
    let (ours, floor, frame) = (median(ours), median(floor), median(frame));
    println!(
        "unlock → overview, 1,000 cases: {} (Vault::open + overview) + first frame {}; scrypt alone {}; ratio {:.2}",
        ms(ours),
        ms(frame),
        ms(floor),
        (ours + frame).as_secs_f64() / floor.as_secs_f64()
    );
}

fn import_100() {
    let dir = tempfile::tempdir().unwrap();
    let vault = counsellor(dir.path());
    let bytes = inbox(&vault, 100, 1);
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    for round in 0..5 {
        let fresh = tempfile::tempdir().unwrap();
        let mut copy = counsellor(fresh.path());
        // The same keys as the inbox's: the bench vault's files, copied.
        for file in ["identity.age", "signing-key.age", "card.json", "state.age"] {
            std::fs::copy(
                dir.path().join("vault").join(file),
                fresh.path().join("vault").join(file),
            )
            .unwrap();
        }
        copy = {
            drop(copy);
            Vault::open(&fresh.path().join("vault"), passphrase()).unwrap()
        };
        let started = Instant::now();
        let summary = commands::import(&mut copy, &bytes).unwrap();
        ours.push(started.elapsed());
        assert_eq!(summary.new_cases, 100, "round {round}");

        let identities = copy.identities();
        let started = Instant::now();
        let decryptor = age::Decryptor::new(&bytes[..]).unwrap();
        let mut reader = decryptor.decrypt(identities.into_iter()).unwrap();
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        floor.push(started.elapsed());
    }
    let (ours, floor) = (median(ours), median(floor));
    println!(
        "import of an inbox with 100 reports ({} KiB): {}; age decrypt of the inbox alone {}; ratio {:.1} (each message also decrypted, fsynced and the state saved)",
        bytes.len() / 1024,
        ms(ours),
        ms(floor),
        ours.as_secs_f64() / floor.as_secs_f64()
    );
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Child: read the file (and with `decode`, preview it), print VmHWM.
fn preview_child(path: &str, decode: bool) {
    let bytes = std::fs::read(path).unwrap();
    if decode {
        let image = meldkluis::desk::files::decode_image(&bytes).expect("decodes");
        let color =
            egui::ColorImage::from_rgba_unmultiplied([image.width, image.height], &image.rgba);
        drop(image);
        assert!(color.pixels.len() > 1000);
        let found = meldkluis::desk::files::identifying_metadata(&bytes);
        std::hint::black_box((color, found));
    }
    std::hint::black_box(&bytes);
    println!("{}", vm_hwm_kib());
}

fn preview_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.png");
    // Noise does not compress: 2,600 × 2,700 RGB is ≈ 20 MiB as PNG.
    let (w, h) = (2600u32, 2700u32);
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut pixels);
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut encoder = png::Encoder::new(file, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&pixels).unwrap();
        writer.finish().unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let run = |decode: bool| -> u64 {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "preview-child",
                path.to_str().unwrap(),
                if decode { "decode" } else { "read" },
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (read, preview) = (run(false), run(true));
    let rgba = u64::from(w) * u64::from(h) * 4;
    println!(
        "preview of a {:.1} MiB PNG ({w}×{h}): peak memory {:.1} MiB; reading the file alone {:.1} MiB; the RGBA pixels themselves {:.1} MiB",
        size as f64 / 1048576.0,
        preview as f64 / 1024.0,
        read as f64 / 1024.0,
        rgba as f64 / 1048576.0
    );
    let _ = std::io::stdout().flush();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("preview-child") {
        preview_child(&args[2], args[3] == "decode");
        return;
    }
    let only = args.get(1).filter(|a| !a.starts_with('-')).cloned();
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    println!("# Meldkluis desk benchmarks");
    if run("unlock") {
        unlock_to_overview();
    }
    if run("import") {
        import_100();
    }
    if run("preview") {
        preview_memory();
    }
}
