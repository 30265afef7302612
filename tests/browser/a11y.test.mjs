// Every page in every state, in Dutch and English, light and dark: axe-core
// finds no violation (WCAG 2.1 A and AA, and axe's best practices), nothing
// scrolls sideways at 320 px or at 200 % zoom, and screenshots at phone
// (360 px) and desktop (1280 px) width land in tests/browser/out/a11y-*.png.
// The states come from a real journey against the real server: a report
// (empty, errors, progress, a lost answer, the code and its printout), the
// courier page carrying the counsellor's real outbox (idle, errors, progress,
// done), the reviewer's reply, and the thread (code error, progress, replies,
// follow-up error, lost answer, sent). Without JavaScript every page says why
// and hides what needs the script.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/a11y.test.mjs

import assert from "node:assert/strict";
import { readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { parseCode } from "../../web/js/protocol.js";
import { PAGES, ROUTES, messages } from "./support/render.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import { AXE_TAGS, axe, focusState, overflow } from "./support/a11y.mjs";

const TEXTS = { nl: messages("nl"), en: messages("en") };
const LOCALES = { nl: "nl-NL", en: "en-GB" };
const SAMPLE = {
  nl: {
    report: "Op de afdeling Inkoop worden opdrachten steeds aan hetzelfde bedrijf gegeven, zonder offertes van anderen.\n\nDit speelt sinds maart. Ik heb het gezien in de bestellijsten.",
    reply: "Dank voor uw melding. Ik heb haar ontvangen en neem haar in behandeling.\n\nKunt u aangeven om welke bestellingen het ongeveer gaat?",
    followUp: "Het gaat om de bestellingen van maart tot en met juni.",
  },
  en: {
    report: "In the Procurement department, contracts keep going to the same company without quotes from others.\n\nThis has been going on since March. I saw it in the order lists.",
    reply: "Thank you for your report. I have received it and will look into it.\n\nCould you say roughly which orders are involved?",
    followUp: "It concerns the orders from March to June.",
  },
};

let work;
let server;
let browser;
let jansen; // the counsellor who answers
const summary = { axeRuns: 0, states: [] };
const casesSeen = new Set(); // the counsellor's cases so far, to find the new one

before(async () => {
  // Pictures from an earlier run would pass for this run's.
  for (const file of await readdir(outDir)) if (file.startsWith("a11y-")) await rm(`${outDir}${file}`);
  work = await scratch("a11y");
  // Two cards, so the form shows both kinds (internal, external).
  [jansen] = await Promise.all([
    makeCounsellor(work, {
      id: "vp-jansen", name: "Mr. A. Jansen", organisation: "Ministerie van Voorbeeldzaken", kind: "external",
      description: "Externe vertrouwenspersoon, bereikbaar op werkdagen.",
    }),
    makeCounsellor(work, { id: "vp-de-vries", name: "Drs. B. de Vries", organisation: "Ministerie van Voorbeeldzaken", kind: "internal" }),
  ]);
  [server, browser] = await Promise.all([
    startServer(work, ["--security-contact", "mailto:security@example.org"]),
    launch(),
  ]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
  const states = summary.states.length;
  console.log(`# axe-core (${AXE_TAGS.join(", ")}): ${summary.axeRuns} runs on ${states} page states ` +
    `(${new Set(summary.states.map((s) => s.split(" ")[1])).size} per language × 2 languages, each light and dark)`);
});

/**
 * Checks the page as it is now, under `name`: axe in light and in dark, the
 * width at 320 px and at 640 px (a 1280 px window at 200 % zoom), and
 * screenshots at 1280 and 360 px (and, with `dark`, 360 px dark). Problems
 * are collected, so one run reports all of them; `assertNone()` fails the
 * test at its end.
 */
function checker(page, lang) {
  const problems = [];
  return {
    async check(name, { dark = false } = {}) {
      const label = `${lang} ${name}`;
      const file = `${outDir}a11y-${lang}-${name}`;
      summary.states.push(label);
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.emulateMedia({ colorScheme: "light" });
      for (const v of await axe(page)) problems.push(`${label} (light): ${v}`);
      await page.screenshot({ path: `${file}-1280.png`, fullPage: true });
      await page.setViewportSize({ width: 360, height: 780 });
      await page.screenshot({ path: `${file}-360.png`, fullPage: true });
      await page.emulateMedia({ colorScheme: "dark" });
      for (const v of await axe(page)) problems.push(`${label} (dark): ${v}`);
      if (dark) await page.screenshot({ path: `${file}-360-dark.png`, fullPage: true });
      await page.emulateMedia({ colorScheme: "light" });
      summary.axeRuns += 2;
      for (const [width, height, what] of [[320, 640, "320 px wide"], [640, 450, "200 % zoom"]]) {
        await page.setViewportSize({ width, height });
        const extra = await overflow(page);
        if (extra > 0) problems.push(`${label}: ${extra} px too wide at ${what}`);
      }
      await page.setViewportSize({ width: 1280, height: 900 });
    },
    assertNone() {
      assert.deepEqual(problems, []);
    },
  };
}

/** A route handler that holds one request until `release()`, then lets `then` answer it. */
function hold(then = (route) => route.continue()) {
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  return { release, handler: async (route) => { await released; await then(route); } };
}

const focusedId = (page) => page.evaluate(() => document.activeElement?.id ?? "");
const caseIds = (list) => new Set(list.split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l)).map((l) => l.slice(0, 8)));

