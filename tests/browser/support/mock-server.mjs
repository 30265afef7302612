// An in-memory stand-in for `meldkluis serve`, following docs/api.md, so the
// pages can be tested in Chromium without the Rust binaries. It sends the
// same Content-Security-Policy as the real server, so a CSP violation in a
// page shows up here too. The real server is tested by roundtrip.test.mjs.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import path from "node:path";
import { render, routeOf, webDir } from "./render.mjs";

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const TYPES = { ".js": "text/javascript", ".css": "text/css", ".json": "application/json" };
const STATIC = ["/css/", "/js/", "/vendor/", "/i18n/"];
const day = () => new Date().toISOString().slice(0, 10);
const isLookupKey = (k) => typeof k === "string" && /^[0-9a-f]{64}$/.test(k);
const isBase64 = (m) => typeof m === "string" && m.length > 0 && Buffer.from(m, "base64").toString("base64") === m;

/**
 * Starts the mock on 127.0.0.1, a free port. `counsellors` are API entries.
 * Returns { url, cases, requests, failNext, close() }; `cases` maps
 * lookup key → { counsellors, messages, request } for the test to inspect
 * and to add replies to.
 */
export async function startMockServer({ counsellors }) {
  const cases = new Map();
  const failures = [];
  const requests = [];

  function reply(res, status, body, headers = {}) {
    const isBytes = body instanceof Uint8Array;
    res.writeHead(status, {
      "Content-Type": isBytes ? "application/octet-stream" : "application/json",
      "Content-Security-Policy": CSP,
      ...headers,
    });
    res.end(isBytes ? body : JSON.stringify(body));
  }
  const error = (res, status, code) => reply(res, status, { error: code, message: code });

  async function api(req, res, body) {
    const failure = failures.findIndex((f) => f.path === req.url);
    if (failure >= 0) {
      const [f] = failures.splice(failure, 1);
      if (!f.afterProcessing) return error(res, f.status, f.code);
      // The request takes effect, but its answer is lost on the way back.
      await handle(req, { writeHead() {}, end() {} }, body);
      return error(res, f.status, f.code);
    }
    return handle(req, res, body);
  }

  async function handle(req, res, body) {
    const route = `${req.method} ${req.url}`;
    if (route === "GET /api/v1/counsellors") return reply(res, 200, { counsellors });
    if (route === "POST /api/v1/courier/sync") {
      if (req.headers["content-type"] !== "application/octet-stream") return error(res, 415, "unsupported_media_type");
      const digest = createHash("sha256").update(body).digest("hex");
      return reply(res, 200, new TextEncoder().encode(`mock inbox for outbox ${digest}\n`), {
        "Content-Disposition": 'attachment; filename="meldkluis-inbox-vp-test-1.age"',
      });
    }
    if (req.headers["content-type"] !== "application/json") return error(res, 415, "unsupported_media_type");
    let json;
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      return error(res, 400, "bad_json");
    }
    if (!isLookupKey(json.lookup_key)) return error(res, 400, "bad_lookup_key");
    const existing = cases.get(json.lookup_key);
    if (route === "POST /api/v1/reports") {
      if (!Array.isArray(json.counsellors) || json.counsellors.length === 0) return error(res, 400, "no_counsellor");
      if (!json.counsellors.every((id) => counsellors.some((c) => c.id === id))) return error(res, 400, "unknown_counsellor");
      if (!isBase64(json.message)) return error(res, 400, "bad_base64");
      if (existing) {
        if (existing.request === body.toString("utf8")) return reply(res, 200, { stored: true, day: existing.day });
        return error(res, 409, "code_in_use");
      }
      cases.set(json.lookup_key, {
        request: body.toString("utf8"),
        day: day(),
        counsellors: json.counsellors,
        messages: [{ id: randomBytes(16).toString("hex"), author: "melder", kind: "report", day: day(), message: json.message }],
      });
      return reply(res, 201, { stored: true, day: day() });
    }
    if (!existing) return error(res, 404, "unknown_code");
    if (route === "POST /api/v1/thread") {
      return reply(res, 200, { counsellors: existing.counsellors, messages: existing.messages });
    }
    if (route === "POST /api/v1/thread/messages") {
      if (!isBase64(json.message)) return error(res, 400, "bad_base64");
      existing.messages.push({ id: randomBytes(16).toString("hex"), author: "melder", kind: "follow-up", day: day(), message: json.message });
      return reply(res, 201, { stored: true, day: day() });
    }
    return error(res, 404, "not_found");
  }

  async function page(req, res) {
    const { pathname } = new URL(req.url, "http://localhost");
    const route = routeOf(pathname);
    if (route) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP });
      return res.end(render(route[1], route[0]));
    }
    if (STATIC.some((prefix) => pathname.startsWith(prefix)) && !pathname.includes("..")) {
      try {
        const bytes = await readFile(path.join(webDir, pathname));
        res.writeHead(200, { "Content-Type": TYPES[path.extname(pathname)] ?? "application/octet-stream", "Content-Security-Policy": CSP });
        return res.end(bytes);
      } catch {
        // fall through to 404
      }
    }
    return error(res, 404, "not_found");
  }

  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method, url: req.url, body });
      (req.url.startsWith("/api/") ? api(req, res, body) : page(req, res)).catch((e) => {
        console.error(e);
        error(res, 500, "internal");
      });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cases,
    requests,
    /** The next request to `path` fails with `status`/`code`, optionally after taking effect. */
    failNext: (path, status, code, { afterProcessing = false } = {}) =>
      failures.push({ path, status, code, afterProcessing }),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
