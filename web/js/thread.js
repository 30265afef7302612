// "My report": read a retrieval code, fetch the thread with the derived
// lookup key, decrypt it here with the reply identity, and send follow-ups.
// Everything decrypted is untrusted and reaches the page as text only.

import {
  CodeError,
  MAX_TEXT,
  base64ToBytes,
  buildEnvelope,
  buildInner,
  bytesToBase64,
  decryptMessage,
  deriveKeys,
  encrypt,
  encryptSigned,
  fileHash,
  formatCode,
  parseCode,
  replyRecipientFor,
  signInner,
  verifyText,
} from "./protocol.js";
import { cardFingerprint } from "./fingerprint.js";
import { ApiError, getCounsellors, getOrganisations, getThread, organisationFromPath, postFollowUp } from "./api.js";
import {
  attachmentItem, checkFiles, loadLimits, sendAttachments, sendFailureMessage, showLimits, watchFileInput,
} from "./attachments.js";
import { UploadCancelled, uploadApi } from "./upload.js";
import { formatDay, lang, loadMessages, t } from "./i18n.js";
import { deadlines, deletedFrom } from "./deadlines.js";
import { $, apiErrorMessage, el, errorSummary, fieldError, focusHeading, setBusy, status } from "./ui.js";

await loadMessages();

const followupFiles = watchFileInput("followup-attachments", "followup-attachment-list");
/** The open thread: derived keys, the server's answer, the counsellor cards. */
let session = null;
let objectUrls = [];
let busy = false;
/**
 * A follow-up whose outcome is unknown: `request`, the exact body a retry
 * resends, and the `uploads` it names.
 */
let pendingFollowUp = null;
/** The same for the evaluation. */
let pendingEvaluation = null;

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
    const [thread, here, organisations] = await Promise.all([
      getThread(keys.lookupKey), org ? cardsOf(org) : allCards(), getOrganisations().catch(() => []),
    ]);
    // A case of another organisation than the page's: look its counsellors
    // up among all. Cards are public; names are a nicety, and keys are
    // needed only to answer, which then says what is missing.
    const known = (cards) => thread.counsellors.every((id) => cards.some((c) => c.id === id));
    const counsellors = known(here) || !org ? here : await allCards();
    session = { keys, thread, counsellors, organisations, verified: new Map() };
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

/**
 * The age recipients of the case's counsellors: follow-ups and evaluations
 * go to all of them. In a v2 thread these are the pinned cards' keys
 * (protocol.md §10.4), never what the server's answer or card list says.
 */
function caseRecipients() {
  const recipients = session.v2
    ? [...session.v2.pins.values()].map((card) => card.age_recipient)
    : session.thread.counsellors
      .map((id) => session.counsellors.find((c) => c.id === id)?.age_recipient)
      .filter(Boolean);
  if (recipients.length === 0) throw new Error("no-counsellor-key");
  return recipients;
}

// ----------------------------------------------------------------- thread --

function statusLabel(status) {
  return {
    received: t("status_received"),
    read: t("status_read"),
    asked: t("status_asked"),
    reported: t("status_reported"),
    acknowledged: t("status_acknowledged"),
    "in-progress": t("status_in_progress"),
    "feedback-given": t("status_feedback_given"),
    closed: t("status_closed"),
  }[status] ?? status;
}

/** The answers of the evaluation's scales, as the form shows them; index = score − 1. */
const processLabels = () => [
  t("evaluation_process_1"), t("evaluation_process_2"), t("evaluation_process_3"),
  t("evaluation_process_4"), t("evaluation_process_5"),
];
const heardLabels = () => [
  t("evaluation_heard_1"), t("evaluation_heard_2"), t("evaluation_heard_3"),
  t("evaluation_heard_4"), t("evaluation_heard_5"),
];

/** The case's counsellors: a v2 thread's pinned cards, else the ids the server names. */
function caseCounsellorIds() {
  return session.v2 ? [...session.v2.pins.keys()] : session.thread.counsellors;
}

/** A counsellor's card: the pinned one in a v2 thread, else the server's. */
function cardOf(id) {
  return session.v2 ? session.v2.pins.get(id) : session.counsellors.find((c) => c.id === id);
}

function counsellorName(id) {
  return cardOf(id)?.name ?? id;
}

/**
 * Who wrote a message. In a v2 thread a reply's name is that of the pinned
 * card that verified it (§10.4), never the envelope's free text.
 */
function authorName(item, envelope) {
  if (item.author === "melder") return t("thread_author_you");
  if (item.pinnedName) return item.pinnedName;
  return envelope?.author?.name ?? counsellorName(item.author);
}

