//! Days, never times: the server records when something arrived only to the
//! day (UTC), so a stored date cannot be matched against a network log.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, OffsetDateTime, format_description::FormatItem, macros::format_description};

const FORMAT: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub Date);

impl Day {
    pub fn today() -> Self {
        Day(OffsetDateTime::now_utc().date())
    }

    pub fn parse(text: &str) -> Option<Self> {
        Date::parse(text, FORMAT).ok().map(Day)
    }
}

/// The server's purge rule (server/mod.rs): on `today` it deletes every case
/// closed on or before the day this returns. So a case closed on day C is
/// deleted from C + `retention_days` on, the date the melder's page shows —
/// see tests/vectors/deadlines.json.
pub fn retention_cutoff(today: Day, retention_days: u32) -> Day {
    Day(today.0 - time::Duration::days(i64::from(retention_days)))
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.format(FORMAT).expect("a date always formats"))
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Day::parse(&text).ok_or_else(|| serde::de::Error::custom("a day is YYYY-MM-DD"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let day = Day::parse("2026-11-22").unwrap();
        assert_eq!(day.to_string(), "2026-11-22");
        for bad in ["", "2026-13-01", "2026-11-22T10:00", "22-11-2026"] {
            assert!(Day::parse(bad).is_none(), "{bad}");
        }
    }
}
