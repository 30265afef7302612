// Tor Browser's engine: Debian's Firefox ESR, driven over WebDriver BiDi by
// puppeteer-core, once with its defaults and once with Tor Browser "Safer"
// preferences (no JIT, no WebAssembly, resistFingerprinting). In each: the
// round trip (report with an attachment → courier page → reviewer → reply →
// my report opened with Enter → follow-up → courier → reviewer → closure →
// evaluation → reviewer), streamed attachments whose upload loses a chunk
// (retried unseen), then the line (the page says so, "Hervatten" resumes
// from where it stopped) and which the counsellor exports byte for byte, a
// keyboard journey, and axe-core (WCAG 2.2 AA and best practices) on every page in
// both languages, including /o/<org>/ and dark mode, and in every state the
// journeys pass. Screenshots land in tests/browser/out/firefox-<mode>-*.png;
// engines.test.mjs puts the main states of both engines side by side.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/firefox.test.mjs

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { parseCode } from "../../web/js/protocol.js";
import { assertClean, outDir } from "./support/browser.mjs";
import { AXE_TAGS, axe, focusState, overflow } from "./support/a11y.mjs";
import {
  MODES, SAFER_PREFS, checkByLabel, downloadFolder, launchFirefox, openFirefoxPage, waitForDownload, waitVisible,
} from "./support/firefox.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { ROUTES, ROUTE_WALKS, messages } from "./support/render.mjs";

const ORG = "mvz";
const MIB = 1024 * 1024;
const nl = messages("nl");
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
let work, counsellor, server;

before(async () => {
  work = await scratch("firefox");
  counsellor = await makeCounsellor(work, {
    id: "vp-vos", name: "Mr. F. Vos", organisation: "Ministerie van Voorbeeldzaken", org: ORG,
    description: "Externe vertrouwenspersoon, bereikbaar op werkdagen.",
  });
  server = await startServer(work);
});

after(async () => {
  await server?.stop();
  await work?.remove();
});

const shot = (page, name) => page.screenshot({ path: `${outDir}firefox-${name}.png`, fullPage: true });

/** Carries the counsellor's outbox through the real courier page in Firefox; imports the inbox. */
async function courier(page, downloads, name) {
  const outbox = path.join(work.dir, `${name}.tar`);
  await counsellor.review("outbox", outbox);
  await page.goto(`${server.url}/koerier`);
  const input = await page.$("#outbox");
  await input.uploadFile(outbox);
  await page.click("#sync");
  await waitVisible(page, "#result");
  assert.deepEqual(await axe(page), [], `axe, courier page after ${name}`);
  const inbox = await waitForDownload(downloads.dir, new RegExp(`^meldkluis-inbox-${counsellor.id}-\\d+\\.age$`));
  await counsellor.review("import", inbox);
  const { rm } = await import("node:fs/promises");
  await rm(inbox); // the next sync's inbox must be the only one
  return inbox;
}

