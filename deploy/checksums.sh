#!/usr/bin/env bash
# Writes DIR/SHA256SUMS for the Meldkluis binaries in DIR and prints it:
#   bash deploy/checksums.sh DIR
# Check a copy later with:  cd DIR && sha256sum -c SHA256SUMS
set -euo pipefail
dir=${1:?usage: checksums.sh DIRECTORY-WITH-BINARIES}
cd "$dir"
files=()
for name in meldkluis meldkluis-review meldkluis.exe meldkluis-review.exe; do
  [ -f "$name" ] && files+=("$name")
done
[ "${#files[@]}" -gt 0 ] || { echo "no Meldkluis binaries in $dir" >&2; exit 1; }
sha256sum "${files[@]}" > SHA256SUMS
cat SHA256SUMS
