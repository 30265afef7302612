// Streamed attachments end to end (protocol.md §3a, api.md "Uploads"): real
// server, real Chromium, real files. A report with a 200 MiB and a 1 MiB
// attachment, one chunk lost and retried unseen, then the line down until the
// page says so, and resumed; the code appears; what the server stored
// decrypts, with the counsellor's key, to the very bytes chosen; the thread
// lists the attachments and takes one more with a follow-up; the counsellor
// syncs, imports and exports them (meldkluis-review) and the SHA-256 of every
// exported file equals the original's. Also: cancelling deletes the uploads,
// and a file above the server's limit is refused before anything is sent.
// Screenshots: tests/browser/out/attachments-*.png.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/attachments.test.mjs

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { appendFile, copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { Decrypter } from "../../web/vendor/age.js";
import { solutionHeader } from "../../web/js/pow.js";
import {
  attachmentPaddedLength, base64ToBytes, buildEnvelope, bytesToBase64, deriveKeys, encrypt, formatCode, generateCode, parseCode, replyRecipientFor,
} from "../../web/js/protocol.js";
import { axe, overflow } from "./support/a11y.mjs";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import { REVIEW_BIN, makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { messages } from "./support/render.mjs";
import { openSent } from "./support/open-sent.mjs";

const nl = messages("nl");
const MIB = 1024 * 1024;
const RESET = /net::ERR_CONNECTION_RESET at .*\/api\/v1\/uploads\/chunk$/;

let work; // scratch: vault, keys/, data/, the files
let small; // a second server whose attachments may be at most 1 MiB
let server;
let smallServer;
let browser;
let jansen;
let identity; // Jansen's age identity, to read what the server stored
const files = {}; // name → { path, size, sha256 }

/** A file of random bytes, written 1 MiB at a time; resolves to its SHA-256. */
async function randomFile(file, size) {
  const out = createWriteStream(file);
  const hash = createHash("sha256");
  const block = Buffer.alloc(MIB);
  for (let left = size; left > 0; left -= MIB) {
    randomFillSync(block);
    const part = left >= MIB ? block : block.subarray(0, left);
    hash.update(part);
    if (!out.write(part)) await new Promise((resolve) => out.once("drain", resolve));
  }
  await new Promise((resolve, reject) => out.end((error) => (error ? reject(error) : resolve())));
  return hash.digest("hex");
}

async function sha256File(file) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return hash.digest("hex");
}

before(async () => {
  work = await scratch("attachments");
  small = await scratch("attachments-small");
  jansen = await makeCounsellor(work, {
    id: "vp-jansen", name: "Mr. A. Jansen", organisation: "Ministerie van Voorbeeldzaken",
    description: "Externe vertrouwenspersoon, bereikbaar op werkdagen.",
  });
  await copyFile(path.join(work.keys, "vp-jansen.json"), path.join(small.keys, "vp-jansen.json"));
  const config = path.join(small.dir, "meldkluis.toml");
  await writeFile(config, "max_attachment_bytes = 1048576\n");
  const dir = path.join(work.dir, "files");
  await mkdir(dir);
  for (const [name, size] of [["bestellijsten-2026.bin", 200 * MIB], ["notitie.bin", MIB], ["aanvulling.txt", 54_321], ["te-groot.bin", 2 * MIB]]) {
    const file = path.join(dir, name);
    files[name] = { path: file, size, sha256: await randomFile(file, size) };
  }
  [server, smallServer, browser, identity] = await Promise.all([
    startServer(work), startServer(small, ["--config", config]), launch(), jansen.identity(),
  ]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smallServer?.stop();
  await work?.remove();
  await small?.remove();
});

/** axe in light and dark finds nothing, and nothing scrolls sideways at 320 px. */
async function assertAccessible(page, state) {
  for (const colorScheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme });
    assert.deepEqual(await axe(page), [], `axe, ${state}, ${colorScheme}`);
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 320, height: 640 });
  assert.equal(await overflow(page), 0, `${state}: too wide at 320 px`);
  await page.setViewportSize({ width: 1280, height: 900 });
}

/**
 * A JSON call to the server's API, as any client could make it (with a
 * proof of work where the API asks one, solved by the page's own solver).
 */
