//! The legal deadlines (EU Directive 2019/1937 art. 9, Wet bescherming
//! klokkenluiders art. 2): acknowledge receipt within 7 days; give feedback
//! within 3 months of the acknowledgement, or of the end of the 7-day period
//! when no acknowledgement was sent. Pure functions of the days involved, so
//! tests run on a fixed clock.

use time::{Date, Duration, Month};

use super::vault::CaseRecord;
use crate::format::day::Day;

/// Days for acknowledging receipt.
pub const ACKNOWLEDGE_DAYS: i64 = 7;
/// Months for feedback.
pub const FEEDBACK_MONTHS: u8 = 3;
/// How far ahead a deadline counts as "soon".
const ACKNOWLEDGE_SOON_DAYS: i64 = 2;
const FEEDBACK_SOON_DAYS: i64 = 14;

/// `day` plus `months` calendar months; a day that does not exist in the
/// target month becomes its last day (31 January + 1 month = 28 or 29 February).
pub fn add_months(day: Day, months: u8) -> Day {
    let date = day.0;
    let total = date.month() as i32 - 1 + i32::from(months);
    let year = date.year() + total.div_euclid(12);
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).expect("1..=12");
    let last = time::util::days_in_month(month, year);
    Day(Date::from_calendar_date(year, month, date.day().min(last)).expect("a valid date"))
}

pub fn add_days(day: Day, days: i64) -> Day {
    Day(day.0 + Duration::days(days))
}

/// The two deadlines of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub acknowledge_by: Day,
    pub feedback_by: Day,
}

pub fn deadlines(received: Day, acknowledged: Option<Day>) -> Deadlines {
    let acknowledge_by = add_days(received, ACKNOWLEDGE_DAYS);
    Deadlines {
        acknowledge_by,
        feedback_by: add_months(acknowledged.unwrap_or(acknowledge_by), FEEDBACK_MONTHS),
    }
}

/// Which obligation is next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Duty {
    Acknowledge,
    Feedback,
}

/// How urgent a case is today; ordered from most to least urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    Overdue {
        duty: Duty,
        since: Day,
    },
    Soon {
        duty: Duty,
        by: Day,
    },
    Pending {
        duty: Duty,
        by: Day,
    },
    /// An advice question, still open: no statutory terms run.
    Question,
    /// Acknowledged and feedback given, not closed.
    Done,
    Closed,
}

impl Urgency {
    /// Sort key: most urgent first, then the earliest day.
    pub fn sort_key(&self) -> (u8, Option<Day>) {
        match *self {
            Urgency::Overdue { since, .. } => (0, Some(since)),
            Urgency::Soon { by, .. } => (1, Some(by)),
            Urgency::Pending { by, .. } => (2, Some(by)),
            Urgency::Question => (3, None),
            Urgency::Done => (4, None),
            Urgency::Closed => (5, None),
        }
    }

    pub fn is_overdue(&self) -> bool {
        matches!(self, Urgency::Overdue { .. })
    }
}

