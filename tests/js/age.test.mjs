// age interoperability: the JS decrypts what the Rust `age` crate made
// (tests/vectors/age.json), and tests/vectors/age-from-js.json, made by
// make-js-ciphertexts.mjs with the vendored bundle, is for the Rust side to
// decrypt. Here we also check the shape of what we send: binary age v1 with
// X25519 stanzas only, as protocol.md §4 demands of the server.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { Decrypter, generateX25519Identity, identityToRecipient } from "../../web/vendor/age.js";
import {
  base64ToBytes,
  buildEnvelope,
  bytesToBase64,
  decrypt,
  deriveKeys,
  encrypt,
} from "../../web/js/protocol.js";
import { loadVectors, vectorsDir } from "./vectors.mjs";

const vectors = loadVectors("age.json");

test("ciphertexts from Rust decrypt to their plaintext", async () => {
  assert.ok(vectors.from_rust.length > 0);
  for (const v of vectors.from_rust) {
    const decrypter = new Decrypter();
    decrypter.addIdentity(vectors.identity);
    const plaintext = await decrypter.decrypt(base64ToBytes(v.ciphertext_base64), "text");
    assert.equal(plaintext, v.plaintext_utf8);
  }
});

test("Rust ciphertexts that hold envelopes open with decrypt()", async () => {
  let opened = 0;
  for (const v of vectors.from_rust) {
    let parsed;
    try {
      parsed = JSON.parse(v.plaintext_utf8);
    } catch {
      continue; // a plain text vector, not an envelope
    }
    if (parsed?.v !== 1) continue;
    assert.deepEqual(await decrypt(base64ToBytes(v.ciphertext_base64), vectors.identity), parsed);
    opened++;
  }
  // Only meaningful if the Rust side put envelopes in; say so when it did not.
  if (opened === 0) console.log("# note: age.json has no envelope plaintexts");
});

test("the committed JS ciphertexts are for the vector identity and decrypt", async () => {
  const file = path.join(vectorsDir, "age-from-js.json");
  assert.ok(existsSync(file), "run: node tests/js/make-js-ciphertexts.mjs tests/vectors/age-from-js.json");
  const { from_js } = JSON.parse(readFileSync(file, "utf8"));
  assert.ok(from_js.length > 0);
  for (const v of from_js) {
    const decrypter = new Decrypter();
    decrypter.addIdentity(vectors.identity);
    assert.equal(await decrypter.decrypt(base64ToBytes(v.ciphertext_base64), "text"), v.plaintext_utf8);
  }
});

/** Header lines of a binary age file, up to and including the MAC line. */
function headerLines(bytes) {
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, 4096));
  const lines = text.split("\n");
  return lines.slice(0, lines.findIndex((l) => l.startsWith("--- ")) + 1);
}

test("encrypt() writes binary age with one X25519 stanza per recipient, readable by each", async () => {
  const keys = await deriveKeys("0000000000000000000000" + "00");
  const counsellor = await generateX25519Identity();
  const envelope = buildEnvelope({
    kind: "report",
    text: "Er verdwijnt geld.",
    replyRecipient: keys.replyRecipient,
    counsellors: ["vp-jansen"],
  });
  const recipients = [await identityToRecipient(counsellor), keys.replyRecipient, keys.replyRecipient];
  const sealed = await encrypt(envelope, recipients);

  const lines = headerLines(sealed);
  assert.equal(lines[0], "age-encryption.org/v1");
  const stanzas = lines.filter((l) => l.startsWith("-> "));
  assert.equal(stanzas.length, 2, "duplicate recipients are dropped");
  for (const s of stanzas) assert.match(s, /^-> X25519 [A-Za-z0-9+/]{43}$/);
  assert.match(lines.at(-1), /^--- [A-Za-z0-9+/]{43}$/);

  // 4096-byte padded plaintext: one STREAM chunk of 4096 + 16 tag, 16-byte nonce.
  const headerLength = lines.join("\n").length + 1;
  assert.equal(sealed.length - headerLength, 16 + 4096 + 16);

  for (const identity of [counsellor, keys.replyIdentity]) {
    assert.deepEqual(await decrypt(sealed, identity), envelope);
  }
  const stranger = await generateX25519Identity();
  await assert.rejects(decrypt(sealed, stranger));
});

test("encrypt() refuses recipients the server would refuse", async () => {
  const envelope = buildEnvelope({ kind: "follow-up", text: "x" });
  await assert.rejects(encrypt(envelope, []), TypeError);
  await assert.rejects(encrypt(envelope, ["age1nope"]), TypeError);
});

test("API base64 round-trips and is strict", () => {
  const bytes = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7919) & 255);
  const text = bytesToBase64(bytes);
  assert.equal(text, Buffer.from(bytes).toString("base64"));
  assert.deepEqual(base64ToBytes(text), bytes);
  for (const bad of ["YQ", "YQ=", "Y Q==", "YR==", "YQ==\n", "-_8=", "😀"]) {
    assert.throws(() => base64ToBytes(bad), TypeError, bad);
  }
});
