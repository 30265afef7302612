//! The counsellor's desktop program: one window over the reviewer library
//! (`review::views`, `review::commands`). One state struct per screen, a
//! `ui` function per panel, and every change to the vault as an [`Action`]
//! handled in one place ([`Desk::apply`]). No network code: it talks only
//! to the display server and the accessibility bus (docs/security.md).

mod case;
pub mod files;
mod overview;
mod pdf;
mod settings;
mod setup;
mod stats;
mod sync;
pub mod text;
mod unlock;
mod widgets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::{Context, Ui};

use crate::format::day::Day;
use crate::format::ids::CaseId;
use crate::review::i18n::Lang;
use crate::review::vault::Vault;

pub use settings::Settings;
use text::Texts;

/// Which page of the open desk is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Cases,
    Sync,
    Stats,
    Settings,
}

/// The window's state: first run, locked, or open.
enum Screen {
    Setup(Box<setup::SetupScreen>),
    Unlock(Box<unlock::UnlockScreen>),
    Open(Box<Desk>),
}

/// The open vault and everything shown about it.
pub struct Desk {
    vault: Vault,
    tab: Tab,
    overview: overview::OverviewState,
    case: Option<case::CaseScreen>,
    sync: sync::SyncState,
    stats: stats::StatsState,
    /// The last thing that happened, shown (and announced) at the top.
    notice: Option<Notice>,
}

/// A message to the counsellor after an action.
#[derive(Debug, Clone)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

impl Notice {
    fn ok(text: impl Into<String>) -> Self {
        Notice {
            text: text.into(),
            is_error: false,
        }
    }

    fn error(texts: &Texts, text: impl Into<String>) -> Self {
        Notice {
            text: format!("{} {}", texts.error_prefix, text.into()),
            is_error: true,
        }
    }
}

/// How the program starts, from its command line (see `run_native`).
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    pub lang: Option<Lang>,
    pub dark: Option<bool>,
    pub text_scale: Option<f32>,
    /// For scripted sessions (tests, screenshots): unlock with the first
    /// line of this file instead of asking.
    pub passphrase_file: Option<PathBuf>,
    pub tab: Option<Tab>,
    /// Open the case whose id starts with this.
    pub case: Option<String>,
    /// With `case`: show its n-th attachment (from 1) in the preview.
    pub attachment: Option<usize>,
    /// With `case`: start introducing the colleague of this card file, read
    /// and shown with its fingerprint (screenshots of that step).
    pub introduce: Option<PathBuf>,
    /// Measure deadlines against this day instead of today (demonstrations
    /// and screenshots of overdue cases).
    pub today: Option<Day>,
}

/// The program: settings, the clock, and the current screen.
pub struct DeskApp {
    settings: Settings,
    screen: Screen,
    /// The day deadlines are measured against; fixed in tests.
    today: fn() -> Day,
    /// A day set on the command line, instead of `today`.
    today_override: Option<Day>,
    last_input: Instant,
    /// Shown on the unlock screen after an idle lock.
    locked_for_idle: bool,
}

impl DeskApp {
    /// Opens on the vault in `vault_dir`: the first-run wizard when there
    /// is none yet, the unlock screen otherwise.
    pub fn new(vault_dir: PathBuf, today: fn() -> Day) -> Self {
        let settings = Settings::load(&vault_dir);
        let screen = if Vault::exists(&vault_dir) {
            Screen::Unlock(Box::default())
        } else {
            Screen::Setup(Box::new(setup::SetupScreen::new()))
        };
        DeskApp {
            settings,
            screen,
            today,
            today_override: None,
            last_input: Instant::now(),
            locked_for_idle: false,
        }
    }