async function api(url, apiPath, value) {
  const pow = ["/api/v1/reports", "/api/v1/thread/messages", "/api/v1/uploads"].includes(apiPath)
    ? { "Meldkluis-Pow": await solutionHeader(await (await fetch(`${url}/api/v1/pow`)).json()) }
    : {};
  const answer = await fetch(`${url}${apiPath}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...pow },
    body: JSON.stringify(value),
  });
  return { status: answer.status, body: await answer.json() };
}

/**
 * Screenshots at phone and desktop width (the whole page, and at phone
 * width also the part that changed, `detail`), the page left at desktop width.
 */
async function shots(page, name, detail) {
  for (const width of [360, 1280]) {
    await page.setViewportSize({ width, height: width === 360 ? 780 : 900 });
    await page.screenshot({ path: `${outDir}attachments-${name}-${width}.png`, fullPage: true });
    if (width === 360) await page.locator(detail).screenshot({ path: `${outDir}attachments-${name}-360-detail.png` });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

/** The upload ids the server handed out to this page, in order. */
function recordUploads(page) {
  const ids = [];
  page.on("response", async (response) => {
    if (response.request().method() === "POST" && new URL(response.url()).pathname === "/api/v1/uploads" && response.status() === 201) {
      ids.push((await response.json()).upload);
    }
  });
  return ids;
}

/**
 * The bytes the server's database holds of an upload (protocol.md §7a: they
 * live in `upload_chunks`, 1 MiB a row), written out to one file with the
 * sqlite3 tool, piece by piece.
 */
async function storedUpload(dataDir, upload) {
  assert.match(upload, /^[0-9a-f]{32}$/);
  const dir = await mkdtemp(path.join(tmpdir(), "meldkluis-stored-"));
  execFileSync("sqlite3", ["-readonly", path.join(dataDir, "meldkluis.sqlite"),
    `SELECT writefile('${dir}/' || printf('%015d', start), data) FROM upload_chunks WHERE upload_id = x'${upload}'`]);
  const pieces = (await readdir(dir)).sort();
  const whole = path.join(dir, "upload.age");
  for (const piece of pieces) {
    await appendFile(whole, await readFile(path.join(dir, piece)));
    await rm(path.join(dir, piece));
  }
  return whole;
}

/**
 * Decrypts a stored upload with the counsellor's identity, as a stream, and
 * checks §3a: the head hash, the padded length, zeros after the file; resolves
 * to the SHA-256 of the file's own bytes.
 */
async function openStored(dataDir, attachment) {
  const stored = await storedUpload(dataDir, attachment.upload);
  try {
    return await checkStored(stored, attachment);
  } finally {
    // Up to 200 MiB of ciphertext: never left behind in /tmp.
    await rm(path.dirname(stored), { recursive: true, force: true });
  }
}

async function checkStored(stored, attachment) {
  const head = (await readFile(stored)).subarray(0, 4096);
  const text = new TextDecoder("latin1").decode(head);
  const headLength = text.indexOf("\n", text.indexOf("\n--- ") + 1) + 1 + 16;
  assert.equal(createHash("sha256").update(head.subarray(0, headLength)).digest("hex"), attachment.head_sha256,
    `${attachment.name}: head_sha256 binds the stored file`);
  const decrypter = new Decrypter();
  decrypter.addIdentity(identity);
  const plain = await decrypter.decrypt(Readable.toWeb(createReadStream(stored, { highWaterMark: MIB })));
  const hash = createHash("sha256");
  let at = 0;
  let nonZeroPadding = false;
  for await (const chunk of plain) {
    const keep = Math.max(0, Math.min(chunk.length, attachment.size - at));
    hash.update(chunk.subarray(0, keep));
    if (chunk.subarray(keep).some((b) => b !== 0)) nonZeroPadding = true;
    at += chunk.length;
  }
  assert.equal(at, attachmentPaddedLength(attachment.size), `${attachment.name}: padded to its Padmé bucket`);
  assert.ok(!nonZeroPadding, `${attachment.name}: zeros after the file`);
  return hash.digest("hex");
}

const state = {}; // what the first test hands the next: code, keys

test("a report with a 200 MiB and a 1 MiB attachment survives a lost chunk and a dropped line, and arrives whole", async () => {
  const { context, page, problems } = await openPage(browser, server.url, { width: 1280 });
  const uploads = recordUploads(page);
  const reports = [];
  page.on("request", (r) => r.url().endsWith("/api/v1/reports") && reports.push(r.postDataJSON()));
  await page.goto(`${server.url}/melden`);
  await page.getByLabel("Mr. A. Jansen").check();
  await page.fill("#text", "De bestellijsten van maart tot en met juni, en mijn aantekeningen.");
  await page.locator("#attachments-limits").filter({ hasText: "500 MiB" }).waitFor();
  await page.setInputFiles("#attachments", [files["bestellijsten-2026.bin"].path, files["notitie.bin"].path]);
  assert.match(await page.textContent("#attachment-list"), /bestellijsten-2026\.bin \(200 MiB\)/);

  // The chunk requests pass a switch: "hold" keeps the first one past 16 MiB
  // waiting (the progress screenshots), "once" loses one, "down" loses all.
  let mode = "hold";
  let lost = 0;
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const seenOffsets = [];
  await page.route("**/api/v1/uploads/chunk", async (route) => {
    const offset = Number(route.request().headers()["upload-offset"]);
    seenOffsets.push(offset);
    if (mode === "hold" && offset >= 16 * MIB) {
      mode = "holding";
      await held;
    }
    if (mode === "down" || (mode === "once" && offset >= 24 * MIB)) {
      if (mode === "once") mode = "pass";
      lost++;
      await route.abort("connectionreset");
      return;
    }
    await route.continue();
  });

  const started = Date.now();
  await page.click("#submit");
  while (mode !== "holding") await new Promise((resolve) => setTimeout(resolve, 20));
  await page.waitForFunction(() => /^\S+: [1-9]\d* %/.test(document.querySelector("#upload-files li span")?.textContent));
  // Progress: a labelled bar per file, the total, the cancel button; the form read-only.
  const label = await page.locator("#upload-files li").first().locator("span").textContent();
  assert.match(label, /^bestellijsten-2026\.bin: \d+ % versleuteld en verstuurd$/);
  const bar = page.locator("#upload-files li").first().locator("progress");
  assert.equal(await bar.getAttribute("aria-labelledby"), "upload-file-0");
  assert.equal(await page.getByRole("progressbar", { name: label }).count(), 1, "the bar's accessible name is its label");
  assert.ok(await page.locator("#upload-cancel").isVisible());
  assert.ok(await page.locator("#upload-resume").isHidden());
  assert.equal(await page.locator("#text").getAttribute("readonly"), "");
  assert.equal(await page.getAttribute("#submit", "aria-disabled"), "true");
  await assertAccessible(page, "progress");
  await shots(page, "progress", "#report-form .progress-area");

  // The line goes down: the held chunk and its retries are lost.
  mode = "down";
  release();
  await page.locator("#upload-resume").waitFor({ state: "visible", timeout: 30_000 });
  assert.equal(await page.textContent("#status"), nl.upload_interrupted);
  assert.equal(await page.evaluate(() => document.activeElement.id), "upload-resume", "focus on Hervatten");
  assert.equal(await page.textContent("#upload-resume"), nl.upload_resume);
  assert.equal(lost, 3, "the first try and two retries");
  assert.equal(await page.inputValue("#text"), "De bestellijsten van maart tot en met juni, en mijn aantekeningen.");
  await assertAccessible(page, "interrupted");
  await shots(page, "interrupted", "#report-form .progress-area");

  // Back up, but one chunk further on is lost once more: retried unseen.
  mode = "once";
  await page.keyboard.press("Enter"); // on Hervatten
  while (mode !== "pass") await new Promise((resolve) => setTimeout(resolve, 20));
  // The rest goes straight to the server: interception copies every body.
  await page.unroute("**/api/v1/uploads/chunk");
  const unrouted = Date.now();
  await page.locator("#done").waitFor({ state: "visible", timeout: 300_000 });
  assert.ok(await page.locator("#upload-resume").isHidden(), "the single loss did not interrupt");
  const doneAt = Date.now();
  const seconds = (doneAt - started) / 1000;
  assert.equal(lost, 4);
  assert.equal(mode, "pass", "the single loss happened");
  const display = (await page.textContent("#code")).trim();
  assert.match(display, /^([0-9A-Z]{4}-){5}[0-9A-Z]{4}$/);
  await assertAccessible(page, "done");
  await shots(page, "done", "#done");
  // Every chunk went up in order, none beyond the server's chunk size.
  const limits = await (await fetch(`${server.url}/api/v1/limits`)).json();
  assert.ok(seenOffsets.every((offset) => offset % limits.chunk_bytes === 0), "whole chunks, from where the last one ended");

  // The report names both uploads; they are claimed, the text holds no file bytes.
  assert.equal(reports.length, 1);
  assert.deepEqual(reports[0].uploads, uploads);
  assert.equal(uploads.length, 2);
  const keys = await deriveKeys(parseCode(display));
  const thread = await api(server.url, "/api/v1/thread", { lookup_key: keys.lookupKey });
  assert.equal(thread.status, 200);
  const envelope = await openSent(base64ToBytes(thread.body.messages[0].message), identity, keys.thread);
  assert.deepEqual(envelope.attachments.map(({ name, type, size, upload }) => ({ name, type, size, upload })), [
    { name: "bestellijsten-2026.bin", type: "application/octet-stream", size: 200 * MIB, upload: uploads[0] },
    { name: "notitie.bin", type: "application/octet-stream", size: MIB, upload: uploads[1] },
  ]);
  for (const attachment of envelope.attachments) {
    assert.equal(await openStored(work.data, attachment), files[attachment.name].sha256, `${attachment.name}: the very bytes`);
  }
  console.log(`# 201 MiB encrypted and uploaded in ${seconds.toFixed(1)} s, interruption included; ` +
    `the part after the interception ended took ${((doneAt - unrouted) / 1000).toFixed(1)} s`);
  Object.assign(state, { display, keys, uploads });

  assertClean(problems, [RESET, RESET, RESET, RESET]);
  await context.close();
});

