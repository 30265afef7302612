// Writes age files made by the `age-encryption` npm package itself (0.3.1,
// web/node_modules, not our bundle) to the post-quantum hybrid recipient of
// tests/vectors/age-pq.json, for the Rust side (tests/pq_vectors.rs) to
// decrypt with src/format/pq.rs.
//
//   node tests/js/make-js-pq-ciphertexts.mjs tests/vectors/age-pq-from-js.json

import { readFileSync, writeFileSync } from "node:fs";
import { Encrypter, generateHybridIdentity, identityToRecipient } from "../../web/node_modules/age-encryption/dist/index.js";
import { buildEnvelope, bytesToBase64, padEnvelope } from "../../web/js/protocol.js";
import { loadVectors } from "./vectors.mjs";

const out = process.argv[2];
if (!out) {
  console.error("usage: node tests/js/make-js-pq-ciphertexts.mjs OUT.json");
  process.exit(2);
}
const pkg = JSON.parse(readFileSync(new URL("../../web/node_modules/age-encryption/package.json", import.meta.url)));
const { identity, recipient } = loadVectors("age-pq.json");
if ((await identityToRecipient(identity)) !== recipient) throw new Error("age-pq.json: identity and recipient disagree");

async function seal(plaintext, recipients, isMessage = false) {
  const encrypter = new Encrypter();
  for (const r of recipients) encrypter.addRecipient(r);
  const ciphertext = await encrypter.encrypt(plaintext);
  return { ciphertext_base64: bytesToBase64(ciphertext), plaintext_base64: bytesToBase64(plaintext), is_message: isMessage };
}

const text = (s) => new TextEncoder().encode(s);
const other = await identityToRecipient(await generateHybridIdentity());
const report = padEnvelope(
  buildEnvelope({
    kind: "follow-up",
    text: "Aanvulling uit de browser, post-kwantum versleuteld. ☃",
  }),
);
const from_js = [
  await seal(text(""), [recipient]),
  await seal(text("hallo uit JavaScript — ☃ 😀"), [recipient]),
  await seal(text("x".repeat(64 * 1024 + 1)), [recipient]), // crosses a STREAM chunk boundary
  await seal(report, [other, recipient], true), // a padded envelope to two hybrid recipients
];
writeFileSync(
  out,
  JSON.stringify({ made_by: `age-encryption ${pkg.version} (npm, in node ${process.version})`, identity, recipient, from_js }, null, 2) + "\n",
);
console.log(`wrote ${from_js.length} ciphertexts to ${out}`);
