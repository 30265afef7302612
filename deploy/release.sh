#!/usr/bin/env bash
# Builds the release binaries and writes them with their SHA-256 sums:
#   bash deploy/release.sh [OUT]        (default OUT: target/dist)
# OUT then holds meldkluis (server), meldkluis-review (the offline reviewer,
# built without any network code) and SHA256SUMS. Publish SHA256SUMS where
# counsellors can read it independently of the copy they receive (the
# organisation's website, a signed letter); docs/deploy.md says how to check
# a copied binary.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/dist}
cargo build --release --locked --no-default-features --features review --bin meldkluis-review
cargo build --release --locked --bin meldkluis
mkdir -p "$out"
install -m 0755 target/release/meldkluis target/release/meldkluis-review "$out/"
bash deploy/checksums.sh "$out"