for (const mode of MODES) {
  describe(`Firefox ESR, ${mode.name}`, () => {
    let browser, downloads;
    before(async () => {
      downloads = await downloadFolder(mode.name);
      browser = await launchFirefox({ prefs: mode.prefs, downloads: downloads.dir });
    });
    after(async () => {
      await browser?.close();
      await downloads?.remove();
    });

    test("the engine runs as set: JIT and WebAssembly as the mode says", async () => {
      const { page } = await openFirefoxPage(browser, server.url);
      await page.goto(`${server.url}/melden`);
      const wasm = await page.evaluate(() => typeof WebAssembly);
      assert.equal(wasm, mode.name === "safer" ? "undefined" : "object");
      await page.close();
    });

    test("report with attachment → courier → reply → my report → follow-up → closure → evaluation, each read by the counsellor", async () => {
      const { page, problems } = await openFirefoxPage(browser, server.url);
      const marker = `VOS${mode.name}${Date.now().toString(36)}`;
      const reportText = `Er verdwijnt geld uit de kas (${marker}-melding).`;
      const replyText = `Dank voor uw melding; wij zoeken dit uit (${marker}-antwoord).`;
      const followUpText = `Aanvulling: het gaat om maart (${marker}-aanvulling).`;
      const attachment = path.join(work.dir, `bijlage-${mode.name}.txt`);
      await writeFile(attachment, `Bijlage ${marker}\n`.repeat(2000));

      await page.goto(`${server.url}/melden`);
      await page.waitForSelector(`#counsellor-${counsellor.id}`);
      await checkByLabel(page, counsellor.name);
      await page.select("#category", "fraud-or-abuse-of-power");
      await page.type("#text", reportText);
      await (await page.$("#attachments")).uploadFile(attachment);
      await shot(page, `${mode.name}-report-filled`);
      // axe in every state the journey passes, not only on the empty pages (below).
      const found = [];
      const audit = async (state) => { for (const v of await axe(page)) found.push(`${state}: ${v}`); };
      await audit("report filled");
      await page.click("#submit");
      await waitVisible(page, "#done", 120_000);
      const code = (await page.$eval("#code", (e) => e.textContent)).trim();
      assert.equal(parseCode(code).length, 24);
      await shot(page, `${mode.name}-report-code`);
      await audit("code shown");

      await courier(page, downloads, `${mode.name}-1`);
      const list = await counsellor.review("list");
      const cases = list.split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l)).map((l) => l.slice(0, 8));
      let caseId;
      for (const id of cases) if ((await counsellor.review("show", id)).includes(reportText)) caseId = id;
      assert.ok(caseId, `the report is not among the cases:\n${list}`);
      const shown = await counsellor.review("show", caseId);
      assert.ok(shown.includes(`bijlage-${mode.name}.txt`), `attachment not listed:\n${shown}`);

      const replyFile = path.join(work.dir, `reply-${mode.name}.txt`);
      await writeFile(replyFile, `${replyText}\n`);
      await counsellor.review("reply", caseId, "--file", replyFile);
      await courier(page, downloads, `${mode.name}-2`);

      await page.goto(`${server.url}/en/my-report`);
      await page.type("#code", code.toLowerCase());
      await page.keyboard.press("Enter");
      await waitVisible(page, "#thread", 120_000);
      const items = await page.$$eval("#messages > li", (li) => li.map((e) => e.textContent));
      assert.equal(items.length, 2);
      assert.ok(items[0].includes(reportText));
      assert.ok(items[1].includes(replyText) && items[1].includes(counsellor.name), items[1]);
      // Dutch texts inside the English page carry their language (WCAG 3.1.2).
      const langs = await page.$$eval("#messages .message-text", (ps) => ps.map((p) => p.closest("[lang]")?.lang));
      assert.deepEqual(langs, ["nl", "nl"], "the melder's and the counsellor's Dutch texts are marked lang=nl");
      await shot(page, `${mode.name}-thread-reply`);
      await audit("thread with a reply (en page, nl messages)");

      await page.type("#followup-text", followUpText);
      await page.click("#followup-submit");
      await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 3, { timeout: 120_000 });
      await shot(page, `${mode.name}-thread-followup`);
      await audit("follow-up sent");
      await courier(page, downloads, `${mode.name}-3`);
      assert.ok((await counsellor.review("show", caseId)).includes(followUpText));

      // Closure, then the melder's evaluation.
      await counsellor.review("close", caseId);
      await courier(page, downloads, `${mode.name}-4`);
      const improve = `Sneller antwoorden graag (${marker}-evaluatie).`;
      await page.goto(`${server.url}/mijn-melding`);
      await page.type("#code", code);
      await page.keyboard.press("Enter");
      await waitVisible(page, "#evaluation", 120_000);
      await page.click("#evaluation-process-4");
      await page.click("#evaluation-heard-5");
      await page.type("#evaluation-text", improve);
      await shot(page, `${mode.name}-evaluation-filled`);
      await audit("evaluation filled");
      await page.click("#evaluation-submit");
      await waitVisible(page, "#evaluation-thanks", 120_000);
      await audit("evaluation sent");
      await courier(page, downloads, `${mode.name}-5`);
      assert.ok((await counsellor.review("show", caseId)).includes(improve), "the counsellor reads the evaluation");
      assert.deepEqual(found, [], `axe with ${AXE_TAGS.join(", ")} in the journey's states`);
      assertClean(problems);
      await page.close();
    });

    test("attachments: a chunk lost once is retried unseen; the line down, the page says so; Hervatten resumes; the counsellor exports the very bytes", async () => {
      const { page, problems } = await openFirefoxPage(browser, server.url);
      const marker = `BIJ${mode.name}${Date.now().toString(36)}`;
      const text = `Bestellijsten en notities (${marker}).`;
      // 9 MiB is three of the server's 4 MiB chunks: one lost once, one lost until the page gives up.
      const chosen = { [`lijsten-${mode.name}.bin`]: randomBytes(9 * MIB), [`notitie-${mode.name}.txt`]: Buffer.alloc(20 * 1024, `Notitie ${marker}\n`) };
      const paths = [];
      for (const [name, bytes] of Object.entries(chosen)) {
        paths.push(path.join(work.dir, name));
        await writeFile(paths.at(-1), bytes);
      }
      const { chunk_bytes: chunk } = await (await fetch(`${server.url}/api/v1/limits`)).json();
      assert.equal(chunk, 4 * MIB, "the file sizes above assume 4 MiB chunks");

      // The chunk requests pass a switch, through WebDriver BiDi's network
      // interception: "once" loses the chunk at 4 MiB a single time, "down"
      // loses every chunk from 8 MiB on, "pass" lets all through.
      let line = "once";
      let lost = 0;
      const offsets = [];
      const intercept = (request) => {
        if (request.isInterceptResolutionHandled()) return;
        if (new URL(request.url()).pathname === "/api/v1/uploads/chunk") {
          const offset = Number(request.headers()["upload-offset"]);
          offsets.push(offset);
          if ((line === "once" && offset === chunk) || (line === "down" && offset >= 2 * chunk)) {
            if (line === "once") line = "down";
            lost += 1;
            request.abort("connectionreset");
            return;
          }
        }
        request.continue();
      };
      await page.setRequestInterception(true);
      page.on("request", intercept);

      await page.goto(`${server.url}/melden`);
      await page.waitForSelector(`#counsellor-${counsellor.id}`);
      await page.click(`#counsellor-${counsellor.id}`);
      await page.type("#text", text);
      await (await page.$("#attachments")).uploadFile(...paths);
      await page.click("#submit");
      await waitVisible(page, "#upload-resume", 120_000);
      assert.equal(await page.$eval("#status", (e) => e.textContent), nl.upload_interrupted);
      assert.equal(await page.evaluate(() => document.activeElement.id), "upload-resume", "focus on Hervatten");
      assert.equal(lost, 4, "the single loss, then the first try and two retries");
      assert.equal(await page.$eval("#text", (e) => e.value), text, "the text stays");
      const shown = await page.$eval("#upload-files li span", (e) => e.textContent);
      assert.match(shown, new RegExp(`^lijsten-${mode.name}\\.bin: ([1-9]\\d*) % versleuteld en verstuurd$`), "how far it got stays in sight");
      assert.deepEqual(await axe(page), [], "axe, upload interrupted");
      await shot(page, `${mode.name}-upload-interrupted`);

      line = "pass";
      const before = offsets.length;
      await page.keyboard.press("Enter"); // on Hervatten
      await waitVisible(page, "#done", 120_000);
      assert.equal(offsets[before], 2 * chunk, "resumed from the chunk that did not arrive, not from the start");
      assert.ok(offsets.every((o) => o % chunk === 0), `whole chunks only: ${offsets}`);
      assert.ok(await page.$eval("#upload-resume", (e) => e.hidden), "Hervatten is gone");
      const code = (await page.$eval("#code", (e) => e.textContent)).trim();
      assert.equal(parseCode(code).length, 24);
      page.off("request", intercept);
      await page.setRequestInterception(false);

      // The thread names both files; the counsellor fetches, imports and exports them.
      await page.goto(`${server.url}/mijn-melding`);
      await page.type("#code", code);
      await page.keyboard.press("Enter");
      await waitVisible(page, "#thread", 120_000);
      const listed = await page.$$eval("#messages > li:first-child .file-list li", (li) => li.map((e) => e.textContent));
      assert.deepEqual(listed, [`lijsten-${mode.name}.bin (9 MiB)`, `notitie-${mode.name}.txt (20 KiB)`]);

      await courier(page, downloads, `${mode.name}-attachments`);
      let caseId;
      for (const line of (await counsellor.review("list")).split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l))) {
        if ((await counsellor.review("show", line.slice(0, 8))).includes(marker)) caseId = line.slice(0, 8);
      }
      assert.ok(caseId, "the report reached the counsellor");
      const exportDir = path.join(work.dir, `export-${mode.name}`);
      await counsellor.review("export", caseId, "--to", exportDir);
      const exported = await readdir(exportDir);
      assert.equal(exported.length, 2, exported.join(", "));
      for (const [name, bytes] of Object.entries(chosen)) {
        const file = exported.find((f) => f.endsWith(name));
        assert.ok(file, `${name} among ${exported.join(", ")}`);
        assert.equal(sha256(await readFile(path.join(exportDir, file))), sha256(bytes), `${name}: the very bytes`);
      }
      assertClean(problems);
      await page.close();
    });

    test("keyboard alone: skip link, choose, write, send with Enter, open the report with the code, follow up, close; focus always shows", async () => {
      const { page, problems } = await openFirefoxPage(browser, server.url, { width: 1280, height: 800 });
      const unseen = [];
      const here = async () => {
        const state = await focusState(page);
        if (!state.visible || !state.inViewport) unseen.push(`${state.element} (${state.outline})`);
        return state;
      };
      const tabTo = async (selector, max = 40) => {
        for (let i = 0; i < max; i += 1) {
          await page.keyboard.press("Tab");
          await here();
          if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
        }
        assert.fail(`Tab never reached ${selector}`);
      };
      await page.goto(`${server.url}/melden`);
      await page.waitForSelector(`#counsellor-${counsellor.id}`);
      await tabTo(".skip-link");
      await page.keyboard.press("Enter");
      await tabTo(`#counsellor-${counsellor.id}`);
      await page.keyboard.press(" "); // WebDriver BiDi names Space by its character
      assert.ok(await page.$eval(`#counsellor-${counsellor.id}`, (e) => e.checked));
      await tabTo("#text");
      await page.keyboard.type("Melding met alleen het toetsenbord.");
      await tabTo("#submit");
      await page.keyboard.press("Enter");
      await waitVisible(page, "#done", 120_000);
      assert.equal((await focusState(page)).id, "done-heading", "focus moves to the code's heading");
      await tabTo("#copy-code");
      await shot(page, `${mode.name}-keyboard-code`);
      const code = (await page.$eval("#code", (e) => e.textContent)).trim();
      await tabTo("#to-thread");
      await page.keyboard.press("Enter");
      await page.waitForFunction(() => location.pathname === "/mijn-melding", { timeout: 30_000 });
      await tabTo("#code");
      await page.keyboard.type(code);
      await page.keyboard.press("Enter");
      await waitVisible(page, "#thread", 120_000);
      assert.equal(await page.evaluate(() => document.activeElement?.id), "thread-heading", "focus on the thread's heading");
      await tabTo("#followup-text");
      await page.keyboard.type("Het gaat om maart.");
      await tabTo("#followup-submit");
      await page.keyboard.press("Enter");
      await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 2, { timeout: 120_000 });
      assert.equal(await page.$eval("#followup-status", (e) => e.textContent), nl.followup_sent);
      assert.equal(await page.evaluate(() => document.activeElement?.id), "followup-submit", "focus stays where the melder was");
      await here();
      await tabTo("#close-thread");
      await page.keyboard.press(" ");
      await page.waitForFunction(() => document.querySelector("#thread").hidden, { timeout: 10_000 });
      assert.equal(await page.evaluate(() => document.activeElement?.id), "code");
      assert.equal(await page.$eval("#code", (e) => e.value), "");
      assert.deepEqual(unseen, [], "focus must always show and stay on screen");
      assertClean(problems);
      await page.close();
    });

    test("axe (WCAG 2.2 AA, best practices): every page, both languages, /o/<org>/, no sideways scrolling at 320 px", async () => {
      const { page, problems } = await openFirefoxPage(browser, server.url);
      const found = [];
      const paths = Object.values(ROUTES).flatMap((pages) => Object.values(pages));
      for (const p of [...paths, ...paths.map((p) => `/o/${ORG}${p}`)]) {
        await page.setViewport({ width: 1100, height: 900 });
        await page.goto(`${server.url}${p}`);
        await page.waitForFunction(() => !document.querySelector(".muted")?.textContent.includes("…"), { timeout: 10_000 })
          .catch(() => {});
        for (const v of await axe(page)) found.push(`${p}: ${v}`);
        await page.setViewport({ width: 320, height: 640 });
        const wider = await overflow(page);
        if (wider > 0) found.push(`${p}: ${wider} px sideways scrolling at 320 px`);
      }
      // The report form with every error shown, the thread with a wrong code.
      await page.setViewport({ width: 1100, height: 900 });
      await page.goto(`${server.url}/en/report`);
      await page.waitForSelector(`#counsellor-${counsellor.id}`);
      await page.click("#submit");
      await waitVisible(page, "#error-summary");
      for (const v of await axe(page)) found.push(`report errors: ${v}`);
      await shot(page, `${mode.name}-report-errors`);
      assert.deepEqual(found, [], `axe with ${AXE_TAGS.join(", ")}`);
      assertClean(problems);
      await page.close();
    });
  });
}

