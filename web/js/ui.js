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

/** Shows (or with no message hides) the error paragraph of a field. */
export function fieldError(id, message) {
  const error = $(`${id}-error`);
  const field = $(id);
  error.textContent = message ?? "";
  error.hidden = !message;
  if (message) field.setAttribute("aria-invalid", "true");
  else field.removeAttribute("aria-invalid");
}

/** Status line and progress bar of a form; `fraction` null = busy, undefined = none. */
export function status(prefix, message, { kind = "info", fraction } = {}) {
  const line = $(prefix ? `${prefix}-status` : "status");
  const bar = $(prefix ? `${prefix}-progress` : "progress");
  line.textContent = message ?? "";
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
