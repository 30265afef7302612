// Protocol v2 (docs/protocol.md §10.4) against a hostile server: the
// operator's powers are real here. It edits the running server's SQLite
// database with the sqlite3 command-line tool (insert, delete, reorder,
// replay messages) and swaps a card in keys/ (then SIGHUP), and the melder's
// page in headless Chromium must warn or refuse each time, never showing a
// forged message as genuine:
//   (a) a swapped age_recipient: the follow-up is still encrypted to the
//       pinned card only (the stanzas; the real identity opens it, the
//       forger's does not), and the reply's author is the pinned card's name;
//   (b) forged replies (unsigned, signed by a wrong key, claiming another
//       counsellor's id, from a counsellor not pinned) → warnings, no text,
//       their statuses ignored;
//   (c) a genuine reply deleted → "a message is missing here";
//   (d) messages reordered → "out of order";
//   (e) a reply inserted twice → a replay warning;
//   (f) an introduction pins a new counsellor, whose reply is then genuine;
//   (g) a question turned into a report, and an evaluation, are signed and
//       chained;
//   (h) the real reviewer's signed reply is genuine on the page, its replay
//       and a forgery in its name are not, and the reviewer reads the
//       melder's answer as the melder's;
//   (i) the real reviewer introduces a real colleague (meldkluis-review
//       introduce): the page shows the introduction as genuine with the
//       colleague's name and fingerprint, the colleague's laptop takes the
//       case on and reads the melder's messages, and its reply is genuine;
//   and a v1 thread (as an older page wrote it) says, once, "older format,
//   not verified", and gets v1 follow-ups.
//
// Genuine replies in (a)–(g) come from this file's own counsellors, whose
// cards (an age identity and an Ed25519 key) the test makes and signs with,
// so that it can forge, number and chain them at will; (h) and
// tests/browser/roundtrip.test.mjs run the real meldkluis-review.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/hostile.test.mjs

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import {
  Decrypter, Encrypter, generateX25519Identity, identityToRecipient,
} from "../../web/vendor/age.js";
import {
  deriveKeys, fileHash, padEnvelope, padSigned, parseMessage, publicKeyOf, signInner,
  verifyText,
} from "../../web/js/protocol.js";
import { cardFingerprint } from "../../web/js/fingerprint.js";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import { checkState as checkStateAs } from "./support/a11y.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";

const checkState = (page, name) => checkStateAs(page, name, { dir: outDir, prefix: "hostile", phone: 390 });
const ORG = "testzaken";

let work;
let server;
let browser;
let database;
const counsellors = {};
let forger; // the operator's own keys
let real; // a counsellor with a real vault: meldkluis-review signs its replies
let colleague; // a second real vault, chosen by nobody: introduced by `real` in (i)

