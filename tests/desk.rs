//! The counsellor's weekly routine in the desktop program, driven headless
//! through its accessibility tree (egui_kittest: widgets found by role and
//! label, never by position) against a real server on 127.0.0.1: first run
//! → card on the stick → server starts with it → a report arrives → sync →
//! import → overview → read → acknowledge → reply → sync → the melder reads
//! the reply → close → the melder writes after closure → reopen → answer →
//! lock → unlock.
#![cfg(feature = "desk")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Melder, Server};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use meldkluis::desk::DeskApp;
use meldkluis::format::day::Day;

const PASSPHRASE: &str = "vier woorden als wachtwoordzin";

fn fixed_today() -> Day {
    Day::today()
}

fn harness(vault: &Path) -> Harness<'static, DeskApp> {
    let app = DeskApp::new(vault.to_path_buf(), fixed_today);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1366.0, 768.0))
        .with_max_steps(12)
        .build_ui_state(|ui, app: &mut DeskApp| app.ui(ui), app);
    harness.run_steps(2);
    harness
}

/// The program unlocked with a passphrase file and opened at one case, as
/// `meldkluis-desk --passphrase-file … --case …` starts it.
fn opened_at_case(vault: &Path, pass: &Path, case: &str) -> Harness<'static, DeskApp> {
    let mut app = DeskApp::new(vault.to_path_buf(), fixed_today);
    app.start(meldkluis::desk::StartOptions {
        passphrase_file: Some(pass.to_path_buf()),
        case: Some(case[..8].to_string()),
        ..Default::default()
    })
    .unwrap();
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1366.0, 768.0))
        .with_max_steps(12)
        .build_ui_state(|ui, app: &mut DeskApp| app.ui(ui), app);
    harness.run_steps(2);
    harness
}

/// Steps the program until `done` holds (background work such as scrypt
/// runs on a thread), for at most a minute.
fn wait_for(
    harness: &mut Harness<'_, DeskApp>,
    what: &str,
    done: impl Fn(&Harness<'_, DeskApp>) -> bool,
) {
    let start = Instant::now();
    while !done(harness) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
        harness.step();
    }
    harness.run_steps(2);
}

fn type_into(harness: &mut Harness<'_, DeskApp>, label: &str, text: &str) {
    harness.get_by_label(label).scroll_to_me();
    harness.run_steps(2);
    harness.get_by_label(label).focus();
    harness.run_steps(1);
    harness.get_by_label(label).type_text(text);
    harness.run_steps(2);
}

/// Activates a widget the way a keyboard user does: focus it, press Enter.
fn click(harness: &mut Harness<'_, DeskApp>, label: &str) {
    harness.get_by_label(label).focus();
    harness.run_steps(1);
    assert!(
        harness.get_by_label(label).is_focused(),
        "{label} takes focus"
    );
    harness.key_press(egui::Key::Enter);
    harness.run_steps(3);
}

fn has_text(harness: &Harness<'_, DeskApp>, part: &str) -> bool {
    let found = harness.query_all_by_label_contains(part).next().is_some();
    if !found {
        let labels: Vec<String> = harness
            .query_all_by(|_| true)
            .filter_map(|n| n.accesskit_node().label())
            .collect();
        eprintln!("not on screen: {part:?}; labels: {labels:?}");
    }
    found
}

/// The courier machine: take the outbox from the stick, sync, put the
/// inbox back under the name the courier page gives it.
fn courier(server: &Server, stick: &Path, counsellor: &str) {
    let mut outboxes: Vec<_> = std::fs::read_dir(stick)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("meldkluis-outbox-"))
        .collect();
    outboxes.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    let outbox = outboxes.last().expect("an outbox on the stick");
    let answer = server.sync(&std::fs::read(outbox).unwrap());
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let counter = outbox
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .rsplit('-')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        stick.join(format!("meldkluis-inbox-{counsellor}-{counter}.age")),
        &answer.body,
    )
    .unwrap();
    std::fs::remove_file(outbox).unwrap();
}

