//! Words both reviewer front ends (command line and desktop program) use for
//! the library's typed data: statuses, categories, deadlines, authors, and
//! the errors. One language at a time; Dutch is the default. Each front end
//! keeps its own sentences in a table of its own beside this one.

mod en;
mod nl;

use crate::format::day::Day;

use super::attachment::Damage;
use super::deadlines::{Duty, Urgency};
use super::error::{InboxMismatch, ReviewError};
use super::views::{AuthorView, CaseStatus, Category, KnownCategory};

/// The language of everything a front end shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Nl,
    En,
}

impl Lang {
    /// From `--lang`, `MELDKLUIS_LANG` or the locale (`LANG=en_GB.UTF-8`):
    /// English when the text starts with `en`, Dutch otherwise.
    pub fn from_tag(tag: &str) -> Lang {
        if tag.trim().to_ascii_lowercase().starts_with("en") {
            Lang::En
        } else {
            Lang::Nl
        }
    }

    /// The language the environment asks for: `MELDKLUIS_LANG`, then
    /// `LC_ALL`, `LC_MESSAGES`, `LANG`; Dutch when none is set.
    pub fn from_env() -> Lang {
        ["MELDKLUIS_LANG", "LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .map(|tag| Lang::from_tag(&tag))
            .unwrap_or_default()
    }

    /// The BCP 47 tag, for documents and accessibility.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }

    pub fn words(self) -> &'static Words {
        match self {
            Lang::Nl => &nl::WORDS,
            Lang::En => &en::WORDS,
        }
    }
}

/// The shared vocabulary, one table per language (`nl.rs`, `en.rs`); the
/// compiler makes sure both have every entry.
pub struct Words {
    pub status_received: &'static str,
    pub status_acknowledged: &'static str,
    pub status_in_progress: &'static str,
    pub status_feedback_given: &'static str,
    pub status_closed: &'static str,
    pub category_fraud: &'static str,
    pub category_behaviour: &'static str,
    pub category_conflict: &'static str,
    pub category_leak: &'static str,
    pub category_resources: &'static str,
    pub category_other: &'static str,
    pub category_none: &'static str,
    /// Prefix for a category the form does not offer.
    pub category_unlisted: &'static str,
    pub duty_acknowledge: &'static str,
    pub duty_feedback: &'static str,
    pub overdue: &'static str,
    pub due_soon: &'static str,
    pub on_time: &'static str,
    pub deadlines_met: &'static str,
    /// An advice question: no statutory terms (one word or two).
    pub question: &'static str,
    /// What that means, for the case view.
    pub question_no_terms: &'static str,
    /// A report that began as a question: "{day}" is the question's day.
    pub began_as_question: &'static str,
    /// The first signed inbox pinned the server's key: "{0}" its fingerprint.
    pub server_key_pinned: &'static str,
    /// Protocol v2 (§10.4): what a message's signature showed.
    pub message_older_format: &'static str,
    pub message_verified: &'static str,
    pub message_not_genuine: &'static str,
    pub message_replayed: &'static str,
    pub message_missing_before: &'static str,
    /// Above the counsellors a reply introduces (protocol.md §10.5).
    pub introduces_heading: &'static str,
    /// On a melder's message written before the melder saw "{0}" of your replies.
    pub unseen_replies: &'static str,
    /// Above an introduction waiting for the counsellor's confirmation.
    pub pending_introduction: &'static str,
    /// In place of a message that waits for an introduction's confirmation.
    pub waiting_for_introduction: &'static str,
    /// On a melder's message a colleague forwarded in an introduction.
    pub forwarded_note: &'static str,
    pub author_not_melder: &'static str,
    pub not_genuine_arrived: &'static str,
    pub closed: &'static str,
    /// "{duty} by {day}" and friends: `{duty}` and `{day}` are replaced.
    pub duty_by: &'static str,
    pub duty_was_due: &'static str,
    pub author_melder: &'static str,
    pub author_you: &'static str,
    pub author_counsellor: &'static str,
    pub months: [&'static str; 12],
    pub errors: ErrorWords,
}

/// The errors, in words for the counsellor: what happened and what to do.
/// `{0}` is replaced by the error's detail.
pub struct ErrorWords {
    pub vault_exists: &'static str,
    pub no_vault: &'static str,
    pub wrong_passphrase: &'static str,
    pub damaged: &'static str,
    pub inbox: &'static str,
    pub not_my_inbox: &'static str,
    /// "{0}" is one of the four details below.
    pub inbox_mismatch: &'static str,
    pub inbox_answers_unmade: &'static str,
    pub inbox_older: &'static str,
    pub inbox_out_of_order: &'static str,
    pub inbox_unknown_applied: &'static str,
    pub inbox_reused_id: &'static str,
    pub inbox_unsigned: &'static str,
    pub inbox_other_key: &'static str,
    pub no_such_case: &'static str,
    pub ambiguous_case: &'static str,
    pub no_reply_recipient: &'static str,
    pub case_closed: &'static str,
    pub case_open: &'static str,
    /// "{0}" the colleague's id, "{1}" the case, "{2}" one of the four below.
    pub cannot_introduce: &'static str,
    pub introduce_older: &'static str,
    pub introduce_already: &'static str,
    pub introduce_own: &'static str,
    pub introduce_key_kind: &'static str,
    pub introduce_not_chosen: &'static str,
    pub no_introduction: &'static str,
    pub envelope: &'static str,
    pub card: &'static str,
    pub io: &'static str,
    pub damage_missing: &'static str,
    pub damage_unreadable: &'static str,
    pub damage_not_age: &'static str,
    pub damage_wrong_file: &'static str,
    pub damage_wrong_length: &'static str,
    pub damage_undecryptable: &'static str,
    pub damage_padding: &'static str,
}

impl Words {
    pub fn status(&self, status: CaseStatus) -> &'static str {
        match status {
            CaseStatus::Received => self.status_received,
            CaseStatus::Acknowledged => self.status_acknowledged,
            CaseStatus::InProgress => self.status_in_progress,
            CaseStatus::FeedbackGiven => self.status_feedback_given,
            CaseStatus::Closed => self.status_closed,
        }
    }

