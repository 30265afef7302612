// The melder's main states in both engines, side by side (issue 18): the same
// journey, with the same texts and files, in Chromium (playwright-core), in
// Firefox ESR with its defaults and in Firefox ESR with Tor Browser "Safer"
// preferences (puppeteer-core over WebDriver BiDi), each state photographed
// at the same size; then one picture per state with Chromium left and
// Firefox ESR right, each column labelled with its browser and version:
//   tests/browser/out/engines/<state>.png   (single shots in .../single/)
// The journey: landing page → report form with its errors → filled form →
// upload interrupted (the line down, through each engine's request
// interception) → resumed → code (desktop and phone width) → the courier page
// → thread with the counsellor's reply → follow-up sent → closure and the
// evaluation form → the report form in dark mode. A few committed copies
// live in docs/screenshots/engines/ (docs/wcag-em-sample.md shows them).
//
// Needs the debug binaries and ImageMagick: `cargo build --bins`, then
//   node --test tests/browser/engines.test.mjs

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { parseCode } from "../../web/js/protocol.js";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import {
  SAFER_PREFS, downloadFolder, launchFirefox, openFirefoxPage, waitForDownload, waitVisible,
} from "./support/firefox.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { messages } from "./support/render.mjs";
import { sideBySide } from "./support/side-by-side.mjs";

const nl = messages("nl");
const MIB = 1024 * 1024;
const WIDTH = 1000;
const HEIGHT = 800;
const PHONE = { width: 360, height: 740 };
const engineDir = path.join(outDir, "engines");
const singleDir = path.join(engineDir, "single");

/** The states photographed, in journey order; each becomes out/engines/<state>.png. */
const STATES = [
  "landing", "report-errors", "report-filled", "upload-interrupted", "report-code", "report-code-phone",
  "courier-done", "thread-reply", "thread-followup", "evaluation", "report-dark",
];

const TEXT = "Sinds maart verdwijnen bestellingen uit de administratie van de afdeling inkoop.";
const REPLY = "Dank voor uw melding. Wij nemen haar in behandeling en laten binnen twee weken meer weten.";
const FOLLOW_UP = "Aanvulling: het gaat om de bestellingen van maart tot en met juni.";
const EVALUATION = "Duidelijk en snel; ik wist steeds waar ik stond.";

let work, counsellor, server, files;
const shots = {}; // engine key → { state → file }
const labels = {}; // engine key → column label
const notes = {}; // engine key → { state → what the label adds for that state }
const knownCases = new Set();

before(async () => {
  work = await scratch("engines");
  counsellor = await makeCounsellor(work, {
    id: "vp-zij", name: "Mr. Z. Zijlstra", organisation: "Ministerie van Voorbeeldzaken",
    description: "Externe vertrouwenspersoon, bereikbaar op werkdagen.",
  });
  server = await startServer(work);
  files = [path.join(work.dir, "bestellijsten.bin"), path.join(work.dir, "aantekeningen.txt")];
  await writeFile(files[0], randomBytes(5 * MIB)); // two 4 MiB chunks: the second one is lost
  await writeFile(files[1], Buffer.alloc(12 * 1024, "Aantekening bij de bestellijsten.\n"));
  await rm(engineDir, { recursive: true, force: true });
  await mkdir(singleDir, { recursive: true });
});

after(async () => {
  await server?.stop();
  await work?.remove();
});

/** The newest case the counsellor has not seen before (after an import). */
async function newCase() {
  const ids = (await counsellor.review("list")).split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l)).map((l) => l.slice(0, 8));
  const fresh = ids.filter((id) => !knownCases.has(id));
  assert.equal(fresh.length, 1, `one new case, not ${fresh.length}`);
  knownCases.add(fresh[0]);
  return fresh[0];
}

/**
 * Each engine behind the same few operations. `start()` resolves to
 * { label, tab, darkTab, stop }; a tab is { page, problems, viewport, fill,
 * select, upload, visible, waitFor, lineDown(on), courier(outbox) → inbox,
 * isDark(), close }.
 */