/// One full sync from the desk: prepare, courier, import.
fn sync(harness: &mut Harness<'_, DeskApp>, server: &Server, stick: &Path, counsellor: &str) {
    click(harness, "Synchroniseren");
    click(harness, "1. Synchronisatie klaarzetten");
    assert!(has_text(harness, "Op de stick gezet"), "outbox written");
    courier(server, stick, counsellor);
    click(harness, "3. Inbox van de stick inlezen");
    assert!(
        has_text(harness, "Ingelezen") || has_text(harness, "Niets nieuws"),
        "import reported"
    );
}

/// Opens /mijn-melding in headless Chromium with the melder's code
/// (tests/browser/support/read-thread.mjs). Skipped, with a message, only
/// outside CI when Chromium or the npm packages are not installed.
fn melder_page_shows(server: &Server, melder: &Melder, texts: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ready = Path::new("/usr/bin/chromium").exists()
        && root
            .join("tests/browser/node_modules/playwright-core")
            .exists();
    if !ready {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must have Chromium and tests/browser/node_modules"
        );
        eprintln!("skipped: the melder's page in Chromium (no chromium or npm packages)");
        return;
    }
    // The case was reopened: the page asks for no evaluation.
    let output = std::process::Command::new("node")
        .env("MELDKLUIS_EXPECT_EVALUATION", "hidden")
        .arg(root.join("tests/browser/support/read-thread.mjs"))
        .arg(&server.base)
        .arg(melder.code.display())
        .arg("desk-melder-thread")
        .args(texts)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_weekly_routine_from_first_run_to_reopen() {
    let vault_dir = tempfile::tempdir().unwrap();
    let vault = vault_dir.path().join("kluis");
    let stick = tempfile::tempdir().unwrap();
    let mut h = harness(&vault);

    // First run: the wizard makes the vault; a short passphrase is asked again.
    assert!(has_text(&h, "Welkom: uw kluis maken"));
    type_into(&mut h, "Uw naam (zoals melders die zien)", "Mr. A. Jansen");
    type_into(&mut h, "Organisatie", "Ministerie van Voorbeeldzaken");
    type_into(&mut h, "Wachtwoordzin", "te kort");
    type_into(&mut h, "Wachtwoordzin nogmaals", "te kort");
    click(&mut h, "Kluis maken");
    assert!(has_text(&h, "korter dan 12 tekens"));
    assert!(!vault.join("identity.age").exists(), "nothing made");
    type_into(&mut h, "Wachtwoordzin", PASSPHRASE);
    type_into(&mut h, "Wachtwoordzin nogmaals", PASSPHRASE);
    click(&mut h, "Kluis maken");
    wait_for(&mut h, "the card", |h| has_text(h, "Vingerafdruk"));

    // The card goes on the stick under the name the server expects.
    type_into(
        &mut h,
        "Map op de USB-stick",
        &stick.path().display().to_string(),
    );
    click(&mut h, "Kaart op de stick zetten");
    let card_path = stick.path().join("mr-a-jansen.json");
    assert!(card_path.exists(), "card written as <id>.json");
    let card_json = std::fs::read_to_string(&card_path).unwrap();
    let card = meldkluis::format::card::Card::parse(card_json.as_bytes()).unwrap();
    assert!(has_text(&h, &card.fingerprint()), "fingerprint shown");
    click(&mut h, "Naar mijn zaken");
    assert!(has_text(&h, "Nog geen zaken"));

    // The operator puts the card in keys/ and the server starts with it.
    let server = Server::start_with_cards(&[("mr-a-jansen", card_json.clone())]);
    let recipient = card.recipient().unwrap();
    let melder = Melder::new();
    let mut report = melder.report_envelope(
        "Mijn leidinggevende laat facturen twee keer uitbetalen.",
        &["mr-a-jansen"],
    );
    report.category = Some("fraud-or-abuse-of-power".into());
    assert_eq!(
        server
            .submit_report(&melder, &report, std::slice::from_ref(&recipient))
            .status,
        201
    );

    // Sync: the new case arrives and leads the overview, with its deadline.
    sync(&mut h, &server, stick.path(), "mr-a-jansen");
    assert!(has_text(&h, "1 nieuwe zaak/zaken"));
    click(&mut h, "Zaken");
    let words = meldkluis::review::i18n::Lang::Nl.words();
    let ack_by = words.day(meldkluis::review::deadlines::add_days(Day::today(), 7));
    assert!(has_text(&h, "Mijn leidinggevende laat facturen"));
    assert!(has_text(&h, "fraude of misbruik van bevoegdheden"));
    assert!(has_text(
        &h,
        &format!("ontvangst bevestigen uiterlijk {ack_by}")
    ));
    assert!(has_text(&h, "ongelezen (1)"));
    assert!(has_text(&h, "wacht op uw antwoord"));

    // Read: the case opens with the report, numbered.
    let open = h
        .query_all_by_label_contains("Openen ")
        .next()
        .map(|n| n.accesskit_node().label().unwrap_or_default())
        .expect("an open button");
    click(&mut h, &open);
    assert!(has_text(&h, "Bericht 1"));
    assert!(has_text(&h, "twee keer uitbetalen"));

    // Acknowledge with the standard text (the default for a new case).
    assert!(has_text(&h, "Zo ziet de melder het"));
    click(&mut h, "Klaarzetten voor verzending");
    assert!(has_text(&h, "Klaargezet"));
    // Reply with own words.
    click(&mut h, "Antwoord");
    type_into(&mut h, "Tekst aan de melder", "Welke afdeling betreft het?");
    click(&mut h, "Klaarzetten voor verzending");
    assert!(has_text(&h, "Bericht 3"));

    sync(&mut h, &server, stick.path(), "mr-a-jansen");
    assert!(has_text(&h, "2 van uw berichten bevestigd"));
    let thread = server.post_json("/api/v1/thread", &melder.thread_request());
    let texts: Vec<String> = melder
        .read_thread(&thread.json())
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(texts.len(), 3);
    assert_eq!(texts[2], "Welke afdeling betreft het?");

    // Close with the standard closing text.
    click(&mut h, "Zaken");
    click(&mut h, &open);
    click(&mut h, "Zaak sluiten");
    click(&mut h, "Klaarzetten voor verzending");
    sync(&mut h, &server, stick.path(), "mr-a-jansen");

    // The melder writes after closure: the case shows it, and reopening answers.
    let follow_up = melder.follow_up_request("Het is nog niet opgelost.", &[recipient]);
    assert_eq!(
        server
            .post_json("/api/v1/thread/messages", &follow_up)
            .status,
        201
    );
    sync(&mut h, &server, stick.path(), "mr-a-jansen");
    assert!(has_text(&h, "1 nieuw(e) bericht(en)"));
    click(&mut h, "Zaken");
    assert!(has_text(&h, "wacht op uw antwoord"));
    click(&mut h, &open);
    assert!(has_text(&h, "Het is nog niet opgelost."));
    assert!(has_text(&h, "Heropen de zaak"));
    type_into(&mut h, "Tekst aan de melder", "Ik pak het opnieuw op.");
    click(&mut h, "Klaarzetten voor verzending");
    sync(&mut h, &server, stick.path(), "mr-a-jansen");
    let thread = server.post_json("/api/v1/thread", &melder.thread_request());
    let last = melder.read_thread(&thread.json()).pop().unwrap();
    assert_eq!(last.text, "Ik pak het opnieuw op.");
    let db = rusqlite::Connection::open(server.data_dir().join("meldkluis.sqlite")).unwrap();
    let closed: Option<String> = db
        .query_row("SELECT closed_day FROM cases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(closed, None, "the server keeps the reopened case");

    // The melder's own page, in a real browser, shows the whole conversation.
    melder_page_shows(
        &server,
        &melder,
        &[
            "twee keer uitbetalen",
            "Welke afdeling betreft het?",
            "Het is nog niet opgelost.",
            "Ik pak het opnieuw op.",
        ],
    );

    // Lock, then unlock: a wrong passphrase is refused, the right one opens.
    click(&mut h, "Op slot");
    assert!(has_text(&h, "Kluis openen"));
    type_into(&mut h, "Wachtwoordzin", "niet de goede zin");
    click(&mut h, "Openen");
    wait_for(&mut h, "the refusal", |h| has_text(h, "klopt niet"));
    type_into(&mut h, "Wachtwoordzin", PASSPHRASE);
    click(&mut h, "Openen");
    wait_for(&mut h, "the desk", |h| has_text(h, "Zaken"));
    assert!(h.state().is_open());
}

/// A 3×2 PNG with the melder's name in a text chunk, made with the png crate.
fn png_with_author() -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 3, 2);
    encoder.set_color(png::ColorType::Rgb);
    encoder
        .add_text_chunk("Author".into(), "J. de Melder".into())
        .unwrap();
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&[200; 18]).unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn attachments_pdf_and_figures_leave_the_desk_as_files() {
    use meldkluis::format::envelope::Attachment;
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("kluis");
    let mut vault = common::make_vault(&vault_dir, "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let melder = Melder::new();
    let mut report = melder.report_envelope("Zie de foto van het kasboek.", &["vp-a"]);
    report.contact = Some("j.demelder@example.org".into());
    report.attachments.push(Attachment::inline(
        "kasboek.png",
        "image/png",
        &png_with_author(),
    ));
    let recipients = [vault.recipient()];
    assert_eq!(
        server.submit_report(&melder, &report, &recipients).status,
        201
    );
    let answer = server.sync(&meldkluis::review::commands::outbox(&mut vault).unwrap());
    meldkluis::review::commands::import(&mut vault, &answer.body).unwrap();
    let case = vault.state.cases.keys().next().unwrap().to_hex();
    drop(vault);

    let out = dir.path().join("uit");
    std::fs::create_dir_all(&out).unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "test passphrase\n").unwrap();
    let mut h = opened_at_case(&vault_dir, &pass, &case);
    assert!(has_text(&h, "Zie de foto van het kasboek."));
    assert!(
        has_text(&h, "j.demelder@example.org"),
        "contact shown to the counsellor"
    );
    // The folder to save to.
    h.get_by_label("Map voor opslaan").focus();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("Map voor opslaan")
        .type_text(&out.display().to_string());
    h.run_steps(2);

    // Preview: the picture and the metadata that could identify the melder.
    click(&mut h, "Bekijken 01-kasboek.png");
    assert!(has_text(&h, "Bijlage bekijken: 01-kasboek.png"));
    assert!(
        has_text(&h, "J. de Melder"),
        "the author in the file is shown"
    );
    click(&mut h, "Sluiten");

    // Saved without metadata: the same pixels, no author.
    click(&mut h, "Opslaan zonder metadata 01-kasboek.png");
    assert!(has_text(&h, "Opgeslagen:"), "{:?}", h.state().notice());
    let clean = std::fs::read(out.join("01-kasboek.png")).unwrap();
    assert!(!String::from_utf8_lossy(&clean).contains("J. de Melder"));
    let decoded = meldkluis::desk::files::decode_image(&clean).unwrap();
    assert_eq!((decoded.width, decoded.height), (3, 2));

    // The PDF, without contact details.
    click(&mut h, "Contactgegevens weglaten");
    click(&mut h, "Zaak als PDF opslaan");
    assert!(has_text(&h, "PDF opgeslagen:"), "{:?}", h.state().notice());
    let pdf = std::fs::read(out.join(format!("zaak-{}.pdf", &case[..8]))).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.contains("Vertrouwelijk zaakdossier"));
    assert!(text.contains("kasboek"));
    assert!(!text.contains("demelder@example.org"), "contact left out");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("01-kasboek.png"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "decrypted files are the counsellor's alone"
        );
    }

    // Figures, as CSV and as an SVG chart.
    click(&mut h, "Cijfers");
    h.get_by_label("Map voor opslaan").focus();
    h.run_steps(1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label("Map voor opslaan")
        .type_text(&out.display().to_string());
    h.run_steps(2);
    click(&mut h, "Opslaan als CSV");
    click(&mut h, "Grafiek opslaan als SVG");
    let today = Day::today();
    let csv = std::fs::read_to_string(out.join(format!("meldkluis-cijfers-{today}.csv"))).unwrap();
    assert!(csv.contains("cases,1") || csv.contains(",1"), "{csv}");
    let svg = std::fs::read_to_string(out.join(format!("meldkluis-cijfers-{today}.svg"))).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(">1</text>"));
}

