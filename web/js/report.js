// The report form: choose counsellors, write, encrypt in this browser, send,
// and show the retrieval code. The plaintext and the code never leave the page.

import {
  MAX_CONTACT,
  MAX_TEXT,
  buildInner,
  bytesToBase64,
  cardFromApi,
  deriveKeys,
  encryptSigned,
  compatibleRecipients,
  formatCode,
  generateCode,
  isHybridRecipient,
  replyRecipientFor,
  signInner,
} from "./protocol.js";
import { digitGroups, fingerprintDigest } from "./fingerprint.js";
import { ApiError, getCounsellors, getOrganisations, organisationFromPath, postReport } from "./api.js";
import { checkFiles, loadLimits, sendAttachments, sendFailureMessage, showLimits, watchFileInput } from "./attachments.js";
import { UploadCancelled, uploadApi } from "./upload.js";
import { lang, loadMessages, t } from "./i18n.js";
import { $, apiErrorMessage, download, el, errorSummary, fieldError, focusHeading, setBusy, showCode, status } from "./ui.js";

await loadMessages();

const form = $("report-form");
const chosenFiles = watchFileInput("attachments", "attachment-list");
let counsellors = [];
/** The organisation's file name for a downloaded code, if it set one. */
let codeFileName = null;
let busy = false;
let sent = false;
/**
 * The submission in progress: one code per visit to this page, so that a
 * retry reaches the same case; `request` is the exact body already sent once,
 * kept while the outcome is unknown so a retry is byte-identical (the server
 * then answers 200 instead of storing twice or refusing with code_in_use);
 * `uploads` are the attachments that body names.
 */
let attempt = null;

// ------------------------------------------------------------ counsellors --

/**
 * One counsellor's box. Its spoken name is the counsellor's name alone; the
 * organisation and description are its description, so a screen reader
 * does not read the whole card as the name. The card's texts carry the
 * card's language; a card without one is marked as of unknown language
 * (lang=""), not as the page's.
 */
function counsellorChoice(c) {
  const id = `counsellor-${c.id}`;
  const cardLang = typeof c.lang === "string" ? c.lang : "";
  const label = el("label", { attrs: { for: id } }, [
    el("span", { className: "choice-title", text: c.name, attrs: { id: `${id}-name` } }),
    el("span", { className: "choice-meta", text: c.organisation, attrs: { id: `${id}-meta`, lang: cardLang } }),
  ]);
  const described = [`${id}-meta`];
  // Protocol v2 (draft): say which counsellors receive post-quantum reports.
  const pq = isHybridRecipient(c.age_recipient);
  label.append(el("span", {
    className: pq ? "choice-pq" : "choice-pq choice-classical",
    text: pq ? t("report_counsellor_pq") : t("report_counsellor_classical"),
    attrs: { id: `${id}-pq` },
  }));
  described.push(`${id}-pq`);
  label.append(fingerprintLine(c, `${id}-fingerprint`));
  described.push(`${id}-fingerprint`);
  if (c.description) {
    label.append(el("span", { className: "choice-description", text: c.description, attrs: { id: `${id}-description`, lang: cardLang } }));
    described.push(`${id}-description`);
  }
  // autocomplete="off" keeps the choice out of Firefox's session store (with the form's).
  const box = el("input", {
    attrs: {
      type: "checkbox", id, value: c.id, autocomplete: "off",
      "aria-labelledby": `${id}-name`, "aria-describedby": described.join(" "),
    },
  });
  box.addEventListener("change", () => clearError("counsellors"));
  return el("div", { className: "choice" }, [box, label]);
}

/**
 * The card's fingerprint as this page computes it from the served card
 * (protocol.md §10.1; the server never sends one), to compare with the sheet
 * the organisation publishes: six groups of five digits, each group kept on
 * one line, a line breaking only between groups.
 */
function fingerprintLine(card, id) {
  let groups;
  try {
    groups = digitGroups(fingerprintDigest(card));
  } catch {
    return el("span", { className: "choice-fingerprint field-error", text: t("report_fingerprint_missing"), attrs: { id } });
  }
  const digits = groups.flatMap((group, i) => [...(i ? [" "] : []), el("span", { className: "fingerprint-group", text: group })]);
  return el("span", { className: "choice-fingerprint", attrs: { id } }, [
    `${t("report_fingerprint_label")}: `,
    el("span", { className: "fingerprint", attrs: { translate: "no" } }, digits),
  ]);
}