    pub fn known_category(&self, category: KnownCategory) -> &'static str {
        match category {
            KnownCategory::FraudOrAbuseOfPower => self.category_fraud,
            KnownCategory::UndesirableBehaviour => self.category_behaviour,
            KnownCategory::ConflictOfInterest => self.category_conflict,
            KnownCategory::InformationLeak => self.category_leak,
            KnownCategory::MisuseOfResources => self.category_resources,
            KnownCategory::Other => self.category_other,
        }
    }

    /// A category in words; an unlisted one is shown neutralised, marked.
    pub fn category(&self, category: Option<&Category>) -> String {
        match category {
            None => self.category_none.into(),
            Some(Category::Known(known)) => self.known_category(*known).into(),
            Some(Category::Unlisted(text)) => format!("{}: {}", self.category_unlisted, text),
        }
    }

    pub fn duty(&self, duty: Duty) -> &'static str {
        match duty {
            Duty::Acknowledge => self.duty_acknowledge,
            Duty::Feedback => self.duty_feedback,
        }
    }

    /// A day in words: `8 december 2026`, `8 December 2026`.
    pub fn day(&self, day: Day) -> String {
        let date = day.0;
        format!(
            "{} {} {}",
            date.day(),
            self.months[usize::from(u8::from(date.month())) - 1],
            date.year()
        )
    }

    /// How urgent, in one word: overdue / due soon / on time / met / closed.
    pub fn urgency_word(&self, urgency: &Urgency) -> &'static str {
        match urgency {
            Urgency::Overdue { .. } => self.overdue,
            Urgency::Soon { .. } => self.due_soon,
            Urgency::Pending { .. } => self.on_time,
            Urgency::Question => self.question,
            Urgency::Done => self.deadlines_met,
            Urgency::Closed => self.closed,
        }
    }

    /// What is due and by when: "ontvangst bevestigen uiterlijk 8 december 2026".
    pub fn urgency_detail(&self, urgency: &Urgency) -> String {
        let fill = |template: &str, duty: Duty, day: Day| {
            template
                .replace("{duty}", self.duty(duty))
                .replace("{day}", &self.day(day))
        };
        match *urgency {
            Urgency::Overdue { duty, since } => fill(self.duty_was_due, duty, since),
            Urgency::Soon { duty, by } | Urgency::Pending { duty, by } => {
                fill(self.duty_by, duty, by)
            }
            Urgency::Question => self.question_no_terms.into(),
            Urgency::Done => self.deadlines_met.into(),
            Urgency::Closed => self.closed.into(),
        }
    }

    /// "begon als adviesvraag op 2 december 2026".
    pub fn began_as_question(&self, asked: Day) -> String {
        self.began_as_question.replace("{day}", &self.day(asked))
    }

    pub fn author(&self, author: &AuthorView) -> String {
        match author {
            AuthorView::Melder => self.author_melder.into(),
            AuthorView::You => self.author_you.into(),
            AuthorView::Counsellor(id) => format!("{} {}", self.author_counsellor, id),
            AuthorView::NotMelder => self.author_not_melder.into(),
        }
    }

    /// What a message's signature showed, in words (`None`: nothing to say,
    /// e.g. a colleague's reply this vault cannot read).
    pub fn authenticity(
        &self,
        authenticity: Option<crate::review::vault::Authenticity>,
    ) -> Option<&'static str> {
        use crate::review::vault::Authenticity;
        Some(match authenticity? {
            Authenticity::Older => self.message_older_format,
            Authenticity::Verified => self.message_verified,
            Authenticity::NotGenuine => self.message_not_genuine,
            Authenticity::Replayed => self.message_replayed,
        })
    }

    /// An error in words for the counsellor.
    pub fn error(&self, error: &ReviewError) -> String {
        let e = &self.errors;
        let path =
            |p: &std::path::Path| super::untrusted::Untrusted::new(p.display().to_string()).line();
        match error {
            ReviewError::VaultExists(dir) => e.vault_exists.replace("{0}", &path(dir)),
            ReviewError::NoVault(dir) => e.no_vault.replace("{0}", &path(dir)),
            ReviewError::WrongPassphrase => e.wrong_passphrase.into(),
            ReviewError::Damaged { file, problem } => {
                e.damaged.replace("{0}", &path(file)).replace(
                    "{1}",
                    &super::untrusted::Untrusted::new(problem.clone()).line(),
                )
            }
            ReviewError::Inbox(inner) => e.inbox.replace(
                "{0}",
                &super::untrusted::Untrusted::new(inner.to_string()).line(),
            ),
            ReviewError::NotMyInbox(id) => e
                .not_my_inbox
                .replace("{0}", &super::untrusted::Untrusted::new(id.clone()).line()),
            ReviewError::InboxMismatch(why) => {
                let detail = match why {
                    InboxMismatch::AnswersUnmade { answers, made } => e
                        .inbox_answers_unmade
                        .replace("{0}", &answers.to_string())
                        .replace("{1}", &made.to_string()),
                    InboxMismatch::Older { answers, read } => e
                        .inbox_older
                        .replace("{0}", &answers.to_string())
                        .replace("{1}", &read.to_string()),
                    InboxMismatch::OutOfOrder { after, found } => e
                        .inbox_out_of_order
                        .replace("{0}", &found.to_string())
                        .replace("{1}", &after.to_string()),
                    InboxMismatch::UnknownApplied(id) => e.inbox_unknown_applied.replace("{0}", id),
                    InboxMismatch::ReusedId(id) => e.inbox_reused_id.replace("{0}", id),
                    InboxMismatch::Unsigned => e.inbox_unsigned.into(),
                    InboxMismatch::OtherServerKey { known, found } => e
                        .inbox_other_key
                        .replace("{0}", found)
                        .replace("{1}", known),
                };
                e.inbox_mismatch.replace("{0}", &detail)
            }
            ReviewError::NoSuchCase(id) => e.no_such_case.replace("{0}", id),
            ReviewError::AmbiguousCase(id) => e.ambiguous_case.replace("{0}", id),
            ReviewError::NoReplyRecipient(id) => e.no_reply_recipient.replace("{0}", id),
            ReviewError::CaseClosed(id) => e.case_closed.replace("{0}", id),
            ReviewError::CaseOpen(id) => e.case_open.replace("{0}", id),
            ReviewError::NoIntroduction(id) => e.no_introduction.replace("{0}", id),
            ReviewError::CannotIntroduce {
                case,
                colleague,
                why,
            } => {
                use super::error::IntroduceRefusal::*;
                let why = match why {
                    OlderFormat => e.introduce_older,
                    AlreadyOnCase => e.introduce_already,
                    OwnCard => e.introduce_own,
                    KeyKindDiffers => e.introduce_key_kind,
                    NotChosen => e.introduce_not_chosen,
                };
                e.cannot_introduce
                    .replace("{0}", colleague)
                    .replace("{1}", case)
                    .replace("{2}", why)
            }
            ReviewError::Envelope(inner) => e.envelope.replace("{0}", &inner.to_string()),
            ReviewError::Card(inner) => e.card.replace("{0}", &inner.to_string()),
            ReviewError::Io { path: p, source } => {
                e.io.replace("{0}", &path(p))
                    .replace("{1}", &source.to_string())
            }
        }
    }

    /// Why an attachment is refused, in words.
    pub fn damage(&self, damage: &Damage) -> String {
        let e = &self.errors;
        match damage {
            Damage::Missing => e.damage_missing.into(),
            Damage::Unreadable(detail) => e.damage_unreadable.replace("{0}", detail),
            Damage::NotAge(detail) => e.damage_not_age.replace("{0}", &detail.to_string()),
            Damage::WrongFile => e.damage_wrong_file.into(),
            Damage::WrongLength => e.damage_wrong_length.into(),
            Damage::Undecryptable(detail) => e.damage_undecryptable.replace("{0}", detail),
            Damage::Padding => e.damage_padding.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_from_tags_and_days_in_words() {
        assert_eq!(Lang::from_tag("en_GB.UTF-8"), Lang::En);
        assert_eq!(Lang::from_tag("nl_NL.UTF-8"), Lang::Nl);
        assert_eq!(Lang::from_tag("C"), Lang::Nl);
        let day = Day::parse("2026-12-08").unwrap();
        assert_eq!(Lang::Nl.words().day(day), "8 december 2026");
        assert_eq!(Lang::En.words().day(day), "8 December 2026");
    }

    #[test]
    fn one_language_at_a_time() {
        let urgency = Urgency::Soon {
            duty: Duty::Acknowledge,
            by: Day::parse("2026-12-08").unwrap(),
        };
        let nl = Lang::Nl.words().urgency_detail(&urgency);
        let en = Lang::En.words().urgency_detail(&urgency);
        assert_eq!(nl, "ontvangst bevestigen uiterlijk 8 december 2026");
        assert_eq!(en, "acknowledge receipt by 8 December 2026");
        assert!(!nl.contains(" / ") && !en.contains(" / "));
    }
}
