// Attachments in the pages: the files a melder chooses, checked against the
// server's limits before anything is encrypted, then sent as streamed
// attachments (upload.js) with a progress bar per file, a cancel button and,
// after a lost connection, a resume button. Used by the report form and the
// follow-up form alike, each with its own element ids under a prefix.

import { ApiError } from "./api.js";
import { AttachmentReadError, MAX_ATTACHMENTS, base64ToBytes } from "./protocol.js";
import { AttachmentBatch, UploadCancelled, UploadInterrupted, uploadApi } from "./upload.js";
import { formatSize, t } from "./i18n.js";
import { $, apiErrorMessage, el, fieldError, status } from "./ui.js";

let limits = { max_attachments: MAX_ATTACHMENTS, max_attachment_bytes: null };
let limitsLoaded = null;

/**
 * The server's limits (`GET /api/v1/limits`), fetched once per page. Without
 * an answer only the count is checked here, and the server refuses a file
 * that is too large when its upload is made.
 */
export function loadLimits() {
  limitsLoaded ??= uploadApi().limits().then((answer) => {
    if (Number.isSafeInteger(answer.max_attachment_bytes)) limits.max_attachment_bytes = answer.max_attachment_bytes;
    if (Number.isSafeInteger(answer.max_attachments)) {
      limits.max_attachments = Math.min(answer.max_attachments, MAX_ATTACHMENTS);
    }
  }, () => {});
  return limitsLoaded;
}

/** "At most 20 files of at most 500 MB each", for a hint under the field. */
export async function showLimits(id) {
  await loadLimits();
  $(id).textContent = limits.max_attachment_bytes === null
    ? t("attachments_limit_count", { count: limits.max_attachments })
    : t("attachments_limits", { count: limits.max_attachments, max: formatSize(limits.max_attachment_bytes) });
}

/** Checks the chosen files against the limits; returns an error message or null. */
export function checkFiles(files) {
  if (files.length > limits.max_attachments) return t("attachments_too_many", { max: limits.max_attachments });
  const max = limits.max_attachment_bytes;
  const large = max === null ? undefined : files.find((f) => f.size > max);
  if (large) {
    return t("attachments_file_too_large", { name: large.name, size: formatSize(large.size), max: formatSize(max) });
  }
  return null;
}

/**
 * Keeps the list under a file input up to date and its error shown. Returns a
 * function giving the chosen files.
 */
export function watchFileInput(inputId, listId) {
  const input = $(inputId);
  const update = async () => {
    const files = [...input.files];
    $(listId).replaceChildren(
      ...files.map((f) => el("li", { text: t("attachments_item", { name: f.name, size: formatSize(f.size) }) })),
    );
    await loadLimits();
    fieldError(inputId, checkFiles(files));
  };
  input.addEventListener("change", update);
  return () => [...input.files];
}

// At most 255 characters (the Rust side's limit), cut between code points.
const clip = (text) => Array.from(text).slice(0, 255).join("");

/** The files as upload.js takes them: name and type as the envelope carries them. */
function uploadsOf(files) {
  return files.map((file) => ({
    // The name travels encrypted; only the counsellor sees it. No path parts.
    name: clip(file.name.split(/[\\/]/).pop()) || t("attachment_default_name"),
    type: clip(file.type) || "application/octet-stream",
    size: file.size,
    open: () => file.stream(),
  }));
}

const percent = (sent, length) => (length ? Math.floor((sent / length) * 100) : 0);
/**
 * How far a file (or the batch) is: half for encrypting, half for sending,
 * so the bar moves while a slow engine (no JIT) encrypts, not only while
 * bytes go out.
 */
const done = (f) => (f.length ? (f.encrypted + f.sent) / (2 * f.length) : 0);

/**
 * The upload panel of a form (ids `<prefix>upload…`, prefix "" or e.g.
 * "followup-"): a progress bar per file with its name and percentage as its
 * label, the total, and the resume and cancel buttons.
 */
class UploadPanel {
  constructor(prefix) {
    this.prefix = prefix;
    this.panel = $(`${prefix}upload`);
    this.list = $(`${prefix}upload-files`);
    this.total = $(`${prefix}upload-total`);
    this.resume = $(`${prefix}upload-resume`);
    this.cancel = $(`${prefix}upload-cancel`);
    this.statusPrefix = prefix.replace(/-$/, "");
  }

  show(progress) {
    this.list.replaceChildren(...progress.files.map((file, i) => {
      const labelId = `${this.prefix}upload-file-${i}`;
      return el("li", { className: "upload-file" }, [
        el("span", { attrs: { id: labelId } }),
        el("progress", { attrs: { max: "1", value: "0", "aria-labelledby": labelId } }),
      ]);
    }));
    this.panel.hidden = false;
    this.update(progress);
  }

  update(progress) {
    progress.files.forEach((file, i) => {
      const item = this.list.children[i];
      if (!item) return;
      const label = t("upload_file_progress", { name: file.name, percent: Math.floor(done(file) * 100) });
      const span = item.querySelector("span");
      if (span.textContent !== label) span.textContent = label;
      item.querySelector("progress").value = done(file);
    });
    // The total is known once every upload is made.
    let total = progress.length === 0 ? "" : t("upload_total", {
      percent: Math.floor(done(progress) * 100), size: formatSize(progress.length),
    });
    const left = this.timeLeft(progress);
    if (total && left) total = `${total} · ${left}`;
    if (this.total.textContent !== total) this.total.textContent = total;
    // The status line is a live region: status() changes it only in quarters.
    status(this.statusPrefix, t("upload_status_sending"), { fraction: done(progress) });
  }