/**
 * One group of the choice, internal or external: a fieldset of its own, so
 * a screen reader names the group with each box. Empty groups are left out.
 */
function counsellorGroup(kind, legend, hint, cards) {
  const hintId = `counsellors-${kind}-hint`;
  return el("fieldset", { className: "choice-group", attrs: { id: `counsellors-${kind}`, "aria-describedby": hintId } }, [
    el("legend", { text: legend }),
    el("p", { className: "hint", text: hint, attrs: { id: hintId } }),
    el("div", { className: "choice-list" }, cards.map(counsellorChoice)),
  ]);
}

/** A "load again" button after `message`, running `retry`. */
function failedLoading(target, message, retry) {
  const again = el("button", { className: "button button-secondary", text: t("report_counsellors_reload"), attrs: { type: "button" } });
  again.addEventListener("click", retry);
  target.replaceChildren(el("p", { className: "field-error", text: message }), again);
}

/** The melder picks an organisation, by a link to this same page under `/o/<org>/`. */
function chooseOrganisation(organisations) {
  form.hidden = true;
  $("organisation-choice").hidden = false;
  // The same page (and language) under the organisation's own path.
  $("organisation-list").replaceChildren(el("ul", { className: "link-list" }, organisations.map((o) => el("li", {}, [
    el("a", { text: o.name, attrs: { href: `/o/${encodeURIComponent(o.id)}${location.pathname}` } }),
  ]))));
}

/**
 * The organisation's counsellors. Its id comes from the path; a page outside
 * `/o/` serves the only organisation, or on a server for several first lets
 * the melder choose one (also when the server says one is required).
 */
async function loadCounsellors() {
  const list = $("counsellor-list");
  let answer;
  try {
    let org = organisationFromPath();
    if (!org) {
      const organisations = await getOrganisations();
      if (organisations.length === 0) {
        list.replaceChildren(el("p", { text: t("report_counsellors_none") }));
        return;
      }
      if (organisations.length > 1) {
        chooseOrganisation(organisations);
        return;
      }
      org = organisations[0]?.id ?? null;
    }
    answer = await getCounsellors(org);
  } catch (error) {
    if (error instanceof ApiError && error.code === "organisation_required") {
      getOrganisations().then(chooseOrganisation, () => failedLoading(list, apiErrorMessage(error), loadCounsellors));
      return;
    }
    failedLoading(list, apiErrorMessage(error), loadCounsellors);
    return;
  }
  counsellors = answer.counsellors;
  codeFileName = answer.organisation.code_file_name ?? null;
  $("organisation-name").textContent = t("report_organisation", { name: answer.organisation.name });
  $("organisation-name").hidden = false;
  const groups = [
    counsellorGroup("internal", t("report_counsellors_internal"), t("report_counsellors_internal_hint"),
      counsellors.filter((c) => c.kind === "internal")),
    counsellorGroup("external", t("report_counsellors_external"), t("report_counsellors_external_hint"),
      counsellors.filter((c) => c.kind === "external")),
  ].filter((group) => group.querySelector("input"));
  list.replaceChildren(...(groups.length ? groups : [el("p", { text: t("report_counsellors_none") })]));
}

// ------------------------------------------------------------------- form --

/** "report" or "question" (an advice question, protocol.md §3). */
const chosenKind = () => ($("kind-question").checked ? "question" : "report");

/**
 * The words that depend on the choice: the text's label and the button.
 * A radio's name is given here, not in the template, like the evaluation's:
 * without this script nothing can be sent.
 */
function showKind() {
  const kind = chosenKind();
  for (const id of ["text-label", "submit"]) $(id).textContent = $(id).dataset[kind];
  // A question has no category: it is not a report of anything yet.
  $("category").closest(".field").hidden = kind === "question";
}

function readForm() {
  const kind = chosenKind();
  return {
    kind,
    ids: [...form.querySelectorAll("#counsellor-list input:checked")].map((box) => box.value),
    category: kind === "question" ? "" : $("category").value,
    text: $("text").value,
    contact: $("contact").value.trim(),
    files: chosenFiles(),
  };
}

/** Where focus goes for a field's error: the first checkbox for the counsellors. */
const focusTarget = (id) => (id === "counsellors" ? form.querySelector("#counsellor-list input") ?? $("counsellors") : $(id));

