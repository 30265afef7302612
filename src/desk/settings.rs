//! The desk's settings: language, appearance, idle lock, and the folders it
//! remembers. Nothing secret, so they sit unencrypted beside the vault in
//! `desk-settings.json`.

use std::path::{Path, PathBuf};

use egui::{Context, Ui};
use serde::{Deserialize, Serialize};

use super::text::Texts;
use super::widgets;
use crate::review::i18n::Lang;
use crate::review::vault::Vault;

const FILE: &str = "desk-settings.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    #[serde(skip)]
    pub vault_dir: PathBuf,
    #[serde(with = "lang_tag")]
    pub lang: Lang,
    pub dark: bool,
    /// 1.0 = 100 %; up to 2.0.
    pub text_scale: f32,
    pub idle_minutes: u32,
    /// The folder on the USB stick used for syncing.
    pub stick: Option<PathBuf>,
    /// Where attachments, PDFs and figures are saved.
    pub export_dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            vault_dir: PathBuf::new(),
            lang: Lang::from_env(),
            dark: false,
            text_scale: 1.0,
            idle_minutes: 10,
            stick: None,
            export_dir: None,
        }
    }
}

mod lang_tag {
    use crate::review::i18n::Lang;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(lang: &Lang, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(lang.tag())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Lang, D::Error> {
        Ok(Lang::from_tag(&String::deserialize(d)?))
    }
}

impl Settings {
    /// The settings kept beside the vault, or the defaults (a damaged file
    /// is ignored: nothing in it is worth refusing to start over).
    pub fn load(vault_dir: &Path) -> Settings {
        let mut settings: Settings = std::fs::read(vault_dir.join(FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        settings.vault_dir = vault_dir.to_path_buf();
        settings.text_scale = settings.text_scale.clamp(1.0, 2.0);
        settings.idle_minutes = settings.idle_minutes.clamp(1, 120);
        settings
    }

    /// Saves the settings when the vault folder exists; a failure only
    /// means they are not remembered.
    pub fn save(&self) {
        if self.vault_dir.is_dir() {
            let json = serde_json::to_vec_pretty(self).expect("settings serialise");
            let _ = std::fs::write(self.vault_dir.join(FILE), json);
        }
    }

    /// Theme and text size, every frame (cheap when unchanged).
    pub fn apply(&self, ctx: &Context) {
        let theme = if self.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        };
        if ctx.theme() != theme {
            ctx.set_theme(theme);
        }
        if (ctx.zoom_factor() - self.text_scale).abs() > f32::EPSILON {
            ctx.set_zoom_factor(self.text_scale);
        }
        widgets::desk_style(ctx);
    }

    /// Where files are saved: the chosen folder, else the stick, else the
    /// home folder.
    pub fn export_dir(&self) -> PathBuf {
        self.export_dir
            .clone()
            .or_else(|| self.stick.clone())
            .unwrap_or_else(|| self.vault_dir.parent().unwrap_or(Path::new(".")).into())
    }

    pub fn ui(&mut self, ui: &mut Ui, texts: &Texts, vault: &Vault) {
        let before = (self.lang, self.dark, self.text_scale, self.idle_minutes);
        ui.heading(texts.settings_heading);
        ui.add_space(8.0);
        widgets::labelled_row(ui, texts.language, |ui| {
            ui.radio_value(&mut self.lang, Lang::Nl, "Nederlands");
            ui.radio_value(&mut self.lang, Lang::En, "English");
        });
        widgets::labelled_row(ui, texts.theme, |ui| {
            ui.radio_value(&mut self.dark, false, texts.theme_light);
            ui.radio_value(&mut self.dark, true, texts.theme_dark);
        });
        widgets::labelled_row(ui, texts.text_size, |ui| {
            for (scale, label) in [(1.0, "100 %"), (1.5, "150 %"), (2.0, "200 %")] {
                ui.radio_value(&mut self.text_scale, scale, label);
            }
        });
        widgets::labelled_row(ui, texts.idle_lock, |ui| {
            for minutes in [5, 10, 30] {
                ui.radio_value(
                    &mut self.idle_minutes,
                    minutes,
                    format!("{minutes} {}", texts.minutes),
                );
            }
        });
        ui.add_space(12.0);
        ui.label(format!(
            "{}: {}",
            texts.vault_folder,
            super::display_path(vault.dir())
        ));
        if before != (self.lang, self.dark, self.text_scale, self.idle_minutes) {
            self.save();
        }
    }
}