  /**
   * "About 1 min 20 s left", from the rate bytes left the browser over the
   * last ten seconds; only on a slow link (more than five seconds to go), and
   * rounded (5 s, then whole minutes) so it does not flicker. This line is
   * not a live region: the status line says the quarters.
   */
  timeLeft(progress) {
    const now = Date.now();
    this.samples = (this.samples ?? []).filter((sample) => now - sample.at <= 10_000);
    this.samples.push({ at: now, sent: progress.sent });
    const first = this.samples[0];
    const elapsed = (now - first.at) / 1000;
    const rate = (progress.sent - first.sent) / elapsed;
    if (elapsed < 2 || !(rate > 0)) return "";
    const seconds = (progress.length - progress.sent) / rate;
    if (seconds < 5) return "";
    if (seconds < 60) return t("upload_time_left_seconds", { seconds: Math.ceil(seconds / 5) * 5 });
    const minutes = Math.round(seconds / 60);
    return t("upload_time_left_minutes", { minutes });
  }

  running() {
    this.samples = [];
    const hadFocus = document.activeElement === this.resume;
    this.resume.hidden = true;
    this.cancel.removeAttribute("aria-disabled");
    if (hadFocus) this.cancel.focus(); // keep a keyboard user's place
  }

  interrupted() {
    this.resume.hidden = false;
    status(this.statusPrefix, t("upload_interrupted"), { kind: "error" });
    $(`${this.prefix}progress`).hidden = false; // how far it got stays in sight
    this.resume.focus();
  }

  cancelling() {
    this.resume.hidden = true;
    this.cancel.setAttribute("aria-disabled", "true");
    status(this.statusPrefix, t("upload_status_cancelling"), { fraction: null });
  }

  hide() {
    this.samples = [];
    this.panel.hidden = true;
    this.resume.hidden = true;
    this.cancel.removeAttribute("aria-disabled");
    this.list.replaceChildren();
    this.total.textContent = "";
    this.resume.onclick = null;
    this.cancel.onclick = null;
  }
}

/**
 * Encrypts `files` to `recipients` and uploads them, showing the progress
 * in the panel under `prefix`. Resolves to `{ attachments, uploads }` for
 * the envelope and the request. Rejects with UploadCancelled when the
 * melder cancels (every upload is then deleted), or with the error that
 * stopped it (the uploads are deleted too: nothing half-sent stays). After
 * a lost connection it waits for the melder: "resume" goes on from what
 * the server has, "cancel" stops.
 */
export function sendAttachments(files, recipients, prefix = "") {
  const panel = new UploadPanel(prefix);
  const batch = new AttachmentBatch(uploadsOf(files), recipients);
  return new Promise((resolve, reject) => {
    let over = false;
    const fail = async (error) => {
      if (over) return;
      over = true;
      await batch.cancel();
      panel.hide();
      reject(error);
    };
    const go = async () => {
      panel.running();
      try {
        await batch.run((progress) => panel.update(progress));
        if (over) return;
        const sent = { attachments: batch.attachments(), uploads: batch.ids() };
        over = true;
        panel.hide();
        resolve(sent);
      } catch (error) {
        if (error instanceof UploadInterrupted) panel.interrupted();
        else if (!(error instanceof UploadCancelled)) fail(error);
      }
    };
    panel.resume.onclick = () => {
      if (over || panel.resume.hidden) return;
      status(panel.statusPrefix, t("upload_status_resuming"), { fraction: null });
      go();
    };
    panel.cancel.onclick = () => {
      if (over || panel.cancel.getAttribute("aria-disabled") === "true") return;
      panel.cancelling();
      fail(new UploadCancelled());
    };
    panel.show(batch.progress());
    status(panel.statusPrefix, t("upload_status_preparing"), { fraction: null });
    batch.start().then(() => {
      if (over) return;
      panel.show(batch.progress());
      go();
    }, fail);
  });
}

/** The message for a failure before or while a message and its attachments are sent. */
export function sendFailureMessage(error) {
  if (error instanceof ApiError) {
    return error.code === "upload_lost" ? t("upload_error_lost") : apiErrorMessage(error);
  }
  // A file that changed, moved or became unreadable while it was encrypted.
  if (error instanceof AttachmentReadError || (error instanceof DOMException && error.name !== "AbortError")) {
    return t("upload_error_read");
  }
  return error instanceof RangeError ? t("report_error_too_large") : t("report_error_encrypt");
}

/**
 * An attachment as the thread shows it: an inline one (an old report, or a
 * counsellor's reply) as a download, a streamed one by name and size only,
 * since only the counsellor fetches those. `objectUrls` collects the URLs
 * to revoke.
 */
export function attachmentItem(attachment, objectUrls) {
  if (typeof attachment.data !== "string") {
    return el("li", { text: t("attachments_item", { name: attachment.name, size: formatSize(attachment.size) }) });
  }
  // Served as octet-stream whatever type the sender claimed, so a browser
  // saves it instead of rendering (say) HTML from a stranger in this origin.
  const url = URL.createObjectURL(new Blob([base64ToBytes(attachment.data)], { type: "application/octet-stream" }));
  objectUrls.push(url);
  return el("li", {}, [el("a", { text: attachment.name, attrs: { href: url, download: attachment.name } })]);
}