/** Hides a field's error; the summary goes once nothing is left in it. */
function clearError(id) {
  fieldError(id, null);
  const link = $("error-summary-list").querySelector(`a[href="#${id}"]`);
  if (link) link.parentElement.remove();
  if (!$("error-summary-list").children.length) $("error-summary").hidden = true;
}

/**
 * Shows every field error at once, by its field and in the error summary,
 * and moves focus to the summary; true if all is well.
 */
function check(values) {
  const errors = {
    counsellors: values.ids.length === 0 ? t("report_error_counsellors")
      // age never puts classical and post-quantum keys in one file (protocol.md §3).
      : !compatibleRecipients(counsellors.filter((c) => values.ids.includes(c.id)).map((c) => c.age_recipient))
        ? t("report_error_counsellors_mixed") : null,
    text:
      !values.text.trim() && values.files.length === 0 ? t("report_error_text")
        : Array.from(values.text).length > MAX_TEXT ? t("report_error_text_long", { max: MAX_TEXT })
          : null,
    attachments: checkFiles(values.files),
    contact: values.contact.length > MAX_CONTACT ? t("report_error_contact_long", { max: MAX_CONTACT }) : null,
  };
  for (const [id, message] of Object.entries(errors)) fieldError(id, message);
  return errorSummary("error-summary", errors, focusTarget);
}

/** Makes the fields read-only (while attachments go out, or an outcome is unknown) or editable. */
function lockFields(locked) {
  for (const control of form.querySelectorAll("input, select, textarea")) {
    if (control.tagName === "TEXTAREA") control.readOnly = locked;
    else control.disabled = locked;
  }
}

/** While an outcome is unknown the form is frozen, so the retry sends what the melder sees. */
function freeze(frozen) {
  lockFields(frozen);
  const hiding = $(frozen ? "submit" : "retry");
  const showing = $(frozen ? "retry" : "submit");
  const hadFocus = document.activeElement === hiding;
  hiding.hidden = true;
  showing.hidden = false;
  if (hadFocus) showing.focus(); // keep a keyboard user's place
}

/**
 * Encrypts and uploads the attachments (each its own age file, protocol.md
 * §3a), then seals the envelope that names them, to the same recipients.
 */
async function prepare(values) {
  const code = attempt?.code ?? generateCode();
  const keys = attempt?.keys ?? (await deriveKeys(code));
  attempt = { code, keys, kind: values.kind, request: null, uploads: [] };
  const chosen = counsellors.filter((c) => values.ids.includes(c.id));
  // The cards to pin, checked before anything is encrypted or uploaded.
  const cards = chosen.map(cardFromApi);
  const counsellorKeys = chosen.map((c) => c.age_recipient);
  const replyRecipient = replyRecipientFor(keys, counsellorKeys);
  const recipients = [...counsellorKeys, replyRecipient];
  let sent = { attachments: [], uploads: [] };
  if (values.files.length) {
    lockFields(true);
    sent = await sendAttachments(values.files, recipients);
  }
  status("", t("report_status_encrypting"), { fraction: null });
  // Protocol v2 (§10.2): the report pins the exact cards it is encrypted
  // to, names the thread by the melder's public key, and is signed with the
  // key derived from the code.
  const inner = buildInner({
    kind: values.kind,
    text: values.text,
    lang, // what the melder wrote in, as far as the page knows: its own language
    category: values.category,
    contact: values.contact,
    replyRecipient,
    counsellors: chosen.map((c) => c.id),
    attachments: sent.attachments,
    thread: keys.thread,
    seq: 1,
    prev: null,
    cards,
  });
  const sealed = await encryptSigned(signInner(inner, keys.melderSeed), recipients);
  const request = {
    counsellors: chosen.map((c) => c.id),
    lookup_key: keys.lookupKey,
    message: bytesToBase64(sealed),
  };
  if (sent.uploads.length) request.uploads = sent.uploads;
  attempt.request = JSON.stringify(request);
  attempt.uploads = sent.uploads;
}

async function send() {
  status("", t("report_status_sending"), { fraction: 0 });
  await postReport(attempt.request, (f) => status("", t("report_status_sending"), { fraction: f }));
}

