// Renders web/pages/*.html the way the Rust server does (docs: the template
// syntax in the brief): {{t.key}} HTML-escaped from web/i18n/<lang>.json,
// {{lang}}, {{href.page}}, {{other_lang_href}}, {{current.page}} and
// {{include.partial}} (web/pages/_partial.html). Used by the static page
// checks (tests/js/pages.test.mjs); an unknown placeholder is an error, not an
// empty string.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const webDir = fileURLToPath(new URL("../../../web/", import.meta.url));

/**
 * Every page's path per language, read from the server's own `PAGES` table
 * (src/server/handlers/pages.rs), so the tests follow it instead of a copy.
 */
export const ROUTES = (() => {
  const source = readFileSync(new URL("../../../src/server/handlers/pages.rs", import.meta.url), "utf8");
  const table = /const PAGES: \[\(&str, &str, &str\); \d+\] = \[([^\]]*)\];/.exec(source);
  if (!table) throw new Error("no PAGES table in src/server/handlers/pages.rs");
  const routes = { nl: {}, en: {} };
  for (const [, name, nl, en] of table[1].matchAll(/\(\s*"([a-z_-]+)",\s*"([^"]+)",\s*"([^"]+)",?\s*\)/g)) {
    routes.nl[name] = nl;
    routes.en[name] = en;
  }
  return routes;
})();

/**
 * The route finder's walks: for each route, the answers on the way (message
 * keys of the links to follow) and the result page's name.
 */
export const ROUTE_WALKS = [
  { route: "route-raba", answers: ["route_q1_labour"] },
  { route: "route-advice", answers: ["route_q1_integrity", "route_q2_advice"] },
  { route: "route-coordinator", answers: ["route_q1_integrity", "route_q2_report", "route_q3_no"] },
  { route: "route-here", answers: ["route_q1_integrity", "route_q2_report", "route_q3_yes", "route_q4_no"] },
  { route: "route-authority", answers: ["route_q1_integrity", "route_q2_report", "route_q3_yes", "route_q4_yes"] },
  { route: "route-hvk", answers: ["route_q1_integrity", "route_q2_report", "route_q3_yes", "route_q4_outside"] },
];

/** The page names, in the order of the server's table. */
export const PAGES = Object.keys(ROUTES.nl);

export const messages = (lang) => JSON.parse(readFileSync(`${webDir}i18n/${lang}.json`, "utf8"));

const escapeHtml = (s) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

export function render(page, lang, file = page, depth = 0) {
  const table = messages(lang);
  const other = lang === "nl" ? "en" : "nl";
  const template = readFileSync(`${webDir}pages/${file}.html`, "utf8");
  return template.replace(/\{\{([a-z0-9_.-]+)\}\}/g, (whole, name) => {
    if (name.startsWith("include.") && depth === 0) return render(page, lang, `_${name.slice(8)}`, 1).trimEnd();
    if (name.startsWith("current.") && ROUTES[lang][name.slice(8)]) return name.slice(8) === page ? ' aria-current="page"' : "";
    if (name === "lang") return lang;
    if (name === "other_lang_href") return ROUTES[other][page];
    if (name.startsWith("href.") && ROUTES[lang][name.slice(5)]) return ROUTES[lang][name.slice(5)];
    if (name.startsWith("t.") && typeof table[name.slice(2)] === "string") return escapeHtml(table[name.slice(2)]);
    throw new Error(`${page}.html (${lang}): unknown placeholder ${whole}`);
  });
}
