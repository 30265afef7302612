// The Meldkluis protocol, version 1, as written in docs/protocol.md: retrieval
// code (§1), derivations (§2), envelopes (§3) and streamed attachments (§3a);
// and of the version 2 draft (§9) the post-quantum hybrid keys
// (mlkem768x25519): the hybrid reply identity, and files of one kind only;
// and protocol v2's signed envelope (§10): the melder's signing key, signed
// messages, pinned cards.
// No DOM here: the same module
// runs in the browser and under `node --test` against the shared vectors in
// tests/vectors/, which the Rust side in src/format/ must match byte for byte.

import {
  Decrypter,
  Encrypter,
  bech32,
  ed25519,
  hkdf,
  identityToRecipient,
  sha256,
} from "../vendor/age.js";

const ascii = new TextEncoder();

// ---------------------------------------------------------------- §1 code --

export const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
export const DATA_SYMBOLS = 22;
export const CODE_LENGTH = 24;
const CHECK_MODULUS = 1021;

/**
 * A typed retrieval code that cannot be read. `code` is `invalid_character`
 * (with `character` and its 1-based `position` among the characters left
 * after removing separators), `wrong_length` (with `length`) or
 * `check_failed`.
 */
export class CodeError extends Error {
  constructor(code, details = {}) {
    super(codeErrorMessage(code, details));
    this.name = "CodeError";
    this.code = code;
    Object.assign(this, details);
  }
}

function codeErrorMessage(code, { character, position, length }) {
  switch (code) {
    case "invalid_character":
      return `character ${JSON.stringify(character)} at position ${position} is not part of a code`;
    case "wrong_length":
      return `a code has ${CODE_LENGTH} characters, this has ${length}`;
    default:
      return "a character is wrong or two neighbours are swapped";
  }
}

/** c = Σ (i+1)·v[i] mod 1021 over the 22 data symbol values. */
function checkValue(values) {
  let sum = 0;
  for (let i = 0; i < DATA_SYMBOLS; i++) sum += (i + 1) * values[i];
  return sum % CHECK_MODULUS;
}

/** The canonical code for 22 random bytes (each `& 31` is one symbol). */
export function codeFromRandomBytes(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== DATA_SYMBOLS) {
    throw new TypeError(`need ${DATA_SYMBOLS} random bytes`);
  }
  const values = Array.from(bytes, (b) => b & 31);
  const check = checkValue(values);
  values.push(Math.floor(check / 32), check % 32);
  return values.map((v) => ALPHABET[v]).join("");
}

/** A fresh canonical code with 110 bits from the platform's CSPRNG. */
export function generateCode() {
  const bytes = crypto.getRandomValues(new Uint8Array(DATA_SYMBOLS));
  const code = codeFromRandomBytes(bytes);
  bytes.fill(0); // the code is the secret; leave no spare copy of its source
  return code;
}

/** Display form: six groups of four joined by "-". */
export function formatCode(canonical) {
  return canonical.match(/.{1,4}/g).join("-");
}

// "Spaces, tabs, newlines": every Unicode White_Space character (what Rust's
// char::is_whitespace skips, so both sides read pasted codes alike), and "-".
const WHITE_SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/;
const isSeparator = (character) => character === "-" || WHITE_SPACE.test(character);
const FORGIVING = { O: "0", I: "1", L: "1" };

/**
 * Reads a typed code (protocol.md §1, steps 1–5) and returns the canonical
 * form, or throws a CodeError. Upper-casing is ASCII-only on purpose: Unicode
 * case mapping would turn lookalikes such as "ı" (dotless i) into valid
 * symbols and "ß" into two characters.
 */
export function parseCode(input) {
  if (typeof input !== "string") throw new TypeError("a code is read from a string");
  const values = [];
  let position = 0;
  // for…of walks code points, so an emoji counts as one character.
  for (const typed of input) {
    if (isSeparator(typed)) continue;
    position++;
    let symbol = typed >= "a" && typed <= "z" ? typed.toUpperCase() : typed;
    symbol = FORGIVING[symbol] ?? symbol;
    const value = symbol.length === 1 ? ALPHABET.indexOf(symbol) : -1;
    if (value < 0) throw new CodeError("invalid_character", { character: typed, position });
    values.push(value);
  }
  if (values.length !== CODE_LENGTH) {
    throw new CodeError("wrong_length", { length: values.length });
  }
  const check = checkValue(values);
  if (values[22] !== Math.floor(check / 32) || values[23] !== check % 32) {
    throw new CodeError("check_failed");
  }
  return values.map((v) => ALPHABET[v]).join("");
}

// --------------------------------------------------------- §2 derivations --

