//! One case: its deadlines, the whole conversation in order (numbered like
//! exported attachments), attachments, private notes, and the writing
//! panel with the standard texts and a preview of what the melder sees.

use std::path::Path;

use egui::{RichText, Ui};

use super::files::{self, Preview};
use super::settings::Settings;
use super::text::Texts;
use super::{Action, widgets};
use crate::format::card::Card;
use crate::format::day::Day;
use crate::format::envelope::Status;
use crate::format::ids::CaseId;
use crate::review::commands;
use crate::review::error::ReviewError;
use crate::review::i18n::{Lang, Words};
use crate::review::untrusted::Untrusted;
use crate::review::vault::Authenticity;
use crate::review::vault::Vault;
use crate::review::views::{self, AttachmentView, CaseStatus, CaseView, Content, MessageView};

/// What the counsellor is writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAction {
    Reply,
    Acknowledge,
    InProgress,
    FeedbackGiven,
    Close,
    Reopen,
    /// Add a colleague to the case (protocol v2, §10.5).
    Introduce,
}

impl WriteAction {
    fn label(self, texts: &Texts) -> &'static str {
        match self {
            WriteAction::Reply => texts.action_reply,
            WriteAction::Acknowledge => texts.action_acknowledge,
            WriteAction::InProgress => texts.action_in_progress,
            WriteAction::FeedbackGiven => texts.action_feedback,
            WriteAction::Close => texts.action_close,
            WriteAction::Reopen => texts.action_reopen,
            WriteAction::Introduce => texts.action_introduce,
        }
    }

    /// The status the melder's page will show after it.
    fn status(self) -> Option<Status> {
        match self {
            WriteAction::Reply | WriteAction::Introduce => None,
            WriteAction::Acknowledge => Some(Status::Acknowledged),
            WriteAction::InProgress | WriteAction::Reopen => Some(Status::InProgress),
            WriteAction::FeedbackGiven => Some(Status::FeedbackGiven),
            WriteAction::Close => Some(Status::Closed),
        }
    }

    /// The standard text to start from, if there is one.
    fn template(self, lang: Lang) -> Option<&'static str> {
        match self {
            WriteAction::Acknowledge => Some(commands::acknowledgement_template(lang)),
            WriteAction::Close => Some(commands::closing_template(lang)),
            WriteAction::Introduce => Some(commands::introduction_template(lang)),
            _ => None,
        }
    }
}

/// A message ready to queue.
pub struct Outgoing {
    pub case: CaseId,
    pub action: WriteAction,
    pub text: String,
    /// The colleague an introduction adds, their fingerprint compared.
    pub colleague: Option<Box<Card>>,
}

/// Queues the message for the next outbox through the library.
pub fn send(vault: &mut Vault, outgoing: Outgoing, today: Day) -> Result<(), ReviewError> {
    let Outgoing {
        case,
        action,
        text,
        colleague,
    } = outgoing;
    match (action, colleague) {
        (WriteAction::Reopen, _) => commands::reopen(vault, &case, &text, today),
        (WriteAction::Introduce, Some(card)) => {
            commands::introduce(vault, &case, &card, &text, today)
        }
        (other, _) => commands::send(vault, &case, &text, other.status(), today),
    }
    .map(|_| ())
}

pub struct CaseScreen {
    pub view: CaseView,
    action: WriteAction,
    template_lang: Lang,
    text: String,
    note: String,
    export_dir: String,
    pdf_with_contact: bool,
    preview: Option<Preview>,
    error: Option<String>,
    /// Introducing a colleague: the card file typed, the card read from it,
    /// and whether the counsellor compared its fingerprint.
    card_path: String,
    colleague: Option<Card>,
    compared: bool,
    /// Scroll the colleague's card into view at the next frame.
    show_colleague: bool,
}

impl CaseScreen {
    /// Opens a case and marks its messages read.
    pub fn open(
        vault: &mut Vault,
        id: CaseId,
        lang: Lang,
        today: Day,
    ) -> Result<Self, ReviewError> {
        views::mark_seen(vault, &id)?;
        let view = views::case(vault, &id, today)?;
        let action = default_action(&view);
        let mut screen = CaseScreen {
            view,
            action,
            template_lang: lang,
            text: String::new(),
            note: String::new(),
            export_dir: String::new(),
            pdf_with_contact: false,
            preview: None,
            error: None,
            card_path: String::new(),
            colleague: None,
            compared: false,
            show_colleague: false,
        };
        screen.text = action.template(lang).unwrap_or_default().to_string();
        Ok(screen)
    }

