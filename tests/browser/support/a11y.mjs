// Accessibility checks in the real page: axe-core (the WCAG 2.2 A and AA
// rules plus axe's best practices), reflow at narrow widths, and what focus
// looks like. Used by a11y.test.mjs and keyboard.test.mjs; `checkState` by
// the journey tests (cases, questions, journey).

import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** The axe rule tags run: WCAG 2.0, 2.1 and 2.2, levels A and AA, and best practices. */
export const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

/**
 * Runs axe-core on the page as it is now and resolves to its violations, one
 * readable line each (empty when clean). axe goes in through the DevTools
 * protocol (page.evaluate), which the page's CSP does not govern; the page's
 * own scripts still run under `script-src 'self'`. (addScriptTag would add an
 * inline <script>, which that CSP rightly refuses.)
 */
export async function axe(page) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(axeSource);
  return page.evaluate(async (tags) => {
    const result = await window.axe.run(document, {
      runOnly: { type: "tag", values: tags },
      resultTypes: ["violations"],
    });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes
      .map((n) => `${n.target.join(" ")}: ${(n.failureSummary ?? "").replace(/\s+/g, " ")}`)
      .join(" | ")}`);
  }, AXE_TAGS);
}

/** How many CSS pixels the page is wider than its viewport (> 0: horizontal scrolling). */
export function overflow(page) {
  return page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth);
}

/**
 * What the focused element looks like: its id, tag and text for messages,
 * and whether a focus indicator shows (an outline of at least 2 px, or a
 * box shadow, in a colour other than transparent).
 */
export function focusState(page) {
  return page.evaluate(() => {
    const element = document.activeElement;
    if (!element || element === document.body) return { element: "body", visible: false };
    const style = getComputedStyle(element);
    const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2
      && !/rgba\(0, 0, 0, 0\)|transparent/.test(style.outlineColor);
    const shadow = style.boxShadow !== "none";
    const box = element.getBoundingClientRect();
    const described = `${element.tagName.toLowerCase()}${element.id ? `#${element.id}` : ""}`
      + ` "${(element.textContent || element.value || element.getAttribute("aria-label") || "").trim().slice(0, 40)}"`;
    return {
      element: described,
      id: element.id,
      visible: (outline || shadow) && box.width > 0 && box.height > 0,
      inViewport: box.bottom > 0 && box.top < window.innerHeight && box.right > 0 && box.left < window.innerWidth,
      outline: `${style.outlineStyle} ${style.outlineWidth} ${style.outlineColor}`,
    };
  });
}

/**
 * A new state of a page, checked the same way by every journey test: axe in
 * light and dark, no sideways scrolling at 320 px; full-page screenshots at
 * 1280 px and at `phone` px to `<dir><prefix>-<name>-<width>.png`.
 */
export async function checkState(page, name, { dir, prefix, phone = 390 }) {
  const problems = [];
  await page.setViewportSize({ width: 1280, height: 900 });
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const v of await axe(page)) problems.push(`${name} (${scheme}): ${v}`);
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.screenshot({ path: `${dir}${prefix}-${name}-1280.png`, fullPage: true });
  await page.setViewportSize({ width: phone, height: 844 });
  await page.screenshot({ path: `${dir}${prefix}-${name}-${phone}.png`, fullPage: true });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: `${dir}${prefix}-${name}-${phone}-dark.png`, fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize({ width: 320, height: 640 });
  const extra = await overflow(page);
  if (extra > 0) problems.push(`${name}: ${extra} px too wide at 320 px`);
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.deepEqual(problems, []);
}
