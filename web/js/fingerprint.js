// The card fingerprint of protocol v2 (docs/protocol.md §10.1), computed by
// the page itself from the card the server serves, so the melder can compare
// it with the sheet the organisation publishes out of band: the server only
// ever supplies the card, never the fingerprint. No DOM here: the same module
// runs under `node --test` against tests/vectors/fingerprint.json, which the
// Rust side (src/format/card.rs) and Python's hashlib also pass.

import { sha256 } from "../vendor/age.js";

const utf8 = new TextEncoder();
const LABEL = utf8.encode("meldkluis-card-fingerprint-v2\n");

/** protocol.md §5: ASCII letters and digits, the rest one dash, at most 63. */
export function slugify(name) {
  let out = "";
  for (const c of name.toLowerCase()) {
    if (/^[a-z0-9]$/.test(c)) out += c;
    else if (out && !out.endsWith("-")) out += "-";
  }
  return out.slice(0, 63).replace(/-+$/, "");
}

/** A card's organisation id: its `org`, else the one made from `organisation`. */
export function effectiveOrg(card) {
  return typeof card.org === "string" ? card.org : slugify(String(card.organisation ?? ""));
}

/** A required text field of the card; a card without one has no fingerprint. */
function text(card, name, optional = false) {
  const value = card?.[name];
  if (optional && (value === undefined || value === null)) return "";
  if (typeof value !== "string") throw new TypeError(`the card has no ${name}`);
  return value;
}

/** SHA-256 over the label and the card's fields, each length-prefixed (u32 big-endian). */
export function fingerprintDigest(card) {
  const fields = [
    text(card, "id"),
    effectiveOrg(card),
    text(card, "name"),
    text(card, "organisation"),
    text(card, "kind"),
    text(card, "description", true),
    text(card, "lang", true),
    text(card, "age_recipient"),
    text(card, "signing_key"),
  ].map((field) => utf8.encode(field));
  const total = LABEL.length + fields.reduce((sum, f) => sum + 4 + f.length, 0);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  bytes.set(LABEL, 0);
  let at = LABEL.length;
  for (const field of fields) {
    view.setUint32(at, field.length, false);
    bytes.set(field, at + 4);
    at += 4 + field.length;
  }
  return sha256(bytes);
}

/**
 * Six groups of five digits from a digest: each group the big-endian number
 * of five bytes (at most 2^40, exact in a double) modulo 100000.
 */
export function digitGroups(digest) {
  const groups = [];
  for (let i = 0; i < 6; i++) {
    let value = 0;
    for (const byte of digest.subarray(5 * i, 5 * i + 5)) value = value * 256 + byte;
    groups.push(String(value % 100000).padStart(5, "0"));
  }
  return groups;
}

/** The fingerprint as the sheet and the programs print it: "12345 67890 …". */
export function cardFingerprint(card) {
  return digitGroups(fingerprintDigest(card)).join(" ");
}
