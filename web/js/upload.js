// Streamed attachments on the wire (docs/api.md "Uploads", protocol.md §3a):
// every file is encrypted as a stream and sent in chunks. Only the chunk being
// sent is held, until the server acknowledges it, so memory stays at one
// chunk whatever the file's size, and an interrupted upload resumes from the
// bytes that arrived. No DOM here: node --test drives it with a fake fetch.

import { ApiError } from "./api.js";
import { powHeaders } from "./pow.js";
import { encryptAttachment, sha256Hasher } from "./protocol.js";

/** Transient failures persisted through the retries; `resume()` by calling `run()` again. */
export class UploadInterrupted extends Error {
  constructor(cause) {
    super("upload interrupted", { cause });
    this.name = "UploadInterrupted";
  }
}

/** The melder cancelled; the uploads are being deleted. */
export class UploadCancelled extends Error {
  constructor() {
    super("upload cancelled");
    this.name = "UploadCancelled";
  }
}

/**
 * Worth trying again: no answer, or a 5xx other than 507 (a full disk stays
 * full). A 409 wrong_offset is also retried, after asking where the upload
 * stands.
 */
const transient = (error) =>
  error instanceof ApiError && (error.status === 0 || (error.status >= 500 && error.code !== "storage_full"));

/**
 * The upload endpoints over `fetch` (injected for tests). Each call resolves
 * to the JSON answer or rejects with an ApiError (status 0, "network", when
 * no answer came), or UploadCancelled when `signal` aborted it.
 */
export function uploadApi(fetchFn) {
  const injected = fetchFn !== undefined;
  fetchFn ??= (...args) => globalThis.fetch(...args);
  async function call(path, { method = "POST", body = null, headers = {}, signal } = {}) {
    let answer;
    let value = null;
    try {
      answer = await fetchFn(path, { method, body, headers, signal, credentials: "omit", cache: "no-store" });
      value = await answer.json().catch(() => null);
    } catch {
      if (signal?.aborted) throw new UploadCancelled();
      throw new ApiError(0, "network");
    }
    if (!answer.ok) throw new ApiError(answer.status, value?.error ?? "unexpected");
    if (value === null || typeof value !== "object") throw new ApiError(answer.status, "unexpected");
    return value;
  }
  const json = (path, value, signal) =>
    call(path, { body: JSON.stringify(value), headers: { "Content-Type": "application/json" }, signal });
  return {
    /** { max_attachment_bytes, max_attachments, chunk_bytes } */
    limits: () => call("/api/v1/limits", { method: "GET" }),
    /** { upload, received, chunk_bytes } */
    create: async (length, signal) => {
      let pow;
      try {
        pow = await powHeaders(fetchFn);
      } catch {
        throw new ApiError(0, "network");
      }
      return call("/api/v1/uploads", {
        body: JSON.stringify({ length }),
        headers: { "Content-Type": "application/json", ...pow },
        signal,
      });
    },
    /**
     * { received, complete }. `onSent(bytes)` hears how many bytes of this
     * request's body have left the browser so far (only in a browser with
     * the default fetch: fetch itself tells nothing while it uploads).
     */
    chunk: (upload, offset, bytes, signal, onSent) => {
      // A Blob (a copy), not the bytes themselves: Chromium sends a Blob body
      // through its blob store, several times faster than an ArrayBuffer's.
      const request = {
        body: new Blob([bytes]),
        headers: { "Upload-Id": upload, "Upload-Offset": String(offset), "Content-Type": "application/octet-stream" },
        signal,
      };
      return injected || typeof XMLHttpRequest === "undefined"
        ? call("/api/v1/uploads/chunk", request)
        : sendWithProgress("/api/v1/uploads/chunk", request, onSent);
    },
    /** { length, received, complete } */
    status: (upload, signal) => json("/api/v1/uploads/status", { upload }, signal),
    /** { cancelled: true } */
    cancel: (upload) => json("/api/v1/uploads/cancel", { upload }),
  };
}

/**
 * POSTs `body` with XMLHttpRequest, whose upload events tell the bytes sent
 * while a chunk is on its way (a 4 MiB chunk takes a minute on slow mobile
 * data). Answers like `call` in uploadApi: the JSON answer, an ApiError, or
 * UploadCancelled. Same origin, no credentials, as the fetch calls.
 */
