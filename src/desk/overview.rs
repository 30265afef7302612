//! The case overview: every case with its subject, kind, status, received
//! day and deadline (colour and words), unread and waiting markers;
//! filters, and search over the decrypted text, held in memory only.

use std::collections::BTreeMap;

use egui::{RichText, Ui};

use super::Action;
use super::text::Texts;
use super::widgets;
use crate::format::day::Day;
use crate::format::envelope::Envelope;
use crate::format::ids::CaseId;
use crate::review::deadlines::Urgency;
use crate::review::i18n::Lang;
use crate::review::vault::Vault;
use crate::review::views::{self, CaseStatus, CaseSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    All,
    Open,
    Overdue,
    WaitingForMe,
    Closed,
}

impl Filter {
    fn keeps(self, case: &CaseSummary) -> bool {
        match self {
            Filter::All => true,
            Filter::Open => case.status != CaseStatus::Closed,
            Filter::Overdue => case.urgency.is_overdue(),
            Filter::WaitingForMe => {
                case.awaiting_answer || matches!(case.urgency, Urgency::Overdue { .. })
            }
            Filter::Closed => case.status == CaseStatus::Closed,
        }
    }
}

#[derive(Default)]
pub struct OverviewState {
    pub filter: Filter,
    pub search: String,
    cases: Option<Vec<CaseSummary>>,
    /// Every case's decrypted text, lower-cased, built on the first search.
    index: Option<BTreeMap<CaseId, String>>,
}

impl OverviewState {
    /// Forgets what was computed: after an import, a reply, a note.
    pub fn invalidate(&mut self) {
        self.cases = None;
        self.index = None;
    }

    pub fn ui(
        &mut self,
        ui: &mut Ui,
        texts: &Texts,
        lang: Lang,
        vault: &Vault,
        today: Day,
        actions: &mut Vec<Action>,
    ) {
        let words = lang.words();
        let cases = self
            .cases
            .get_or_insert_with(|| views::overview(vault, today));
        widgets::labelled_row(ui, texts.filters, |ui| {
            for (filter, label) in [
                (Filter::All, texts.filter_all),
                (Filter::Open, texts.filter_open),
                (Filter::Overdue, texts.filter_overdue),
                (Filter::WaitingForMe, texts.filter_waiting),
                (Filter::Closed, texts.filter_closed),
            ] {
                ui.radio_value(&mut self.filter, filter, label);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let label = ui.label(RichText::new(texts.search).strong());
            ui.add(
                egui::TextEdit::singleline(&mut self.search)
                    .hint_text(texts.search_hint)
                    .desired_width(360.0),
            )
            .labelled_by(label.id);
        });
        let query = self.search.trim().to_lowercase();
        if !query.is_empty() && self.index.is_none() {
            self.index = Some(search_index(vault));
        }
        let shown: Vec<&CaseSummary> = cases
            .iter()
            .filter(|c| self.filter.keeps(c))
            .filter(|c| {
                query.is_empty()
                    || self
                        .index
                        .as_ref()
                        .and_then(|index| index.get(&c.id))
                        .is_some_and(|text| text.contains(&query))
            })
            .collect();
        if !vault.state.pending.is_empty() {
            ui.label(format!(
                "{} {}",
                texts.queued_items,
                vault.state.pending.len()
            ));
        }
        ui.separator();
        if cases.is_empty() {
            ui.label(texts.no_cases);
            return;
        }
        if shown.is_empty() {
            ui.label(texts.no_match);
            return;
        }
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for case in shown {
                    case_row(ui, texts, words, case, actions);
                }
            });
    }
}

/// One case: the open button and the subject, then received day, kind,
/// status and deadline, then the markers. Rows wrap, so 200 % text and
/// narrow windows stay readable.
fn case_row(
    ui: &mut Ui,
    texts: &Texts,
    words: &crate::review::i18n::Words,
    case: &CaseSummary,
    actions: &mut Vec<Action>,
) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal_wrapped(|ui| {
            let label = format!("{} {}", texts.open_case, case.short_id());
            if widgets::button(ui, label).clicked() {
                actions.push(Action::OpenCase(case.id));
            }
            ui.label(RichText::new(case.subject.excerpt(110)).strong());
        });
        ui.horizontal_wrapped(|ui| {
            ui.label(format!(
                "{} {}",
                texts.col_received,
                words.day(case.received)
            ));
            ui.label("·");
            ui.label(words.category(case.category.as_ref()));
            ui.label("·");
            ui.label(format!(
                "{}: {}",
                texts.col_status,
                words.status(case.status)
            ));
            ui.label("·");
            widgets::urgency_label(ui, words, &case.urgency);
        });
        let mut markers = Vec::new();
        if case.unread > 0 {
            markers.push(format!("• {} ({})", texts.unread, case.unread));
        }
        if case.awaiting_answer {
            markers.push(format!("• {}", texts.awaiting_answer));
        }
        if !markers.is_empty() {
            ui.label(RichText::new(markers.join("   ")).strong());
        }
    });
}

/// Decrypts every message once, for search; kept in memory only.
fn search_index(vault: &Vault) -> BTreeMap<CaseId, String> {
    let identities = vault.identities();
    vault
        .state
        .cases
        .iter()
        .map(|(id, case)| {
            let mut text = String::new();
            for message in &case.messages {
                let Ok(body) = vault.read_message(&message.id) else {
                    continue;
                };
                if let Ok(envelope) = Envelope::open(&body, &identities) {
                    text.push_str(&envelope.text.to_lowercase());
                    text.push('\n');
                    for a in &envelope.attachments {
                        text.push_str(&a.name.to_lowercase());
                        text.push('\n');
                    }
                }
            }
            for note in &case.notes {
                text.push_str(&note.text.to_lowercase());
                text.push('\n');
            }
            text.push_str(&id.to_hex());
            (*id, text)
        })
        .collect()
}
