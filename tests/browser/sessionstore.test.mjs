// No traces in Firefox's session store. A normal Firefox profile writes the
// text of open forms to sessionstore-backups/recovery.jsonlz4 every few
// seconds and restores it after a crash, so an unsent report would sit on the
// melder's disk. This test uses a persistent profile in Firefox ESR, types
// markers into every field that holds report content (report text, contact,
// counsellor choice, category, the code, a follow-up draft, an evaluation of a
// closed case: its text and its ratings) without sending,
// waits until the session store has been written — proven by a control page
// whose plain textarea's marker must appear in it — then kills the browser
// and searches every file of the profile, mozLz4 files decompressed, for the
// markers.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/sessionstore.test.mjs

import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { checkByLabel, launchFirefox, openFirefoxPage, waitVisible } from "./support/firefox.mjs";
import { decompressMozLz4, isMozLz4 } from "./support/mozlz4.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";

let work, counsellor, server, profile;

before(async () => {
  work = await scratch("sessionstore");
  // The card's id is a marker too: a stored checkbox state names it.
  counsellor = await makeCounsellor(work, {
    id: "vp-spoorzoeker", name: "Mr. S. Spoorzoeker", organisation: "Ministerie van Testzaken",
  });
  server = await startServer(work);
  profile = await mkdtemp(path.join(tmpdir(), "meldkluis-ff-profile-"));
});

after(async () => {
  await server?.stop();
  await work?.remove();
  if (profile) await rm(profile, { recursive: true, force: true });
});

/** Every file under `root` with its bytes, mozLz4 files decompressed. */
async function profileTexts(root) {
  const entries = await readdir(root, { withFileTypes: true, recursive: true });
  const files = [];
  for (const e of entries.filter((e) => e.isFile())) {
    const file = path.join(e.parentPath ?? e.path, e.name);
    let bytes;
    try {
      bytes = await readFile(file);
    } catch {
      continue; // a lock file gone meanwhile
    }
    files.push({ file, bytes: isMozLz4(bytes) ? decompressMozLz4(bytes) : bytes });
  }
  return files;
}

const where = (files, marker) => files.filter(({ bytes }) => bytes.includes(Buffer.from(marker))).map((f) => f.file);

