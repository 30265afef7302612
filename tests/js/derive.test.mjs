// Derivations (protocol.md §2) against tests/vectors/derive.json: the lookup
// key, its hash, and the reply identity and recipient must match the Rust side.

import assert from "node:assert/strict";
import { test } from "node:test";
import { deriveKeys, formatCode } from "../../web/js/protocol.js";
import { loadVectors } from "./vectors.mjs";

const { cases } = loadVectors("derive.json");

test("derivations match the vectors", async () => {
  assert.ok(cases.length > 0);
  for (const v of cases) {
    const keys = await deriveKeys(v.canonical);
    assert.equal(keys.lookupKey, v.lookup_key_hex, v.canonical);
    assert.equal(keys.lookupHash, v.lookup_hash_hex, v.canonical);
    assert.equal(keys.replyIdentity, v.reply_identity, v.canonical);
    assert.equal(keys.replyRecipient, v.reply_recipient, v.canonical);
    // protocol v2 (draft): the post-quantum hybrid reply identity
    assert.equal(keys.replyIdentityPq, v.reply_identity_pq, v.canonical);
    assert.equal(keys.replyRecipientPq, v.reply_recipient_pq, v.canonical);
  }
});

test("the wire forms have the documented shape", async () => {
  const keys = await deriveKeys(cases[0].canonical);
  assert.match(keys.lookupKey, /^[0-9a-f]{64}$/);
  assert.match(keys.lookupHash, /^[0-9a-f]{64}$/);
  assert.match(keys.replyIdentity, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
  assert.match(keys.replyRecipient, /^age1[0-9a-z]{58}$/);
  assert.match(keys.replyIdentityPq, /^AGE-SECRET-KEY-PQ-1[0-9A-Z]{58}$/);
  assert.match(keys.replyRecipientPq, /^age1pq1[0-9a-z]{1952}$/);
});

test("a typed display form derives the same keys as the canonical form", async () => {
  const { canonical, lookup_key_hex } = cases[0];
  const typed = formatCode(canonical).toLowerCase().replaceAll("-", " ");
  assert.equal((await deriveKeys(typed)).lookupKey, lookup_key_hex);
});
