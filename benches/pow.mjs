// Proof-of-work solve times (issue 14, docs/api.md "Proof of work"), as a
// melder waits for them: fetch a challenge from the real server on
// 127.0.0.1 and solve it with the page's own solver (web/js/pow.js), in
//   - Chromium, defaults;
//   - Chromium with `--js-flags=--jitless --noexpose_wasm` (no JIT, no WebAssembly);
//   - both again with the CPU throttled 4× (CDP Emulation.setCPUThrottlingRate),
//     the stand-in for a mid-range phone;
//   - Firefox ESR (Tor Browser's engine) through puppeteer-core and WebDriver
//     BiDi, defaults and "Safer" (no Ion, no Baseline JIT, no WebAssembly,
//     resistFingerprinting);
//   - the curl + python3 one-liner of docs/api.md, read from that file and run
//     as written;
// first on a quiet server, then under a flood that keeps the difficulty up.
// The baseline, in the same run: the very same challenges solved by a plain
// loop over Node's native SHA-256 (OpenSSL), so every engine is also a ratio.
// Times are taken in Node around each solve (Firefox's resistFingerprinting
// coarsens the page's own clock); the round trip of an empty call is printed.
//
//   cargo build --bins && node benches/pow.mjs
// MELDKLUIS_BENCH_ROUNDS=n solves per engine and phase (default 12);
// MELDKLUIS_BENCH_LOAD_FACTOR=f the difficulty the flood holds, as a multiple
// of the quiet one (default 4, i.e. maxnumber 200,000: about 90 accepted
// requests a minute, docs/api.md).

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { launch } from "../tests/browser/support/browser.mjs";
import { SAFER_PREFS, launchFirefox } from "../tests/browser/support/firefox.mjs";
import { makeCounsellor, scratch, startServer } from "../tests/browser/support/meldkluis.mjs";

const ROUNDS = Number(process.env.MELDKLUIS_BENCH_ROUNDS ?? 12);
const LOAD_FACTOR = Number(process.env.MELDKLUIS_BENCH_LOAD_FACTOR ?? 4);
const QUIET = 50_000; // src/server/pow.rs QUIET_MAX_NUMBER; checked against the server below

// The recipe, exactly as docs/api.md prints it.
const apiDoc = await readFile(fileURLToPath(new URL("../docs/api.md", import.meta.url)), "utf8");
const RECIPE = apiDoc.split("\n").find((line) => line.startsWith('POW=$(curl -sS "$SERVER/api/v1/pow"'));
if (!RECIPE) throw new Error("docs/api.md has no one-line proof-of-work solver");

const work = await scratch("bench-pow");
await makeCounsellor(work, { id: "vp-pow", name: "Mr. P. Werk", organisation: "Ministerie van Testzaken" });
const server = await startServer(work);

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const median = (xs) => sorted(xs)[Math.floor(xs.length / 2)];
const pct = (xs, p) => sorted(xs)[Math.min(xs.length - 1, Math.round((xs.length - 1) * p))];
const load = () => loadavg().map((x) => x.toFixed(1)).join(" ");

async function maxNumber() {
  return (await (await fetch(`${server.url}/api/v1/pow`)).json()).maxnumber;
}

/** The server takes `header` as a proof of work (an upload declaration needs one). */
async function accepted(header) {
  const answer = await fetch(`${server.url}/api/v1/uploads`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Meldkluis-Pow": header },
    body: JSON.stringify({ length: 5000 }),
  });
  return answer.status === 201;
}

/** The baseline: the same challenge by Node's native SHA-256 in a plain loop; milliseconds. */
function nativeSolve({ salt, challenge, number }) {
  const started = performance.now();
  for (let n = 0; ; n += 1) {
    if (createHash("sha256").update(salt + n).digest("hex") === challenge) {
      if (n !== number) throw new Error("native solver disagrees");
      return performance.now() - started;
    }
  }
}

// In the page: a challenge from the server, solved by web/js/pow.js.
const inPage = async () => {
  const { solutionHeader } = await import("/js/pow.js");
  const answer = await fetch("/api/v1/pow", { credentials: "omit", cache: "no-store" });
  const challenge = await answer.json();
  const header = await solutionHeader(challenge);
  return { header, maxnumber: challenge.maxnumber };
};

