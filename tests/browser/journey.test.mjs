// The melder's journey around the form (issue 15), through the real
// programs: the route finder reaches each of its six routes by keyboard
// alone, with JavaScript and without, in Dutch and English; the privacy
// statement names the organisation's controller and data-protection officer
// from the server's configuration; the thread page shows the deadlines the
// counsellor's reviewer shows, says "stored" until a counsellor answered,
// and after closure shows the deletion date, what a new message does and the
// organisation's aftercare, never claiming a delivery it cannot make; the
// deadline module in the page gives the shared vectors' dates. Every new
// state passes axe (WCAG 2.2 AA and best practices) in light and dark;
// screenshots at 390 and 1280 px in both languages go to
// tests/browser/out/journey-*.png.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/journey.test.mjs

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { addDays, addMonths } from "../../web/js/deadlines.js";
import { ROUTES, ROUTE_WALKS as WALKS, messages } from "./support/render.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import { checkState as checkStateAs, focusState } from "./support/a11y.mjs";

const texts = { nl: messages("nl"), en: messages("en") };
const vectors = JSON.parse(readFileSync(new URL("../vectors/deadlines.json", import.meta.url), "utf8"));
const ORGANISATION = "Ministerie van Voorbeeldzaken";
const SETTINGS = {
  name: "Ministerie van Voorbeeldzaken (MVZ)",
  controller: "De minister van Voorbeeldzaken, Postbus 20001, 2500 EA Den Haag",
  dpo: "Functionaris gegevensbescherming MVZ, fg@mvz.example",
  aftercare: ["Bedrijfsmaatschappelijk werk: 070 555 0101", "Bedrijfsarts via de Arbodienst: 070 555 0102"],
  support: ["Vakbondsadvies: 070 555 0199"],
  code_file_name: "boodschappen.txt",
  // The organisation's own period, which the page must show rather than the server's.
  retention_days: 60,
};
const SERVER_RETENTION_DAYS = 20;

let work;
let server;
let browser;
let counsellor;