const SALT = ascii.encode("meldkluis-v1");
const INFO_LOOKUP = ascii.encode("meldkluis-v1 lookup-key");
const INFO_REPLY = ascii.encode("meldkluis-v1 reply-identity");
// Protocol v2 (draft): the seed of the post-quantum hybrid reply identity.
const INFO_REPLY_PQ = ascii.encode("meldkluis-v2 reply-identity-pq");
// Protocol v2 (§10.3): the seed of the melder's Ed25519 signing key.
const INFO_MELDER_SIGNING = ascii.encode("meldkluis-v2 melder-signing-key");

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Everything the browser derives from a code: the lookup key it sends to the
 * server (hex), the hash the server stores (hex, for tests), the reply
 * identity (AGE-SECRET-KEY-1…) and its recipient (age1…).
 */
export async function deriveKeys(code) {
  const ikm = ascii.encode(parseCode(code));
  const lookupKey = hkdf(sha256, ikm, SALT, INFO_LOOKUP, 32);
  const replySecret = hkdf(sha256, ikm, SALT, INFO_REPLY, 32);
  const replySeedPq = hkdf(sha256, ikm, SALT, INFO_REPLY_PQ, 32);
  // Kept as bytes: ed25519.sign takes the seed, and it signs every message
  // of the thread. Like the identity strings it lives as long as the page
  // holds the thread open.
  const melderSeed = hkdf(sha256, ikm, SALT, INFO_MELDER_SIGNING, 32);
  // Bech32 (not Bech32m), HRP "age-secret-key-", upper-cased as a whole.
  const replyIdentity = bech32
    .encode("age-secret-key-", bech32.toWords(replySecret), false)
    .toUpperCase();
  // The hybrid identity is its 32-byte seed (age's mlkem768x25519), so
  // age-encryption takes the string as it is.
  const replyIdentityPq = bech32
    .encode("age-secret-key-pq-", bech32.toWords(replySeedPq), false)
    .toUpperCase();
  replySecret.fill(0); // the identity strings are now the only copies we keep
  replySeedPq.fill(0);
  ikm.fill(0);
  const keys = {
    lookupKey: bytesToHex(lookupKey),
    lookupHash: bytesToHex(sha256(lookupKey)),
    replyIdentity,
    replyRecipient: await identityToRecipient(replyIdentity),
    replyIdentityPq,
    replyRecipientPq: await identityToRecipient(replyIdentityPq),
    melderSeed,
    // The melder's public key names the thread (§10.2 `thread`).
    thread: bytesToBase64(ed25519.getPublicKey(melderSeed)),
  };
  lookupKey.fill(0);
  return keys;
}

// ------------------------------------------------------------ §3 envelope --

export const KINDS = ["report", "question", "follow-up", "reply", "evaluation"];
export const STATUSES = ["acknowledged", "in-progress", "feedback-given", "closed"];
export const MAX_TEXT = 1_000_000;
export const MAX_CATEGORY = 200;
export const MAX_CONTACT = 2_000;
export const MAX_ATTACHMENTS = 20;
export const MAX_COUNSELLORS = 10; // not in protocol.md §3; the Rust side's limit
const MAX_ATTACHMENT_NAME = 255; // ditto, for attachment name and type
export const MAX_PLAINTEXT = 16 * 1024 * 1024;
const MIB = 1024 * 1024;
const MIN_BUCKET = 4096;
const COUNSELLOR_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;
const ENVELOPE_FIELDS = [
  "v", "kind", "text", "lang", "category", "contact",
  "reply_recipient", "counsellors", "author", "attachments", "status", "evaluation",
];

/** A value that breaks a rule of protocol.md §3; `reason` names the rule. */
export class EnvelopeError extends Error {
  constructor(reason) {
    super(`invalid envelope: ${reason}`);
    this.name = "EnvelopeError";
    this.reason = reason;
  }
}

/**
 * Length in Unicode scalar values (what Rust's `chars().count()` gives), or -1
 * for a string with a lone surrogate, which UTF-8 and the Rust side cannot carry.
 */
function scalarLength(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return -1;
      i++;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return -1;
    }
    n++;
  }
  return n;
}

// Text of only white space counts as empty, as Rust's str::trim sees it.
function isBlank(text) {
  for (const character of text) if (!WHITE_SPACE.test(character)) return false;
  return true;
}

function isAbsent(value) {
  return value === undefined || value === null;
}

function checkString(value, field, max, { optional = false, min = 0 } = {}) {
  if (optional && isAbsent(value)) return;
  if (typeof value !== "string") throw new EnvelopeError(`${field} must be a string`);
  const length = scalarLength(value);
  if (length < 0) throw new EnvelopeError(`${field} is not valid Unicode`);
  if (length < min || length > max) {
    throw new EnvelopeError(`${field} must have ${min} to ${max} characters`);
  }
}

function checkOnlyFields(object, allowed, what) {
  if (typeof object !== "object" || object === null || Array.isArray(object)) {
    throw new EnvelopeError(`${what} must be an object`);
  }
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw new EnvelopeError(`unknown field ${what}.${key}`);
  }
}