function sendWithProgress(path, { body, headers, signal }, onSent = () => {}) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new UploadCancelled());
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.withCredentials = false;
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => onSent(event.loaded));
    xhr.addEventListener("load", () => {
      let value = null;
      try {
        value = JSON.parse(xhr.responseText);
      } catch {
        value = null;
      }
      if (xhr.status < 200 || xhr.status > 299) reject(new ApiError(xhr.status, value?.error ?? "unexpected"));
      else if (value === null || typeof value !== "object") reject(new ApiError(xhr.status, "unexpected"));
      else resolve(value);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network")));
    xhr.addEventListener("timeout", () => reject(new ApiError(0, "network")));
    xhr.addEventListener("abort", () => reject(new UploadCancelled()));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

const sleepFor = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
});

/**
 * The attachments of one message: `files` are `{ name, type, size, open }`
 * with `open()` giving the file's bytes as a ReadableStream (`file.stream()`),
 * `recipients` the message's age recipients. Use: `await start()` (encrypts
 * every head and reserves every upload, so a full server says so before any
 * byte is sent), then `await run(onProgress)` until it resolves; when it
 * rejects with UploadInterrupted, `run` again resumes. `cancel()` at any
 * time deletes every upload of the batch. Then `attachments()` are the
 * envelope entries and `ids()` the request's `uploads`.
 */
export class AttachmentBatch {
  #files;
  #recipients;
  #api;
  #retries;
  #backoff;
  #items = [];
  #controller = new AbortController();
  #cancelled = false;
  #buffer = null; // the one chunk buffer, reused once its chunk is acknowledged
  #onProgress = () => {};
  #told = 0; // when progress was last told while encrypting

  constructor(files, recipients, { api = uploadApi(), retries = 2, backoff = [400, 1500] } = {}) {
    this.#files = files;
    this.#recipients = recipients;
    this.#api = api;
    this.#retries = retries;
    this.#backoff = backoff;
  }