before(async () => {
  work = await scratch("hostile");
  for (const [id, name, kind] of [
    ["vp-aarts", "Mr. A. Aarts", "external"],
    ["vp-bos", "Drs. B. Bos", "internal"],
    ["vp-claes", "C. Claes", "external"], // chosen by nobody: pinned only by an introduction
  ]) counsellors[id] = await testCounsellor(id, name, kind);
  real = await makeCounsellor(work, {
    id: "vp-echt", name: "Mr. E. Echt", organisation: "Ministerie van Testzaken", org: ORG,
    description: "Vertrouwenspersoon met een echte kluis.",
  });
  colleague = await makeCounsellor(work, {
    id: "vp-collega", name: "Mw. C. Collega", organisation: "Ministerie van Testzaken", org: ORG,
    description: "Collega die pas later meeleest.",
  });
  forger = { identity: await generateX25519Identity(), seed: randomBytes(32) };
  forger.recipient = await identityToRecipient(forger.identity);
  [server, browser] = await Promise.all([startServer(work), launch()]);
  const files = await readdir(work.data);
  database = path.join(work.data, files.find((f) => f.endsWith(".sqlite")));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

// ------------------------------------------------------------- counsellors --

/** A counsellor whose card this test makes: age identity, Ed25519 seed, card in keys/. */
async function testCounsellor(id, name, kind) {
  const identity = await generateX25519Identity();
  const seed = randomBytes(32);
  const card = {
    format: "meldkluis-card", v: 1, id, name, organisation: "Ministerie van Testzaken", org: ORG, kind,
    description: `Vertrouwenspersoon ${name} voor de vijandige-servertest.`, lang: "nl",
    age_recipient: await identityToRecipient(identity), signing_key: publicKeyOf(seed),
  };
  await writeCard(card);
  return { id, name, identity, seed, card };
}

const writeCard = (card) => writeFile(path.join(work.keys, `${card.id}.json`), `${JSON.stringify(card, null, 2)}\n`);

/** The operator's card swap: write keys/, SIGHUP, wait until the API serves it. */
async function installCard(card) {
  await writeCard(card);
  server.process.kill("SIGHUP");
  for (let i = 0; i < 100; i++) {
    const answer = await (await fetch(`${server.url}/api/v1/counsellors?org=${ORG}`)).json();
    if (answer.counsellors.find((c) => c.id === card.id)?.age_recipient === card.age_recipient) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`the server did not reload ${card.id}`);
}

async function decryptWith(identity, bytes) {
  const decrypter = new Decrypter();
  decrypter.addIdentity(identity);
  return parseMessage(await decrypter.decrypt(bytes));
}

/** A reply as a counsellor's laptop signs it (§10.2): encrypted to the melder and the writer. */
async function reply({ signer, authorId = signer.id, authorName = signer.name, keys, seq, prev, day, text, status, introduces }) {
  const inner = {
    v: 2, kind: "reply", text, lang: "nl", author: { id: authorId, name: authorName }, attachments: [],
    thread: keys.thread, seq, prev, day,
  };
  if (status) inner.status = status;
  if (introduces) inner.introduces = introduces;
  const outer = signInner(inner, signer.seed);
  const encrypter = new Encrypter();
  for (const r of [keys.replyRecipient, signer.card?.age_recipient ?? forger.recipient]) encrypter.addRecipient(r);
  return encrypter.encrypt(padSigned(outer));
}

// --------------------------------------------------------------- database --

function sqlite(args, input) {
  const run = spawnSync("sqlite3", [...args, database], { input: `.timeout 10000\n${input}`, encoding: "utf8" });
  assert.equal(run.status, 0, `sqlite3 failed: ${run.stderr}`);
  return run.stdout;
}

const query = (sql) => JSON.parse(sqlite(["-json"], sql) || "[]");
const hex = (bytes) => Buffer.from(bytes).toString("hex");

/** The case of a code, and its messages in thread order (bodies as bytes). */
function caseOf(keys) {
  const [{ id }] = query(`SELECT hex(id) AS id FROM cases WHERE lookup_hash = X'${keys.lookupHash}';`);
  return id;
}

function messages(caseId) {
  return query(`SELECT hex(id) AS id, position, author, kind, day, hex(body_sha256) AS sha, hex(body) AS body
    FROM messages WHERE case_id = X'${caseId}' ORDER BY position;`)
    .map((m) => ({ ...m, bytes: Buffer.from(m.body, "hex") }));
}

/**
 * Inserts an age file as the server stores a message, at the end of the
 * thread. `sha` lets the operator put the same body in twice (the column is
 * unique; nothing checks it against the body).
 */
function insert(caseId, { author, kind, day, bytes, sha = createHash("sha256").update(bytes).digest("hex") }) {
  const [{ next }] = query(`SELECT COALESCE(MAX(position) + 1, 0) AS next FROM messages WHERE case_id = X'${caseId}';`);
  sqlite([], `INSERT INTO messages (id, case_id, position, author, kind, day, size, body_sha256, body)
    VALUES (X'${randomBytes(16).toString("hex")}', X'${caseId}', ${next}, '${author}', '${kind}', '${day}',
    ${bytes.length}, X'${sha}', X'${hex(bytes)}');`);
}

/** Puts a case's messages back exactly as `rows` were. */
function restore(caseId, rows) {
  sqlite([], `BEGIN; DELETE FROM messages WHERE case_id = X'${caseId}';\n${rows.map((m) => `INSERT INTO messages
    (id, case_id, position, author, kind, day, size, body_sha256, body) VALUES (X'${m.id}', X'${caseId}', ${m.position},
    '${m.author}', '${m.kind}', '${m.day}', ${m.bytes.length}, X'${m.sha}', X'${m.body}');`).join("\n")}\nCOMMIT;`);
}

// ------------------------------------------------------------------- page --

async function report(page, names, text) {
  await page.goto(`${server.url}/o/${ORG}/melden`);
  for (const name of names) await page.getByLabel(name).check();
  await page.fill("#text", text);
  await page.click("#submit");
  await page.locator("#done").waitFor({ state: "visible", timeout: 60_000 });
  return (await page.textContent("#code")).trim();
}

async function openThread(page, display, path = "mijn-melding") {
  await page.goto(`${server.url}/o/${ORG}/${path}`);
  await page.fill("#code", display);
  await page.click("#open");
  await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
}

async function followUp(page, text) {
  const before = await page.locator("#messages > li").count();
  await page.fill("#followup-text", text);
  await page.click("#followup-submit");
  await page.waitForFunction((n) => document.querySelectorAll("#messages > li").length > n, before, { timeout: 60_000 });
}

/** What the thread shows: per list item its classes and text; the status steps; the alert. */
function shown(page) {
  return page.evaluate(() => ({
    items: [...document.querySelectorAll("#messages > li > article")].map((a) => ({ className: a.className, text: a.textContent })),
    steps: [...document.querySelectorAll("#case-status li .status-label")].map((s) => s.textContent),
    text: document.querySelector("#thread").innerText,
    warnings: !document.querySelector("#thread-warnings").hidden,
    alertRole: document.querySelector("#thread-warnings").getAttribute("role"),
    v1Note: !document.querySelector("#thread-v1-note").hidden,
  }));
}

const kindsOf = (items) => items.map(({ className }) => /message-(forged|missing|replay)/.exec(className)?.[1] ?? "message");
const X25519_STANZA = /^-> X25519 /gm;
const stanzas = (bytes) => Buffer.from(bytes).subarray(0, 2048).toString("latin1").match(X25519_STANZA)?.length ?? 0;

// ------------------------------------------------------------------ tests --

test("(h) the real reviewer: its signed reply is genuine; the operator's replay of it and a forgery in its name are not", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  const display = await report(page, [real.name], "Melding aan de echte kluis.");
  const keys = await deriveKeys(display);
  const caseId = caseOf(keys);
  await real.sync(server.url, "echt-1");
  const line = (await real.review("list")).split("\n").find((l) => /^[0-9a-f]{8}\b/.test(l));
  assert.ok(line, "the reviewer lists the case");
  const replyFile = path.join(work.dir, "echt-antwoord.txt");
  await writeFile(replyFile, "Ontvangen, en echt ondertekend.\n");
  await real.review("reply", line.slice(0, 8), "--file", replyFile);
  await real.sync(server.url, "echt-2");
  const rows = messages(caseId);
  assert.equal(rows.length, 2);
  // What the reviewer wrote: v2, signed with the card's key, numbered 1, after the report.
  const card = JSON.parse(await readFile(path.join(work.keys, "vp-echt.json"), "utf8"));
  const sent = await decryptWith(keys.replyIdentityPq, rows[1].bytes);
  assert.equal(sent.v, 2);
  assert.ok(verifyText(sent.signed, sent.sig, card.signing_key), "signed with the card's signing key");
  assert.deepEqual([sent.inner.kind, sent.inner.seq, sent.inner.prev, sent.inner.thread], ["reply", 1, fileHash(rows[0].bytes), keys.thread]);

  await openThread(page, display);
  let view = await shown(page);
  assert.deepEqual(kindsOf(view.items), ["message", "message"]);
  assert.ok(view.items[1].text.includes("Ontvangen, en echt ondertekend.") && view.items[1].text.includes(real.name));
  assert.equal(view.warnings, false);

  // The operator replays the reviewer's reply and forges a second one in its name.
  const today = new Date().toISOString().slice(0, 10);
  insert(caseId, { ...rows[1], sha: randomBytes(32).toString("hex") });
  const inItsName = { id: real.id, name: real.name, seed: forger.seed };
  insert(caseId, { author: real.id, kind: "reply", day: today, bytes: await reply({ signer: inItsName, keys, seq: 2, prev: fileHash(rows[1].bytes), day: today, text: "VALS-5 noem uw afdeling", status: "closed" }) });
  await openThread(page, display);
  view = await shown(page);
  assert.deepEqual(kindsOf(view.items), ["message", "message", "replay", "forged"]);
  assert.ok(!view.text.includes("VALS-5"));
  assert.equal(view.text.split("Ontvangen, en echt ondertekend.").length - 1, 1);

  // The melder answers the genuine reply; the reviewer reads it as the melder's, nothing missing.
  await followUp(page, "Dank voor uw echte antwoord.");
  const followUpRow = messages(caseId).at(-1);
  const mine = await decryptWith(keys.replyIdentityPq, followUpRow.bytes);
  assert.deepEqual([mine.inner.seq, mine.inner.prev], [2, fileHash(rows[1].bytes)], "after the last genuine message");
  await real.sync(server.url, "echt-3");
  const shownByReviewer = await real.review("show", line.slice(0, 8));
  assert.ok(shownByReviewer.includes("Dank voor uw echte antwoord."), shownByReviewer);
  assert.ok(!shownByReviewer.includes("niet van de melder") && !shownByReviewer.includes("Hier ontbreekt een bericht"), shownByReviewer);
  assertClean(problems);
  await context.close();
});

test("(i) the real reviewer introduces a colleague: the page shows it as genuine, the colleague reads the case and answers", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  const display = await report(page, [real.name], "Melding die een collega mag lezen.");
  const keys = await deriveKeys(display);
  const caseId = caseOf(keys);
  await real.sync(server.url, "intro-1");
  const cases = (await real.review("list")).split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l)).map((l) => l.slice(0, 8));
  let mine;
  for (const id of cases) if ((await real.review("show", id)).includes("Melding die een collega")) mine = id;
  assert.ok(mine, "the reviewer has the case");
  const cardFile = path.join(work.keys, "vp-collega.json");
  const card = JSON.parse(await readFile(cardFile, "utf8"));
  const said = await real.review("introduce", mine, "--card", cardFile, "--yes");
  assert.ok(said.includes(cardFingerprint(card)), said);
  await real.sync(server.url, "intro-2");

  // The page: the introduction is the pinned counsellor's, with the colleague's name and fingerprint.
  await openThread(page, display);
  let view = await shown(page);
  assert.deepEqual(kindsOf(view.items), ["message", "message"]);
  assert.equal(view.warnings, false);
  assert.ok(view.items[1].text.includes(card.name) && view.items[1].text.includes(cardFingerprint(card)), view.items[1].text);

  // The melder answers: the colleague's key now gets a stanza too.
  await followUp(page, "Goed dat uw collega meeleest.");
  const rows = messages(caseId);
  assert.equal(rows.length, 3);

  // The colleague's laptop takes the case on and reads all of it as the melder's.
  await colleague.sync(server.url, "collega-1");
  const [theirs] = (await colleague.review("list")).split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l)).map((l) => l.slice(0, 8));
  // First the colleague compares the introducer's fingerprint (shown by `show`), then takes the case on.
  const realCard = JSON.parse(await readFile(path.join(work.keys, "vp-echt.json"), "utf8"));
  const waiting = await colleague.review("show", theirs);
  assert.ok(waiting.includes(cardFingerprint(realCard)) && waiting.includes("accept-introduction"), waiting);
  assert.ok(!waiting.includes("Melding die een collega mag lezen."), "nothing readable before confirming");
  await colleague.review("accept-introduction", theirs, "--yes");
  const shownToColleague = await colleague.review("show", theirs);
  for (const text of ["Melding die een collega mag lezen.", "Goed dat uw collega meeleest.", "Doorgestuurd door een collega"]) {
    assert.ok(shownToColleague.includes(text), shownToColleague);
  }
  assert.ok(!shownToColleague.includes("niet van de melder") && !shownToColleague.includes("Hier ontbreekt een bericht"), shownToColleague);

  // The colleague answers; the page shows it as genuine, under the name the introduction pinned.
  const replyFile = path.join(work.dir, "collega-antwoord.txt");
  await writeFile(replyFile, "Ik lees mee, namens de collega.\n");
  await colleague.review("reply", theirs, "--file", replyFile);
  await colleague.sync(server.url, "collega-2");
  await openThread(page, display);
  view = await shown(page);
  assert.deepEqual(kindsOf(view.items), ["message", "message", "message", "message"]);
  assert.ok(view.items[3].text.includes("Ik lees mee, namens de collega.") && view.items[3].text.includes(card.name), view.items[3].text);
  assert.equal(view.warnings, false);
  assertClean(problems);
  await context.close();
});