/** True for an `age1…` X25519 recipient (32-byte Bech32 key, lower case). */
/** Whether `value` is a post-quantum hybrid recipient (age1pq1…, 1216 bytes). */
export function isHybridRecipient(value) {
  if (typeof value !== "string" || !value.startsWith("age1pq1")) return false;
  try {
    const { prefix, words } = bech32.decode(value, false);
    return prefix === "age1pq" && bech32.fromWords(words).length === 1216;
  } catch {
    return false;
  }
}

/**
 * The reply recipient a message to `counsellorRecipients` carries: the
 * post-quantum one when every counsellor's key is post-quantum, else the
 * classical one. age never puts both kinds in one file (protocol.md §3).
 */
export function replyRecipientFor(keys, counsellorRecipients) {
  const allPq = counsellorRecipients.length > 0 && counsellorRecipients.every(isHybridRecipient);
  return allPq ? keys.replyRecipientPq : keys.replyRecipient;
}

/** Whether the chosen counsellors' keys can share one file (all classical or all post-quantum). */
export function compatibleRecipients(recipients) {
  return recipients.every(isHybridRecipient) || !recipients.some(isHybridRecipient);
}

export function isX25519Recipient(value) {
  if (typeof value !== "string" || !value.startsWith("age1")) return false;
  try {
    const { prefix, words } = bech32.decode(value, 90);
    return prefix === "age" && bech32.fromWords(words).length === 32;
  } catch {
    return false;
  }
}

/**
 * A language tag as pages use it in `lang` (BCP 47, the common shape; the
 * Rust side's `valid_lang`): "nl", "en-GB", at most 35 characters.
 */