#[test]
fn a_forged_melder_message_is_marked_in_the_case_view() {
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("kluis");
    let mut vault = common::make_vault(&vault_dir, "vp-a");
    let server = Server::start_with_cards(&[("vp-a", vault.card.to_json())]);
    let melder = Melder::new();
    let recipients = [vault.recipient()];
    let report =
        melder.report_envelope_v2("Ondertekende melding.", std::slice::from_ref(&vault.card));
    assert_eq!(
        server
            .post_json(
                "/api/v1/reports",
                &melder.report_request_signed(&report, &recipients)
            )
            .status,
        201
    );
    // The operator's unsigned "follow-up" in the signed thread.
    let forged = server.post_json(
        "/api/v1/thread/messages",
        &melder.follow_up_request("Ik trek mijn melding in.", &recipients),
    );
    assert!(forged.status < 300, "{}", forged.error());
    let answer = server.sync(&meldkluis::review::commands::outbox(&mut vault).unwrap());
    let summary = meldkluis::review::commands::import(&mut vault, &answer.body).unwrap();
    assert_eq!(summary.not_genuine, 1);
    let case = vault.state.cases.keys().next().unwrap().to_hex();
    drop(vault);
    keep_for_screenshots(&vault_dir);

    let pass = dir.path().join("pass");
    std::fs::write(&pass, "test passphrase\n").unwrap();
    let h = opened_at_case(&vault_dir, &pass, &case);
    assert!(has_text(&h, "Ondertekende melding."));
    assert!(
        has_text(&h, "handtekening klopt"),
        "the report is marked genuine"
    );
    assert!(
        has_text(&h, "LET OP: niet van de melder"),
        "the forgery is marked"
    );
    assert!(
        has_text(&h, "onbekende afzender"),
        "and not shown as the melder's"
    );
}