test("(a) a swapped card: follow-ups go to the pinned key only, and replies show the pinned name", async (t) => {
  const a = counsellors["vp-aarts"];
  const { context, page, problems } = await openPage(browser, server.url);
  const display = await report(page, [a.name], "Melding voor de kaartwissel.");
  const keys = await deriveKeys(display);
  const caseId = caseOf(keys);
  const [first] = messages(caseId);
  // The report is v2, signed by the melder, and pins A's card as served.
  const opened = await decryptWith(a.identity, first.bytes);
  assert.equal(opened.v, 2);
  assert.ok(verifyText(opened.signed, opened.sig, keys.thread));
  assert.deepEqual(opened.inner.cards, [a.card]);
  assert.equal(opened.inner.thread, keys.thread);

  // The operator swaps A's key and name; the API now serves the forger's.
  await installCard({ ...a.card, age_recipient: forger.recipient, name: "Mr. Vals" });
  t.after(() => installCard(a.card)); // the real card back, whatever happens below
  const served = (await (await fetch(`${server.url}/api/v1/counsellors?org=${ORG}`)).json()).counsellors;
  assert.equal(served.find((c) => c.id === a.id).age_recipient, forger.recipient, "the swap is live");

  // A genuine reply, with free text in author.name that must not be shown.
  const today = new Date().toISOString().slice(0, 10);
  insert(caseId, {
    author: a.id, kind: "reply", day: today,
    bytes: await reply({ signer: a, authorName: "Iemand Anders", keys, seq: 1, prev: fileHash(first.bytes), day: "2026-11-30", text: "Antwoord van Aarts.", status: "acknowledged" }),
  });
  await openThread(page, display);
  let view = await shown(page);
  assert.deepEqual(kindsOf(view.items), ["message", "message"]);
  assert.ok(view.items[1].text.includes(a.name), view.items[1].text);
  assert.ok(!view.text.includes("Mr. Vals") && !view.text.includes("Iemand Anders"), "only the pinned card's name is shown");
  assert.ok(await page.locator("#messages time[datetime='2026-11-30']").count() === 1, "the reply's day is the signed one");
  assert.equal(view.warnings, false);

  await followUp(page, "Aanvulling na de kaartwissel.");
  const rows = messages(caseId);
  const sent = rows.at(-1).bytes;
  // Two stanzas: the pinned card's key and the melder's reply key, not the forger's.
  assert.equal(stanzas(sent), 2, "encrypted to the pinned card and the reply key only");
  const genuine = await decryptWith(a.identity, sent);
  assert.equal(genuine.inner.kind, "follow-up");
  assert.equal(genuine.inner.text, "Aanvulling na de kaartwissel.");
  assert.equal(genuine.inner.seq, 2);
  assert.equal(genuine.inner.prev, fileHash(rows[1].bytes), "prev names the last genuine message shown");
  assert.ok(verifyText(genuine.signed, genuine.sig, keys.thread), "signed with the melder's key");
  await assert.rejects(decryptWith(forger.identity, sent), "the forger's identity opens nothing");
  await decryptWith(keys.replyIdentity, sent); // the melder rereads it
  assertClean(problems);
  await context.close();
});

