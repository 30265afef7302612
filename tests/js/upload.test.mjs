// The chunked upload of streamed attachments (web/js/upload.js) against a
// small in-memory stand-in for the server's upload endpoints (docs/api.md
// "Uploads"), reached through a fake fetch: chunking, one chunk held until
// acknowledged, retries, resuming after an interruption (also from the
// middle of a chunk), wrong offsets, refusals and cancelling. What arrives
// must decrypt to the padded file and match the head hash. The real server
// and Chromium do the same in tests/browser/attachments.test.mjs.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createHash } from "node:crypto";
import { Decrypter, generateX25519Identity, identityToRecipient, sha256 } from "../../web/vendor/age.js";
import { ApiError } from "../../web/js/api.js";
import { attachmentPaddedLength, bytesToHex } from "../../web/js/protocol.js";
import { AttachmentBatch, UploadCancelled, UploadInterrupted, uploadApi } from "../../web/js/upload.js";

const KIB = 1024;
const identity = await generateX25519Identity();
const recipient = await identityToRecipient(identity);

/** A file of `size` bytes (byte i is (i * 7 + seed) mod 256); `pulled()` counts what was read. */
function fakeFile(name, size, seed = 1) {
  let pulled = 0;
  return {
    name, type: "application/octet-stream", size,
    pulled: () => pulled,
    byte: (i) => (i * 7 + seed) % 256,
    open() {
      let at = 0;
      return new ReadableStream({
        pull(controller) {
          if (at >= size) return controller.close();
          const n = Math.min(50_000, size - at);
          controller.enqueue(Uint8Array.from({ length: n }, (_, i) => ((at + i) * 7 + seed) % 256));
          at += n;
          pulled = at;
        },
      }, { highWaterMark: 0 });
    },
  };
}

const POW_NUMBER = 37;
const POW_CHALLENGE = {
  algorithm: "SHA-256",
  challenge: createHash("sha256").update(`salt?expires=1${POW_NUMBER}`).digest("hex"),
  maxnumber: 100,
  salt: "salt?expires=1",
  signature: "00",
};

const json = (status, value) => new Response(JSON.stringify(value), { status, headers: { "Content-Type": "application/json" } });
const refuse = (status, error) => json(status, { error, message: error });

/**
 * The upload endpoints in memory. `hooks.chunk(request)` may answer a chunk
 * request itself (return a Response, or throw for "no answer"), after
 * `keep` bytes of it were stored, as a cut connection keeps what arrived.
 */
function fakeServer({ chunkBytes = 64 * KIB, hooks = {} } = {}) {
  const uploads = new Map();
  const log = [];
  let next = 0;
  async function handle(path, { method, body, headers = {}, signal }) {
    if (signal?.aborted) throw new DOMException("aborted", "AbortError");
    // A small proof of work (web/js/pow.js solves it for real); not logged.
    if (path === "/api/v1/pow") return json(200, POW_CHALLENGE);
    log.push(path);
    if (path === "/api/v1/limits") return json(200, { max_attachment_bytes: 1 << 30, max_attachments: 20, chunk_bytes: chunkBytes });
    const value = headers["Content-Type"] === "application/json" ? JSON.parse(body) : null;
    if (path === "/api/v1/uploads") {
      const pow = JSON.parse(atob(headers["Meldkluis-Pow"] ?? "bnVsbA=="));
      if (pow?.number !== POW_NUMBER || pow.challenge !== POW_CHALLENGE.challenge) {
        return refuse(403, "pow_required");
      }
      if (hooks.create) {
        const answer = hooks.create(value);
        if (answer) return answer;
      }
      const id = (++next).toString(16).padStart(32, "0");
      uploads.set(id, { length: value.length, bytes: new Uint8Array(value.length), received: 0, complete: false });
      return json(201, { upload: id, received: 0, chunk_bytes: chunkBytes });
    }
    if (path === "/api/v1/uploads/status" || path === "/api/v1/uploads/cancel") {
      const upload = uploads.get(value.upload);
      if (!upload) return refuse(404, "unknown_upload");
      if (path.endsWith("cancel")) {
        uploads.delete(value.upload);
        return json(200, { cancelled: true });
      }
      return json(200, { length: upload.length, received: upload.received, complete: upload.complete });
    }
    if (path === "/api/v1/uploads/chunk") {
      const upload = uploads.get(headers["Upload-Id"]);
      if (!upload) return refuse(404, "unknown_upload");
      const bytes = new Uint8Array(await body.arrayBuffer());
      const offset = Number(headers["Upload-Offset"]);
      const request = { id: headers["Upload-Id"], offset, bytes, upload };
      if (bytes.length > chunkBytes) return refuse(413, "too_large");
      if (offset !== upload.received) return refuse(409, "wrong_offset");
      if (offset + bytes.length > upload.length) return refuse(400, "bad_upload");
      const store = (n) => {
        upload.bytes.set(bytes.subarray(0, n), offset);
        upload.received += n;
        upload.complete = upload.received === upload.length;
      };
      if (hooks.chunk) {
        const decided = await hooks.chunk(request, store, signal);
        if (decided) return decided;
      }
      store(bytes.length);
      return json(200, { received: upload.received, complete: upload.complete });
    }
    return refuse(404, "not_found");
  }
  const fetch = async (path, init) => {
    const answer = await handle(path, init);
    if (init.signal?.aborted) throw new DOMException("aborted", "AbortError");
    return answer;
  };
  return { uploads, log, api: uploadApi(fetch) };
}

