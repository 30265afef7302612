// The pages in real Chromium against the in-memory mock of the API
// (support/mock-server.mjs): what the browser encrypts, to whom, how it
// retries, how it shows untrusted replies, and how the pages look (PNG
// screenshots in tests/browser/out/). Runs without the Rust binaries; the
// full journey through the real server is roundtrip.test.mjs.
//
//   cd tests/browser && npm ci && node --test pages.test.mjs

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { generateX25519Identity, identityToRecipient } from "../../web/vendor/age.js";
import {
  base64ToBytes,
  bytesToBase64,
  decrypt,
  deriveKeys,
  encrypt,
  generateCode,
  parseCode,
  validateEnvelope,
} from "../../web/js/protocol.js";
import { messages } from "./support/render.mjs";
import { startMockServer } from "./support/mock-server.mjs";
import { launch, openPage, shot } from "./support/browser.mjs";

const nl = messages("nl");
const en = messages("en");
const MARKER = `canary-${Date.now().toString(36)}`;

let server;
let browser;
let jansen; // the identity of the counsellor the melder picks
let deVries; // a counsellor the melder does not pick
const state = {}; // what one test hands the next (code, lookup key)

before(async () => {
  jansen = await generateX25519Identity();
  deVries = await generateX25519Identity();
  server = await startMockServer({
    counsellors: [
      {
        id: "vp-jansen", name: "Mr. A. Jansen", organisation: "Ministerie van Voorbeeldzaken",
        kind: "external", description: "Externe vertrouwenspersoon, bereikbaar op werkdagen.",
        age_recipient: await identityToRecipient(jansen),
      },
      {
        id: "vp-de-vries", name: "Drs. B. de Vries", organisation: "Rijksoverheid", kind: "internal",
        description: "", age_recipient: await identityToRecipient(deVries),
      },
    ],
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Fails on console errors (CSP violations among them) and foreign requests. */
function assertClean(problems) {
  // Chromium asks for /favicon.ico by itself; the server answers 404.
  const real = problems.filter((p) => !/status of 404/.test(p));
  assert.deepEqual(real, []);
}

const stanzaCount = (bytes) =>
  new TextDecoder("latin1").decode(bytes.subarray(0, 2000)).split("\n").filter((l) => l.startsWith("-> X25519 ")).length;

test("the report form checks its fields, encrypts to the chosen counsellor and survives a lost answer", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  // As in Tor Browser at "Safer": no WebAssembly. The bundle must not need it.
  await context.addInitScript(() => { delete globalThis.WebAssembly; });
  await page.goto(`${server.url}/melden`);
  await page.getByLabel("Mr. A. Jansen").waitFor();
  assert.equal(await page.evaluate(() => typeof WebAssembly), "undefined");
  await shot(page, "mock-report-empty");

  await page.click("#submit");
  assert.equal(await page.textContent("#counsellors-error"), nl.report_error_counsellors);
  assert.equal(await page.textContent("#text-error"), nl.report_error_text);
  assert.equal(await page.getAttribute("#text", "aria-invalid"), "true");
  await shot(page, "mock-report-errors");

  await page.getByLabel("Mr. A. Jansen").check();
  await page.selectOption("#category", "conflict-of-interest");
  await page.locator("#text").pressSequentially(`Er verdwijnt geld. ${MARKER} <b>niet vet</b>`);
  await page.fill("#contact", `privé ${MARKER}`);
  await page.setInputFiles("#attachments", [
    { name: "notitie.txt", mimeType: "text/plain", buffer: Buffer.from(`bijlage ${MARKER}\n`) },
  ]);
  assert.match(await page.textContent("#attachment-list"), /notitie\.txt/);

  // The report is stored but the answer is lost (a proxy answers 502): the
  // form freezes, keeps the text and offers a retry.
  server.failNext("/api/v1/reports", 502, "bad_gateway", { afterProcessing: true });
  await page.click("#submit");
  await page.locator("#retry").waitFor({ state: "visible" });
  assert.equal(await page.inputValue("#text"), `Er verdwijnt geld. ${MARKER} <b>niet vet</b>`);
  assert.equal(await page.locator("#text").getAttribute("readonly"), "");
  assert.ok((await page.textContent("#status")).includes(nl.report_error_uncertain));
  await shot(page, "mock-report-retry");

  await page.click("#retry");
  await page.locator("#done").waitFor({ state: "visible" });
  const display = (await page.textContent("#code")).trim();
  assert.match(display, /^([0-9A-Z]{4}-){5}[0-9A-Z]{4}$/);
  await shot(page, "mock-report-done");

  // The retry resent the very same bytes under the same code, and the server
  // recognised it (200) instead of refusing it as code_in_use.
  const posts = server.requests.filter((r) => r.url === "/api/v1/reports");
  assert.equal(posts.length, 2);
  assert.deepEqual(posts[0].body, posts[1].body);

  const keys = await deriveKeys(parseCode(display));
  Object.assign(state, { display, keys });
  const stored = server.cases.get(keys.lookupKey);
  assert.ok(stored, "stored under the lookup key derived from the shown code");
  assert.deepEqual(stored.counsellors, ["vp-jansen"]);
  assert.ok(!posts[0].body.toString().includes(MARKER), "no plaintext on the wire");
  assert.ok(!posts[0].body.toString().includes(parseCode(display)), "no code on the wire");

  const sealed = base64ToBytes(stored.messages[0].message);
  assert.equal(stanzaCount(sealed), 2, "the chosen counsellor and the reply key, no one else");
  const envelope = await decrypt(sealed, jansen);
  assert.deepEqual(await decrypt(sealed, keys.replyIdentity), envelope);
  await assert.rejects(decrypt(sealed, deVries));
  assert.equal(envelope.kind, "report");
  assert.equal(envelope.text, `Er verdwijnt geld. ${MARKER} <b>niet vet</b>`);
  assert.equal(envelope.category, "conflict-of-interest");
  assert.equal(envelope.contact, `privé ${MARKER}`);
  assert.equal(envelope.reply_recipient, keys.replyRecipient);
  assert.deepEqual(envelope.counsellors, ["vp-jansen"]);
  assert.equal(envelope.attachments[0].name, "notitie.txt");
  assert.equal(Buffer.from(envelope.attachments[0].data, "base64").toString(), `bijlage ${MARKER}\n`);
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

  assertClean(problems.filter((p) => !p.includes("502")));
  await context.close();
});

test("a definite refusal lets the melder edit and send again; unsent text is guarded", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/en/report`);
  await page.getByLabel("Drs. B. de Vries").check();
  await page.locator("#text").pressSequentially("Second report.");

  server.failNext("/api/v1/reports", 413, "too_large");
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelector("#status").dataset.kind === "error");
  assert.equal(await page.textContent("#status"), en.error_too_large);
  assert.ok(await page.locator("#submit").isVisible(), "no retry after a refusal: edit and send");
  assert.equal(await page.locator("#text").getAttribute("readonly"), null);

  // Leaving with unsent text asks first (the handler cancels beforeunload),
  // and without text it does not.
  const leaving = () => page.evaluate(() => {
    const event = new Event("beforeunload", { cancelable: true });
    window.dispatchEvent(event);
    return event.defaultPrevented;
  });
  assert.equal(await leaving(), true);
  await page.fill("#text", "");
  assert.equal(await leaving(), false);
  assertClean(problems.filter((p) => !p.includes("413")));
  await context.close();
});

test("my report: clear errors per kind, then the thread with an untrusted reply, then a follow-up", async () => {
  const { display, keys } = state;
  assert.ok(display, "needs the report of the first test");

  // A counsellor's reply with hostile markup and an attachment.
  const hostile = `<img src=x onerror="window.__owned=1"> Dank voor uw melding. ${MARKER}`;
  const reply = validateEnvelope({
    v: 1, kind: "reply", text: hostile, author: { id: "vp-jansen", name: "Mr. A. Jansen" },
    attachments: [{
      name: "<script>.html", type: "text/html",
      data: bytesToBase64(new TextEncoder().encode("<script>alert(1)</script>")),
    }],
  });
  const sealedReply = await encrypt(reply, [keys.replyRecipient, await identityToRecipient(jansen)]);
  server.cases.get(keys.lookupKey).messages.push({
    id: "f".repeat(32), author: "vp-jansen", kind: "reply", day: "2026-11-23", message: bytesToBase64(sealedReply),
  });

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
  await shot(page, "mock-thread-code-error");
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
  const link = items.nth(1).locator("a[download]");
  assert.equal(await link.getAttribute("download"), "<script>.html");
  assert.match(await link.getAttribute("href"), /^blob:/);
  await shot(page, "mock-thread-open");

  // Follow-up, encrypted to the case's counsellor and the melder.
  await page.fill("#followup-text", `Aanvulling ${MARKER}`);
  await page.click("#followup-submit");
  await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 3);
  assert.equal(await page.textContent("#followup-status"), en.followup_sent);
  const messagesNow = server.cases.get(keys.lookupKey).messages;
  const followUp = base64ToBytes(messagesNow[2].message);
  assert.equal(stanzaCount(followUp), 2);
  const opened = await decrypt(followUp, jansen);
  assert.equal(opened.kind, "follow-up");
  assert.equal(opened.text, `Aanvulling ${MARKER}`);
  assert.deepEqual(await decrypt(followUp, keys.replyIdentity), opened);
  await shot(page, "mock-thread-followup");

  await page.click("#close-thread");
  assert.equal(await page.inputValue("#code"), "");
  assert.ok(await page.locator("#thread").isHidden());
  assertClean(problems);
  await context.close();
});

test("courier: the outbox goes up as raw bytes and the inbox comes down as a file; errors are explained", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/koerier`);
  await shot(page, "mock-courier");
  const outbox = Buffer.from("pretend outbox bytes \u0000\u00ff");

  server.failNext("/api/v1/courier/sync", 401, "bad_signature");
  await page.setInputFiles("#outbox", { name: "outbox.tar", mimeType: "application/x-tar", buffer: outbox });
  await page.click("#sync");
  await page.waitForFunction(() => document.querySelector("#status").dataset.kind === "error");
  assert.equal(await page.textContent("#status"), nl.error_bad_signature);
  await shot(page, "mock-courier-error");

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#sync")]);
  assert.equal(download.suggestedFilename(), "meldkluis-inbox-vp-test-1.age");
  const sent = server.requests.filter((r) => r.url === "/api/v1/courier/sync").at(-1);
  assert.deepEqual(sent.body, outbox);
  assert.match(await readFile(await download.path(), "utf8"), /^mock inbox for outbox [0-9a-f]{64}/);
  await page.locator("#result").waitFor({ state: "visible" });
  assert.match(await page.textContent("#result-text"), /meldkluis-inbox-vp-test-1\.age/);
  await shot(page, "mock-courier-done");
  assertClean(problems.filter((p) => !p.includes("401")));
  await context.close();
});

test("every page fits 320 px, works in dark mode and links to the other language", async () => {
  const paths = ["/", "/melden", "/mijn-melding", "/koerier", "/en", "/en/report", "/en/my-report", "/en/courier"];
  for (const colorScheme of ["light", "dark"]) {
    const { context, page, problems } = await openPage(browser, server.url, { colorScheme, width: 320, height: 640 });
    for (const path of paths) {
      await page.goto(`${server.url}${path}`);
      await page.waitForLoadState("networkidle");
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path} is ${overflow}px too wide at 320px (${colorScheme})`);
      if (path === "/" || path === "/en/report") {
        await page.screenshot({ path: `${new URL("./out/", import.meta.url).pathname}mock-320-${colorScheme}${path.replaceAll("/", "-") || "-"}.png` });
      }
    }
    await page.goto(`${server.url}/melden`);
    await page.click(".lang-switch");
    await page.waitForURL(`${server.url}/en/report`);
    assert.equal(await page.getAttribute("html", "lang"), "en");
    assertClean(problems);
    await context.close();
  }
  const { context, page } = await openPage(browser, server.url, { colorScheme: "dark" });
  for (const path of ["/", "/en/report"]) {
    await page.goto(`${server.url}${path}`);
    await page.waitForLoadState("networkidle");
    await shot(page, `mock-dark${path.replaceAll("/", "-").replace(/^-$/, "-index")}`);
  }
  await context.close();
});