/**
 * The language of a message's own text for `lang`: the envelope's, or ""
 * (unknown) for older messages without one — never the page's by default.
 */
const textLang = (envelope) => (typeof envelope?.lang === "string" ? envelope.lang : "");

/**
 * What the page can honestly say of a melder's message: a counsellor has
 * read it only when a counsellor's answer came after it; until then it is
 * stored on the server, nothing more.
 */
function deliveryLine(read) {
  return el("p", {
    className: "message-delivery",
    text: read ? t("thread_delivery_read") : t("thread_delivery_stored"),
  });
}

function messageItem(item, envelope, read, notes = []) {
  const mine = item.author === "melder";
  const kind = (envelope?.kind ?? item.kind).replace("-", "_");
  const header = el("h4", { className: "message-meta" }, [
    el("strong", { text: authorName(item, envelope) }),
    ` · ${t(`kind_${kind}`)} · `,
    el("time", { text: formatDay(item.day), attrs: { datetime: item.day } }),
  ]);
  const article = el("article", { className: `message ${mine ? "message-mine" : "message-theirs"}` }, [header]);
  // Warnings about a genuine message's place come first, under its heading.
  for (const note of notes) article.append(note);
  if (!envelope) {
    article.append(el("p", { className: "field-error", text: t("thread_undecryptable") }));
    if (mine) article.append(deliveryLine(read));
    return el("li", {}, [article]);
  }
  const facts = [];
  if (envelope.status) facts.push([t("thread_status_set"), statusLabel(envelope.status)]);
  if (envelope.kind === "evaluation") {
    facts.push([t("evaluation_process_term"), processLabels()[envelope.evaluation.process - 1]]);
    facts.push([t("evaluation_heard_term"), heardLabels()[envelope.evaluation.heard - 1]]);
    if (envelope.text.trim()) facts.push([t("evaluation_text_term"), envelope.text, textLang(envelope)]);
  }
  if (envelope.category) {
    const key = `category_${envelope.category.replaceAll("-", "_")}`;
    const label = t(key);
    facts.push([t("thread_category"), label === key ? envelope.category : label]);
  }
  if (envelope.contact) facts.push([t("thread_contact"), envelope.contact, textLang(envelope)]);
  if (facts.length) {
    article.append(el("dl", { className: "message-facts" }, facts.flatMap(([term, value, valueLang]) => [
      el("dt", { text: term }), el("dd", { text: value, attrs: valueLang === undefined ? {} : { lang: valueLang } }),
    ])));
  }
  if (envelope.text && envelope.kind !== "evaluation") {
    article.append(el("p", { className: "message-text", text: envelope.text, attrs: { lang: textLang(envelope) } }));
  }
  if (envelope.attachments?.length) {
    article.append(el("p", { className: "message-attachments-title", text: t("thread_attachments") }),
      el("ul", { className: "file-list" }, envelope.attachments.map((a) => attachmentItem(a, objectUrls))));
  }
  if (envelope.introduces?.length) article.append(introduction(envelope.introduces));
  // An evaluation expects no answer: it gets no delivery line.
  if (mine && envelope.kind !== "evaluation") article.append(deliveryLine(read));
  return el("li", {}, [article]);
}

/**
 * The statuses the melder sees, oldest first: "received" on the day of the
 * report, then every status a counsellor's reply set, with its day and who.
 */
function statusSteps(opened) {
  const first = opened.find(({ item }) => item.author === "melder" && item.kind === "report") ?? opened[0];
  const asked = first?.envelope?.kind === "question";
  const steps = first ? [{ status: asked ? "asked" : "received", day: first.item.day }] : [];
  let read = false;
  for (const { item, envelope } of opened) {
    // The first answer from a counsellor is the first sign anyone read it.
    if (item.author !== "melder" && !read) {
      read = true;
      steps.push({ status: "read", day: item.day, by: authorName(item, envelope) });
    }
    if (envelope?.kind === "reply" && envelope.status) {
      steps.push({ status: envelope.status, day: item.day, by: authorName(item, envelope) });
    } else if (asked && item !== first.item && item.author === "melder" && envelope?.kind === "report") {
      steps.push({ status: "reported", day: item.day });
    }
  }
  return steps;
}

/**
 * Still an advice question: it began as one and the melder has not turned
 * it into a report (a later "report" message of theirs does that).
 */