    /// Chooses "add a colleague" with this card file read, its fingerprint
    /// in view (`--introduce`, for scripted sessions and screenshots).
    pub fn start_introducing(&mut self, card: &Path, lang: Lang) {
        self.action = WriteAction::Introduce;
        self.text = commands::introduction_template(lang).to_string();
        self.card_path = card.display().to_string();
        self.read_colleague();
        self.show_colleague = true;
    }

    fn read_colleague(&mut self) {
        self.compared = false;
        self.colleague = None;
        match std::fs::read(self.card_path.trim())
            .map_err(|e| e.to_string())
            .and_then(|bytes| Card::parse(&bytes).map_err(|e| e.to_string()))
        {
            Ok(card) => {
                self.error = None;
                self.colleague = Some(card);
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Shows the case's n-th attachment (from 1, in message order) in the
    /// preview.
    pub fn preview_attachment(&mut self, vault: &Vault, n: usize, lang: Lang) {
        let attachment = self
            .view
            .messages
            .iter()
            .filter_map(|m| match &m.content {
                Content::Readable(r) => Some(r.attachments.iter()),
                _ => None,
            })
            .flatten()
            .nth(n.saturating_sub(1))
            .cloned();
        if let Some(attachment) = attachment {
            self.preview = Some(Preview::load(
                vault,
                &self.view.summary.id,
                &attachment,
                lang,
            ));
        }
    }

    /// Shows the case again after a change, with an empty writing panel.
    pub fn reload(&mut self, vault: &mut Vault, id: CaseId, today: Day) -> Result<(), ReviewError> {
        views::mark_seen(vault, &id)?;
        self.view = views::case(vault, &id, today)?;
        self.action = default_action(&self.view);
        self.text = self
            .action
            .template(self.template_lang)
            .unwrap_or_default()
            .to_string();
        self.note.clear();
        Ok(())
    }

    pub fn ui(
        &mut self,
        ui: &mut Ui,
        texts: &Texts,
        settings: &Settings,
        vault: &Vault,
        actions: &mut Vec<Action>,
    ) {
        let words = settings.lang.words();
        if self.export_dir.is_empty() {
            self.export_dir = settings.export_dir().display().to_string();
        }
        if let Some(preview) = &mut self.preview {
            if preview.ui(ui, texts, settings.lang) {
                self.preview = None;
            }
            return;
        }
        if widgets::button(ui, texts.back_to_overview).clicked() {
            actions.push(Action::CloseCase);
        }
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                self.header_ui(ui, texts, words);
                self.introduction_ui(ui, texts, words, actions);
                let mut wishes = Vec::new();
                for message in &self.view.messages {
                    message_ui(ui, texts, words, settings.lang, message, &mut wishes);
                }
                for wish in wishes {
                    self.preview_or_export(wish, settings, vault, actions);
                }
                ui.add_space(8.0);
                self.files_ui(ui, texts, actions);
                ui.separator();
                self.write_ui(ui, texts, words, vault, actions);
                ui.separator();
                self.notes_ui(ui, texts, words, actions);
            });
    }

    /// A colleague's introduction of this counsellor, waiting: the
    /// introducer's card to compare, and the step that takes the case on.
    fn introduction_ui(
        &mut self,
        ui: &mut Ui,
        texts: &Texts,
        words: &Words,
        actions: &mut Vec<Action>,
    ) {
        let Some(introducer) = &self.view.pending_introduction else {
            return;
        };
        ui.add_space(6.0);
        ui.label(
            RichText::new(words.pending_introduction)
                .strong()
                .color(widgets::warning_color(ui)),
        );
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.label(RichText::new(introducer.name.line()).strong());
            ui.label(introducer.organisation.line());
            ui.label(
                RichText::new(format!("{}: {}", texts.fingerprint, introducer.fingerprint))
                    .monospace()
                    .size(18.0),
            );
        });
        ui.checkbox(&mut self.compared, texts.colleague_compared);
        if widgets::button(ui, texts.accept_introduction).clicked() {
            match self.compared {
                true => actions.push(Action::AcceptIntroduction(self.view.summary.id)),
                false => self.error = Some(texts.introducer_not_compared.into()),
            }
        }
        if let Some(error) = &self.error {
            ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
        }
    }

    fn header_ui(&self, ui: &mut Ui, texts: &Texts, words: &Words) {
        let summary = &self.view.summary;
        ui.heading(format!(
            "{} {} — {}",
            texts.case_heading,
            summary.short_id(),
            summary.subject.excerpt(60)
        ));
        ui.label(format!(
            "{} {} · {} · {}",
            texts.received_on,
            words.day(summary.received),
            words.category(summary.category.as_ref()),
            words.status(summary.status)
        ));
        let done = |day: Option<Day>| {
            day.map(|d| format!(" ({} {})", texts.done_on, words.day(d)))
                .unwrap_or_default()
        };
        if let (Some(asked), false) = (summary.asked, summary.question) {
            ui.label(words.began_as_question(asked));
        }
        // A question has no statutory terms: the urgency line below says so.
        if !summary.question {
            ui.label(format!(
                "{} {}{}",
                texts.acknowledge_by,
                words.day(summary.deadlines.acknowledge_by),
                done(self.view.acknowledged)
            ));
            ui.label(format!(
                "{} {}{}",
                texts.feedback_by,
                words.day(summary.deadlines.feedback_by),
                done(self.view.feedback)
            ));
        }
        widgets::urgency_label(ui, words, &summary.urgency);
        if self.view.counsellors.len() > 1 {
            let names: Vec<String> = self.view.counsellors.iter().map(Untrusted::line).collect();
            ui.label(format!("{}: {}", texts.counsellors, names.join(", ")));
        }
        if let Some(contact) = self.view.contact() {
            ui.label(RichText::new(texts.contact_details).strong());
            widgets::untrusted_block(ui, contact);
        }
        ui.separator();
    }

    fn preview_or_export(
        &mut self,
        request: AttachmentRequest,
        settings: &Settings,
        vault: &Vault,
        actions: &mut Vec<Action>,
    ) {
        let (attachment, what) = request;
        match what {
            AttachmentWish::Preview => {
                self.preview = Some(files::Preview::load(
                    vault,
                    &self.view.summary.id,
                    &attachment,
                    settings.lang,
                ));
            }
            AttachmentWish::Export { clean } => actions.push(Action::ExportAttachment {
                case: self.view.summary.id,
                attachment: Box::new(attachment),
                clean,
                dir: self.export_dir.trim().into(),
            }),
        }
    }

    fn files_ui(&mut self, ui: &mut Ui, texts: &Texts, actions: &mut Vec<Action>) {
        widgets::text_field(ui, texts.export_folder, &mut self.export_dir, false);
        ui.horizontal_wrapped(|ui| {
            ui.checkbox(&mut self.pdf_with_contact, texts.pdf_leave_out_contact)
                .on_hover_text(texts.pdf_leave_out_contact);
            if widgets::button(ui, texts.export_pdf).clicked() {
                actions.push(Action::ExportPdf {
                    case: self.view.summary.id,
                    // The box reads "leave out": ticked means without.
                    with_contact: !self.pdf_with_contact,
                    dir: self.export_dir.trim().into(),
                });
            }
        });
    }

    fn write_ui(
        &mut self,
        ui: &mut Ui,
        texts: &Texts,
        words: &Words,
        vault: &Vault,
        actions: &mut Vec<Action>,
    ) {
        ui.heading(texts.write_heading);
        if !self.view.can_reply {
            let why = words.error(&ReviewError::NoReplyRecipient(self.view.summary.short_id()));
            ui.label(RichText::new(why).color(ui.visuals().error_fg_color));
            return;
        }
        let closed = self.view.summary.status == CaseStatus::Closed;
        if closed {
            ui.label(RichText::new(texts.closed_write_hint).strong());
        }
        let choices: &[WriteAction] = if closed {
            &[WriteAction::Reopen]
        } else {
            let all = &[
                WriteAction::Reply,
                WriteAction::Acknowledge,
                WriteAction::InProgress,
                WriteAction::FeedbackGiven,
                WriteAction::Close,
                WriteAction::Introduce,
            ];
            // A case of the older, unsigned format pins nobody to add to.
            match self.view.can_introduce {
                true => all,
                false => &all[..all.len() - 1],
            }
        };
        let before = (self.action, self.template_lang);
        widgets::labelled_row(ui, texts.action, |ui| {
            for choice in choices {
                ui.radio_value(&mut self.action, *choice, choice.label(texts));
            }
        });
        if self.action.template(self.template_lang).is_some() {
            widgets::labelled_row(ui, texts.template_language, |ui| {
                ui.radio_value(&mut self.template_lang, Lang::Nl, "Nederlands");
                ui.radio_value(&mut self.template_lang, Lang::En, "English");
            });
        }
        if before != (self.action, self.template_lang) {
            // Start from the standard text, unless the counsellor already
            // wrote something of their own.
            let was_template = before.0.template(before.1).is_some_and(|t| t == self.text);
            if self.text.trim().is_empty() || was_template {
                self.text = self
                    .action
                    .template(self.template_lang)
                    .unwrap_or_default()
                    .to_string();
            }
        }
        if self.action == WriteAction::Introduce {
            self.colleague_ui(ui, texts);
        }
        let label = ui.label(RichText::new(texts.message_text).strong());
        ui.add(
            egui::TextEdit::multiline(&mut self.text)
                .desired_rows(8)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);

        ui.label(RichText::new(texts.preview_heading).strong());
        ui.label(texts.preview_intro);
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new(Untrusted::new(vault.card.name.clone()).line()).strong());
            if let Some(status) = self.action.status() {
                ui.label(format!(
                    "{}: {}",
                    texts.col_status,
                    words.status(status_case(status))
                ));
            }
            for line in Untrusted::new(self.text.clone()).lines() {
                ui.label(line);
            }
        });
        if widgets::button(ui, texts.queue).clicked() {
            let introducing = self.action == WriteAction::Introduce;
            if self.text.trim().is_empty() {
                self.error = Some(texts.empty_message.into());
            } else if introducing && (self.colleague.is_none() || !self.compared) {
                self.error = Some(texts.colleague_not_compared.into());
            } else {
                self.error = None;
                actions.push(Action::Send(Outgoing {
                    case: self.view.summary.id,
                    action: self.action,
                    text: self.text.clone(),
                    colleague: introducing
                        .then(|| self.colleague.clone().map(Box::new))
                        .flatten(),
                }));
            }
        }
        if let Some(error) = &self.error {
            ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
        }
    }

    /// The colleague to introduce: their card file (from the organisation,
    /// e.g. on the stick), read here, and its fingerprint to compare with the
    /// organisation's published list before anything is queued.
    fn colleague_ui(&mut self, ui: &mut Ui, texts: &Texts) {
        ui.label(texts.colleague_intro);
        let label = ui.label(RichText::new(texts.colleague_card).strong());
        ui.add(
            egui::TextEdit::singleline(&mut self.card_path)
                .hint_text("E:\\meldkluis\\vp-jansen.json")
                .desired_width(480.0),
        )
        .labelled_by(label.id);
        if widgets::button(ui, texts.colleague_read).clicked() {
            self.read_colleague();
            if let Some(e) = &self.error {
                self.error = Some(format!("{} {e}", texts.colleague_unreadable));
            }
        }
        if let Some(card) = &self.colleague {
            let shown = egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.label(RichText::new(Untrusted::new(card.name.clone()).line()).strong());
                ui.label(Untrusted::new(card.organisation.clone()).line());
                ui.label(
                    RichText::new(format!("{}: {}", texts.fingerprint, card.fingerprint()))
                        .monospace()
                        .size(18.0),
                );
            });
            let compared = ui.checkbox(&mut self.compared, texts.colleague_compared);
            if std::mem::take(&mut self.show_colleague) {
                shown
                    .response
                    .union(compared)
                    .scroll_to_me(Some(egui::Align::Center));
            }
        }
    }

    fn notes_ui(&mut self, ui: &mut Ui, texts: &Texts, words: &Words, actions: &mut Vec<Action>) {
        ui.heading(texts.notes_heading);
        ui.label(texts.notes_intro);
        for note in &self.view.notes {
            ui.label(RichText::new(words.day(note.day)).strong());
            widgets::untrusted_block(ui, &note.text);
        }
        let label = ui.label(RichText::new(texts.add_note).strong());
        ui.add(
            egui::TextEdit::multiline(&mut self.note)
                .desired_rows(3)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        if widgets::button(ui, texts.add_note).clicked() && !self.note.trim().is_empty() {
            actions.push(Action::AddNote(self.view.summary.id, self.note.clone()));
        }
    }
}

