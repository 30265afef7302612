// "My report": read a retrieval code, fetch the thread with the derived
// lookup key, decrypt it here with the reply identity, and send follow-ups.
// Everything decrypted is untrusted and reaches the page as text only.

import {
  CodeError,
  base64ToBytes,
  buildEnvelope,
  bytesToBase64,
  decrypt,
  deriveKeys,
  encrypt,
  formatCode,
  parseCode,
} from "./protocol.js";
import { ApiError, getCounsellors, getOrganisations, getThread, organisationFromPath, postFollowUp } from "./api.js";
import { checkFiles, readAttachments, watchFileInput } from "./attachments.js";
import { formatDay, loadMessages, t } from "./i18n.js";
import { $, apiErrorMessage, el, fieldError, focusHeading, setBusy, status } from "./ui.js";

await loadMessages();

const followupFiles = watchFileInput("followup-attachments", "followup-attachment-list");
/** The open thread: derived keys, the server's answer, the counsellor cards. */
let session = null;
let objectUrls = [];
let busy = false;
/** A follow-up whose outcome is unknown; a retry resends exactly these bytes. */
let pendingFollowUp = null;

// ------------------------------------------------------------------- code --

/** A character as the melder can recognise it, also when it is invisible. */
function showCharacter(character) {
  return /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(character)
    ? `“${character}”`
    : `U+${character.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}

function codeErrorMessage(error) {
  switch (error.code) {
    case "invalid_character":
      return t("code_error_invalid_character", { character: showCharacter(error.character), position: error.position });
    case "wrong_length":
      return t("code_error_wrong_length", { length: error.length, expected: 24 });
    default:
      return t("code_error_check_failed");
  }
}

async function openThread(event) {
  event.preventDefault();
  if (busy) return;
  fieldError("code", null);
  let canonical;
  try {
    canonical = parseCode($("code").value);
  } catch (error) {
    if (!(error instanceof CodeError)) throw error;
    fieldError("code", codeErrorMessage(error));
    $("code").focus();
    return;
  }
  busy = true;
  setBusy(["open"], true);
  status("", t("thread_status_opening"), { fraction: null });
  try {
    const keys = await deriveKeys(canonical);
    const org = organisationFromPath();
    const [thread, here] = await Promise.all([getThread(keys.lookupKey), org ? cardsOf(org) : allCards()]);
    // A case of another organisation than the page's: look its counsellors
    // up among all. Cards are public; names are a nicety, and keys are
    // needed only to answer, which then says what is missing.
    const known = (cards) => thread.counsellors.every((id) => cards.some((c) => c.id === id));
    const counsellors = known(here) || !org ? here : await allCards();
    session = { keys, thread, counsellors };
    $("code").value = formatCode(canonical);
    await render();
    status("", "");
    focusHeading("thread-heading");
  } catch (error) {
    status("", "");
    if (error instanceof ApiError && error.code === "unknown_code") {
      fieldError("code", t("error_unknown_code"));
      $("code").focus();
    } else {
      status("", apiErrorMessage(error), { kind: "error" });
    }
  } finally {
    busy = false;
    setBusy(["open"], false);
  }
}

// ----------------------------------------------------------- counsellors --

/** One organisation's cards; [] when they cannot be had. */
async function cardsOf(org) {
  try {
    return (await getCounsellors(org)).counsellors;
  } catch {
    return [];
  }
}

/** Every organisation's cards, for a page outside `/o/`: the case may be any one's. */
async function allCards() {
  try {
    const organisations = await getOrganisations();
    return (await Promise.all(organisations.map((o) => cardsOf(o.id)))).flat();
  } catch {
    return [];
  }
}

// ----------------------------------------------------------------- thread --

function counsellorName(id) {
  return session.counsellors.find((c) => c.id === id)?.name ?? id;
}

function authorName(item, envelope) {
  if (item.author === "melder") return t("thread_author_you");
  return envelope?.author?.name ?? counsellorName(item.author);
}

function attachmentLink(attachment) {
  // Served as octet-stream whatever type the sender claimed, so a browser
  // saves it instead of rendering (say) HTML from a stranger in this origin.
  const url = URL.createObjectURL(new Blob([base64ToBytes(attachment.data)], { type: "application/octet-stream" }));
  objectUrls.push(url);
  return el("li", {}, [el("a", { text: attachment.name, attrs: { href: url, download: attachment.name } })]);
}

function messageItem(item, envelope) {
  const mine = item.author === "melder";
  const kind = (envelope?.kind ?? item.kind).replace("-", "_");
  const header = el("p", { className: "message-meta" }, [
    el("strong", { text: authorName(item, envelope) }),
    ` · ${t(`kind_${kind}`)} · `,
    el("time", { text: formatDay(item.day), attrs: { datetime: item.day } }),
  ]);
  const article = el("article", { className: `message ${mine ? "message-mine" : "message-theirs"}` }, [header]);
  if (!envelope) {
    article.append(el("p", { className: "field-error", text: t("thread_undecryptable") }));
    return el("li", {}, [article]);
  }
  const facts = [];
  if (envelope.category) {
    const key = `category_${envelope.category.replaceAll("-", "_")}`;
    const label = t(key);
    facts.push([t("thread_category"), label === key ? envelope.category : label]);
  }
  if (envelope.contact) facts.push([t("thread_contact"), envelope.contact]);
  if (facts.length) {
    article.append(el("dl", { className: "message-facts" }, facts.flatMap(([term, value]) => [
      el("dt", { text: term }), el("dd", { text: value }),
    ])));
  }
  if (envelope.text) article.append(el("p", { className: "message-text", text: envelope.text }));
  if (envelope.attachments?.length) {
    article.append(el("p", { className: "message-attachments-title", text: t("thread_attachments") }),
      el("ul", { className: "file-list" }, envelope.attachments.map(attachmentLink)));
  }
  return el("li", {}, [article]);
}

async function render() {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  const items = [];
  for (const item of session.thread.messages) {
    let envelope = null;
    try {
      envelope = await decrypt(base64ToBytes(item.message), session.keys.replyIdentity);
    } catch {
      // one damaged message must not hide the rest of the thread
    }
    items.push(messageItem(item, envelope));
  }
  $("messages").replaceChildren(...items);
  $("thread-counsellors").textContent = t("thread_counsellors", {
    names: session.thread.counsellors.map(counsellorName).join(", "),
  });
  $("thread").hidden = false;
}

// -------------------------------------------------------------- follow-up --

async function prepareFollowUp() {
  const text = $("followup-text").value;
  const files = followupFiles();
  const fileError = checkFiles(files);
  fieldError("followup-attachments", fileError);
  if (!text.trim() && files.length === 0) {
    fieldError("followup-text", t("report_error_text"));
    $("followup-text").focus();
    return false;
  }
  if (fileError) return false;
  const recipients = session.thread.counsellors
    .map((id) => session.counsellors.find((c) => c.id === id)?.age_recipient)
    .filter(Boolean);
  if (recipients.length === 0) throw new Error("no-counsellor-key");
  status("followup", t("report_status_reading"), { fraction: 0 });
  const attachments = await readAttachments(files, (f) => status("followup", t("report_status_reading"), { fraction: f }));
  status("followup", t("report_status_encrypting"), { fraction: null });
  const envelope = buildEnvelope({ kind: "follow-up", text, attachments });
  const sealed = await encrypt(envelope, [...recipients, session.keys.replyRecipient]);
  pendingFollowUp = JSON.stringify({ lookup_key: session.keys.lookupKey, message: bytesToBase64(sealed) });
  return true;
}

/** While an outcome is unknown the text is frozen and only the retry sends it. */
function freezeFollowUp(frozen) {
  const hiding = $(frozen ? "followup-submit" : "followup-retry");
  const showing = $(frozen ? "followup-retry" : "followup-submit");
  const hadFocus = document.activeElement === hiding;
  $("followup-text").readOnly = frozen;
  $("followup-attachments").disabled = frozen;
  hiding.hidden = true;
  showing.hidden = false;
  if (hadFocus) showing.focus(); // keep a keyboard user's place
}

async function sendFollowUp() {
  if (busy || !session) return;
  busy = true;
  setBusy(["followup-submit", "followup-retry"], true);
  try {
    if (!pendingFollowUp && !(await prepareFollowUp())) return;
    status("followup", t("report_status_sending"), { fraction: 0 });
    await postFollowUp(pendingFollowUp, (f) => status("followup", t("report_status_sending"), { fraction: f }));
    pendingFollowUp = null;
    freezeFollowUp(false);
    $("followup-form").reset();
    $("followup-attachment-list").replaceChildren();
    session.thread = await getThread(session.keys.lookupKey);
    await render();
    status("followup", t("followup_sent"), { kind: "success" });
    // The new message pushed the form down: keep the button and its news in sight.
    $("followup-status").scrollIntoView({ block: "nearest" });
  } catch (error) {
    if (error instanceof ApiError && error.uncertain) {
      freezeFollowUp(true);
      status("followup", t("report_error_uncertain"), { kind: "error" });
    } else {
      pendingFollowUp = null;
      freezeFollowUp(false);
      const message = error instanceof ApiError ? apiErrorMessage(error)
        : error.message === "no-counsellor-key" ? t("followup_error_no_counsellor")
          : error instanceof RangeError ? t("report_error_too_large") : t("report_error_encrypt");
      status("followup", message, { kind: "error" });
    }
  } finally {
    busy = false;
    setBusy(["followup-submit", "followup-retry"], false);
  }
}

function closeThread() {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  session = null;
  pendingFollowUp = null;
  $("messages").replaceChildren();
  $("followup-form").reset();
  freezeFollowUp(false);
  $("thread").hidden = true;
  $("code").value = "";
  status("", t("thread_closed"));
  $("code").focus();
}

// ----------------------------------------------------------------- events --

$("code-form").addEventListener("submit", openThread);
$("code").addEventListener("input", () => fieldError("code", null));
$("followup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if ($("followup-retry").hidden) sendFollowUp();
});
$("followup-retry").addEventListener("click", sendFollowUp);
$("followup-text").addEventListener("input", () => fieldError("followup-text", null));
$("close-thread").addEventListener("click", closeThread);

window.addEventListener("beforeunload", (event) => {
  if (session && ($("followup-text").value.trim() || followupFiles().length)) {
    event.preventDefault();
    event.returnValue = "";
  }
});