    /// Applies the command line: settings for this sitting, and for
    /// scripted sessions an unlock from a file and a first screen.
    pub fn start(&mut self, options: StartOptions) -> Result<(), String> {
        if let Some(lang) = options.lang {
            self.settings.lang = lang;
        }
        if let Some(dark) = options.dark {
            self.settings.dark = dark;
        }
        self.today_override = options.today;
        if let Some(scale) = options.text_scale {
            self.settings.text_scale = scale.clamp(1.0, 2.0);
        }
        let words = self.settings.lang.words();
        let Some(file) = options.passphrase_file else {
            return Ok(());
        };
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", display_path(&file)))?,
        );
        let line = text.lines().next().unwrap_or_default().to_string();
        let vault = Vault::open(
            &self.settings.vault_dir,
            age::secrecy::SecretString::from(line),
        )
        .map_err(|e| words.error(&e))?;
        let mut desk = Desk::new(vault);
        if let Some(tab) = options.tab {
            desk.tab = tab;
        }
        if let Some(prefix) = options.case {
            let id = crate::review::commands::resolve_case(&desk.vault, &prefix)
                .map_err(|e| words.error(&e))?;
            let today = self.day();
            desk.apply(Action::OpenCase(id), self.texts(), &self.settings, today);
            if let (Some(n), Some(screen)) = (options.attachment, &mut desk.case) {
                screen.preview_attachment(&desk.vault, n, self.settings.lang);
            }
            if let (Some(card), Some(screen)) = (options.introduce, &mut desk.case) {
                screen.start_introducing(&card, self.settings.lang);
            }
        }
        self.screen = Screen::Open(Box::new(desk));
        Ok(())
    }

    fn day(&self) -> Day {
        self.today_override.unwrap_or_else(self.today)
    }

    pub fn lang(&self) -> Lang {
        self.settings.lang
    }

    fn texts(&self) -> &'static Texts {
        text::texts(self.settings.lang)
    }

    /// Drops the open vault (its keys zeroize themselves) and asks for the
    /// passphrase again.
    pub fn lock(&mut self) {
        self.screen = Screen::Unlock(Box::default());
    }

    /// The messages queued for the next sync, when the vault is open.
    pub fn queued(&self) -> Option<usize> {
        match &self.screen {
            Screen::Open(desk) => Some(desk.vault.state.pending.len()),
            _ => None,
        }
    }

    /// The last notice shown, if any.
    pub fn notice(&self) -> Option<&Notice> {
        match &self.screen {
            Screen::Open(desk) => desk.notice.as_ref(),
            _ => None,
        }
    }

    /// Whether the vault is open.
    pub fn is_open(&self) -> bool {
        matches!(self.screen, Screen::Open(_))
    }

    /// The whole window, once per frame.
    pub fn ui(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        self.settings.apply(&ctx);
        self.lock_when_idle(&ctx);
        let texts = self.texts();
        let today = self.day();
        let mut next: Option<Screen> = None;
        match &mut self.screen {
            Screen::Setup(screen) => {
                if let Some(vault) = screen.ui(ui, texts, &mut self.settings) {
                    next = Some(Screen::Open(Box::new(Desk::new(vault))));
                }
            }
            Screen::Unlock(screen) => {
                let idle = self.locked_for_idle;
                if let Some(vault) = screen.ui(ui, texts, &self.settings, idle) {
                    self.locked_for_idle = false;
                    next = Some(Screen::Open(Box::new(Desk::new(vault))));
                }
            }
            Screen::Open(desk) => {
                if desk.ui(ui, texts, &mut self.settings, today) == DeskOutcome::Lock {
                    next = Some(Screen::Unlock(Box::default()));
                }
            }
        }
        if let Some(screen) = next {
            self.screen = screen;
            self.last_input = Instant::now();
        }
    }

    fn lock_when_idle(&mut self, ctx: &Context) {
        let active = ctx.input(|i| !i.events.is_empty() || i.pointer.is_moving());
        if active {
            self.last_input = Instant::now();
        }
        if !self.is_open() {
            return;
        }
        let limit = Duration::from_secs(u64::from(self.settings.idle_minutes) * 60);
        let idle = self.last_input.elapsed();
        if idle >= limit {
            self.lock();
            self.locked_for_idle = true;
        } else {
            // Wake up in time to lock even when nothing else happens.
            ctx.request_repaint_after(limit - idle);
        }
    }
}

impl eframe::App for DeskApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        DeskApp::ui(self, ui);
    }
}

/// What the open desk asks of the program.
#[derive(Debug, PartialEq, Eq)]
enum DeskOutcome {
    Stay,
    Lock,
}

