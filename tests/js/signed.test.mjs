// Protocol v2's signed envelope (docs/protocol.md §10.2, §10.3) against the
// vectors the Rust side writes (tests/vectors/signed.json, src/format/signed.rs):
// the melder's signing key from each code, exactly the valid messages
// accepted, and the same signature for each signing entry (Ed25519 is
// deterministic). Plus what the page itself builds: a report it signs
// reads back, and every change after signing is refused.

import assert from "node:assert/strict";
import test from "node:test";
import {
  EnvelopeError, buildInner, cardFromApi, deriveKeys, openSigned, padSigned, parseMessage, publicKeyOf, signInner,
  signText, validateCard, validateInner, verifyText,
} from "../../web/js/protocol.js";
import { hexToBytes, loadVectors } from "./vectors.mjs";

const vectors = loadVectors("signed.json");
const utf8 = new TextEncoder();

test("the vectors are the ones of protocol.md §10", () => {
  assert.equal(vectors.label, "meldkluis-message-v2\n");
  assert.ok(vectors.melder_keys.length >= 1);
  assert.ok(vectors.messages.some((m) => m.valid) && vectors.messages.some((m) => !m.valid));
  assert.ok(vectors.signing.length >= 1);
});

test("every melder signing key derives from its code (§10.3)", async () => {
  for (const { canonical, seed_hex: seedHex, public_b64: publicB64 } of vectors.melder_keys) {
    const keys = await deriveKeys(canonical);
    assert.deepEqual(Buffer.from(keys.melderSeed).toString("hex"), seedHex, canonical);
    assert.equal(keys.thread, publicB64, canonical);
    assert.equal(publicKeyOf(hexToBytes(seedHex)), publicB64, canonical);
  }
});

test("exactly the valid messages are accepted, with the inner envelope the vector gives", () => {
  for (const m of vectors.messages) {
    const bytes = utf8.encode(m.plaintext);
    if (m.valid) {
      const inner = openSigned(bytes, m.key_b64);
      assert.deepEqual(inner, m.inner, m.name);
      // Padded as it travels (§3 padding), it reads the same.
      assert.deepEqual(openSigned(padSigned(JSON.parse(m.plaintext)), m.key_b64), m.inner, `${m.name}, padded`);
    } else {
      assert.throws(() => openSigned(bytes, m.key_b64), EnvelopeError, `${m.name} (${m.reason}) was accepted`);
    }
  }
});

test("the refusals are for the vector's reason: a bad signature is a signature failure, not a shape failure", () => {
  for (const m of vectors.messages.filter((v) => !v.valid)) {
    let shapeOk = true;
    try {
      const message = parseMessage(utf8.encode(m.plaintext));
      if (message.v !== 2) shapeOk = false;
    } catch {
      shapeOk = false;
    }
    assert.equal(shapeOk, m.reason === "signature", `${m.name}: reason ${m.reason}`);
  }
});

test("each signing entry gives the same signature (Ed25519 is deterministic)", () => {
  for (const { seed_hex: seedHex, signed, sig_b64: sigB64 } of vectors.signing) {
    assert.equal(signText(signed, hexToBytes(seedHex)), sigB64);
    assert.ok(verifyText(signed, sigB64, publicKeyOf(hexToBytes(seedHex))));
    assert.ok(!verifyText(`${signed} `, sigB64, publicKeyOf(hexToBytes(seedHex))), "one byte more no longer verifies");
  }
});

test("the vectors' counsellor card is a valid card, and the page rebuilds API objects into the same shape", () => {
  validateCard(vectors.counsellor_card);
  const api = { ...vectors.counsellor_card, org: "ministerie-van-voorbeeldzaken", post_quantum: false };
  delete api.format;
  delete api.v;
  const card = cardFromApi(api);
  assert.deepEqual(Object.keys(card), [
    "format", "v", "id", "name", "organisation", "org", "kind", "description", "lang", "age_recipient", "signing_key",
  ]);
  assert.equal(card.post_quantum, undefined);
  assert.deepEqual(cardFromApi({ ...api, lang: null }).lang, undefined, "lang only when the card has one");
  assert.throws(() => cardFromApi({ ...api, signing_key: undefined }), EnvelopeError, "no signing key, no pin");
});

test("a report the page signs reads back; any change after signing is refused", async () => {
  const keys = await deriveKeys(vectors.melder_keys[0].canonical);
  const card = vectors.counsellor_card;
  const inner = buildInner({
    kind: "report", text: "Een melding.", lang: "nl", replyRecipient: keys.replyRecipient, counsellors: [card.id],
    thread: keys.thread, seq: 1, prev: null, cards: [card],
  });
  const outer = signInner(inner, keys.melderSeed);
  assert.deepEqual(openSigned(padSigned(outer), keys.thread), inner);
  const changed = { ...outer, signed: outer.signed.replace("Een melding.", "Geen melding.") };
  assert.throws(() => openSigned(utf8.encode(JSON.stringify(changed)), keys.thread), /signature/);
  // Another key (the counsellor's) does not verify the melder's message.
  assert.throws(() => openSigned(padSigned(outer), card.signing_key), /signature/);
});

test("the v2 fields follow their rules (§10.2)", async () => {
  const keys = await deriveKeys(vectors.melder_keys[0].canonical);
  const card = vectors.counsellor_card;
  const base = {
    v: 2, kind: "follow-up", text: "x", attachments: [], thread: keys.thread, seq: 2, prev: "a".repeat(64),
  };
  validateInner(base);
  const refused = {
    "prev null on a follow-up": { ...base, prev: null },
    "prev upper case": { ...base, prev: "A".repeat(64) },
    "seq 0": { ...base, seq: 0 },
    "a follow-up numbered 1 (the report is 1)": { ...base, seq: 1 },
    "seq not whole": { ...base, seq: 1.5 },
    "thread not a key": { ...base, thread: "abc=" },
    "cards on a follow-up": { ...base, cards: [card] },
    "day on a follow-up": { ...base, day: "2026-12-01" },
    "unknown field": { ...base, extra: 1 },
    "v 1 with v2 fields": { ...base, v: 1 },
    "a reply without day": { ...base, kind: "reply", author: { id: card.id, name: card.name } },
    "a reply on 31 February": { ...base, kind: "reply", author: { id: card.id, name: card.name }, day: "2026-02-31" },
    "a report with seq 1 and a prev": {
      ...base, kind: "report", reply_recipient: keys.replyRecipient, counsellors: [card.id], cards: [card], seq: 1,
    },
    "a report whose cards are not its counsellors": {
      ...base, kind: "report", reply_recipient: keys.replyRecipient, counsellors: ["vp-ander"], cards: [card], seq: 1, prev: null,
    },
    "an introduction of a card with an unknown field": {
      ...base, kind: "reply", author: { id: card.id, name: card.name }, day: "2026-12-01", introduces: [{ ...card, x: 1 }],
    },
  };
  for (const [name, inner] of Object.entries(refused)) assert.throws(() => validateInner(inner), EnvelopeError, name);
  // A question turned into a report is a later report: a seq above 1 and a prev.
  validateInner({ ...base, kind: "report", reply_recipient: keys.replyRecipient, counsellors: [card.id], cards: [card], seq: 3 });
  validateInner({ ...base, kind: "reply", author: { id: card.id, name: card.name }, day: "2026-12-01", introduces: [card], seq: 1 });
});
