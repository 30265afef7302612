// The pages in real Chromium against the real server (`meldkluis serve`)
// and real counsellors (meldkluis-review vaults): what the browser encrypts,
// to whom, how it retries, how it shows untrusted replies, and how the pages
// look (PNG screenshots in tests/browser/out/). A failure the server would
// not produce by itself (a lost answer) is made with page.route() on that one
// request; every other request reaches the server. The whole journey with
// the canary check is roundtrip.test.mjs.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/pages.test.mjs

import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { Decrypter } from "../../web/vendor/age.js";
import {
  base64ToBytes,
  deriveKeys,
  generateCode,
  parseCode,
} from "../../web/js/protocol.js";
import { messages } from "./support/render.mjs";
import { openSent } from "./support/open-sent.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { assertClean, launch, openPage, shot } from "./support/browser.mjs";

const nl = messages("nl");
const en = messages("en");
const MARKER = `canary-${Date.now().toString(36)}`;
// Small enough that a report with 300 KiB of text meets the server's own
// 413, far above what the other reports here need. (Attachments travel as
// uploads in chunks, which this limit does not govern.)
const MAX_BODY_BYTES = 256 * 1024;

let work; // scratch directory: vaults, keys/, data/, bundles
let server;
let browser;
let jansen; // the counsellor the melder picks
let deVries; // a counsellor the melder does not pick
let identities; // their age identities, unlocked in the background
const state = {}; // what one test hands the next (code, keys)

