// The message tables (web/i18n/{nl,en}.json) against their users: every key
// a template or script uses exists in both languages, every key in the tables
// is used somewhere, and no visible text bypasses the tables. Also: the
// standard-tools commands on the no-script page are the tested recipe of
// docs/api.md, line for line.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { PAGES, messages, render, webDir } from "../browser/support/render.mjs";

const tables = { nl: messages("nl"), en: messages("en") };
const templates = readdirSync(`${webDir}pages`).filter((f) => f.endsWith(".html"));
const templateSource = (file) => readFileSync(`${webDir}pages/${file}`, "utf8");
const scripts = readdirSync(`${webDir}js`).filter((f) => f.endsWith(".js"));
const scriptSource = (file) => readFileSync(`${webDir}js/${file}`, "utf8");
const apiDoc = readFileSync(new URL("../../docs/api.md", import.meta.url), "utf8");

/** Keys the templates name: {{t.key}} in pages and partials. */
function templateKeys() {
  const keys = new Set();
  for (const file of templates) {
    for (const [, key] of templateSource(file).matchAll(/\{\{\s*t\.([a-z0-9_]+)\s*\}\}/g)) keys.add(key);
  }
  return keys;
}

/** Keys the scripts name literally: t("key") and keys handed to helpers as "key". */
function scriptKeys() {
  const called = new Set();
  const literals = new Set();
  for (const file of scripts) {
    const code = scriptSource(file);
    for (const [, key] of code.matchAll(/\bt\(\s*"([a-z0-9_]+)"/g)) called.add(key);
    for (const [, text] of code.matchAll(/"([a-z][a-z0-9_]*)"/g)) literals.add(text);
  }
  return { called, literals };
}

/**
 * Keys the scripts build from data, by prefix, with every value the data can
 * take. A script that builds a key with a prefix not listed here fails the
 * test below, so no family of keys goes unchecked.
 */
function families() {
  const errorCodes = [...apiDoc.matchAll(/^\| \d{3} \| `([a-z0-9_]+)` \|/gm)].map((m) => m[1]);
  assert.ok(errorCodes.length >= 15, "read the error table of docs/api.md");
  const categories = [...render("report", "nl").matchAll(/<option value="([a-z-]+)">/g)].map((m) => m[1]);
  assert.ok(categories.length >= 6, "read the categories of the report form");
  return {
    // ui.js apiErrorMessage: the API's error codes, plus the page's own two.
    error_: [...errorCodes, "network", "unexpected"],
    // thread.js: a message's kind, "-" written as "_".
    kind_: ["report", "question", "follow_up", "reply", "evaluation"],
    // thread.js: the envelope's category slug, "-" written as "_".
    category_: categories.map((slug) => slug.replaceAll("-", "_")),
  };
}

test("scripts build keys only from the known families", () => {
  const known = Object.keys(families());
  const built = new Set();
  for (const file of scripts) {
    for (const [, prefix] of scriptSource(file).matchAll(/`([a-z][a-z_]*_)\$\{/g)) {
      if (prefix.startsWith("badge-")) continue;
      built.add(prefix);
      assert.ok(known.includes(prefix), `${file} builds message keys "${prefix}…": list the family in this test`);
    }
  }
  assert.deepEqual([...built].sort(), [...known].sort(), "every family is still built somewhere");
});

test("no message is missing: every key used exists in both languages, as non-empty text", () => {
  const { called } = scriptKeys();
  const needed = new Set([...templateKeys(), ...called]);
  for (const [prefix, values] of Object.entries(families())) for (const v of values) needed.add(prefix + v);
  assert.ok(needed.size > 150, `found the keys in use (${needed.size})`);
  for (const [lang, table] of Object.entries(tables)) {
    const missing = [...needed].filter((key) => typeof table[key] !== "string" || !table[key].trim());
    assert.deepEqual(missing, [], `missing in web/i18n/${lang}.json`);
  }
});

test("no message is unused: every key in the tables is used by a template or a script", () => {
  const { literals } = scriptKeys();
  const used = new Set([...templateKeys(), ...literals]);
  for (const [prefix, values] of Object.entries(families())) for (const v of values) used.add(prefix + v);
  for (const [lang, table] of Object.entries(tables)) {
    const unused = Object.keys(table).filter((key) => !used.has(key));
    assert.deepEqual(unused, [], `unused in web/i18n/${lang}.json`);
  }
});

test("the check for unused keys can fail", () => {
  // A key only a comment mentions is not in use.
  const { literals } = scriptKeys();
  assert.ok(!literals.has("no_such_key_anywhere"));
  assert.ok(!templateKeys().has("site_tagline_x"));
});

test("templates show no text of their own: all of it comes from the tables", () => {
  for (const file of templates) {
    const source = templateSource(file)
      .replace(/<!--[\s\S]*?-->/g, "")
      // Commands to type are code, the same in every language.
      .replace(/<pre class="commands">[\s\S]*?<\/pre>/g, "")
      .replace(/<title>[\s\S]*?<\/title>/, (title) => title.replace(" — ", " "));
    for (const [, name, value] of source.matchAll(/\s(aria-label|title|alt|placeholder|content)="([^"]*)"/g)) {
      if (name === "content") continue; // <meta> values are not shown
      assert.match(value, /^\{\{t\.[a-z0-9_]+\}\}$/, `${file}: ${name}="${value}"`);
    }
    const text = source.replace(/<[^>]+>/g, " ").replace(/\{\{[^}]+\}\}/g, " ");
    assert.match(text, /^[\s—·]*$/, `${file} has text outside the message tables: ${text.replace(/\s+/g, " ").trim()}`);
  }
});

test("scripts show no text of their own", () => {
  for (const file of scripts) {
    const code = scriptSource(file);
    for (const pattern of [
      /\btext:\s*["'`][^"'`$]*[A-Za-z]/, // el(…, { text: "…" })
      /\.textContent\s*=\s*["'`][^"'`$]*[A-Za-z]/,
      /\.title\s*=\s*["'`][^"'`$]*[A-Za-z]/,
      /setAttribute\("(aria-label|title|alt)",\s*["'`]/,
    ]) {
      assert.ok(!pattern.test(code), `${file}: ${pattern} — use t("…")`);
    }
  }
});

test("every page links to the no-script page in its <noscript> notice, and the footer to privacy and accessibility", () => {
  for (const lang of ["nl", "en"]) {
    const table = tables[lang];
    const noscriptPath = lang === "nl" ? "/zonder-javascript" : "/en/without-javascript";
    for (const page of PAGES) {
      const html = render(page, lang);
      const notice = /<noscript>([\s\S]*?)<\/noscript>/.exec(html);
      assert.ok(notice, `${page} ${lang}: no <noscript>`);
      assert.ok(notice[1].includes(`href="${noscriptPath}"`), `${page} ${lang}: the notice links ${noscriptPath}`);
      assert.ok(notice[1].includes(table.noscript.replaceAll("’", "’")), `${page} ${lang}: the notice text`);
      const footer = /<footer[\s\S]*<\/footer>/.exec(html)[0];
      for (const target of ["privacy", "accessibility"]) {
        const path = lang === "nl" ? { privacy: "/privacy", accessibility: "/toegankelijkheid" }[target]
          : { privacy: "/en/privacy", accessibility: "/en/accessibility" }[target];
        assert.ok(footer.includes(`href="${path}"`), `${page} ${lang}: footer links ${path}`);
      }
    }
  }
});

/** The command lines of docs/api.md's recipe: steps 1–5 and reading replies. */
function recipeLines() {
  const section = apiDoc.slice(apiDoc.indexOf("## Submitting with standard tools"), apiDoc.indexOf("### The courier with curl"));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.equal(blocks.length, 2, "docs/api.md: the submitting and reading blocks");
  return blocks.join("").split("\n")
    .filter((line) => line.trim() && !line.trim().startsWith("#"))
    .map((line) => line.replace(/\s+# .*$/, "").trimEnd());
}

const unescape = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, "&");

test("the no-script page shows docs/api.md's tested recipe, every line of it and nothing else", () => {
  const recipe = recipeLines();
  // The one line the page adds: a readable list of counsellors to choose from.
  const pageOnly = [`curl -sS "$SERVER/api/v1/counsellors" | jq -r '.counsellors[] | .id + "  " + .name + ", " + .organisation'`];
  for (const lang of ["nl", "en"]) {
    const html = render("noscript", lang);
    const shown = [...html.matchAll(/<pre class="commands"><code>([\s\S]*?)<\/code><\/pre>/g)]
      .flatMap((m) => [...m[1].matchAll(/<span>([^<]*)<\/span\s*>/g)].map((s) => unescape(s[1])));
    assert.ok(shown.length >= recipe.length, `${lang}: commands shown`);
    for (const line of shown) assert.ok(recipe.includes(line) || pageOnly.includes(line), `${lang}: not in docs/api.md: ${line}`);
    for (const line of recipe) assert.ok(shown.includes(line), `${lang}: the page lacks: ${line}`);
    assert.ok(!html.includes("{{"), lang);
  }
});
