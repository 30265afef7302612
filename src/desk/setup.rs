//! The first-run wizard: make the vault, show the card and its fingerprint,
//! write the card to the stick under the name the server expects
//! (`<id>.json` in `keys/`).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError, channel};

use age::secrecy::SecretString;
use egui::{RichText, Ui};
use zeroize::Zeroize;

use super::settings::Settings;
use super::text::Texts;
use super::widgets;
use crate::format::card::{CounsellorKind, slugify};
use crate::review::error::ReviewError;
use crate::review::vault::{NewCounsellor, Vault};

/// The shortest passphrase accepted, as in the command line's `init`.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

pub struct SetupScreen {
    name: String,
    organisation: String,
    external: bool,
    passphrase: String,
    again: String,
    error: Option<String>,
    making: Option<Receiver<Result<Vault, ReviewError>>>,
    made: Option<Vault>,
    stick: String,
    written: Option<PathBuf>,
}

impl Drop for SetupScreen {
    fn drop(&mut self) {
        self.passphrase.zeroize();
        self.again.zeroize();
    }
}

impl SetupScreen {
    pub fn new() -> Self {
        SetupScreen {
            name: String::new(),
            organisation: String::new(),
            external: true,
            passphrase: String::new(),
            again: String::new(),
            error: None,
            making: None,
            made: None,
            stick: String::new(),
            written: None,
        }
    }

    /// Shows the wizard; returns the vault when the counsellor goes on to
    /// the desk.
    pub fn ui(&mut self, ui: &mut Ui, texts: &Texts, settings: &mut Settings) -> Option<Vault> {
        self.poll(settings);
        let mut done = false;
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                widgets::centered_column(ui, 760.0, |ui| {
                    ui.heading(texts.app_title);
                    if self.made.is_some() {
                        done = self.card_ui(ui, texts, settings);
                    } else {
                        self.form_ui(ui, texts, settings);
                    }
                });
            });
        });
        if self.making.is_some() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(50));
        }
        if done { self.made.take() } else { None }
    }

    fn form_ui(&mut self, ui: &mut Ui, texts: &Texts, settings: &Settings) {
        ui.heading(texts.setup_heading);
        ui.label(texts.setup_intro);
        ui.label(format!(
            "{}: {}",
            texts.vault_folder,
            super::display_path(&settings.vault_dir)
        ));
        ui.add_space(8.0);
        widgets::text_field(ui, texts.your_name, &mut self.name, false);
        widgets::text_field(ui, texts.organisation, &mut self.organisation, false);
        widgets::labelled_row(ui, texts.kind, |ui| {
            ui.radio_value(&mut self.external, false, texts.kind_internal);
            ui.radio_value(&mut self.external, true, texts.kind_external);
        });
        ui.label(format!("{}: {}", texts.card_id, slugify(&self.name)));
        ui.add_space(8.0);
        widgets::text_field(ui, texts.passphrase, &mut self.passphrase, true);
        widgets::text_field(ui, texts.passphrase_again, &mut self.again, true);
        ui.label(texts.passphrase_hint);
        ui.add_space(8.0);
        if self.making.is_some() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(texts.making_vault);
            });
        } else if widgets::button(ui, texts.make_vault).clicked() {
            self.start(texts, settings);
        }
        if let Some(error) = &self.error {
            ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
        }
    }

    /// Checks the form; a wrong passphrase asks again (both fields emptied)
    /// instead of giving up.
    fn start(&mut self, texts: &Texts, settings: &Settings) {
        self.error = None;
        if self.name.trim().is_empty() || self.organisation.trim().is_empty() {
            self.error = Some(texts.name_missing.into());
            return;
        }
        let problem = if self.passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
            Some(texts.passphrase_too_short)
        } else if self.passphrase != self.again {
            Some(texts.passphrases_differ)
        } else {
            None
        };
        if let Some(problem) = problem {
            self.passphrase.zeroize();
            self.again.zeroize();
            self.error = Some(problem.into());
            return;
        }
        self.again.zeroize();
        let passphrase = SecretString::from(std::mem::take(&mut self.passphrase));
        let who = NewCounsellor {
            id: slugify(&self.name),
            name: self.name.trim().to_string(),
            organisation: self.organisation.trim().to_string(),
            org: None,
            kind: if self.external {
                CounsellorKind::External
            } else {
                CounsellorKind::Internal
            },
            description: String::new(),
        };
        let dir = settings.vault_dir.clone();
        let (send, receive) = channel();
        std::thread::spawn(move || {
            let _ = send.send(Vault::init(&dir, passphrase, who));
        });
        self.making = Some(receive);
    }

    fn poll(&mut self, settings: &mut Settings) {
        let Some(receiver) = &self.making else {
            return;
        };
        match receiver.try_recv() {
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => self.making = None,
            Ok(result) => {
                self.making = None;
                match result {
                    Ok(vault) => {
                        settings.save();
                        self.stick = super::sync::find_sticks()
                            .first()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default();
                        self.made = Some(vault);
                    }
                    Err(e) => self.error = Some(settings.lang.words().error(&e)),
                }
            }
        }
    }

    /// The card, its fingerprint and where it goes; `true` when the
    /// counsellor goes on to the desk.
    fn card_ui(&mut self, ui: &mut Ui, texts: &Texts, settings: &mut Settings) -> bool {
        let vault = self.made.as_ref().expect("shown once made");
        ui.heading(texts.card_heading);
        ui.label(texts.card_intro);
        ui.add_space(8.0);
        ui.label(format!("{}: {}.json", texts.card_id, vault.card.id));
        ui.label(RichText::new(texts.fingerprint).strong());
        ui.label(
            RichText::new(vault.card.fingerprint())
                .monospace()
                .size(28.0),
        );
        ui.label(texts.fingerprint_hint);
        ui.add_space(8.0);
        widgets::text_field(ui, texts.stick_folder, &mut self.stick, false);
        if widgets::button(ui, texts.write_card).clicked() {
            let dir = PathBuf::from(self.stick.trim());
            let name = format!("{}.json", vault.card.id);
            match crate::review::export::write_new_file(
                &dir,
                &name,
                vault.card.to_json().as_bytes(),
            ) {
                Ok(written) => {
                    settings.stick = Some(dir);
                    settings.save();
                    self.written = Some(written);
                    self.error = None;
                }
                Err(e) => self.error = Some(settings.lang.words().error(&e)),
            }
        }
        if let Some(path) = &self.written {
            ui.label(format!(
                "{} {}",
                texts.card_written,
                super::display_path(path)
            ));
        }
        if let Some(error) = &self.error {
            ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
        }
        ui.add_space(12.0);
        widgets::button(ui, texts.to_desk).clicked()
    }
}
