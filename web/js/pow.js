// Proof of work (docs/api.md "Proof of work"): ALTCHA's SHA-256 challenge.
// The server sends a salt and the SHA-256 of salt + a secret number; the page
// tries numbers from 0 until the hash matches. Pure JavaScript on WebCrypto's
// native SHA-256: it needs neither the JIT nor WebAssembly (Tor Browser
// "Safer"). Digests run in batches so the native work overlaps the loop.
// No DOM here: node --test drives it.

const BATCH = 1000;

function hexBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function same(digest, target) {
  const bytes = new Uint8Array(digest);
  for (let i = 0; i < target.length; i++) if (bytes[i] !== target[i]) return false;
  return true;
}

/** The number that solves `challenge`, or null when none up to `maxnumber` does. */
export async function solve(challenge, subtle = globalThis.crypto.subtle) {
  if (challenge?.algorithm !== "SHA-256" || !/^[0-9a-f]{64}$/.test(challenge.challenge ?? "")) {
    throw new Error("unsupported proof-of-work challenge");
  }
  const target = hexBytes(challenge.challenge);
  const encoder = new TextEncoder();
  for (let start = 0; start <= challenge.maxnumber; start += BATCH) {
    const end = Math.min(start + BATCH, challenge.maxnumber + 1);
    const digests = [];
    for (let n = start; n < end; n++) {
      digests.push(subtle.digest("SHA-256", encoder.encode(challenge.salt + n)));
    }
    const results = await Promise.all(digests);
    for (let i = 0; i < results.length; i++) {
      if (same(results[i], target)) return start + i;
    }
  }
  return null;
}

/** The `Meldkluis-Pow` header value for `challenge` (base64 of the solution JSON). */
export async function solutionHeader(challenge, subtle) {
  const number = await solve(challenge, subtle);
  if (number === null) throw new Error("proof of work not solvable");
  const { algorithm, challenge: hash, salt, signature } = challenge;
  return btoa(JSON.stringify({ algorithm, challenge: hash, number, salt, signature }));
}

/** Fetches a new challenge from the server and solves it: `{ "Meldkluis-Pow": … }`. */
export async function powHeaders(fetchFn = (...args) => globalThis.fetch(...args)) {
  const answer = await fetchFn("/api/v1/pow", { credentials: "omit", cache: "no-store" });
  if (!answer.ok) throw new Error(`proof of work: ${answer.status}`);
  return { "Meldkluis-Pow": await solutionHeader(await answer.json()) };
}
