// The report form's card fingerprints (protocol.md §10.1), against the real
// server and the real binaries: the page computes each counsellor's
// fingerprint itself, and it equals what the Rust side prints for the same
// card file (`meldkluis fingerprint-sheet`, the sheet the organisation
// publishes). When the operator swaps a card's age_recipient in keys/ (the
// key substitution of issue 13, keeping the signing key) and reloads the
// server, the form shows a different fingerprint — the one Rust computes for
// the swapped card, not the published one. At 320 px no group of five
// digits is split over two lines, nothing scrolls sideways, and axe finds
// nothing, light and dark, Dutch and English.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/fingerprint.test.mjs

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { SERVER_BIN, makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { assertClean, launch, openPage, outDir, shot } from "./support/browser.mjs";
import { axe, overflow } from "./support/a11y.mjs";

const run = promisify(execFile);

let work;
let server;
let browser;

/** The fingerprints Rust prints for the cards in `keys`, by id (`fingerprint-sheet`). */
async function rustFingerprints(keys) {
  const { stdout } = await run(SERVER_BIN, ["fingerprint-sheet", "--keys", keys, "--out", path.join(work.dir, "sheet.html")]);
  const found = {};
  for (const line of stdout.split("\n")) {
    const match = /^\S+\s+(vp-[a-z0-9-]+)\s+(\d{5}(?: \d{5}){5})$/.exec(line.trim());
    if (match) found[match[1]] = match[2];
  }
  return found;
}

/** The fingerprint the form shows for counsellor `id`, once the list has loaded. */
async function shownFingerprint(page, id) {
  const node = page.locator(`#counsellor-${id}-fingerprint .fingerprint`);
  await node.waitFor();
  return (await node.textContent()).trim();
}

before(async () => {
  work = await scratch("fingerprint");
  await makeCounsellor(work, {
    id: "vp-jansen", name: "Mr. A. Jansen", organisation: "Ministerie van Voorbeeldzaken", org: "bzk",
    description: "Externe vertrouwenspersoon, bereikbaar op werkdagen.",
  });
  await makeCounsellor(work, { id: "vp-de-vries", name: "Drs. B. de Vries", organisation: "Ministerie van Voorbeeldzaken", org: "bzk", kind: "internal" });
  [server, browser] = await Promise.all([startServer(work), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

test("the form shows the Rust fingerprint; a swapped age_recipient shows another", async () => {
  const published = await rustFingerprints(work.keys);
  assert.deepEqual(Object.keys(published).sort(), ["vp-de-vries", "vp-jansen"]);
  const sheet = await readFile(path.join(work.dir, "sheet.html"), "utf8");
  assert.ok(sheet.includes(published["vp-jansen"].split(" ").map((g) => `<span>${g}</span>`).join(" ")));

  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/o/bzk/melden`);
  for (const id of ["vp-jansen", "vp-de-vries"]) assert.equal(await shownFingerprint(page, id), published[id], id);
  // The checkbox's description carries it, so a screen reader hears it with the name.
  const described = await page.locator("#counsellor-vp-jansen").getAttribute("aria-describedby");
  assert.ok(described.split(" ").includes("counsellor-vp-jansen-fingerprint"), described);
  assert.match(await page.locator("#counsellor-vp-jansen-fingerprint").textContent(), /^Vingerafdruk: \d{5}( \d{5}){5}$/);
  // The explanation and how to compare, Dutch first.
  assert.match(await page.locator("#fingerprint-hint").textContent(), /zes groepen van vijf cijfers/);
  await page.locator(".fingerprint-help summary").click();
  assert.match(await page.locator(".fingerprint-help p").textContent(), /intranet/);

  // The operator's swap: vp-jansen's card keeps its signing key (syncs
  // still work) but gets the operator's recipient; the server reloads.
  const other = await scratch("fingerprint-operator");
  try {
    const operator = await makeCounsellor(other, { id: "vp-jansen", name: "Operator", organisation: "Operator", classical: true });
    const operatorCard = JSON.parse(await readFile(path.join(other.keys, "vp-jansen.json"), "utf8"));
    const cardFile = path.join(work.keys, "vp-jansen.json");
    const card = JSON.parse(await readFile(cardFile, "utf8"));
    assert.notEqual(card.age_recipient, operatorCard.age_recipient, operator.id);
    card.age_recipient = operatorCard.age_recipient;
    await writeFile(cardFile, `${JSON.stringify(card, null, 2)}\n`);
  } finally {
    await other.remove();
  }
  server.process.kill("SIGHUP");
  const swapped = await rustFingerprints(work.keys);
  assert.notEqual(swapped["vp-jansen"], published["vp-jansen"]);
  assert.equal(swapped["vp-de-vries"], published["vp-de-vries"]);
  let shown;
  for (let i = 0; i < 50; i++) {
    await page.reload();
    shown = await shownFingerprint(page, "vp-jansen");
    if (shown !== published["vp-jansen"]) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(shown, swapped["vp-jansen"], "the page's own fingerprint of the swapped card");
  assert.notEqual(shown, published["vp-jansen"], "differs from the published sheet");
  assert.equal(await shownFingerprint(page, "vp-de-vries"), published["vp-de-vries"]);
  await shot(page, "fingerprint-swapped");
  assertClean(problems);
  await context.close();
});

test("at 320 px no group is split, nothing scrolls sideways, and axe is clean", async () => {
  for (const [lang, route] of [["nl", "/o/bzk/melden"], ["en", "/o/bzk/en/report"]]) {
    for (const colorScheme of ["light", "dark"]) {
      const { context, page, problems } = await openPage(browser, server.url, { colorScheme, width: 320, height: 640 });
      await page.goto(`${server.url}${route}`);
      await shownFingerprint(page, "vp-jansen");
      await page.locator(".fingerprint-help summary").click();
      assert.equal(await overflow(page), 0, `${lang} ${colorScheme}: sideways scroll`);
      const groups = await page.evaluate(() => [...document.querySelectorAll(".fingerprint-group")].map((g) => ({
        text: g.textContent,
        lines: g.getClientRects().length,
      })));
      assert.equal(groups.length, 12);
      for (const group of groups) {
        assert.match(group.text, /^\d{5}$/);
        assert.equal(group.lines, 1, `${lang}: group ${group.text} split over lines`);
      }
      // At 320 px the six groups take two lines or more: they wrap between groups.
      const lines = await page.evaluate(() => {
        const tops = [...document.querySelectorAll("#counsellor-vp-jansen-fingerprint .fingerprint-group")]
          .map((g) => Math.round(g.getBoundingClientRect().top));
        return new Set(tops).size;
      });
      assert.ok(lines >= 2, `six groups on ${lines} line(s) at 320 px`);
      assert.deepEqual(await axe(page), [], `${lang} ${colorScheme}`);
      if (lang === "en") assert.match(await page.locator("#counsellor-vp-jansen-fingerprint").textContent(), /^Fingerprint: /);
      await shot(page, `fingerprint-320-${lang}-${colorScheme}`);
      await page.locator("#counsellors").screenshot({ path: `${outDir}fingerprint-320-${lang}-${colorScheme}-counsellors.png` });
      assertClean(problems);
      await context.close();
    }
  }
});