test("axe, the width check and the focus check can fail", async () => {
  const { context, page } = await openPage(browser, server.url);
  await page.goto(`${server.url}/`);
  await page.evaluate(() => {
    const main = document.querySelector("main");
    const input = document.createElement("input"); // no label
    const faint = document.createElement("p"); // too little contrast
    faint.textContent = "faint";
    faint.style.color = "#ccc";
    const wide = document.createElement("div");
    wide.style.width = "2000px";
    wide.style.height = "1px";
    main.append(input, faint, wide);
    input.style.outline = "none";
    input.style.boxShadow = "none";
    input.focus();
  });
  const found = (await axe(page)).map((v) => v.split(" ")[0]);
  assert.ok(found.includes("label"), found.join());
  assert.ok(found.includes("color-contrast"), found.join());
  assert.ok((await overflow(page)) > 0);
  assert.equal((await focusState(page)).visible, false);
  await context.close();
});

for (const lang of ["nl", "en"]) {
  const t = TEXTS[lang];
  const routes = ROUTES[lang];

  test(`${lang}: every page and state passes axe, light and dark, at every width`, async () => {
    const { context, page, problems } = await openPage(browser, server.url, { locale: LOCALES[lang], width: 1280 });
    const states = checker(page, lang);
    // The counsellor's sync request, made ahead: the reviewer takes seconds.
    const outbox = path.join(work.dir, `a11y-${lang}-outbox.tar`);
    const outboxMade = jansen.review("outbox", outbox);
    outboxMade.catch(() => {}); // awaited at the courier

    // ---------------------------------------------------- pages without a form
    for (const name of ["index", "privacy", "accessibility", "noscript"]) {
      await page.goto(`${server.url}${routes[name]}`);
      assert.equal(await page.getAttribute("html", "lang"), lang);
      const other = lang === "nl" ? "en" : "nl";
      assert.equal(await page.getAttribute(".lang-switch", "href"), ROUTES[other][name]);
      await states.check(name, { dark: true });
    }
    // The privacy statement's link to security.txt leads somewhere.
    const securityTxt = await page.request.get(`${server.url}/.well-known/security.txt`);
    assert.match(await securityTxt.text(), /^Contact: mailto:security@example\.org$/m);

    // ------------------------------------------------------------- the report
    await page.goto(`${server.url}${routes.report}`);
    await page.getByLabel("Mr. A. Jansen").waitFor();
    await states.check("report-empty");

    await page.click("#submit");
    await page.locator("#error-summary").waitFor({ state: "visible" });
    assert.equal(await focusedId(page), "error-summary", "focus moves to the error summary");
    assert.deepEqual(await page.locator("#error-summary li").allTextContents(),
      [t.report_error_counsellors, t.report_error_text]);
    assert.equal(await page.getAttribute("#text", "aria-invalid"), "true");
    assert.match(await page.getAttribute("#text", "aria-describedby"), /\btext-error\b/);
    assert.equal(await page.getAttribute("#counsellors", "aria-invalid"), "true");
    assert.match(await page.getAttribute("#counsellors", "aria-describedby"), /\bcounsellors-error\b/);
    await states.check("report-errors", { dark: true });
    await page.click('#error-summary a[href="#text"]');
    assert.equal(await focusedId(page), "text", "a summary link takes focus to its field");
    await page.click('#error-summary a[href="#counsellors"]');
    assert.equal(await focusedId(page), "counsellor-vp-de-vries", "…the first choice for the counsellors");

    await page.getByLabel("Mr. A. Jansen").check();
    await page.selectOption("#category", "misuse-of-resources");
    await page.fill("#text", SAMPLE[lang].report);
    assert.ok(await page.locator("#error-summary").isHidden(), "the summary goes once all is fixed");
    assert.equal(await page.getAttribute("#text", "aria-invalid"), null);

    // The first answer is held (the progress shows), then lost: a proxy says 502.
    const lost = hold((route) => route.fulfill({ status: 502, contentType: "text/html", body: "<h1>502 Bad Gateway</h1>" }));
    await page.route("**/api/v1/reports", lost.handler, { times: 1 });
    await page.click("#submit");
    await page.waitForFunction((text) => document.querySelector("#status").textContent === text, t.report_status_sending);
    assert.ok(await page.locator("#progress").isVisible());
    assert.equal(await page.getAttribute("#submit", "aria-disabled"), "true");
    await states.check("report-progress");
    lost.release();
    await page.locator("#retry").waitFor({ state: "visible" });
    assert.equal(await focusedId(page), "retry");
    assert.equal(await page.inputValue("#text"), SAMPLE[lang].report, "the text is kept");
    await states.check("report-retry");

    await page.click("#retry");
    await page.locator("#done").waitFor({ state: "visible" });
    const display = (await page.textContent("#code")).trim();
    assert.equal(parseCode(display).length, 24);
    assert.equal(await page.title(), `${t.site_name} — ${t.done_heading}`);
    assert.equal(await focusedId(page), "done-heading");
    await states.check("report-done", { dark: true });

    // Printed: the code, its warning and where to use it; no navigation or buttons.
    await page.emulateMedia({ media: "print" });
    for (const shown of ["#code", ".warning", "#thread-url", ".brand"]) assert.ok(await page.locator(shown).isVisible(), shown);
    for (const gone of [".site-nav", ".site-footer", "#copy-code", "#report-intro", "main > h1", ".lang-switch"]) {
      assert.ok(await page.locator(gone).isHidden(), gone);
    }
    assert.equal(await page.textContent("#thread-url"), `${server.url}${routes.thread}`);
    await page.screenshot({ path: `${outDir}a11y-${lang}-report-done-print.png`, fullPage: true });
    await page.emulateMedia({ media: "screen" });

    // --------------------------------------------- the courier, for real
    await page.goto(`${server.url}${routes.courier}`);
    await states.check("courier-idle");
    await page.click("#sync");
    await page.locator("#outbox-error").waitFor({ state: "visible" });
    assert.equal(await page.textContent("#outbox-error"), t.courier_error_no_file);
    assert.equal(await focusedId(page), "outbox");
    assert.equal(await page.getAttribute("#outbox", "aria-invalid"), "true");
    await states.check("courier-no-file");
    await page.setInputFiles("#outbox", { name: "outbox.tar", mimeType: "application/x-tar", buffer: Buffer.from("not an outbox") });
    await page.click("#sync");
    await page.waitForFunction(() => document.querySelector("#status").dataset.kind === "error");
    assert.equal(await page.textContent("#status"), t.error_bad_bundle);
    await states.check("courier-error");

    await outboxMade;
    await page.setInputFiles("#outbox", outbox);
    const slow = hold();
    await page.route("**/api/v1/courier/sync", slow.handler, { times: 1 });
    await page.click("#sync");
    await page.locator("#progress").waitFor({ state: "visible" });
    await states.check("courier-progress");
    const downloading = page.waitForEvent("download");
    slow.release();
    const download = await downloading;
    const inbox = path.join(work.dir, download.suggestedFilename());
    await download.saveAs(inbox);
    // The counsellor answers on the laptop (in the background: the reviewer's
    // passphrase takes seconds each time) while the melder goes on.
    const answered = (async () => {
      await jansen.review("import", inbox);
      const fresh = [...caseIds(await jansen.review("list"))].filter((id) => !casesSeen.has(id));
      assert.equal(fresh.length, 1, "the courier brought this report");
      casesSeen.add(fresh[0]);
      const replyFile = path.join(work.dir, `a11y-${lang}-reply.txt`);
      await writeFile(replyFile, SAMPLE[lang].reply);
      await jansen.review("reply", fresh[0], "--file", replyFile);
      await jansen.sync(server.url, `a11y-${lang}-reply-outbox`);
    })();
    answered.catch(() => {}); // awaited below
    await page.locator("#result").waitFor({ state: "visible" });
    await states.check("courier-done", { dark: true });

    // -------------------------------------------------------------- my report
    await page.goto(`${server.url}${routes.thread}`);
    await states.check("thread-empty");
    const canonical = parseCode(display);
    const swapped = canonical[0] === canonical[1] ? canonical.slice(0, 23) + (canonical[23] === "0" ? "1" : "0")
      : canonical[1] + canonical[0] + canonical.slice(2);
    await page.fill("#code", swapped);
    await page.click("#open");
    await page.locator("#code-error").waitFor({ state: "visible" });
    assert.equal(await page.textContent("#code-error"), t.code_error_check_failed);
    assert.equal(await focusedId(page), "code");
    assert.equal(await page.getAttribute("#code", "aria-invalid"), "true");
    await states.check("thread-code-error");

    await answered;
    const opening = hold();
    await page.route("**/api/v1/thread", opening.handler, { times: 1 });
    await page.fill("#code", display.toLowerCase().replaceAll("-", " "));
    await page.click("#open");
    await page.locator("#progress").waitFor({ state: "visible" });
    // Busy without a known end: a moving stripe, standing still for reduced motion.
    const animation = () => page.evaluate(() => getComputedStyle(document.querySelector("#progress")).animationName);
    assert.equal(await animation(), "busy");
    await page.emulateMedia({ reducedMotion: "reduce" });
    assert.equal(await animation(), "none");
    const moving = await page.evaluate(() => [...document.querySelectorAll("*")]
      .filter((e) => { const s = getComputedStyle(e); return s.animationName !== "none" || parseFloat(s.transitionDuration) > 0; })
      .map((e) => e.tagName));
    assert.deepEqual(moving, [], "nothing moves with reduced motion");
    await states.check("thread-progress");
    await page.emulateMedia({ reducedMotion: "no-preference" });
    opening.release();
    await page.locator("#thread").waitFor({ state: "visible" });
    assert.equal(await page.locator("#messages > li").count(), 2);
    assert.ok((await page.textContent("#messages")).includes(SAMPLE[lang].reply.split("\n")[0]));
    await states.check("thread-open", { dark: true });

    await page.click("#followup-submit");
    await page.locator("#followup-text-error").waitFor({ state: "visible" });
    assert.equal(await focusedId(page), "followup-text");
    assert.equal(await page.getAttribute("#followup-text", "aria-invalid"), "true");
    await states.check("thread-followup-error");

    await page.fill("#followup-text", SAMPLE[lang].followUp);
    const leaving = () => page.evaluate(() => {
      const event = new Event("beforeunload", { cancelable: true });
      window.dispatchEvent(event);
      return event.defaultPrevented;
    });
    assert.equal(await leaving(), true, "leaving with an unsent follow-up asks first");
    await page.route("**/api/v1/thread/messages",
      (route) => route.fulfill({ status: 502, contentType: "text/html", body: "<h1>502 Bad Gateway</h1>" }), { times: 1 });
    await page.focus("#followup-submit");
    await page.keyboard.press("Enter");
    await page.locator("#followup-retry").waitFor({ state: "visible" });
    assert.equal(await focusedId(page), "followup-retry", "focus moves from the hidden button to the retry");
    assert.equal(await page.inputValue("#followup-text"), SAMPLE[lang].followUp, "the text is kept");
    assert.equal(await page.textContent("#followup-status"), t.report_error_uncertain);
    await states.check("thread-followup-retry");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 3);
    assert.equal(await page.textContent("#followup-status"), t.followup_sent);
    assert.equal(await leaving(), false, "nothing unsent, no question");
    assert.equal(await focusedId(page), "followup-submit", "focus stays on the form's button");
    await states.check("thread-followup-sent");

    states.assertNone();
    assertClean(problems, [
      /status of 502 .*\/api\/v1\/reports$/,
      /status of 400 .*\/api\/v1\/courier\/sync$/,
      /status of 502 .*\/api\/v1\/thread\/messages$/,
    ]);
    await context.close();
  });
}

