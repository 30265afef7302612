//! Figures for the annual integrity report: the same figures as `stats`,
//! as tables and a chart of reports per month, saved as CSV or SVG.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use egui::{RichText, Ui};

use super::settings::Settings;
use super::text::Texts;
use super::{Action, widgets};
use crate::format::day::Day;
use crate::review::export::write_new_file;
use crate::review::i18n::Lang;
use crate::review::stats::{self, Stats};
use crate::review::vault::Vault;
use crate::review::views::Category;

#[derive(Default)]
pub struct StatsState {
    dir: String,
}

fn share((part, whole): (usize, usize)) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!(
            "{part} / {whole} ({:.0} %)",
            100.0 * part as f64 / whole as f64
        )
    }
}

fn average(sum: u64, n: usize) -> String {
    if n == 0 {
        "–".into()
    } else {
        format!("{:.1}", sum as f64 / n as f64)
    }
}

/// A status key of `Stats::by_status` in words.
fn status_words(key: &str, lang: Lang) -> String {
    use crate::review::views::CaseStatus::*;
    let status = match key {
        "acknowledged" => Acknowledged,
        "in-progress" => InProgress,
        "feedback-given" => FeedbackGiven,
        "closed" => Closed,
        _ => Received,
    };
    lang.words().status(status).to_string()
}

impl StatsState {
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        texts: &Texts,
        settings: &Settings,
        vault: &Vault,
        today: Day,
        actions: &mut Vec<Action>,
    ) {
        if self.dir.is_empty() {
            self.dir = settings.export_dir().display().to_string();
        }
        let words = settings.lang.words();
        let figures = stats::compute(vault.state.cases.values(), today);
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.heading(texts.stats_heading);
            egui::Grid::new("figures").striped(true).show(ui, |ui| {
                for (label, value) in [
                    (texts.stats_cases, figures.cases.to_string()),
                    (texts.stats_questions, figures.questions.to_string()),
                    (
                        texts.stats_questions_reported,
                        figures.questions_turned_into_reports.to_string(),
                    ),
                    (texts.stats_ack_in_time, share(figures.acknowledged_in_time)),
                    (
                        texts.stats_feedback_in_time,
                        share(figures.feedback_in_time),
                    ),
                    (texts.stats_evaluations, figures.evaluations.to_string()),
                    (
                        texts.stats_process,
                        average(figures.process_score_sum, figures.evaluations),
                    ),
                    (
                        texts.stats_heard,
                        average(figures.heard_score_sum, figures.evaluations),
                    ),
                ] {
                    ui.label(label);
                    ui.label(RichText::new(value).strong());
                    ui.end_row();
                }
            });
            ui.add_space(8.0);
            ui.label(RichText::new(texts.stats_by_month).strong());
            month_chart(ui, &figures);
            ui.add_space(8.0);
            ui.label(RichText::new(texts.stats_by_category).strong());
            egui::Grid::new("by-category").striped(true).show(ui, |ui| {
                for (key, n) in &figures.by_category {
                    let category = (key != "-").then(|| Category::parse(key));
                    ui.label(words.category(category.as_ref()));
                    ui.label(n.to_string());
                    ui.end_row();
                }
            });
            ui.add_space(8.0);
            ui.label(RichText::new(texts.stats_by_status).strong());
            egui::Grid::new("by-status").striped(true).show(ui, |ui| {
                for (key, n) in &figures.by_status {
                    ui.label(status_words(key, settings.lang));
                    ui.label(n.to_string());
                    ui.end_row();
                }
            });
            ui.add_space(12.0);
            widgets::text_field(ui, texts.export_folder, &mut self.dir, false);
            ui.horizontal_wrapped(|ui| {
                if widgets::button(ui, texts.export_csv).clicked() {
                    actions.push(Action::SaveStats {
                        dir: self.dir.trim().into(),
                        svg: false,
                    });
                }
                if widgets::button(ui, texts.export_svg).clicked() {
                    actions.push(Action::SaveStats {
                        dir: self.dir.trim().into(),
                        svg: true,
                    });
                }
            });
        });
    }
}

/// Bars per month, with the count written on each (colour is not the only
/// carrier of meaning).
fn month_chart(ui: &mut Ui, figures: &Stats) {
    let max = figures.by_month.values().copied().max().unwrap_or(0).max(1);
    egui::Grid::new("by-month").show(ui, |ui| {
        for (month, n) in &figures.by_month {
            ui.label(month);
            let width = 300.0 * *n as f32 / max as f32;
            let (rect, _) = ui.allocate_exact_size(egui::vec2(300.0, 16.0), egui::Sense::hover());
            let bar = egui::Rect::from_min_size(rect.min, egui::vec2(width.max(2.0), 16.0));
            ui.painter()
                .rect_filled(bar, 2.0, ui.visuals().selection.bg_fill);
            ui.label(n.to_string());
            ui.end_row();
        }
    });
}

/// The chart of reports per month as an SVG image.
pub fn month_svg(figures: &Stats, title: &str) -> String {
    let rows = figures.by_month.len().max(1);
    let max = figures.by_month.values().copied().max().unwrap_or(0).max(1);
    let height = 40 + rows * 28;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="560" height="{height}" role="img" aria-label="{}">"#,
        xml_escape(title)
    );
    let _ = writeln!(
        svg,
        r#"<title>{}</title><rect width="100%" height="100%" fill="white"/>"#,
        xml_escape(title)
    );
    let _ = writeln!(
        svg,
        r#"<text x="10" y="24" font-family="sans-serif" font-size="16">{}</text>"#,
        xml_escape(title)
    );
    for (i, (month, n)) in figures.by_month.iter().enumerate() {
        let y = 40 + i * 28;
        let width = 380 * n / max;
        let _ = writeln!(
            svg,
            r##"<text x="10" y="{}" font-family="sans-serif" font-size="14">{}</text><rect x="90" y="{y}" width="{}" height="20" fill="#1f4e9c"/><text x="{}" y="{}" font-family="sans-serif" font-size="14">{n}</text>"##,
            y + 15,
            xml_escape(month),
            width.max(2),
            96 + width.max(2),
            y + 15
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Saves the figures as CSV, or the chart as SVG, never overwriting.
pub fn save(
    vault: &Vault,
    dir: &Path,
    svg: bool,
    lang: Lang,
    today: Day,
) -> Result<PathBuf, String> {
    let words = lang.words();
    let figures = stats::compute(vault.state.cases.values(), today);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", super::display_path(dir)))?;
    let (name, body) = if svg {
        let title = super::text::texts(lang).stats_by_month;
        (
            format!("meldkluis-cijfers-{today}.svg"),
            month_svg(&figures, title),
        )
    } else {
        (format!("meldkluis-cijfers-{today}.csv"), figures.csv())
    };
    write_new_file(dir, &name, body.as_bytes()).map_err(|e| words.error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_escapes_and_shows_every_count() {
        let mut figures = Stats::default();
        figures.by_month.insert("2026-11".into(), 3);
        figures.by_month.insert("2026-12".into(), 1);
        let svg = month_svg(&figures, "Per maand <test>");
        assert!(svg.contains("Per maand &lt;test&gt;"));
        assert!(svg.contains(">3</text>") && svg.contains(">1</text>"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