export const LANGUAGE_TAG = /^[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$/;
export const isLanguageTag = (value) => typeof value === "string" && value.length <= 35 && LANGUAGE_TAG.test(value);

const UPLOAD_ID = /^[0-9a-f]{32}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** One attachment in either form of §3: inline `{name, type, data}` or streamed (§3a). */
function checkAttachment(attachment, i) {
  const what = `attachments[${i}]`;
  const streamed = typeof attachment === "object" && attachment !== null && !("data" in attachment);
  checkOnlyFields(attachment, streamed ? ["name", "type", "size", "upload", "head_sha256"] : ["name", "type", "data"], what);
  checkString(attachment.name, `${what}.name`, MAX_ATTACHMENT_NAME);
  checkString(attachment.type, `${what}.type`, MAX_ATTACHMENT_NAME);
  if (!streamed) {
    if (!isBase64(attachment.data)) throw new EnvelopeError(`${what}.data must be standard base64`);
    return;
  }
  if (!Number.isSafeInteger(attachment.size) || attachment.size < 0) {
    throw new EnvelopeError(`${what}.size must be a whole number of bytes below 2^53`);
  }
  if (typeof attachment.upload !== "string" || !UPLOAD_ID.test(attachment.upload)) {
    throw new EnvelopeError(`${what}.upload must be 32 lower-case hex characters`);
  }
  if (typeof attachment.head_sha256 !== "string" || !SHA256_HEX.test(attachment.head_sha256)) {
    throw new EnvelopeError(`${what}.head_sha256 must be 64 lower-case hex characters`);
  }
}

/** Throws an EnvelopeError unless `envelope` follows every rule of §3 (a v1 envelope). */
export function validateEnvelope(envelope) {
  checkOnlyFields(envelope, ENVELOPE_FIELDS, "envelope");
  if (envelope.v !== 1) throw new EnvelopeError("v must be 1");
  return checkEnvelopeRules(envelope);
}

/** The rules of §3 that a v1 envelope and a v2 inner envelope share. */
function checkEnvelopeRules(envelope) {
  const e = envelope;
  if (!KINDS.includes(e.kind)) throw new EnvelopeError("unknown kind");
  checkString(e.text, "text", MAX_TEXT);
  if (!isAbsent(e.lang) && !isLanguageTag(e.lang)) throw new EnvelopeError("lang is not a language tag");
  checkString(e.category, "category", MAX_CATEGORY, { optional: true });
  checkString(e.contact, "contact", MAX_CONTACT, { optional: true });

  // Absent attachments read as none; we always write the array.
  const attachments = isAbsent(e.attachments) ? [] : e.attachments;
  if (!Array.isArray(attachments)) throw new EnvelopeError("attachments must be an array");
  if (attachments.length > MAX_ATTACHMENTS) throw new EnvelopeError("too many attachments");
  attachments.forEach(checkAttachment);
  const uploads = attachments.filter((a) => "upload" in a).map((a) => a.upload);
  if (new Set(uploads).size !== uploads.length) throw new EnvelopeError("two attachments name the same upload");
  if (isBlank(e.text) && attachments.length === 0 && e.kind !== "evaluation") {
    throw new EnvelopeError("text may be empty only with attachments");
  }

  // A question opens a thread exactly like a report (§3: advice questions).
  if (e.kind === "report" || e.kind === "question") {
    if (!isX25519Recipient(e.reply_recipient) && !isHybridRecipient(e.reply_recipient)) {
      throw new EnvelopeError("a report needs an age1… reply_recipient");
    }
    const n = Array.isArray(e.counsellors) ? e.counsellors.length : 0;
    if (n === 0 || n > MAX_COUNSELLORS) {
      throw new EnvelopeError(`a report names 1 to ${MAX_COUNSELLORS} counsellors`);
    }
    for (const id of e.counsellors) {
      if (typeof id !== "string" || !COUNSELLOR_ID.test(id)) {
        throw new EnvelopeError("counsellors must be counsellor ids");
      }
    }
  } else {
    if (!isAbsent(e.reply_recipient)) throw new EnvelopeError("reply_recipient is for reports only");
    // Rust writes an empty list here, so [] reads as absent.
    const none = isAbsent(e.counsellors) || (Array.isArray(e.counsellors) && e.counsellors.length === 0);
    if (!none) throw new EnvelopeError("counsellors is for reports only");
  }

  if (e.kind === "reply") {
    checkOnlyFields(e.author, ["id", "name"], "author");
    if (typeof e.author.id !== "string" || !COUNSELLOR_ID.test(e.author.id)) {
      throw new EnvelopeError("author.id must be a counsellor id");
    }
    checkString(e.author.name, "author.name", Infinity, { min: 1 });
  } else if (!isAbsent(e.author)) {
    throw new EnvelopeError("author is for replies only");
  }

  if (!isAbsent(e.status)) {
    if (e.kind !== "reply") throw new EnvelopeError("only a reply sets a status");
    if (!STATUSES.includes(e.status)) throw new EnvelopeError("unknown status");
  }
  const score = (n) => Number.isInteger(n) && n >= 1 && n <= 5;
  if (e.kind === "evaluation") {
    checkOnlyFields(e.evaluation, ["process", "heard"], "evaluation");
    if (!score(e.evaluation.process) || !score(e.evaluation.heard)) {
      throw new EnvelopeError("an evaluation has two scores from 1 to 5");
    }
  } else if (!isAbsent(e.evaluation)) {
    throw new EnvelopeError("only an evaluation has scores");
  }
  return envelope;
}

/**
 * Builds and validates an envelope from the browser's form values, with the
 * fields in the order of protocol.md §3. Empty optional strings are left out.
 */
export function buildEnvelope({
  kind, text = "", lang, category, contact, replyRecipient, counsellors, attachments = [], evaluation,
}) {
  const envelope = { v: 1, kind, text };
  if (lang) envelope.lang = lang;
  if (category) envelope.category = category;
  if (contact) envelope.contact = contact;
  if (kind === "report" || kind === "question") {
    envelope.reply_recipient = replyRecipient;
    envelope.counsellors = counsellors;
  }
  envelope.attachments = attachments;
  if (kind === "evaluation") envelope.evaluation = evaluation;
  return validateEnvelope(envelope);
}

/**
 * Bucket size for a JSON of `length` bytes: the smallest power of two that is
 * at least 4096 and at least `length`, up to 1 MiB; above that the next
 * multiple of 1 MiB; nothing above 16 MiB.
 */
export function paddedLength(length) {
  if (!Number.isInteger(length) || length < 0) throw new RangeError("bad length");
  if (length > MAX_PLAINTEXT) throw new RangeError("plaintext larger than 16 MiB");
  if (length > MIB) return Math.ceil(length / MIB) * MIB;
  let bucket = MIN_BUCKET;
  while (bucket < length) bucket *= 2;
  return bucket;
}

/** The plaintext to encrypt: UTF-8 JSON followed by spaces up to its bucket. */
export function padEnvelope(envelope) {
  const json = new TextEncoder().encode(JSON.stringify(validateEnvelope(envelope)));
  const padded = new Uint8Array(paddedLength(json.length)).fill(0x20);
  padded.set(json);
  return padded;
}

/** Reads a decrypted plaintext (JSON plus trailing spaces) into an envelope. */
export function parseEnvelope(bytes) {
  let value;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new EnvelopeError("not UTF-8 JSON");
  }
  return validateEnvelope(value);
}

// ------------------------------------------- §10 protocol v2: signed envelope --

/** What every signature of a v2 message covers before the signed bytes (§10.2). */
const SIGNATURE_CONTEXT = ascii.encode("meldkluis-message-v2\n");
const V2_FIELDS = [...ENVELOPE_FIELDS, "thread", "seq", "prev", "cards", "day", "introduces", "forwarded"];
const CARD_FIELDS = [
  "format", "v", "id", "name", "organisation", "org", "kind", "description", "lang", "age_recipient", "signing_key",
];
const CONTROL = /\p{Cc}/u;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Standard base64 of exactly `length` bytes, or null. */
function base64OfLength(value, length) {
  if (!isBase64(value)) return null;
  const bytes = base64ToBytes(value);
  return bytes.length === length ? bytes : null;
}

