// Small DOM helpers shared by the pages. Text from messages, the server or a
// decrypted envelope only ever reaches the page through textContent.

import { t } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

/** An element with text content and attributes; children are appended. */
export function el(tag, { text, className, attrs = {} } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/**
 * Shows a formatted code ("ABCD-EFGH-…") in `node` so that a line may break
 * only between groups, never inside one: each group with its dash is a
 * span that does not wrap, followed by a break opportunity (<wbr>). The
 * text (textContent, copying, selection) stays exactly the code.
 */
export function showCode(node, display) {
  const groups = display.split("-");
  node.replaceChildren(...groups.flatMap((group, i) => {
    const last = i === groups.length - 1;
    const span = el("span", { className: "code-group", text: last ? group : `${group}-` });
    return last ? [span] : [span, document.createElement("wbr")];
  }));
}

/**
 * The page's assertive live region, for errors that neither move focus nor
 * appear in a live region of their own (WCAG 4.1.3): made when this module
 * loads, so it exists before anything is said in it.
 */
const announcer = el("div", { className: "visually-hidden", attrs: { id: "announcer", "aria-live": "assertive", "aria-atomic": "true" } });
// Inside <main>, so its words sit in a landmark like every other text.
(document.querySelector("main") ?? document.body).append(announcer);

/**
 * Says `message` to assistive technology once. Emptied first, so the same
 * message said twice (the same wrong code sent again) is heard again.
 */
export function announce(message) {
  announcer.textContent = "";
  setTimeout(() => { announcer.textContent = message; }, 50);
}

/**
 * Shows (or with no message hides) the error paragraph of a field. When the
 * field already has focus (the melder pressed Enter in it), moving focus
 * there says nothing, so the error is announced instead.
 */
export function fieldError(id, message) {
  const error = $(`${id}-error`);
  const field = $(id);
  error.textContent = message ?? "";
  error.hidden = !message;
  if (message) field.setAttribute("aria-invalid", "true");
  else field.removeAttribute("aria-invalid");
  if (message && document.activeElement === field) announce(message);
}

/** After this long on one message, a known fraction is also said, in quarters. */
const SAY_PERCENT_AFTER_MS = 1500;

/**
 * Status line and progress bar of a form; `fraction` null = busy, undefined
 * = none. The line is a live region, so it changes only when its words do:
 * the same message again is not announced again, and a long step announces
 * its progress at 25, 50 and 75 %, not at every chunk.
 */
export function status(prefix, message, { kind = "info", fraction } = {}) {
  const line = $(prefix ? `${prefix}-status` : "status");
  const bar = $(prefix ? `${prefix}-progress` : "progress");
  const text = message ?? "";
  if (line.dataset.message !== text || line.dataset.kind !== kind) {
    line.dataset.message = text;
    line.dataset.since = String(Date.now());
  }
  let shown = text;
  const quarter = typeof fraction === "number" ? Math.floor(Math.min(Math.max(fraction, 0), 0.999) * 4) * 25 : 0;
  if (text && quarter > 0 && Date.now() - Number(line.dataset.since) >= SAY_PERCENT_AFTER_MS) {
    shown = t("status_progress", { message: text, percent: quarter });
  }
  if (line.textContent !== shown) line.textContent = shown;
  line.dataset.kind = kind;
  if (bar) {
    bar.hidden = fraction === undefined;
    if (fraction === null) bar.removeAttribute("value");
    else if (fraction !== undefined) bar.value = fraction;
  }
}

/** The message for an ApiError (or any failure) in the page's language. */
export function apiErrorMessage(error) {
  const key = `error_${error?.code ?? "unexpected"}`;
  const message = t(key, { status: error?.status ?? 0 });
  return message === key ? t("error_unexpected", { status: error?.status ?? 0 }) : message;
}

/** Offers bytes as a download; returns the object URL for a "save again" link. */
export function download(bytes, filename, type = "application/octet-stream") {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const link = el("a", { attrs: { href: url, download: filename } });
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  return url;
}

/**
 * Marks buttons as busy while work runs. aria-disabled rather than disabled:
 * a disabled button drops keyboard focus to the page's start, so a keyboard
 * user would lose their place; the pages ignore clicks while busy anyway.
 */
export function setBusy(ids, busy) {
  for (const id of ids) {
    if (busy) $(id).setAttribute("aria-disabled", "true");
    else $(id).removeAttribute("aria-disabled");
  }
}

/**
 * Lists a form's field errors in its error summary (`summaryId`, with a
 * `-list`), each a link that moves focus to its field, and focuses the
 * summary so a screen reader reads it first. `errors` maps a field id to a
 * message or null; `focusTarget(id)` gives the element to focus for a field.
 * Returns true when there was nothing to show.
 */
export function errorSummary(summaryId, errors, focusTarget = (id) => $(id)) {
  const summary = $(summaryId);
  const shown = Object.entries(errors).filter(([, message]) => message);
  $(`${summaryId}-list`).replaceChildren(...shown.map(([id, message]) => {
    const link = el("a", { text: message, attrs: { href: `#${id}` } });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const target = focusTarget(id);
      target.focus();
      target.scrollIntoView({ block: "center" });
    });
    return el("li", {}, [link]);
  }));
  summary.hidden = shown.length === 0;
  if (shown.length) {
    summary.focus();
    summary.scrollIntoView({ block: "start" });
  }
  return shown.length === 0;
}

/** Moves focus to a heading (made focusable in the template) so readers hear it. */
export function focusHeading(id) {
  const heading = $(id);
  heading.focus();
  heading.scrollIntoView({ block: "start" });
}