function isOpenQuestion(opened) {
  const mine = opened.filter(({ item }) => item.author === "melder");
  return mine[0]?.envelope?.kind === "question" && !mine.some(({ envelope }) => envelope?.kind === "report");
}

function statusItem({ status: step, day, by }, current) {
  const when = el("span", { className: "status-when" }, [el("time", { text: formatDay(day), attrs: { datetime: day } })]);
  if (by) when.append(` · ${t("thread_status_by", { name: by })}`);
  return el("li", { attrs: current ? { "aria-current": "step" } : {} }, [
    el("span", { className: "status-label", text: statusLabel(step) }),
    when,
  ]);
}

/**
 * While the case is closed the melder may evaluate, once: the form, or
 * thanks once it is in the thread. A case the counsellor reopened (a later
 * status than "closed") asks for no evaluation until it closes again.
 */
function showEvaluation(opened) {
  const statuses = opened.filter(({ envelope }) => envelope?.kind === "reply" && envelope.status);
  const closed = statuses.at(-1)?.envelope.status === "closed";
  const evaluated = opened.some(({ item, envelope }) => item.author === "melder" && envelope?.kind === "evaluation");
  // "your counsellor" or "your counsellors": as many as the case has.
  const one = caseCounsellorIds().length === 1;
  $("evaluation-intro").textContent = t(one ? "evaluation_intro_one" : "evaluation_intro");
  $("evaluation-thanks-text").textContent = t(one ? "evaluation_thanks_one" : "evaluation_thanks");
  $("evaluation").hidden = !closed || evaluated;
  $("evaluation-thanks").hidden = !evaluated;
}

/**
 * The days that matter, as the counsellor's reviewer counts them
 * (src/review/deadlines.rs): received is the day the server stored the
 * report; acknowledged the day of the first counsellor answer; feedback the
 * first answer marked feedback-given or closed; closed the day of the last
 * status when that is "closed" (a later "in progress" reopened it).
 */
function caseFacts(opened) {
  const mine = opened.filter(({ item }) => item.author === "melder");
  const first = opened.find(({ item }) => item.author === "melder" && item.kind === "report") ?? opened[0];
  // An advice question runs no statutory terms; once the melder turns it
  // into a report, they run from that report, and only what came after it
  // acknowledges it (src/review/import.rs).
  const asked = first?.envelope?.kind === "question";
  const report = asked ? mine.find(({ envelope }) => envelope?.kind === "report") : first;
  const from = report ? opened.indexOf(report) : opened.length;
  const statuses = opened.filter(({ envelope }) => envelope?.kind === "reply" && envelope.status);
  const last = statuses.at(-1);
  const later = opened.slice(from + 1);
  const laterStatuses = later.filter(({ envelope }) => envelope?.kind === "reply" && envelope.status);
  return {
    asked: first?.item.day ?? null,
    question: asked && !report,
    received: report?.item.day ?? null,
    acknowledged: later.find(({ item }) => item.author !== "melder")?.item.day ?? null,
    feedback: laterStatuses.find(({ envelope }) => ["feedback-given", "closed"].includes(envelope.status))?.item.day ?? null,
    closed: last?.envelope.status === "closed" ? last.item.day : null,
  };
}

/** The organisation of the case: that of its first counsellor's card, with its settings. */
function caseOrganisation() {
  const card = caseCounsellorIds().map(cardOf).find(Boolean);
  return card ? session.organisations.find((o) => o.id === card.org) ?? null : null;
}

const timeOf = (day) => el("time", { text: formatDay(day), attrs: { datetime: day } });

function renderDates(facts, organisation) {
  const rows = [];
  const row = (id, term, day) => rows.push(el("dt", { text: term }), el("dd", { attrs: { id: `date-${id}` } }, [timeOf(day)]));
  // A question: stored on its day, and no terms (the question note says why).
  if (facts.question) row("received", t("status_received"), facts.asked);
  if (facts.received) {
    const due = deadlines(facts.received, facts.acknowledged);
    row("received", t("status_received"), facts.received);
    if (facts.acknowledged) row("acknowledged", t("thread_due_ack_done"), facts.acknowledged);
    else row("acknowledge-by", t("thread_due_ack"), due.acknowledgeBy);
    if (facts.feedback) row("feedback", t("thread_due_feedback_done"), facts.feedback);
    else row("feedback-by", t("thread_due_feedback"), due.feedbackBy);
  }
  if (facts.closed) {
    row("closed", t("thread_closed_on"), facts.closed);
    if (organisation) row("deleted-from", t("thread_deleted_on"), deletedFrom(facts.closed, organisation.retention_days));
  }
  $("thread-dates-list").replaceChildren(...rows);
}