test("without JavaScript every page says why, links the explanation and hides what needs the script", async () => {
  const findings = [];
  const noJs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 360, height: 780 } });
  const nojsPage = await noJs.newPage();
  const { context, page, problems } = await openPage(browser, server.url, { width: 360, height: 780 });
  for (const lang of ["nl", "en"]) {
    for (const name of PAGES) {
      const url = `${server.url}${ROUTES[lang][name]}`;
      const answer = await nojsPage.goto(url);
      const band = nojsPage.locator(".noscript-band");
      assert.ok(await band.isVisible(), `${lang} ${name}: the notice shows`);
      assert.equal(await band.locator("a").getAttribute("href"), ROUTES[lang].noscript);
      assert.equal(await band.locator("strong").textContent(), TEXTS[lang].noscript);
      for (const form of ["#report-form", "#code-form", "#courier-form"]) {
        assert.ok(await nojsPage.locator(form).isHidden(), `${lang} ${name}: ${form} hidden`);
      }
      // axe needs a script, so it checks the same DOM served back to a page
      // that runs scripts: <noscript> unwrapped, the page's own scripts and
      // what needs them removed, under the server's own CSP.
      const html = (await nojsPage.content())
        .replace(/<script\b[^>]*><\/script>/g, "")
        .replace(/<noscript>/g, "<div>").replace(/<\/noscript>/g, "</div>")
        .replace(/(<[a-z]+\b[^>]*\bclass="[^"]*\bneeds-js\b[^"]*")/g, "$1 hidden");
      // (Taken before the screenshots, which leave style="" on text fields.)
      // The notice is the same everywhere: pictures of three pages show it.
      if (["index", "report", "noscript"].includes(name)) {
        await nojsPage.screenshot({ path: `${outDir}a11y-${lang}-nojs-${name}-360.png`, fullPage: true });
      }
      if (name === "noscript") {
        await nojsPage.setViewportSize({ width: 1280, height: 900 });
        await nojsPage.screenshot({ path: `${outDir}a11y-${lang}-nojs-${name}-1280.png`, fullPage: true });
        await nojsPage.setViewportSize({ width: 360, height: 780 });
      }
      const csp = answer.headers()["content-security-policy"];
      await page.route(url, (route) => route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", headers: { "content-security-policy": csp }, body: html }), { times: 1 });
      await page.goto(url);
      assert.ok(await page.locator(".noscript-band").isVisible());
      for (const scheme of ["light", "dark"]) {
        await page.emulateMedia({ colorScheme: scheme });
        for (const v of await axe(page)) findings.push(`${lang} ${name} without JavaScript (${scheme}): ${v}`);
        summary.axeRuns += 1;
      }
      await page.emulateMedia({ colorScheme: "light" });
      summary.states.push(`${lang} nojs-${name}`);
      await page.setViewportSize({ width: 320, height: 640 });
      const extra = await overflow(page);
      if (extra > 0) findings.push(`${lang} ${name} without JavaScript: ${extra} px too wide at 320 px`);
      await page.setViewportSize({ width: 360, height: 780 });
    }
  }
  assert.deepEqual(findings, []);
  assertClean(problems);
  await noJs.close();
  await context.close();
});

test("every page under /o/<org>/, both languages, light and dark: axe finds nothing", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  const { organisations } = await (await page.request.get(`${server.url}/api/v1/organisations`)).json();
  assert.ok(organisations.length >= 1);
  const findings = [];
  for (const lang of ["nl", "en"]) {
    for (const name of PAGES) {
      await page.goto(`${server.url}/o/${organisations[0].id}${ROUTES[lang][name]}`);
      if (name === "report") await page.locator("#counsellor-list input").first().waitFor();
      for (const scheme of ["light", "dark"]) {
        await page.emulateMedia({ colorScheme: scheme });
        for (const v of await axe(page)) findings.push(`/o/ ${lang} ${name} (${scheme}): ${v}`);
        summary.axeRuns += 1;
      }
      await page.emulateMedia({ colorScheme: "light" });
    }
  }
  assert.deepEqual(findings, []);
  assertClean(problems);
  await context.close();
});
