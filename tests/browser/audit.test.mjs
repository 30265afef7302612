// The accessibility audit's findings (issue 18), each checked in both
// engines — Chromium (playwright-core) and Firefox ESR (puppeteer-core over
// WebDriver BiDi) — against the real server:
// - an error that neither moves focus nor sits in a live region is announced
//   (the wrong code sent with Enter, more than 20 files, the courier's "too
//   large"): a live region or a focus change is observed;
// - the code field shows the whole code at 320 px and at 400 % zoom (boxes
//   measured);
// - a ticked counsellor box in dark mode stands out at 3:1 (computed);
// - Dutch texts inside English pages carry lang="nl", and a message without
//   a language is marked unknown (lang=""), not as the page's;
// - the counsellor box's accessible name is the name alone, thread messages
//   have headings, the code has a spelled-out reading aid, the status line
//   never says the same thing twice in a row, and with the JIT off the bar
//   moves while an attachment is encrypted.
//
// Needs the debug binaries: `cargo build --bins`, then
//   node --test tests/browser/audit.test.mjs

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open as openFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { buildEnvelope, bytesToBase64, codeFromRandomBytes, deriveKeys, encrypt, formatCode } from "../../web/js/protocol.js";
import { powHeaders } from "../../web/js/pow.js";
import { assertClean, launch, openPage, outDir } from "./support/browser.mjs";
import { axe } from "./support/a11y.mjs";
import { SAFER_PREFS, launchFirefox, openFirefoxPage } from "./support/firefox.mjs";
import { makeCounsellor, scratch, startServer } from "./support/meldkluis.mjs";
import { messages } from "./support/render.mjs";

const en = messages("en");
const nl = messages("nl");
let work, counsellor, server;

before(async () => {
  work = await scratch("audit");
  counsellor = await makeCounsellor(work, {
    id: "vp-oor", name: "Mr. O. Oor", organisation: "Ministerie van Voorbeeldzaken",
    description: "Externe vertrouwenspersoon, bereikbaar op werkdagen.",
  });
  server = await startServer(work);
});

after(async () => {
  await server?.stop();
  await work?.remove();
});

/**
 * The same few page operations in both engines. `open({ dark, prefs })`
 * resolves to { page, problems, viewport(w, h), type(sel, text),
 * upload(sel, ...files), waitFor(fn, arg), close() }.
 */
const ENGINES = [
  {
    name: "Chromium",
    async start() {
      const browser = await launch();
      return {
        stop: () => browser.close(),
        async open({ dark = false } = {}) {
          const { context, page, problems } = await openPage(browser, server.url, { colorScheme: dark ? "dark" : "light" });
          return {
            page, problems,
            viewport: (width, height) => page.setViewportSize({ width, height }),
            type: (selector, text) => page.locator(selector).pressSequentially(text),
            upload: (selector, ...files) => page.setInputFiles(selector, files),
            waitFor: (fn, arg, timeout = 60_000) => page.waitForFunction(fn, arg, { timeout, polling: 50 }),
            close: () => context.close(),
          };
        },
      };
    },
  },
  {
    name: "Firefox ESR",
    async start(prefs = {}) {
      const browsers = {};
      const get = async (dark) => (browsers[dark] ??= await launchFirefox({ dark, prefs }));
      return {
        stop: () => Promise.all(Object.values(browsers).map((b) => b.close())),
        async open({ dark = false } = {}) {
          const { page, problems } = await openFirefoxPage(await get(dark), server.url);
          return {
            page, problems,
            viewport: (width, height) => page.setViewport({ width, height }),
            type: (selector, text) => page.type(selector, text),
            upload: async (selector, ...files) => (await page.$(selector)).uploadFile(...files),
            waitFor: (fn, arg, timeout = 60_000) => page.waitForFunction(fn, { timeout, polling: 50 }, arg),
            close: () => page.close(),
          };
        },
      };
    },
  },
];

/**
 * Records, from now on, what assistive technology would be told without a
 * focus change: every text a live region takes on (role=status/alert or
 * aria-live), and every element focus moves to.
 */