test("the thread lists the attachments by name and size, and a follow-up takes one more", async () => {
  const { display, keys } = state;
  assert.ok(display, "needs the report of the first test");
  const { context, page, problems } = await openPage(browser, server.url, { width: 1280 });
  await page.goto(`${server.url}/mijn-melding`);
  await page.fill("#code", display);
  await page.click("#open");
  await page.locator("#thread").waitFor({ state: "visible" });
  const first = page.locator("#messages > li").first();
  assert.deepEqual(await first.locator(".file-list li").allTextContents(), ["bestellijsten-2026.bin (200 MiB)", "notitie.bin (1 MiB)"]);
  assert.equal(await first.locator(".file-list a").count(), 0, "streamed attachments are not offered for download");

  await page.fill("#followup-text", "Nog een aanvulling, met bijlage.");
  await page.setInputFiles("#followup-attachments", files["aanvulling.txt"].path);
  await page.click("#followup-submit");
  await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 2);
  assert.equal(await page.textContent("#followup-status"), nl.followup_sent);
  assert.deepEqual(await page.locator("#messages > li").nth(1).locator(".file-list li").allTextContents(), ["aanvulling.txt (53 KiB)"]);
  assert.ok(await page.locator("#followup-upload").isHidden());

  const thread = await api(server.url, "/api/v1/thread", { lookup_key: keys.lookupKey });
  const followUp = await openSent(base64ToBytes(thread.body.messages[1].message), identity, keys.thread);
  assert.equal(followUp.kind, "follow-up");
  assert.equal(followUp.attachments.length, 1);
  assert.equal(await openStored(work.data, followUp.attachments[0]), files["aanvulling.txt"].sha256);
  state.followUpUpload = followUp.attachments[0].upload;
  assertClean(problems);
  await context.close();
});

