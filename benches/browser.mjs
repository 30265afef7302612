// Browser encryption throughput in headless Chromium, two measurements, each
// against the bare age-encryption library on the same bytes, in the same
// page, in the same run. Prints one line each; docs/performance.md records
// them.
//
// 1. Envelope path: an attachment inline in an envelope (base64, JSON,
//    padding, age), as counsellors' replies still carry small files.
// 2. Streamed attachment (protocol.md §3a), what the pages send: the melder's
//    file (a real file on disk, through <input type=file>) through
//    web/js/upload.js's pipeline — padding stream, age stream encryption,
//    assembly into upload chunks, head hash — with an API stand-in that
//    acknowledges every chunk at once, so no network is timed; against
//    age-encryption encrypting `file.stream()` to the same recipients. Also
//    the page's memory during a run, sampled over the DevTools protocol: the
//    V8 heap (Performance.getMetrics JSHeapUsedSize) and ArrayBuffer backing
//    stores (Runtime.getHeapUsage), which is where chunk bytes live, against
//    the chunk size: bounded by the chunk, not the file.
//
//   cargo build --bins && node benches/browser.mjs
// (uses tests/browser's playwright-core and Debian's /usr/bin/chromium)

import { spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const root = new URL("..", import.meta.url).pathname;
const MIB = 1024 * 1024;
const ENVELOPE_SIZE = 8 * MIB; // one 8 MiB inline attachment
const ENVELOPE_ROUNDS = 5;
// A Padmé bucket (protocol.md §3a), so the padded plaintext is the file
// itself and both sides encrypt exactly the same bytes.
const STREAM_SIZE = Number(process.env.MELDKLUIS_BENCH_MIB ?? 200) * MIB;
const STREAM_ROUNDS = 3;

async function startServer(dir) {
  await mkdir(path.join(dir, "keys"));
  const review = (args) =>
    new Promise((resolve, reject) => {
      const child = spawn(path.join(root, "target/debug/meldkluis-review"), args, { stdio: "ignore" });
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`review exited ${code}`))));
    });
  await writeFile(path.join(dir, "pass"), "benchmark passphrase\n");
  await review(["--vault", path.join(dir, "vault"), "--passphrase-file", path.join(dir, "pass"), "init",
    "--name", "Bench", "--organisation", "Bench", "--kind", "internal", "--id", "vp-bench",
    "--card-out", path.join(dir, "keys", "vp-bench.json")]);
  const server = spawn(path.join(root, "target/debug/meldkluis"),
    ["serve", "--listen", "127.0.0.1:0", "--data", path.join(dir, "data"), "--keys", path.join(dir, "keys")]);
  const url = await new Promise((resolve) => {
    server.stdout.on("data", (chunk) => {
      const match = /listening on (\S+)/.exec(chunk.toString());
      if (match) resolve(match[1]);
    });
  });
  return { server, url };
}

/** A file of random bytes, written 1 MiB at a time. */
async function randomFile(file, size) {
  const out = createWriteStream(file);
  const block = Buffer.alloc(MIB);
  for (let left = size; left > 0; left -= MIB) {
    randomFillSync(block);
    if (!out.write(left >= MIB ? block : block.subarray(0, left))) await new Promise((r) => out.once("drain", r));
  }
  await new Promise((resolve, reject) => out.end((error) => (error ? reject(error) : resolve())));
}

async function envelopePath(page) {
  return page.evaluate(async ({ size, rounds }) => {
    const age = await import("/vendor/age.js");
    const protocol = await import("/js/protocol.js");
    const identity = await age.generateX25519Identity();
    const recipient = await age.identityToRecipient(identity);
    const file = new Uint8Array(size);
    crypto.getRandomValues(file.subarray(0, 65536));
    const time = async (work) => {
      await work(); // warm-up
      const start = performance.now();
      for (let i = 0; i < rounds; i++) await work();
      return (performance.now() - start) / rounds;
    };
    const bare = await time(async () => {
      const e = new age.Encrypter();
      e.addRecipient(recipient);
      await e.encrypt(file);
    });
    const ours = await time(async () => {
      const envelope = protocol.buildEnvelope({
        kind: "report", text: "Benchmark", replyRecipient: recipient, counsellors: ["vp-bench"],
        attachments: [{ name: "scan.bin", type: "application/octet-stream", data: protocol.bytesToBase64(file) }],
      });
      await protocol.encrypt(envelope, [recipient]);
    });
    return { bare, ours };
  }, { size: ENVELOPE_SIZE, rounds: ENVELOPE_ROUNDS });
}