function renderClosure(facts, organisation) {
  $("thread-closed").hidden = !facts.closed;
  if (!facts.closed) return;
  $("thread-closed-text").textContent = organisation
    ? t("thread_after_closure", {
      closed: formatDay(facts.closed),
      deleted: formatDay(deletedFrom(facts.closed, organisation.retention_days)),
    })
    : t("thread_after_closure_unknown", { closed: formatDay(facts.closed) });
}

/** Aftercare (once closed) and support contacts, as the organisation configured them: text only. */
function renderAftercare(facts, organisation) {
  const name = organisation?.name ?? "";
  const list = (lines) => el("ul", {}, lines.map((line) => el("li", { text: line })));
  const parts = [];
  if (facts.closed) {
    if (organisation?.aftercare?.length) {
      parts.push(el("p", { text: t("thread_aftercare_intro", { name }) }), list(organisation.aftercare));
    } else {
      parts.push(el("p", { text: t("thread_aftercare_none") }));
    }
  }
  if (organisation?.support?.length) {
    parts.push(el("p", { text: t("thread_support_intro", { name }) }), list(organisation.support));
  }
  $("thread-aftercare-body").replaceChildren(...parts);
  $("thread-aftercare").hidden = parts.length === 0;
}

// -------------------------------------------------- §10.4 checking a thread --

/** Both reply identities: a thread may hold classical and post-quantum messages. */
const identities = () => [session.keys.replyIdentityPq, session.keys.replyIdentity];

/** Every message of the server's answer, decrypted where it can be: `{ item, message, hash }`. */
async function decryptAll() {
  const decrypted = [];
  for (const item of session.thread.messages) {
    let message = null;
    let hash = null;
    try {
      const bytes = base64ToBytes(item.message);
      hash = fileHash(bytes);
      message = await decryptMessage(bytes, identities());
    } catch {
      // one damaged message must not hide the rest of the thread
    }
    decrypted.push({ item, message, hash });
  }
  return decrypted;
}

const OPENING_KINDS = ["report", "question"];

/**
 * Whether a decrypted v2 message verifies with `key`, remembered per age
 * file and key while the thread is open: the page reads the whole thread
 * again after every message it sends, and without a JIT (Tor Browser
 * "Safer") one Ed25519 verification takes about 20 ms.
 */
function verified(hash, message, key) {
  const known = `${hash} ${key}`;
  if (!session.verified.has(known)) session.verified.set(known, verifyText(message.signed, message.sig, key));
  return session.verified.get(known);
}

/**
 * This thread's first message: a v2 report or question, number 1 with no
 * `prev`, naming the page's own thread and signed with the key derived from
 * the code. Only the code holder can make one, so wherever the server puts
 * it, it is what pins the cards.
 */
function isOpening({ message, hash }) {
  const inner = message?.v === 2 ? message.inner : null;
  return Boolean(inner) && OPENING_KINDS.includes(inner.kind) && inner.seq === 1 && inner.prev === null
    && inner.thread === session.keys.thread && verified(hash, message, session.keys.thread);
}

/**
 * Why a message of a v2 thread is not genuine (§10.4 step 2), or null when it
 * is: decrypted, signed by a pinned key (the melder's own for the melder's
 * kinds, the card of `author.id` for a reply), in this thread.
 */
function notGenuine({ message, hash }, pins) {
  if (!message) return "unreadable";
  if (message.v !== 2) return "unsigned";
  const { inner } = message;
  if (inner.thread !== session.keys.thread) return "other_thread";
  if (inner.kind === "reply") {
    const card = pins.get(inner.author.id);
    if (!card) return "unknown_author";
    return verified(hash, message, card.signing_key) ? null : "signature";
  }
  return verified(hash, message, session.keys.thread) ? null : "signature";
}

/**
 * Walks a v2 thread in the server's order (§10.4 steps 2–4, §10.5): each
 * message becomes a genuine entry or a warning in its place, with a
 * "missing" marker where a number or a `prev` says one was withheld.
 * Returns the entries to show, the genuine messages (in the form the v1
 * page used: `{ item, envelope }`, `item` rebuilt from the signed envelope),
 * the pins and what the next melder message needs.
 */
