// Case handling through the real programs: a server for two organisations,
// where a melder without an organisation in the address first picks one;
// the report form of one organisation offers only its counsellors, grouped
// as internal and external; the melder picks both of them; both decrypt the
// report; one acknowledges, the other replies; the thread page shows both
// replies with their authors and every status with its day; after the case
// is closed the melder sends the evaluation, the counsellor reads it and
// `stats` counts it. Every new state passes axe (light and dark) and fits at
// 320 px; screenshots go to tests/browser/out/cases-*.png.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/cases.test.mjs

import assert from "node:assert/strict";
import { readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { base64ToBytes, deriveKeys, parseCode } from "../../web/js/protocol.js";
import { openSent } from "./support/open-sent.mjs";
import { messages } from "./support/render.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import { checkState as checkStateAs } from "./support/a11y.mjs";

const nl = messages("nl");
const en = messages("en");
const ORGANISATION = "Ministerie van Voorbeeldzaken";
const OTHER = "Agentschap Elders";

let work;
let server;
let browser;
let intern; // internal counsellor of ORGANISATION: acknowledges, sets statuses, closes
let extern; // external counsellor of ORGANISATION: replies
let elsewhere; // a counsellor of the other organisation, never offered here
let identities; // [intern, extern] age identities, unlocked in the background

before(async () => {
  // Pictures from an earlier run would pass for this run's.
  for (const file of await readdir(outDir)) if (file.startsWith("cases-")) await rm(`${outDir}${file}`);
  work = await scratch("cases");
  [intern, extern, elsewhere] = await Promise.all([
    makeCounsellor(work, {
      id: "vp-intern", name: "Drs. I. Binnenhuis", organisation: ORGANISATION, org: "mvz", kind: "internal",
      description: "Integriteitsbureau van het ministerie, bereikbaar op dinsdag en donderdag.",
    }),
    makeCounsellor(work, {
      id: "vp-extern", name: "Mr. E. Buitenhof", organisation: ORGANISATION, org: "mvz", kind: "external",
      description: "Onafhankelijk advocaat, werkt niet voor het ministerie.",
    }),
    makeCounsellor(work, { id: "vp-elders", name: "Dr. O. Anders", organisation: OTHER, org: "elders", kind: "external" }),
  ]);
  identities = Promise.all([intern.identity(), extern.identity()]);
  identities.catch(() => {}); // awaited by the test that needs them
  [server, browser] = await Promise.all([startServer(work), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

const checkState = (page, name) => checkStateAs(page, name, { dir: outDir, prefix: "cases", phone: 360 });

// Recipient stanzas of the counsellors' kind: post-quantum hybrid, what
// `init` makes (a file never holds both kinds, protocol.md §9).
const stanzaCount = (bytes) =>
  new TextDecoder("latin1").decode(bytes.subarray(0, 20_000)).split("\n").filter((l) => l.startsWith("-> mlkem768x25519 ")).length;

async function thread(lookupKey) {
  const answer = await fetch(`${server.url}/api/v1/thread`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ lookup_key: lookupKey }),
  });
  assert.equal(answer.status, 200);
  return answer.json();
}

/** Writes `text` to a file in the scratch directory and returns its path. */
async function textFile(name, text) {
  const file = path.join(work.dir, name);
  await writeFile(file, `${text}\n`);
  return file;
}

const today = () => new Date().toISOString().slice(0, 10);
/** The day as the page shows it (Dutch, UTC), as thread.js formats it. */
const shownDay = (day) => new Intl.DateTimeFormat("nl-NL", { dateStyle: "long", timeZone: "UTC" }).format(new Date(`${day}T00:00:00Z`));

test("two counsellors of one organisation: choice, both read, statuses with days, closure and evaluation", async (t) => {
  const { context, page, problems } = await openPage(browser, server.url, { locale: "nl-NL", width: 1280 });
  const reportText = "Bij Inkoop gaan opdrachten steeds naar hetzelfde bedrijf, zonder offertes van anderen.";
  const ackText = "Beste melder,\n\nIk bevestig dat ik uw melding heb ontvangen. Ik neem haar in behandeling.";
  const replyText = "Ik lees mee als externe vertrouwenspersoon. Kunt u zeggen om welke maanden het gaat?";
  const feedbackText = "Het ministerie heeft de aanbestedingen laten onderzoeken; de regels worden aangescherpt.";
  const improveText = "Sneller een eerste antwoord zou fijn zijn.";
  let display;
  let keys;
  let caseId;

  await t.test("without an organisation in the address, the melder first picks one", async () => {
    await page.goto(`${server.url}/melden`);
    await page.locator("#organisation-list a").first().waitFor();
    assert.ok(await page.locator("#report-form").isHidden(), "no form before the organisation is known");
    const links = page.locator("#organisation-list a");
    assert.deepEqual(await links.allTextContents(), [OTHER, ORGANISATION]);
    assert.deepEqual(await links.evaluateAll((as) => as.map((a) => a.getAttribute("href"))),
      ["/o/elders/melden", "/o/mvz/melden"]);
    await checkState(page, "organisations");

    await page.goto(`${server.url}/en/report`);
    await page.locator("#organisation-list a").first().waitFor();
    assert.deepEqual(await page.locator("#organisation-list a").evaluateAll((as) => as.map((a) => a.getAttribute("href"))),
      ["/o/elders/en/report", "/o/mvz/en/report"]);
    assert.equal(await page.textContent("#organisation-choice h2"), en.report_organisations_heading);

    await page.goto(`${server.url}/melden`);
    await page.getByRole("link", { name: ORGANISATION }).click();
    await page.waitForURL(`${server.url}/o/mvz/melden`);
  });

  await t.test("the form offers only this organisation's counsellors, in an internal and an external group", async () => {
    await page.getByLabel("Drs. I. Binnenhuis").waitFor();
    assert.equal(await page.textContent("#organisation-name"), nl.report_organisation.replace("{name}", ORGANISATION));
    // Each group is a named group (fieldset and legend) holding exactly its cards.
    const internal = page.getByRole("group", { name: nl.report_counsellors_internal });
    const external = page.getByRole("group", { name: nl.report_counsellors_external });
    assert.deepEqual(await internal.locator("input[type=checkbox]").evaluateAll((i) => i.map((x) => x.value)), ["vp-intern"]);
    assert.deepEqual(await external.locator("input[type=checkbox]").evaluateAll((i) => i.map((x) => x.value)), ["vp-extern"]);
    const internCard = await internal.locator("label").textContent();
    for (const part of [intern.name, ORGANISATION, intern.description]) assert.ok(internCard.includes(part), `${part} in ${internCard}`);
    const externCard = await external.locator("label").textContent();
    for (const part of [extern.name, ORGANISATION, extern.description]) assert.ok(externCard.includes(part), `${part} in ${externCard}`);
    assert.equal(await page.getByText(elsewhere.name).count(), 0, "another organisation's counsellor is not offered");
    // The links stay under the organisation's path.
    assert.equal(await page.getAttribute("#to-thread", "href"), "/o/mvz/mijn-melding");
    await checkState(page, "report-groups");

    // And the other organisation's page offers only its own.
    const other = await context.newPage();
    await other.goto(`${server.url}/o/elders/melden`);
    await other.getByLabel(elsewhere.name).waitFor();
    assert.deepEqual(await other.locator("#counsellor-list input").evaluateAll((i) => i.map((x) => x.value)), ["vp-elders"]);
    assert.equal(await other.getByRole("group", { name: nl.report_counsellors_internal }).count(), 0, "no empty group");
    await other.close();
  });

  await t.test("the melder picks both and reports; the report is encrypted to both", async () => {
    await page.getByLabel(intern.name).check();
    await page.getByLabel(extern.name).check();
    await page.selectOption("#category", "conflict-of-interest");
    await page.fill("#text", reportText);
    await page.screenshot({ path: `${outDir}cases-report-filled-1280.png`, fullPage: true });
    await page.click("#submit");
    await page.locator("#done").waitFor({ state: "visible", timeout: 60_000 });
    display = (await page.textContent("#code")).trim();
    keys = await deriveKeys(parseCode(display));
    const stored = await thread(keys.lookupKey);
    assert.deepEqual([...stored.counsellors].sort(), ["vp-extern", "vp-intern"]);
    assert.equal(stanzaCount(base64ToBytes(stored.messages[0].message)), 3, "both counsellors and the melder");
  });

  await t.test("both counsellors fetch it through the courier and read it", async () => {
    await Promise.all([intern.sync(server.url, "intern-1"), extern.sync(server.url, "extern-1")]);
    const [internList, externList] = await Promise.all([intern.review("list"), extern.review("list")]);
    const ids = (list) => list.split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l)).map((l) => l.slice(0, 8));
    assert.equal(ids(internList).length, 1, internList);
    assert.deepEqual(ids(externList), ids(internList), "the same case in both vaults");
    caseId = ids(internList)[0];
    for (const counsellor of [intern, extern]) {
      const shown = await counsellor.review("show", caseId);
      assert.ok(shown.includes(reportText), `${counsellor.id} cannot read the report:\n${shown}`);
    }
  });

  await t.test("one acknowledges, the other replies; the thread shows both, with authors, statuses and days", async () => {
    await intern.review("acknowledge", caseId, "--file", await textFile("ack.txt", ackText));
    await extern.review("reply", caseId, "--file", await textFile("reply.txt", replyText));
    // One after the other, so the thread's order (arrival) is known.
    await intern.sync(server.url, "intern-2");
    await extern.sync(server.url, "extern-2");

    await page.goto(`${server.url}/o/mvz/mijn-melding`);
    await page.fill("#code", display);
    await page.click("#open");
    await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
    const items = page.locator("#messages > li");
    assert.equal(await items.count(), 3);
    const texts = await items.allTextContents();
    assert.ok(texts[0].includes(reportText));
    assert.ok(texts[1].includes(intern.name) && texts[1].includes("uw melding heb ontvangen"), texts[1]);
    assert.ok(texts[1].includes(nl.status_acknowledged), "the reply says which status it set");
    assert.ok(texts[2].includes(extern.name) && texts[2].includes(replyText), texts[2]);
    const named = await page.textContent("#thread-counsellors");
    assert.ok([`${intern.name}, ${extern.name}`, `${extern.name}, ${intern.name}`]
      .some((names) => named === nl.thread_counsellors.replace("{names}", names)), named);

    const steps = page.locator("#case-status > li");
    assert.deepEqual(await steps.locator(".status-label").allTextContents(),
      [nl.status_received, nl.status_read, nl.status_acknowledged]);
    const day = today();
    assert.deepEqual(await steps.locator("time").evaluateAll((ts) => ts.map((x) => x.getAttribute("datetime"))), [day, day, day]);
    assert.equal(await steps.nth(0).locator("time").textContent(), shownDay(day));
    // Read (the first answer) and acknowledged, both by the one who answered first.
    for (const at of [1, 2]) {
      assert.ok((await steps.nth(at).textContent()).includes(nl.thread_status_by.replace("{name}", intern.name)));
    }
    assert.equal(await steps.nth(2).getAttribute("aria-current"), "step", "the newest status is the current one");
    assert.ok(await page.locator("#evaluation").isHidden(), "no evaluation before the case is closed");
    await checkState(page, "thread-statuses");
  });

  await t.test("after feedback and closure the thread shows them and offers the evaluation", async () => {
    await intern.review("status", caseId, "feedback-given", "--file", await textFile("feedback.txt", feedbackText));
    await intern.review("close", caseId);
    await intern.sync(server.url, "intern-3");

    await page.reload();
    await page.fill("#code", display);
    await page.click("#open");
    await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
    assert.equal(await page.locator("#messages > li").count(), 5);
    const steps = page.locator("#case-status > li");
    assert.deepEqual(await steps.locator(".status-label").allTextContents(),
      [nl.status_received, nl.status_read, nl.status_acknowledged, nl.status_feedback_given, nl.status_closed]);
    assert.equal(await steps.nth(4).getAttribute("aria-current"), "step");
    assert.equal(await page.locator("#case-status [aria-current]").count(), 1);
    assert.ok(await page.locator("#evaluation").isVisible());
    // Two counsellors on this case: "uw vertrouwenspersonen" (one would read "uw vertrouwenspersoon").
    assert.equal(await page.textContent("#evaluation-intro"), nl.evaluation_intro);
    assert.ok(await page.locator("#evaluation-thanks").isHidden());
    assert.ok(await page.locator("#followup-form").isVisible(), "follow-ups stay possible");
    // Two named radio groups of five.
    for (const [legend, scale] of [[nl.evaluation_process_legend, "process"], [nl.evaluation_heard_legend, "heard"]]) {
      const group = page.getByRole("group", { name: legend });
      assert.equal(await group.getByRole("radio").count(), 5, scale);
    }
    await checkState(page, "evaluation-form");

    // Sending without scores: both errors, summed up, focus on the summary.
    await page.click("#evaluation-submit");
    await page.locator("#evaluation-error-summary").waitFor({ state: "visible" });
    assert.deepEqual(await page.locator("#evaluation-error-summary li").allTextContents(),
      [nl.evaluation_error_process, nl.evaluation_error_heard]);
    assert.equal(await page.evaluate(() => document.activeElement.id), "evaluation-error-summary");
    assert.equal(await page.getAttribute("#evaluation-process", "aria-invalid"), "true");
    await checkState(page, "evaluation-errors");
    await page.click('#evaluation-error-summary a[href="#evaluation-heard"]');
    assert.equal(await page.evaluate(() => document.activeElement.id), "evaluation-heard-1");
  });

  await t.test("the melder evaluates; the answers are encrypted like a follow-up and thanked for", async () => {
    // Radio groups: choosing another answer in a group replaces the first.
    await page.getByLabel(nl.evaluation_process_2).check();
    await page.getByLabel(nl.evaluation_process_4).check();
    assert.equal(await page.isChecked("#evaluation-process-2"), false);
    await page.getByLabel(nl.evaluation_heard_5).check();
    assert.ok(await page.locator("#evaluation-error-summary").isHidden(), "the summary goes once all is fixed");
    await page.fill("#evaluation-text", improveText);
    await page.click("#evaluation-submit");
    await page.locator("#evaluation-thanks").waitFor({ state: "visible", timeout: 60_000 });
    assert.ok(await page.locator("#evaluation").isHidden(), "the form goes once the evaluation is in the thread");
    assert.equal(await page.evaluate(() => document.activeElement.id), "evaluation-thanks-heading");
    const last = page.locator("#messages > li").last();
    const shown = await last.textContent();
    for (const part of [nl.kind_evaluation, nl.evaluation_process_4, nl.evaluation_heard_5, improveText]) {
      assert.ok(shown.includes(part), `${part} in ${shown}`);
    }
    assert.ok(await page.locator("#followup-form").isVisible(), "follow-ups stay possible");
    await checkState(page, "evaluation-thanks");

    const stored = await thread(keys.lookupKey);
    const message = stored.messages.at(-1);
    assert.equal(message.author, "melder");
    assert.equal(message.kind, "follow-up", "the server cannot tell an evaluation from a follow-up");
    const sealed = base64ToBytes(message.message);
    assert.equal(stanzaCount(sealed), 3, "both counsellors and the melder");
    const [internIdentity, externIdentity] = await identities;
    const envelope = await openSent(sealed, internIdentity, keys.thread);
    assert.deepEqual(await openSent(sealed, externIdentity, keys.thread), envelope);
    assert.equal(envelope.kind, "evaluation");
    assert.deepEqual(envelope.evaluation, { process: 4, heard: 5 });
    assert.equal(envelope.text, improveText);

    // Opened again later, the thanks stand in place of the form.
    await page.click("#close-thread");
    await page.fill("#code", display);
    await page.click("#open");
    await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
    assert.ok(await page.locator("#evaluation-thanks").isVisible());
    assert.ok(await page.locator("#evaluation").isHidden());
  });

  await t.test("after closure a follow-up still reaches both counsellors, also from a page outside /o/", async () => {
    // Here the page names no organisation: the script finds the case's
    // counsellors among every organisation's.
    await page.goto(`${server.url}/mijn-melding`);
    await page.fill("#code", display);
    await page.click("#open");
    await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
    assert.ok(await page.locator("#evaluation-thanks").isVisible());
    await page.fill("#followup-text", "Nog een vraag na de afsluiting.");
    await page.click("#followup-submit");
    await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 7, null, { timeout: 60_000 });
    // Closed: stored, and said to reach them at their next synchronisation only.
    assert.equal(await page.textContent("#followup-status"), nl.followup_closed_sent);
    const stored = await thread(keys.lookupKey);
    assert.equal(stanzaCount(base64ToBytes(stored.messages.at(-1).message)), 3, "both counsellors and the melder");
  });

  await t.test("the counsellor reads the evaluation and stats count it", async () => {
    await intern.sync(server.url, "intern-4");
    const shown = await intern.review("--lang", "nl", "show", caseId);
    assert.match(shown, /^Evaluatie: proces 4 van 5, gehoord 5 van 5$/m);
    assert.ok(shown.includes(improveText), `show does not print the evaluation's text:\n${shown}`);
    const csv = await intern.review("stats", "--csv");
    assert.match(csv, /^evaluation,count,1$/m);
    assert.match(csv, /^evaluation,process_average,4(\.0+)?$/m);
    assert.match(csv, /^evaluation,heard_average,5(\.0+)?$/m);
  });

  await t.test("the pages ran clean: no CSP violation, no script error, nothing fetched elsewhere", () => {
    assertClean(problems);
  });
  await context.close();
});
