// Submit time of a report with a 5 MiB attachment, as a melder waits for it:
// from the click on "send" to the retrieval code on screen (encrypting the
// attachment and the envelope, uploading, storing), against the real server
// on 127.0.0.1, in three browsers in one run: Chromium, Firefox ESR with its
// defaults, and Firefox ESR with Tor Browser "Safer" preferences (no JIT, no
// WebAssembly, resistFingerprinting). Chromium is the baseline. Prints one
// line per browser with every round and the median; docs/performance.md
// records them.
//
//   cargo build --bins && node benches/submit.mjs
// (uses tests/browser's playwright-core and puppeteer-core, Debian's
// /usr/bin/chromium and /usr/bin/firefox-esr; MELDKLUIS_BENCH_ROUNDS=5)

import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { launch, openPage } from "../tests/browser/support/browser.mjs";
import { SAFER_PREFS, launchFirefox, openFirefoxPage } from "../tests/browser/support/firefox.mjs";
import { makeCounsellor, scratch, startServer } from "../tests/browser/support/meldkluis.mjs";

const ROUNDS = Number(process.env.MELDKLUIS_BENCH_ROUNDS ?? 3);
const SIZE = 5 * 1024 * 1024;

const work = await scratch("bench-submit");
const counsellor = await makeCounsellor(work, { id: "vp-bench", name: "Mr. B. Bank", organisation: "Ministerie van Testzaken" });
const server = await startServer(work);
const file = path.join(work.dir, "bijlage-5mib.bin");
await writeFile(file, randomBytes(SIZE));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * One submit in `page` (playwright or puppeteer, same calls); resolves to
 * { ms, powMs }: the whole wait, and the part of it spent on the server's
 * proof of work (docs/api.md), from each challenge's arrival to the request
 * that carries its solution.
 */
async function submitOnce(page, upload) {
  await page.goto(`${server.url}/melden`);
  await page.waitForSelector(`#counsellor-${counsellor.id}`);
  await page.click(`#counsellor-${counsellor.id}`);
  await page.focus("#text");
  await page.keyboard.type("Meting: melding met een bijlage van 5 MiB.");
  await upload();
  let challengeAt = null;
  let powMs = 0;
  const onResponse = (r) => { if (new URL(r.url()).pathname === "/api/v1/pow") challengeAt = Date.now(); };
  const onRequest = (r) => {
    if (challengeAt !== null && r.headers()["meldkluis-pow"]) {
      powMs += Date.now() - challengeAt;
      challengeAt = null;
    }
  };
  page.on("response", onResponse);
  page.on("request", onRequest);
  const started = Date.now();
  await page.click("#submit");
  await page.waitForFunction(() => !document.querySelector("#done").hidden, ...(page.context
    ? [null, { timeout: 300_000, polling: 20 }] // playwright: (fn, arg, options)
    : [{ timeout: 300_000, polling: 20 }])); // puppeteer: (fn, options)
  const ms = Date.now() - started;
  page.off("response", onResponse);
  page.off("request", onRequest);
  return { ms, powMs };
}

const results = [];
try {
  {
    const browser = await launch();
    const times = [];
    for (let i = 0; i < ROUNDS; i += 1) {
      const { context, page } = await openPage(browser, server.url);
      times.push(await submitOnce(page, () => page.setInputFiles("#attachments", file)));
      await context.close();
    }
    await browser.close();
    results.push(["Chromium (baseline)", times]);
  }
  for (const [name, prefs] of [["Firefox ESR, defaults", {}], ["Firefox ESR, Safer", SAFER_PREFS]]) {
    const browser = await launchFirefox({ prefs });
    const times = [];
    for (let i = 0; i < ROUNDS; i += 1) {
      const { page } = await openFirefoxPage(browser, server.url);
      times.push(await submitOnce(page, async () => (await page.$("#attachments")).uploadFile(file)));
      await page.close();
    }
    await browser.close();
    results.push([name, times]);
  }
} finally {
  await server.stop();
  await work.remove();
}

const base = median(results[0][1].map((t) => t.ms));
console.log(`submit of a report with a ${SIZE / 1024 / 1024} MiB attachment, click to code (${ROUNDS} rounds each):`);
for (const [name, times] of results) {
  const m = median(times.map((t) => t.ms));
  const pow = median(times.map((t) => t.powMs));
  console.log(`  ${name.padEnd(24)} median ${(m / 1000).toFixed(2)} s  (${times.map((t) => (t.ms / 1000).toFixed(2)).join(", ")} s)  ${(m / base).toFixed(2)}× Chromium;`
    + `  proof of work: median ${(pow / 1000).toFixed(2)} s (${times.map((t) => (t.powMs / 1000).toFixed(2)).join(", ")} s)`);
}