/** Every browser engine as { name, open() → { page, close() } }. */
const engines = [
  ["Chromium, defaults", { args: [] }],
  ["Chromium, --jitless", { args: ["--js-flags=--jitless --noexpose_wasm"] }],
  ["Chromium, CPU 4× slower", { args: [], throttle: 4 }],
  ["Chromium, --jitless, CPU 4× slower", { args: ["--js-flags=--jitless --noexpose_wasm"], throttle: 4 }],
].map(([name, { args, throttle }]) => ({
  name,
  async open() {
    const browser = await launch({ args });
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/melden`);
    if (throttle) {
      const cdp = await context.newCDPSession(page);
      await cdp.send("Emulation.setCPUThrottlingRate", { rate: throttle });
    }
    return { page, close: () => browser.close() };
  },
}));
for (const [name, prefs] of [["Firefox ESR, defaults", {}], ["Firefox ESR, Safer", SAFER_PREFS]]) {
  engines.push({
    name,
    async open() {
      const browser = await launchFirefox({ prefs });
      const page = await browser.newPage();
      await page.goto(`${server.url}/melden`);
      return { page, close: () => browser.close() };
    },
  });
}

function decode(header) {
  return JSON.parse(Buffer.from(header, "base64").toString());
}

/**
 * `ROUNDS` solves in one engine. `check`: which rounds' solutions to send to
 * the server (every one counts as load, so the quiet phase sends only its
 * last one). Returns per round: ms, maxnumber, hashes tried, native ms.
 */
async function runEngine(engine, check) {
  const { page, close } = await engine.open();
  const rounds = [];
  let roundTrip;
  try {
    const empty = [];
    for (let i = 0; i < 5; i += 1) {
      const t = performance.now();
      await page.evaluate(() => 1);
      empty.push(performance.now() - t);
    }
    roundTrip = median(empty);
    const wasm = await page.evaluate(() => typeof WebAssembly);
    for (let i = 0; i < ROUNDS; i += 1) {
      const t = performance.now();
      const { header, maxnumber } = await page.evaluate(inPage);
      const ms = performance.now() - t;
      const solution = decode(header);
      if (check(i) && !(await accepted(header))) throw new Error(`${engine.name}: solution refused`);
      rounds.push({ ms, maxnumber, hashes: solution.number + 1, solution });
    }
    for (const r of rounds) r.native = nativeSolve(r.solution);
    return { rounds, roundTrip, wasm };
  } finally {
    await close();
  }
}

function runRecipe() {
  return new Promise((resolve, reject) => {
    execFile("bash", ["-c", `set -euo pipefail\n${RECIPE}\nprintf %s "$POW"`], {
      env: { ...process.env, SERVER: server.url },
      encoding: "utf8",
    }, (error, stdout, stderr) => (error ? reject(new Error(`recipe: ${stderr}`)) : resolve(stdout.trim())));
  });
}

async function runRecipeRounds(check) {
  const rounds = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    const maxnumber = await maxNumber();
    const t = performance.now();
    const header = await runRecipe();
    const ms = performance.now() - t;
    const solution = decode(header);
    if (check(i) && !(await accepted(header))) throw new Error("recipe: solution refused");
    rounds.push({ ms, maxnumber, hashes: solution.number + 1, solution });
  }
  for (const r of rounds) r.native = nativeSolve(r.solution);
  return { rounds, roundTrip: 0, wasm: "—" };
}

/** The flood: a worker that solves natively and declares 500 MiB uploads whenever the difficulty is below the target. */
function startFlood(target) {
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    const { createHash } = require("node:crypto");
    const { url, target } = workerData;
    let stop = false, sent = 0, solving = 0;
    parentPort.on("message", () => { stop = true; });
    (async () => {
      while (!stop) {
        const c = await (await fetch(url + "/api/v1/pow")).json();
        if (c.maxnumber >= target) { await new Promise((r) => setTimeout(r, 250)); continue; }
        const t = performance.now();
        let n = 0;
        while (createHash("sha256").update(c.salt + n).digest("hex") !== c.challenge) n += 1;
        solving += performance.now() - t;
        const header = Buffer.from(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge, number: n, salt: c.salt, signature: c.signature })).toString("base64");
        const a = await fetch(url + "/api/v1/uploads", { method: "POST", headers: { "Content-Type": "application/json", "Meldkluis-Pow": header }, body: JSON.stringify({ length: 500 * 1024 * 1024 }) });
        if (a.status === 201) sent += 1;
      }
      parentPort.postMessage({ sent, solving });
    })();`;
  const worker = new Worker(code, { eval: true, workerData: { url: server.url, target } });
  const started = performance.now();
  return {
    async stop() {
      const sent = new Promise((resolve) => worker.once("message", resolve));
      worker.postMessage("stop");
      const { sent: count, solving } = await sent;
      await worker.terminate();
      return { count, seconds: (performance.now() - started) / 1000, solving: solving / 1000 };
    },
  };
}

function summary(name, { rounds, roundTrip }) {
  const ms = rounds.map((r) => r.ms);
  const native = rounds.map((r) => r.native);
  const rate = rounds.reduce((a, r) => a + r.hashes, 0) / (ms.reduce((a, b) => a + b, 0) / 1000);
  const nativeRate = rounds.reduce((a, r) => a + r.hashes, 0) / (native.reduce((a, b) => a + b, 0) / 1000);
  const maxnumbers = [...new Set(rounds.map((r) => r.maxnumber))].sort((a, b) => a - b);
  return {
    name,
    median: median(ms),
    p90: pct(ms, 0.9),
    max: Math.max(...ms),
    nativeMedian: median(native),
    ratio: ms.reduce((a, b) => a + b, 0) / native.reduce((a, b) => a + b, 0),
    rate,
    nativeRate,
    maxnumbers,
    // Expected and worst time at the difficulty seen, from the measured rate
    // (the drawn numbers vary per challenge; the rate does not).
    expected: (median(rounds.map((r) => r.maxnumber)) / 2 / rate) * 1000,
    worst: (Math.max(...maxnumbers) / rate) * 1000,
    roundTrip,
  };
}

function print(title, results) {
  const f = (x) => `${x.toFixed(0)} ms`.padStart(8);
  console.log(`\n${title}`);
  console.log("  engine                              median      p90      max | hashes/s | native same challenges: median, hashes/s | ratio | expected (worst) at maxnumber");
  for (const s of results) {
    console.log(
      `  ${s.name.padEnd(34)} ${f(s.median)} ${f(s.p90)} ${f(s.max)} | ${Math.round(s.rate).toLocaleString("en").padStart(8)} |` +
        ` ${f(s.nativeMedian)}, ${Math.round(s.nativeRate).toLocaleString("en").padStart(9)} | ${s.ratio.toFixed(1).padStart(5)}× |` +
        ` ${f(s.expected)} (${f(s.worst).trim()}) at ${s.maxnumbers.map((m) => m.toLocaleString("en")).join("/")}` +
        (s.roundTrip ? `  [empty call ${s.roundTrip.toFixed(1)} ms]` : ""),
    );
  }
}

const quiet = [];
const loaded = [];
let flood;
try {
  console.log(`proof of work: ${ROUNDS} solves per engine and phase; ${cpus().length} cores (${cpus()[0].model}); load average at start ${load()}`);
  const quietMax = await maxNumber();
  if (quietMax !== QUIET) throw new Error(`the server is not quiet: maxnumber ${quietMax}`);

  // Quiet: only each engine's last solution goes to the server, so the
  // benchmark's own solutions never raise the difficulty it measures.
  const last = (i) => i === ROUNDS - 1;
  for (const engine of engines) {
    const result = await runEngine(engine, last);
    if (engine.name.includes("jitless") || engine.name.includes("Safer")) {
      if (result.wasm !== "undefined") throw new Error(`${engine.name}: WebAssembly is on`);
    }
    quiet.push(summary(engine.name, result));
  }
  quiet.push(summary("curl + python3 (docs/api.md)", await runRecipeRounds(last)));
  for (const s of quiet) {
    if (s.maxnumbers.some((m) => m !== QUIET)) throw new Error(`${s.name}: difficulty rose in the quiet phase (${s.maxnumbers})`);
  }
  console.log(`load average after the quiet phase: ${load()}`);

  // Under load: the flood holds maxnumber at LOAD_FACTOR × quiet.
  const target = LOAD_FACTOR * QUIET;
  flood = startFlood(target);
  const rampStarted = performance.now();
  while ((await maxNumber()) < target) {
    if (performance.now() - rampStarted > 180_000) throw new Error("the flood did not raise the difficulty");
    await new Promise((r) => setTimeout(r, 500));
  }
  console.log(`flood raised maxnumber to ${target.toLocaleString("en")} in ${((performance.now() - rampStarted) / 1000).toFixed(0)} s`);
  const every = () => true;
  for (const engine of engines) loaded.push(summary(engine.name, await runEngine(engine, every)));
  loaded.push(summary("curl + python3 (docs/api.md)", await runRecipeRounds(every)));
  const { count, seconds, solving } = await flood.stop();
  flood = null;
  console.log(
    `flood: ${count} upload declarations accepted in ${seconds.toFixed(0)} s (${((count / seconds) * 60).toFixed(0)}/min), ` +
      `its solving kept one core busy ${((solving / seconds) * 100).toFixed(0)} % of the time; load average at the end ${load()}`,
  );
} finally {
  if (flood) await flood.stop();
  await server.stop();
  await work.remove();
}

print(`quiet server (maxnumber ${QUIET.toLocaleString("en")}: ${QUIET / 2} hashes on average):`, quiet);
print(`under a flood (maxnumber held at ${(LOAD_FACTOR * QUIET).toLocaleString("en")}, ${LOAD_FACTOR}× quiet):`, loaded);
const base = quiet.find((s) => s.name === "Chromium, defaults");
console.log("\nquiet median against Chromium defaults (same run):");
for (const s of quiet) console.log(`  ${s.name.padEnd(34)} ${(s.median / base.median).toFixed(2)}×`);
console.log("under load / quiet, median (difficulty ratio " + LOAD_FACTOR + "):");
for (const s of loaded) {
  const q = quiet.find((x) => x.name === s.name);
  console.log(`  ${s.name.padEnd(34)} ${(s.median / q.median).toFixed(2)}×  (expected from the rate: ${(s.expected / q.expected).toFixed(2)}×)`);
}
console.log("at the most the server asks (maxnumber 3,200,000, 64× quiet), from each engine's quiet rate: expected / worst");
for (const s of quiet) console.log(`  ${s.name.padEnd(34)} ${(1_600_000 / s.rate).toFixed(1)} s / ${(3_200_000 / s.rate).toFixed(1)} s`);
