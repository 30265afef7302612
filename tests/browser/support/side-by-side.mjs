// Puts screenshots of one state in several browsers next to each other, each
// under a label naming its browser, with ImageMagick's `convert` (Debian's
// imagemagick; tests/run-all.sh installs it). Used by engines.test.mjs.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);
const FONT = "DejaVu-Sans"; // fonts-dejavu-core, which Chromium and Firefox ESR pull in

/** Width and height of a picture, as ImageMagick reads it. */
export async function size(file) {
  const { stdout } = await run("identify", ["-format", "%w %h", file]);
  const [width, height] = stdout.trim().split(" ").map(Number);
  return { width, height };
}

/**
 * Writes `out`: the `columns` ({ label, file }) left to right, top-aligned,
 * each under its label and framed, on white. Resolves to the widths and
 * the combined picture's size, so a caller can check nothing was dropped.
 */
export async function sideBySide(out, columns) {
  assert.ok(columns.length >= 2, "side by side needs two pictures or more");
  const labelled = [];
  try {
    for (const [i, { label, file }] of columns.entries()) {
      const target = `${out}.${i}.miff`; // uncompressed: only the final picture is worth compressing
      // The label wraps within the picture's width (a phone-width shot is narrow).
      const { width } = await size(file);
      await run("convert", [
        "(", "-size", `${width}x68`, "-background", "white", "-fill", "#111111", "-font", FONT, "-pointsize", width < 600 ? "17" : "22",
        "-gravity", "center", `caption:${label}`, ")",
        file, "-append",
        "-bordercolor", "#888888", "-border", "1", "-bordercolor", "white", "-border", "12",
        target,
      ]);
      labelled.push(target);
    }
    await run("convert", ["-background", "white", "-gravity", "north", ...labelled, "+append", out]);
    const parts = await Promise.all(labelled.map(size));
    return { parts, whole: await size(out) };
  } finally {
    await Promise.all(labelled.map((file) => rm(file, { force: true })));
  }
}