function checkThread(decrypted) {
  const opening = decrypted.find(isOpening);
  const pins = new Map(opening ? opening.message.inner.cards.map((card) => [card.id, card]) : []);
  const entries = [];
  const genuine = [];
  const shown = new Set(); // age-file hashes of the genuine messages shown so far
  const numbers = new Map(); // author → { max, seen }
  let lastHash = null;
  const missing = () => {
    if (entries.at(-1)?.type !== "missing") entries.push({ type: "missing" });
  };
  if (!opening) missing(); // the report itself is not there
  decrypted.forEach((d, at) => {
    const reason = notGenuine(d, pins);
    if (reason) {
      entries.push({ type: "forged", reason });
      return;
    }
    const { inner } = d.message;
    const reply = inner.kind === "reply";
    const author = reply ? `counsellor ${inner.author.id}` : "melder";
    const count = numbers.get(author) ?? { max: 0, seen: new Set() };
    numbers.set(author, count);
    if (count.seen.has(inner.seq)) {
      entries.push({ type: "replay" });
      return;
    }
    // A number below the highest seen, but not seen: this message belongs earlier.
    let outOfOrder = inner.seq < count.max;
    if (inner.seq > count.max + 1) missing();
    if (inner.prev !== null && !shown.has(inner.prev)) {
      if (decrypted.some((later, i) => i > at && later.hash === inner.prev)) outOfOrder = true;
      else missing();
    }
    count.seen.add(inner.seq);
    count.max = Math.max(count.max, inner.seq);
    shown.add(d.hash);
    lastHash = d.hash;
    const item = {
      ...d.item,
      author: reply ? inner.author.id : "melder",
      // A reply's day is the one its author signed, not the server's.
      day: reply ? inner.day : d.item.day,
      kind: d === opening ? "report" : reply ? "reply" : "follow-up",
      pinnedName: reply ? pins.get(inner.author.id).name : null,
    };
    genuine.push({ item, envelope: inner });
    entries.push({ type: "message", item, envelope: inner, outOfOrder });
    // §10.5: cards a pinned counsellor introduces are pinned from here on.
    // A card already pinned is never replaced by an introduction.
    for (const card of inner.introduces ?? []) if (!pins.has(card.id)) pins.set(card.id, card);
  });
  return {
    entries,
    genuine,
    pins,
    opening: opening?.message.inner ?? null,
    melderSeq: numbers.get("melder")?.max ?? 0,
    lastHash,
  };
}

/** Why a message is not genuine, as the melder reads it. */
const FORGED_TEXTS = {
  unreadable: "thread_forged_unreadable",
  unsigned: "thread_forged_unsigned",
  other_thread: "thread_forged_other_thread",
  unknown_author: "thread_forged_unknown_author",
  signature: "thread_forged_signature",
};

/** A warning in a message's place: a heading and what it means; nothing from the message itself. */
function warningItem(kind, reason) {
  const texts = {
    forged: ["thread_forged_heading", FORGED_TEXTS[reason]],
    replay: ["thread_replay_heading", "thread_replay_text"],
    missing: ["thread_missing_heading", "thread_missing_text"],
  }[kind];
  return el("li", {}, [el("article", { className: `message message-warning message-${kind}` }, [
    el("h4", { className: "message-meta" }, [el("strong", { text: t(texts[0]) })]),
    el("p", { text: t(texts[1]) }),
  ])]);
}

/**
 * The counsellors a reply introduces (§10.5): name, organisation, kind and
 * fingerprint (§10.1, computed here from the signed card) of each new card,
 * so the melder can compare it with the organisation's published sheet.
 */
function introduction(cards) {
  return el("div", { className: "message-introduction" }, [
    el("p", { className: "message-attachments-title", text: t("thread_introduces") }),
    el("ul", {}, cards.map((card) => el("li", {}, [
      el("span", { text: card.name }),
      ` · `,
      el("span", { text: card.organisation, attrs: { lang: typeof card.lang === "string" ? card.lang : "" } }),
      ` · ${t(card.kind === "internal" ? "thread_introduces_internal" : "thread_introduces_external")} · `,
      `${t("report_fingerprint_label")}: `,
      el("span", { className: "fingerprint", text: cardFingerprint(card), attrs: { translate: "no" } }),
    ]))),
  ]);
}

