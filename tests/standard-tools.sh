#!/usr/bin/env bash
# Follows the "submit with standard tools" recipe of docs/api.md to the
# letter — age, age-keygen, openssl, jq, curl, base64, python3 (the
# proof of work's one line) — against a real
# server, then checks that the counsellor reads the report and that the
# melder reads the reply with the same tools.
#
# Needs: target/debug/meldkluis and target/debug/meldkluis-review built.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/target/debug"
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The counsellor and the server.
echo "standard tools passphrase" > "$work/pass"
mkdir -p "$work/keys"
review() { "$BIN/meldkluis-review" --vault "$work/vault" --passphrase-file "$work/pass" "$@"; }
# A counsellor with classical keys (protocol v1): Debian's age is 1.1.1, and
# post-quantum recipients (age1pq1…, what `init` makes by default) need
# age 1.3 or later; docs/api.md says so. The hybrid path is proven against
# the age-encryption package instead (tests/pq_vectors.rs, tests/js/pq.test.mjs).
review init --name "Test Counsellor" --organisation "Testorganisatie" --kind external \
  --id vp-jansen --card-out "$work/keys/vp-jansen.json" --classical-keys >/dev/null
"$BIN/meldkluis" serve --listen 127.0.0.1:0 --data "$work/data" --keys "$work/keys" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
SERVER=$(sed -n 's/^Meldkluis listening on //p' "$work/server.log")
[ -n "$SERVER" ] || { cat "$work/server.log"; exit 1; }

cd "$work"
printf 'Melding via standaardgereedschap.\nTweede regel.\n' > melding.txt

# ---- the recipe of docs/api.md, "Submitting with standard tools" ----
# 1. Your own keys: keep both files; together they are your retrieval code.
age-keygen -o reply.key 2>/dev/null
REPLY=$(age-keygen -y reply.key)
openssl rand -hex 32 > lookup.key
# 2. The counsellor's public key, from the server.
COUNSELLOR=vp-jansen
curl -sS "$SERVER/api/v1/counsellors" \
  | jq -r --arg id "$COUNSELLOR" '.counsellors[] | select(.id == $id) | .age_recipient' > counsellor.txt
# 3. The envelope, padded with spaces to the next bucket (4096, 8192, ...).
jq -n --rawfile text melding.txt --arg r "$REPLY" --arg c "$COUNSELLOR" \
  '{v: 1, kind: "report", text: $text, reply_recipient: $r, counsellors: [$c]}' > envelope.json
size=$(wc -c < envelope.json); bucket=4096
while [ "$bucket" -lt "$size" ]; do bucket=$((bucket * 2)); done
{ cat envelope.json; head -c $((bucket - size)) /dev/zero | tr '\0' ' '; } > padded.json
# 4. Encrypt to the counsellor and to yourself.
age -r "$(cat counsellor.txt)" -r "$REPLY" -o report.age padded.json
# 5. The proof of work (one line; any SHA-256 loop will do, see "Proof of work").
pow_started=$(date +%s%N)
POW=$(curl -sS "$SERVER/api/v1/pow" | python3 -c 'import sys,json,hashlib,base64; c=json.load(sys.stdin); n=next(i for i in range(c["maxnumber"]+1) if hashlib.sha256((c["salt"]+str(i)).encode()).hexdigest()==c["challenge"]); print(base64.b64encode(json.dumps(dict(algorithm=c["algorithm"],challenge=c["challenge"],number=n,salt=c["salt"],signature=c["signature"])).encode()).decode())')
# 6. Send it.
base64 -w0 report.age > report.b64
jq -n --arg c "$COUNSELLOR" --rawfile k lookup.key --rawfile m report.b64 \
  '{counsellors: [$c], lookup_key: ($k | rtrimstr("\n")), message: $m}' \
  | curl -sS --fail-with-body -H 'Content-Type: application/json' -H "Meldkluis-Pow: $POW" \
    --data-binary @- "$SERVER/api/v1/reports"
echo
echo "proof of work solved by the one-line solver in $(( ($(date +%s%N) - pow_started) / 1000000 )) ms (including age and the request)"
# ---- end of the submitting part ----

# The counsellor syncs with curl instead of the courier page, and reads it.
review outbox outbox.tar >/dev/null
curl -sS --fail-with-body -H 'Content-Type: application/octet-stream' --data-binary @outbox.tar \
  "$SERVER/api/v1/courier/sync" -o inbox.age
review import inbox.age >/dev/null
case_id=$(review list | head -1 | cut -c1-8)
review show "$case_id" | grep -q "Melding via standaardgereedschap." \
  || { echo "FAIL: the counsellor cannot read the report"; exit 1; }
echo "Wij hebben uw melding ontvangen." | review reply "$case_id" >/dev/null
review outbox outbox.tar >/dev/null
curl -sS --fail-with-body -H 'Content-Type: application/octet-stream' --data-binary @outbox.tar \
  "$SERVER/api/v1/courier/sync" -o inbox.age

# ---- the recipe of docs/api.md, "Reading replies with standard tools" ----
jq -n --rawfile k lookup.key '{lookup_key: ($k | rtrimstr("\n"))}' \
  | curl -sS --fail-with-body -H 'Content-Type: application/json' --data-binary @- "$SERVER/api/v1/thread" \
  | jq -r '.messages[] | .message' \
  | while read -r m; do echo "$m" | base64 -d | age -d -i reply.key | jq -r '.kind + ": " + .text'; done > thread.txt
# ---- end ----

cat thread.txt
grep -q "^report: Melding via standaardgereedschap." thread.txt || { echo "FAIL: own report unreadable"; exit 1; }
grep -q "^reply: Wij hebben uw melding ontvangen." thread.txt || { echo "FAIL: reply unreadable"; exit 1; }
# No lock-in: the counsellor's passphrase-protected identity opens the inbox
# with the plain age tool (which reads the passphrase from a terminal, so
# `script` gives it one).
(sleep 1; cat "$work/pass") | script -qec "age -d -i vault/identity.age -o inbox.tar inbox.age" /dev/null >/dev/null
tar -tf inbox.tar | grep -qx manifest.json || { echo "FAIL: age -d -i identity.age did not open the inbox"; exit 1; }
echo "standard-tools recipe: OK"