/// Every change the desk makes to the vault or the disk.
pub enum Action {
    OpenCase(CaseId),
    CloseCase,
    Send(case::Outgoing),
    AddNote(CaseId, String),
    /// Take on a case a colleague introduced this counsellor to (§10.5).
    AcceptIntroduction(CaseId),
    ExportAttachment {
        case: CaseId,
        attachment: Box<crate::review::views::AttachmentView>,
        clean: bool,
        dir: PathBuf,
    },
    ExportPdf {
        case: CaseId,
        with_contact: bool,
        dir: PathBuf,
    },
    PrepareSync,
    Import,
    SaveStats {
        dir: PathBuf,
        svg: bool,
    },
}

impl Desk {
    fn new(vault: Vault) -> Self {
        Desk {
            vault,
            tab: Tab::Cases,
            overview: overview::OverviewState::default(),
            case: None,
            sync: sync::SyncState::default(),
            stats: stats::StatsState::default(),
            notice: None,
        }
    }

    fn ui(
        &mut self,
        ui: &mut Ui,
        texts: &'static Texts,
        settings: &mut Settings,
        today: Day,
    ) -> DeskOutcome {
        let mut outcome = DeskOutcome::Stay;
        let mut actions = Vec::new();
        // Keyboard shortcuts, for people who work without a mouse:
        // Ctrl+1…4 the pages, Ctrl+P prepare sync, Ctrl+I import, Ctrl+L lock.
        let shortcut = |key| {
            ui.ctx()
                .input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, key))
        };
        for (key, tab) in [
            (egui::Key::Num1, Tab::Cases),
            (egui::Key::Num2, Tab::Sync),
            (egui::Key::Num3, Tab::Stats),
            (egui::Key::Num4, Tab::Settings),
        ] {
            if shortcut(key) {
                self.tab = tab;
            }
        }
        if shortcut(egui::Key::P) {
            actions.push(Action::PrepareSync);
        }
        if shortcut(egui::Key::I) {
            actions.push(Action::Import);
        }
        if shortcut(egui::Key::L) {
            outcome = DeskOutcome::Lock;
        }
        egui::Panel::top("navigation").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.heading(texts.app_title);
            });
            ui.horizontal_wrapped(|ui| {
                for (tab, label) in [
                    (Tab::Cases, texts.tab_cases),
                    (Tab::Sync, texts.tab_sync),
                    (Tab::Stats, texts.tab_stats),
                    (Tab::Settings, texts.tab_settings),
                ] {
                    if widgets::tab(ui, self.tab == tab, label).clicked() {
                        self.tab = tab;
                        if tab == Tab::Cases {
                            actions.push(Action::CloseCase);
                        }
                    }
                }
                ui.separator();
                if widgets::button(ui, texts.lock).clicked() {
                    outcome = DeskOutcome::Lock;
                }
            });
            if let Some(notice) = &self.notice {
                widgets::notice(ui, notice);
            }
        });
        egui::CentralPanel::default().show(ui, |ui| match self.tab {
            Tab::Cases => match &mut self.case {
                Some(screen) => screen.ui(ui, texts, settings, &self.vault, &mut actions),
                None => {
                    self.overview
                        .ui(ui, texts, settings.lang, &self.vault, today, &mut actions)
                }
            },
            Tab::Sync => self.sync.ui(ui, texts, settings, &self.vault, &mut actions),
            Tab::Stats => self
                .stats
                .ui(ui, texts, settings, &self.vault, today, &mut actions),
            Tab::Settings => settings.ui(ui, texts, &self.vault),
        });
        for action in actions {
            self.apply(action, texts, settings, today);
        }
        outcome
    }

    /// The one place where the desk changes the vault or writes a file.
    fn apply(&mut self, action: Action, texts: &'static Texts, settings: &Settings, today: Day) {
        let words = settings.lang.words();
        let result: Result<Option<String>, String> = match action {
            Action::OpenCase(id) => {
                let opened = case::CaseScreen::open(&mut self.vault, id, settings.lang, today)
                    .map_err(|e| words.error(&e));
                opened.map(|screen| {
                    self.case = Some(screen);
                    None
                })
            }
            Action::CloseCase => {
                self.case = None;
                self.overview.invalidate();
                Ok(None)
            }
            Action::Send(outgoing) => {
                let id = outgoing.case;
                case::send(&mut self.vault, outgoing, today)
                    .map_err(|e| words.error(&e))
                    .and_then(|()| self.refresh_case(id, settings.lang, today))
                    .map(|()| Some(texts.queued.to_string()))
            }
            Action::AcceptIntroduction(id) => {
                crate::review::commands::accept_introduction(&mut self.vault, &id)
                    .map_err(|e| words.error(&e))
                    .and_then(|()| self.refresh_case(id, settings.lang, today))
                    .map(|()| Some(texts.introduction_accepted.to_string()))
            }
            Action::AddNote(id, note) => {
                crate::review::commands::note(&mut self.vault, &id, &note, today)
                    .map_err(|e| words.error(&e))
                    .and_then(|()| self.refresh_case(id, settings.lang, today))
                    .map(|()| Some(texts.note_saved.to_string()))
            }
            Action::ExportAttachment {
                case,
                attachment,
                clean,
                dir,
            } => files::export(&self.vault, &case, &attachment, clean, &dir, settings.lang)
                .map(|written| Some(format!("{} {}", texts.exported_to, display_path(&written)))),
            Action::ExportPdf {
                case,
                with_contact,
                dir,
            } => pdf::export(&self.vault, &case, with_contact, &dir, settings.lang, today)
                .map(|path| Some(format!("{} {}", texts.pdf_written, display_path(&path)))),
            Action::PrepareSync => sync::prepare(&mut self.vault, settings, texts),
            Action::Import => {
                let imported = sync::import(&mut self.vault, settings, texts);
                self.overview.invalidate();
                imported
            }
            Action::SaveStats { dir, svg } => {
                stats::save(&self.vault, &dir, svg, settings.lang, today)
                    .map(|path| Some(format!("{} {}", texts.stats_written, display_path(&path))))
            }
        };
        match result {
            Ok(Some(text)) => self.notice = Some(Notice::ok(text)),
            Ok(None) => {}
            Err(text) => self.notice = Some(Notice::error(texts, text)),
        }
    }

    fn refresh_case(&mut self, id: CaseId, lang: Lang, today: Day) -> Result<(), String> {
        self.overview.invalidate();
        if let Some(screen) = &mut self.case {
            screen
                .reload(&mut self.vault, id, today)
                .map_err(|e| lang.words().error(&e))?;
        }
        Ok(())
    }
}

