// Prints the age identity in a vault's identity.age, which is encrypted with
// the passphrase (age's scrypt format), as `age -d identity.age` would:
//
//   node unlock-identity.mjs VAULT/identity.age PASSPHRASE-FILE

import { readFileSync } from "node:fs";
import { Decrypter } from "../../../web/vendor/age.js";

const [identityFile, passphraseFile] = process.argv.slice(2);
const decrypter = new Decrypter();
decrypter.addPassphrase(readFileSync(passphraseFile, "utf8").split("\n")[0]);
const text = await decrypter.decrypt(readFileSync(identityFile), "text");
// The current identity comes first: post-quantum (AGE-SECRET-KEY-PQ-1…) in a
// vault made or rotated since protocol v2 (draft), classical before.
const identity = text.split("\n").find((line) => /^AGE-SECRET-KEY-(PQ-)?1/.test(line));
if (!identity) throw new Error(`${identityFile} holds no age identity`);
process.stdout.write(`${identity}\n`);
