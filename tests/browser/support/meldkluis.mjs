// The real programs behind the browser tests: counsellors made with
// meldkluis-review, and `meldkluis serve` on 127.0.0.1, port 0. Needs the
// debug binaries: `cargo build --bins`.

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
export const SERVER_BIN = path.join(root, "target/debug/meldkluis");
export const REVIEW_BIN = path.join(root, "target/debug/meldkluis-review");
const UNLOCK = fileURLToPath(new URL("./unlock-identity.mjs", import.meta.url));

function run(command, args) {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: "utf8", timeout: 60_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) {
        const how = error.killed ? "timed out" : `exit ${error.code ?? error.signal}`;
        reject(new Error(`${path.basename(command)} ${args.join(" ")} failed (${how}):\n${stdout}\n${stderr}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

/**
 * A scratch directory for one test file: `keys/` for the cards the server
 * loads, `data/` for its database, and room for vaults and bundles.
 */
export async function scratch(name) {
  for (const bin of [SERVER_BIN, REVIEW_BIN]) {
    assert.ok(existsSync(bin), `${bin} is missing: run \`cargo build --bins\` first`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), `meldkluis-${name}-`));
  await mkdir(path.join(dir, "keys"));
  return {
    dir,
    keys: path.join(dir, "keys"),
    data: path.join(dir, "data"),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * A counsellor with a real vault (`init`), whose card lands in the scratch
 * `keys/` — so make counsellors before starting the server; `org` is the
 * organisation's short id (the page path `/o/<org>/`). Returns the card's
 * fields and:
 * - `review(...args)`: runs meldkluis-review on the vault, resolves to stdout;
 * - `identity()`: the vault's current age identity ("AGE-SECRET-KEY-PQ-1…", or
 *   "AGE-SECRET-KEY-1…" with `classical`), to check in
 *   a test what was encrypted to this counsellor;
 * - `sync(url, name)`: a courier round trip without the browser (outbox, POST
 *   it to the server, import the inbox); resolves to the inbox's file name.
 */
export async function makeCounsellor(work, { id, name, organisation, org, kind = "external", description = "", classical = false }) {
  const vault = path.join(work.dir, `vault-${id}`);
  const passphrase = path.join(work.dir, `${id}.passphrase`);
  await writeFile(passphrase, `correct horse battery staple ${id}\n`, { mode: 0o600 });
  const review = (...args) => run(REVIEW_BIN, ["--vault", vault, "--passphrase-file", passphrase, ...args]);
  await review(
    "init", "--name", name, "--organisation", organisation, "--kind", kind, "--id", id,
    "--description", description, "--card-out", path.join(work.keys, `${id}.json`),
    ...(org ? ["--org", org] : []),
    // A vault of the classical format (protocol v1), as counsellors made them before v2.
    ...(classical ? ["--classical-keys"] : []),
  );
  return {
    id, name, organisation, kind, description, vault, review,
    // Its own process: scrypt in JavaScript takes seconds and would stall
    // this one's event loop, and Playwright with it.
    identity: async () => (await run(process.execPath, [UNLOCK, path.join(vault, "identity.age"), passphrase])).trim(),
    async sync(url, name) {
      const outbox = path.join(work.dir, `${name}.tar`);
      await review("outbox", outbox);
      const answer = await fetch(`${url}/api/v1/courier/sync`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: await readFile(outbox),
      });
      const body = Buffer.from(await answer.arrayBuffer());
      assert.equal(answer.status, 200, `courier sync of ${name}: ${body}`);
      const filename = /filename="([^"]+)"/.exec(answer.headers.get("content-disposition"))[1];
      const inbox = path.join(work.dir, filename);
      await writeFile(inbox, body);
      await review("import", inbox);
      return filename;
    },
  };
}

/**
 * Starts `meldkluis serve` on a free port with the scratch `keys/` and
 * `data/`; `args` are further options. Resolves once it prints its address.
 */
export async function startServer(work, args = []) {
  const child = spawn(
    SERVER_BIN,
    ["serve", "--listen", "127.0.0.1:0", "--data", work.data, "--keys", work.keys, ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const chunks = [];
  child.stdout.on("data", (c) => chunks.push(c));
  child.stderr.on("data", (c) => chunks.push(c));
  const stopped = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(new Error(`no listening line:\n${Buffer.concat(chunks)}`));
    }, 30_000);
    child.stdout.on("data", () => {
      const match = /Meldkluis listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(Buffer.concat(chunks).toString());
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    stopped.then(({ code }) => reject(new Error(`server exited (${code}):\n${Buffer.concat(chunks)}`)));
  });
  return {
    process: child,
    url,
    stopped,
    /** Everything it wrote to stdout and stderr. */
    output: () => Buffer.concat(chunks),
    /** SIGTERM, then its exit status; a clean stop checkpoints the database. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return stopped;
    },
  };
}