/** Defines window.__stream(which), which encrypts the chosen file once and answers { ms, bytes }. */
async function prepareStream(page, chunkBytes) {
  await page.evaluate(async (chunk) => {
    const age = await import("/vendor/age.js");
    const { AttachmentBatch } = await import("/js/upload.js");
    const file = document.querySelector("#attachments").files[0];
    // The report's recipients: a counsellor and the melder's reply key.
    const recipients = await Promise.all([age.generateX25519Identity(), age.generateX25519Identity()]
      .map(async (identity) => age.identityToRecipient(await identity)));
    // Both sides yield to the event loop once per chunk's worth of bytes, as
    // a real upload does: then the DevTools protocol can sample memory.
    const yieldTask = () => new Promise((resolve) => setTimeout(resolve, 0));
    window.__stream = async (which, chunkBytes = chunk) => {
      const start = performance.now();
      if (which === "bare") {
        const encrypter = new age.Encrypter();
        for (const recipient of recipients) encrypter.addRecipient(recipient);
        const reader = (await encrypter.encrypt(file.stream())).getReader();
        let bytes = 0;
        let sinceYield = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          bytes += value.length;
          sinceYield += value.length;
          if (sinceYield >= chunkBytes) {
            sinceYield = 0;
            await yieldTask();
          }
        }
        return { ms: performance.now() - start, bytes };
      }
      // The pages' own pipeline; this API takes every chunk at once.
      let length = 0;
      let bytes = 0;
      const api = {
        create: async (n) => { length = n; return { upload: "0".repeat(32), received: 0, chunk_bytes: chunkBytes }; },
        chunk: async (id, offset, body) => {
          await yieldTask();
          bytes = offset + body.length;
          return { received: bytes, complete: bytes === length };
        },
        status: async () => ({ length, received: bytes, complete: bytes === length }),
        cancel: async () => ({ cancelled: true }),
      };
      const batch = new AttachmentBatch([{ name: file.name, type: file.type, size: file.size, open: () => file.stream() }],
        recipients, { api });
      await batch.start();
      await batch.run();
      if (!/^[0-9a-f]{64}$/.test(batch.attachments()[0].head_sha256)) throw new Error("no head hash");
      return { ms: performance.now() - start, bytes };
    };
  }, chunkBytes);
}

/**
 * Runs `which` once while sampling memory every 25 ms; answers the result
 * with the baseline and the peaks. With `collect`, every sample is taken
 * right after a full garbage collection: what the run still holds, not the
 * garbage it has yet to free (slower, so not timed).
 */
async function sampled(page, cdp, which, { collect = false, chunkBytes } = {}) {
  await cdp.send("HeapProfiler.collectGarbage");
  const read = async () => {
    if (collect) await cdp.send("HeapProfiler.collectGarbage");
    const [{ metrics }, usage] = await Promise.all([cdp.send("Performance.getMetrics"), cdp.send("Runtime.getHeapUsage")]);
    return { heap: metrics.find((m) => m.name === "JSHeapUsedSize").value, buffers: usage.backingStorageSize ?? 0 };
  };
  const base = await read();
  const peak = { ...base };
  let samples = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      const now = await read();
      samples++;
      peak.heap = Math.max(peak.heap, now.heap);
      peak.buffers = Math.max(peak.buffers, now.buffers);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  const result = await page.evaluate(([w, c]) => window.__stream(w, c), [which, chunkBytes]);
  running = false;
  await sampler;
  return { ...result, base, peak, samples };
}