// The counsellor's side, with the real offline reviewer: courier sync,
// streaming `import`, then `export --to DIR CASE`, which applies the §3a
// checks (head hash, padded length, zeros after the file).
test("the counsellor syncs, imports and exports the attachments: SHA-256 equal to the originals", async () => {
  assert.ok(state.display, "needs the report of the first test");
  // As jansen.sync(), but the inbox (over 200 MiB) streams to disk, and a
  // debug build of the reviewer gets more than the helper's 60 s.
  const review = (...args) => new Promise((resolve, reject) => {
    const passphrase = path.join(work.dir, `${jansen.id}.passphrase`);
    execFile(REVIEW_BIN, ["--vault", jansen.vault, "--passphrase-file", passphrase, ...args],
      { encoding: "utf8", timeout: 600_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${args[0]}: ${stderr}`)) : resolve(stdout)));
  });
  const outbox = path.join(work.dir, "attachments-outbox-1.tar");
  await review("outbox", outbox);
  const answer = await fetch(`${server.url}/api/v1/courier/sync`, {
    method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: await readFile(outbox),
  });
  assert.equal(answer.status, 200);
  const inbox = path.join(work.dir, "attachments-inbox-1.age");
  await pipeline(Readable.fromWeb(answer.body), createWriteStream(inbox));
  let started = Date.now();
  await review("import", inbox);
  const imported = (Date.now() - started) / 1000;
  const list = await review("list");
  const cases = list.split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l));
  assert.equal(cases.length, 1, `one case:\n${list}`);
  const exportDir = path.join(work.dir, "export");
  started = Date.now();
  await review("export", cases[0].slice(0, 8), "--to", exportDir);
  console.log(`# reviewer (debug build): import ${imported.toFixed(1)} s, export ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const exported = await readdir(exportDir);
  for (const name of ["bestellijsten-2026.bin", "notitie.bin", "aanvulling.txt"]) {
    const found = exported.filter((file) => file.endsWith(name));
    assert.equal(found.length, 1, `${name} among ${exported.join(", ")}`);
    assert.equal(await sha256File(path.join(exportDir, found[0])), files[name].sha256, `${name}: SHA-256`);
  }
  assert.equal(exported.length, 3);
});

test("cancel stops the upload, deletes every upload of the report and gives the form back", async () => {
  const { context, page, problems } = await openPage(browser, server.url, { width: 1280 });
  const uploads = recordUploads(page);
  let reports = 0;
  page.on("request", (r) => r.url().endsWith("/api/v1/reports") && reports++);
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let holding = false;
  await page.route("**/api/v1/uploads/chunk", async (route) => {
    // The 1 MiB file goes first and whole; the second file's first chunk is held.
    if (uploads.length === 2 && route.request().headers()["upload-id"] === uploads[1] && !holding) {
      holding = true;
      await held;
      await route.abort("connectionaborted").catch(() => {}); // the page has given up on it already
      return;
    }
    await route.continue();
  });
  await page.goto(`${server.url}/melden`);
  await page.getByLabel("Mr. A. Jansen").check();
  await page.fill("#text", "Deze melding verstuur ik toch niet.");
  // A long name without a break must not widen the page.
  const long = "een-heel-lange-bestandsnaam-zonder-spaties-van-de-afdeling-inkoop-maart-tot-en-met-juni-2026.pdf";
  await page.setInputFiles("#attachments", [
    { name: "notitie.bin", mimeType: "application/octet-stream", buffer: await readFile(files["notitie.bin"].path) },
    { name: long, mimeType: "application/pdf", buffer: Buffer.alloc(3 * MIB, 5) },
  ]);
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelector("#upload-files li progress")?.value === 1);
  while (!holding) await new Promise((resolve) => setTimeout(resolve, 20));
  // Encrypted (half the bar) but nothing acknowledged yet: below 50 %.
  const held2 = await page.locator("#upload-files li").nth(1).textContent();
  assert.match(held2, new RegExp(`^${long}: \\d+ %`));
  assert.ok(Number(/: (\d+) %/.exec(held2)[1]) < 50, held2);
  await assertAccessible(page, "cancel, progress with a long name");
  assert.equal((await api(server.url, "/api/v1/uploads/status", { upload: uploads[0] })).body.complete, true);

  await page.click("#upload-cancel");
  await page.waitForFunction((text) => document.querySelector("#status").textContent === text, nl.upload_cancelled);
  release();
  assert.ok(await page.locator("#upload").isHidden());
  assert.equal(await page.evaluate(() => document.activeElement.id), "submit");
  assert.equal(await page.inputValue("#text"), "Deze melding verstuur ik toch niet.");
  assert.equal(await page.locator("#text").getAttribute("readonly"), null, "the text is editable again");
  assert.equal(await page.locator("#attachments").isDisabled(), false);
  assert.equal(await page.evaluate(() => document.querySelector("#attachments").files.length), 2, "the files stay chosen");
  assert.equal(reports, 0, "no report was sent");
  assert.equal(uploads.length, 2);
  for (const upload of uploads) {
    const answer = await api(server.url, "/api/v1/uploads/status", { upload });
    assert.deepEqual([answer.status, answer.body.error], [404, "unknown_upload"], "deleted on the server");
  }
  // The chunk request the page gave up on may be logged as aborted.
  assertClean(problems.filter((p) => !/net::ERR_(ABORTED|CONNECTION_ABORTED) at .*\/api\/v1\/uploads\/chunk$/.test(p)));
  await context.close();
});

test("an older report with inline attachments still shows them, by name, as downloads", async () => {
  // Made as the pages made reports before streamed attachments: the file in the envelope.
  const code = generateCode();
  const keys = await deriveKeys(code);
  const card = JSON.parse(await readFile(path.join(work.keys, "vp-jansen.json"), "utf8"));
  const envelope = buildEnvelope({
    kind: "report", text: "Een oudere melding.", replyRecipient: replyRecipientFor(keys, [card.age_recipient]), counsellors: ["vp-jansen"],
    attachments: [{ name: "oud-verslag.txt", type: "text/plain", data: Buffer.from("inline bytes\n").toString("base64") }],
  });
  const sealed = await encrypt(envelope, [card.age_recipient, replyRecipientFor(keys, [card.age_recipient])]);
  const stored = await api(server.url, "/api/v1/reports", { counsellors: ["vp-jansen"], lookup_key: keys.lookupKey, message: bytesToBase64(sealed) });
  assert.equal(stored.status, 201);

  const { context, page, problems } = await openPage(browser, server.url, { width: 1280 });
  await page.goto(`${server.url}/mijn-melding`);
  await page.fill("#code", formatCode(code));
  await page.click("#open");
  await page.locator("#thread").waitFor({ state: "visible" });
  const link = page.locator("#messages .file-list a");
  assert.equal(await link.textContent(), "oud-verslag.txt");
  assert.equal(await link.getAttribute("download"), "oud-verslag.txt");
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  assert.equal(await readFile(await download.path(), "utf8"), "inline bytes\n");
  assertClean(problems);
  await context.close();
});

test("a file above the server's limit is refused by name and size before anything is encrypted or sent", async () => {
  const { context, page, problems } = await openPage(browser, smallServer.url, { width: 1280 });
  const sent = [];
  page.on("request", (r) => r.url().includes("/api/v1/uploads") && sent.push(r.url()));
  await page.goto(`${smallServer.url}/melden`);
  await page.getByLabel("Mr. A. Jansen").check();
  await page.fill("#text", "Met een te groot bestand.");
  await page.locator("#attachments-limits").filter({ hasText: "1 MiB" }).waitFor();
  assert.equal(await page.textContent("#attachments-limits"), nl.attachments_limits.replace("{count}", "20").replace("{max}", "1 MiB"));
  await page.setInputFiles("#attachments", [files["notitie.bin"].path, files["te-groot.bin"].path]);
  const expected = nl.attachments_file_too_large.replace("{name}", "te-groot.bin").replace("{size}", "2 MiB").replace("{max}", "1 MiB");
  await page.locator("#attachments-error").filter({ hasText: expected }).waitFor();
  assert.equal(await page.getAttribute("#attachments", "aria-invalid"), "true");
  await page.click("#submit");
  await page.locator("#error-summary").waitFor({ state: "visible" });
  assert.deepEqual(await page.locator("#error-summary li").allTextContents(), [expected]);
  await page.screenshot({ path: `${outDir}attachments-too-large-1280.png`, fullPage: true });
  assert.deepEqual(sent, [], "no upload was made");
  // The server refuses the same on its own (a page that skipped the check).
  const refused = await api(smallServer.url, "/api/v1/uploads", { length: 2 * MIB + 4096 });
  assert.equal(refused.status, 413);
  assert.equal(refused.body.error, "too_large");

  // A file within the limit goes.
  await page.setInputFiles("#attachments", files["notitie.bin"].path);
  await page.locator("#attachments-error").waitFor({ state: "hidden" });
  assertClean(problems);
  await context.close();
});