test("(b)–(f) a hostile thread: forged, deleted, reordered and replayed messages, and an introduction", async (t) => {
  const [a, b, c] = ["vp-aarts", "vp-bos", "vp-claes"].map((id) => counsellors[id]);
  const { context, page, problems } = await openPage(browser, server.url);
  const display = await report(page, [a.name, b.name], "Melding aan Aarts en Bos.");
  const keys = await deriveKeys(display);
  const caseId = caseOf(keys);
  const today = new Date().toISOString().slice(0, 10);
  const [first] = messages(caseId);
  insert(caseId, {
    author: a.id, kind: "reply", day: today,
    bytes: await reply({ signer: a, keys, seq: 1, prev: fileHash(first.bytes), day: today, text: "Eerste antwoord van Aarts.", status: "acknowledged" }),
  });
  await openThread(page, display);
  await followUp(page, "Vervolg van de melder.");
  let rows = messages(caseId);
  insert(caseId, {
    author: a.id, kind: "reply", day: today,
    bytes: await reply({ signer: a, keys, seq: 2, prev: fileHash(rows[2].bytes), day: today, text: "Tweede antwoord van Aarts.", status: "in-progress" }),
  });
  const genuine = messages(caseId);
  const texts = ["Melding aan Aarts en Bos.", "Eerste antwoord van Aarts.", "Vervolg van de melder.", "Tweede antwoord van Aarts."];

  await t.test("the genuine thread shows all four messages and no warning", async () => {
    await openThread(page, display);
    const view = await shown(page);
    assert.deepEqual(kindsOf(view.items), ["message", "message", "message", "message"]);
    texts.forEach((text, i) => assert.ok(view.items[i].text.includes(text), `${i}: ${view.items[i].text}`));
    assert.equal(view.warnings, false);
    assert.equal(view.v1Note, false);
    assert.deepEqual(view.steps, ["Opgeslagen op de server", "Gelezen door uw vertrouwenspersoon", "Ontvangst bevestigd", "In behandeling"]);
  });

  await t.test("(b) forged replies are warnings: no text, no status", async () => {
    // Unsigned (v1), as an operator who learnt the reply key could write it.
    const v1 = { v: 1, kind: "reply", text: "VALS-1 ongetekend", author: { id: a.id, name: a.name }, status: "closed", attachments: [] };
    const enc = new Encrypter();
    enc.addRecipient(keys.replyRecipient);
    insert(caseId, { author: a.id, kind: "reply", day: today, bytes: await enc.encrypt(padEnvelope(v1)) });
    const prev = fileHash(genuine.at(-1).bytes);
    const forgedBy = { id: a.id, name: a.name, seed: forger.seed }; // the forger's key, A's id
    insert(caseId, { author: a.id, kind: "reply", day: today, bytes: await reply({ signer: forgedBy, keys, seq: 3, prev, day: today, text: "VALS-2 verkeerde sleutel", status: "closed" }) });
    // B's real key, claiming to be A.
    insert(caseId, { author: a.id, kind: "reply", day: today, bytes: await reply({ signer: b, authorId: a.id, authorName: a.name, keys, seq: 3, prev, day: today, text: "VALS-3 andermans naam", status: "closed" }) });
    // C signs genuinely, but C is not pinned on this thread.
    insert(caseId, { author: c.id, kind: "reply", day: today, bytes: await reply({ signer: c, keys, seq: 1, prev, day: today, text: "VALS-4 niet vastgepind", status: "closed" }) });
    await openThread(page, display);
    const view = await shown(page);
    assert.deepEqual(kindsOf(view.items), ["message", "message", "message", "message", "forged", "forged", "forged", "forged"]);
    for (const n of [1, 2, 3, 4]) assert.ok(!view.text.includes(`VALS-${n}`), `forged text ${n} shown`);
    assert.deepEqual(view.steps, ["Opgeslagen op de server", "Gelezen door uw vertrouwenspersoon", "Ontvangst bevestigd", "In behandeling"], "no forged status counts");
    assert.ok(await page.locator("#evaluation").isHidden(), "a forged 'closed' opens no evaluation");
    assert.equal(view.warnings, true);
    assert.equal(view.alertRole, "alert");
    assert.ok(view.items[5].text.includes("handtekening klopt niet"), view.items[5].text);
    assert.ok(view.items[7].text.includes("niet bij uw melding hoort"), view.items[7].text);
    await checkState(page, "forged");
    // The same warnings in English, checked and photographed alike.
    await openThread(page, display, "en/my-report");
    const english = await shown(page);
    assert.deepEqual(kindsOf(english.items), kindsOf(view.items));
    for (const n of [1, 2, 3, 4]) assert.ok(!english.text.includes(`VALS-${n}`), `forged text ${n} shown (en)`);
    await checkState(page, "forged-en");
    restore(caseId, genuine);
  });

  await t.test("(c) a genuine reply deleted: a message is missing here", async () => {
    sqlite([], `DELETE FROM messages WHERE id = X'${genuine[1].id}';`);
    await openThread(page, display);
    const view = await shown(page);
    // The follow-up names the deleted reply; A's next reply is number 2.
    assert.deepEqual(kindsOf(view.items), ["message", "missing", "message", "missing", "message"]);
    assert.ok(view.items[1].text.includes("Hier ontbreekt een bericht"));
    assert.ok(!view.text.includes("Eerste antwoord van Aarts."));
    assert.equal(view.warnings, true);
    restore(caseId, genuine);
  });

  await t.test("(d) messages reordered: the displaced one is marked out of order", async () => {
    // Swap the first reply (position 1) and the melder's follow-up (position 2).
    sqlite([], `BEGIN; UPDATE messages SET position = -1 WHERE id = X'${genuine[1].id}';
      UPDATE messages SET position = 1 WHERE id = X'${genuine[2].id}';
      UPDATE messages SET position = 2 WHERE id = X'${genuine[1].id}'; COMMIT;`);
    await openThread(page, display);
    const view = await shown(page);
    assert.deepEqual(kindsOf(view.items), ["message", "message", "message", "message"]);
    assert.ok(view.items[1].text.includes("Vervolg van de melder."));
    assert.ok(view.items[1].text.includes("staat niet op zijn plaats"), view.items[1].text);
    assert.equal(await page.locator(".message-warning-note").count(), 1);
    assert.equal(view.warnings, true);
    restore(caseId, genuine);
  });

  await t.test("(e) a reply inserted twice: the copy is a replay warning", async () => {
    insert(caseId, { ...genuine[1], sha: randomBytes(32).toString("hex") });
    await openThread(page, display);
    const view = await shown(page);
    assert.deepEqual(kindsOf(view.items), ["message", "message", "message", "message", "replay"]);
    assert.equal(view.text.split("Eerste antwoord van Aarts.").length - 1, 1, "the replayed text shows once");
    assert.equal(view.warnings, true);
    restore(caseId, genuine);
  });

  await t.test("(f) an introduction pins a new counsellor; follow-ups then reach them too", async () => {
    const intro = await reply({
      signer: a, keys, seq: 3, prev: fileHash(genuine[3].bytes), day: today, text: "Ik stel u voor aan Claes.", introduces: [c.card],
    });
    insert(caseId, { author: a.id, kind: "reply", day: today, bytes: intro });
    insert(caseId, { author: c.id, kind: "reply", day: today, bytes: await reply({ signer: c, keys, seq: 1, prev: fileHash(intro), day: today, text: "Claes hier." }) });
    await openThread(page, display);
    const view = await shown(page);
    assert.deepEqual(kindsOf(view.items), ["message", "message", "message", "message", "message", "message"]);
    assert.ok(view.items[4].text.includes(c.name) && view.items[4].text.includes("extern"), view.items[4].text);
    assert.ok(view.items[4].text.includes(`Vingerafdruk: ${cardFingerprint(c.card)}`), "the new card's fingerprint, to compare");
    assert.ok(view.items[5].text.includes("Claes hier.") && view.items[5].text.includes(c.name));
    assert.equal(view.warnings, false);
    await followUp(page, "Dank, Claes.");
    const sent = messages(caseId).at(-1).bytes;
    assert.equal(stanzas(sent), 4, "A, B, C and the reply key");
    for (const who of [a, b, c]) assert.equal((await decryptWith(who.identity, sent)).inner.text, "Dank, Claes.");
  });

  assertClean(problems);
  await context.close();
});