before(async () => {
  work = await scratch("pages");
  [jansen, deVries] = await Promise.all([
    makeCounsellor(work, {
      id: "vp-jansen", name: "Mr. A. Jansen", organisation: "Ministerie van Voorbeeldzaken", kind: "external",
      description: "Externe vertrouwenspersoon, bereikbaar op werkdagen.",
    }),
    makeCounsellor(work, { id: "vp-de-vries", name: "Drs. B. de Vries", organisation: "Ministerie van Voorbeeldzaken", kind: "internal" }),
  ]);
  identities = Promise.all([jansen.identity(), deVries.identity()]);
  identities.catch(() => {}); // awaited (and reported) by the first test that needs them
  [server, browser] = await Promise.all([
    startServer(work, ["--max-body-bytes", String(MAX_BODY_BYTES)]),
    launch(),
  ]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

// Recipient stanzas of the counsellors' kind: post-quantum hybrid, what
// `init` makes (a file never holds both kinds, protocol.md §9).
const stanzaCount = (bytes) =>
  new TextDecoder("latin1").decode(bytes.subarray(0, 20_000)).split("\n").filter((l) => l.startsWith("-> mlkem768x25519 ")).length;

/** A JSON call to the server's API, as any client could make it. */
async function api(apiPath, value) {
  const answer = await fetch(`${server.url}${apiPath}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(value),
  });
  return { status: answer.status, body: await answer.json() };
}

/** What the page POSTs to `apiPath`: [{ body, status() }] in order. */
function recordPosts(page, apiPath) {
  const posts = [];
  page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === apiPath) {
      posts.push({ body: request.postDataBuffer(), status: async () => (await request.response())?.status() });
    }
  });
  return posts;
}

/** The regular files in a ustar archive, by name. */
function tarEntries(tar) {
  const entries = new Map();
  for (let at = 0; at + 512 <= tar.length;) {
    const field = (from, length) => tar.toString("latin1", at + from, at + from + length).replace(/\0.*$/s, "");
    const name = field(0, 100);
    if (!name) break;
    const size = parseInt(field(124, 12).trim(), 8);
    entries.set(name, { offset: at + 512, bytes: tar.subarray(at + 512, at + 512 + size) });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

test("the report form checks its fields, encrypts to the chosen counsellor and survives a lost answer", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  // As in Tor Browser at "Safer": no WebAssembly. The bundle must not need it.
  await context.addInitScript(() => { delete globalThis.WebAssembly; });
  const posts = recordPosts(page, "/api/v1/reports");
  await page.goto(`${server.url}/melden`);
  await page.getByLabel("Mr. A. Jansen").waitFor();
  assert.equal(await page.evaluate(() => typeof WebAssembly), "undefined");
  await shot(page, "pages-report-empty");

  await page.click("#submit");
  assert.equal(await page.textContent("#counsellors-error"), nl.report_error_counsellors);
  assert.equal(await page.textContent("#text-error"), nl.report_error_text);
  assert.equal(await page.getAttribute("#text", "aria-invalid"), "true");
  await shot(page, "pages-report-errors");

  await page.getByLabel("Mr. A. Jansen").check();
  await page.selectOption("#category", "conflict-of-interest");
  await page.locator("#text").pressSequentially(`Er verdwijnt geld. ${MARKER} <b>niet vet</b>`);
  await page.fill("#contact", `privé ${MARKER}`);
  // The second file's name and content are hostile; the thread test shows it.
  await page.setInputFiles("#attachments", [
    { name: "notitie.txt", mimeType: "text/plain", buffer: Buffer.from(`bijlage ${MARKER}\n`) },
    { name: "<script>.html", mimeType: "text/html", buffer: Buffer.from("<script>alert(1)</script>") },
  ]);
  assert.match(await page.textContent("#attachment-list"), /notitie\.txt/);

  // The server stores the report but its answer is lost (a proxy answers
  // 502): the form freezes, keeps the text and offers a retry.
  let firstAnswer;
  await page.route("**/api/v1/reports", async (route) => {
    firstAnswer = (await route.fetch()).status();
    await route.fulfill({ status: 502, contentType: "text/html", body: "<h1>502 Bad Gateway</h1>" });
  }, { times: 1 });
  await page.click("#submit");
  await page.locator("#retry").waitFor({ state: "visible" });
  assert.equal(firstAnswer, 201, "the server stored the report the first time");
  assert.equal(await page.inputValue("#text"), `Er verdwijnt geld. ${MARKER} <b>niet vet</b>`);
  assert.equal(await page.locator("#text").getAttribute("readonly"), "");
  assert.ok((await page.textContent("#status")).includes(nl.report_error_uncertain));
  await shot(page, "pages-report-retry");

  await page.click("#retry");
  await page.locator("#done").waitFor({ state: "visible" });
  const display = (await page.textContent("#code")).trim();
  assert.match(display, /^([0-9A-Z]{4}-){5}[0-9A-Z]{4}$/);
  await shot(page, "pages-report-done");

  // The retry resent the very same bytes under the same code, and the server
  // recognised it (200) instead of refusing it as code_in_use.
  assert.equal(posts.length, 2);
  assert.deepEqual(posts[0].body, posts[1].body);
  assert.equal(await posts[1].status(), 200);

  const keys = await deriveKeys(parseCode(display));
  Object.assign(state, { display, keys });
  const stored = await api("/api/v1/thread", { lookup_key: keys.lookupKey });
  assert.equal(stored.status, 200, "stored under the lookup key derived from the shown code");
  assert.deepEqual(stored.body.counsellors, ["vp-jansen"]);
  assert.equal(stored.body.messages.length, 1);
  assert.equal(stored.body.messages[0].message, JSON.parse(posts[0].body).message);
  assert.ok(!posts[0].body.toString().includes(MARKER), "no plaintext on the wire");
  assert.ok(!posts[0].body.toString().includes(parseCode(display)), "no code on the wire");

  const [jansenIdentity, deVriesIdentity] = await identities;
  const sealed = base64ToBytes(stored.body.messages[0].message);
  assert.equal(stanzaCount(sealed), 2, "the chosen counsellor and the reply key, no one else");
  const envelope = await openSent(sealed, jansenIdentity, keys.thread);
  assert.deepEqual(await openSent(sealed, keys.replyIdentityPq, keys.thread), envelope);
  await assert.rejects(openSent(sealed, deVriesIdentity, keys.thread));
  assert.equal(envelope.kind, "report");
  assert.equal(envelope.text, `Er verdwijnt geld. ${MARKER} <b>niet vet</b>`);
  assert.equal(envelope.category, "conflict-of-interest");
  assert.equal(envelope.contact, `privé ${MARKER}`);
  assert.equal(envelope.reply_recipient, keys.replyRecipientPq);
  assert.deepEqual(envelope.counsellors, ["vp-jansen"]);
  // Streamed attachments (protocol.md §3a): named by upload, each its own
  // age file; attachments.test.mjs follows their bytes to the counsellor.
  assert.deepEqual(envelope.attachments.map(({ name, type, size }) => ({ name, type, size })), [
    { name: "notitie.txt", type: "text/plain", size: `bijlage ${MARKER}\n`.length },
    { name: "<script>.html", type: "text/html", size: 25 },
  ]);
  assert.deepEqual(JSON.parse(posts[0].body).uploads, envelope.attachments.map((a) => a.upload));
  assert.ok(envelope.attachments.every((a) => /^[0-9a-f]{64}$/.test(a.head_sha256) && !("data" in a)));
  assert.ok(sealed.length > 4096, "padded to a bucket");

  // The code can be copied and saved; the form no longer holds the plaintext.
  await page.click("#copy-code");
  await page.waitForFunction(() => document.querySelector("#copy-status").textContent !== "");
  assert.equal(await page.textContent("#copy-status"), nl.done_copied);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), display);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-code")]);
  assert.equal(download.suggestedFilename(), nl.done_file_name);
  const saved = await readFile(await download.path(), "utf8");
  assert.ok(saved.includes(display) && saved.includes("/mijn-melding"));
  assert.equal(await page.inputValue("#text"), "");

  assertClean(problems, [/status of 502 .*\/api\/v1\/reports$/]);
  await context.close();
});

test("a definite refusal lets the melder edit and send again; unsent text is guarded", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/en/report`);
  await page.getByLabel("Drs. B. de Vries").check();
  await page.locator("#text").pressSequentially("Second report.");
  // More than the server takes (MAX_BODY_BYTES), less than the page allows.
  await page.locator("#text").fill(`Second report. ${"x".repeat(300 * 1024)}`);
  await page.setInputFiles("#attachments", [
    { name: "scan.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(30 * 1024, 7) },
  ]);
  const uploads = [];
  page.on("response", async (r) => r.url().endsWith("/api/v1/uploads") && r.status() === 201 && uploads.push((await r.json()).upload));

  await page.click("#submit");
  await page.waitForFunction(() => document.querySelector("#status").dataset.kind === "error");
  assert.equal(await page.textContent("#status"), en.error_too_large);
  assert.ok(await page.locator("#submit").isVisible(), "no retry after a refusal: edit and send");
  assert.equal(await page.locator("#text").getAttribute("readonly"), null);
  // The refused report's attachment does not linger on the server.
  assert.equal(uploads.length, 1);
  await assert.doesNotReject(async () => {
    for (let i = 0; (await api("/api/v1/uploads/status", { upload: uploads[0] })).status !== 404; i++) {
      if (i > 50) throw new Error("the upload was not deleted");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  // Leaving with unsent text asks first (the handler cancels beforeunload),
  // and without text (or a file) it does not.
  const leaving = () => page.evaluate(() => {
    const event = new Event("beforeunload", { cancelable: true });
    window.dispatchEvent(event);
    return event.defaultPrevented;
  });
  assert.equal(await leaving(), true);
  await page.fill("#text", "");
  await page.setInputFiles("#attachments", []);
  assert.equal(await leaving(), false);
  assertClean(problems, [/status of 413 .*\/api\/v1\/reports$/]);
  await context.close();
});

test("my report: clear errors per kind, then the thread with an untrusted reply, then a follow-up", async () => {
  const { display, keys } = state;
  assert.ok(display, "needs the report of the first test");

  // Counsellor Jansen fetches the report and answers with hostile markup,
  // through the real courier round trip.
  const hostile = `<img src=x onerror="window.__owned=1"> Dank voor uw melding. ${MARKER}`;
  await jansen.sync(server.url, "thread-outbox-1");
  const list = await jansen.review("list");
  const cases = list.split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l));
  assert.equal(cases.length, 1, `one case for Jansen:\n${list}`);
  const replyFile = path.join(work.dir, "reply.txt");
  await writeFile(replyFile, hostile);
  await jansen.review("reply", cases[0].slice(0, 8), "--file", replyFile);
  await jansen.sync(server.url, "thread-outbox-2");

  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/en/my-report`);
  const tryCode = async (typed) => {
    await page.fill("#code", typed);
    await page.click("#open");
    await page.locator("#code-error").waitFor({ state: "visible" });
    return page.textContent("#code-error");
  };
  const canonical = parseCode(display);
  assert.equal(await tryCode(`${canonical.slice(0, 5)}U${canonical.slice(6)}`),
    en.code_error_invalid_character.replace("{character}", "“U”").replace("{position}", "6"));
  assert.equal(await tryCode(canonical.slice(0, 20)),
    en.code_error_wrong_length.replace("{expected}", "24").replace("{length}", "20"));
  const swapped = canonical[0] === canonical[1] ? canonical.slice(0, 23) + (canonical[23] === "0" ? "1" : "0")
    : canonical[1] + canonical[0] + canonical.slice(2);
  assert.equal(await tryCode(swapped), en.code_error_check_failed);
  await shot(page, "pages-thread-code-error");
  assert.equal(await tryCode(generateCode()), en.error_unknown_code);

  // Typed sloppily: lower case, spaces instead of dashes.
  await page.fill("#code", display.toLowerCase().replaceAll("-", " "));
  await page.click("#open");
  await page.locator("#thread").waitFor({ state: "visible" });
  const items = page.locator("#messages > li");
  assert.equal(await items.count(), 2);
  assert.match(await items.nth(0).textContent(), new RegExp(`${en.thread_author_you}.*${en.kind_report}`));
  assert.match(await items.nth(0).textContent(), new RegExp(MARKER));
  assert.match(await items.nth(0).textContent(), new RegExp(en.category_conflict_of_interest));
  assert.match(await items.nth(1).textContent(), /Mr\. A\. Jansen/);
  assert.equal(await items.nth(1).locator(".message-text").textContent(), hostile);
  assert.equal(await page.locator("#messages img, #messages script, #messages b").count(), 0);
  assert.equal(await page.evaluate(() => window.__owned), undefined);
  // The reviewer sends no attachments, so the hostile file is the report's
  // own: streamed, so shown by name and size, as text, not offered as a link.
  assert.deepEqual(await items.nth(0).locator(".file-list li").allTextContents(),
    [`notitie.txt (${`bijlage ${MARKER}\n`.length} bytes)`, "<script>.html (25 bytes)"]);
  assert.equal(await items.nth(0).locator("a[download]").count(), 0);
  await shot(page, "pages-thread-open");

  // Follow-up, encrypted to the case's counsellor and the melder.
  await page.fill("#followup-text", `Aanvulling ${MARKER}`);
  await page.click("#followup-submit");
  await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 3);
  assert.equal(await page.textContent("#followup-status"), en.followup_sent);
  const thread = await api("/api/v1/thread", { lookup_key: keys.lookupKey });
  assert.equal(thread.body.messages.length, 3);
  assert.equal(thread.body.messages[2].author, "melder");
  const followUp = base64ToBytes(thread.body.messages[2].message);
  assert.equal(stanzaCount(followUp), 2);
  const [jansenIdentity] = await identities;
  const opened = await openSent(followUp, jansenIdentity, keys.thread);
  assert.equal(opened.kind, "follow-up");
  assert.equal(opened.text, `Aanvulling ${MARKER}`);
  assert.deepEqual(await openSent(followUp, keys.replyIdentityPq, keys.thread), opened);
  await shot(page, "pages-thread-followup");

  await page.click("#close-thread");
  assert.equal(await page.inputValue("#code"), "");
  assert.ok(await page.locator("#thread").isHidden());
  assertClean(problems, [/status of 404 .*\/api\/v1\/thread$/]); // the unknown code
  await context.close();
});

test("courier: the outbox goes up as raw bytes and the inbox comes down as a file; errors are explained", async () => {
  const outboxFile = path.join(work.dir, "courier-outbox.tar");
  await jansen.review("outbox", outboxFile);
  const outbox = await readFile(outboxFile);
  const { counter } = JSON.parse(tarEntries(outbox).get("manifest.json").bytes);
  // The same outbox with one character of its signature changed.
  const forged = Buffer.from(outbox);
  const signatureAt = tarEntries(outbox).get("manifest.sig").offset;
  forged[signatureAt] = forged[signatureAt] === 0x41 ? 0x42 : 0x41;

  const { context, page, problems } = await openPage(browser, server.url);
  const posts = recordPosts(page, "/api/v1/courier/sync");
  await page.goto(`${server.url}/koerier`);
  await shot(page, "pages-courier");

  await page.setInputFiles("#outbox", { name: "outbox.tar", mimeType: "application/x-tar", buffer: forged });
  await page.click("#sync");
  await page.waitForFunction(() => document.querySelector("#status").dataset.kind === "error");
  assert.equal(await page.textContent("#status"), nl.error_bad_signature);
  await shot(page, "pages-courier-error");

  await page.setInputFiles("#outbox", { name: "outbox.tar", mimeType: "application/x-tar", buffer: outbox });
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#sync")]);
  const inboxName = `meldkluis-inbox-vp-jansen-${counter}.age`;
  assert.equal(download.suggestedFilename(), inboxName);
  assert.equal(posts.length, 2);
  assert.deepEqual(posts[0].body, forged);
  assert.deepEqual(posts[1].body, outbox);
  // The download is the inbox, encrypted to Jansen, answering this outbox.
  const [jansenIdentity] = await identities;
  const decrypter = new Decrypter();
  decrypter.addIdentity(jansenIdentity);
  const inbox = Buffer.from(await decrypter.decrypt(await readFile(await download.path())));
  const manifest = JSON.parse(tarEntries(inbox).get("manifest.json").bytes);
  assert.equal(manifest.format, "meldkluis-inbox");
  assert.equal(manifest.counsellor, "vp-jansen");
  assert.equal(manifest.answers_counter, counter);
  await page.locator("#result").waitFor({ state: "visible" });
  assert.ok((await page.textContent("#result-text")).includes(inboxName));
  await shot(page, "pages-courier-done");
  assertClean(problems, [/status of 401 .*\/api\/v1\/courier\/sync$/]);
  await context.close();
});