const dir = await mkdtemp(path.join(tmpdir(), "meldkluis-bench-"));
const { server, url } = await startServer(dir);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${url}/melden`);
  const mbps = (bytes, ms) => (bytes / 1e6) / (ms / 1000);

  const envelope = await envelopePath(page);
  console.log(
    `browser encryption of an ${ENVELOPE_SIZE / MIB} MiB inline attachment (envelope path): Meldkluis ${mbps(ENVELOPE_SIZE, envelope.ours).toFixed(1)} MB/s ` +
    `(${envelope.ours.toFixed(0)} ms); bare age-encryption ${mbps(ENVELOPE_SIZE, envelope.bare).toFixed(1)} MB/s (${envelope.bare.toFixed(0)} ms); ` +
    `ratio ${(envelope.bare / envelope.ours).toFixed(2)}`,
  );

  const limits = await (await fetch(`${url}/api/v1/limits`)).json().catch(() => ({}));
  const chunkBytes = Number.isSafeInteger(limits.chunk_bytes) ? limits.chunk_bytes : 8 * MIB;
  const file = path.join(dir, "bijlage.bin");
  await randomFile(file, STREAM_SIZE);
  await page.setInputFiles("#attachments", file);
  await prepareStream(page, chunkBytes);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");

  await page.evaluate(() => Promise.all([window.__stream("bare"), window.__stream("ours")])); // warm-up
  const times = { bare: [], ours: [] };
  const memory = {};
  for (let round = 0; round < STREAM_ROUNDS; round++) {
    // Alternating order, so neither side always runs on a warmer page.
    for (const which of round % 2 ? ["ours", "bare"] : ["bare", "ours"]) {
      const run = await sampled(page, cdp, which);
      if (run.bytes < STREAM_SIZE) throw new Error(`${which}: only ${run.bytes} bytes`);
      times[which].push(run);
      if (!memory[which] || run.peak.heap - run.base.heap > memory[which].peak.heap - memory[which].base.heap) memory[which] = run;
    }
  }
  const median = (runs) => runs.map((r) => r.ms).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  const [bare, ours] = [median(times.bare), median(times.ours)];
  const ciphertext = times.ours[0].bytes;
  console.log(
    `browser encryption of a ${STREAM_SIZE / MIB} MiB streamed attachment, 2 recipients, ${chunkBytes / MIB} MiB chunks ` +
    `(median of ${STREAM_ROUNDS}): Meldkluis pipeline ${mbps(STREAM_SIZE, ours).toFixed(1)} MB/s (${ours.toFixed(0)} ms); ` +
    `bare age-encryption stream ${mbps(STREAM_SIZE, bare).toFixed(1)} MB/s (${bare.toFixed(0)} ms); ` +
    `ratio ${(bare / ours).toFixed(2)} (target ≥ 0.9); ciphertext ${ciphertext} bytes`,
  );
  const mib = (n) => (n / MIB).toFixed(1);
  const describe = ({ base, peak }) => `JS heap ${mib(base.heap)} → ${mib(peak.heap)} MiB (+${mib(peak.heap - base.heap)}), ` +
    `ArrayBuffers ${mib(base.buffers)} → ${mib(peak.buffers)} MiB (+${mib(peak.buffers - base.buffers)})`;
  for (const which of ["ours", "bare"]) {
    console.log(
      `  memory during a ${STREAM_SIZE / MIB} MiB run, ${which === "ours" ? "Meldkluis pipeline" : "bare library"} ` +
      `(${mib(chunkBytes)} MiB chunks, worst of the timed runs, ${memory[which].samples} samples, garbage included): ` +
      `peak ${describe(memory[which])}`,
    );
  }
  // What a run holds, sampled after full collections, as the chunk size
  // changes: it follows the chunk, not the file.
  for (const size of [2 * MIB, chunkBytes, 32 * MIB]) {
    const held = await sampled(page, cdp, "ours", { collect: true, chunkBytes: size });
    console.log(`  held after a full GC, Meldkluis pipeline, ${mib(size)} MiB chunks: peak ${describe(held)} (${held.samples} samples)`);
  }
  const held = await sampled(page, cdp, "bare", { collect: true, chunkBytes });
  console.log(`  held after a full GC, bare library: peak ${describe(held)} (${held.samples} samples)`);
} finally {
  await browser.close();
  server.kill();
  await rm(dir, { recursive: true, force: true });
}