test("(g) a question turned into a report, and an evaluation, are signed v2 messages in the chain", async () => {
  const a = counsellors["vp-aarts"];
  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/o/${ORG}/melden`);
  await page.check("#kind-question");
  await page.getByLabel(a.name).check();
  await page.fill("#text", "Mag ik iets vragen?");
  await page.click("#submit");
  await page.locator("#done").waitFor({ state: "visible", timeout: 60_000 });
  const display = (await page.textContent("#code")).trim();
  const keys = await deriveKeys(display);
  const caseId = caseOf(keys);
  const today = new Date().toISOString().slice(0, 10);
  const [question] = messages(caseId);
  assert.equal((await decryptWith(a.identity, question.bytes)).inner.kind, "question");
  const answer = await reply({ signer: a, keys, seq: 1, prev: fileHash(question.bytes), day: today, text: "Vraag gerust." });
  insert(caseId, { author: a.id, kind: "reply", day: today, bytes: answer });

  await openThread(page, display);
  await page.check("#followup-as-report");
  await followUp(page, "Dan meld ik het nu.");
  const asReport = await decryptWith(a.identity, messages(caseId).at(-1).bytes);
  assert.equal(asReport.inner.kind, "report");
  assert.equal(asReport.inner.seq, 2);
  assert.equal(asReport.inner.prev, fileHash(answer));
  assert.deepEqual(asReport.inner.cards, [a.card], "the question's pinned cards, again");
  assert.ok(verifyText(asReport.signed, asReport.sig, keys.thread));

  const reportBytes = messages(caseId).at(-1).bytes;
  insert(caseId, {
    author: a.id, kind: "reply", day: today,
    bytes: await reply({ signer: a, keys, seq: 2, prev: fileHash(reportBytes), day: today, text: "Afgehandeld.", status: "closed" }),
  });
  await openThread(page, display);
  await page.locator("#evaluation").waitFor({ state: "visible" });
  await page.check("#evaluation-process-4");
  await page.check("#evaluation-heard-5");
  await page.click("#evaluation-submit");
  await page.locator("#evaluation-thanks").waitFor({ state: "visible", timeout: 60_000 });
  const rows = messages(caseId);
  const evaluation = await decryptWith(a.identity, rows.at(-1).bytes);
  assert.equal(evaluation.inner.kind, "evaluation");
  assert.equal(evaluation.inner.seq, 3);
  assert.equal(evaluation.inner.prev, fileHash(rows.at(-2).bytes));
  assert.ok(verifyText(evaluation.signed, evaluation.sig, keys.thread));
  assert.equal((await shown(page)).warnings, false);
  assertClean(problems);
  await context.close();
});

test("a v1 thread, as an older page wrote it: 'older format, not verified', once, and v1 follow-ups", async () => {
  const a = counsellors["vp-aarts"];
  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/o/${ORG}/melden`);
  // The older page's report: a v1 envelope, made with the page's own modules.
  const code = await page.evaluate(async (recipient) => {
    const p = await import("/js/protocol.js");
    const api = await import("/js/api.js");
    const fresh = p.generateCode();
    const keys = await p.deriveKeys(fresh);
    const envelope = p.buildEnvelope({ kind: "report", text: "Een melding van vroeger.", lang: "nl", replyRecipient: keys.replyRecipient, counsellors: ["vp-aarts"] });
    const sealed = await p.encrypt(envelope, [recipient, keys.replyRecipient]);
    await api.postReport(JSON.stringify({ counsellors: ["vp-aarts"], lookup_key: keys.lookupKey, message: p.bytesToBase64(sealed) }));
    return fresh;
  }, a.card.age_recipient);
  await openThread(page, code);
  const view = await shown(page);
  assert.equal(view.v1Note, true);
  assert.equal(view.warnings, false);
  assert.equal(view.text.split("ouder formaat").length - 1, 1, "said once");
  assert.ok(view.items[0].text.includes("Een melding van vroeger."));
  await checkState(page, "v1");
  await followUp(page, "Vervolg in het oude formaat.");
  const keys = await deriveKeys(code);
  const sent = messages(caseOf(keys)).at(-1).bytes;
  const opened = await decryptWith(a.identity, sent);
  assert.equal(opened.v, 1);
  assert.equal(opened.envelope.text, "Vervolg in het oude formaat.");
  assertClean(problems);
  await context.close();
});
