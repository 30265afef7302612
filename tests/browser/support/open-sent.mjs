// Opens a message the page sent, as a test checks what was encrypted: a v2
// message (protocol.md §10.2) must verify with the melder's key (`thread`,
// from deriveKeys) and gives its inner envelope; a v1 message its envelope.

import assert from "node:assert/strict";
import { decryptMessage, verifyText } from "../../../web/js/protocol.js";

export async function openSent(bytes, identity, thread) {
  const message = await decryptMessage(bytes, identity);
  if (message.v === 1) return message.envelope;
  assert.ok(verifyText(message.signed, message.sig, thread), "signed with the melder's key");
  assert.equal(message.inner.thread, thread, "names the melder's thread");
  return message.inner;
}
