// The thread page's dates (web/js/deadlines.js) against the vectors the
// reviewer's deadlines (src/review/deadlines.rs) are tested with.

import assert from "node:assert/strict";
import { test } from "node:test";
import { addDays, addMonths, deadlines, deletedFrom } from "../../web/js/deadlines.js";
import { loadVectors } from "./vectors.mjs";

const vectors = loadVectors("deadlines.json");

test("acknowledgement and feedback dates equal the reviewer's", () => {
  assert.ok(vectors.deadlines.length >= 10);
  for (const v of vectors.deadlines) {
    assert.deepEqual(deadlines(v.received, v.acknowledged), {
      acknowledgeBy: v.acknowledge_by,
      feedbackBy: v.feedback_by,
    }, v.note);
  }
});

test("the deletion date follows the server's purge rule", () => {
  for (const v of vectors.deletion) assert.equal(deletedFrom(v.closed, v.retention_days), v.deleted_from, v.note);
});

test("day arithmetic refuses what is not a day and keeps month ends", () => {
  for (const bad of ["", "2026-1-01", "2026-01-01T00:00", "x", null]) assert.throws(() => addDays(bad, 1));
  assert.equal(addMonths("2026-01-31", 1), "2026-02-28");
  assert.equal(addMonths("2028-01-31", 1), "2028-02-29");
  assert.equal(addMonths("2026-12-15", 1), "2027-01-15");
  assert.equal(addDays("2026-03-01", -1), "2026-02-28");
});