async function submit() {
  if (busy) return;
  busy = true;
  setBusy(["submit", "retry"], true);
  try {
    if (!attempt?.request) await prepare(readForm());
    await send();
    finish();
  } catch (error) {
    failed(error);
  } finally {
    busy = false;
    setBusy(["submit", "retry"], false);
  }
}

function failed(error) {
  if (error instanceof UploadCancelled) {
    // Nothing was stored and the uploads are deleted: back to the form as it was.
    lockFields(false);
    status("", t("upload_cancelled"));
    $("submit").focus();
    return;
  }
  if (error instanceof ApiError && error.uncertain && attempt?.request) {
    freeze(true);
    status("", t("report_error_uncertain"), { kind: "error" });
    $("retry").focus();
    return;
  }
  // Refused or never sent: nothing was stored, so the melder may edit and
  // send again, encrypted afresh, under the same code. Attachments the
  // refused report named are deleted; they are sent afresh too.
  freeze(false);
  if (attempt) {
    for (const upload of attempt.uploads) uploadApi().cancel(upload).catch(() => {});
    attempt.request = null;
    attempt.uploads = [];
  }
  if (error instanceof ApiError && error.code === "code_in_use") attempt = null; // take a new code
  if (error instanceof ApiError && error.code === "unknown_counsellor") loadCounsellors();
showLimits("attachments-limits");
  status("", sendFailureMessage(error), { kind: "error" });
}

// ------------------------------------------------------------------- done --

function finish() {
  sent = true;
  const display = formatCode(attempt.code);
  const attemptKind = attempt.kind;
  attempt = null;
  form.reset(); // the plaintext leaves the page now that it is stored
  form.hidden = true;
  $("report-intro").hidden = true;
  showCode($("code"), display);
  // A reading aid: screen readers say "8247" as a number and "KX" as a word;
  // spelled out, each character is heard alone. The code looks the same.
  $("code-spelled").textContent = t("done_code_spelled", {
    spelled: display.split("-").map((group) => [...group].join(" ")).join(", "),
  });
  $("thread-url").textContent = $("to-thread").href; // for the printed page
  if (attemptKind === "question") $("done-heading").textContent = $("done-heading").dataset.question;
  $("done").hidden = false;
  document.title = `${t("site_name")} — ${$("done-heading").textContent}`;
  focusHeading("done-heading");

  const copyStatus = (key) => { $("copy-status").textContent = t(key); };
  $("copy-code").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(display);
      copyStatus("done_copied");
    } catch {
      window.getSelection().selectAllChildren($("code")); // let the melder copy by hand
      copyStatus("done_copy_manual");
    }
  });
  $("download-code").addEventListener("click", () => {
    const threadUrl = $("to-thread").href;
    const text = `${t("done_file_text", { code: display, url: threadUrl })}\n`;
    // A dull name: the downloads folder must not tell what the file is.
    download(new TextEncoder().encode(text), codeFileName ?? t("done_file_name"), "text/plain;charset=utf-8");
    copyStatus("done_downloaded");
  });
  $("print-code").addEventListener("click", () => window.print());
}

// ----------------------------------------------------------------- events --

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (busy || !$("retry").hidden) return; // busy, or frozen: only the retry button sends
  await loadLimits(); // long since there, but the file check needs them
  if (!busy && check(readForm())) submit();
});
$("retry").addEventListener("click", submit);
for (const radio of $("report-kind").querySelectorAll("input[type=radio]")) {
  radio.name = "report-kind";
  radio.addEventListener("change", showKind);
}
// A link may ask for a question (the route finder's "ask a counsellor"):
// `?soort=vraag` or `?kind=question`. Only a preselection; the melder chooses.
{
  const asked = new URLSearchParams(window.location.search);
  if (asked.get("soort") === "vraag" || asked.get("kind") === "question") $("kind-question").checked = true;
}
showKind();
for (const id of ["text", "contact"]) $(id).addEventListener("input", () => clearError(id));
$("attachments").addEventListener("change", () => checkFiles(chosenFiles()) || clearError("attachments"));

window.addEventListener("beforeunload", (event) => {
  if (sent) return;
  const { text, contact, files } = readForm();
  if (text.trim() || contact || files.length) {
    event.preventDefault();
    event.returnValue = ""; // older browsers need this to show the prompt
  }
});

loadCounsellors();
showLimits("attachments-limits");