test("Firefox keeps no report content in its session store or anywhere in the profile", async () => {
  const stamp = Date.now().toString(36);
  const markers = {
    text: `SPOORTEKST${stamp}`,
    contact: `SPOORCONTACT${stamp}`,
    followup: `SPOORAANVULLING${stamp}`,
    evaluation: `SPOOREVALUATIE${stamp}`,
    code: null, // set below: the real code, typed on a second "my report" page
  };
  const control = `SPOORCONTROLE${stamp}`;
  const browser = await launchFirefox({
    profile,
    prefs: {
      // Write often (the default is 15 s) and keep crash recovery on, as in a normal profile.
      "browser.sessionstore.interval": 1000,
      "browser.sessionstore.resume_from_crash": true,
      "browser.sessionstore.privacy_level": 0,
    },
  });
  let killed = false;
  try {
    // A real case, so the thread page and its follow-up form open.
    const { page: first, problems } = await openFirefoxPage(browser, server.url);
    await first.goto(`${server.url}/melden`);
    await first.waitForSelector(`#counsellor-${counsellor.id}`);
    await checkByLabel(first, counsellor.name);
    await first.type("#text", "Een melding om de vervolgvraag te kunnen openen.");
    await first.click("#submit");
    await waitVisible(first, "#done", 120_000);
    const code = (await first.$eval("#code", (e) => e.textContent)).trim();
    markers.code = code;
    // The counsellor closes the case, so the page offers the evaluation form too.
    await counsellor.sync(server.url, "sessionstore-1");
    const caseId = (await counsellor.review("list")).split("\n").find((l) => /^[0-9a-f]{8}\b/.test(l))?.slice(0, 8);
    assert.ok(caseId, "the counsellor has the case");
    await counsellor.review("close", caseId);
    await counsellor.sync(server.url, "sessionstore-2");

    await first.goto(`${server.url}/mijn-melding`);
    await first.type("#code", code);
    await first.keyboard.press("Enter");
    await waitVisible(first, "#thread", 120_000);
    await waitVisible(first, "#evaluation", 120_000);
    await first.type("#followup-text", markers.followup);
    await first.click("#evaluation-process-2");
    await first.click("#evaluation-heard-1");
    await first.type("#evaluation-text", markers.evaluation);

    // An unsent report: every field filled, nothing sent.
    const { page: report, problems: reportProblems } = await openFirefoxPage(browser, server.url);
    await report.goto(`${server.url}/melden`);
    await report.waitForSelector(`#counsellor-${counsellor.id}`);
    await checkByLabel(report, counsellor.name);
    await report.select("#category", "conflict-of-interest");
    await report.type("#text", markers.text);
    await report.type("#contact", markers.contact);

    // The control: a plain textarea, which Firefox does store. Its marker in
    // the session store proves the store was written after the typing above.
    const controlPage = await browser.newPage();
    await controlPage.goto("data:text/html,<!doctype html><title>control</title><textarea id=c></textarea>");
    await controlPage.type("#c", control);

    const store = path.join(profile, "sessionstore-backups", "recovery.jsonlz4");
    let seen = false;
    for (let i = 0; i < 60 && !seen; i += 1) {
      await new Promise((r) => setTimeout(r, 500));
      try {
        seen = decompressMozLz4(await readFile(store)).includes(Buffer.from(control));
      } catch {
        // not written yet, or written while read: try again
      }
    }
    assert.ok(seen, `the session store never held the control marker (${store})`);
    // One more write interval, so the melder's pages had their chance too.
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual([...problems, ...reportProblems], []);

    browser.process().kill("SIGKILL");
    killed = true;
    await new Promise((r) => setTimeout(r, 500));

    const files = await profileTexts(profile);
    assert.ok(where(files, control).length > 0, "the control marker is found after the kill");
    const found = {};
    for (const [name, marker] of Object.entries({
      ...markers,
      counsellor: `counsellor-${counsellor.id}`,
      category: "conflict-of-interest",
      // A stored radio state names the ticked box by its id.
      ratings: "evaluation-process-2",
      ratings2: "evaluation-heard-1",
    })) {
      const hits = where(files, marker);
      if (hits.length) found[name] = hits.map((f) => path.relative(profile, f));
    }
    assert.deepEqual(found, {}, "report content found in the Firefox profile");
  } finally {
    if (!killed) await browser.close();
  }
});

test("every form and every field on the melder's and courier's pages opts out of form restoration and spell-checking", async () => {
  const browser = await launchFirefox();
  try {
    const { page, problems } = await openFirefoxPage(browser, server.url);
    const wrong = [];
    for (const p of ["/melden", "/en/report", "/mijn-melding", "/en/my-report", "/koerier", "/en/courier"]) {
      await page.goto(`${server.url}${p}`);
      // The counsellor boxes are made by the script: wait for them.
      if (p === "/melden" || p === "/en/report") await page.waitForSelector(`#counsellor-${counsellor.id}`);
      const fields = await page.evaluate(() => {
        const out = [];
        const forms = [...document.forms];
        for (const form of forms) {
          out.push({ what: `form#${form.id}`, autocomplete: form.getAttribute("autocomplete"), spellcheck: "n/a" });
        }
        for (const field of document.querySelectorAll("input, select, textarea")) {
          const text = field.tagName === "TEXTAREA" || (field.tagName === "INPUT" && field.type === "text");
          out.push({
            what: `${field.tagName.toLowerCase()}#${field.id}`,
            autocomplete: field.getAttribute("autocomplete"),
            spellcheck: text ? field.getAttribute("spellcheck") : "n/a",
            inForm: Boolean(field.form),
          });
        }
        return out;
      });
      assert.ok(fields.filter((f) => f.what.startsWith("form")).length >= 1, `${p} has a form`);
      for (const f of fields) {
        if (f.autocomplete !== "off") wrong.push(`${p} ${f.what}: autocomplete=${f.autocomplete}`);
        if (f.spellcheck !== "n/a" && f.spellcheck !== "false") wrong.push(`${p} ${f.what}: spellcheck=${f.spellcheck}`);
        if (f.inForm === false) wrong.push(`${p} ${f.what}: outside a form`);
      }
    }
    assert.deepEqual(wrong, []);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
