// What a melder sees while and after sending, measured in real Chromium
// against the real server (issue 15):
// 1. The retrieval code never breaks inside a group of four: at 320, 390 and
//    1280 px and at 200 % zoom, every group is one box on one line (an
//    inline element split over two lines has two client rects), and the
//    text is still exactly the code.
// 2. Upload progress moves with the bytes sent, not per 4 MiB chunk: with
//    the upload throttled (CDP Network.emulateNetworkConditions), a file
//    smaller than one chunk shows the bar change at least every second, a
//    time left once the link is slow, and the live status line speaks in
//    quarters only (not at every change).
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/display.test.mjs

import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, test } from "node:test";
import { parseCode } from "../../web/js/protocol.js";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { assertClean, launch, openPage, shot } from "./support/browser.mjs";
import { axe } from "./support/a11y.mjs";

let work;
let server;
let browser;

before(async () => {
  work = await scratch("display");
  await makeCounsellor(work, { id: "vp-jansen", name: "Mr. A. Jansen", organisation: "Ministerie van Voorbeeldzaken" });
  [server, browser] = await Promise.all([startServer(work), launch()]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await work?.remove();
});

/** Sends a short report from `page` and waits for the code. */
async function report(page) {
  await page.goto(`${server.url}/melden`);
  await page.getByLabel("Mr. A. Jansen").check();
  await page.fill("#text", "Op de afdeling Inkoop gaan opdrachten steeds naar hetzelfde bedrijf.");
  await page.click("#submit");
  await page.locator("#done").waitFor({ state: "visible", timeout: 60_000 });
}

/** Each group's text, its number of line boxes, and its line's top. */
function measureGroups(page) {
  return page.evaluate(() => [...document.querySelectorAll("#code .code-group")].map((group) => {
    const rects = [...group.getClientRects()];
    return { text: group.textContent, lines: rects.length, top: Math.round(rects[0]?.top ?? -1) };
  }));
}

test("the code never wraps inside a group at 320, 390 and 1280 px and at 200 % zoom", async () => {
  // Zoom to 200 % halves the CSS pixels a window has and doubles the device
  // pixels per CSS pixel: 1280 px at 200 % lays out like 640 CSS px, 390 px
  // like 195 (narrower than any phone; WCAG 1.4.10 asks for 320).
  const sizes = [
    { name: "320", width: 320, scale: 1 },
    { name: "390", width: 390, scale: 1 },
    { name: "1280", width: 1280, scale: 1 },
    { name: "1280 at 200 %", width: 640, scale: 2 },
    { name: "390 at 200 %", width: 195, scale: 2 },
  ];
  const { context, page, problems } = await openPage(browser, server.url, { width: 390, height: 800 });
  await report(page);
  const display = (await page.textContent("#code")).trim();
  assert.equal(parseCode(display).length, 24, "the text is still exactly the code");
  const expectedGroups = display.split("-");
  const linesSeen = new Set();
  for (const size of sizes) {
    // A new context per zoom factor; the same page for widths (the code stays).
    let target = page;
    let own = null;
    if (size.scale !== 1) {
      own = await browser.newContext({ viewport: { width: size.width, height: 800 }, deviceScaleFactor: size.scale });
      target = await own.newPage();
      await target.goto(`${server.url}/melden`);
      // The same code shown the page's own way (report.js's showCode).
      await target.evaluate(async (code) => {
        const { showCode } = await import("/js/ui.js");
        const node = document.querySelector("#code");
        document.querySelector("#done").hidden = false;
        showCode(node, code);
      }, display);
    } else {
      await page.setViewportSize({ width: size.width, height: 800 });
    }
    const groups = await measureGroups(target);
    assert.deepEqual(groups.map((g) => g.text.replace(/-$/, "")), expectedGroups, size.name);
    for (const group of groups) {
      assert.equal(group.lines, 1, `${size.name}: group "${group.text}" is split over ${group.lines} lines`);
    }
    // The code's box stays inside the viewport (nothing to scroll sideways for).
    const box = await target.locator("#code").boundingBox();
    const viewport = target.viewportSize().width;
    assert.ok(box.x >= 0 && box.x + box.width <= viewport + 0.5, `${size.name}: the code box ${JSON.stringify(box)} in ${viewport}`);
    const lines = new Set(groups.map((g) => g.top)).size;
    linesSeen.add(lines);
    console.log(`# ${size.name}: ${groups.length} groups on ${lines} line(s), box ${Math.round(box.width)} of ${viewport} px`);
    await shot(target, `display-code-${size.name.replace(/[^0-9a-z]+/g, "-")}`);
    await own?.close();
  }
  // The narrow sizes do wrap (between groups), so the measure means something.
  assert.ok([...linesSeen].some((n) => n > 1), `some size wraps: ${[...linesSeen]}`);
  assert.deepEqual(await axe(page), []);
  assertClean(problems);
  await context.close();
});

test("upload progress moves at least every second on a throttled upload and tells the time left", async () => {
  const { context, page, problems } = await openPage(browser, server.url, { width: 1280 });
  const file = path.join(work.dir, "notulen.bin");
  if (process.env.DEBUG_LIGHT) page.on("console", (m) => console.log(m.text()));
  const size = 640 * 1024; // well under one 4 MiB chunk: once it moved 0 → 100 % in one step
  await writeFile(file, randomFillSync(Buffer.alloc(size)));
  await page.goto(`${server.url}/melden`);
  await page.getByLabel("Mr. A. Jansen").check();
  await page.fill("#text", "De notulen van het overleg van maart.");
  await page.setInputFiles("#attachments", [file]);

  // Record every change of the bar, the total line and the live status line, in the page.
  await page.evaluate(() => {
    window.seen = { bar: [], total: [], status: [] };
    const record = () => {
      const now = performance.now();
      const bar = document.querySelector("#upload-files progress")?.value;
      if (bar !== undefined && bar !== window.seen.bar.at(-1)?.value) window.seen.bar.push({ at: now, value: bar });
      const total = document.querySelector("#upload-total").textContent;
      if (total !== window.seen.total.at(-1)?.text) window.seen.total.push({ at: now, text: total });
    };
    window.recorder = setInterval(record, 50);
    new MutationObserver(() => {
      window.seen.status.push({ at: performance.now(), text: document.querySelector("#status").textContent });
    }).observe(document.querySelector("#status"), { childList: true, characterData: true, subtree: true });
  });

  // 48 KiB/s up (a poor mobile link), 150 ms each way.
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 300, downloadThroughput: 256 * 1024, uploadThroughput: 48 * 1024,
  });
  const started = Date.now();
  await page.click("#submit");
  await page.locator("#done").waitFor({ state: "visible", timeout: 120_000 });
  const seconds = (Date.now() - started) / 1000;
  const seen = await page.evaluate(() => {
    clearInterval(window.recorder);
    return window.seen;
  });

  // The bar while bytes go out: from its first value above one half (the
  // file is encrypted at once, which is the first half of the bar) to 1.
  const sending = seen.bar.filter((b) => b.value > 0.5 && b.value < 1);
  assert.ok(sending.length >= 5, `the bar moved ${sending.length} times while sending: ${JSON.stringify(seen.bar)}`);
  const gaps = sending.slice(1).map((b, i) => b.at - sending[i].at);
  const longest = Math.max(...gaps);
  console.log(`# ${size / 1024} KiB at 48 KiB/s: ${seconds.toFixed(1)} s, ${sending.length} bar changes while sending, longest gap ${Math.round(longest)} ms`);
  assert.ok(longest <= 1000, `the bar stood still for ${Math.round(longest)} ms: ${JSON.stringify(gaps.map(Math.round))}`);
  // The time left showed while the link was slow.
  const timeLeft = seen.total.filter((entry) => /nog ongeveer/.test(entry.text));
  assert.ok(timeLeft.length > 0, `no time left in ${JSON.stringify(seen.total.map((e) => e.text))}`);
  // The live region spoke in steps, not at every change of the bar.
  const spoken = new Set(seen.status.map((s) => s.text));
  assert.ok(spoken.size <= 8, `the status line changed ${spoken.size} times: ${[...spoken].join(" | ")}`);
  assert.ok(seen.bar.length > spoken.size * 2, "fewer announcements than bar changes");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  assertClean(problems);
  await context.close();
});