test("Firefox ESR in dark mode: axe finds nothing on any page, both languages, also under /o/<org>/", async () => {
  const browser = await launchFirefox({ dark: true });
  try {
    const { page, problems } = await openFirefoxPage(browser, server.url);
    const found = [];
    for (const lang of ["nl", "en"]) {
      for (const [name, prefix] of Object.keys(ROUTES[lang]).flatMap((n) => [[n, ""], [n, `/o/${ORG}`]])) {
        await page.goto(`${server.url}${prefix}${ROUTES[lang][name]}`);
        if (name === "report") {
          await page.waitForSelector(`#counsellor-${counsellor.id}`);
          await page.click(`#counsellor-${counsellor.id}`);
        }
        assert.equal(await page.evaluate(() => matchMedia("(prefers-color-scheme: dark)").matches), true);
        for (const v of await axe(page)) found.push(`${lang} ${name}: ${v}`);
        if (lang === "nl" && !prefix) await shot(page, `dark-${name}`);
      }
    }
    assert.deepEqual(found, []);
    assertClean(problems);
    // The texts the tests compare with exist, so a renamed key fails here first.
    assert.ok(messages("nl").report_submit && messages("en").report_submit);
  } finally {
    await browser.close();
  }
});

/**
 * Presses Tab until the focused element's text starts with `text` (its focus
 * must show), then Enter, and waits for the next page: the keyboard's way.
 */