/// Where a case stands on `today`.
pub fn urgency(case: &CaseRecord, today: Day) -> Urgency {
    if case.closed.is_some() {
        return Urgency::Closed;
    }
    if case.question {
        return Urgency::Question;
    }
    let due = deadlines(case.received, case.acknowledged);
    let (duty, by, soon) = if case.acknowledged.is_none() {
        (Duty::Acknowledge, due.acknowledge_by, ACKNOWLEDGE_SOON_DAYS)
    } else if case.feedback.is_none() {
        (Duty::Feedback, due.feedback_by, FEEDBACK_SOON_DAYS)
    } else {
        return Urgency::Done;
    };
    if today > by {
        Urgency::Overdue { duty, since: by }
    } else if (by.0 - today.0).whole_days() <= soon {
        Urgency::Soon { duty, by }
    } else {
        Urgency::Pending { duty, by }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    fn case(received: &str, acknowledged: Option<&str>, feedback: Option<&str>) -> CaseRecord {
        let mut case = CaseRecord::new(d(received));
        case.acknowledged = acknowledged.map(d);
        case.feedback = feedback.map(d);
        case
    }

    #[test]
    fn months_clamp_to_the_end_of_the_month() {
        assert_eq!(add_months(d("2026-01-31"), 1), d("2026-02-28"));
        assert_eq!(add_months(d("2028-01-31"), 1), d("2028-02-29"), "leap year");
        assert_eq!(add_months(d("2026-11-30"), 3), d("2027-02-28"));
        assert_eq!(
            add_months(d("2027-11-30"), 3),
            d("2028-02-29"),
            "into a leap February"
        );
        assert_eq!(
            add_months(d("2026-10-31"), 3),
            d("2027-01-31"),
            "across the year"
        );
        assert_eq!(add_months(d("2026-05-31"), 3), d("2026-08-31"));
        assert_eq!(add_months(d("2026-03-31"), 3), d("2026-06-30"));
        assert_eq!(
            add_months(d("2100-11-29"), 3),
            d("2101-02-28"),
            "2100 is no leap year"
        );
    }

    #[test]
    fn feedback_runs_from_the_acknowledgement() {
        let due = deadlines(d("2026-03-02"), Some(d("2026-03-04")));
        assert_eq!(due.acknowledge_by, d("2026-03-09"));
        assert_eq!(due.feedback_by, d("2026-06-04"));
    }

    #[test]
    fn without_acknowledgement_feedback_runs_from_the_end_of_the_seven_days() {
        let due = deadlines(d("2026-01-24"), None);
        assert_eq!(due.acknowledge_by, d("2026-01-31"));
        assert_eq!(due.feedback_by, d("2026-04-30"), "31 January + 3 months");
        let leap = deadlines(d("2027-11-23"), None);
        assert_eq!(leap.acknowledge_by, d("2027-11-30"));
        assert_eq!(leap.feedback_by, d("2028-02-29"));
    }

    /// The vectors the melder's page (web/js/deadlines.js) is tested
    /// against too, so both show the same dates.
    #[test]
    fn shared_vectors() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/deadlines.json")).unwrap();
        let day = |v: &serde_json::Value| d(v.as_str().unwrap());
        let cases = vectors["deadlines"].as_array().unwrap();
        assert!(cases.len() >= 10);
        for v in cases {
            let acknowledged = v["acknowledged"].as_str().map(d);
            let due = deadlines(day(&v["received"]), acknowledged);
            assert_eq!(due.acknowledge_by, day(&v["acknowledge_by"]), "{v}");
            assert_eq!(due.feedback_by, day(&v["feedback_by"]), "{v}");
        }
        for v in vectors["deletion"].as_array().unwrap() {
            let closed = day(&v["closed"]);
            let retention = u32::try_from(v["retention_days"].as_u64().unwrap()).unwrap();
            let from = day(&v["deleted_from"]);
            let cutoff = crate::format::day::retention_cutoff;
            assert!(closed <= cutoff(from, retention), "purged on {from}: {v}");
            assert!(
                closed > cutoff(add_days(from, -1), retention),
                "not purged the day before: {v}"
            );
        }
    }

    #[test]
    fn urgency_on_a_fixed_clock() {
        let fresh = case("2026-11-20", None, None);
        assert_eq!(
            urgency(&fresh, d("2026-11-21")),
            Urgency::Pending {
                duty: Duty::Acknowledge,
                by: d("2026-11-27")
            }
        );
        assert_eq!(
            urgency(&fresh, d("2026-11-25")),
            Urgency::Soon {
                duty: Duty::Acknowledge,
                by: d("2026-11-27")
            }
        );
        assert_eq!(
            urgency(&fresh, d("2026-11-27")),
            Urgency::Soon {
                duty: Duty::Acknowledge,
                by: d("2026-11-27")
            },
            "the last day is still in time"
        );
        assert_eq!(
            urgency(&fresh, d("2026-11-28")),
            Urgency::Overdue {
                duty: Duty::Acknowledge,
                since: d("2026-11-27")
            }
        );
        let acknowledged = case("2026-11-20", Some("2026-11-22"), None);
        assert_eq!(
            urgency(&acknowledged, d("2027-02-08")),
            Urgency::Soon {
                duty: Duty::Feedback,
                by: d("2027-02-22")
            }
        );
        assert_eq!(
            urgency(&acknowledged, d("2027-02-23")),
            Urgency::Overdue {
                duty: Duty::Feedback,
                since: d("2027-02-22")
            }
        );
        let done = case("2026-11-20", Some("2026-11-22"), Some("2027-01-10"));
        assert_eq!(urgency(&done, d("2030-01-01")), Urgency::Done);
        let mut closed = fresh.clone();
        closed.closed = Some(d("2026-12-01"));
        assert_eq!(urgency(&closed, d("2030-01-01")), Urgency::Closed);
        let mut order = [
            urgency(&done, d("2027-03-01")),
            urgency(&fresh, d("2026-11-21")),
            urgency(&acknowledged, d("2027-03-01")),
        ];
        order.sort_by_key(Urgency::sort_key);
        assert!(order[0].is_overdue());
        assert_eq!(order[2], Urgency::Done);
    }
}