/// A path for a person: neutralised, since a stick's folder names are
/// anyone's.
pub fn display_path(path: &Path) -> String {
    crate::review::untrusted::Untrusted::new(path.display().to_string()).line()
}

/// The vault folder: `--vault DIR`, else `MELDKLUIS_VAULT`, else
/// `meldkluis` in the home folder.
pub fn vault_dir_from(args: &[String]) -> PathBuf {
    flag_value(args, "--vault")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("MELDKLUIS_VAULT").map(PathBuf::from))
        .unwrap_or_else(|| {
            std::env::var_os(if cfg!(windows) { "USERPROFILE" } else { "HOME" })
                .map(PathBuf::from)
                .unwrap_or_default()
                .join("meldkluis")
        })
}

/// The value after `flag` on the command line.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == flag)
        .map(|pair| pair[1].as_str())
}

/// The command line: `--vault DIR`, `--lang nl|en`, `--dark`,
/// `--text-scale 1.0…2.0`; for scripted sessions `--passphrase-file FILE`,
/// `--tab cases|sync|stats|settings`, `--case PREFIX` (with `--attachment N`
/// or `--introduce CARD-FILE`), `--today YYYY-MM-DD`.
pub fn start_options(args: &[String]) -> StartOptions {
    StartOptions {
        lang: flag_value(args, "--lang").map(Lang::from_tag),
        dark: args.iter().any(|a| a == "--dark").then_some(true),
        text_scale: flag_value(args, "--text-scale").and_then(|s| s.parse().ok()),
        passphrase_file: flag_value(args, "--passphrase-file").map(PathBuf::from),
        tab: flag_value(args, "--tab").and_then(|t| match t {
            "cases" => Some(Tab::Cases),
            "sync" => Some(Tab::Sync),
            "stats" => Some(Tab::Stats),
            "settings" => Some(Tab::Settings),
            _ => None,
        }),
        case: flag_value(args, "--case").map(str::to_string),
        attachment: flag_value(args, "--attachment").and_then(|n| n.parse().ok()),
        introduce: flag_value(args, "--introduce").map(PathBuf::from),
        today: flag_value(args, "--today").and_then(Day::parse),
    }
}