/** A real calendar day `YYYY-MM-DD` (the Rust side's `Day`). */
export function isDay(value) {
  const match = typeof value === "string" && DAY.exec(value);
  if (!match) return false;
  const [year, month, day] = match.slice(1).map(Number);
  const date = new Date(Date.UTC(year, month - 1, day));
  return year >= 1 && date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** A card text (name, organisation, description): `min`–`max` characters, no control characters (§5). */
function checkCardText(value, field, min, max) {
  checkString(value, field, max, { min });
  if (CONTROL.test(value)) throw new EnvelopeError(`${field} has a control character`);
}

/**
 * Throws an EnvelopeError unless `card` is a counsellor card object of §5:
 * the exact JSON a report pins (§10.2 `cards`) and an introduction carries.
 */
export function validateCard(card, what = "card") {
  checkOnlyFields(card, CARD_FIELDS, what);
  if (card.format !== "meldkluis-card" || card.v !== 1) throw new EnvelopeError(`${what} is not a meldkluis-card of version 1`);
  if (typeof card.id !== "string" || !COUNSELLOR_ID.test(card.id)) throw new EnvelopeError(`${what}.id is not a counsellor id`);
  checkCardText(card.name, `${what}.name`, 1, 200);
  checkCardText(card.organisation, `${what}.organisation`, 1, 200);
  if (card.org !== undefined && (typeof card.org !== "string" || !COUNSELLOR_ID.test(card.org))) {
    throw new EnvelopeError(`${what}.org is not an organisation id`);
  }
  if (!["internal", "external"].includes(card.kind)) throw new EnvelopeError(`${what}.kind must be internal or external`);
  if (card.description !== undefined) checkCardText(card.description, `${what}.description`, 0, 1000);
  if (!isAbsent(card.lang) && !isLanguageTag(card.lang)) throw new EnvelopeError(`${what}.lang is not a language tag`);
  if (!isX25519Recipient(card.age_recipient) && !isHybridRecipient(card.age_recipient)) {
    throw new EnvelopeError(`${what}.age_recipient is not an age recipient`);
  }
  const key = base64OfLength(card.signing_key, 32);
  if (!key || !isSigningKey(key)) throw new EnvelopeError(`${what}.signing_key is not an Ed25519 public key`);
  return card;
}

/** Whether 32 bytes are an Ed25519 public key a signature can verify with (strict, RFC 8032). */
function isSigningKey(bytes) {
  try {
    return ed25519.utils.isValidPublicKey(bytes, false);
  } catch {
    return false;
  }
}

/** Absent or `[]`: Rust reads both as an empty list (and writes neither). */
const isEmptyList = (value) => value === undefined || (Array.isArray(value) && value.length === 0);

function checkCards(cards, what, max) {
  if (!Array.isArray(cards) || cards.length === 0 || cards.length > max) {
    throw new EnvelopeError(`${what} must list 1 to ${max} cards`);
  }
  cards.forEach((card, i) => validateCard(card, `${what}[${i}]`));
  const ids = cards.map((card) => card.id);
  if (new Set(ids).size !== ids.length) throw new EnvelopeError(`${what} names a counsellor twice`);
}

/**
 * Throws an EnvelopeError unless `inner` is a valid v2 inner envelope: the
 * rules of §3 with `"v": 2`, plus the fields of §10.2. Unknown fields are
 * refused, as in v1.
 */
export function validateInner(inner) {
  checkOnlyFields(inner, V2_FIELDS, "envelope");
  const e = inner;
  if (e.v !== 2) throw new EnvelopeError("v must be 2");
  checkEnvelopeRules(e);
  const thread = base64OfLength(e.thread, 32);
  if (!thread || !isSigningKey(thread)) throw new EnvelopeError("thread must be the base64 of an Ed25519 public key");
  if (!Number.isSafeInteger(e.seq) || e.seq < 1) throw new EnvelopeError("seq must be a whole number from 1");
  const opening = e.kind === "report" || e.kind === "question";
  // The melder's number 1 is the report or question (src/format/signed.rs alike).
  if ((e.kind === "follow-up" || e.kind === "evaluation") && e.seq < 2) {
    throw new EnvelopeError("the melder's first message is the report");
  }
  // Only the thread's first message (a report or question, the melder's
  // number 1) names no message before it; a question turned into a report
  // is a later report and names one.
  if (e.prev === null) {
    if (!opening || e.seq !== 1) throw new EnvelopeError("only the first message has prev null");
  } else if (typeof e.prev !== "string" || !SHA256_HEX.test(e.prev)) {
    throw new EnvelopeError("prev must be 64 lower-case hex characters or null");
  } else if (opening && e.seq === 1) {
    throw new EnvelopeError("the first message has prev null");
  }
  if (opening) {
    checkCards(e.cards, "cards", MAX_COUNSELLORS);
    if (e.cards.length !== e.counsellors.length || e.cards.some((card, i) => card.id !== e.counsellors[i])) {
      throw new EnvelopeError("cards must be the cards of counsellors, in the same order");
    }
  } else if (!isEmptyList(e.cards)) {
    throw new EnvelopeError("cards is for reports and questions only");
  }
  if (e.kind === "reply") {
    if (!isDay(e.day)) throw new EnvelopeError("a reply's day must be a day YYYY-MM-DD");
    if (!isEmptyList(e.introduces)) checkCards(e.introduces, "introduces", MAX_COUNSELLORS);
    // §10.5: the melder's own messages, for the introduced counsellor.
    if (!isEmptyList(e.forwarded) && (isEmptyList(e.introduces) || !Array.isArray(e.forwarded))) {
      throw new EnvelopeError("forwarded is a list, in an introduction only");
    }
  } else {
    if (!isAbsent(e.day)) throw new EnvelopeError("day is for replies only");
    if (!isEmptyList(e.introduces) || !isEmptyList(e.forwarded)) throw new EnvelopeError("introduces is for replies only");
  }
  return inner;
}

/**
 * Builds and validates a v2 inner envelope from the page's values (the
 * fields of buildEnvelope, plus `thread`, `seq`, `prev` and, for a report or
 * question, `cards`).
 */
export function buildInner({ thread, seq, prev, cards, ...fields }) {
  const envelope = buildEnvelope(fields);
  const inner = { ...envelope, v: 2, thread, seq, prev };
  if (envelope.kind === "report" || envelope.kind === "question") inner.cards = cards;
  return validateInner(inner);
}

/** The bytes a v2 signature covers: the context line, then the signed bytes. */
function signatureMessage(signedBytes) {
  const message = new Uint8Array(SIGNATURE_CONTEXT.length + signedBytes.length);
  message.set(SIGNATURE_CONTEXT);
  message.set(signedBytes, SIGNATURE_CONTEXT.length);
  return message;
}

/** Standard base64 of the Ed25519 signature (with a 32-byte seed) over the signed text. */
export function signText(signedText, seed) {
  return bytesToBase64(ed25519.sign(signatureMessage(ascii.encode(signedText)), seed));
}

/** The public key (standard base64) of a 32-byte Ed25519 seed. */
export function publicKeyOf(seed) {
  return bytesToBase64(ed25519.getPublicKey(seed));
}

/**
 * Whether `sigB64` is a valid signature over `signedText` by the public key
 * `keyB64` (both standard base64). Strict RFC 8032 verification: small-order
 * keys and non-canonical encodings are refused.
 */
export function verifyText(signedText, sigB64, keyB64) {
  const sig = base64OfLength(sigB64, 64);
  const key = base64OfLength(keyB64, 32);
  if (!sig || !key) return false;
  try {
    return ed25519.verify(sig, signatureMessage(ascii.encode(signedText)), key, { zip215: false });
  } catch {
    return false;
  }
}

/** The outer object of a v2 message (§10.2): the inner envelope signed with a 32-byte seed. */
export function signInner(inner, seed) {
  const signed = JSON.stringify(validateInner(inner));
  return { v: 2, signed, sig: signText(signed, seed) };
}

/** Reads a v2 outer object: throws an EnvelopeError unless its shape and its inner envelope are valid. */
export function readOuter(outer) {
  checkOnlyFields(outer, ["v", "signed", "sig"], "message");
  if (outer.v !== 2) throw new EnvelopeError("v must be 2");
  if (typeof outer.signed !== "string" || scalarLength(outer.signed) < 0) {
    throw new EnvelopeError("signed must be a JSON text as a string");
  }
  if (!base64OfLength(outer.sig, 64)) throw new EnvelopeError("sig must be the base64 of 64 bytes");
  let inner;
  try {
    inner = JSON.parse(outer.signed);
  } catch {
    throw new EnvelopeError("signed is not JSON");
  }
  return { signed: outer.signed, sig: outer.sig, inner: validateInner(inner) };
}

/**
 * A decrypted plaintext (JSON plus trailing spaces) of either version:
 * `{ v: 1, envelope }`, or `{ v: 2, inner, signed, sig }` for a v2 message
 * whose shape is valid. The signature is NOT checked here: the reader does,
 * with the key it pinned (verifyText).
 */
export function parseMessage(bytes) {
  let value;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new EnvelopeError("not UTF-8 JSON");
  }
  if (typeof value === "object" && value !== null && value.v === 2) return { v: 2, ...readOuter(value) };
  return { v: 1, envelope: validateEnvelope(value) };
}

