// The server's inbox signature (docs/protocol.md §6) against the vector the
// Rust side writes (tests/vectors/inbox-signature.json): the browser's
// Ed25519 (the vendored bundle) verifies it, refuses a changed manifest,
// and the key's fingerprint reads as the laptop and check-config print it.

import assert from "node:assert/strict";
import test from "node:test";
import { ed25519, sha256 } from "../../web/vendor/age.js";
import { digitGroups } from "../../web/js/fingerprint.js";
import { hexToBytes, loadVectors } from "./vectors.mjs";

const vector = loadVectors("inbox-signature.json");
const utf8 = new TextEncoder();
const fromBase64 = (text) => Uint8Array.from(Buffer.from(text, "base64"));

test("manifest.sig: the server's key, then its signature over the label and the manifest", () => {
  const [key, signature, rest] = vector.manifest_sig.split("\n");
  assert.equal(rest, "", "two lines, each ending in a newline");
  assert.equal(key, vector.public_b64);
  assert.deepEqual(ed25519.getPublicKey(hexToBytes(vector.seed_hex)), fromBase64(key));
  const signed = (manifest) => utf8.encode(vector.label + manifest);
  assert.ok(ed25519.verify(fromBase64(signature), signed(vector.manifest), fromBase64(key)));
  const changed = vector.manifest.replace('"answers_counter":7', '"answers_counter":8');
  assert.notEqual(changed, vector.manifest);
  assert.equal(ed25519.verify(fromBase64(signature), signed(changed), fromBase64(key)), false);
  // Deterministic: the same seed signs the same bytes the same way.
  assert.deepEqual(ed25519.sign(signed(vector.manifest), hexToBytes(vector.seed_hex)), fromBase64(signature));
});

test("the server key's fingerprint: SHA-256 over its label and the key, six groups of five digits", () => {
  const digest = sha256(new Uint8Array([...utf8.encode("meldkluis-server-key-v1\n"), ...fromBase64(vector.public_b64)]));
  assert.equal(digitGroups(digest).join(" "), vector.fingerprint);
});