async function render() {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  const decrypted = await decryptAll();
  // A v2 thread: its signed first message is here, or its first readable
  // message is v2 (then the first was withheld). Else a v1 thread, read as before.
  const firstReadable = decrypted.find(({ message }) => message);
  const v2 = decrypted.some(isOpening) || firstReadable?.message.v === 2;
  let opened;
  let warnings = 0;
  if (v2) {
    const checked = checkThread(decrypted);
    session.v2 = checked;
    opened = checked.genuine;
    const answeredUpTo = opened.findLastIndex(({ item }) => item.author !== "melder");
    $("messages").replaceChildren(...checked.entries.map((entry) => {
      if (entry.type !== "message") {
        warnings++;
        return warningItem(entry.type, entry.reason);
      }
      const notes = [];
      if (entry.outOfOrder) {
        warnings++;
        notes.push(el("p", { className: "message-warning-note", text: t("thread_out_of_order") }));
      }
      const at = opened.findIndex(({ item }) => item === entry.item);
      return messageItem(entry.item, entry.envelope, at < answeredUpTo, notes);
    }));
  } else {
    session.v2 = null;
    // v1: everything as before. A v2 message here cannot be checked (nothing is pinned).
    opened = decrypted.map(({ item, message }) => ({ item, envelope: message?.v === 1 ? message.envelope : null }));
    const answeredUpTo = opened.findLastIndex(({ item }) => item.author !== "melder");
    $("messages").replaceChildren(...opened.map(({ item, envelope }, at) => messageItem(item, envelope, at < answeredUpTo)));
  }
  $("thread-v1-note").hidden = v2;
  $("thread-warnings").hidden = warnings === 0;
  $("thread-warnings-text").textContent = warnings ? t("thread_warnings_text", { count: warnings }) : "";
  $("thread-due-note").textContent = t(v2 ? "thread_due_note_v2" : "thread_due_note");
  const facts = caseFacts(opened);
  const organisation = caseOrganisation();
  session.closed = Boolean(facts.closed);
  renderDates(facts, organisation);
  renderClosure(facts, organisation);
  renderAftercare(facts, organisation);
  $("thread-print-title").textContent = t("thread_print_title", { day: formatDay(new Date().toISOString().slice(0, 10)) });
  const steps = statusSteps(opened);
  $("case-status").replaceChildren(...steps.map((step, at) => statusItem(step, at === steps.length - 1)));
  const ids = caseCounsellorIds();
  const names = ids.map(counsellorName).join(", ");
  $("thread-counsellors").textContent = ids.length === 1
    ? t("thread_counsellor", { names }) : t("thread_counsellors", { names });
  showEvaluation(opened);
  const question = isOpenQuestion(opened);
  // The counsellors the melder chose, from the question itself (what the
  // melder's own page encrypted), not from the server's answer.
  const asked = question ? opened.find(({ item }) => item.author === "melder").envelope : null;
  session.questionCounsellors = asked?.counsellors ?? null;
  session.questionCards = asked?.cards ?? null;
  $("question-note").hidden = !question;
  $("thread-heading").textContent = t(question ? "thread_messages_heading_question" : "thread_messages_heading");
  if (!question) $("followup-as-report").checked = false;
  $("thread").hidden = false;
}

// -------------------------------------------------------------- follow-up --

/**
 * Seals a melder's message. In a v2 thread it is signed with the key derived
 * from the code, numbered after the melder's last message and names the
 * last genuine message shown (§10.2, §10.4); a report made from a question
 * pins the question's cards. In a v1 thread, a v1 envelope as before (§10.6).
 */
async function sealMelderMessage(fields, recipients) {
  if (!session.v2) return encrypt(buildEnvelope(fields), recipients);
  const inner = buildInner({
    ...fields,
    thread: session.keys.thread,
    seq: session.v2.melderSeq + 1,
    prev: session.v2.lastHash,
    cards: fields.kind === "report" ? session.questionCards : undefined,
  });
  return encryptSigned(signInner(inner, session.keys.melderSeed), recipients);
}

async function prepareFollowUp() {
  const text = $("followup-text").value;
  const files = followupFiles();
  await loadLimits();
  const fileError = checkFiles(files);
  fieldError("followup-attachments", fileError);
  if (!text.trim() && files.length === 0) {
    fieldError("followup-text", t("report_error_text"));
    $("followup-text").focus();
    return false;
  }
  if (fileError) {
    $("followup-attachments").focus();
    return false;
  }
  const recipients = [...caseRecipients(), replyRecipientFor(session.keys, caseRecipients())];
  let sent = { attachments: [], uploads: [] };
  if (files.length) {
    lockFollowUp(true);
    sent = await sendAttachments(files, recipients, "followup-");
  }
  status("followup", t("report_status_encrypting"), { fraction: null });
  // Turning a question into a report: this message is the report, with the
  // report's fields (protocol.md §3), in the same thread.
  const asReport = Boolean(session.questionCounsellors) && $("followup-as-report").checked;
  const sealed = await sealMelderMessage(asReport
    ? {
      kind: "report", text, lang, attachments: sent.attachments,
      // v1 kept its classical reply recipient here; v2 takes the one of the pinned keys' kind.
      replyRecipient: session.v2 ? recipients.at(-1) : session.keys.replyRecipient,
      counsellors: session.questionCounsellors,
    }
    : { kind: "follow-up", text, lang, attachments: sent.attachments }, recipients);
  const request = { lookup_key: session.keys.lookupKey, message: bytesToBase64(sealed) };
  if (sent.uploads.length) request.uploads = sent.uploads;
  pendingFollowUp = { request: JSON.stringify(request), uploads: sent.uploads, asReport };
  return true;
}

