import { powHeaders } from "./pow.js";

// The HTTP API of docs/api.md. XMLHttpRequest rather than fetch because it
// reports upload progress, which matters for reports with attachments.

/**
 * A request that did not succeed. `code` is the API's stable error code, or
 * "network" when no answer came. `uncertain` is true when the server may have
 * acted anyway (no answer, or a 5xx), so a retry must resend the same bytes.
 */
export class ApiError extends Error {
  constructor(status, code) {
    super(`API ${status}: ${code}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.uncertain = status === 0 || status >= 500;
  }
}

function send(method, path, { body = null, type = null, binary = false, headers = {}, onUploadProgress } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.withCredentials = false;
    if (type) xhr.setRequestHeader("Content-Type", type);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.responseType = binary ? "arraybuffer" : "text";
    if (onUploadProgress) {
      xhr.upload.onprogress = (e) => e.lengthComputable && onUploadProgress(e.loaded / e.total);
    }
    xhr.onerror = xhr.ontimeout = () => reject(new ApiError(0, "network"));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr);
        return;
      }
      let code = "unexpected";
      try {
        const text = binary ? new TextDecoder().decode(xhr.response) : xhr.responseText;
        code = JSON.parse(text).error ?? code;
      } catch {
        // not a JSON error body (e.g. a proxy's page): keep "unexpected"
      }
      reject(new ApiError(xhr.status, code));
    };
    xhr.send(body);
  });
}

function parse(xhr) {
  try {
    return JSON.parse(xhr.responseText);
  } catch {
    throw new ApiError(xhr.status, "unexpected");
  }
}

async function json(method, path, value) {
  const body = value === undefined ? null : JSON.stringify(value);
  return parse(await send(method, path, { body, type: body && "application/json" }));
}

/** [{ id, name }]: every organisation this server serves. */
export async function getOrganisations() {
  return (await json("GET", "/api/v1/organisations")).organisations;
}

/**
 * { organisation: { id, name }, counsellors: [{ id, name, organisation, org,
 * kind, description, age_recipient }] } of one organisation; without `org`
 * the server answers only when it serves a single one (else
 * `organisation_required`).
 */
export function getCounsellors(org = null) {
  const query = org ? `?org=${encodeURIComponent(org)}` : "";
  return json("GET", `/api/v1/counsellors${query}`);
}

/**
 * The organisation a page serves: `<org>` of a path `/o/<org>/…`, or null
 * when the page is served at the root.
 */
export function organisationFromPath(pathname = globalThis.location?.pathname ?? "") {
  const match = /^\/o\/([^/]+)(?:\/|$)/.exec(pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null; // a broken escape names no organisation
  }
}

/**
 * Stores a report. `request` is the exact JSON text, so that a retry after
 * an uncertain failure sends identical bytes and the server answers 200.
 */
export async function postReport(requestText, onUploadProgress) {
  const headers = await proofOfWork();
  return parse(await send("POST", "/api/v1/reports", {
    body: requestText, type: "application/json", headers, onUploadProgress,
  }));
}

/** { counsellors: [id], messages: [{ id, author, kind, day, message }] } */
export function getThread(lookupKey) {
  return json("POST", "/api/v1/thread", { lookup_key: lookupKey });
}

export async function postFollowUp(requestText, onUploadProgress) {
  const headers = await proofOfWork();
  return parse(await send("POST", "/api/v1/thread/messages", {
    body: requestText, type: "application/json", headers, onUploadProgress,
  }));
}

/** A solved proof of work for one request; a failure is a network failure. */
async function proofOfWork() {
  try {
    return await powHeaders();
  } catch {
    throw new ApiError(0, "network");
  }
}

/** Sends an outbox bundle; answers { bytes, filename } of the inbox bundle. */
export async function courierSync(outboxBytes, onUploadProgress) {
  const xhr = await send("POST", "/api/v1/courier/sync", {
    body: outboxBytes, type: "application/octet-stream", binary: true, onUploadProgress,
  });
  return {
    bytes: new Uint8Array(xhr.response),
    filename: filenameFrom(xhr.getResponseHeader("Content-Disposition")),
  };
}

/** The file name from Content-Disposition, reduced to harmless characters. */
function filenameFrom(header) {
  const match = /filename="([^"]*)"/.exec(header ?? "");
  const name = match?.[1] ?? "";
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$/.test(name) ? name : "meldkluis-inbox.age";
}
