// Launches Debian's Firefox ESR — Tor Browser's engine — through
// puppeteer-core over WebDriver BiDi. Nothing is downloaded: the executable
// is the one apt installed. `safer: true` adds the preferences Tor Browser's
// "Safer" level sets for JavaScript (no JIT, no WebAssembly) and its
// fingerprinting resistance.

import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

export const FIREFOX = process.env.MELDKLUIS_FIREFOX ?? "/usr/bin/firefox-esr";

/** Tor Browser "Safer": the JavaScript JITs and WebAssembly off, resistFingerprinting on. */
export const SAFER_PREFS = {
  "javascript.options.ion": false,
  "javascript.options.baselinejit": false,
  "javascript.options.wasm": false,
  "privacy.resistFingerprinting": true,
};

/** The two settings every Firefox test runs with. */
export const MODES = [
  { name: "defaults", prefs: {} },
  { name: "safer", prefs: SAFER_PREFS },
];

/**
 * Starts Firefox ESR headless. `downloads` is a directory where downloads
 * land without asking; `profile` a persistent profile directory (otherwise
 * puppeteer makes a throwaway one); `prefs` further preferences.
 */
export async function launchFirefox({ prefs = {}, downloads, profile, dark = false } = {}) {
  const extraPrefsFirefox = {
    // Downloads go to one folder without a dialog, so the courier test can read the inbox.
    ...(downloads ? {
      "browser.download.dir": downloads,
      "browser.download.folderList": 2,
      "browser.download.useDownloadDir": true,
      "browser.download.always_ask_before_handling_new_types": false,
      "browser.download.start_downloads_in_tmp_dir": false,
    } : {}),
    // 0 = dark, 1 = light: what prefers-color-scheme reports to pages.
    "layout.css.prefers-color-scheme.content-override": dark ? 0 : 1,
    ...prefs,
  };
  return puppeteer.launch({
    browser: "firefox",
    protocol: "webDriverBiDi",
    executablePath: FIREFOX,
    headless: true,
    ...(profile ? { userDataDir: profile } : {}),
    extraPrefsFirefox,
  });
}

/**
 * A page that records what a melder's browser must never see: console
 * errors (CSP violations among them), uncaught errors, and any request that
 * leaves `origin`. Same contract as support/browser.mjs's openPage.
 */
export async function openFirefoxPage(browser, origin, { width = 1100, height = 900 } = {}) {
  const page = await browser.newPage();
  await page.setViewport({ width, height });
  const problems = [];
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message ?? e}`));
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(origin) && !url.startsWith("blob:") && !url.startsWith("data:") && !url.startsWith("about:")) {
      problems.push(`foreign request: ${url}`);
    }
  });
  return { page, problems };
}

/** A fresh empty folder for downloads; `remove()` deletes it. */
export async function downloadFolder(name) {
  const dir = await mkdtemp(path.join(tmpdir(), `meldkluis-ff-${name}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Waits until a finished file matching `pattern` is in `dir` (no .part left); resolves to its path. */
export async function waitForDownload(dir, pattern, timeout = 60_000) {
  const until = Date.now() + timeout;
  while (Date.now() < until) {
    const names = await readdir(dir);
    const done = names.find((n) => pattern.test(n));
    if (done && !names.some((n) => n.endsWith(".part"))) return path.join(dir, done);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no download matching ${pattern} in ${dir}: ${await readdir(dir)}`);
}

/** Checks the box whose label contains `name`. */
export async function checkByLabel(page, name) {
  const id = await page.evaluate((text) => {
    const label = [...document.querySelectorAll("label")].find((l) => l.textContent.includes(text));
    return label?.htmlFor ?? null;
  }, name);
  assert.ok(id, `no label containing ${name}`);
  await page.click(`#${id}`);
}

/** Waits for a selector's element to be shown (not hidden) within `timeout`. */
export function waitVisible(page, selector, timeout = 60_000) {
  return page.waitForFunction((s) => {
    const e = document.querySelector(s);
    return e && !e.hidden && e.getClientRects().length > 0;
  }, { timeout, polling: 100 }, selector);
}
