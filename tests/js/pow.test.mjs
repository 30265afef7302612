// web/js/pow.js on a challenge made here (tests/browser/pow.test.mjs solves
// the server's own in Chromium, with and without the JIT).
import assert from "node:assert/strict";
import { test } from "node:test";
import { solve, solutionHeader } from "../../web/js/pow.js";
import { createHash } from "node:crypto";

test("solves a challenge made by hand", async () => {
  const salt = "abc?expires=1";
  const challenge = {
    algorithm: "SHA-256",
    challenge: createHash("sha256").update(`${salt}4242`).digest("hex"),
    maxnumber: 5000,
    salt,
    signature: "x",
  };
  assert.equal(await solve(challenge), 4242);
  const header = JSON.parse(atob(await solutionHeader(challenge)));
  assert.deepEqual(header, { algorithm: "SHA-256", challenge: challenge.challenge, number: 4242, salt, signature: "x" });
  assert.equal(await solve({ ...challenge, maxnumber: 4000 }), null, "none in range");
  await assert.rejects(solve({ ...challenge, algorithm: "MD5" }));
});
