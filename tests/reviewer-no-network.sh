#!/usr/bin/env bash
# "No network on the laptop, proven" (issue 5, DESIGN principle 4): runs
# every meldkluis-review subcommand under `strace -f -e trace=%network` on a
# real inbox and fails if any of them makes a single network system call
# (socket, connect, bind, listen, accept, sendto, recvfrom, socketpair,
# getsockopt, ... — even an AF_UNIX socket counts). The dependency-tree
# check in run-all.sh shows no network crate is linked; this shows the
# program does not open a socket by any other way either.
#
# It checks the air-gapped build (target/release/meldkluis-review, made by
# run-all.sh with --no-default-features --features review) when present,
# else the debug build. The inbox comes from a real server, fed with the
# standard-tools recipe of docs/api.md and synced with curl.
#
# Needs: target/debug/meldkluis; age, jq, curl, openssl; strace (installed
# with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v strace >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends strace
fi
root=$PWD
REVIEW="$root/target/release/meldkluis-review"
[ -x "$REVIEW" ] || REVIEW="$PWD/target/debug/meldkluis-review"
SERVE="$PWD/target/debug/meldkluis"
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
# The greps below read the Dutch output, whatever the machine's locale.
export MELDKLUIS_LANG=nl
echo "reviewer no-network passphrase" > pass
mkdir -p keys traces

# The harness must be able to fail: strace on curl sees its socket.
strace -f -qq -e trace=%network -o traces/control curl -s -o /dev/null http://127.0.0.1:9/ || true
grep -qE '^[0-9]+ +(socket|connect)\(' traces/control \
  || { echo "FAIL: strace did not see curl's socket; the check below would prove nothing"; exit 1; }

ran=()
# review NAME ARGS...: one reviewer command under strace; its network
# system calls, if any, land in traces/NAME.
review() {
  local name=$1; shift
  local status=0
  strace -f -qq -e trace=%network -o "traces/$name" \
    "$REVIEW" --vault vault --passphrase-file pass "$@" >"out.$name" 2>&1 || status=$?
  # `deadlines` exits 1 when something is overdue, and the two
  # introduction commands refuse this case of the older format (below);
  # anything else failed.
  local expected=0
  case $name in deadlines) expected=1 ;; introduce | accept-introduction) expected=2 ;; esac
  if [ "$status" -ne 0 ] && [ "$status" -ne "$expected" ]; then
    echo "FAIL: meldkluis-review $* exited $status:"; cat "out.$name"; exit 1
  fi
  ran+=("$name")
}

# Classical keys: the report below is made with Debian's age 1.1.1, which
# cannot encrypt to a hybrid (age1pq1) recipient (as in standard-tools.sh).
review init init --name "Test Counsellor" --organisation "Testorganisatie" --kind external \
  --id vp-jansen --card-out keys/vp-jansen.json --classical-keys

"$SERVE" serve --listen 127.0.0.1:0 --data data --keys keys >server.log 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" server.log && break; sleep 0.1; done
SERVER=$(sed -n 's/^Meldkluis listening on //p' server.log)
[ -n "$SERVER" ] || { cat server.log; exit 1; }

# A report with an attachment, by the standard-tools recipe (docs/api.md).
age-keygen -o reply.key 2>/dev/null
REPLY=$(age-keygen -y reply.key)
openssl rand -hex 32 > lookup.key
curl -sS "$SERVER/api/v1/counsellors" | jq -r '.counsellors[0].age_recipient' > counsellor.txt
printf 'Bijlage bij de melding.\n' | base64 -w0 > attachment.b64
jq -n --arg r "$REPLY" --rawfile a attachment.b64 \
  '{v: 1, kind: "report", text: "Melding voor de strace-test.", reply_recipient: $r,
    counsellors: ["vp-jansen"], attachments: [{name: "bijlage.txt", type: "text/plain", data: $a}]}' > envelope.json