/// A status a message sets, in the case-status words.
fn status_case(status: Status) -> CaseStatus {
    match status {
        Status::Acknowledged => CaseStatus::Acknowledged,
        Status::InProgress => CaseStatus::InProgress,
        Status::FeedbackGiven => CaseStatus::FeedbackGiven,
        Status::Closed => CaseStatus::Closed,
    }
}

/// A closed case can only be reopened; an unacknowledged one starts with
/// the acknowledgement.
fn default_action(view: &CaseView) -> WriteAction {
    if view.summary.status == CaseStatus::Closed {
        WriteAction::Reopen
    } else if view.acknowledged.is_none() {
        WriteAction::Acknowledge
    } else {
        WriteAction::Reply
    }
}

/// What the counsellor asked of an attachment.
pub enum AttachmentWish {
    Preview,
    Export { clean: bool },
}

type AttachmentRequest = (AttachmentView, AttachmentWish);

fn message_ui(
    ui: &mut Ui,
    texts: &Texts,
    words: &Words,
    lang: Lang,
    message: &MessageView,
    wishes: &mut Vec<AttachmentRequest>,
) {
    let kind = texts.kind(message.kind);
    ui.add_space(6.0);
    if message.gap_before {
        ui.label(
            RichText::new(words.message_missing_before)
                .strong()
                .color(super::widgets::warning_color(ui)),
        );
    }
    ui.label(
        RichText::new(format!(
            "{} {} · {} · {} · {}",
            texts.message_heading,
            message.number,
            words.day(message.day),
            kind,
            words.author(&message.author)
        ))
        .strong()
        .size(17.0),
    );
    match message.authenticity {
        Some(Authenticity::NotGenuine | Authenticity::Replayed) => {
            ui.label(
                RichText::new(words.authenticity(message.authenticity).unwrap_or_default())
                    .strong()
                    .color(super::widgets::warning_color(ui)),
            );
        }
        Some(_) => {
            ui.label(
                RichText::new(words.authenticity(message.authenticity).unwrap_or_default())
                    .italics(),
            );
        }
        None => {}
    }
    if message.forwarded {
        ui.label(RichText::new(words.forwarded_note).italics());
    }
    if message.unseen_replies > 0 {
        ui.label(
            RichText::new(
                words
                    .unseen_replies
                    .replace("{0}", &message.unseen_replies.to_string()),
            )
            .italics(),
        );
    }
    match &message.content {
        Content::ForMelderOnly => {
            ui.label(RichText::new(texts.for_melder_only).italics());
        }
        Content::WaitingForIntroduction => {
            ui.label(RichText::new(words.waiting_for_introduction).italics());
        }
        Content::Unreadable(reason) => {
            ui.label(format!("{} {}", texts.unreadable, reason.line()));
        }
        Content::Readable(readable) => {
            if let Some(status) = readable.status {
                ui.label(format!(
                    "{} {}",
                    texts.status_set,
                    words.status(status_case(status))
                ));
            }
            if let Some(evaluation) = readable.evaluation {
                ui.label(
                    texts
                        .evaluation_scores
                        .replace("{process}", &evaluation.process.to_string())
                        .replace("{heard}", &evaluation.heard.to_string()),
                );
            }
            widgets::untrusted_block(ui, &readable.text);
            if !readable.introduces.is_empty() {
                ui.label(RichText::new(words.introduces_heading).strong());
                for card in &readable.introduces {
                    ui.label(format!(
                        "{} · {} · {}",
                        card.name.line(),
                        card.organisation.line(),
                        card.fingerprint
                    ));
                }
            }
            if !readable.attachments.is_empty() {
                ui.label(RichText::new(texts.attachments).strong());
                for attachment in &readable.attachments {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(format!(
                            "{} · {} · {}",
                            attachment.export_name,
                            attachment.media_type.line(),
                            widgets::size(attachment.size, lang)
                        ));
                        if let Some(damage) = &attachment.damage {
                            ui.label(
                                RichText::new(format!(
                                    "{}: {}",
                                    texts.damaged,
                                    words.damage(damage)
                                ))
                                .color(ui.visuals().error_fg_color),
                            );
                            return;
                        }
                        let name = &attachment.export_name;
                        if widgets::button(ui, format!("{} {name}", texts.preview)).clicked() {
                            wishes.push((attachment.clone(), AttachmentWish::Preview));
                        }
                        if widgets::button(ui, format!("{} {name}", texts.export)).clicked() {
                            wishes.push((
                                attachment.clone(),
                                AttachmentWish::Export { clean: false },
                            ));
                        }
                        if files::can_clean(&attachment.export_name)
                            && widgets::button(ui, format!("{} {name}", texts.export_clean))
                                .clicked()
                        {
                            wishes
                                .push((attachment.clone(), AttachmentWish::Export { clean: true }));
                        }
                    });
                }
            }
        }
    }
}
