// Retrieval code (protocol.md §1) against tests/vectors/code.json, plus the
// exhaustive typo proof and hostile input the spec promises.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ALPHABET,
  CodeError,
  codeFromRandomBytes,
  formatCode,
  generateCode,
  parseCode,
} from "../../web/js/protocol.js";
import { hexToBytes, loadVectors } from "./vectors.mjs";

const vectors = loadVectors("code.json");

/** Runs parseCode and returns the CodeError it threw (fails on anything else). */
function refusal(input) {
  try {
    parseCode(input);
  } catch (error) {
    assert.ok(error instanceof CodeError, `expected a CodeError, got ${error}`);
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(input).slice(0, 80)}`);
}

test("vector codes are built, formatted and read back as the Rust side does", () => {
  assert.ok(vectors.valid.length > 0);
  for (const v of vectors.valid) {
    assert.equal(codeFromRandomBytes(hexToBytes(v.random_bytes_hex)), v.canonical);
    assert.equal(formatCode(v.canonical), v.display);
    assert.equal(parseCode(v.display), v.canonical);
    assert.equal(parseCode(v.canonical), v.canonical);
  }
});

test("typed vector codes are read forgivingly", () => {
  assert.ok(vectors.typed.length > 0);
  for (const v of vectors.typed) {
    assert.equal(parseCode(v.input), v.canonical, JSON.stringify(v.input));
  }
});

test("invalid vector codes are refused with the same error kind", () => {
  assert.ok(vectors.invalid.length > 0);
  for (const v of vectors.invalid) {
    assert.equal(refusal(v.input).code, v.error, JSON.stringify(v.input));
  }
});

test("every single substitution and neighbour swap of a vector code is caught", () => {
  for (const { canonical } of vectors.valid) {
    let tried = 0;
    for (let i = 0; i < canonical.length; i++) {
      for (const symbol of ALPHABET) {
        if (symbol === canonical[i]) continue;
        const typo = canonical.slice(0, i) + symbol + canonical.slice(i + 1);
        assert.equal(refusal(typo).code, "check_failed", typo);
        tried++;
      }
      if (i + 1 < canonical.length && canonical[i] !== canonical[i + 1]) {
        const swapped =
          canonical.slice(0, i) + canonical[i + 1] + canonical[i] + canonical.slice(i + 2);
        assert.equal(refusal(swapped).code, "check_failed", swapped);
        tried++;
      }
    }
    assert.ok(tried >= 24 * 31, "every position was tried");
  }
});

test("errors name the character, its position and the length", () => {
  const [{ display }] = vectors.valid;
  // Position counts code characters after removing separators, 1-based.
  const withU = "U" + display.slice(1);
  const error = refusal(withU);
  assert.equal(error.code, "invalid_character");
  assert.equal(error.character, "U");
  assert.equal(error.position, 1);

  const late = display.slice(0, 10) + "*" + display.slice(11); // 11th typed, 9th symbol
  const lateError = refusal(late);
  assert.deepEqual([lateError.character, lateError.position], ["*", 9]);

  const short = refusal(display.slice(0, -1)); // drops the last symbol
  assert.equal(short.code, "wrong_length");
  assert.equal(short.length, 23);
});

test("hostile input gets a CodeError of the right kind and nothing else", () => {
  const [{ canonical }] = vectors.valid;
  const cases = [
    ["", "wrong_length"],
    ["   \t\n-- - ", "wrong_length"],
    ["A".repeat(5_000_000), "wrong_length"],
    [canonical + "\u0000", "invalid_character"],
    ["\u0000" + canonical, "invalid_character"],
    ["ＡBCD", "invalid_character"], // fullwidth A
    ["ı" + canonical.slice(1), "invalid_character"], // dotless i upper-cases to I in Unicode
    ["ſ" + canonical.slice(1), "invalid_character"], // long s upper-cases to S in Unicode
    ["ß", "invalid_character"], // upper-cases to two letters in Unicode
    ["\u0410" + canonical.slice(1), "invalid_character"], // Cyrillic А
    ["\u2013" + canonical, "invalid_character"], // en dash is not a separator
    ["😀", "invalid_character"],
    ["\ud800", "invalid_character"], // lone surrogate
    ["U", "invalid_character"],
    ["<script>", "invalid_character"],
  ];
  for (const [input, kind] of cases) {
    assert.equal(refusal(input).code, kind, JSON.stringify(input.slice(0, 20)));
  }
  assert.equal(refusal("😀").character, "😀"); // one code point, one character
  assert.equal(refusal("A".repeat(5_000_000)).length, 5_000_000);
});

test("generated codes are valid, 24 symbols, and differ", () => {
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    const code = generateCode();
    assert.match(code, /^[0-9A-HJKMNP-TV-Z]{24}$/);
    assert.equal(parseCode(formatCode(code)), code);
    seen.add(code);
  }
  assert.equal(seen.size, 200);
});
