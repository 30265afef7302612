#!/usr/bin/env bash
# Builds the release binaries and writes them with their SHA-256 sums:
#   bash deploy/release.sh [OUT]        (default OUT: target/dist)
# OUT then holds:
#   meldkluis              the server (Linux x86-64)
#   meldkluis-review       the offline reviewer for a Linux laptop (x86-64)
#   meldkluis-review.exe   the offline reviewer for a Windows 10 or 11
#                          laptop (x86-64), cross-compiled with Debian's
#                          mingw-w64; tests/windows.sh runs this very build
#                          under wine
#   SHA256SUMS             one line per file, `sha256sum -c` format
# Both reviewers are built with --no-default-features --features review (and
# desk, once Cargo.toml has that feature: the desktop program): no HTTP,
# async runtime or database code at all. Publish SHA256SUMS where counsellors
# can read it independently of the copy they receive (the organisation's
# website, a signed letter); docs/deploy.md and the counsellor manuals say
# how to check a copied binary on Linux and on Windows.
#
# Needs, for the Windows build: `rustup target add x86_64-pc-windows-gnu`
# and `apt-get install gcc-mingw-w64-x86-64`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/dist}
windows=x86_64-pc-windows-gnu
# The command line is built with `review` alone (no GUI toolkit in it); the
# desktop program `meldkluis-desk` with `desk`.
features=review
command -v x86_64-w64-mingw32-gcc >/dev/null \
  || { echo "release.sh: no mingw-w64 for the Windows build: apt-get install gcc-mingw-w64-x86-64" >&2; exit 1; }
rustup target list --installed 2>/dev/null | grep -qx "$windows" \
  || { echo "release.sh: no Rust target for Windows: rustup target add $windows" >&2; exit 1; }
cargo build --release --locked --no-default-features --features "$features" --bin meldkluis-review
cargo build --release --locked --target "$windows" --no-default-features --features "$features" --bin meldkluis-review
cargo build --release --locked --no-default-features --features desk --bin meldkluis-desk
cargo build --release --locked --target "$windows" --no-default-features --features desk --bin meldkluis-desk
cargo build --release --locked --bin meldkluis
mkdir -p "$out"
install -m 0755 target/release/meldkluis target/release/meldkluis-review target/release/meldkluis-desk \
  "target/$windows/release/meldkluis-review.exe" "target/$windows/release/meldkluis-desk.exe" "$out/"
bash deploy/checksums.sh "$out"