size=$(wc -c < envelope.json); bucket=4096
while [ "$bucket" -lt "$size" ]; do bucket=$((bucket * 2)); done
{ cat envelope.json; head -c $((bucket - size)) /dev/zero | tr '\0' ' '; } > padded.json
age -r "$(cat counsellor.txt)" -r "$REPLY" -o report.age padded.json
base64 -w0 report.age > report.b64
POW=$(curl -sS "$SERVER/api/v1/pow" | python3 -c 'import sys,json,hashlib,base64; c=json.load(sys.stdin); n=next(i for i in range(c["maxnumber"]+1) if hashlib.sha256((c["salt"]+str(i)).encode()).hexdigest()==c["challenge"]); print(base64.b64encode(json.dumps(dict(algorithm=c["algorithm"],challenge=c["challenge"],number=n,salt=c["salt"],signature=c["signature"])).encode()).decode())')
jq -n --rawfile k lookup.key --rawfile m report.b64 \
  '{counsellors: ["vp-jansen"], lookup_key: ($k | rtrimstr("\n")), message: $m}' \
  | curl -sS --fail-with-body -H 'Content-Type: application/json' -H "Meldkluis-Pow: $POW" \
    --data-binary @- "$SERVER/api/v1/reports" >/dev/null

courier_sync() {
  curl -sS --fail-with-body -H 'Content-Type: application/octet-stream' \
    --data-binary @"$1" "$SERVER/api/v1/courier/sync" -o "$2"
}

review outbox outbox outbox1.tar
courier_sync outbox1.tar inbox1.age
review import import inbox1.age
review list list
case_id=$(cut -c1-8 out.list | head -1)
review deadlines deadlines
review show show "$case_id"
grep -q "Melding voor de strace-test." out.show || { echo "FAIL: show"; cat out.show; exit 1; }
review template template acknowledgement
review acknowledge acknowledge "$case_id"
echo "Wij onderzoeken het." > reply.txt
review reply reply "$case_id" --file reply.txt
review status status "$case_id" in-progress --file reply.txt
review note note "$case_id" --file reply.txt
review export export "$case_id" --to exported
[ -f exported/01-bijlage.txt ] || { echo "FAIL: export wrote nothing"; ls -R exported; exit 1; }
review stats stats
# Introducing a colleague, and taking on a case one was introduced to
# (protocol v2 §10.5): this case is of the older format, so both refuse
# with the reason — after reading the card and opening the vault.
"$REVIEW" --vault collega-vault --passphrase-file pass init --name "Collega" \
  --organisation "Testorganisatie" --kind internal --id vp-collega \
  --card-out vp-collega.json --classical-keys >/dev/null
review introduce introduce "$case_id" --card vp-collega.json --yes
grep -q "ouder" out.introduce || { echo "FAIL: introduce"; cat out.introduce; exit 1; }
review accept-introduction accept-introduction "$case_id" --yes
grep -q "wacht geen introductie" out.accept-introduction || { echo "FAIL: accept-introduction"; cat out.accept-introduction; exit 1; }
review close close "$case_id"
# A closed case reopened (the melder wrote after closure), then closed again
# so purge below has a case to remove.
review reopen reopen "$case_id"
grep -q "Klaargezet" out.reopen || { echo "FAIL: reopen"; cat out.reopen; exit 1; }
review close2 close "$case_id"
review outbox2 outbox outbox2.tar
courier_sync outbox2.tar inbox2.age
review import2 import inbox2.age
# Closed today: a retention of -1 days makes it due, so purge really deletes.
grep -q "sleutel van de server" out.import || { echo "FAIL: the first signed inbox pinned no server key"; cat out.import; exit 1; }
review purge purge --retention-days=-1 --yes
grep -q "1 zaken verwijderd" out.purge || { echo "FAIL: purge removed nothing"; cat out.purge; exit 1; }
review rotate-keys rotate-keys --card-out keys/vp-jansen.json
review forget-server-key forget-server-key
grep -q "vergeten" out.forget-server-key || { echo "FAIL: forget-server-key"; cat out.forget-server-key; exit 1; }
review outbox3 outbox outbox3.tar

# Every subcommand of --help ran.
for command in $("$REVIEW" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && $1 != "help" {print $1}'); do
  # (No pipe into grep -q here: with pipefail, its early exit fails the pipe.)
  [[ " ${ran[*]} " == *" $command "* ]] || { echo "FAIL: subcommand $command was not run"; exit 1; }
done

found=0
for trace in traces/*; do
  [ "$trace" = traces/control ] && continue
  if grep -qE '^[0-9]+ +[a-z_0-9]+\(' "$trace"; then
    echo "FAIL: meldkluis-review ${trace#traces/} made network system calls:"; cat "$trace"; found=1
  fi
done
[ "$found" -eq 0 ] || exit 1
echo "reviewer no-network: ${#ran[@]} runs of ${REVIEW#"$root"/} under strace (${ran[*]}): 0 network system calls, OK"
