// The whole journey through the real programs: a melder reports in Chromium
// on the real server, the counsellor syncs through the courier page, reads
// and replies with meldkluis-review, the melder reads the reply with the
// code and answers, the counsellor reads that. Finally the canary check: the
// marker typed in the browser exists nowhere in the server's data directory
// or its output. Screenshots of every step go to tests/browser/out/.
//
// The counsellor has post-quantum hybrid keys (what `init` makes, protocol
// v2 draft), so the melder's page uses its hybrid reply key; with
// MELDKLUIS_ROUNDTRIP_KEYS=classical the counsellor has a vault of the
// classical format (v1), and the same journey runs on X25519 keys.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/roundtrip.test.mjs

import assert from "node:assert/strict";
import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { deriveKeys, parseCode } from "../../web/js/protocol.js";
import { assertClean, launch, openPage, shot } from "./support/browser.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { ROUTES } from "./support/render.mjs";

const CLASSICAL = process.env.MELDKLUIS_ROUNDTRIP_KEYS === "classical";

// Unique per run, so a hit in the data directory can only come from this run.
const MARKER = `KANARIE${process.pid}x${Date.now().toString(36)}`;

let work; // the scratch directory: vault, keys, data, bundles
let counsellor; // the counsellor's card fields, and review(...) on the vault
let server; // { process, url, output(), stop() }
let browser;

