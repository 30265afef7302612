// Static checks of web/: message tables complete in both languages, every
// placeholder and script message key resolvable, and the pages free of what
// the CSP forbids or the threat model rules out (inline code, storage,
// innerHTML, third-party resources). No browser needed.

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { PAGES, messages, render, webDir } from "../browser/support/render.mjs";

const nl = messages("nl");
const en = messages("en");
// Checked as served (partials included), in Dutch; the English pages share the markup.
const template = (page) => render(page, "nl");
const scripts = readdirSync(`${webDir}js`).filter((f) => f.endsWith(".js"));
const source = (file) => readFileSync(`${webDir}js/${file}`, "utf8");

test("nl.json and en.json have exactly the same keys, all non-empty text", () => {
  assert.deepEqual(Object.keys(en).sort(), Object.keys(nl).sort());
  for (const table of [nl, en]) {
    for (const [key, value] of Object.entries(table)) {
      assert.equal(typeof value, "string", key);
      assert.ok(value.trim().length > 0, key);
    }
  }
  assert.notEqual(nl.report_submit, en.report_submit, "the English table is translated");
});

test("every template renders in both languages with no unknown placeholder", () => {
  for (const page of PAGES) {
    for (const lang of ["nl", "en"]) {
      const html = render(page, lang);
      assert.ok(!html.includes("{{"), `${page} ${lang}`);
      assert.match(html, new RegExp(`<html lang="${lang}">`));
    }
  }
});

test("pages hold no inline script, style, event handler or foreign resource", () => {
  for (const page of PAGES) {
    const html = template(page);
    for (const tag of html.match(/<script\b[^>]*>/g) ?? []) {
      assert.match(tag, /^<script type="module" src="\/js\/[a-z-]+\.js">$/, `${page}: ${tag}`);
    }
    assert.ok(!/<script\b[^>]*>[^<]+<\/script>/.test(html), `${page}: inline script`);
    assert.ok(!/<style\b/i.test(html), `${page}: <style>`);
    assert.ok(!/\sstyle\s*=/i.test(html), `${page}: style attribute`);
    assert.ok(!/\son[a-z]+\s*=/i.test(html), `${page}: inline event handler`);
    assert.ok(!/javascript:/i.test(html), `${page}: javascript: URL`);
    // Only plain links may point elsewhere; nothing is loaded from elsewhere.
    for (const [, tag, url] of html.matchAll(/<([a-z]+)\b[^>]*?\s(?:src|href)="([^"]*)"/g)) {
      if (/^(https?:)?\/\//.test(url)) {
        assert.equal(tag, "a", `${page}: <${tag}> loads ${url}`);
        assert.match(url, /^https:\/\//, `${page}: ${url}`);
      }
    }
  }
});

test("pages have the landmarks, skip link and labelled fields", () => {
  for (const page of PAGES) {
    const html = template(page);
    for (const part of ['<header', '<nav', '<main id="main"', "<footer", 'class="skip-link" href="#main"', "<h1>"]) {
      assert.ok(html.includes(part), `${page}: ${part}`);
    }
    const ids = new Set([...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]));
    const labelled = new Set([...html.matchAll(/<label for="([^"]+)"/g)].map((m) => m[1]));
    for (const id of labelled) assert.ok(ids.has(id), `${page}: label for missing #${id}`);
    for (const [tag, id] of html.matchAll(/<(?:input|select|textarea)\b[^>]*\sid="([^"]+)"/g)) {
      assert.ok(labelled.has(id), `${page}: no label for ${tag}`);
    }
    for (const [, list] of html.matchAll(/aria-describedby="([^"]+)"/g)) {
      for (const id of list.split(" ")) assert.ok(ids.has(id), `${page}: aria-describedby #${id}`);
    }
    // A form field with a name could post plaintext or the code to the server
    // if the script failed; the scripts send everything themselves.
    assert.ok(!/<(input|select|textarea)\b[^>]*\sname=/.test(html), `${page}: named form field`);
  }
});

test("scripts use no storage, cookies, HTML injection or eval", () => {
  const forbidden = [
    /localStorage/, /sessionStorage/, /indexedDB/, /document\.cookie/, /\.innerHTML/, /\.outerHTML/,
    /insertAdjacentHTML/, /document\.write/, /\beval\(/, /new Function\(/, /https?:\/\//,
  ];
  for (const file of scripts) {
    const code = source(file);
    for (const pattern of forbidden) assert.ok(!pattern.test(code), `${file}: ${pattern}`);
    for (const [, spec] of code.matchAll(/^import[^"]*"([^"]+)"/gm)) {
      assert.match(spec, /^\.\.?\//, `${file} imports ${spec}: only local modules`);
    }
  }
  const protocolImports = [...source("protocol.js").matchAll(/from "([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(protocolImports, ["../vendor/age.js"]);
  assert.ok(!/\bdocument\b|\bwindow\b/.test(source("protocol.js")), "protocol.js stays DOM-free");
});

test("the stylesheet and the vendored bundle load nothing and need no WebAssembly", () => {
  const css = readFileSync(`${webDir}css/site.css`, "utf8");
  assert.ok(!/@import|url\(/.test(css), "site.css pulls in no other resource");
  const bundle = readFileSync(`${webDir}vendor/age.js`, "utf8");
  assert.ok(!/WebAssembly|\.wasm\b/.test(bundle), "age.js must run where WebAssembly is off");
  assert.ok(!/\bfetch\(|XMLHttpRequest|importScripts/.test(bundle), "age.js makes no requests");
});