/** Checks what the server holds: it decrypts to the padded file, and the head hash matches. */
async function assertArrived(server, batch, files) {
  const entries = batch.attachments();
  assert.equal(entries.length, files.length);
  for (const [i, file] of files.entries()) {
    const entry = entries[i];
    assert.deepEqual(Object.keys(entry), ["name", "type", "size", "upload", "head_sha256"]);
    assert.equal(entry.size, file.size);
    const upload = server.uploads.get(entry.upload);
    assert.ok(upload.complete, `${file.name} complete`);
    const text = new TextDecoder("latin1").decode(upload.bytes.subarray(0, 4096));
    const headLength = text.indexOf("\n", text.indexOf("\n--- ") + 1) + 1 + 16;
    assert.equal(entry.head_sha256, bytesToHex(sha256(upload.bytes.subarray(0, headLength))), `${file.name} head`);
    const decrypter = new Decrypter();
    decrypter.addIdentity(identity);
    const plain = await decrypter.decrypt(upload.bytes);
    assert.equal(plain.length, attachmentPaddedLength(file.size));
    for (let at = 0; at < file.size; at++) if (plain[at] !== file.byte(at)) assert.fail(`${file.name}: byte ${at}`);
    assert.ok(plain.subarray(file.size).every((b) => b === 0), `${file.name}: zero padding`);
  }
  assert.deepEqual(batch.ids(), entries.map((e) => e.upload));
}

const options = (server) => ({ api: server.api, backoff: [1, 2] });

test("two files go up in chunks of chunk_bytes, reading no further than the chunk being sent", async () => {
  const files = [fakeFile("groot.bin", 1_000_003, 3), fakeFile("klein.txt", 10, 5)];
  let maxAhead = 0;
  const server = fakeServer({
    chunkBytes: 128 * KIB,
    hooks: {
      chunk({ offset, bytes, upload }) {
        assert.ok(bytes.length <= 128 * KIB);
        // The ciphertext is at most a header longer than the plaintext read so far.
        const file = upload.length > 100_000 ? files[0] : files[1];
        maxAhead = Math.max(maxAhead, file.pulled() - (offset + bytes.length));
      },
    },
  });
  const batch = new AttachmentBatch(files, [recipient], options(server));
  await batch.start();
  assert.equal(files[0].pulled(), 0, "no file is read before its turn");
  const seen = [];
  await batch.run((progress) => seen.push(progress.sent / progress.length));
  await assertArrived(server, batch, files);
  assert.equal(seen.at(-1), 1);
  assert.ok(seen.every((f, i) => i === 0 || f >= seen[i - 1]), "progress only goes up");
  assert.equal(server.log.filter((p) => p.endsWith("/chunk")).length, Math.ceil(server.uploads.get(batch.ids()[0]).length / (128 * KIB)) + 1);
  // The pipe's queues hold a few 64 KiB blocks; the rest of the file stays unread.
  assert.ok(maxAhead <= 4 * 64 * KIB, `read ahead ${maxAhead}`);
  const progress = batch.progress();
  assert.deepEqual(progress.files.map((f) => f.complete), [true, true]);
});

