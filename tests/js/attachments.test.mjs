// Streamed attachments (protocol.md §3a) in web/js/protocol.js: Padmé with
// the spec's worked examples and against an exact BigInt reference, the
// padding stream (exact lengths, zeros, refusal of a file that changed, and
// reading no further ahead than asked), and the encrypted stream: its
// declared length, its head and what it decrypts to.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Decrypter, generateX25519Identity, identityToRecipient, sha256 } from "../../web/vendor/age.js";
import {
  AttachmentReadError,
  EnvelopeError,
  MIN_ATTACHMENT_PLAINTEXT,
  attachmentPaddedLength,
  buildEnvelope,
  bytesToHex,
  encryptAttachment,
  padAttachment,
  padme,
  validateEnvelope,
} from "../../web/js/protocol.js";

const MIB = 1024 * 1024;

/** Padmé as the paper states it, in BigInt: no floating point anywhere. */
function padmeReference(length) {
  const l = BigInt(length);
  if (l < 2n) return length;
  const e = BigInt(l.toString(2).length - 1);
  const s = BigInt(e.toString(2).length);
  const mask = (1n << (e - s)) - 1n;
  return Number((l + mask) & ~mask);
}

test("padme: the worked examples of protocol.md §3a", () => {
  assert.equal(padme(5000), 5120);
  assert.equal(padme(209_715_200), 209_715_200);
  assert.equal(padme(209_715_201), 213_909_504);
  assert.equal(attachmentPaddedLength(0), 4096);
  assert.equal(attachmentPaddedLength(1), 4096);
  assert.equal(attachmentPaddedLength(5000), 5120);
  assert.equal(MIN_ATTACHMENT_PLAINTEXT, 4096);
});

test("padme: small lengths, powers of two and their neighbours, up to 2^53 − 1", () => {
  for (let l = 0; l < 70_000; l++) assert.equal(padme(l), padmeReference(l), `${l}`);
  for (let bits = 1; bits <= 53; bits++) {
    for (const delta of [-3, -2, -1, 0, 1, 2, 3]) {
      const l = 2 ** bits + delta;
      if (l < 0 || l > Number.MAX_SAFE_INTEGER) continue;
      assert.equal(padme(l), padmeReference(l), `2^${bits}${delta >= 0 ? "+" : ""}${delta}`);
    }
  }
  assert.equal(padme(Number.MAX_SAFE_INTEGER), 2 ** 53);
  assert.throws(() => padme(2 ** 53), RangeError);
  assert.throws(() => padme(-1), RangeError);
  assert.throws(() => padme(1.5), RangeError);
  assert.throws(() => padme("5000"), RangeError);
});

test("padme: random lengths of every magnitude match the reference; the overhead stays under 12 %", () => {
  let seed = 0x9e3779b9;
  const random = () => { // xorshift32: the same lengths every run
    seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
    return seed / 2 ** 32;
  };
  for (let i = 0; i < 20_000; i++) {
    const l = Math.floor(2 ** (random() * 53));
    const padded = padme(l);
    assert.equal(padded, padmeReference(l), `${l}`);
    assert.ok(padded >= l, `${l}`);
    if (padded <= Number.MAX_SAFE_INTEGER) assert.equal(padme(padded), padded, `${l}: a bucket is its own padding`);
    if (l >= 4096) assert.ok(padded - l <= 0.12 * l, `${l} → ${padded}`);
  }
});

/**
 * A source of `size` bytes (byte i is i mod 251) in chunks of `chunk`,
 * produced only when read; `pulled()` says how many bytes it has given.
 */
function countingSource(size, chunk = 65_536) {
  let given = 0;
  const stream = new ReadableStream({
    pull(controller) {
      if (given >= size) {
        controller.close();
        return;
      }
      const n = Math.min(chunk, size - given);
      controller.enqueue(Uint8Array.from({ length: n }, (_, i) => (given + i) % 251));
      given += n;
    },
  }, { highWaterMark: 0 });
  return { stream, pulled: () => given };
}

async function readAllBytes(stream) {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

test("the padding stream: the file, then zeros up to exactly padme(max(size, 4096))", async () => {
  for (const size of [0, 1, 4095, 4096, 4097, 5000, 65_536, 65_537, 300_001]) {
    const source = countingSource(size, 7_777);
    const padded = await readAllBytes(padAttachment(() => source.stream, size));
    assert.equal(padded.length, attachmentPaddedLength(size), `${size}`);
    for (let i = 0; i < size; i++) if (padded[i] !== i % 251) assert.fail(`${size}: byte ${i}`);
    assert.ok(padded.subarray(size).every((b) => b === 0), `${size}: zeros after the file`);
  }
});

test("the padding stream refuses a file longer or shorter than its size", async () => {
  await assert.rejects(readAllBytes(padAttachment(() => countingSource(5000).stream, 4999)), AttachmentReadError);
  await assert.rejects(readAllBytes(padAttachment(() => countingSource(4998).stream, 4999)), AttachmentReadError);
  await assert.rejects(readAllBytes(padAttachment(() => countingSource(1).stream, 0)), AttachmentReadError);
});

test("the padding stream opens the file only when first read", async () => {
  let opened = 0;
  const stream = padAttachment(() => { opened++; return countingSource(10).stream; }, 10);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(opened, 0);
  const reader = stream.getReader();
  await reader.read();
  assert.equal(opened, 1);
  await reader.cancel();
});

test("pad + encrypt read the file only as far as the ciphertext is read, zero tail included", async () => {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  // 8 MiB + 1: its Padmé bucket adds 128 KiB − 1 of zeros (protocol.md §3a).
  const size = 8 * MIB + 1;
  const source = countingSource(size);
  const { ciphertext, length } = await encryptAttachment(() => source.stream, size, [recipient]);
  const reader = ciphertext.getReader();
  let read = 0;
  let maxAhead = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    read += value.length;
    // Let every stream in the pipe fill its queues before measuring.
    await new Promise((resolve) => setTimeout(resolve, 0));
    maxAhead = Math.max(maxAhead, source.pulled() - read);
  }
  assert.equal(read, length);
  assert.equal(source.pulled(), size);
  // A few 64 KiB blocks in the pipe's queues, not the file.
  assert.ok(maxAhead <= 4 * 65_536, `read ahead ${maxAhead} bytes`);
});

