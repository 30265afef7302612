// Attachments: the files a melder chooses, checked against the limits and
// read into envelope attachments ({ name, type, data: base64 }).

import { MAX_ATTACHMENTS, bytesToBase64 } from "./protocol.js";
import { formatSize, t } from "./i18n.js";
import { $, el, fieldError } from "./ui.js";

/** Total size of all files together; the envelope must stay under 16 MiB. */
export const MAX_TOTAL_BYTES = 10 * 1024 * 1024;

/** Checks the chosen files; returns an error message or null. */
export function checkFiles(files) {
  if (files.length > MAX_ATTACHMENTS) return t("attachments_too_many", { max: MAX_ATTACHMENTS });
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (total > MAX_TOTAL_BYTES) {
    return t("attachments_too_large", { size: formatSize(total), max: formatSize(MAX_TOTAL_BYTES) });
  }
  return null;
}

/**
 * Keeps the list under a file input up to date and its error shown. Returns a
 * function giving the chosen files.
 */
export function watchFileInput(inputId, listId) {
  const input = $(inputId);
  const update = () => {
    const files = [...input.files];
    $(listId).replaceChildren(
      ...files.map((f) => el("li", { text: t("attachments_item", { name: f.name, size: formatSize(f.size) }) })),
    );
    fieldError(inputId, checkFiles(files));
  };
  input.addEventListener("change", update);
  return () => [...input.files];
}

// At most 255 characters (the Rust side's limit), cut between code points.
const clip = (text) => Array.from(text).slice(0, 255).join("");

/** Reads files into envelope attachments, reporting progress as a fraction. */
export async function readAttachments(files, onProgress = () => {}) {
  const total = files.reduce((sum, f) => sum + f.size, 0) || 1;
  let done = 0;
  const attachments = [];
  for (const file of files) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    attachments.push({
      // The name travels encrypted; only the counsellor sees it. No path parts.
      name: clip(file.name.split(/[\\/]/).pop()) || t("attachment_default_name"),
      type: clip(file.type) || "application/octet-stream",
      data: bytesToBase64(bytes),
    });
    done += file.size;
    onProgress(done / total);
  }
  return attachments;
}