test("a failed chunk is retried after asking the server where it stands", async () => {
  const files = [fakeFile("scan.pdf", 300_000)];
  let failures = 0;
  const server = fakeServer({
    hooks: {
      async chunk({ offset }, store) {
        // The second chunk: half arrives, then the connection drops; then a 502.
        if (offset === 64 * KIB && failures === 0) {
          failures++;
          store(10_000);
          throw new TypeError("network");
        }
        if (offset === 64 * KIB + 10_000 && failures === 1) {
          failures++;
          return new Response("<h1>502</h1>", { status: 502 });
        }
        return undefined;
      },
    },
  });
  const batch = new AttachmentBatch(files, [recipient], { ...options(server), retries: 2 });
  await batch.start();
  await batch.run();
  assert.equal(failures, 2);
  assert.ok(server.log.includes("/api/v1/uploads/status"));
  await assertArrived(server, batch, files);
});

test("after the retries the upload is interrupted, and run() again resumes from what arrived", async () => {
  const files = [fakeFile("a.bin", 200_000, 9), fakeFile("b.bin", 5_000, 11)];
  let down = false;
  let cut = 0;
  const server = fakeServer({
    hooks: {
      async chunk({ offset }, store) {
        if (offset >= 128 * KIB && cut === 0) {
          cut++;
          down = true;
          store(1_000); // part of the chunk arrived before the line went down
          throw new TypeError("network");
        }
        if (down) throw new TypeError("network");
        return undefined;
      },
    },
  });
  const realStatus = server.api.status;
  server.api.status = (...args) => (down ? Promise.reject(new ApiError(0, "network")) : realStatus(...args));
  const batch = new AttachmentBatch(files, [recipient], options(server));
  await batch.start();
  await assert.rejects(batch.run(), UploadInterrupted);
  const stalled = batch.progress();
  assert.equal(stalled.files[0].sent, 128 * KIB, "only acknowledged bytes count as sent");
  assert.equal(stalled.files[1].sent, 0);

  await assert.rejects(batch.run(), UploadInterrupted, "still down");
  down = false;
  await batch.run();
  await assertArrived(server, batch, files);
});

test("a chunk that keeps failing while the status answers still ends in UploadInterrupted", async () => {
  let tries = 0;
  const server = fakeServer({
    hooks: {
      async chunk({ offset }) {
        if (offset >= 64 * KIB) {
          if (++tries > 10) return refuse(400, "bad_upload"); // a loop: stop it, and fail below
          throw new TypeError("network");
        }
        return undefined;
      },
    },
  });
  const batch = new AttachmentBatch([fakeFile("z", 100_000)], [recipient], options(server));
  await batch.start();
  await assert.rejects(batch.run(), UploadInterrupted);
  assert.equal(tries, 3, "the first try and two retries");
  assert.equal(server.log.filter((p) => p.endsWith("/status")).length, 2, "a status before each retry");
});

test("a lost answer: the status says the chunk arrived, so it is not sent again", async () => {
  const files = [fakeFile("x.bin", 150_000)];
  let lost = false;
  const server = fakeServer({
    hooks: {
      async chunk({ offset }, store) {
        if (offset === 0 && !lost) {
          lost = true;
          store(64 * KIB); // stored in full, but the answer never comes
          throw new TypeError("network");
        }
        return undefined;
      },
    },
  });
  const batch = new AttachmentBatch(files, [recipient], options(server));
  await batch.start();
  await batch.run();
  assert.ok(lost);
  const chunks = server.log.filter((p) => p.endsWith("/chunk")).length;
  assert.equal(chunks, Math.ceil(server.uploads.get(batch.ids()[0]).length / (64 * KIB)), "nothing sent twice");
  await assertArrived(server, batch, files);
});

test("a wrong offset is put right by the status, also in the middle of the held chunk", async () => {
  const files = [fakeFile("y.bin", 250_000)];
  let refused = 0;
  const server = fakeServer({
    hooks: {
      async chunk({ offset }, store) {
        // Part of this chunk is already there (an earlier request's bytes landed late).
        if (offset === 128 * KIB && refused === 0) {
          refused++;
          store(1_000);
          return refuse(409, "wrong_offset");
        }
        return undefined;
      },
    },
  });
  const realChunk = server.api.chunk;
  let skewed = 0;
  // Once, the client's offset is off by five bytes.
  server.api.chunk = (id, offset, bytes, signal) => {
    if (offset === 192 * KIB && skewed++ === 0) return realChunk(id, offset - 5, bytes, signal);
    return realChunk(id, offset, bytes, signal);
  };
  const batch = new AttachmentBatch(files, [recipient], options(server));
  await batch.start();
  await batch.run();
  assert.equal(refused, 1);
  assert.ok(skewed > 1);
  assert.equal(server.log.filter((p) => p.endsWith("/status")).length, 2, "each wrong offset asked the status once");
  await assertArrived(server, batch, files);
});