/** A v2 plaintext (outer JSON text, unpadded) verified with `keyB64`: its inner envelope, or an EnvelopeError. */
export function openSigned(bytes, keyB64) {
  const message = parseMessage(bytes);
  if (message.v !== 2) throw new EnvelopeError("not a v2 message");
  if (!verifyText(message.signed, message.sig, keyB64)) throw new EnvelopeError("the signature does not verify");
  return message.inner;
}

/** The padded plaintext of a v2 outer object. */
export function padSigned(outer) {
  const json = ascii.encode(JSON.stringify(readOuter(outer) && outer));
  const padded = new Uint8Array(paddedLength(json.length)).fill(0x20);
  padded.set(json);
  return padded;
}

/**
 * A counsellor from `GET /api/v1/counsellors` as the §5 card object a report
 * pins: the card's own fields, in the card's order, without what only the
 * API adds (`post_quantum`); `lang` only when the card has one.
 */
export function cardFromApi(c) {
  const card = {
    format: "meldkluis-card",
    v: 1,
    id: c.id,
    name: c.name,
    organisation: c.organisation,
    org: c.org,
    kind: c.kind,
    description: c.description ?? "",
  };
  if (typeof c.lang === "string") card.lang = c.lang;
  card.age_recipient = c.age_recipient;
  card.signing_key = c.signing_key;
  return validateCard(card);
}

