// Reads Firefox's `.jsonlz4` / `.mozlz4` files: the magic "mozLz40\0", the
// decompressed size as 32-bit little endian, then one LZ4 block (the LZ4
// block format: sequences of a token, literals, a 16-bit offset and a match).

const MAGIC = Buffer.from("mozLz40\0", "latin1");

/** True when `bytes` starts with the mozLz4 magic. */
export function isMozLz4(bytes) {
  return bytes.length >= 12 && bytes.subarray(0, 8).equals(MAGIC);
}

/** Decompresses a mozLz4 file's bytes; throws on a damaged block. */
export function decompressMozLz4(bytes) {
  if (!isMozLz4(bytes)) throw new Error("not a mozLz4 file");
  const size = bytes.readUInt32LE(8);
  const out = Buffer.alloc(size);
  let i = 12;
  let o = 0;
  const length = (base) => {
    let n = base;
    if (base === 15) {
      let byte;
      do {
        if (i >= bytes.length) throw new Error("mozLz4: truncated length");
        byte = bytes[i++];
        n += byte;
      } while (byte === 255);
    }
    return n;
  };
  while (i < bytes.length) {
    const token = bytes[i++];
    const literals = length(token >> 4);
    if (i + literals > bytes.length || o + literals > size) throw new Error("mozLz4: literals out of bounds");
    bytes.copy(out, o, i, i + literals);
    i += literals;
    o += literals;
    if (i >= bytes.length) break; // the last sequence has literals only
    const offset = bytes[i] | (bytes[i + 1] << 8);
    i += 2;
    if (offset === 0 || offset > o) throw new Error("mozLz4: bad match offset");
    const match = length(token & 15) + 4;
    if (o + match > size) throw new Error("mozLz4: match out of bounds");
    // Byte by byte: a match may overlap what it copies.
    for (let k = 0; k < match; k++, o++) out[o] = out[o - offset];
  }
  if (o !== size) throw new Error(`mozLz4: ${o} bytes, header says ${size}`);
  return out;
}
