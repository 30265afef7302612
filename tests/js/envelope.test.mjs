// Envelopes and padding (protocol.md §3) against tests/vectors/envelope.json,
// plus the bucket boundaries the spec states in words.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  EnvelopeError,
  MAX_PLAINTEXT,
  buildEnvelope,
  padEnvelope,
  paddedLength,
  parseEnvelope,
  validateEnvelope,
} from "../../web/js/protocol.js";
import { loadVectors } from "./vectors.mjs";

const vectors = loadVectors("envelope.json");
const MIB = 1024 * 1024;

test("vector envelopes validate and land in the vector's bucket", () => {
  assert.ok(vectors.cases.length > 0);
  for (const v of vectors.cases) {
    validateEnvelope(v.envelope);
    // JSON serialisation may differ between JS and Rust (key order, nulls),
    // so the bucket is checked on the Rust length.
    assert.equal(paddedLength(v.json_length), v.padded_length);
    const padded = padEnvelope(v.envelope);
    assert.equal(padded.length % 4096, 0);
    assert.deepEqual(parseEnvelope(padded), JSON.parse(JSON.stringify(v.envelope)));
  }
});

test("bucket cases match", () => {
  assert.ok(vectors.bucket_cases.length > 0);
  for (const { length, padded } of vectors.bucket_cases) {
    if (padded === null || padded === undefined) {
      assert.throws(() => paddedLength(length), RangeError, `length ${length}`);
    } else {
      assert.equal(paddedLength(length), padded, `length ${length}`);
    }
  }
});

test("invalid vector envelopes are refused", () => {
  assert.ok(vectors.invalid.length > 0);
  for (const v of vectors.invalid) {
    assert.throws(() => validateEnvelope(v.envelope), EnvelopeError, v.reason);
    const bytes = new TextEncoder().encode(JSON.stringify(v.envelope));
    assert.throws(() => parseEnvelope(bytes), EnvelopeError, v.reason);
  }
});

test("buckets follow the rule stated in protocol.md §3", () => {
  const expected = [
    [0, 4096], [1, 4096], [4096, 4096], [4097, 8192], [65_536, 65_536],
    [65_537, 131_072], [MIB, MIB], [MIB + 1, 2 * MIB], [3 * MIB, 3 * MIB],
    [MAX_PLAINTEXT, MAX_PLAINTEXT],
  ];
  for (const [length, padded] of expected) assert.equal(paddedLength(length), padded, `${length}`);
  assert.throws(() => paddedLength(MAX_PLAINTEXT + 1), RangeError);
});

test("padding is ASCII spaces after the JSON, and the result still parses", () => {
  const envelope = { v: 1, kind: "follow-up", text: "Nog één ding: ☃", attachments: [] };
  const padded = padEnvelope(envelope);
  const json = new TextEncoder().encode(JSON.stringify(envelope));
  assert.equal(padded.length, 4096);
  assert.deepEqual(padded.subarray(0, json.length), json);
  assert.ok(padded.subarray(json.length).every((b) => b === 0x20));
  assert.deepEqual(parseEnvelope(padded), envelope);
});

test("the browser's envelopes leave out what is not filled in", () => {
  const recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
  const report = buildEnvelope({
    kind: "report", text: "x", category: "", contact: "", replyRecipient: recipient,
    counsellors: ["vp-jansen"],
  });
  assert.deepEqual(Object.keys(report), ["v", "kind", "text", "reply_recipient", "counsellors", "attachments"]);
  const followUp = buildEnvelope({ kind: "follow-up", text: "y" });
  assert.deepEqual(followUp, { v: 1, kind: "follow-up", text: "y", attachments: [] });
});

test("field rules are enforced", () => {
  const recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
  const report = { v: 1, kind: "report", text: "x", reply_recipient: recipient, counsellors: ["vp-jansen"], attachments: [] };
  const reply = { v: 1, kind: "reply", text: "x", author: { id: "vp-jansen", name: "A. Jansen" } };
  const attachment = { name: "a.txt", type: "text/plain", data: "YQ==" };
  validateEnvelope(report);
  validateEnvelope(reply);
  validateEnvelope({ ...reply, category: null, contact: null, reply_recipient: null, counsellors: [], attachments: [] });
  validateEnvelope({ ...report, text: "", attachments: [attachment] });
  validateEnvelope({ ...report, text: "😀".repeat(1_000_000) }); // counted in characters, not UTF-16 units

  const bad = {
    "v 2": { ...report, v: 2 },
    "unknown kind": { ...report, kind: "note" },
    "unknown field": { ...report, extra: 1 },
    "unknown attachment field": { ...report, attachments: [{ ...attachment, path: "/etc" }] },
    "text too long": { ...report, text: "x".repeat(1_000_001) },
    "category too long": { ...report, category: "x".repeat(201) },
    "contact too long": { ...report, contact: "x".repeat(2001) },
    "empty text without attachments": { ...report, text: "" },
    "blank text without attachments": { ...report, text: " \n\t" },
    "21 attachments": { ...report, attachments: Array(21).fill(attachment) },
    "bad base64": { ...report, attachments: [{ ...attachment, data: "YQ=" }] },
    "report without reply recipient": { ...report, reply_recipient: null },
    "reply recipient not X25519": { ...report, reply_recipient: "age1nope" },
    "report without counsellors": { ...report, counsellors: [] },
    "counsellor id with a path": { ...report, counsellors: ["../etc"] },
    "follow-up with counsellors": { v: 1, kind: "follow-up", text: "x", counsellors: ["vp-jansen"] },
    "follow-up with reply recipient": { v: 1, kind: "follow-up", text: "x", reply_recipient: recipient },
    "follow-up with author": { v: 1, kind: "follow-up", text: "x", author: reply.author },
    "reply without author": { ...reply, author: null },
    "lone surrogate": { ...report, text: "\ud800" },
    "array": [],
    "null": null,
  };
  for (const [reason, envelope] of Object.entries(bad)) {
    assert.throws(() => validateEnvelope(envelope), EnvelopeError, reason);
  }
});

test("plaintexts that are not UTF-8 JSON are refused as envelopes", () => {
  for (const raw of [new Uint8Array([0xff, 0xfe]), new TextEncoder().encode("[".repeat(100_000)), new Uint8Array()]) {
    assert.throws(() => parseEnvelope(raw), EnvelopeError);
  }
});