/** Lower-case hex SHA-256 of an age file: what `prev` names (§10.2). */
export function fileHash(bytes) {
  return bytesToHex(sha256(bytes));
}

// ---------------------------------------------------------------- age I/O --

/**
 * An Encrypter for X25519 recipients (duplicates dropped). Other recipient
 * types are refused, because the server only accepts X25519 stanzas
 * (protocol.md §4).
 */
function x25519Encrypter(recipients) {
  const unique = [...new Set(recipients)];
  if (unique.length === 0) throw new TypeError("no recipients");
  // Protocol v2 (draft): all post-quantum hybrid (age1pq1…) is accepted too;
  // a mix is refused, as age and the server refuse it.
  const hybrid = unique.every(isHybridRecipient);
  const encrypter = new Encrypter();
  for (const recipient of unique) {
    if (hybrid ? !isHybridRecipient(recipient) : !isX25519Recipient(recipient)) {
      throw new TypeError(`not a recipient of the file's kind (all age1… or all age1pq1…): ${recipient}`);
    }
    encrypter.addRecipient(recipient);
  }
  return encrypter;
}

/** Encrypts a signed v2 message (an outer object) to its recipients; returns a binary age file. */
export async function encryptSigned(outer, recipients) {
  return x25519Encrypter(recipients).encrypt(padSigned(outer));
}

/**
 * Decrypts a binary age file of either version with the reply identities:
 * what parseMessage answers.
 */
export async function decryptMessage(bytes, identity) {
  const decrypter = new Decrypter();
  for (const i of Array.isArray(identity) ? identity : [identity]) decrypter.addIdentity(i);
  return parseMessage(await decrypter.decrypt(bytes));
}

/** Encrypts an envelope to X25519 recipients; returns a binary age file. */
export async function encrypt(envelope, recipients) {
  return x25519Encrypter(recipients).encrypt(padEnvelope(envelope));
}

/**
 * Decrypts a binary age file with an identity (AGE-SECRET-KEY-1… or
 * AGE-SECRET-KEY-PQ-1…) or a list of them.
 */
export async function decrypt(bytes, identity) {
  const decrypter = new Decrypter();
  for (const i of Array.isArray(identity) ? identity : [identity]) decrypter.addIdentity(i);
  return parseEnvelope(await decrypter.decrypt(bytes));
}

// ------------------------------------------------ §3a streamed attachments --

/** The smallest plaintext of a streamed attachment: smaller files are padded up to it. */
export const MIN_ATTACHMENT_PLAINTEXT = 4096;
/** Zero padding is produced this much at a time, as age encrypts it (one STREAM chunk). */
const ZERO_BLOCK = 64 * 1024;
/** The Poly1305 tag that ends every STREAM chunk, also the one chunk of an empty payload. */
const STREAM_TAG_BYTES = 16;

/**
 * The Padmé length for `length` (protocol.md §3a): with E = ⌊log2 L⌋ and
 * S = ⌊log2 E⌋ + 1, L rounded up to a multiple of 2^(E−S). Exact for every
 * length up to 2^53 − 1: halving and multiplying by powers of two are exact
 * in binary floating point, so no step rounds. Must equal the Rust `padme`
 * (src/format/agefile.rs), or the server refuses the upload as not padded.
 */
export function padme(length) {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError("a length is a whole number below 2^53");
  if (length < 2) return length;
  let e = 0; // ⌊log2 L⌋
  for (let x = length; x >= 2; x = Math.floor(x / 2)) e++;
  let s = 0; // ⌊log2 E⌋ + 1: the number of bits of E
  for (let x = e; x >= 1; x = Math.floor(x / 2)) s++;
  const step = 2 ** (e - s);
  return Math.ceil(length / step) * step;
}