before(async () => {
  for (const file of await readdir(outDir)) if (file.startsWith("journey-")) await rm(`${outDir}${file}`);
  work = await scratch("journey");
  counsellor = await makeCounsellor(work, {
    id: "vp-journey", name: "Mr. R. Wegwijs", organisation: ORGANISATION, org: "mvz", kind: "external",
  });
  const toml = (value) => JSON.stringify(value); // TOML strings and arrays of strings read like JSON
  const config = path.join(work.dir, "meldkluis.toml");
  await writeFile(config, [
    `retention_days = ${SERVER_RETENTION_DAYS}`,
    "[organisations.mvz]",
    ...Object.entries(SETTINGS).map(([key, value]) => `${key} = ${toml(value)}`),
    "",
  ].join("\n"));
  [server, browser] = await Promise.all([startServer(work, ["--config", config]), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

const checkState = (page, name) => checkStateAs(page, name, { dir: outDir, prefix: "journey", phone: 390 });

/**
 * Presses Tab until the focused link's text starts with `text`, then Enter,
 * and waits for the next page: a keyboard user's way through, no clicks.
 * Every stop on the way must show its focus.
 */
async function tabTo(page, text, { follow = true } = {}) {
  for (let presses = 0; presses < 60; presses += 1) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => ({
      text: (document.activeElement?.textContent ?? "").trim(),
      href: document.activeElement?.getAttribute("href"),
    }));
    if (focused.text.startsWith(text)) {
      const state = await focusState(page);
      assert.ok(state.visible, `focus not visible on ${state.element}`);
      if (follow) {
        const from = new URL(page.url()).pathname;
        await Promise.all([page.waitForURL((url) => url.pathname !== from), page.keyboard.press("Enter")]);
      }
      return focused;
    }
  }
  throw new Error(`no link "${text}" reached by Tab on ${page.url()}`);
}

/** Where each route's first step leads (the action a melder takes next). */
const ACTIONS = {
  "route-raba": ["route_raba_action", "https://www.rabarijk.nl/"],
  // The report form preselects an advice question from this query (report.js).
  "route-advice": ["route_advice_action", "report?question"],
  "route-coordinator": ["route_advice_action", "report?question"],
  "route-here": ["route_here_action", "report"],
  "route-hvk": ["route_hvk_action", "https://www.huisvoorklokkenluiders.nl/"],
};

for (const javaScriptEnabled of [true, false]) {
  test(`the route finder reaches every route by keyboard alone, JavaScript ${javaScriptEnabled ? "on" : "off"}`, async () => {
    for (const lang of ["nl", "en"]) {
      const t = texts[lang];
      const { context, page, problems } = await openPage(browser, server.url, { javaScriptEnabled, width: 1280 });
      // From the landing page, by keyboard, into the route finder.
      await page.goto(`${server.url}${ROUTES[lang].index}`);
      await tabTo(page, t.index_cta_route);
      assert.equal(new URL(page.url()).pathname, ROUTES[lang].route);
      for (const { route, answers } of WALKS) {
        await page.goto(`${server.url}${ROUTES[lang].route}`);
        for (const answer of answers) await tabTo(page, t[answer]);
        assert.equal(new URL(page.url()).pathname, ROUTES[lang][route], `${lang} ${answers.join(" → ")}`);
        const key = route.slice("route-".length);
        assert.equal((await page.textContent("h1")).trim(), t[`route_${key}_heading`]);
        // Every route says what it means for anonymity and for deadlines.
        const body = await page.textContent("main");
        assert.ok(body.includes(t[`route_${key}_anonymity`]), `${route}: anonymity`);
        assert.ok(body.includes(t[`route_${key}_deadlines`]), `${route}: deadlines`);
        if (ACTIONS[route]) {
          const [label, target] = ACTIONS[route];
          const link = await tabTo(page, t[label], { follow: false });
          const expected = target.startsWith("https:") ? target
            : target.replace("report", ROUTES[lang].report)
              .replace("?question", `?${t.route_question_query}`);
          assert.equal(link.href, expected, `${route}: next step`);
          if (route === "route-advice" && javaScriptEnabled) {
            // Followed by keyboard, it opens the form with the question chosen.
            await page.keyboard.press("Enter");
            await page.waitForURL((url) => url.pathname === ROUTES[lang].report);
            await page.locator("#kind-question:checked").waitFor();
          }
        } else {
          // The authority route lists the designated authorities as links.
          assert.equal(await page.locator(".authorities a").count(), 8);
        }
      }
      // Back and restart are plain links too.
      await page.goto(`${server.url}${ROUTES[lang]["route-sector"]}`);
      await tabTo(page, t.route_back);
      assert.equal(new URL(page.url()).pathname, ROUTES[lang]["route-reprisals"]);
      assertClean(problems);
      await context.close();
    }
  });
}

test("every route finder page, and the links to it, pass axe in both languages, light and dark, and are screenshot", async () => {
  const { context, page, problems } = await openPage(browser, server.url, { width: 1280 });
  const names = Object.keys(ROUTES.nl).filter((name) => name.startsWith("route"));
  assert.equal(names.length, 10);
  for (const lang of ["nl", "en"]) {
    for (const name of names) {
      await page.goto(`${server.url}${ROUTES[lang][name]}`);
      await checkState(page, `${name}-${lang}`);
    }
    // The ways in: a link on the landing page and above the report form.
    for (const name of ["index", "report"]) {
      await page.goto(`${server.url}/o/mvz${ROUTES[lang][name]}`);
      const link = page.locator(".route-link a");
      assert.equal(await link.getAttribute("href"), `/o/mvz${ROUTES[lang].route}`);
      if (name === "report") await page.getByLabel(counsellor.name).waitFor();
      await checkState(page, `${name}-with-route-link-${lang}`);
    }
  }
  assertClean(problems);
  await context.close();
});

test("the privacy statement names the organisation's controller and data-protection officer", async () => {
  const { context, page, problems } = await openPage(browser, server.url, { width: 1280 });
  for (const lang of ["nl", "en"]) {
    for (const base of ["", "/o/mvz"]) {
      await page.goto(`${server.url}${base}${ROUTES[lang].privacy}`);
      const part = await page.textContent("#controller-facts");
      assert.ok(part.includes(SETTINGS.controller) && part.includes(SETTINGS.dpo), part);
      assert.ok(part.includes(texts[lang].privacy_dpo_term), part);
    }
    await checkState(page, `privacy-${lang}`);
  }
  assertClean(problems);
  await context.close();
});

test("the page's deadline module gives the shared vectors' dates, in the browser", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/mijn-melding`);
  const got = await page.evaluate(async (cases) => {
    const { deadlines, deletedFrom } = await import("/js/deadlines.js");
    return {
      deadlines: cases.deadlines.map((v) => deadlines(v.received, v.acknowledged)),
      deletion: cases.deletion.map((v) => deletedFrom(v.closed, v.retention_days)),
    };
  }, vectors);
  assert.deepEqual(got.deadlines, vectors.deadlines.map((v) => ({ acknowledgeBy: v.acknowledge_by, feedbackBy: v.feedback_by })));
  assert.deepEqual(got.deletion, vectors.deletion.map((v) => v.deleted_from));
  assertClean(problems);
  await context.close();
});

const today = () => new Date().toISOString().slice(0, 10);
const shownDay = (day, lang = "nl") =>
  new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "nl-NL", { dateStyle: "long", timeZone: "UTC" })
    .format(new Date(`${day}T00:00:00Z`));

/** The day on a line of `meldkluis-review show` ("Ontvangst bevestigen uiterlijk: 9 december 2026"). */
function reviewerDay(shown, label) {
  const line = shown.split("\n").find((l) => l.includes(label.replace(": {0}", "")));
  assert.ok(line, `no "${label}" in:\n${shown}`);
  return /: (\d{1,2} \S+ \d{4})/.exec(line)[1];
}

/** The text of a date on the thread page, by its row id. */
const pageDay = (page, id) => page.locator(`#date-${id} time`).textContent();

async function openThread(page, url, display) {
  await page.goto(url);
  await page.fill("#code", display);
  await page.click("#open");
  await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
}

test("a thread: reviewer's dates, stored versus read, and after closure the deletion date and no false delivery", async (t) => {
  const { context, page, problems } = await openPage(browser, server.url, { locale: "nl-NL", width: 1280 });
  const labels = {
    acknowledgeBy: "Ontvangst bevestigen uiterlijk",
    feedbackBy: "Terugkoppelen uiterlijk",
  };
  let display;
  let caseId;

  await t.test("the report form names the organisation's file name for the code", async () => {
    await page.goto(`${server.url}/o/mvz/melden`);
    await page.getByLabel(counsellor.name).check();
    await page.fill("#text", "Bij Facilitaire Zaken verdwijnen laptops uit de voorraad.");
    await page.click("#submit");
    await page.locator("#done").waitFor({ state: "visible", timeout: 60_000 });
    display = (await page.textContent("#code")).trim();
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-code")]);
    assert.equal(download.suggestedFilename(), SETTINGS.code_file_name);
  });

  await t.test("before any answer: stored on the server, deadlines as the reviewer has them", async () => {
    await openThread(page, `${server.url}/o/mvz/mijn-melding`, display);
    const steps = await page.locator("#case-status li .status-label").allTextContents();
    assert.deepEqual(steps, [texts.nl.status_received], "no 'read' before a counsellor answered");
    assert.equal(await page.locator(".message-delivery").textContent(), texts.nl.thread_delivery_stored);
    assert.equal(await pageDay(page, "received"), shownDay(today()));
    assert.equal(await pageDay(page, "acknowledge-by"), shownDay(addDays(today(), 7)));
    assert.equal(await pageDay(page, "feedback-by"), shownDay(addMonths(addDays(today(), 7), 3)));
    assert.ok(await page.locator("#thread-closed").isHidden());
    // Support contacts show while the case runs; aftercare only after closure.
    const aftercare = await page.textContent("#thread-aftercare");
    assert.ok(aftercare.includes(SETTINGS.support[0]) && !aftercare.includes(SETTINGS.aftercare[0]), aftercare);

    await counsellor.sync(server.url, "journey-1");
    const list = await counsellor.review("list");
    caseId = /^([0-9a-f]{8})\b/m.exec(list)[1];
    const shown = await counsellor.review("--lang", "nl", "show", caseId);
    assert.equal(await pageDay(page, "acknowledge-by"), reviewerDay(shown, labels.acknowledgeBy));
    assert.equal(await pageDay(page, "feedback-by"), reviewerDay(shown, labels.feedbackBy));
    await checkState(page, "thread-stored-nl");
    await openThread(page, `${server.url}/o/mvz${ROUTES.en.thread}`, display);
    assert.equal(await page.locator(".message-delivery").textContent(), texts.en.thread_delivery_stored);
    assert.equal(await pageDay(page, "acknowledge-by"), shownDay(addDays(today(), 7), "en"));
    await checkState(page, "thread-stored-en");
  });

  await t.test("after the acknowledgement: read, and feedback due as the reviewer has it", async () => {
    await counsellor.review("acknowledge", caseId);
    await counsellor.sync(server.url, "journey-2");
    await openThread(page, `${server.url}/o/mvz/mijn-melding`, display);
    const steps = await page.locator("#case-status li .status-label").allTextContents();
    assert.deepEqual(steps, [texts.nl.status_received, texts.nl.status_read, texts.nl.status_acknowledged]);
    assert.equal(await page.locator(".message-delivery").first().textContent(), texts.nl.thread_delivery_read);
    const shown = await counsellor.review("--lang", "nl", "show", caseId);
    assert.equal(await pageDay(page, "feedback-by"), reviewerDay(shown, labels.feedbackBy));
    assert.equal(await pageDay(page, "acknowledged"), shownDay(today()));
    await checkState(page, "thread-read-nl");
    // The print view: the conversation, without forms, buttons or the code field.
    await page.emulateMedia({ media: "print" });
    assert.ok(await page.locator("#followup-form").isHidden());
    assert.ok(await page.locator("#code-form").isHidden());
    assert.ok(await page.locator("#thread-print-title").isVisible());
    assert.ok(await page.locator("#messages").isVisible());
    await page.screenshot({ path: `${outDir}journey-thread-print-nl-1280.png`, fullPage: true });
    await page.emulateMedia({ media: "screen" });
    assert.ok((await page.textContent("#thread-keep")).includes(texts.nl.thread_keep_warning));
    await openThread(page, `${server.url}/o/mvz${ROUTES.en.thread}`, display);
    assert.deepEqual(await page.locator("#case-status li .status-label").allTextContents(),
      [texts.en.status_received, texts.en.status_read, texts.en.status_acknowledged]);
    await checkState(page, "thread-read-en");
    await page.emulateMedia({ media: "print" });
    await page.screenshot({ path: `${outDir}journey-thread-print-en-1280.png`, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: `${outDir}journey-thread-print-en-390.png`, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.emulateMedia({ media: "screen" });
  });

  await t.test("after closure: deletion date, what a message does, aftercare, and no claim of delivery", async () => {
    await counsellor.review("close", caseId);
    await counsellor.sync(server.url, "journey-3");
    for (const lang of ["nl", "en"]) {
      const tl = texts[lang];
      await openThread(page, `${server.url}/o/mvz${ROUTES[lang].thread}`, display);
      assert.equal(await pageDay(page, "closed"), shownDay(today(), lang));
      const deleted = addDays(today(), SETTINGS.retention_days);
      assert.equal(await pageDay(page, "deleted-from"), shownDay(deleted, lang));
      const closure = await page.textContent("#thread-closed");
      assert.ok(closure.includes(shownDay(deleted, lang)), closure);
      assert.ok(closure.includes(tl.thread_after_closure_message), closure);
      const aftercare = await page.textContent("#thread-aftercare");
      for (const line of [...SETTINGS.aftercare, ...SETTINGS.support]) assert.ok(aftercare.includes(line), aftercare);
      assert.ok(await page.locator("#evaluation").isVisible(), "the evaluation is offered");
      await checkState(page, `thread-closed-${lang}`);
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: `${outDir}journey-thread-closed-${lang}-dark-390.png`, fullPage: true });
      await page.emulateMedia({ colorScheme: "light" });
    }
    // A message after closure is stored, and the page says only that.
    await page.fill("#followup-text", "Is er nog iets gebeurd met de laptops?");
    await page.click("#followup-submit");
    await page.locator("#followup-status").filter({ hasText: texts.en.followup_closed_sent }).waitFor({ timeout: 60_000 });
    const said = await page.textContent("#followup-status");
    assert.ok(!said.includes(texts.en.followup_sent), said);
    assert.ok(!/\bsent\b|\bdelivered\b|\bread\b/i.test(said.replace(texts.en.followup_closed_sent, "")), said);
    const deliveries = await page.locator(".message-delivery").allTextContents();
    assert.equal(deliveries.at(-1), texts.en.thread_delivery_stored, "the new message is stored, not read");
    await checkState(page, "thread-closed-sent-en");
    // It reaches the counsellor at the next sync, in the still-closed case.
    await counsellor.sync(server.url, "journey-4");
    const shown = await counsellor.review("--lang", "nl", "show", caseId);
    assert.ok(shown.includes("Is er nog iets gebeurd met de laptops?"), shown);
  });

  assertClean(problems);
  await context.close();
});
