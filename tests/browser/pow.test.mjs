// The proof of work in real Chromium, with the JIT on and off (Tor Browser
// "Safer": jitless, no WebAssembly): the page's own solver (web/js/pow.js)
// fetches the server's challenges and solves them. Prints the figures for
// docs/performance.md and holds the quiet target: under a second at the
// median with the JIT off, on this machine.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { CHROMIUM } from "./support/browser.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";

let work, server;
const ROUNDS = 12;

before(async () => {
  work = await scratch("pow");
  await makeCounsellor(work, { id: "vp-pow", name: "Mr. P. Werk", organisation: "Ministerie van Testzaken" });
  server = await startServer(work);
});

after(async () => {
  await server?.stop();
  await work?.remove();
});

async function measure(jsFlags) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", ...(jsFlags ? [`--js-flags=${jsFlags}`] : [])],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}/melden`);
    const times = await page.evaluate(async (rounds) => {
      const { powHeaders } = await import("/js/pow.js");
      const out = [];
      for (let i = 0; i < rounds; i++) {
        const started = performance.now();
        const headers = await powHeaders();
        out.push(performance.now() - started);
        // The server accepts it (an upload declaration needs one).
        const answer = await fetch("/api/v1/uploads", {
          method: "POST",
          headers: { "Content-Type": "application/json", ...headers },
          body: JSON.stringify({ length: 5000 }),
        });
        if (answer.status !== 201) throw new Error(`refused: ${answer.status}`);
      }
      return out;
    }, ROUNDS);
    const wasm = await page.evaluate(() => typeof WebAssembly);
    times.sort((a, b) => a - b);
    return { median: times[Math.floor(times.length / 2)], p90: times[Math.floor(times.length * 0.9)], max: times.at(-1), wasm };
  } finally {
    await browser.close();
  }
}

test("the proof of work solves in the page, JIT on and off, within a second when quiet", async () => {
  const jit = await measure(null);
  const jitless = await measure("--jitless --noexpose_wasm");
  assert.equal(jitless.wasm, "undefined", "WebAssembly is off");
  const ms = (x) => `${x.toFixed(0)} ms`;
  console.log(`proof of work, quiet server, ${ROUNDS} solves each (median / p90 / max):`);
  console.log(`  Chromium, JIT on:          ${ms(jit.median)} / ${ms(jit.p90)} / ${ms(jit.max)}`);
  console.log(`  Chromium, --jitless:       ${ms(jitless.median)} / ${ms(jitless.p90)} / ${ms(jitless.max)}`);
  assert.ok(jitless.median < 1000, `jitless median ${jitless.median} ms`);
});