async function tabTo(page, text) {
  for (let presses = 0; presses < 60; presses += 1) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => (document.activeElement?.textContent ?? "").trim());
    if (focused.startsWith(text)) {
      const state = await focusState(page);
      assert.ok(state.visible, `focus not visible on ${state.element}`);
      const from = await page.evaluate(() => location.pathname);
      await page.keyboard.press("Enter");
      await page.waitForFunction((before) => location.pathname !== before && document.readyState === "complete",
        { timeout: 30_000 }, from);
      return;
    }
  }
  throw new Error(`no link "${text}" reached by Tab on ${page.url()}`);
}

test("the route finder by keyboard alone in Firefox ESR at \"Safer\": every route, both languages", async () => {
  const browser = await launchFirefox({ prefs: SAFER_PREFS });
  try {
    const { page, problems } = await openFirefoxPage(browser, server.url);
    for (const lang of ["nl", "en"]) {
      const t = messages(lang);
      await page.goto(`${server.url}${ROUTES[lang].index}`);
      await tabTo(page, t.index_cta_route);
      assert.equal(new URL(page.url()).pathname, ROUTES[lang].route);
      for (const { route, answers } of ROUTE_WALKS) {
        await page.goto(`${server.url}${ROUTES[lang].route}`);
        for (const answer of answers) await tabTo(page, t[answer]);
        assert.equal(new URL(page.url()).pathname, ROUTES[lang][route], `${lang} ${answers.join(" → ")}`);
        const key = route.slice("route-".length);
        assert.equal((await page.$eval("h1", (h) => h.textContent)).trim(), t[`route_${key}_heading`]);
        const body = await page.$eval("main", (m) => m.textContent);
        assert.ok(body.includes(t[`route_${key}_anonymity`]), `${route}: anonymity`);
        assert.ok(body.includes(t[`route_${key}_deadlines`]), `${route}: deadlines`);
        if (lang === "nl") await shot(page, `safer-${route}`);
      }
    }
    assertClean(problems);
  } finally {
    await browser.close();
  }
});
