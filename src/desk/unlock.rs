//! The unlock screen: the passphrase, once per sitting. Opening runs on a
//! thread of its own (scrypt takes a second or more), and the typed
//! passphrase is wiped from memory as soon as it is handed over.

use std::sync::mpsc::{Receiver, TryRecvError, channel};

use age::secrecy::SecretString;
use egui::{RichText, Ui};
use zeroize::Zeroize;

use super::settings::Settings;
use super::text::Texts;
use super::widgets;
use crate::review::error::ReviewError;
use crate::review::vault::Vault;

#[derive(Default)]
pub struct UnlockScreen {
    passphrase: String,
    error: Option<String>,
    opening: Option<Receiver<Result<Vault, ReviewError>>>,
}

impl Drop for UnlockScreen {
    fn drop(&mut self) {
        self.passphrase.zeroize();
    }
}

impl UnlockScreen {
    /// Shows the screen; returns the vault once it is open.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        texts: &Texts,
        settings: &Settings,
        locked_for_idle: bool,
    ) -> Option<Vault> {
        if let Some(opened) = self.poll(settings) {
            return Some(opened);
        }
        egui::CentralPanel::default().show(ui, |ui| {
            ui.add_space(40.0);
            widgets::centered_column(ui, 620.0, |ui| {
                ui.heading(texts.app_title);
                ui.add_space(16.0);
                ui.heading(texts.unlock_heading);
                ui.label(texts.unlock_intro);
                ui.label(format!(
                    "{}: {}",
                    texts.vault_folder,
                    super::display_path(&settings.vault_dir)
                ));
                if locked_for_idle {
                    ui.label(RichText::new(texts.locked_idle).strong());
                }
                ui.add_space(12.0);
                let busy = self.opening.is_some();
                let field = widgets::text_field(ui, texts.passphrase, &mut self.passphrase, true);
                if !busy && !field.has_focus() && self.error.is_none() && self.passphrase.is_empty()
                {
                    field.request_focus();
                }
                let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                ui.add_space(8.0);
                if busy {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label(texts.unlocking);
                    });
                } else if widgets::button(ui, texts.unlock).clicked() || entered {
                    self.start(settings);
                }
                if let Some(error) = &self.error {
                    ui.add_space(8.0);
                    ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
                }
            });
        });
        if self.opening.is_some() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(50));
        }
        None
    }

    fn start(&mut self, settings: &Settings) {
        let passphrase = SecretString::from(std::mem::take(&mut self.passphrase));
        let dir = settings.vault_dir.clone();
        let (send, receive) = channel();
        std::thread::spawn(move || {
            let _ = send.send(Vault::open(&dir, passphrase));
        });
        self.opening = Some(receive);
        self.error = None;
    }

    fn poll(&mut self, settings: &Settings) -> Option<Vault> {
        let receiver = self.opening.as_ref()?;
        match receiver.try_recv() {
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.opening = None;
                None
            }
            Ok(result) => {
                self.opening = None;
                match result {
                    Ok(vault) => Some(vault),
                    Err(e) => {
                        self.error = Some(settings.lang.words().error(&e));
                        None
                    }
                }
            }
        }
    }
}
