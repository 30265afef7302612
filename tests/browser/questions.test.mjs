// Advice questions (issue 15) through the real programs: a melder asks a
// counsellor a question instead of reporting (chosen by keyboard, or
// preselected by a link), the counsellor's reviewer shows it as an advice
// question with no statutory terms and answers it, the melder reads the
// answer and turns the question into a report in the same thread, and the
// reviewer then shows a report whose terms run from that day. Every new state
// passes axe (wcag22aa, light and dark) in Dutch and English and fits at
// 320 px; screenshots at 390 and 1280 px go to tests/browser/out/questions-*.png.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/questions.test.mjs

import assert from "node:assert/strict";
import { readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { messages } from "./support/render.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import { checkState as checkStateAs } from "./support/a11y.mjs";

const nl = messages("nl");
const en = messages("en");

let work;
let server;
let browser;
let counsellor;

before(async () => {
  for (const file of await readdir(outDir)) if (file.startsWith("questions-")) await rm(`${outDir}${file}`);
  work = await scratch("questions");
  counsellor = await makeCounsellor(work, {
    id: "vp-vraag", name: "Mr. V. Raagbaak", organisation: "Ministerie van Voorbeeldzaken",
    description: "Vertrouwenspersoon integriteit.",
  });
  [server, browser] = await Promise.all([startServer(work), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

const checkState = (page, name) => checkStateAs(page, name, { dir: outDir, prefix: "questions", phone: 390 });

async function textFile(name, text) {
  const file = path.join(work.dir, name);
  await writeFile(file, `${text}\n`);
  return file;
}

const caseIds = (list) => list.split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l)).map((l) => l.slice(0, 8));

/** The thread in English, opened with the code in a page of its own: axe and screenshots of the same state. */
async function checkThreadInEnglish(code, name, check) {
  const context = await browser.newContext({ locale: "en-GB" });
  const english = await context.newPage();
  await english.goto(`${server.url}/en/my-report`);
  await english.fill("#code", code);
  await english.click("#open");
  await english.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
  await check(english);
  await checkState(english, name);
  await context.close();
}

test("a question is asked, answered without terms, and turned into a report in the same thread", async (t) => {
  const { page, problems } = await openPage(browser, server.url, { locale: "nl-NL", width: 1280 });
  const questionText = "Mag mijn leidinggevende vragen waarom ik ziek was? Ik twijfel of ik dit moet melden.";
  const answerText = "Nee, dat hoeft u niet te vertellen. Wilt u er een melding van maken, dan kan dat hier.";
  const reportText = "Ik meld het nu: mijn leidinggevende vraagt iedereen naar diagnoses en noteert die.";
  let display;
  let caseId;
  let acknowledgeBy; // the date the page shows, to compare with the reviewer

  await t.test("the form asks what the melder wants to do; a question is chosen by keyboard", async () => {
    await page.goto(`${server.url}/melden`);
    await page.getByLabel(counsellor.name).waitFor();
    const kinds = page.getByRole("group", { name: nl.report_kind_legend });
    assert.equal(await kinds.getByRole("radio").count(), 2);
    assert.ok(await page.isChecked("#kind-report"), "a report is the default");
    assert.equal(await page.textContent("#text-label"), nl.report_text_label);
    await page.focus("#kind-report");
    await page.keyboard.press("ArrowDown");
    assert.ok(await page.isChecked("#kind-question"), "arrow keys choose within the group");
    assert.equal(await page.textContent("#text-label"), nl.question_text_label);
    assert.equal(await page.textContent("#submit"), nl.question_submit);
    assert.ok(await page.locator("#category").isHidden(), "a question has no category");
    await checkState(page, "form-question-nl");
  });

  await t.test("a link preselects the question (the route finder's way in), in both languages", async () => {
    await page.goto(`${server.url}/melden?soort=vraag`);
    await page.getByLabel(counsellor.name).waitFor();
    assert.ok(await page.isChecked("#kind-question"));
    const other = await browser.newContext({ locale: "en-GB" });
    const english = await other.newPage();
    await english.goto(`${server.url}/en/report?kind=question`);
    await english.getByLabel(counsellor.name).waitFor();
    assert.ok(await english.isChecked("#kind-question"));
    assert.equal(await english.textContent("#text-label"), en.question_text_label);
    await checkState(english, "form-question-en");
    await other.close();
  });

  await t.test("the question is sent like a report: a code, and the question's own heading", async () => {
    await page.getByLabel(counsellor.name).check();
    await page.fill("#text", questionText);
    await page.click("#submit");
    await page.locator("#done").waitFor({ state: "visible", timeout: 60_000 });
    assert.equal(await page.textContent("#done-heading"), nl.done_heading_question);
    display = (await page.textContent("#code")).trim();
    await checkState(page, "done-question-nl");
  });

  await t.test("the counsellor's reviewer shows an advice question without statutory terms, and answers", async () => {
    await counsellor.sync(server.url, "vraag-1");
    const list = await counsellor.review("list");
    [caseId] = caseIds(list);
    assert.ok(caseId, list);
    assert.ok(list.includes("adviesvraag"), list);
    assert.ok(!list.includes("uiterlijk"), `no deadline for a question:\n${list}`);
    const shown = await counsellor.review("show", caseId);
    assert.ok(shown.includes(questionText), shown);
    assert.ok(shown.includes("geen wettelijke termijnen"), shown);
    const deadlines = await counsellor.review("deadlines");
    assert.ok(!deadlines.includes(caseId), `a question is no open deadline:\n${deadlines}`);
    await counsellor.review("reply", caseId, "--file", await textFile("antwoord.txt", answerText));
    await counsellor.sync(server.url, "vraag-2");
  });

  await t.test("the thread shows the question, the answer and how to turn it into a report", async () => {
    await page.goto(`${server.url}/mijn-melding`);
    await page.fill("#code", display);
    await page.click("#open");
    await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
    const items = page.locator("#messages > li");
    assert.equal(await items.count(), 2);
    assert.ok((await items.nth(0).textContent()).includes(` · ${nl.kind_question} · `));
    assert.ok((await items.nth(1).textContent()).includes(answerText));
    // Answered, so read; a question has no statutory dates (journey.test.mjs has a report's).
    assert.deepEqual(await page.locator("#case-status .status-label").allTextContents(), [nl.status_asked, nl.status_read]);
    assert.equal(await page.locator("#date-acknowledge-by, #date-feedback-by").count(), 0, "no terms for a question");
    assert.ok(await page.locator("#question-note").isVisible());
    assert.equal(await page.textContent("#thread-heading"), nl.thread_messages_heading_question);
    await checkState(page, "thread-question-nl");
    await checkThreadInEnglish(display, "thread-question-en", async (english) => {
      assert.equal(await english.textContent("#thread-heading"), en.thread_messages_heading_question);
      assert.deepEqual(await english.locator("#case-status .status-label").allTextContents(), [en.status_asked, en.status_read]);
    });
  });

  await t.test("the melder turns the question into a report with the same code", async () => {
    await page.getByLabel(nl.followup_as_report).check();
    await page.fill("#followup-text", reportText);
    await page.click("#followup-submit");
    await page.locator("#followup-status").filter({ hasText: nl.followup_reported }).waitFor({ timeout: 60_000 });
    assert.equal(await page.locator("#messages > li").count(), 3);
    assert.ok((await page.locator("#messages > li").nth(2).textContent()).includes(` · ${nl.kind_report} · `));
    assert.deepEqual(await page.locator("#case-status .status-label").allTextContents(),
      [nl.status_asked, nl.status_read, nl.status_reported]);
    // The terms run from the report, and the answer to the question does not acknowledge it.
    const day = new Date().toISOString().slice(0, 10);
    const plus = (days) => new Date(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
    const shown = (d) => new Intl.DateTimeFormat("nl-NL", { dateStyle: "long", timeZone: "UTC" }).format(new Date(`${d}T00:00:00Z`));
    acknowledgeBy = shown(plus(7));
    assert.equal(await page.locator("#date-acknowledge-by time").textContent(), acknowledgeBy);
    assert.ok(await page.locator("#question-note").isHidden(), "a report is no longer a question");
    assert.equal(await page.textContent("#thread-heading"), nl.thread_messages_heading);
    await checkState(page, "thread-reported-nl");
    await checkThreadInEnglish(display, "thread-reported-en", async (english) => {
      assert.equal(await english.textContent("#thread-heading"), en.thread_messages_heading);
      assert.deepEqual(await english.locator("#case-status .status-label").allTextContents(),
        [en.status_asked, en.status_read, en.status_reported]);
    });
  });

  await t.test("the reviewer now shows a report whose terms run from today", async () => {
    await counsellor.sync(server.url, "vraag-3");
    const list = await counsellor.review("list");
    assert.deepEqual(caseIds(list), [caseId], "the same case");
    assert.ok(!list.includes("adviesvraag"), list);
    assert.ok(list.includes("ontvangst bevestigen uiterlijk"), list);
    const shown = await counsellor.review("show", caseId);
    assert.ok(shown.includes("begon als adviesvraag op"), shown);
    assert.ok(shown.includes(`uiterlijk: ${acknowledgeBy}`), `the page said ${acknowledgeBy}:\n${shown}`);
    assert.ok(shown.includes(reportText), shown);
    const stats = await counsellor.review("stats");
    assert.ok(stats.includes("meldingen die als vraag begonnen: 1"), stats);
    const csv = await counsellor.review("stats", "--csv");
    assert.ok(csv.includes("total,advice_questions,0\n") && csv.includes("total,reports_that_began_as_questions,1\n"), csv);
  });

  assertClean(problems);
});