#[test]
fn a_colleague_is_introduced_from_the_case_view_after_comparing_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let vault_dir = dir.path().join("kluis");
    let mut vault = common::make_vault(&vault_dir, "vp-a");
    let colleague = common::make_vault(&dir.path().join("collega"), "vp-b");
    let server = Server::start_with_cards(&[
        ("vp-a", vault.card.to_json()),
        ("vp-b", colleague.card.to_json()),
    ]);
    let melder = Melder::new();
    let report = melder.report_envelope_v2("Melding voor twee.", std::slice::from_ref(&vault.card));
    let answer = server.post_json(
        "/api/v1/reports",
        &melder.report_request_signed(&report, &[vault.recipient()]),
    );
    assert_eq!(answer.status, 201);
    common::sync(&server, &mut vault);
    let case = vault.state.cases.keys().next().unwrap().to_hex();
    drop(vault);
    let card_file = dir.path().join("vp-b.json");
    std::fs::write(&card_file, colleague.card.to_json()).unwrap();

    let pass = dir.path().join("pass");
    std::fs::write(&pass, "test passphrase\n").unwrap();
    let mut h = opened_at_case(&vault_dir, &pass, &case);
    click(&mut h, "Een collega toevoegen");
    assert!(
        has_text(&h, "Ik heb een collega gevraagd"),
        "the standard introduction"
    );
    // Queuing before the card is read and compared is refused.
    click(&mut h, "Klaarzetten voor verzending");
    assert!(has_text(&h, "vergelijk de vingerafdruk"));
    type_into(
        &mut h,
        "Kaartbestand van uw collega",
        &card_file.display().to_string(),
    );
    click(&mut h, "Kaart lezen");
    assert!(
        has_text(&h, &colleague.card.fingerprint()),
        "the fingerprint to compare"
    );
    assert!(has_text(&h, "Counsellor vp-b"));
    click(
        &mut h,
        "Ik heb deze vingerafdruk vergeleken met de lijst van de organisatie en hij klopt",
    );
    click(&mut h, "Klaarzetten voor verzending");
    assert!(has_text(&h, "Klaargezet"), "queued");
    drop(h);

    let vault = meldkluis::review::Vault::open(
        &vault_dir,
        age::secrecy::SecretString::from("test passphrase".to_owned()),
    )
    .unwrap();
    assert_eq!(vault.state.pending.len(), 1);
    assert_eq!(vault.state.pending[0].introduce, vec!["vp-b".to_string()]);
    assert!(
        vault
            .state
            .cases
            .values()
            .next()
            .unwrap()
            .pinned
            .contains_key("vp-b")
    );
}