const ENGINES = [
  {
    key: "chromium",
    async start() {
      const browser = await launch();
      const make = async (colorScheme) => {
        const { context, page, problems } = await openPage(browser, server.url, { colorScheme, width: WIDTH, height: HEIGHT });
        let down = false;
        await page.route("**/api/v1/uploads/chunk", (route) =>
          (down && Number(route.request().headers()["upload-offset"]) >= 4 * MIB ? route.abort("connectionreset") : route.continue()));
        return {
          page, problems,
          viewport: (width, height) => page.setViewportSize({ width, height }),
          fill: (selector, text) => page.fill(selector, text),
          select: (selector, value) => page.selectOption(selector, value),
          upload: (selector, ...paths) => page.setInputFiles(selector, paths),
          visible: (selector, timeout = 60_000) => page.locator(selector).waitFor({ state: "visible", timeout }),
          waitFor: (fn, timeout = 60_000) => page.waitForFunction(fn, null, { timeout, polling: 100 }),
          lineDown: (on) => { down = on; },
          async courier(outbox, inbox) {
            await page.setInputFiles("#outbox", outbox);
            const [download] = await Promise.all([page.waitForEvent("download"), page.click("#sync")]);
            await download.saveAs(inbox);
            return inbox;
          },
          isDark: () => page.evaluate(() => matchMedia("(prefers-color-scheme: dark)").matches),
          close: () => context.close(),
        };
      };
      return { label: `Chromium ${browser.version().split(".")[0]}`, tab: () => make("light"), darkTab: () => make("dark"), stop: () => browser.close() };
    },
  },
  ...[["firefox-defaults", "defaults", {}], ["firefox-safer", "“Safer”", SAFER_PREFS]].map(([key, mode, prefs]) => ({
    key,
    async start() {
      const downloads = await downloadFolder(key);
      const browser = await launchFirefox({ prefs, downloads: downloads.dir });
      let dark;
      const make = async (from) => {
        const { page, problems } = await openFirefoxPage(from, server.url, { width: WIDTH, height: HEIGHT });
        let down = false;
        await page.setRequestInterception(true);
        page.on("request", (request) => {
          if (request.isInterceptResolutionHandled()) return;
          const chunk = new URL(request.url()).pathname === "/api/v1/uploads/chunk";
          if (chunk && down && Number(request.headers()["upload-offset"]) >= 4 * MIB) request.abort("connectionreset");
          else request.continue();
        });
        return {
          page, problems,
          viewport: (width, height) => page.setViewport({ width, height }),
          async fill(selector, text) {
            await page.$eval(selector, (e) => { e.value = ""; });
            await page.type(selector, text);
          },
          select: (selector, value) => page.select(selector, value),
          upload: async (selector, ...paths) => (await page.$(selector)).uploadFile(...paths),
          visible: (selector, timeout = 60_000) => waitVisible(page, selector, timeout),
          waitFor: (fn, timeout = 60_000) => page.waitForFunction(fn, { timeout, polling: 100 }),
          lineDown: (on) => { down = on; },
          async courier(outbox) {
            await (await page.$("#outbox")).uploadFile(outbox);
            await page.click("#sync");
            return waitForDownload(downloads.dir, new RegExp(`^meldkluis-inbox-${counsellor.id}-\\d+\\.age$`));
          },
          isDark: () => page.evaluate(() => matchMedia("(prefers-color-scheme: dark)").matches),
          close: () => page.close(),
        };
      };
      const version = (await browser.version()).replace(/^firefox\//i, "").split(".")[0];
      return {
        label: `Firefox ESR ${version}, ${mode}`,
        tab: () => make(browser),
        async darkTab() {
          dark ??= await launchFirefox({ prefs, dark: true });
          return make(dark);
        },
        async stop() {
          await browser.close();
          await dark?.close();
          await downloads.remove();
        },
      };
    },
  })),
];

for (const engine of ENGINES) {
  test(`${engine.key}: the melder's main states, photographed`, async () => {
    const started = Date.now();
    const run = await engine.start();
    labels[engine.key] = run.label;
    shots[engine.key] = {};
    notes[engine.key] = {};
    const shot = async (tab, state) => {
      const file = path.join(singleDir, `${state}-${engine.key}.png`);
      await tab.page.screenshot({ path: file, fullPage: true });
      shots[engine.key][state] = file;
    };
    try {
      const tab = await run.tab();
      await tab.page.goto(`${server.url}/`);
      await shot(tab, "landing");

      await tab.page.goto(`${server.url}/melden`);
      await tab.page.waitForSelector(`#counsellor-${counsellor.id}`);
      await tab.page.click("#submit");
      await tab.visible("#error-summary");
      await shot(tab, "report-errors");

      await tab.page.click(`#counsellor-${counsellor.id}`);
      await tab.select("#category", "fraud-or-abuse-of-power");
      await tab.fill("#text", TEXT);
      await tab.upload("#attachments", ...files);
      await tab.waitFor(() => document.querySelectorAll("#attachment-list li").length === 2);
      await tab.page.evaluate(() => document.activeElement?.blur());
      await shot(tab, "report-filled");

      tab.lineDown(true);
      await tab.page.click("#submit");
      await tab.visible("#upload-resume", 120_000);
      assert.equal(await tab.page.evaluate(() => document.querySelector("#status").textContent), nl.upload_interrupted);
      await shot(tab, "upload-interrupted");
      tab.lineDown(false);
      await tab.page.click("#upload-resume");
      await tab.visible("#done", 120_000);
      const code = await tab.page.evaluate(() => document.querySelector("#code").textContent.trim());
      assert.equal(parseCode(code).length, 24);
      await shot(tab, "report-code");
      await tab.viewport(PHONE.width, PHONE.height);
      await shot(tab, "report-code-phone");
      await tab.viewport(WIDTH, HEIGHT);

      // The counsellor's sync through the courier page, then a reply.
      const outbox = path.join(work.dir, `${engine.key}-1.tar`);
      await counsellor.review("outbox", outbox);
      await tab.page.goto(`${server.url}/koerier`);
      const inbox = await tab.courier(outbox, path.join(work.dir, `${engine.key}-1.age`));
      await tab.visible("#result");
      await shot(tab, "courier-done");
      await counsellor.review("import", inbox);
      await rm(inbox);
      const caseId = await newCase();
      assert.ok((await counsellor.review("show", caseId)).includes(TEXT));
      const replyFile = path.join(work.dir, "reply.txt");
      await writeFile(replyFile, `${REPLY}\n`);
      await counsellor.review("reply", caseId, "--file", replyFile);
      await counsellor.sync(server.url, `${engine.key}-2`);

      await tab.page.goto(`${server.url}/mijn-melding`);
      await tab.fill("#code", code);
      await tab.page.keyboard.press("Enter");
      await tab.waitFor(() => document.querySelectorAll("#messages > li").length === 2, 120_000);
      await shot(tab, "thread-reply");

      await tab.fill("#followup-text", FOLLOW_UP);
      await tab.page.click("#followup-submit");
      await tab.waitFor(() => document.querySelectorAll("#messages > li").length === 3, 120_000);
      await shot(tab, "thread-followup");

      await counsellor.review("close", caseId);
      await counsellor.sync(server.url, `${engine.key}-3`);
      await tab.page.goto(`${server.url}/mijn-melding`);
      await tab.fill("#code", code);
      await tab.page.keyboard.press("Enter");
      await tab.visible("#evaluation", 120_000);
      await tab.page.click("#evaluation-process-4");
      await tab.page.click("#evaluation-heard-5");
      await tab.fill("#evaluation-text", EVALUATION);
      await tab.page.evaluate(() => document.activeElement?.blur());
      await tab.page.evaluate(() => document.querySelector("#evaluation").scrollIntoView());
      await shot(tab, "evaluation");
      // Chromium logs each chunk request the test cut off; Firefox logs none.
      assertClean(tab.problems.filter((p) => !/ERR_CONNECTION_RESET at .*\/api\/v1\/uploads\/chunk$/.test(p)));
      await tab.close();

      const darkTab = await run.darkTab();
      await darkTab.page.goto(`${server.url}/melden`);
      await darkTab.page.waitForSelector(`#counsellor-${counsellor.id}`);
      await darkTab.page.click(`#counsellor-${counsellor.id}`);
      const dark = await darkTab.isDark();
      // resistFingerprinting (Tor Browser, "Safer") always answers "light".
      assert.equal(dark, engine.key !== "firefox-safer", "prefers-color-scheme as the engine reports it");
      if (!dark) notes[engine.key]["report-dark"] = " (resistFingerprinting: always light)";
      await shot(darkTab, "report-dark");
      assertClean(darkTab.problems);
      await darkTab.close();
    } finally {
      await run.stop();
    }
    console.log(`# ${run.label}: ${Object.keys(shots[engine.key]).length} states in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  });
}

test("side by side: every state, Chromium left and Firefox ESR right, each under its label", async () => {
  const keys = ENGINES.map((e) => e.key);
  for (const key of keys) assert.ok(shots[key], `${key} took no screenshots (its journey failed above)`);
  for (const state of STATES) {
    const columns = keys.map((key) => {
      assert.ok(shots[key][state], `${key}: no screenshot of ${state}`);
      return { label: `${labels[key]}${notes[key][state] ?? ""}`, file: shots[key][state] };
    });
    const out = path.join(engineDir, `${state}.png`);
    const { parts, whole } = await sideBySide(out, columns);
    assert.equal(whole.width, parts.reduce((sum, p) => sum + p.width, 0), `${state}: every column is in the picture`);
    assert.equal(whole.height, Math.max(...parts.map((p) => p.height)), `${state}: the tallest column sets the height`);
  }
  console.log(`# ${STATES.length} side-by-side pictures in ${engineDir}`);
});
