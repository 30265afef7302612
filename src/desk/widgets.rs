//! Small building blocks every screen uses: buttons with a visible focus
//! ring, framed untrusted text, deadline badges with colour *and* words.

use egui::{Color32, Context, RichText, Stroke, Ui, WidgetText};

use super::Notice;
use crate::review::deadlines::Urgency;
use crate::review::i18n::Words;
use crate::review::untrusted::Untrusted;

/// Readable defaults for people who do not live in terminals: larger text,
/// near-black (or near-white) text for contrast, and a thick ring on
/// whatever has keyboard focus (egui draws focused widgets with the
/// "active" look), in both themes.
pub fn desk_style(ctx: &Context) {
    let dark = ctx.theme() == egui::Theme::Dark;
    let (ring, text) = if dark {
        (
            Color32::from_rgb(255, 200, 0),
            Color32::from_rgb(240, 240, 240),
        )
    } else {
        (Color32::from_rgb(0, 70, 170), Color32::from_rgb(20, 20, 20))
    };
    ctx.global_style_mut(|style| {
        if style.visuals.widgets.active.bg_stroke.color == ring
            && style.visuals.override_text_color == Some(text)
        {
            return;
        }
        use egui::{FontFamily, FontId, TextStyle};
        style.text_styles = [
            (
                TextStyle::Small,
                FontId::new(13.0, FontFamily::Proportional),
            ),
            (TextStyle::Body, FontId::new(16.0, FontFamily::Proportional)),
            (
                TextStyle::Button,
                FontId::new(16.0, FontFamily::Proportional),
            ),
            (
                TextStyle::Heading,
                FontId::new(22.0, FontFamily::Proportional),
            ),
            (
                TextStyle::Monospace,
                FontId::new(15.0, FontFamily::Monospace),
            ),
        ]
        .into();
        style.visuals.override_text_color = Some(text);
        style.visuals.widgets.active.bg_stroke = Stroke::new(3.0, ring);
        style.visuals.selection.stroke = Stroke::new(2.5, ring);
        // Borders of fields and buttons strong enough to see (3:1).
        let border = if dark {
            Color32::from_gray(160)
        } else {
            Color32::from_gray(110)
        };
        style.visuals.widgets.inactive.bg_stroke = Stroke::new(1.0, border);
        style.spacing.button_padding = egui::vec2(12.0, 7.0);
        style.spacing.item_spacing = egui::vec2(10.0, 8.0);
        style.spacing.interact_size.y = 30.0;
    });
}

/// A column of at most `width` points, centred in the space there is.
pub fn centered_column(ui: &mut Ui, width: f32, add: impl FnOnce(&mut Ui)) {
    let width = ui.available_width().min(width);
    let margin = ((ui.available_width() - width) / 2.0).max(0.0);
    ui.horizontal(|ui| {
        ui.add_space(margin);
        ui.vertical(|ui| {
            ui.set_width(width);
            add(ui);
        });
    });
}

pub fn button(ui: &mut Ui, label: impl Into<WidgetText>) -> egui::Response {
    ui.add(egui::Button::new(label))
}

/// A tab of the navigation bar: a selectable button.
pub fn tab(ui: &mut Ui, selected: bool, label: &str) -> egui::Response {
    ui.add(egui::Button::selectable(
        selected,
        RichText::new(label).strong(),
    ))
}

/// A row with a label in front of its controls.
pub fn labelled_row(ui: &mut Ui, label: &str, add: impl FnOnce(&mut Ui)) {
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(label).strong());
        add(ui);
    });
}

/// A single-line text field tied to its visible label, so screen readers
/// and tests find it by that label.
pub fn text_field(ui: &mut Ui, label: &str, value: &mut String, password: bool) -> egui::Response {
    ui.vertical(|ui| {
        let label = ui.label(label);
        ui.add(
            egui::TextEdit::singleline(value)
                .password(password)
                .desired_width(420.0),
        )
        .labelled_by(label.id)
    })
    .inner
}

/// The outcome of the last action, in its own colour, with words saying
/// which kind it is.
pub fn notice(ui: &mut Ui, notice: &Notice) {
    let color = if notice.is_error {
        ui.visuals().error_fg_color
    } else {
        ui.visuals().text_color()
    };
    egui::Frame::group(ui.style())
        .stroke(Stroke::new(2.0, color))
        .show(ui, |ui| {
            ui.label(RichText::new(&notice.text).color(color));
        });
}

/// Untrusted text: every line neutralised, in a frame of its own, never
/// interpreted as markup (egui labels have none).
pub fn untrusted_block(ui: &mut Ui, text: &Untrusted) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        let lines: Vec<String> = text.lines().collect();
        ui.label(lines.join("\n"));
    });
}

/// The colour of a deadline; the words beside it carry the meaning too.
pub fn urgency_color(ui: &Ui, urgency: &Urgency) -> Color32 {
    let dark = ui.visuals().dark_mode;
    match urgency {
        Urgency::Overdue { .. } => {
            if dark {
                Color32::from_rgb(255, 120, 110)
            } else {
                Color32::from_rgb(170, 20, 20)
            }
        }
        Urgency::Soon { .. } => {
            if dark {
                Color32::from_rgb(255, 200, 80)
            } else {
                Color32::from_rgb(140, 80, 0)
            }
        }
        _ => ui.visuals().text_color(),
    }
}

/// The colour of a warning that a message is not what it claims (the
/// words carry the meaning too): the overdue red of this theme.
pub fn warning_color(ui: &Ui) -> Color32 {
    if ui.visuals().dark_mode {
        Color32::from_rgb(255, 120, 110)
    } else {
        Color32::from_rgb(170, 20, 20)
    }
}

/// "te laat — ontvangst bevestigen had uiterlijk 8 december 2026 gemoeten".
pub fn urgency_label(ui: &mut Ui, words: &Words, urgency: &Urgency) -> egui::Response {
    let color = urgency_color(ui, urgency);
    let strong = matches!(urgency, Urgency::Overdue { .. } | Urgency::Soon { .. });
    let mut text = RichText::new(format!(
        "{} — {}",
        words.urgency_word(urgency),
        words.urgency_detail(urgency)
    ))
    .color(color);
    if strong {
        text = text.strong();
    }
    ui.label(text)
}

/// `1,0 MiB (1.048.576 bytes)` in Dutch, `1.0 MiB (1,048,576 bytes)` in
/// English: exact, and readable for large files.
pub fn size(bytes: u64, lang: crate::review::i18n::Lang) -> String {
    let dutch = lang == crate::review::i18n::Lang::Nl;
    let grouped = {
        let digits = bytes.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(if dutch { '.' } else { ',' });
            }
            out.push(c);
        }
        out
    };
    if bytes < 1024 {
        return format!("{grouped} bytes");
    }
    let units = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let mut short = format!("{value:.1}");
    if dutch {
        short = short.replace('.', ",");
    }
    format!("{short} {} ({grouped} bytes)", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::i18n::Lang;

    #[test]
    fn sizes_in_each_language() {
        assert_eq!(size(512, Lang::Nl), "512 bytes");
        assert_eq!(size(1_048_576, Lang::Nl), "1,0 MiB (1.048.576 bytes)");
        assert_eq!(size(1_048_576, Lang::En), "1.0 MiB (1,048,576 bytes)");
    }
}