  async start() {
    const signal = this.#controller.signal;
    try {
      for (const file of this.#files) {
        let openGate;
        const gate = new Promise((resolve) => { openGate = resolve; });
        // The encrypter starts pulling at once; the file opens only on its turn.
        const open = async () => { await gate; return file.open(); };
        const { ciphertext, length, headLength } = await encryptAttachment(open, file.size, this.#recipients);
        const item = {
          file, length, headLength, openGate, reader: ciphertext.getReader(), carry: null,
          id: null, chunkBytes: 0, received: 0, sending: 0, read: 0, encrypted: 0, complete: false,
          pending: null, resync: false, hasher: sha256Hasher(), head: null,
        };
        this.#items.push(item);
        const answer = await this.#api.create(length, signal);
        this.#check(answer.received === 0 && typeof answer.upload === "string" && answer.chunk_bytes > 0);
        Object.assign(item, { id: answer.upload, chunkBytes: answer.chunk_bytes });
      }
    } catch (error) {
      const cancelled = this.#cancelled; // by the melder, before this failure
      await this.cancel();
      throw cancelled ? new UploadCancelled() : error;
    }
  }

  /**
   * Sends what is left, file after file; `onProgress(progress())` after every
   * acknowledged chunk. Rejects with UploadInterrupted after `retries`
   * failed tries of one step (network, 5xx, wrong offset), UploadCancelled,
   * or the ApiError of a refusal (the batch is then lost: cancel it).
   */
  async run(onProgress = () => {}) {
    this.#onProgress = onProgress;
    for (const item of this.#items) {
      if (item.complete) continue;
      item.openGate();
      let failures = 0;
      while (!item.complete) {
        if (this.#cancelled) throw new UploadCancelled();
        const before = item.received;
        try {
          await this.#step(item);
          // Only bytes that arrived count as recovery: a status answer alone does not.
          if (item.received > before || item.complete) failures = 0;
          onProgress(this.progress());
        } catch (error) {
          if (this.#cancelled || error instanceof UploadCancelled) throw new UploadCancelled();
          if (!(transient(error) || (error instanceof ApiError && error.code === "wrong_offset"))) throw error;
          item.resync = true; // whatever happened, ask the server before sending again
          if (++failures > this.#retries) throw new UploadInterrupted(error);
          await sleepFor(this.#backoff[Math.min(failures, this.#backoff.length) - 1], this.#controller.signal);
        }
      }
    }
  }

  /** One request: ask where the upload stands, or send (the rest of) the current chunk. */
  async #step(item) {
    const signal = this.#controller.signal;
    if (item.resync) {
      const answer = await this.#api.status(item.id, signal);
      this.#accept(item, answer);
      item.resync = false;
      if (item.received === item.length && !item.complete) throw new ApiError(503, "checking"); // ask again later
      return;
    }
    item.pending ??= await this.#nextChunk(item);
    const { offset, bytes } = item.pending;
    const from = item.received;
    const body = bytes.subarray(from - offset);
    // Bytes on their way count as sent for the progress shown, told at
    // most five times a second; only the server's answer makes them received.
    const onSent = (loaded) => {
      item.sending = from + Math.min(Math.max(loaded, 0), body.length);
      if (Date.now() - this.#told > 200) {
        this.#told = Date.now();
        this.#onProgress(this.progress());
      }
    };
    try {
      const answer = await this.#api.chunk(item.id, from, body, signal, onSent);
      this.#accept(item, answer);
    } finally {
      item.sending = 0;
    }
  }

  /** Takes the server's `received`: it may stand anywhere within the unacknowledged chunk. */
  #accept(item, { received, complete }) {
    const from = item.pending?.offset ?? item.received;
    const to = item.pending ? from + item.pending.bytes.length : item.received;
    // Behind the held chunk, the bytes are gone from this page: the file must start again.
    if (!Number.isSafeInteger(received) || received < from || received > to) throw new ApiError(409, "upload_lost");
    item.received = received;
    if (received === to) item.pending = null;
    item.complete = complete === true && received === item.length;
  }

  /** The next chunk of ciphertext: read (and so encrypted) only now, into the one buffer. */
  async #nextChunk(item) {
    const n = Math.min(item.chunkBytes, item.length - item.read);
    if (!this.#buffer || this.#buffer.length < n) this.#buffer = new Uint8Array(n);
    const bytes = this.#buffer.subarray(0, n);
    let filled = 0;
    while (filled < n) {
      let value = item.carry;
      item.carry = null;
      if (!value) {
        const next = await item.reader.read();
        if (this.#cancelled) throw new UploadCancelled();
        this.#check(!next.done, "the ciphertext ended early");
        value = next.value;
      }
      const take = Math.min(value.length, n - filled);
      bytes.set(value.subarray(0, take), filled);
      filled += take;
      if (take < value.length) item.carry = value.subarray(take);
      // Encrypting a chunk takes seconds without a JIT: say how far it got, a few times a second.
      item.encrypted = Math.max(item.encrypted, item.read + filled);
      if (Date.now() - this.#told > 200) {
        this.#told = Date.now();
        this.#onProgress(this.progress());
      }
    }
    const offset = item.read;
    item.read += n;
    if (offset < item.headLength) {
      item.hasher.update(bytes.subarray(0, Math.min(n, item.headLength - offset)));
      if (item.read >= item.headLength) item.head = item.hasher.hex();
    }
    if (item.read === item.length) this.#check(!item.carry && (await item.reader.read()).done, "the ciphertext ran on");
    return { offset, bytes };
  }

  #check(condition, what = "the server's answer does not fit") {
    if (!condition) throw new Error(what);
  }

  /**
   * Where the batch stands: per file and in all, bytes sent (acknowledged,
   * or on their way in the request being sent: `sent`) and bytes encrypted (`encrypted`, never behind `sent`) of bytes
   * to send.
   */
  progress() {
    const files = this.#files.map((file, i) => {
      const item = this.#items[i];
      const sent = Math.max(item?.received ?? 0, item?.sending ?? 0);
      return {
        name: file.name, sent, encrypted: Math.max(item?.encrypted ?? 0, sent),
        length: item?.length ?? 0, complete: item?.complete ?? false,
      };
    });
    return {
      files,
      sent: files.reduce((sum, f) => sum + f.sent, 0),
      encrypted: files.reduce((sum, f) => sum + f.encrypted, 0),
      length: files.reduce((sum, f) => sum + f.length, 0),
    };
  }

  /** The envelope entries (protocol.md §3a), once `run` has resolved. */
  attachments() {
    return this.#items.map(({ file, id, head, complete }) => {
      this.#check(complete && head, "the attachments are not all sent");
      return { name: file.name, type: file.type, size: file.size, upload: id, head_sha256: head };
    });
  }

  /** The upload ids, for the request's `uploads`. */
  ids() {
    return this.#items.map((item) => item.id).filter(Boolean);
  }

  /**
   * Stops whatever runs (the request in flight is aborted), stops reading
   * the files and asks the server to delete every upload made so far. Best
   * effort: an upload the server cannot be told about is deleted after a day.
   */
  async cancel() {
    this.#cancelled = true;
    this.#controller.abort();
    for (const item of this.#items) item.reader.cancel().catch(() => {});
    const ids = this.ids();
    this.#items = [];
    await Promise.all(ids.map((id) => this.#api.cancel(id).catch(() => {})));
  }
}
