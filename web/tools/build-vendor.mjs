// Builds web/vendor/age.js, the one third-party file the pages load, from the
// exact packages in package-lock.json. Anyone can rerun it (`npm ci && npm run
// build-vendor`) and must get the same bytes as the committed file; `--check`
// builds in memory and fails if the committed file differs.
//
// The bundle is deliberately not minified so that it can be read and audited.

import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import path from "node:path";

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outFile = path.join(webDir, "vendor", "age.js");

// Refuse to build from anything but the locked versions: a stray `npm install`
// of a newer release must not slip silently into the vendored file.
async function lockedVersions() {
  const lock = JSON.parse(await readFile(path.join(webDir, "package-lock.json"), "utf8"));
  const wanted = ["age-encryption", "@noble/curves", "@noble/hashes", "@scure/base", "esbuild"];
  const versions = {};
  for (const name of wanted) {
    const locked = lock.packages[`node_modules/${name}`]?.version;
    const installed = JSON.parse(
      await readFile(path.join(webDir, "node_modules", name, "package.json"), "utf8"),
    ).version;
    if (!locked || locked !== installed) {
      throw new Error(`${name}: installed ${installed}, lockfile says ${locked}; run \`npm ci\``);
    }
    versions[name] = locked;
  }
  return versions;
}

// @noble/post-quantum locks its own older @noble/curves and @noble/hashes
// (~2.0.0) under its node_modules; age-encryption uses the top-level 2.4.0.
// Bundled as they lie, the page would carry both copies (ed25519, nist,
// weierstrass, sha2, sha3 … twice). This resolves post-quantum's imports to
// the top-level copy, so the bundle holds each library once.
const oneNobleCopy = {
  name: "one-noble-copy",
  setup(build) {
    build.onResolve({ filter: /^@noble\/(curves|hashes)\// }, (args) => {
      if (!args.importer.includes(`${path.sep}node_modules${path.sep}@noble${path.sep}post-quantum${path.sep}`)) return undefined;
      return build.resolve(args.path, { kind: args.kind, resolveDir: webDir });
    });
  },
};

async function bundle(versions) {
  const banner =
    "// Vendored for Meldkluis by web/tools/build-vendor.mjs -- do not edit.\n" +
    `// age-encryption ${versions["age-encryption"]}, @noble/curves ${versions["@noble/curves"]}, @noble/hashes ${versions["@noble/hashes"]}, ` +
    `@scure/base ${versions["@scure/base"]}; bundled with esbuild ${versions.esbuild}.\n` +
    "// Rebuild: cd web && npm ci && npm run build-vendor";
  const result = await build({
    absWorkingDir: webDir, // keeps the path comments in the output relative
    entryPoints: ["tools/vendor-entry.js"],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: false,
    sourcemap: false,
    legalComments: "inline",
    charset: "utf8",
    banner: { js: banner },
    write: false,
    logLevel: "warning",
    plugins: [oneNobleCopy],
  });
  return result.outputFiles[0].contents;
}

const check = process.argv.includes("--check");
const bytes = await bundle(await lockedVersions());
const digest = createHash("sha256").update(bytes).digest("hex");

if (check) {
  const committed = await readFile(outFile).catch(() => null);
  if (!committed || !Buffer.from(bytes).equals(committed)) {
    console.error(`vendor/age.js differs from a fresh build (fresh sha256 ${digest})`);
    process.exit(1);
  }
  console.log(`vendor/age.js is reproducible: sha256 ${digest}`);
} else {
  await writeFile(outFile, bytes);
  console.log(`wrote vendor/age.js (${bytes.length} bytes), sha256 ${digest}`);
}
