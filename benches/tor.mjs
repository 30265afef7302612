// The melder's pages over a Tor-like link (issue 15): bytes on the wire and
// the time until the page can be used, for the landing page, the report
// page and the thread page, in headless Chromium with the network emulated
// over the DevTools protocol (Network.emulateNetworkConditions: 300 ms
// round trip, 1 Mbit/s down, 0.5 Mbit/s up), against the pages as they were
// served before issue 15, in the same run: a second server started with
// MELDKLUIS_BENCH_BASELINE=1 serves them uncompressed and preloads every
// module on every page with a script.
//
// "Usable" is measured in the page, from the start of navigation
// (performance.now()):
//   landing page  the load event (it has no script; its links work then);
//   report page   the counsellors to choose from are shown and the attachment
//                 limits are known: the script (and every module it imports,
//                 age.js included) has run and fetched what the form needs;
//   thread page   the script has run and the follow-up form's limits are
//                 known: the code can be entered and opened.
// Bytes on the wire: the sum of encodedDataLength (headers and body as
// received, compressed where the server compressed) over every response the
// page load received, API answers included.
//
// Every visit is in a fresh browser context (no cache: the pages say
// no-store anyway) and a new connection. The server compresses each file on
// its first request and keeps it (handlers/pages.rs), so one unthrottled
// visit of each page comes first and is not counted.
//
//   cargo build --bins && node benches/tor.mjs
// (uses tests/browser's playwright-core and Debian's /usr/bin/chromium;
// MELDKLUIS_BENCH_ROUNDS=n sets the visits per page and server, default 5)

import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const root = new URL("..", import.meta.url).pathname;
const ROUNDS = Number(process.env.MELDKLUIS_BENCH_ROUNDS ?? 5);
const TOR = {
  offline: false,
  latency: 300, // ms round trip, added to every request
  downloadThroughput: 1_000_000 / 8, // bytes per second
  uploadThroughput: 500_000 / 8,
};
const TARGET = { reportKB: 130, reportSeconds: 3 };

const PAGES = [
  { name: "landing page", path: "/", ready: null },
  {
    name: "report page",
    path: "/melden",
    ready: () => document.querySelector("#counsellor-list input[type=checkbox]") !== null
      && document.querySelector("#attachments-limits").textContent.trim() !== "",
  },
  {
    name: "thread page",
    path: "/mijn-melding",
    ready: () => (document.querySelector("#followup-attachments-limits")?.textContent.trim() ?? "") !== "",
  },
];

