#!/usr/bin/env bash
# Packs the Meldkluis source with every dependency, for a build on a machine
# without network (docs/deploy.md, "Offline build"). Run on a machine with
# network, in a clean checkout of the release you want:
#   bash deploy/vendor-source.sh ../meldkluis-src.tar.gz
# The archive holds the committed sources (git archive HEAD), vendor/ (every
# crate in Cargo.lock, from crates.io) and .cargo/config.toml, which points
# cargo at vendor/ instead of the network.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:?usage: vendor-source.sh OUT.tar.gz}")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
name=meldkluis-src
git archive --format=tar --prefix="$name/" HEAD | tar -x -C "$stage"
(
  cd "$stage/$name"
  cargo vendor --locked --versioned-dirs vendor > /dev/null 2> "$stage/vendor.log" \
    || { cat "$stage/vendor.log" >&2; exit 1; }
  # What cargo vendor prints to use vendor/, and no network at all.
  mkdir -p .cargo
  cat > .cargo/config.toml <<'EOF'
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"

[net]
offline = true
EOF
)
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$out" "$name"
sha256sum "$out"
