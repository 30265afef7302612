// Writes age ciphertexts made by the vendored JavaScript age to the recipient
// of the vector identity in tests/vectors/age.json, for the Rust side to
// decrypt (the other direction of age.test.mjs).
//
//   node tests/js/make-js-ciphertexts.mjs OUT.json
//
// Output: {"from_js":[{"ciphertext_base64","plaintext_utf8"}]}. The committed
// copy is tests/vectors/age-from-js.json.

import { writeFileSync } from "node:fs";
import { Encrypter, identityToRecipient } from "../../web/vendor/age.js";
import { buildEnvelope, bytesToBase64, deriveKeys, encrypt } from "../../web/js/protocol.js";
import { loadVectors } from "./vectors.mjs";

const out = process.argv[2];
if (!out) {
  console.error("usage: node tests/js/make-js-ciphertexts.mjs OUT.json");
  process.exit(2);
}

const { identity } = loadVectors("age.json");
const recipient = await identityToRecipient(identity);

async function raw(plaintext) {
  const encrypter = new Encrypter();
  encrypter.addRecipient(recipient);
  return { ciphertext_base64: bytesToBase64(await encrypter.encrypt(plaintext)), plaintext_utf8: plaintext };
}

// A padded envelope exactly as the browser sends it (protocol.js encrypt()),
// to the vector recipient and the reply recipient of a fixed code.
async function envelope() {
  const keys = await deriveKeys("0000000000000000000000" + "00");
  const report = buildEnvelope({
    kind: "report",
    text: "Melding uit de browser: geld verdwijnt. ☃ 😀",
    category: "fraud-or-abuse-of-power",
    contact: "alleen voor de vertrouwenspersoon",
    replyRecipient: keys.replyRecipient,
    counsellors: ["vp-jansen"],
    attachments: [{ name: "notitie.txt", type: "text/plain", data: bytesToBase64(new TextEncoder().encode("bijlage\n")) }],
  });
  const sealed = await encrypt(report, [recipient, keys.replyRecipient]);
  const plaintext = new TextDecoder().decode(await decryptPadded(sealed));
  return { ciphertext_base64: bytesToBase64(sealed), plaintext_utf8: plaintext };
}

// The exact padded plaintext, so the Rust test can compare bytes.
async function decryptPadded(sealed) {
  const { Decrypter } = await import("../../web/vendor/age.js");
  const decrypter = new Decrypter();
  decrypter.addIdentity(identity);
  return decrypter.decrypt(sealed);
}

const from_js = [
  await raw(""),
  await raw("hello from JavaScript"),
  await raw("Één melding — ☃ 😀\n"),
  await raw("x".repeat(64 * 1024 + 1)), // crosses a STREAM chunk boundary
  await envelope(),
];
writeFileSync(out, JSON.stringify({ from_js }, null, 2) + "\n");
console.log(`wrote ${from_js.length} ciphertexts to ${out}`);