function listen(page) {
  return page.evaluate(() => {
    window.__heard = [];
    window.__focused = [];
    const live = (node) => node?.closest?.("[aria-live]:not([aria-live=off]), [role=status], [role=alert]");
    new MutationObserver((records) => {
      for (const r of records) {
        const region = live(r.target.nodeType === 1 ? r.target : r.target.parentElement);
        if (region && region.textContent.trim()) window.__heard.push(region.textContent.trim());
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
    document.addEventListener("focusin", (e) => window.__focused.push(e.target.id));
  });
}
const heard = (page) => page.evaluate(() => ({ heard: window.__heard, focused: window.__focused }));

/** A screenshot for the side-by-side comparison: out/engines-<state>-<engine>.png. */
const shot = (tab, engine, state) =>
  tab.page.screenshot({ path: `${outDir}engines-${state}-${engine.name.toLowerCase().replace(/\W+/g, "-")}.png`, fullPage: true });

/** A well-formed code that no case has. */
const unknownCode = () => formatCode(codeFromRandomBytes(new Uint8Array(randomBytes(22))));

/** The WCAG contrast ratio of two `rgb(…)` colours. */
function contrast(a, b) {
  const lum = (css) => {
    const [r, g, bl] = css.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** A report straight through the API, its envelope without `lang` (as older messages are). */
async function reportWithoutLang(text) {
  const code = codeFromRandomBytes(new Uint8Array(randomBytes(22)));
  const keys = await deriveKeys(code);
  const { counsellors } = await (await fetch(`${server.url}/api/v1/counsellors`)).json();
  const card = counsellors.find((c) => c.id === counsellor.id);
  const envelope = buildEnvelope({
    kind: "report", text, replyRecipient: keys.replyRecipient, counsellors: [card.id],
  });
  assert.equal(envelope.lang, undefined);
  const sealed = await encrypt(envelope, [card.age_recipient, keys.replyRecipient]);
  // The server asks every report for a proof of work (docs/api.md).
  const pow = await powHeaders((url, options) => fetch(`${server.url}${url}`, options));
  const answer = await fetch(`${server.url}/api/v1/reports`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...pow },
    body: JSON.stringify({ counsellors: [card.id], lookup_key: keys.lookupKey, message: bytesToBase64(sealed) }),
  });
  assert.equal(answer.status, 201, await answer.text());
  return formatCode(code);
}

for (const engine of ENGINES) {
  describe(engine.name, () => {
    let browser;
    before(async () => { browser = await engine.start(); });
    after(async () => { await browser?.stop(); });

    test("a wrong code sent with Enter is announced, and so is a malformed one", async () => {
      const tab = await browser.open();
      await tab.page.goto(`${server.url}/en/my-report`);
      await listen(tab.page);
      await tab.type("#code", unknownCode());
      await tab.page.keyboard.press("Enter");
      await tab.waitFor(() => !document.querySelector("#code-error").hidden);
      await new Promise((r) => setTimeout(r, 300));
      let seen = await heard(tab.page);
      assert.ok(seen.heard.some((text) => text.includes(en.error_unknown_code)), `not announced: ${JSON.stringify(seen)}`);
      assert.deepEqual(await axe(tab.page), [], "the page with the announcement said passes axe");

      // The same wrong code again: said again.
      await tab.page.evaluate(() => { window.__heard = []; });
      await tab.page.keyboard.press("Enter");
      await tab.waitFor((said) => window.__heard.some((text) => text.includes(said)), en.error_unknown_code, 10_000)
        .catch(() => {});
      seen = await heard(tab.page);
      assert.ok(seen.heard.some((text) => text.includes(en.error_unknown_code)), `not announced again: ${JSON.stringify(seen)}`);

      await tab.page.evaluate(() => { window.__heard = []; document.querySelector("#code").value = ""; });
      await tab.type("#code", "ABC");
      await tab.page.keyboard.press("Enter");
      await tab.waitFor(() => window.__heard.length > 0, null, 10_000);
      seen = await heard(tab.page);
      assert.ok(seen.heard.some((text) => text.includes("3")), `length error not announced: ${JSON.stringify(seen)}`);
      // Chromium logs each refused look-up (404, the unknown code) as a failed resource; nothing else may show.
      assertClean(tab.problems.filter((p) => !/status of 404/.test(p)));
      await tab.close();
    });

    test("more than 20 files, and the courier's file too large, reach assistive technology", async () => {
      const tab = await browser.open();
      await tab.page.goto(`${server.url}/en/report`);
      await tab.page.waitForSelector(`#counsellor-${counsellor.id}`);
      const files = [];
      for (let i = 0; i < 21; i += 1) {
        files.push(path.join(work.dir, `file-${i}.txt`));
        await writeFile(files.at(-1), `file ${i}\n`);
      }
      await tab.page.focus("#attachments");
      await listen(tab.page);
      await tab.upload("#attachments", ...files);
      await tab.waitFor(() => !document.querySelector("#attachments-error").hidden);
      await new Promise((r) => setTimeout(r, 300));
      let seen = await heard(tab.page);
      const tooMany = en.attachments_too_many.replace("{max}", "20");
      assert.ok(seen.heard.some((t) => t.includes(tooMany)), `not announced: ${JSON.stringify(seen)}`);

      const big = path.join(work.dir, "outbox-too-large.tar");
      const handle = await openFile(big, "w");
      await handle.truncate(64 * 1024 * 1024 + 1); // sparse: one byte over the courier's limit
      await handle.close();
      await tab.page.goto(`${server.url}/en/courier`);
      await listen(tab.page);
      await tab.upload("#outbox", big);
      await tab.page.click("#sync");
      await tab.waitFor(() => !document.querySelector("#outbox-error").hidden);
      await new Promise((r) => setTimeout(r, 300));
      seen = await heard(tab.page);
      const focusedWithError = seen.focused.at(-1) === "outbox"
        && (await tab.page.evaluate(() => document.querySelector("#outbox").getAttribute("aria-describedby").includes("outbox-error")));
      assert.ok(focusedWithError || seen.heard.some((t) => t.includes(en.error_too_large)), `not announced: ${JSON.stringify(seen)}`);
      assertClean(tab.problems);
      await tab.close();
    });

    test("the code field shows the whole code at 320 px and at 400 % zoom", async () => {
      const tab = await browser.open();
      const code = unknownCode();
      const wrong = [];
      for (const [route, width, height, what] of [
        ["/mijn-melding", 320, 640, "320 px"], ["/en/my-report", 320, 640, "320 px"],
        ["/mijn-melding", 320, 256, "1280×1024 at 400 %"], ["/en/my-report", 320, 256, "1280×1024 at 400 %"],
      ]) {
        await tab.viewport(width, height);
        await tab.page.goto(`${server.url}${route}`);
        await tab.type("#code", code);
        const box = await tab.page.evaluate(() => {
          const input = document.querySelector("#code");
          const rect = input.getBoundingClientRect();
          return { scroll: input.scrollWidth, client: input.clientWidth, right: rect.right, viewport: document.documentElement.clientWidth };
        });
        if (box.scroll > box.client || box.right > box.viewport) wrong.push(`${route} at ${what}: ${JSON.stringify(box)}`);
        if (route === "/mijn-melding") await shot(tab, engine, `code-field-${width}x${height}`);
      }
      assert.deepEqual(wrong, [], "the code is cut off");
      await tab.close();
    });

    test("dark mode: a ticked counsellor box stands out at 3:1 or more", async () => {
      const tab = await browser.open({ dark: true });
      await tab.page.goto(`${server.url}/en/report`);
      await tab.page.waitForSelector(`#counsellor-${counsellor.id}`);
      await tab.page.click(`#counsellor-${counsellor.id}`);
      const colours = await tab.page.evaluate((id) => {
        const box = document.getElementById(id);
        let node = box.closest(".choice");
        let background = getComputedStyle(node).backgroundColor;
        while (/rgba\(.*, 0\)|transparent/.test(background) && node.parentElement) {
          node = node.parentElement;
          background = getComputedStyle(node).backgroundColor;
        }
        return { checked: box.checked, dark: matchMedia("(prefers-color-scheme: dark)").matches, accent: getComputedStyle(box).accentColor, background };
      }, `counsellor-${counsellor.id}`);
      assert.ok(colours.checked && colours.dark, JSON.stringify(colours));
      await shot(tab, engine, "report-dark-ticked");
      const ratio = contrast(colours.accent, colours.background);
      assert.ok(ratio >= 3, `ticked box ${colours.accent} on ${colours.background}: ${ratio.toFixed(2)}:1`);
      await tab.close();
    });

    test("the counsellor box is named by the name alone, the card describes it, in the card's language", async () => {
      const tab = await browser.open();
      await tab.page.goto(`${server.url}/en/report`);
      await tab.page.waitForSelector(`#counsellor-${counsellor.id}`);
      const box = await tab.page.evaluate((id) => {
        const input = document.getElementById(id);
        const text = (ids) => ids.split(" ").map((i) => document.getElementById(i).textContent).join(" ");
        return {
          name: text(input.getAttribute("aria-labelledby")),
          description: text(input.getAttribute("aria-describedby")),
          langs: [...document.querySelectorAll(`label[for=${id}] [lang]`)].map((e) => e.lang),
        };
      }, `counsellor-${counsellor.id}`);
      assert.equal(box.name, counsellor.name);
      assert.ok(box.description.includes(counsellor.description) && box.description.includes(counsellor.organisation), box.description);
      assert.deepEqual(box.langs, ["nl", "nl"], "the card (made by init) is Dutch");
      await tab.close();
    });

    test("report → code with its reading aid; the status line never repeats itself; Dutch messages in English pages carry lang=nl; old ones are unknown", async () => {
      const tab = await browser.open();
      await tab.page.goto(`${server.url}/melden`);
      await tab.page.waitForSelector(`#counsellor-${counsellor.id}`);
      await tab.page.click(`#counsellor-${counsellor.id}`);
      const text = `Melding voor de toegankelijkheidstoets ${engine.name} ${Date.now()}.`;
      await tab.type("#text", text);
      const attachment = path.join(work.dir, "bijlage-1mib.bin");
      await writeFile(attachment, randomBytes(1 << 20));
      await tab.upload("#attachments", attachment);
      await tab.page.evaluate(() => {
        window.__status = [];
        const line = document.querySelector("#status");
        new MutationObserver(() => window.__status.push(line.textContent)).observe(line, { childList: true, characterData: true, subtree: true });
      });
      await tab.page.click("#submit");
      await tab.waitFor(() => !document.querySelector("#done").hidden, null, 120_000);
      const said = await tab.page.evaluate(() => window.__status);
      const repeats = said.filter((s, i) => i > 0 && s === said[i - 1]);
      assert.deepEqual(repeats, [], `the status line said the same twice in a row: ${JSON.stringify(said)}`);
      const code = await tab.page.evaluate(() => document.querySelector("#code").textContent.trim());
      await shot(tab, engine, "report-code");
      const spelled = await tab.page.evaluate(() => document.querySelector("#code-spelled").textContent);
      assert.ok(spelled.includes(`${[...code.slice(0, 4)].join(" ")}, ${[...code.slice(5, 9)].join(" ")}`), spelled);
      const aid = await tab.page.evaluate(() => {
        const e = document.querySelector("#code-spelled");
        return { inBox: Boolean(e.closest(".code-box")), width: e.getBoundingClientRect().width };
      });
      assert.ok(aid.inBox && aid.width <= 1, `the reading aid is read with the code and not seen: ${JSON.stringify(aid)}`);

      await counsellor.sync(server.url, `audit-${engine.name.replace(/\W/g, "")}-1`);
      const list = await counsellor.review("list");
      let caseId;
      for (const line of list.split("\n").filter((l) => /^[0-9a-f]{8}\b/.test(l))) {
        if ((await counsellor.review("show", line.slice(0, 8))).includes(text)) caseId = line.slice(0, 8);
      }
      assert.ok(caseId, list);
      await counsellor.review("acknowledge", caseId);
      await counsellor.sync(server.url, `audit-${engine.name.replace(/\W/g, "")}-2`);

      await tab.page.goto(`${server.url}/en/my-report`);
      await tab.type("#code", code);
      await tab.page.keyboard.press("Enter");
      await tab.waitFor(() => document.querySelectorAll("#messages > li").length === 2, null, 120_000);
      const thread = await tab.page.evaluate(() => [...document.querySelectorAll("#messages > li")].map((li) => ({
        heading: li.querySelector("h1, h2, h3, h4, h5, h6")?.tagName ?? null,
        textLang: li.querySelector(".message-text")?.closest("[lang]")?.getAttribute("lang") ?? null,
      })));
      assert.deepEqual(thread.map((m) => m.heading), ["H4", "H4"], "each message has a heading under the list's h3");
      assert.deepEqual(thread.map((m) => m.textLang), ["nl", "nl"], "the melder's report and the acknowledgement are Dutch");
      await shot(tab, engine, "thread-en-with-dutch-messages");

      const old = await reportWithoutLang("Een oudere melding, zonder taal.");
      await tab.page.goto(`${server.url}/en/my-report`);
      await tab.type("#code", old);
      await tab.page.keyboard.press("Enter");
      await tab.waitFor(() => document.querySelectorAll("#messages > li").length === 1, null, 120_000);
      const oldLang = await tab.page.evaluate(() => document.querySelector("#messages .message-text").closest("[lang]").getAttribute("lang"));
      assert.equal(oldLang, "", "a message without a language is marked unknown, not English");
      assertClean(tab.problems);
      await tab.close();
    });
  });
}

test("Firefox ESR at Safer (no JIT): the bar moves while an attachment is encrypted, and the page says what it does", async () => {
  const browser = await launchFirefox({ prefs: SAFER_PREFS });
  try {
    const { page, problems } = await openFirefoxPage(browser, server.url);
    await page.goto(`${server.url}/melden`);
    await page.waitForSelector(`#counsellor-${counsellor.id}`);
    await page.click(`#counsellor-${counsellor.id}`);
    const attachment = path.join(work.dir, "bijlage-5mib.bin");
    await writeFile(attachment, randomBytes(5 << 20));
    await (await page.$("#attachments")).uploadFile(attachment);
    // When the first chunk leaves: it is sent only once it is wholly encrypted,
    // so what the bar shows before then is encrypting progress alone.
    let firstChunkAt = null;
    page.on("request", (r) => {
      if (firstChunkAt === null && new URL(r.url()).pathname === "/api/v1/uploads/chunk") firstChunkAt = Date.now();
    });
    await page.evaluate(() => {
      window.__bars = [];
      const sample = () => {
        const bar = document.querySelector("#progress");
        window.__bars.push({ at: Date.now(), value: bar.hidden || !bar.hasAttribute("value") ? null : bar.value, status: document.querySelector("#status").textContent, files: document.querySelector("#upload-files")?.textContent ?? "" });
        if (document.querySelector("#done").hidden) setTimeout(sample, 100);
      };
      sample();
    });
    await page.click("#submit");
    await page.waitForFunction(() => !document.querySelector("#done").hidden, { timeout: 120_000, polling: 200 });
    const bars = await page.evaluate(() => window.__bars);
    const values = [...new Set(bars.map((b) => b.value).filter((v) => v !== null))];
    // 5 MiB is two 4 MiB upload chunks: without progress while encrypting, at most 0, ~0.8 and 1.
    const between = values.filter((v) => v > 0 && v < 1);
    assert.ok(between.length >= 4, `the bar took only ${JSON.stringify(values)}`);
    assert.ok(bars.some((b) => b.status.length > 0), "the status line says what happens");
    // The Done-when of issue 18: the bar moves during encryption, not only during upload.
    assert.ok(firstChunkAt, "a chunk was sent");
    const whileEncrypting = bars.filter((b) => b.at < firstChunkAt - 50);
    const movedEarly = [...new Set(whileEncrypting.map((b) => b.value).filter((v) => v > 0))];
    assert.ok(movedEarly.length >= 2, `before the first chunk left, the bar showed only ${JSON.stringify(whileEncrypting.map((b) => b.value))}`);
    assert.ok(whileEncrypting.filter((b) => b.value > 0).every((b) => b.status.startsWith(nl.upload_status_sending)),
      `while encrypting the page says so: ${JSON.stringify([...new Set(whileEncrypting.map((b) => b.status))])}`);
    console.log(`# Safer: before the first chunk left, the bar took ${movedEarly.length} values, up to ${Math.max(...movedEarly).toFixed(2)}`);
    // A step that takes long says how far it is, in quarters (not at every chunk).
    const percents = [...new Set(bars.map((b) => /\((\d+) ?%\)/.exec(b.status)?.[1]).filter(Boolean))];
    assert.ok(percents.every((p) => ["25", "50", "75"].includes(p)), `said: ${JSON.stringify(percents)}`);
    const sendingMs = 100 * bars.filter((b) => b.status.startsWith(nl.upload_status_sending)).length;
    if (sendingMs >= 2500) assert.ok(percents.length >= 1, `${sendingMs} ms of encrypting and sending, and no percentage said`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("a message table changed on the way is refused (Subresource Integrity), the served one is taken", async () => {
  const browser = await launch();
  try {
    const { context, page, problems } = await openPage(browser, server.url);
    await page.goto(`${server.url}/en/report`);
    const integrity = await page.getAttribute('meta[name="i18n-integrity"]', "content");
    assert.match(integrity, /^sha384-[A-Za-z0-9+/]+=*$/);
    await page.locator(`#counsellor-${counsellor.id}`).waitFor();
    assert.equal(await page.textContent("#counsellors-external legend"), en.report_counsellors_external);

    // The same page, its table swapped for one that lies.
    await page.route("**/i18n/en.json", async (route) => {
      const table = JSON.parse((await route.fetch().then((r) => r.text())));
      table.report_counsellors_external = "Send your report to evil.example instead";
      await route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(table) });
    });
    await page.goto(`${server.url}/en/report`);
    await page.locator(`#counsellor-${counsellor.id}`).waitFor();
    const legend = await page.textContent("#counsellors-external legend");
    assert.notEqual(legend, "Send your report to evil.example instead", "the changed table was used");
    assert.equal(legend, "report_counsellors_external", "without a trusted table the keys show");
    assert.ok(problems.some((p) => /integrity/i.test(p)), `the refusal is logged: ${JSON.stringify(problems)}`);
    await context.close();
  } finally {
    await browser.close();
  }
});