test("an encrypted attachment: exact declared length, its head, and it decrypts to the padded file", async () => {
  const identities = await Promise.all([generateX25519Identity(), generateX25519Identity()]);
  const recipients = await Promise.all(identities.map(identityToRecipient));
  for (const size of [0, 5000, 65_536 * 3, 1_000_003]) {
    const { ciphertext, length, headLength } = await encryptAttachment(() => countingSource(size, 4_000).stream, size,
      [...recipients, recipients[0]]);
    const bytes = await readAllBytes(ciphertext);
    assert.equal(bytes.length, length, `${size}: the length POST /uploads declares`);
    // The head: the header through its MAC line, then the 16-byte nonce.
    const text = new TextDecoder("latin1").decode(bytes.subarray(0, headLength));
    const macEnd = text.indexOf("\n", text.indexOf("\n--- ") + 1) + 1;
    assert.ok(text.startsWith("age-encryption.org/v1\n"));
    assert.equal(headLength, macEnd + 16, `${size}: head is header + nonce`);
    assert.equal((text.match(/^-> X25519 /gm) ?? []).length, 2, "duplicates dropped");
    assert.equal(bytesToHex(sha256(bytes.subarray(0, headLength))).length, 64);
    for (const identity of identities) {
      const decrypter = new Decrypter();
      decrypter.addIdentity(identity);
      const plain = await decrypter.decrypt(bytes);
      assert.equal(plain.length, attachmentPaddedLength(size));
      for (let i = 0; i < size; i++) if (plain[i] !== i % 251) assert.fail(`${size}: byte ${i}`);
      assert.ok(plain.subarray(size).every((b) => b === 0));
    }
  }
});

test("encryptAttachment refuses other recipient types, as the server would", async () => {
  await assert.rejects(encryptAttachment(() => countingSource(1).stream, 1, []), TypeError);
  await assert.rejects(encryptAttachment(() => countingSource(1).stream, 1, ["ssh-ed25519 AAAA"]), TypeError);
});

test("envelopes: the streamed attachment form and its refusals", async () => {
  const recipient = await identityToRecipient(await generateX25519Identity());
  const streamed = { name: "scan.pdf", type: "application/pdf", size: 48_213, upload: "a".repeat(32), head_sha256: "0f".repeat(32) };
  const inline = { name: "notitie.txt", type: "text/plain", data: "aGFsbG8=" };
  const report = (attachments) => ({ v: 1, kind: "report", text: "", reply_recipient: recipient, counsellors: ["vp-jansen"], attachments });
  validateEnvelope(report([streamed, inline]));
  validateEnvelope(report([{ ...streamed, size: 0 }, { ...streamed, upload: "b".repeat(32), size: Number.MAX_SAFE_INTEGER }]));
  const built = buildEnvelope({ kind: "follow-up", text: "", attachments: [streamed] });
  assert.deepEqual(Object.keys(built.attachments[0]), ["name", "type", "size", "upload", "head_sha256"]);
  const refused = [
    [{ ...streamed, size: -1 }, "negative size"],
    [{ ...streamed, size: 2 ** 53 }, "size beyond 2^53 − 1"],
    [{ ...streamed, size: 1.5 }, "fractional size"],
    [{ ...streamed, size: "5" }, "size as a string"],
    [{ ...streamed, upload: "A".repeat(32) }, "upper-case upload id"],
    [{ ...streamed, upload: "a".repeat(31) }, "short upload id"],
    [{ ...streamed, head_sha256: "0F".repeat(32) }, "upper-case hash"],
    [{ ...streamed, head_sha256: undefined }, "no hash"],
    [{ name: "x", type: "y", size: 1, upload: "a".repeat(32) }, "hash missing"],
    [{ ...streamed, data: "aGFsbG8=" }, "both forms"],
    [{ ...streamed, extra: 1 }, "unknown field"],
  ];
  for (const [attachment, why] of refused) {
    assert.throws(() => validateEnvelope(report([attachment])), EnvelopeError, why);
  }
  assert.throws(() => validateEnvelope(report([streamed, { ...streamed, name: "again" }])), EnvelopeError, "one upload twice");
});
