// Messages for the scripts, from the same /i18n/<lang>.json the server uses
// for the templates, so every visible string lives in one table per language.

export const lang = document.documentElement.lang === "en" ? "en" : "nl";

let messages = {};

/**
 * Loads the table once; pages call this before showing any text. The page
 * names the table's Subresource Integrity (the server computes it), so a
 * table changed on the way is refused like a changed script.
 */
export async function loadMessages() {
  try {
    const integrity = document.querySelector('meta[name="i18n-integrity"]')?.content;
    const answer = await fetch(`/i18n/${lang}.json`, { credentials: "omit", ...(integrity ? { integrity } : {}) });
    if (answer.ok) messages = await answer.json();
  } catch {
    // Without the table the keys themselves show, which is ugly but honest.
  }
}

/** The message for `key`, with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const message = messages[key] ?? key;
  return message.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** A day as the server sends it ("2026-11-22", UTC) in the page's language. */
export function formatDay(day) {
  const date = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return day;
  return new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "nl-NL", {
    dateStyle: "long",
    timeZone: "UTC",
  }).format(date);
}

/**
 * A byte count for people, in binary units as everywhere in Meldkluis (the
 * reviewer, the desktop program, the docs): 1 MiB = 1,048,576 bytes, so a
 * limit of 500 MiB reads "500 MiB", not "524,3 MB". "3,2 MiB" in Dutch.
 */
export function formatSize(bytes) {
  const format = (n, unit) =>
    `${new Intl.NumberFormat(lang === "en" ? "en-GB" : "nl-NL", { maximumFractionDigits: 1 }).format(n)} ${unit}`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  if (bytes < 1024) return format(bytes, "bytes");
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return format(value, units[unit]);
}