test("refusals stop the batch: storage_full at start cancels what was made, not_padded on a chunk", async () => {
  let creates = 0;
  const full = fakeServer({ hooks: { create: () => (++creates === 2 ? refuse(507, "storage_full") : undefined) } });
  const batch = new AttachmentBatch([fakeFile("a", 10), fakeFile("b", 10)], [recipient], options(full));
  await assert.rejects(batch.start(), (error) => error instanceof ApiError && error.code === "storage_full");
  assert.equal(full.uploads.size, 0, "the first upload was deleted again");
  assert.ok(full.log.includes("/api/v1/uploads/cancel"));

  const strict = fakeServer({ hooks: { chunk: ({ offset, bytes, upload }) => (offset + bytes.length === upload.length ? refuse(400, "not_padded") : undefined) } });
  const refused = new AttachmentBatch([fakeFile("c", 100_000)], [recipient], options(strict));
  await refused.start();
  await assert.rejects(refused.run(), (error) => error instanceof ApiError && error.code === "not_padded");
  assert.equal(strict.log.filter((p) => p.endsWith("/chunk")).length, 2, "a refusal is not retried");
});

test("a failure while starting is reported as itself, not as a cancel", async () => {
  const server = fakeServer();
  const batch = new AttachmentBatch([fakeFile("a", 10), fakeFile("b", 10)], ["age1notarecipient"], options(server));
  await assert.rejects(batch.start(), TypeError);
  assert.equal(server.uploads.size, 0);
});

test("bytes the server lost behind the held chunk cannot be resent: upload_lost", async () => {
  let dropped = false;
  const server = fakeServer({
    hooks: {
      async chunk({ offset, upload }) {
        if (offset === 64 * KIB && !dropped) {
          dropped = true;
          upload.received = 0; // the server forgot what it acknowledged
          throw new TypeError("network");
        }
        return undefined;
      },
    },
  });
  const batch = new AttachmentBatch([fakeFile("f", 200_000)], [recipient], options(server));
  await batch.start();
  await assert.rejects(batch.run(), (error) => error instanceof ApiError && error.code === "upload_lost");
});

test("cancel aborts the request in flight and deletes every upload of the batch", async () => {
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let aborted = false;
  const server = fakeServer({
    hooks: {
      async chunk({ offset }, store, signal) {
        if (offset === 64 * KIB) {
          signal.addEventListener("abort", () => { aborted = true; release(); });
          await held;
        }
        return undefined;
      },
    },
  });
  const batch = new AttachmentBatch([fakeFile("a", 300_000), fakeFile("b", 20)], [recipient], options(server));
  await batch.start();
  assert.equal(server.uploads.size, 2);
  const running = batch.run();
  while (!server.log.filter((p) => p.endsWith("/chunk")).length || server.log.filter((p) => p.endsWith("/chunk")).length < 2) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await batch.cancel();
  await assert.rejects(running, UploadCancelled);
  assert.ok(aborted, "the chunk request was aborted");
  assert.equal(server.uploads.size, 0, "both uploads deleted");
  assert.deepEqual(batch.ids(), []);
});

test("the API client: errors carry the server's code, no answer is status 0", async () => {
  const api = uploadApi(async (path) => {
    if (path.endsWith("limits")) return json(200, { max_attachment_bytes: 5, max_attachments: 20, chunk_bytes: 8 });
    if (path.endsWith("status")) return new Response("<h1>Bad gateway</h1>", { status: 502 });
    throw new TypeError("Failed to fetch");
  });
  assert.deepEqual(await api.limits(), { max_attachment_bytes: 5, max_attachments: 20, chunk_bytes: 8 });
  await assert.rejects(api.status("0".repeat(32)), (e) => e instanceof ApiError && e.status === 502 && e.code === "unexpected" && e.uncertain);
  await assert.rejects(api.create(10), (e) => e instanceof ApiError && e.status === 0 && e.code === "network");
});
