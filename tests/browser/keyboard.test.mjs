// The melder's whole journey with the keyboard alone — Tab, Shift+Tab, Enter,
// Space and typing, never a click — against the real server: skip link,
// report (with its errors), copy and save the code, open "my report" with it,
// send a follow-up, close. At every stop the focused element must show a
// focus indicator and be on screen. Screenshots of a few stops go to
// tests/browser/out/keyboard-*.png.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/keyboard.test.mjs

import assert from "node:assert/strict";
import { readFile, readdir, rm } from "node:fs/promises";
import { after, before, test } from "node:test";
import { parseCode } from "../../web/js/protocol.js";
import { ROUTES, messages } from "./support/render.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import { focusState } from "./support/a11y.mjs";

let work;
let server;
let browser;

before(async () => {
  // Pictures from an earlier run would pass for this run's.
  for (const file of await readdir(outDir)) if (file.startsWith("keyboard-")) await rm(`${outDir}${file}`);
  work = await scratch("keyboard");
  await makeCounsellor(work, { id: "vp-jansen", name: "Mr. A. Jansen", organisation: "Ministerie van Voorbeeldzaken" });
  [server, browser] = await Promise.all([startServer(work), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

for (const lang of ["nl", "en"]) {
  const t = messages(lang);
  const routes = ROUTES[lang];

  test(`${lang}: report, keep the code, read it back and follow up, by keyboard alone`, async () => {
    const { context, page, problems } = await openPage(browser, server.url, { width: 1280, height: 800 });
    const stops = []; // every element focus visited, for the failure message
    const unseen = []; // stops where focus did not show

    /** The focused element, checked: visible indicator, on screen. */
    async function here() {
      const state = await focusState(page);
      stops.push(state.element);
      if (!state.visible || !state.inViewport) unseen.push(`${state.element} (outline ${state.outline}, on screen: ${state.inViewport})`);
      return state;
    }
    /** Presses Tab (or Shift+Tab) until the focused element matches `selector`. */
    async function tabTo(selector, { back = false, max = 60 } = {}) {
      for (let i = 0; i < max; i += 1) {
        await page.keyboard.press(back ? "Shift+Tab" : "Tab");
        await here();
        if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
      }
      assert.fail(`${selector} not reached by ${back ? "Shift+Tab" : "Tab"}; stops: ${stops.slice(-max).join(" → ")}`);
    }
    const focused = () => page.evaluate(() => document.activeElement?.id ?? "");

    // The skip link comes first, shows, and jumps to the content.
    await page.goto(`${server.url}${routes.index}`);
    await page.keyboard.press("Tab");
    const skip = await here();
    assert.match(skip.element, /^a "/);
    assert.equal(await page.evaluate(() => document.activeElement.className), "skip-link");
    await page.screenshot({ path: `${outDir}keyboard-${lang}-skip-link.png` });
    await page.keyboard.press("Enter");
    assert.equal(await focused(), "main");
    await tabTo(`main a[href="${routes.report}"]`);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${server.url}${routes.report}`);
    await page.locator("#counsellor-list input").waitFor();

    // Sending nothing: focus goes to the error summary; its first link leads
    // to the counsellors.
    await tabTo("#submit");
    await page.keyboard.press("Enter");
    await page.locator("#error-summary").waitFor({ state: "visible" });
    assert.equal(await focused(), "error-summary");
    await here();
    await page.screenshot({ path: `${outDir}keyboard-${lang}-error-summary.png` });
    await tabTo('#error-summary a[href="#counsellors"]');
    await page.keyboard.press("Enter");
    assert.equal(await focused(), "counsellor-vp-jansen");
    await here();
    await page.keyboard.press("Space");
    assert.equal(await page.isChecked("#counsellor-vp-jansen"), true);
    await tabTo("#text");
    await page.keyboard.type(lang === "nl" ? "Er verdwijnt geld uit de kas." : "Money goes missing from the till.");
    await tabTo("#submit");
    // Back one stop and forward again: Shift+Tab works the other way.
    await tabTo("#contact", { back: true, max: 1 });
    await tabTo("#submit", { max: 1 });
    await page.screenshot({ path: `${outDir}keyboard-${lang}-submit.png` });
    await page.keyboard.press("Enter");
    await page.locator("#done").waitFor({ state: "visible", timeout: 60_000 });
    assert.equal(await focused(), "done-heading");
    const display = (await page.textContent("#code")).trim();
    assert.equal(parseCode(display).length, 24);

    // Copy with Enter, save with Space.
    await tabTo("#copy-code", { max: 1 });
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("#copy-status").textContent !== "");
    assert.equal(await page.textContent("#copy-status"), t.done_copied);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), display);
    await page.screenshot({ path: `${outDir}keyboard-${lang}-copied.png` });
    await tabTo("#download-code", { max: 1 });
    const [download] = await Promise.all([page.waitForEvent("download"), page.keyboard.press("Space")]);
    assert.ok((await readFile(await download.path(), "utf8")).includes(display));
    await tabTo("#to-thread");
    await page.keyboard.press("Enter");
    await page.waitForURL(`${server.url}${routes.thread}`);

    // My report: type the code, Enter opens it.
    await tabTo("#code");
    await page.keyboard.type(display);
    await page.keyboard.press("Enter");
    await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
    assert.equal(await focused(), "thread-heading");
    assert.equal(await page.locator("#messages > li").count(), 1);

    await tabTo("#followup-text");
    await page.keyboard.type(lang === "nl" ? "Het gaat om maart." : "It concerns March.");
    await tabTo("#followup-submit");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 2, null, { timeout: 60_000 });
    assert.equal(await page.textContent("#followup-status"), t.followup_sent);
    assert.equal(await focused(), "followup-submit", "focus stays where the melder was");
    await here();
    await page.screenshot({ path: `${outDir}keyboard-${lang}-followup-sent.png` });

    await tabTo("#close-thread");
    await page.keyboard.press("Space");
    assert.ok(await page.locator("#thread").isHidden());
    assert.equal(await focused(), "code");
    assert.equal(await page.inputValue("#code"), "");

    assert.deepEqual(unseen, [], `focus not visible at some stops; all stops: ${stops.join(" → ")}`);
    assert.ok(stops.length > 25, `walked ${stops.length} stops`);
    assertClean(problems);
    await context.close();
  });
}
