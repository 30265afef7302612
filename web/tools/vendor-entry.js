// Entry point of the vendored bundle web/vendor/age.js (built by
// tools/build-vendor.mjs). It names exactly what web/js/protocol.js uses, so the
// bundle holds nothing else that a reviewer would have to audit.

// age v1 encryption to X25519 recipients, decryption with an X25519 identity.
export {
  Encrypter,
  Decrypter,
  identityToRecipient,
  generateX25519Identity,
} from "age-encryption";

// The derivations of protocol.md §2 (HKDF-SHA256, lookup hash) and the
// Bech32 encoding of the reply identity. These are the same copies that
// age-encryption itself uses (same versions in package-lock.json), so the
// bundle carries each library once.
export { hkdf } from "@noble/hashes/hkdf.js";
export { sha256 } from "@noble/hashes/sha2.js";
export { bech32 } from "@scure/base";

// Ed25519 (RFC 8032) for protocol v2's signed messages (protocol.md §10):
// the melder signs with a key derived from the code and verifies counsellors'
// replies. The same @noble/curves copy age-encryption uses for X25519, so the
// bundle only gains the signing and verifying functions.
export { ed25519 } from "@noble/curves/ed25519.js";