/** The padded plaintext length of a streamed attachment of `size` bytes. */
export function attachmentPaddedLength(size) {
  return padme(Math.max(size, MIN_ATTACHMENT_PLAINTEXT));
}

/** A file that did not read as the length it claimed (changed or shrunk while being read). */
export class AttachmentReadError extends Error {
  constructor(expected, got) {
    super(`the file changed while it was read: expected ${expected} bytes, ${got}`);
    this.name = "AttachmentReadError";
    this.code = "file_changed";
  }
}

/**
 * The plaintext of a streamed attachment as a stream: the `size` bytes of
 * the source that `open()` gives (called at the first read, so nothing is
 * read before the upload's turn), then zero bytes up to
 * `attachmentPaddedLength(size)`. A pull source rather than a
 * TransformStream: a transform's flush cannot wait for its reader, so it
 * would queue the whole zero tail (up to 12 % of the file) at once; here
 * each zero block is made only when the encrypter asks for it, and with a
 * high-water mark of 0 nothing is read ahead. A source longer or shorter
 * than `size` errors the stream with an AttachmentReadError.
 */
export function padAttachment(open, size) {
  const padded = attachmentPaddedLength(size);
  let reader = null;
  let produced = 0;
  let sourceDone = false;
  return new ReadableStream({
    async pull(controller) {
      if (!sourceDone) {
        reader ??= (await open()).getReader();
        // Loop past empty chunks: a pull that enqueues nothing is not called again.
        for (;;) {
          const { done, value } = await reader.read();
          if (done) {
            if (produced !== size) throw new AttachmentReadError(size, `only ${produced}`);
            sourceDone = true;
            break;
          }
          if (value.length === 0) continue;
          if (value.length > size - produced) throw new AttachmentReadError(size, "more");
          produced += value.length;
          controller.enqueue(value);
          return;
        }
      }
      if (produced < padded) {
        const n = Math.min(ZERO_BLOCK, padded - produced);
        produced += n;
        controller.enqueue(new Uint8Array(n)); // fresh each time: the reader owns what it gets
      }
      if (produced === padded) controller.close();
    },
    cancel(reason) {
      return reader?.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/**
 * Encrypts a streamed attachment (protocol.md §3a) to X25519 recipients:
 * `open()` gives the file's bytes as a ReadableStream, `size` their number.
 * Returns `{ ciphertext, length, headLength }`: the age file as a stream,
 * its exact length in bytes (what `POST /uploads` declares) and the length
 * of its head (header, MAC line, payload nonce), which `head_sha256` covers.
 * Memory stays at a few 64 KiB blocks, whatever the file's size.
 */
export async function encryptAttachment(open, size, recipients) {
  const ciphertext = await x25519Encrypter(recipients).encrypt(padAttachment(open, size));
  // size(p) counts header, nonce and payload for p plaintext bytes; an empty
  // payload is one 16-byte tag, so size(0) − 16 is the head.
  return {
    ciphertext,
    length: ciphertext.size(attachmentPaddedLength(size)),
    headLength: ciphertext.size(0) - STREAM_TAG_BYTES,
  };
}

/** An incremental SHA-256 (for `head_sha256`): `update(bytes)`, then `hex()`. */
export function sha256Hasher() {
  const hash = sha256.create();
  return {
    update(bytes) {
      hash.update(bytes);
    },
    hex: () => bytesToHex(hash.digest()),
  };
}

// ------------------------------------------------------------- API base64 --

const CHUNK = 0x8000; // String.fromCharCode(...) argument count stays small
const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) BASE64_VALUE[BASE64_ALPHABET.charCodeAt(i)] = i;

/**
 * True for canonical standard base64: padded to a multiple of 4, unused bits
 * zero (as Rust's `base64::STANDARD` demands). A loop, not a regex: attachment
 * data runs to megabytes, where a backtracking regex overflows the stack.
 */
export function isBase64(text) {
  if (typeof text !== "string" || text.length % 4 !== 0) return false;
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const end = text.length - padding;
  // A table, not indexOf: attachments make this loop run millions of times.
  for (let i = 0; i < end; i++) {
    const unit = text.charCodeAt(i);
    if (unit > 127 || BASE64_VALUE[unit] < 0) return false;
  }
  if (padding === 0) return true;
  const last = BASE64_VALUE[text.charCodeAt(end - 1)];
  return padding === 2 ? (last & 0x0f) === 0 : (last & 0x03) === 0;
}

/** Standard base64 (with padding) of bytes, as the API carries age files. */
export function bytesToBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

/** Bytes of standard base64; throws a TypeError for anything else. */
export function base64ToBytes(text) {
  if (!isBase64(text)) throw new TypeError("not standard base64");
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
