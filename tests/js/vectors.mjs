// Reads the shared test vectors in tests/vectors/, written by the Rust side
// (src/format/) so that both implementations are pinned to the same bytes.
// A missing file is a failure, not a skip: without it nothing ties the
// JavaScript to the Rust.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// MELDKLUIS_VECTORS_DIR points elsewhere only to debug against a scratch set.
export const vectorsDir =
  process.env.MELDKLUIS_VECTORS_DIR ?? fileURLToPath(new URL("../vectors/", import.meta.url));

export function loadVectors(name) {
  const file = path.join(vectorsDir, name);
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new Error(`tests/vectors/${name} is missing (the Rust side generates it): ${error.message}`);
  }
  return JSON.parse(text);
}

export function hexToBytes(hex) {
  if (hex.length % 2 !== 0 || /[^0-9a-f]/i.test(hex)) throw new Error(`bad hex: ${hex}`);
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}