before(async () => {
  work = await scratch("roundtrip");
  // The counsellor's card must be in keys/ before the server starts.
  counsellor = await makeCounsellor(work, {
    id: "vp-roundtrip", name: "Mr. R. Rondreis", organisation: "Ministerie van Testzaken",
    description: "Proefpersoon voor de rondreistest.",
    classical: CLASSICAL,
  });
  [server, browser] = await Promise.all([startServer(work), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

/** Carries an outbox through the real courier page; returns the inbox path. */
async function courier(page, outboxName, step) {
  const outbox = path.join(work.dir, outboxName);
  await counsellor.review("outbox", outbox);
  await page.goto(`${server.url}/koerier`);
  await page.setInputFiles("#outbox", outbox);
  await shot(page, `roundtrip-${step}-courier-chosen`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#sync")]);
  const inbox = path.join(work.dir, download.suggestedFilename());
  await download.saveAs(inbox);
  await page.locator("#result").waitFor({ state: "visible" });
  await shot(page, `roundtrip-${step}-courier-done`);
  assert.match(download.suggestedFilename(), new RegExp(`^meldkluis-inbox-${counsellor.id}-\\d+\\.age$`));
  assert.ok((await stat(inbox)).size > 0);
  return inbox;
}

/** Every file under `root`, recursively. */
async function filesUnder(root) {
  const entries = await readdir(root, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? e.path, e.name));
}

test("report → courier → review → reply → my report → follow-up → review, and no plaintext on the server", async (t) => {
  const { context, page, problems } = await openPage(browser, server.url);
  const reportText = `Er verdwijnt geld uit de kas. ${MARKER}-melding`;
  const contact = `${MARKER}-contact@example.org`;
  const replyText = `Dank voor uw melding; wij zoeken dit uit. ${MARKER}-antwoord`;
  const followUpText = `Aanvulling: het gaat om maart. ${MARKER}-aanvulling`;
  let display;
  let caseId;

  await t.test("the server renders every page in both languages, with the CSP", async () => {
    const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
      "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
    for (const [path, lang] of Object.entries(ROUTES).flatMap(([lang, pages]) => Object.values(pages).map((p) => [p, lang]))) {
      const answer = await page.goto(`${server.url}${path}`);
      assert.equal(answer.status(), 200, path);
      assert.equal(answer.headers()["content-security-policy"], csp, path);
      assert.equal(await page.getAttribute("html", "lang"), lang, path);
      assert.ok(!(await page.content()).includes("{{"), `${path} has an unrendered placeholder`);
      if (path === "/" || path === "/en") await shot(page, `roundtrip-0-landing-${lang}`);
      // Every page names its icon, so the browser does not ask for /favicon.ico.
      const icon = await page.getAttribute('link[rel="icon"]', "href");
      assert.equal(icon, "/img/favicon.svg", path);
    }
    const icon = await page.request.get(`${server.url}/img/favicon.svg`);
    assert.equal(icon.status(), 200);
    assert.equal(icon.headers()["content-type"], "image/svg+xml");
    assert.match(await icon.text(), /^<svg /);
  });

  await t.test("the melder reports in the browser", async () => {
    await page.goto(`${server.url}/melden`);
    await page.getByLabel(counsellor.name).check();
    await page.selectOption("#category", "fraud-or-abuse-of-power");
    await page.locator("#text").pressSequentially(reportText);
    await page.fill("#contact", contact);
    await shot(page, "roundtrip-1-report-filled");
    await page.click("#submit");
    await page.locator("#done").waitFor({ state: "visible", timeout: 60_000 });
    display = (await page.textContent("#code")).trim();
    assert.equal(parseCode(display).length, 24);
    await shot(page, "roundtrip-2-report-code");
  });

  await t.test("the counsellor fetches it through the courier page and reads it", async () => {
    await counsellor.review("import", await courier(page, "outbox-1.tar", 3));
    const list = await counsellor.review("list");
    const line = list.split("\n").find((l) => /^[0-9a-f]{8}\b/.test(l));
    assert.ok(line, `no case in the list:\n${list}`);
    caseId = line.slice(0, 8);
    const shown = await counsellor.review("show", caseId);
    assert.ok(shown.includes(reportText), `show does not print the report:\n${shown}`);
    assert.ok(shown.includes(contact), `show does not print the contact details:\n${shown}`);
  });

  await t.test("the counsellor replies and the reply reaches the server", async () => {
    const replyFile = path.join(work.dir, "reply.txt");
    await writeFile(replyFile, `${replyText}\n`);
    await counsellor.review("reply", caseId, "--file", replyFile);
    await counsellor.review("import", await courier(page, "outbox-2.tar", 4));
  });

  await t.test("the melder reads the reply with the code and sends a follow-up", async () => {
    await page.goto(`${server.url}/mijn-melding`);
    await page.locator("#code").pressSequentially(display.toLowerCase());
    await page.click("#open");
    await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
    const items = page.locator("#messages > li");
    assert.equal(await items.count(), 2);
    assert.ok((await items.nth(0).textContent()).includes(reportText));
    const reply = await items.nth(1).textContent();
    assert.ok(reply.includes(replyText), `reply not shown: ${reply}`);
    assert.ok(reply.includes(counsellor.name), `reply author not shown: ${reply}`);
    await shot(page, "roundtrip-5-thread-reply");

    await page.fill("#followup-text", followUpText);
    await page.click("#followup-submit");
    await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 3, null, { timeout: 60_000 });
    assert.ok((await items.nth(2).textContent()).includes(followUpText));
    await shot(page, "roundtrip-6-thread-followup");
  });

  await t.test("the counsellor reads the follow-up", async () => {
    await counsellor.review("import", await courier(page, "outbox-3.tar", 7));
    const shown = await counsellor.review("show", caseId);
    assert.ok(shown.includes(followUpText), `show does not print the follow-up:\n${shown}`);
    assert.ok(shown.includes(replyText), `show does not print the reply:\n${shown}`);
  });

  await t.test("the pages ran clean: no CSP violation, no script error, nothing fetched elsewhere", () => {
    assertClean(problems);
  });
  await context.close();

  await t.test("canary: neither the marker nor the code or lookup key is anywhere on the server", async () => {
    const keys = await deriveKeys(display);
    const secrets = [
      Buffer.from(MARKER),
      Buffer.from(parseCode(display)),
      Buffer.from(display),
      Buffer.from(keys.lookupKey),
      Buffer.from(keys.lookupKey, "hex"),
      Buffer.from(keys.replyIdentity),
      Buffer.from(keys.replyIdentityPq),
    ];
    const search = async (when) => {
      const files = await filesUnder(work.data);
      assert.ok(files.length > 0, "the data directory holds the database");
      for (const file of files) {
        const bytes = await readFile(file);
        for (const secret of secrets) assert.equal(bytes.indexOf(secret), -1, `${secret} found in ${file} (${when})`);
      }
      // The lookup hash is what the server is meant to keep: proof we looked in the right place.
      const everything = Buffer.concat(await Promise.all(files.map((f) => readFile(f))));
      assert.notEqual(everything.indexOf(Buffer.from(keys.lookupHash, "hex")), -1, `the lookup hash is stored (${when})`);
      return files.map((f) => path.basename(f));
    };
    // While it runs, the WAL and shared-memory files hold the newest pages.
    const running = await search("while running");
    // Every stored message and attachment has stanzas of one kind only: the
    // counsellor's (hybrid unless CLASSICAL).
    const stored = Buffer.concat(await Promise.all((await filesUnder(work.data)).map((f) => readFile(f))));
    const hybridStanzas = stored.indexOf(Buffer.from("\n-> mlkem768x25519 ")) !== -1;
    const classicalStanzas = stored.indexOf(Buffer.from("\n-> X25519 ")) !== -1;
    assert.deepEqual({ hybridStanzas, classicalStanzas },
      CLASSICAL ? { hybridStanzas: false, classicalStanzas: true } : { hybridStanzas: true, classicalStanzas: false });
    assert.ok(running.some((name) => name.endsWith("-wal")), `no WAL file among ${running}`);
    // A clean stop checkpoints the WAL into the database: look again.
    const { code, signal } = await server.stop();
    assert.ok(code === 0 || signal === "SIGTERM", `server stopped badly: ${code} ${signal}`);
    await search("after a clean stop");
    const output = server.output();
    for (const secret of secrets) assert.equal(output.indexOf(secret), -1, `${secret} found in the server's output`);
  });
});
