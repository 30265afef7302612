// Browser encryption throughput in headless Chromium: the report path of
// web/js/protocol.js (attachment to base64, envelope, padding, age) against
// the bare age-encryption library encrypting the same bytes, in the same
// page, in the same run. Prints one line; docs/performance.md records it.
//
//   cargo build --bins && node benches/browser.mjs
// (uses tests/browser's playwright-core and Debian's /usr/bin/chromium)

import { spawn } from "node:child_process";
import { mkdtemp, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const root = new URL("..", import.meta.url).pathname;
const MIB = 1024 * 1024;
const SIZE = 8 * MIB; // one 8 MiB attachment: the largest the form takes is 10 MiB
const ROUNDS = 5;

async function startServer() {
  const dir = await mkdtemp(path.join(tmpdir(), "meldkluis-bench-"));
  await mkdir(path.join(dir, "keys"));
  const review = (args) =>
    new Promise((resolve, reject) => {
      const child = spawn(path.join(root, "target/debug/meldkluis-review"), args, { stdio: "ignore" });
      child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`review exited ${code}`))));
    });
  const { writeFile } = await import("node:fs/promises");
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

const { server, url } = await startServer();
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${url}/melden`);
  const result = await page.evaluate(async ({ size, rounds }) => {
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
  }, { size: SIZE, rounds: ROUNDS });
  const mbps = (ms) => (SIZE / 1e6) / (ms / 1000);
  console.log(
    `browser encryption of an ${SIZE / MIB} MiB attachment: Meldkluis report path ${mbps(result.ours).toFixed(1)} MB/s ` +
    `(${result.ours.toFixed(0)} ms); bare age-encryption ${mbps(result.bare).toFixed(1)} MB/s (${result.bare.toFixed(0)} ms); ` +
    `ratio ${(result.bare / result.ours).toFixed(2)}`,
  );
} finally {
  await browser.close();
  server.kill();
}
