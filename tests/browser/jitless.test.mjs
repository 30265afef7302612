// Tor Browser at "Safer" turns the JavaScript JIT off, and with it
// WebAssembly. This starts Chromium with V8 in jitless mode and WebAssembly
// unexposed, proves both are really off, and walks the melder's journey:
// report → code → (counsellor replies) → read the reply with the code.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { CHROMIUM, assertClean, openPage, shot } from "./support/browser.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";

let work, counsellor, server, browser;

before(async () => {
  work = await scratch("jitless");
  counsellor = await makeCounsellor(work, {
    id: "vp-jitless", name: "Mr. J. Zonderjit", organisation: "Ministerie van Testzaken",
  });
  server = await startServer(work);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
      "--js-flags=--jitless --noexpose_wasm",
    ],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

test("the melder's journey works with the JIT and WebAssembly off", async () => {
  const { context, page, problems } = await openPage(browser, server.url);
  await page.goto(`${server.url}/melden`);
  assert.equal(await page.evaluate(() => typeof WebAssembly), "undefined", "WebAssembly is still exposed");

  await page.getByLabel(counsellor.name).check();
  await page.locator("#text").fill("Melding zonder JIT: het werkt ook in Tor Browser op 'Veiliger'.");
  await page.click("#submit");
  await page.locator("#done").waitFor({ state: "visible", timeout: 120_000 });
  const code = (await page.textContent("#code")).trim();
  assert.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){5}$/);
  await shot(page, "jitless-code");

  await counsellor.sync(server.url, "jitless-1");
  const listed = await counsellor.review("list");
  const caseId = listed.slice(0, 8);
  const shown = await counsellor.review("show", caseId);
  assert.ok(shown.includes("Melding zonder JIT"), shown);
  await counsellor.review("acknowledge", caseId);
  await counsellor.sync(server.url, "jitless-2");

  await page.goto(`${server.url}/mijn-melding`);
  await page.locator("#code").fill(code);
  await page.click("#open");
  await page.locator("#thread").waitFor({ state: "visible", timeout: 120_000 });
  await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 2, null, { timeout: 60_000 });
  const thread = await page.textContent("#messages");
  assert.ok(thread.includes("Melding zonder JIT"), thread);
  assert.ok(thread.includes(counsellor.name), "the acknowledgement shows its author");
  await shot(page, "jitless-thread");
  assertClean(problems);
  await context.close();
});
