// Launches the system Chromium through playwright-core. Playwright never
// downloads a browser here: the executable is the one apt installed.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const outDir = fileURLToPath(new URL("../out/", import.meta.url));
mkdirSync(outDir, { recursive: true });

export const CHROMIUM = process.env.MELDKLUIS_CHROMIUM ?? "/usr/bin/chromium";

/** `args` adds command-line switches, e.g. `--js-flags=--jitless`. */
export function launch({ args = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", ...args,
    ],
  });
}

/**
 * A fresh context and page that records what a melder's browser must never
 * see: console errors (which include CSP violations), failed page errors,
 * and any request that leaves `origin`.
 */
export async function openPage(browser, origin, { colorScheme = "light", width = 1100, height = 900, ...options } = {}) {
  const context = await browser.newContext({
    acceptDownloads: true,
    colorScheme,
    viewport: { width, height },
    permissions: ["clipboard-read", "clipboard-write"],
    ...options, // e.g. locale, reducedMotion
  });
  const page = await context.newPage();
  const problems = [];
  // The location names the resource for "Failed to load resource" errors.
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()} at ${m.location().url}`));
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(origin) && !url.startsWith("blob:") && !url.startsWith("data:")) problems.push(`foreign request: ${url}`);
  });
  return { context, page, problems };
}

/**
 * Fails unless the page's `problems` are exactly the `expected` ones (each a
 * regular expression matching one problem, as when a test makes a request
 * fail on purpose) and nothing else.
 */
export function assertClean(problems, expected = []) {
  const rest = [...problems];
  for (const pattern of expected) {
    const at = rest.findIndex((p) => pattern.test(p));
    assert.ok(at >= 0, `no problem matches ${pattern}: ${JSON.stringify(problems)}`);
    rest.splice(at, 1);
  }
  assert.deepEqual(rest, []);
}

export async function shot(page, name) {
  await page.screenshot({ path: `${outDir}${name}.png`, fullPage: true });
}