/** The follow-up's fields read-only (while attachments go out, or an outcome is unknown) or editable. */
function lockFollowUp(locked) {
  $("followup-text").readOnly = locked;
  $("followup-as-report").disabled = locked;
  $("followup-attachments").disabled = locked;
}

/** While an outcome is unknown the text is frozen and only the retry sends it. */
function freezeFollowUp(frozen) {
  const hiding = $(frozen ? "followup-submit" : "followup-retry");
  const showing = $(frozen ? "followup-retry" : "followup-submit");
  const hadFocus = document.activeElement === hiding;
  lockFollowUp(frozen);
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
    await postFollowUp(pendingFollowUp.request, (f) => status("followup", t("report_status_sending"), { fraction: f }));
    const reported = pendingFollowUp.asReport;
    pendingFollowUp = null;
    freezeFollowUp(false);
    $("followup-form").reset();
    $("followup-attachment-list").replaceChildren();
    session.thread = await getThread(session.keys.lookupKey);
    await render();
    const said = reported ? "followup_reported" : session.closed ? "followup_closed_sent" : "followup_sent";
    status("followup", t(said), { kind: "success" });
    // The new message pushed the form down: keep the button and its news in sight.
    $("followup-status").scrollIntoView({ block: "nearest" });
  } catch (error) {
    if (error instanceof UploadCancelled) {
      lockFollowUp(false);
      status("followup", t("upload_cancelled"));
      if (session) $("followup-submit").focus(); // not when the thread was closed meanwhile
    } else if (error instanceof ApiError && error.uncertain && pendingFollowUp) {
      freezeFollowUp(true);
      status("followup", t("report_error_uncertain"), { kind: "error" });
    } else {
      // Refused: the uploads it named are deleted; a new try sends them afresh.
      for (const upload of pendingFollowUp?.uploads ?? []) uploadApi().cancel(upload).catch(() => {});
      pendingFollowUp = null;
      freezeFollowUp(false);
      const message = error.message === "no-counsellor-key" ? t("followup_error_no_counsellor") : sendFailureMessage(error);
      status("followup", message, { kind: "error" });
    }
  } finally {
    busy = false;
    setBusy(["followup-submit", "followup-retry"], false);
  }
}

// ------------------------------------------------------------- evaluation --

const SCALES = ["process", "heard"];
const scaleInputs = (scale) => [...$(`evaluation-${scale}`).querySelectorAll("input[type=radio]")];
const scaleValue = (scale) => Number(scaleInputs(scale).find((input) => input.checked)?.value ?? 0);

/** Shows every error of the evaluation form at once, with a summary; true if all is well. */
function checkEvaluation() {
  const text = $("evaluation-text").value;
  const errors = {
    "evaluation-process": scaleValue("process") ? null : t("evaluation_error_process"),
    "evaluation-heard": scaleValue("heard") ? null : t("evaluation_error_heard"),
    "evaluation-text": Array.from(text).length > MAX_TEXT ? t("report_error_text_long", { max: MAX_TEXT }) : null,
  };
  for (const [id, message] of Object.entries(errors)) fieldError(id, message);
  // A scale's error takes focus to its first answer.
  return errorSummary("evaluation-error-summary", errors, (id) => (id === "evaluation-text" ? $(id) : $(`${id}-1`)));
}

/** Hides a field's error, and the summary once it lists nothing. */
function clearEvaluationError(id) {
  fieldError(id, null);
  const link = $("evaluation-error-summary-list").querySelector(`a[href="#${id}"]`);
  if (link) link.parentElement.remove();
  if (!$("evaluation-error-summary-list").children.length) $("evaluation-error-summary").hidden = true;
}

