// Post-quantum hybrid age files (mlkem768x25519) across implementations:
// - tests/vectors/age-pq.json, made by the Rust module src/format/pq.rs, opens
//   with the vendored bundle (web/vendor/age.js, what the pages load) and with
//   the `age-encryption` npm package itself;
// - tests/vectors/age-pq-from-js.json, made by that npm package
//   (make-js-pq-ciphertexts.mjs), is for the Rust side; here we check it is
//   what it says it is;
// - the C2SP CCTV hybrid vectors (tests/vectors/cctv-age/) through the bundle.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { inflateSync } from "node:zlib";
import * as bundle from "../../web/vendor/age.js";
import * as npm from "../../web/node_modules/age-encryption/dist/index.js";
import { base64ToBytes } from "../../web/js/protocol.js";
import { loadVectors, vectorsDir } from "./vectors.mjs";

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

async function open(lib, identity, bytes) {
  const decrypter = new lib.Decrypter();
  decrypter.addIdentity(identity);
  return decrypter.decrypt(bytes);
}

test("hybrid files made in Rust open in JavaScript (bundle and npm package)", async () => {
  const v = loadVectors("age-pq.json");
  assert.equal(await bundle.identityToRecipient(v.identity), v.recipient);
  assert.ok(v.recipient.startsWith("age1pq1"));
  assert.equal(v.from_rust.length, 4);
  for (const c of v.from_rust) {
    const ct = base64ToBytes(c.ciphertext_base64);
    const header = new TextDecoder("latin1").decode(ct.subarray(0, 64));
    assert.ok(header.startsWith("age-encryption.org/v1\n-> mlkem768x25519 "), header);
    for (const lib of [bundle, npm]) {
      assert.deepEqual(await open(lib, v.identity, ct), base64ToBytes(c.plaintext_base64));
    }
    // Another hybrid identity finds nothing to open.
    await assert.rejects(open(bundle, await npm.generateHybridIdentity(), ct));
  }
});

test("hybrid files made by age-encryption 0.3.1 are for the vector identity", async () => {
  const v = loadVectors("age-pq-from-js.json");
  assert.match(v.made_by, /^age-encryption 0\.3\.1 /);
  assert.equal(v.identity, loadVectors("age-pq.json").identity);
  for (const c of v.from_js) {
    assert.deepEqual(await open(bundle, v.identity, base64ToBytes(c.ciphertext_base64)), base64ToBytes(c.plaintext_base64));
  }
});

test("the vendored bundle passes the C2SP CCTV hybrid vectors", async () => {
  const dir = path.join(vectorsDir, "cctv-age");
  const names = readdirSync(dir).filter((n) => n.startsWith("hybrid")).sort();
  assert.equal(names.length, 18);
  let successes = 0;
  let failures = 0;
  for (const name of names) {
    const raw = readFileSync(path.join(dir, name));
    const split = raw.indexOf("\n\n");
    const fields = raw.subarray(0, split).toString("utf8").split("\n").map((l) => l.split(": "));
    let file = raw.subarray(split + 2);
    const get = (k) => fields.filter(([key]) => key === k).map(([, value]) => value);
    if (get("compressed")[0] === "zlib") file = inflateSync(file);
    const decrypter = new bundle.Decrypter();
    for (const id of get("identity")) decrypter.addIdentity(id);
    const expect = get("expect")[0];
    if (expect === "success") {
      const plaintext = await decrypter.decrypt(new Uint8Array(file));
      assert.equal(sha256(plaintext), get("payload")[0], name);
      successes++;
    } else {
      await assert.rejects(decrypter.decrypt(new Uint8Array(file)), undefined, `${name}: ${expect}`);
      failures++;
    }
  }
  assert.ok(successes >= 4 && failures >= 10, `${successes} successes, ${failures} failures`);
});