/// Starts the window (the `meldkluis-desk` binary).
pub fn run_native() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let vault_dir = vault_dir_from(&args);
    let vault_dir = std::path::absolute(&vault_dir).unwrap_or(vault_dir);
    let mut app = DeskApp::new(vault_dir, Day::today);
    if let Err(problem) = app.start(start_options(&args)) {
        eprintln!("meldkluis-desk: {problem}");
        return std::process::ExitCode::from(2);
    }
    // MELDKLUIS_DESK_SIZE=1366x768 gives screenshots a fixed window size.
    let size = std::env::var("MELDKLUIS_DESK_SIZE")
        .ok()
        .and_then(|s| {
            let (w, h) = s.split_once('x')?;
            Some([w.parse().ok()?, h.parse().ok()?])
        })
        .unwrap_or([1280.0, 720.0]);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(app.texts().app_title)
            .with_inner_size(size)
            .with_min_inner_size([640.0, 480.0]),
        ..Default::default()
    };
    match eframe::run_native("meldkluis-desk", options, Box::new(|_| Ok(Box::new(app)))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meldkluis-desk: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_app(dir: &Path) -> DeskApp {
        let vault = dir.join("kluis");
        Vault::init(
            &vault,
            age::secrecy::SecretString::from("idle test passphrase".to_owned()),
            crate::review::vault::NewCounsellor {
                id: "vp-idle".into(),
                name: "Idle".into(),
                organisation: "Test".into(),
                org: None,
                kind: crate::format::card::CounsellorKind::External,
                description: String::new(),
            },
        )
        .unwrap();
        let pass = dir.join("pass");
        std::fs::write(&pass, "idle test passphrase\n").unwrap();
        let mut app = DeskApp::new(vault, Day::today);
        app.start(StartOptions {
            passphrase_file: Some(pass),
            ..Default::default()
        })
        .unwrap();
        app
    }

    fn frame(app: &mut DeskApp, ctx: &Context) {
        let mut output = ctx.run_ui(egui::RawInput::default(), |ui| app.ui(ui));
        // No renderer here: the font textures are dropped on purpose.
        output.textures_delta.clear();
    }

    #[test]
    fn the_vault_locks_after_the_idle_time_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut app = open_app(dir.path());
        let ctx = Context::default();
        frame(&mut app, &ctx);
        assert!(app.is_open());
        let limit = Duration::from_secs(u64::from(app.settings.idle_minutes) * 60);
        app.last_input = Instant::now() - limit + Duration::from_secs(30);
        frame(&mut app, &ctx);
        assert!(app.is_open(), "not yet");
        app.last_input = Instant::now() - limit - Duration::from_secs(1);
        frame(&mut app, &ctx);
        assert!(!app.is_open(), "locked after the idle time");
        assert!(app.locked_for_idle);
        assert_eq!(
            app.queued(),
            None,
            "nothing of the vault is left in the program"
        );
    }

    #[test]
    fn a_wrong_passphrase_file_is_refused_with_words() {
        let dir = tempfile::tempdir().unwrap();
        let _ = open_app(dir.path());
        std::fs::write(dir.path().join("wrong"), "niet de goede\n").unwrap();
        let mut app = DeskApp::new(dir.path().join("kluis"), Day::today);
        let refused = app.start(StartOptions {
            passphrase_file: Some(dir.path().join("wrong")),
            ..Default::default()
        });
        assert_eq!(
            refused.unwrap_err(),
            "De wachtwoordzin klopt niet (of identity.age is beschadigd)."
        );
        assert!(!app.is_open());
    }
}
