// Renders web/pages/*.html the way the Rust server does (docs: the template
// syntax in the brief): {{t.key}} HTML-escaped from web/i18n/<lang>.json,
// {{lang}}, {{href.page}}, {{other_lang_href}}, {{current.page}} and
// {{include.partial}} (web/pages/_partial.html). Used by the static page
// checks (tests/js/pages.test.mjs); an unknown placeholder is an error, not an
// empty string.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const webDir = fileURLToPath(new URL("../../../web/", import.meta.url));

export const ROUTES = {
  nl: { index: "/", report: "/melden", thread: "/mijn-melding", courier: "/koerier" },
  en: { index: "/en", report: "/en/report", thread: "/en/my-report", courier: "/en/courier" },
};

export const messages = (lang) => JSON.parse(readFileSync(`${webDir}i18n/${lang}.json`, "utf8"));

const escapeHtml = (s) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

export function render(page, lang, file = page, depth = 0) {
  const table = messages(lang);
  const other = lang === "nl" ? "en" : "nl";
  const template = readFileSync(`${webDir}pages/${file}.html`, "utf8");
  return template.replace(/\{\{([a-z0-9_.]+)\}\}/g, (whole, name) => {
    if (name.startsWith("include.") && depth === 0) return render(page, lang, `_${name.slice(8)}`, 1).trimEnd();
    if (name.startsWith("current.") && ROUTES[lang][name.slice(8)]) return name.slice(8) === page ? ' aria-current="page"' : "";
    if (name === "lang") return lang;
    if (name === "other_lang_href") return ROUTES[other][page];
    if (name.startsWith("href.") && ROUTES[lang][name.slice(5)]) return ROUTES[lang][name.slice(5)];
    if (name.startsWith("t.") && typeof table[name.slice(2)] === "string") return escapeHtml(table[name.slice(2)]);
    throw new Error(`${page}.html (${lang}): unknown placeholder ${whole}`);
  });
}
