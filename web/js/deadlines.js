// The legal terms as the counsellor's reviewer computes them
// (src/review/deadlines.rs), so the melder's page shows the same dates:
// acknowledgement within 7 days of receipt; feedback within 3 months of the
// acknowledgement, or of the end of those 7 days when none came. And the
// day the server deletes a closed case. Days are "YYYY-MM-DD", UTC.
// Pinned to the Rust side by tests/vectors/deadlines.json.

export const ACKNOWLEDGE_DAYS = 7;
export const FEEDBACK_MONTHS = 3;

function parts(day) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!match) throw new Error(`not a day: ${day}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

function format(year, month, date) {
  return `${String(year).padStart(4, "0")}-${String(month).padStart(2, "0")}-${String(date).padStart(2, "0")}`;
}

/** `day` plus `days` calendar days. */
export function addDays(day, days) {
  const [year, month, date] = parts(day);
  const moved = new Date(Date.UTC(year, month - 1, date + days));
  return format(moved.getUTCFullYear(), moved.getUTCMonth() + 1, moved.getUTCDate());
}

/** `day` plus `months` calendar months; a day the target month lacks becomes its last day. */
export function addMonths(day, months) {
  const [year, month, date] = parts(day);
  const total = month - 1 + months;
  const targetYear = year + Math.floor(total / 12);
  const targetMonth = (((total % 12) + 12) % 12) + 1;
  const last = new Date(Date.UTC(targetYear, targetMonth, 0)).getUTCDate();
  return format(targetYear, targetMonth, Math.min(date, last));
}

/** { acknowledgeBy, feedbackBy } for a case received on `received`, acknowledged on `acknowledged` (or null). */
export function deadlines(received, acknowledged) {
  const acknowledgeBy = addDays(received, ACKNOWLEDGE_DAYS);
  return { acknowledgeBy, feedbackBy: addMonths(acknowledged ?? acknowledgeBy, FEEDBACK_MONTHS) };
}

/** The first day the server no longer holds a case closed on `closed` (src/format/day.rs retention_cutoff). */
export function deletedFrom(closed, retentionDays) {
  return addDays(closed, retentionDays);
}
