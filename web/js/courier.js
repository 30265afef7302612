// The courier page: carry a signed outbox from the counsellor's USB stick to
// the server and the encrypted inbox back. This machine learns nothing: the
// outbox is signed and the inbox is encrypted to the counsellor.

import { ApiError, courierSync } from "./api.js";
import { loadMessages, t } from "./i18n.js";
import { $, apiErrorMessage, download, fieldError, focusHeading, setBusy, status } from "./ui.js";

await loadMessages();

const MAX_OUTBOX_BYTES = 64 * 1024 * 1024; // protocol.md §6
let busy = false;
let lastUrl = null;

async function sync(event) {
  event.preventDefault();
  if (busy) return;
  const file = $("outbox").files[0];
  fieldError("outbox", null);
  if (!file) {
    fieldError("outbox", t("courier_error_no_file"));
    $("outbox").focus();
    return;
  }
  if (file.size > MAX_OUTBOX_BYTES) {
    // Focus to the field, whose description is the error (or, when it is
    // already there, fieldError announces it): never a silent refusal.
    fieldError("outbox", t("error_too_large"));
    $("outbox").focus();
    return;
  }
  busy = true;
  setBusy(["sync"], true);
  $("result").hidden = true;
  try {
    status("", t("courier_status_sending"), { fraction: 0 });
    const outbox = new Uint8Array(await file.arrayBuffer());
    const inbox = await courierSync(outbox, (f) =>
      status("", f < 1 ? t("courier_status_sending") : t("courier_status_waiting"), { fraction: f < 1 ? f : null }));
    if (lastUrl) URL.revokeObjectURL(lastUrl);
    lastUrl = download(inbox.bytes, inbox.filename);
    status("", "");
    $("result-text").textContent = t("courier_done", { filename: inbox.filename });
    $("save-again").href = lastUrl;
    $("save-again").setAttribute("download", inbox.filename);
    $("result").hidden = false;
    focusHeading("result-heading");
    $("courier-form").reset();
  } catch (error) {
    const message = error instanceof ApiError ? apiErrorMessage(error) : t("courier_error_read");
    status("", message, { kind: "error" });
  } finally {
    busy = false;
    setBusy(["sync"], false);
  }
}

$("courier-form").addEventListener("submit", sync);
$("outbox").addEventListener("change", () => fieldError("outbox", null));
