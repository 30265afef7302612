//! Syncing in one place: the stick is chosen once; "prepare" writes the
//! signed outbox there, "import" finds the inboxes on it by itself and says
//! plainly what arrived and what was confirmed delivered.

use std::path::{Path, PathBuf};

use egui::{RichText, Ui};

use super::settings::Settings;
use super::text::Texts;
use super::{Action, widgets};
use crate::review::commands::{self, ImportSummary};
use crate::review::vault::Vault;

#[derive(Default)]
pub struct SyncState {
    stick: String,
}

impl SyncState {
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        texts: &Texts,
        settings: &mut Settings,
        vault: &Vault,
        actions: &mut Vec<Action>,
    ) {
        if self.stick.is_empty()
            && let Some(stick) = &settings.stick
        {
            self.stick = stick.display().to_string();
        }
        ui.heading(texts.sync_heading);
        ui.label(texts.sync_intro);
        ui.add_space(8.0);
        let field = widgets::text_field(ui, texts.stick_folder, &mut self.stick, false);
        if field.changed() {
            settings.stick =
                Some(PathBuf::from(self.stick.trim())).filter(|p| !p.as_os_str().is_empty());
            settings.save();
        }
        let sticks = find_sticks();
        if !sticks.is_empty() {
            ui.horizontal_wrapped(|ui| {
                ui.label(texts.stick_found);
                for stick in sticks {
                    let shown = super::display_path(&stick);
                    if widgets::button(ui, format!("{} {shown}", texts.use_folder)).clicked() {
                        self.stick = stick.display().to_string();
                        settings.stick = Some(stick);
                        settings.save();
                    }
                }
            });
        }
        ui.add_space(12.0);
        if !vault.state.pending.is_empty() {
            ui.label(format!(
                "{} {}",
                texts.queued_items,
                vault.state.pending.len()
            ));
        }
        if widgets::button(ui, RichText::new(texts.prepare_sync).strong()).clicked() {
            actions.push(Action::PrepareSync);
        }
        ui.add_space(8.0);
        ui.label(texts.sync_steps);
        ui.add_space(8.0);
        if widgets::button(ui, RichText::new(texts.import_inboxes).strong()).clicked() {
            actions.push(Action::Import);
        }
    }
}

/// Folders where a USB stick shows up: `/media/<user>/*`, `/run/media/<user>/*`
/// and `/media/*` on Linux; drive letters D: to Z: on Windows.
pub fn find_sticks() -> Vec<PathBuf> {
    let mut found = Vec::new();
    if cfg!(windows) {
        for letter in b'D'..=b'Z' {
            let root = PathBuf::from(format!("{}:\\", letter as char));
            if root.is_dir() {
                found.push(root);
            }
        }
        return found;
    }
    let user = std::env::var("USER").unwrap_or_default();
    let mut roots = vec![PathBuf::from("/media"), PathBuf::from("/run/media")];
    if !user.is_empty() {
        roots.insert(0, PathBuf::from("/run/media").join(&user));
        roots.insert(0, PathBuf::from("/media").join(&user));
    }
    for root in roots {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !found.contains(&path) && path.file_name() != Some(user.as_ref()) {
                found.push(path);
            }
        }
    }
    found
}

fn stick(settings: &Settings) -> Result<&Path, String> {
    settings
        .stick
        .as_deref()
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            let words = settings.lang.words();
            words.error(&crate::review::ReviewError::Io {
                path: settings.stick.clone().unwrap_or_default(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
        })
}

/// Writes the signed outbox to the stick.
pub fn prepare(
    vault: &mut Vault,
    settings: &Settings,
    texts: &Texts,
) -> Result<Option<String>, String> {
    let words = settings.lang.words();
    let dir = stick(settings)?;
    let items = vault.state.pending.len();
    // The counter is spent only once the outbox is on the stick.
    let name = format!(
        "meldkluis-outbox-{}-{}.tar",
        vault.card.id,
        vault.state.counter + 1
    );
    commands::write_outbox(vault, &dir.join(&name)).map_err(|e| words.error(&e))?;
    Ok(Some(
        texts
            .outbox_written
            .replace("{file}", &name)
            .replace("{items}", &items.to_string()),
    ))
}

/// The inboxes on the stick, oldest counter first.
pub fn inboxes(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rest = name
                .strip_prefix("meldkluis-inbox-")?
                .strip_suffix(".age")?;
            let counter = rest.rsplit('-').next()?.parse().unwrap_or(0);
            Some((counter, entry.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

/// Imports every inbox on the stick (importing one twice changes nothing)
/// and sums up what arrived.
pub fn import(
    vault: &mut Vault,
    settings: &Settings,
    texts: &Texts,
) -> Result<Option<String>, String> {
    let words = settings.lang.words();
    let dir = stick(settings)?;
    let found = inboxes(dir);
    if found.is_empty() {
        return Err(texts.no_inboxes.into());
    }
    let mut total = ImportSummary::default();
    let mut errors = Vec::new();
    for path in found {
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                errors.push(words.error(&crate::review::ReviewError::io(&path)(e)));
                continue;
            }
        };
        match commands::import_from(vault, file) {
            Ok(summary) => {
                total.new_cases += summary.new_cases;
                total.new_messages += summary.new_messages;
                total.confirmed += summary.confirmed;
                total.attachments += summary.attachments;
                total.damaged_attachments += summary.damaged_attachments;
                total.unreadable += summary.unreadable;
                total.not_genuine += summary.not_genuine;
                total.server_key_pinned = total.server_key_pinned.or(summary.server_key_pinned);
            }
            // Another counsellor's inbox on a shared stick is not an error,
            // nor is last week's inbox still on it: it answers an older
            // sync than one already read, so it is left alone unread.
            Err(crate::review::ReviewError::NotMyInbox(_))
            | Err(crate::review::ReviewError::InboxMismatch(
                crate::review::error::InboxMismatch::Older { .. },
            )) => {}
            Err(e) => errors.push(format!(
                "{}: {}",
                super::display_path(&path),
                words.error(&e)
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let mut pinned = total
        .server_key_pinned
        .as_ref()
        .map(|fingerprint| format!(" {}", words.server_key_pinned.replace("{0}", fingerprint)))
        .unwrap_or_default();
    if total.not_genuine > 0 {
        pinned.push(' ');
        pinned.push_str(
            &words
                .not_genuine_arrived
                .replace("{0}", &total.not_genuine.to_string()),
        );
    }
    if total.new_cases + total.new_messages + total.confirmed == 0 {
        return Ok(Some(format!("{}{pinned}", texts.nothing_new)));
    }
    Ok(Some(format!(
        "{}{pinned}",
        texts
            .import_result
            .replace("{cases}", &total.new_cases.to_string())
            .replace("{messages}", &total.new_messages.to_string())
            .replace("{confirmed}", &total.confirmed.to_string()),
    )))
}
