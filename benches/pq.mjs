// The cost of post-quantum hybrid recipients (mlkem768x25519, protocol v2
// draft) in the browser, against classical X25519 recipients in the same
// page and the same run (headless Chromium, the pages' own bundle and
// protocol.js):
// 1. ciphertext overhead per recipient (bytes of header);
// 2. encrypting a report (the padded envelope, protocol.js encrypt()) to a
//    counsellor and the melder's reply key, median of many rounds;
// 3. encrypting a 200 MiB attachment (streamed, as age-encryption does for
//    upload.js) to the same two recipients, one round each, interleaved.
// Prints one line per figure; docs/performance.md records them.
//
//   cargo build --bins && node benches/pq.mjs
// (tests/browser's playwright-core, Debian's /usr/bin/chromium).
// MELDKLUIS_BENCH_MIB=n sets the attachment size (default 200).

import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const root = new URL("..", import.meta.url).pathname;
const MIB = 1024 * 1024;
const ATTACHMENT = Number(process.env.MELDKLUIS_BENCH_MIB ?? 200) * MIB;
const REPORT_ROUNDS = 40;

const dir = await mkdtemp(path.join(tmpdir(), "meldkluis-pq-bench-"));
await mkdir(path.join(dir, "keys"));
// The server wants one card; the page only needs to be served.
await writeFile(path.join(dir, "pass"), "benchmark passphrase\n");
await new Promise((resolve, reject) => {
  const child = spawn(path.join(root, "target/debug/meldkluis-review"), ["--vault", path.join(dir, "vault"),
    "--passphrase-file", path.join(dir, "pass"), "init", "--name", "Bench", "--organisation", "Bench",
    "--kind", "internal", "--id", "vp-bench", "--card-out", path.join(dir, "keys", "vp-bench.json")], { stdio: "ignore" });
  child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`review exited ${code}`))));
});
const server = spawn(path.join(root, "target/debug/meldkluis"),
  ["serve", "--listen", "127.0.0.1:0", "--data", path.join(dir, "data"), "--keys", path.join(dir, "keys")]);
const url = await new Promise((resolve, reject) => {
  server.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  server.stdout.on("data", (chunk) => {
    const match = /listening on (\S+)/.exec(chunk.toString());
    if (match) resolve(match[1]);
  });
});
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  await page.goto(`${url}/melden`);
  const result = await page.evaluate(async ({ rounds, attachment }) => {
    const age = await import("/vendor/age.js");
    const protocol = await import("/js/protocol.js");
    const keys = await protocol.deriveKeys(protocol.generateCode());
    // A classical and a hybrid counsellor: the hybrid one's key is made the
    // way the melder's is (a 32-byte seed as AGE-SECRET-KEY-PQ-1…).
    const classicalCounsellor = await age.identityToRecipient(await age.generateX25519Identity());
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const hybridIdentity = age.bech32.encode("age-secret-key-pq-", age.bech32.toWords(seed), false).toUpperCase();
    const hybridCounsellor = await age.identityToRecipient(hybridIdentity);
    const sets = {
      classical: [classicalCounsellor, protocol.replyRecipientFor(keys, [classicalCounsellor])],
      hybrid: [hybridCounsellor, protocol.replyRecipientFor(keys, [hybridCounsellor])],
    };
    const envelope = protocol.buildEnvelope({
      kind: "report", text: "Benchmark: er verdwijnt geld.", replyRecipient: sets.hybrid[1], counsellors: ["vp-bench"],
    });
    const out = {};
    // 1. header bytes for 1 and for 2 recipients: the slope is the cost of one.
    for (const [kind, [counsellor, reply]] of Object.entries(sets)) {
      const size = async (recipients) => {
        const e = new age.Encrypter();
        for (const r of recipients) e.addRecipient(r);
        return (await e.encrypt(new Uint8Array(0))).length;
      };
      out[`${kind}_one`] = await size([counsellor]);
      out[`${kind}_two`] = await size([counsellor, reply]);
    }
    // 2. reports, interleaved so both see the same machine.
    const times = { classical: [], hybrid: [] };
    for (let i = 0; i < rounds; i++) {
      for (const kind of ["classical", "hybrid"]) {
        const t0 = performance.now();
        await protocol.encrypt(envelope, sets[kind]);
        times[kind].push(performance.now() - t0);
      }
    }
    const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    out.report_classical_ms = median(times.classical);
    out.report_hybrid_ms = median(times.hybrid);
    // 3. a large attachment, streamed: zero bytes from a ReadableStream of
    // 64 KiB chunks, through age's stream encryption, read to the end.
    const streamOf = (n) => {
      let left = n;
      const chunk = new Uint8Array(64 * 1024);
      return new ReadableStream({
        pull(controller) {
          if (left === 0) return controller.close();
          const take = Math.min(left, chunk.length);
          controller.enqueue(chunk.subarray(0, take));
          left -= take;
        },
      });
    };
    for (const kind of ["classical", "hybrid", "classical", "hybrid"]) {
      const e = new age.Encrypter();
      for (const r of sets[kind]) e.addRecipient(r);
      const t0 = performance.now();
      const reader = (await e.encrypt(streamOf(attachment))).getReader();
      let bytes = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        bytes += value.length;
      }
      const ms = performance.now() - t0;
      out[`attachment_${kind}_ms`] = Math.min(out[`attachment_${kind}_ms`] ?? Infinity, ms);
      out[`attachment_${kind}_bytes`] = bytes;
    }
    return out;
  }, { rounds: REPORT_ROUNDS, attachment: ATTACHMENT });
  const perRecipient = (kind) => result[`${kind}_two`] - result[`${kind}_one`];
  console.log(`header bytes per recipient: classical ${perRecipient("classical")}, hybrid ${perRecipient("hybrid")} (+${perRecipient("hybrid") - perRecipient("classical")})`);
  console.log(`report (counsellor + reply key), median of ${REPORT_ROUNDS}: classical ${result.report_classical_ms.toFixed(1)} ms, hybrid ${result.report_hybrid_ms.toFixed(1)} ms (ratio ${(result.report_hybrid_ms / result.report_classical_ms).toFixed(2)})`);
  console.log(`attachment ${ATTACHMENT / MIB} MiB, best of 2: classical ${(result.attachment_classical_ms / 1000).toFixed(2)} s, hybrid ${(result.attachment_hybrid_ms / 1000).toFixed(2)} s (ratio ${(result.attachment_hybrid_ms / result.attachment_classical_ms).toFixed(3)}); ciphertext ${result.attachment_classical_bytes} vs ${result.attachment_hybrid_bytes} bytes`);
} finally {
  await browser.close();
  server.kill();
  await rm(dir, { recursive: true, force: true });
}