#[test]
fn an_introduced_colleague_takes_the_case_on_in_the_desk_after_comparing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = common::make_vault(&dir.path().join("a"), "vp-a");
    let b_dir = dir.path().join("kluis");
    let mut b = common::make_vault(&b_dir, "vp-b");
    let server =
        Server::start_with_cards(&[("vp-a", a.card.to_json()), ("vp-b", b.card.to_json())]);
    let melder = Melder::new();
    let report =
        melder.report_envelope_v2("Melding voor de collega.", std::slice::from_ref(&a.card));
    let answer = server.post_json(
        "/api/v1/reports",
        &melder.report_request_signed(&report, &[a.recipient()]),
    );
    assert_eq!(answer.status, 201);
    common::sync(&server, &mut a);
    let case = *a.state.cases.keys().next().unwrap();
    meldkluis::review::commands::introduce(
        &mut a,
        &case,
        &b.card,
        "Mijn collega leest mee.",
        fixed_today(),
    )
    .unwrap();
    common::sync(&server, &mut a);
    common::sync(&server, &mut b);
    drop(b);
    keep_for_screenshots(&b_dir);

    let pass = dir.path().join("pass");
    std::fs::write(&pass, "test passphrase\n").unwrap();
    let mut h = opened_at_case(&b_dir, &pass, &case.to_hex());
    assert!(has_text(&h, "Een collega heeft u aan deze zaak toegevoegd"));
    assert!(
        has_text(&h, &a.card.fingerprint()),
        "the introducer's fingerprint"
    );
    assert!(
        !has_text(&h, "Melding voor de collega."),
        "nothing before confirming"
    );
    click(&mut h, "Zaak overnemen");
    assert!(
        has_text(&h, "Vergelijk eerst de vingerafdruk"),
        "refused until compared"
    );
    click(
        &mut h,
        "Ik heb deze vingerafdruk vergeleken met de lijst van de organisatie en hij klopt",
    );
    click(&mut h, "Zaak overnemen");
    assert!(has_text(&h, "De zaak is overgenomen"));
    assert!(
        has_text(&h, "Melding voor de collega."),
        "the report, forwarded"
    );
    assert!(has_text(&h, "Doorgestuurd door een collega"));
}

/// To photograph the real window on a test's vault (docs/screenshots):
/// `MELDKLUIS_KEEP_DESK_VAULT=/some/dir` keeps a copy of it there.
fn keep_for_screenshots(vault_dir: &Path) {
    if let Ok(keep) = std::env::var("MELDKLUIS_KEEP_DESK_VAULT") {
        let copied = std::process::Command::new("cp")
            .args(["-a", &vault_dir.display().to_string(), &keep])
            .status()
            .unwrap();
        assert!(copied.success());
    }
}
