//! Figures for monitoring and the annual integrity report: counts and
//! deadline adherence, never content. Computed from the vault's case records
//! only (category, days, status, evaluation scores).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::deadlines::deadlines;
use super::vault::CaseRecord;
use crate::format::day::Day;
use crate::format::envelope::Status;

/// The figures, keyed for stable output.
#[derive(Debug, Default, PartialEq)]
pub struct Stats {
    /// Reports (a question turned into a report counts here, from its
    /// report's day).
    pub cases: usize,
    /// Advice questions still questions: counted apart, in no other figure.
    pub questions: usize,
    /// Reports that began as an advice question.
    pub questions_turned_into_reports: usize,
    pub by_category: BTreeMap<String, usize>,
    /// `YYYY-MM` of receipt.
    pub by_month: BTreeMap<String, usize>,
    pub by_status: BTreeMap<&'static str, usize>,
    /// Cases whose acknowledgement was due by today or was sent: (on time, of).
    pub acknowledged_in_time: (usize, usize),
    /// Cases whose feedback was due by today or was given: (on time, of).
    pub feedback_in_time: (usize, usize),
    pub evaluations: usize,
    /// Sums of the two scores, for the averages.
    pub process_score_sum: u64,
    pub heard_score_sum: u64,
}

/// The status a case shows: the latest one set, or "received".
pub fn current_status(case: &CaseRecord) -> &'static str {
    if case.closed.is_some() {
        return Status::Closed.as_str();
    }
    match case.status {
        Some((status, _)) => status.as_str(),
        None if case.acknowledged.is_some() => Status::Acknowledged.as_str(),
        None => "received",
    }
}

pub fn compute<'a>(cases: impl IntoIterator<Item = &'a CaseRecord>, today: Day) -> Stats {
    let mut stats = Stats::default();
    for case in cases {
        if case.question {
            stats.questions += 1;
            continue;
        }
        stats.cases += 1;
        if case.asked.is_some() {
            stats.questions_turned_into_reports += 1;
        }
        let category = case.category.clone().unwrap_or_else(|| "-".into());
        *stats.by_category.entry(category).or_default() += 1;
        let month = case.received.to_string()[..7].to_string();
        *stats.by_month.entry(month).or_default() += 1;
        *stats.by_status.entry(current_status(case)).or_default() += 1;

        let due = deadlines(case.received, case.acknowledged);
        match case.acknowledged {
            Some(day) => {
                stats.acknowledged_in_time.1 += 1;
                if day <= due.acknowledge_by {
                    stats.acknowledged_in_time.0 += 1;
                }
            }
            None if today > due.acknowledge_by => stats.acknowledged_in_time.1 += 1,
            None => {}
        }
        match case.feedback {
            Some(day) => {
                stats.feedback_in_time.1 += 1;
                if day <= due.feedback_by {
                    stats.feedback_in_time.0 += 1;
                }
            }
            None if today > due.feedback_by => stats.feedback_in_time.1 += 1,
            None => {}
        }
        if let Some(evaluation) = case.evaluation {
            stats.evaluations += 1;
            stats.process_score_sum += u64::from(evaluation.process);
            stats.heard_score_sum += u64::from(evaluation.heard);
        }
    }
    stats
}

fn average(sum: u64, n: usize) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{:.2}", sum as f64 / n as f64)
    }
}

impl Stats {
    /// CSV with a header: `section,key,value`, one figure a row.
    pub fn csv(&self) -> String {
        let mut out = String::from("section,key,value\n");
        let _ = writeln!(out, "total,cases,{}", self.cases);
        let _ = writeln!(out, "total,advice_questions,{}", self.questions);
        let _ = writeln!(
            out,
            "total,reports_that_began_as_questions,{}",
            self.questions_turned_into_reports
        );
        for (key, n) in &self.by_category {
            let _ = writeln!(out, "category,{},{n}", csv_field(key));
        }
        for (key, n) in &self.by_month {
            let _ = writeln!(out, "month,{key},{n}");
        }
        for (key, n) in &self.by_status {
            let _ = writeln!(out, "status,{key},{n}");
        }
        let (a, b) = self.acknowledged_in_time;
        let _ = writeln!(
            out,
            "deadline,acknowledged_in_time,{a}\ndeadline,acknowledgement_due,{b}"
        );
        let (a, b) = self.feedback_in_time;
        let _ = writeln!(
            out,
            "deadline,feedback_in_time,{a}\ndeadline,feedback_due,{b}"
        );
        let _ = writeln!(out, "evaluation,count,{}", self.evaluations);
        let _ = writeln!(
            out,
            "evaluation,process_average,{}",
            average(self.process_score_sum, self.evaluations)
        );
        let _ = writeln!(
            out,
            "evaluation,heard_average,{}",
            average(self.heard_score_sum, self.evaluations)
        );
        out
    }
}

/// Quotes a CSV field when needed; categories come from melders, so also
/// defuse spreadsheet formulas (a leading = + - @).
fn csv_field(text: &str) -> String {
    let text = super::terminal::clean_line(text);
    let text = if text.starts_with(['=', '+', '-', '@']) && text != "-" {
        format!("'{text}")
    } else {
        text
    };
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_defuses_formulas_and_quotes() {
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("fraud"), "fraud");
        assert_eq!(csv_field("-"), "-");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
