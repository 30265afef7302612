// The report form's card fingerprint (web/js/fingerprint.js) against the
// vectors that src/format/card.rs and Python's hashlib
// (tests/vectors/fingerprint.py) also pass.

import assert from "node:assert/strict";
import { test } from "node:test";
import { cardFingerprint, digitGroups, effectiveOrg, fingerprintDigest, slugify } from "../../web/js/fingerprint.js";
import { loadVectors } from "./vectors.mjs";

const vectors = loadVectors("fingerprint.json");
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

test("every card's fingerprint equals Rust's and hashlib's", () => {
  assert.ok(vectors.cards.length >= 12);
  for (const v of vectors.cards) {
    assert.equal(effectiveOrg(v.card), v.org, v.name);
    assert.equal(hex(fingerprintDigest(v.card)), v.digest_hex, v.name);
    assert.equal(cardFingerprint(v.card), v.fingerprint, v.name);
  }
});

test("the card as GET /api/v1/counsellors serves it gives the same fingerprint", () => {
  // The server sends the effective org, `description` always (maybe ""),
  // `lang` null when the card has none, and fields the card file lacks.
  for (const v of vectors.cards) {
    const served = {
      ...v.card, org: v.org, description: v.card.description ?? "", lang: v.card.lang ?? null, post_quantum: false,
    };
    delete served.format;
    delete served.v;
    assert.equal(cardFingerprint(served), v.fingerprint, v.name);
  }
});

test("one changed field changes the fingerprint", () => {
  const byName = Object.fromEntries(vectors.cards.map((v) => [v.name, v]));
  const changed = vectors.cards.filter((v) => v.changed);
  assert.ok(changed.length >= 9);
  for (const v of changed) assert.notEqual(cardFingerprint(v.card), byName[v.changed.from].fingerprint, v.name);
});

test("a card without a field has no fingerprint", () => {
  const card = vectors.cards[0].card;
  for (const field of ["id", "name", "organisation", "kind", "age_recipient", "signing_key"]) {
    const broken = { ...card };
    delete broken[field];
    assert.throws(() => cardFingerprint(broken), new RegExp(field), field);
    assert.throws(() => cardFingerprint({ ...card, [field]: 42 }), TypeError, field);
  }
  assert.throws(() => cardFingerprint(null), TypeError);
});

test("digit groups and slugs follow protocol.md §5", () => {
  assert.deepEqual(digitGroups(new Uint8Array(32)), ["00000", "00000", "00000", "00000", "00000", "00000"]);
  // 2^40 - 1 = 1099511627775 → 27775
  assert.deepEqual(digitGroups(new Uint8Array(32).fill(255)), Array(6).fill("27775"));
  assert.equal(slugify("Mr. A. Jansen"), "mr-a-jansen");
  assert.equal(slugify("  Ministerie van BZK!"), "ministerie-van-bzk");
  assert.equal(slugify("Ω"), "");
  assert.equal(slugify("a".repeat(70)).length, 63);
});
