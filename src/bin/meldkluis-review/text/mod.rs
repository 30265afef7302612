//! The command line's own sentences, one table per language (`nl.rs`,
//! `en.rs`), beside the words both front ends share
//! (`meldkluis::review::i18n`). The compiler makes sure both tables have
//! every entry. `{0}`, `{1}`… are replaced by [`fill`].

mod en;
mod nl;

use meldkluis::review::i18n::Lang;

pub fn of(lang: Lang) -> &'static Text {
    match lang {
        Lang::Nl => &nl::TEXT,
        Lang::En => &en::TEXT,
    }
}

/// Replaces `{0}`, `{1}`… in `template` by `values`.
pub fn fill(template: &str, values: &[&dyn std::fmt::Display]) -> String {
    let mut out = template.to_string();
    for (i, value) in values.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), &value.to_string());
    }
    out
}

pub struct Text {
    // Numbers.
    pub thousands_separator: char,
    pub decimal_separator: char,

    // Passphrases.
    pub prompt_passphrase: &'static str,
    pub prompt_current_passphrase: &'static str,
    pub prompt_new_passphrase: &'static str,
    pub prompt_again: &'static str,
    pub passphrase_too_short_again: &'static str,
    pub passphrases_differ_again: &'static str,

    // init and rotate-keys.
    pub vault_created: &'static str,
    pub hand_over_card: &'static str,
    pub card_file_name: &'static str,
    /// {0}: the card's fingerprint (six groups of five digits).
    pub compare_card: &'static str,
    pub keys_rotated: &'static str,

    // import.
    pub imported: &'static str,
    pub imported_attachments: &'static str,
    pub imported_unreadable: &'static str,
    pub imported_damaged: &'static str,

    // list and deadlines.
    pub no_cases: &'static str,
    pub received_on: &'static str,
    pub unread: &'static str,
    pub awaiting_answer: &'static str,
    pub no_subject: &'static str,
    pub queued_count: &'static str,
    pub no_open_deadlines: &'static str,

    // show.
    pub case_heading: &'static str,
    pub label_received: &'static str,
    pub label_status: &'static str,
    pub label_category: &'static str,
    pub label_counsellors: &'static str,
    pub label_acknowledge_by: &'static str,
    pub label_feedback_by: &'static str,
    pub label_closed: &'static str,
    pub label_now: &'static str,
    pub done_on: &'static str,
    pub label_contact: &'static str,
    pub message_heading: &'static str,
    pub message_new: &'static str,
    pub kind_report: &'static str,
    pub kind_question: &'static str,
    pub kind_follow_up: &'static str,
    pub kind_reply: &'static str,
    pub kind_evaluation: &'static str,
    pub kind_unknown: &'static str,
    pub status_set: &'static str,
    pub evaluation_scores: &'static str,
    pub attachment: &'static str,
    pub attachment_damaged: &'static str,
    pub for_melder_only: &'static str,
    pub unreadable_message: &'static str,
    pub note_heading: &'static str,
    pub cannot_reply: &'static str,

    // Writing.
    pub type_message: &'static str,
    pub queued: &'static str,
    pub note_kept: &'static str,

    // export.
    pub export_refused: &'static str,
    pub export_written: &'static str,
    pub export_damaged_summary: &'static str,

    // stats.
    pub stats_cases: &'static str,
    pub no_server_key: &'static str,
    /// {0}: the fingerprint of the key forgotten.
    pub server_key_forgotten: &'static str,
    /// {0} open advice questions, {1} reports that began as one.
    pub stats_questions: &'static str,
    pub stats_by_category: &'static str,
    pub stats_by_month: &'static str,
    pub stats_by_status: &'static str,
    pub stats_deadlines: &'static str,
    pub stats_acknowledged_in_time: &'static str,
    pub stats_feedback_in_time: &'static str,
    pub stats_evaluations: &'static str,
    pub stats_process: &'static str,
    pub stats_heard: &'static str,
    pub stats_none: &'static str,

    // purge.
    pub nothing_to_purge: &'static str,
    pub confirm_purge: &'static str,
    /// The colleague's name, organisation and fingerprint.
    pub introduce_card: &'static str,
    pub confirm_introduce: &'static str,
    pub nothing_introduced: &'static str,
    /// "{0}" the case's short id.
    pub accept_introduction_hint: &'static str,
    pub confirm_accept: &'static str,
    pub introduction_accepted: &'static str,
    pub nothing_changed: &'static str,
    pub confirm_word: &'static str,
    pub nothing_purged: &'static str,
    pub purged: &'static str,

    // outbox.
    pub outbox_written: &'static str,

    pub errors: CliErrorText,
}

/// The command line's own errors; the library's come from the shared
/// `Words` table.
pub struct CliErrorText {
    pub no_terminal: &'static str,
    pub terminal: &'static str,
    pub passphrase_file: &'static str,
    pub passphrase_file_empty: &'static str,
    pub passphrase_file_too_short: &'static str,
    pub no_passphrase_chosen: &'static str,
    pub read_file: &'static str,
    pub read_stdin: &'static str,
    pub empty_text: &'static str,
    pub invalid_id: &'static str,
    pub card_name_mismatch: &'static str,
    pub io_not_found: &'static str,
    pub io_permission: &'static str,
    pub io_exists: &'static str,
    pub io_read_only: &'static str,
    pub io_full: &'static str,
    pub io_is_directory: &'static str,
    pub io_not_directory: &'static str,
    pub io_other: &'static str,
}
