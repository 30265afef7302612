// The melder's side of tests/desk.rs: opens /mijn-melding in headless
// Chromium, types the retrieval code, and checks that every expected text
// shows in the thread. Usage: node read-thread.mjs URL CODE NAME TEXT...
// (exit status 1, with the page's text, when one is missing).
import { launch, openPage, assertClean, shot } from "./browser.mjs";

const [url, code, name, ...expected] = process.argv.slice(2);
const browser = await launch();
try {
  const { page, problems } = await openPage(browser, url);
  await page.goto(`${url}/mijn-melding`);
  await page.locator("#code").pressSequentially(code.toLowerCase());
  await page.click("#open");
  await page.locator("#thread").waitFor({ state: "visible", timeout: 60_000 });
  await page.waitForFunction(
    (n) => document.querySelectorAll("#messages > li").length >= n,
    expected.length,
    { timeout: 60_000 },
  );
  const shown = await page.locator("#messages").textContent();
  const missing = expected.filter((text) => !shown.includes(text));
  // MELDKLUIS_EXPECT_EVALUATION=hidden|visible: whether the evaluation
  // form must show (it shows only while the case is closed).
  const wanted = process.env.MELDKLUIS_EXPECT_EVALUATION;
  if (wanted) {
    const visible = await page.locator("#evaluation").isVisible();
    if (visible !== (wanted === "visible")) missing.push(`evaluation form ${wanted}`);
  }
  await shot(page, name);
  assertClean(problems);
  if (missing.length > 0) {
    console.error(`not on the melder's page: ${JSON.stringify(missing)}\n${shown}`);
    process.exitCode = 1;
  } else {
    console.log(`the melder's page shows all ${expected.length} texts`);
  }
} finally {
  await browser.close();
}