function run(bin, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: "ignore", env: { ...process.env, ...env } });
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${bin} exited ${code}`))));
  });
}

async function startServer(dir, keys, env = {}) {
  const server = spawn(path.join(root, "target/debug/meldkluis"),
    ["serve", "--listen", "127.0.0.1:0", "--data", path.join(dir, "data"), "--keys", keys],
    { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  server.stderr.resume();
  const url = await new Promise((resolve, reject) => {
    let seen = "";
    server.stdout.on("data", (chunk) => {
      seen += chunk;
      const match = /listening on (\S+)/.exec(seen);
      if (match) resolve(match[1]);
    });
    server.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
  return { server, url };
}

/** One visit of `page` on `url`: bytes on the wire, requests, and time until usable (ms). */
async function visit(browser, url, page, conditions) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const tab = await context.newPage();
  const cdp = await context.newCDPSession(tab);
  await cdp.send("Network.enable");
  if (conditions) await cdp.send("Network.emulateNetworkConditions", conditions);
  let bytes = 0;
  let requests = 0;
  const encodings = new Map();
  cdp.on("Network.responseReceived", ({ requestId, response }) => {
    encodings.set(requestId, `${new URL(response.url).pathname} ${response.headers["content-encoding"] ?? "identity"}`);
  });
  cdp.on("Network.loadingFinished", ({ encodedDataLength }) => {
    bytes += encodedDataLength;
    requests += 1;
  });
  await tab.goto(`${url}${page.path}`, { waitUntil: page.ready ? "commit" : "load" });
  if (page.ready) await tab.waitForFunction(page.ready, null, { polling: "raf", timeout: 120_000 });
  const usable = page.ready
    ? await tab.evaluate(() => performance.now())
    : await tab.evaluate(() => performance.getEntriesByType("navigation")[0].loadEventStart);
  // Whatever was still on its way (a preload the page did not wait for) counts too.
  await tab.waitForLoadState("networkidle");
  await context.close();
  return { bytes, requests, usable, encodings: [...encodings.values()] };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const kb = (bytes) => (bytes / 1000).toFixed(1);

const dir = await mkdtemp(path.join(tmpdir(), "meldkluis-tor-"));
const keys = path.join(dir, "keys");
await mkdir(keys);
await writeFile(path.join(dir, "pass"), "benchmark passphrase\n");
await run(path.join(root, "target/debug/meldkluis-review"), ["--vault", path.join(dir, "vault"), "--passphrase-file",
  path.join(dir, "pass"), "init", "--name", "Bench", "--organisation", "Bench", "--kind", "internal",
  "--id", "vp-bench", "--card-out", path.join(keys, "vp-bench.json")]);
await mkdir(path.join(dir, "now"));
await mkdir(path.join(dir, "before"));
const now = await startServer(path.join(dir, "now"), keys);
const before = await startServer(path.join(dir, "before"), keys, { MELDKLUIS_BENCH_BASELINE: "1" });
const browser = await chromium.launch({
  executablePath: process.env.MELDKLUIS_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});

const results = [];
let failed = false;
try {
  for (const page of PAGES) {
    const row = { page: page.name };
    for (const [label, server] of [["before", before], ["now", now]]) {
      await visit(browser, server.url, page, null); // warm-up: first-use compression
      const visits = [];
      // Alternate rounds would interleave servers; a page's rounds run back to back.
      for (let i = 0; i < ROUNDS; i++) visits.push(await visit(browser, server.url, page, TOR));
      row[label] = {
        bytes: median(visits.map((v) => v.bytes)),
        usable: median(visits.map((v) => v.usable)),
        rounds: visits.map((v) => (v.usable / 1000).toFixed(2)),
        requests: visits[0].requests,
        encodings: visits[0].encodings,
      };
    }
    results.push(row);
    const { before: b, now: n } = row;
    console.log(`${page.name.padEnd(13)} before: ${kb(b.bytes).padStart(6)} KB, ${b.requests} requests, usable after ${(b.usable / 1000).toFixed(2)} s `
      + `(${b.rounds.join(", ")})`);
    console.log(`${"".padEnd(13)} now:    ${kb(n.bytes).padStart(6)} KB, ${n.requests} requests, usable after ${(n.usable / 1000).toFixed(2)} s `
      + `(${n.rounds.join(", ")})  → ${(n.bytes / b.bytes).toFixed(2)}× the bytes, ${(n.usable / b.usable).toFixed(2)}× the time`);
    if (process.env.MELDKLUIS_BENCH_VERBOSE) console.log(`    now: ${n.encodings.join("; ")}\n    before: ${b.encodings.join("; ")}`);
  }
  const report = results.find((r) => r.page === "report page").now;
  const bytesOk = report.bytes / 1000 < TARGET.reportKB;
  const timeOk = report.usable / 1000 < TARGET.reportSeconds;
  console.log(`target: report page under ${TARGET.reportKB} KB on the wire (${kb(report.bytes)} KB: ${bytesOk ? "met" : "NOT met"}) `
    + `and usable within ${TARGET.reportSeconds} s (${(report.usable / 1000).toFixed(2)} s: ${timeOk ? "met" : "NOT met"})`);
  failed = !bytesOk || !timeOk;
} finally {
  await browser.close();
  now.server.kill("SIGTERM");
  before.server.kill("SIGTERM");
  await rm(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