async function prepareEvaluation() {
  const recipients = caseRecipients();
  status("evaluation", t("report_status_encrypting"), { fraction: null });
  // Sealed like a follow-up: to the case's counsellors and to the melder.
  const sealed = await sealMelderMessage({
    kind: "evaluation",
    text: $("evaluation-text").value,
    lang,
    evaluation: { process: scaleValue("process"), heard: scaleValue("heard") },
  }, [...recipients, replyRecipientFor(session.keys, recipients)]);
  pendingEvaluation = JSON.stringify({ lookup_key: session.keys.lookupKey, message: bytesToBase64(sealed) });
}

/** While an outcome is unknown the answers are frozen and only the retry sends them. */
function freezeEvaluation(frozen) {
  const hiding = $(frozen ? "evaluation-submit" : "evaluation-retry");
  const showing = $(frozen ? "evaluation-retry" : "evaluation-submit");
  const hadFocus = document.activeElement === hiding;
  for (const scale of SCALES) for (const input of scaleInputs(scale)) input.disabled = frozen;
  $("evaluation-text").readOnly = frozen;
  hiding.hidden = true;
  showing.hidden = false;
  if (hadFocus) showing.focus();
}

function resetEvaluation() {
  pendingEvaluation = null;
  $("evaluation-form").reset();
  for (const id of ["evaluation-process", "evaluation-heard", "evaluation-text"]) clearEvaluationError(id);
  freezeEvaluation(false);
  status("evaluation", "");
}

async function sendEvaluation() {
  if (busy || !session) return;
  busy = true;
  setBusy(["evaluation-submit", "evaluation-retry"], true);
  try {
    if (!pendingEvaluation) await prepareEvaluation();
    status("evaluation", t("report_status_sending"), { fraction: 0 });
    await postFollowUp(pendingEvaluation, (f) => status("evaluation", t("report_status_sending"), { fraction: f }));
    resetEvaluation();
    session.thread = await getThread(session.keys.lookupKey);
    await render();
    focusHeading("evaluation-thanks-heading");
  } catch (error) {
    if (error instanceof ApiError && error.uncertain) {
      freezeEvaluation(true);
      status("evaluation", t("report_error_uncertain"), { kind: "error" });
    } else {
      pendingEvaluation = null;
      freezeEvaluation(false);
      const message = error instanceof ApiError ? apiErrorMessage(error)
        : error.message === "no-counsellor-key" ? t("followup_error_no_counsellor") : t("report_error_encrypt");
      status("evaluation", message, { kind: "error" });
    }
  } finally {
    busy = false;
    setBusy(["evaluation-submit", "evaluation-retry"], false);
  }
}

function closeThread() {
  // Attachments still going out are stopped and deleted first.
  if (!$("followup-upload").hidden) $("followup-upload-cancel").click();
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  session?.keys.melderSeed.fill(0); // the signing key goes with the code
  session = null;
  pendingFollowUp = null;
  $("messages").replaceChildren();
  $("case-status").replaceChildren();
  $("followup-form").reset();
  freezeFollowUp(false);
  resetEvaluation();
  $("thread").hidden = true;
  $("code").value = "";
  status("", t("thread_closed"));
  $("code").focus();
}

// ----------------------------------------------------------------- events --

$("code-form").addEventListener("submit", openThread);
showLimits("followup-attachments-limits");
$("code").addEventListener("input", () => fieldError("code", null));
$("followup-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if ($("followup-retry").hidden) sendFollowUp();
});
$("followup-retry").addEventListener("click", sendFollowUp);
$("followup-text").addEventListener("input", () => fieldError("followup-text", null));
$("close-thread").addEventListener("click", closeThread);
$("thread-print").addEventListener("click", () => window.print());
$("evaluation-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if ($("evaluation-retry").hidden && checkEvaluation()) sendEvaluation();
});
$("evaluation-retry").addEventListener("click", sendEvaluation);
$("evaluation-text").addEventListener("input", () => clearEvaluationError("evaluation-text"));
// Group names only now, with the form's submit handled above: the template
// has none, so without this script the answers could never be posted.
for (const scale of SCALES) {
  for (const input of scaleInputs(scale)) {
    input.name = `evaluation-${scale}`;
    input.addEventListener("change", () => clearEvaluationError(`evaluation-${scale}`));
  }
}

window.addEventListener("beforeunload", (event) => {
  const unsentEvaluation = !$("evaluation").hidden
    && ($("evaluation-text").value.trim() || SCALES.some((scale) => scaleValue(scale)));
  if (session && ($("followup-text").value.trim() || followupFiles().length || unsentEvaluation)) {
    event.preventDefault();
    event.returnValue = "";
  }
});
