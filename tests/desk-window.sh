#!/usr/bin/env bash
# The desktop program in a real window (issue 12, "Done when" 2 and 3):
#  1. a real server gets reports by the standard-tools recipe (docs/api.md),
#     the counsellor's vault syncs them with the command line;
#  2. `meldkluis-desk` runs under Xvfb at 1366×768 on every screen, in Dutch
#     and English, light and dark, at 100 % and 200 % text, and each window
#     is photographed (`import -window root`) into $DESK_SHOTS
#     (default tests/desk-shots/, kept out of git);
#  3. a scripted session (unlock, sync pages, prepare sync, courier by curl,
#     import, open a case) runs under `strace -f` and must open no AF_INET,
#     AF_INET6 or AF_PACKET socket and read no resolver file: only AF_UNIX
#     sockets to the display server and the accessibility bus are allowed.
#
# Needs target/debug/{meldkluis,meldkluis-review,meldkluis-desk}; Xvfb,
# xdotool, imagemagick, strace, age, jq, curl, openssl (installed with
# apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
need=()
for pair in Xvfb:xvfb xdotool:xdotool import:imagemagick strace:strace age:age jq:jq curl:curl openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}" xauth
fi
BIN="$root/target/debug"
SHOTS=${DESK_SHOTS:-$root/tests/desk-shots}
rm -rf "$SHOTS"; mkdir -p "$SHOTS"
work=$(mktemp -d)
server_pid= xvfb_pid= desk_pid=
cleanup() {
  for pid in $desk_pid $server_pid $xvfb_pid; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
echo "bureau test wachtwoordzin" > pass
mkdir -p keys stick exports

review() { "$BIN/meldkluis-review" --vault vault --passphrase-file pass "$@"; }
# Classical keys: the reports below are made with Debian's age 1.1.1, which
# cannot encrypt to a hybrid (age1pq1) recipient (as in standard-tools.sh).
review init --name "Mr. A. Jansen" --organisation "Ministerie van Voorbeeldzaken" --kind external \
  --id mr-a-jansen --card-out keys/mr-a-jansen.json --classical-keys >/dev/null
"$BIN/meldkluis" serve --listen 127.0.0.1:0 --data data --keys keys >server.log 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" server.log && break; sleep 0.1; done
SERVER=$(sed -n 's/^Meldkluis listening on //p' server.log)
[ -n "$SERVER" ] || { cat server.log; exit 1; }
pow() { # the one-line proof-of-work solver of docs/api.md
  curl -sS "$SERVER/api/v1/pow" | python3 -c 'import sys,json,hashlib,base64; c=json.load(sys.stdin); n=next(i for i in range(c["maxnumber"]+1) if hashlib.sha256((c["salt"]+str(i)).encode()).hexdigest()==c["challenge"]); print(base64.b64encode(json.dumps(dict(algorithm=c["algorithm"],challenge=c["challenge"],number=n,salt=c["salt"],signature=c["signature"])).encode()).decode())'
}
COUNSELLOR=$(jq -r .age_recipient keys/mr-a-jansen.json)

# A picture with an author in it, to show the metadata warning.
convert -size 480x300 gradient:'#1f4e9c'-'#e8eef8' -set comment "Author: J. de Melder" \
  -define png:exclude-chunks=date,time picture.png
# report N TEXT CATEGORY [ATTACHMENT]: one report by the recipe, keys kept as melder-N.
report() {
  local n=$1 text=$2 category=$3 file=${4:-}
  age-keygen -o "melder-$n.key" 2>/dev/null
  local reply; reply=$(age-keygen -y "melder-$n.key")
  openssl rand -hex 32 | tr -d '\n' > "lookup-$n"
  local attachments='[]'
  if [ -n "$file" ]; then
    base64 -w0 "$file" > att.b64
    attachments=$(jq -n --rawfile a att.b64 --arg n "$(basename "$file")" '[{name: $n, type: "image/png", data: $a}]')
  fi
  jq -n --arg t "$text" --arg r "$reply" --arg c "$category" --argjson a "$attachments" \
    '{v: 1, kind: "report", text: $t, category: $c, reply_recipient: $r, counsellors: ["mr-a-jansen"], attachments: $a}
     | if .category == "" then del(.category) else . end' > envelope.json
  local size bucket=4096; size=$(wc -c < envelope.json)
  while [ "$bucket" -lt "$size" ]; do bucket=$((bucket * 2)); done
  { cat envelope.json; head -c $((bucket - size)) /dev/zero | tr '\0' ' '; } > padded.json
  age -r "$COUNSELLOR" -r "$reply" -o report.age padded.json
  base64 -w0 report.age > report.b64
  jq -n --rawfile k "lookup-$n" --rawfile m report.b64 \
    '{counsellors: ["mr-a-jansen"], lookup_key: $k, message: $m}' \
    | curl -sS --fail-with-body -H 'Content-Type: application/json' -H "Meldkluis-Pow: $(pow)" --data-binary @- "$SERVER/api/v1/reports" >/dev/null
}
courier() { # courier OUTBOX INBOX
  curl -sS --fail-with-body -H 'Content-Type: application/octet-stream' \
    --data-binary @"$1" "$SERVER/api/v1/courier/sync" -o "$2"
}

report 1 "Mijn leidinggevende laat facturen van een bevriend bedrijf twee keer uitbetalen. Ik heb kopieën van de facturen van maart en april." fraud-or-abuse-of-power picture.png
report 2 "Een collega wordt al maanden uitgelachen in het teamoverleg; niemand grijpt in." undesirable-behaviour
report 3 "De afdelingschef gunt opdrachten aan het bureau van zijn zwager." conflict-of-interest
report 4 "Vertrouwelijke stukken over de reorganisatie liggen bij de printer en op een gedeelde schijf." information-leak
review outbox o1.tar >/dev/null
courier o1.tar i1.age
review import i1.age >/dev/null
first=$(review list | awk 'NR==1 {print $1}')
review acknowledge "$first" >/dev/null
echo "Dank u. Kunt u de facturen als bijlage sturen, zonder uw naam erop?" > reply.txt
review reply "$first" --file reply.txt >/dev/null
review outbox o2.tar >/dev/null
courier o2.tar i2.age
review import i2.age >/dev/null
cases=$(review list | awk '{print $1}' | grep -E '^[0-9a-f]{8}$' || true)
png_case=
for c in $cases; do review show "$c" | grep -q "bevriend bedrijf" && png_case=$c; done
[ -n "$png_case" ] || { echo "FAIL: no case with the picture"; review list; exit 1; }

# The window: Xvfb at 1366x768.
# Xvfb picks a free display number itself (-displayfd): a number chosen
# here at random met a stale /tmp/.X91-lock left by an earlier run, and
# the window never appeared ("Can't open display").
Xvfb -displayfd 3 -screen 0 1366x768x24 -nolisten tcp 3>display.num >xvfb.log 2>&1 &
xvfb_pid=$!
for _ in $(seq 100); do [ -s display.num ] && break; sleep 0.1; done
[ -s display.num ] || { cat xvfb.log; echo "FAIL: Xvfb did not start"; exit 1; }
display=":$(tr -d '[:space:]' < display.num)"
for _ in $(seq 50); do DISPLAY=$display xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done
export DISPLAY=$display MELDKLUIS_DESK_SIZE=1366x768
# A day two weeks on, so the overview shows overdue and due-soon deadlines.
later=$(date -u -d '+9 days' +%F)

# shot NAME ARGS...: start the desk, wait until it has drawn, photograph it.
shot() {
  local name=$1; shift
  "$BIN/meldkluis-desk" "$@" >"desk-$name.log" 2>&1 &
  desk_pid=$!
  # The window appears once the vault is open; photograph the window
  # itself (the root keeps the last program's pixels).
  local window
  window=$(timeout 30 xdotool search --sync --onlyvisible --name "Meldkluis" | head -1) || true
  kill -0 "$desk_pid" 2>/dev/null && [ -n "$window" ] \
    || { echo "FAIL: meldkluis-desk $* showed no window:"; cat "desk-$name.log"; exit 1; }
  sleep "${SHOT_WAIT:-1.5}"
  import -window "$window" "$SHOTS/$name.png"
  kill "$desk_pid"; wait "$desk_pid" 2>/dev/null || true
  desk_pid=
}
count=0
for lang in nl en; do
  for look in light-100 light-200 dark-100 dark-200; do
    args=(--lang "$lang" --today "$later")
    case $look in
      light-200) args+=(--text-scale 2) ;;
      dark-100) args+=(--dark) ;;
      dark-200) args+=(--dark --text-scale 2) ;;
    esac
    shot "$lang-$look-1-setup" --vault fresh-vault "${args[@]}"
    shot "$lang-$look-2-unlock" --vault vault "${args[@]}"
    shot "$lang-$look-3-overview" --vault vault --passphrase-file pass "${args[@]}"
    shot "$lang-$look-4-case" --vault vault --passphrase-file pass --case "$png_case" "${args[@]}"
    shot "$lang-$look-4b-attachment" --vault vault --passphrase-file pass --case "$png_case" --attachment 1 "${args[@]}"
    shot "$lang-$look-5-sync" --vault vault --passphrase-file pass --tab sync "${args[@]}"
    shot "$lang-$look-6-figures" --vault vault --passphrase-file pass --tab stats "${args[@]}"
    shot "$lang-$look-7-settings" --vault vault --passphrase-file pass --tab settings "${args[@]}"
    count=$((count + 8))
  done
done
[ ! -e fresh-vault/identity.age ] || { echo "FAIL: showing the wizard made a vault"; exit 1; }
echo "desk window: $count screenshots in ${SHOTS#"$root"/}"

# The strace proof: a scripted session in the real window.
review outbox o3.tar >/dev/null # (the CLI's last outbox is superseded by the desk's)
rm -f stick/*
cp i1.age i2.age stick/ 2>/dev/null || true
cat > vault/desk-settings.json <<EOF
{"lang": "nl", "stick": "$work/stick"}
EOF
strace -f -qq -e trace=%network,openat,connect -o desk.trace \
  "$BIN/meldkluis-desk" --vault vault --passphrase-file pass >desk-strace.log 2>&1 &
desk_pid=$!
window=$(timeout 30 xdotool search --sync --onlyvisible --name "Meldkluis" | head -1)
sleep 1
key() { xdotool key --window "$window" "$@"; sleep 0.7; }
xdotool windowfocus --sync "$window" 2>/dev/null || true
key ctrl+2            # the sync page
key ctrl+p            # prepare sync: the outbox on the stick
out=$(ls stick/meldkluis-outbox-*.tar | tail -1)
[ -f "$out" ] || { echo "FAIL: the desk wrote no outbox"; cat desk-strace.log; exit 1; }
counter=${out##*-}; counter=${counter%.tar}
courier "$out" "stick/meldkluis-inbox-mr-a-jansen-$counter.age"
key ctrl+i            # import what came back
key ctrl+1            # the overview
key Tab Tab Tab Tab Tab Tab Tab Tab Tab Tab Tab Tab Tab Tab Return # through the page by keyboard; Enter chooses what has focus
import -window root "$SHOTS/strace-session.png"
key ctrl+3 ctrl+4 ctrl+l
# Stop the program itself (strace's child); strace then ends on its own.
pkill -TERM -P "$desk_pid" || true
wait "$desk_pid" 2>/dev/null || true
desk_pid=
sockets=$(grep -cE 'socket\(' desk.trace || true)
if grep -E 'socket\((AF_INET|AF_INET6|AF_PACKET|PF_INET|PF_INET6|PF_PACKET)' desk.trace; then
  echo "FAIL: meldkluis-desk opened an IP or packet socket (above)"; exit 1
fi
if grep -E 'connect\(.*(sin_port|sin6_port)' desk.trace; then
  echo "FAIL: meldkluis-desk connected to an IP address (above)"; exit 1
fi
# (/etc/nsswitch.conf and /etc/passwd are read for the user's home folder:
# a local look-up, no name resolution.)
if grep -E 'openat\(.*(resolv\.conf|/etc/hosts|host\.conf|gai\.conf)' desk.trace; then
  echo "FAIL: meldkluis-desk read resolver files (a DNS look-up, above)"; exit 1
fi
unix=$(grep -E 'socket\((AF_UNIX|PF_LOCAL|AF_LOCAL)' desk.trace | wc -l)
[ "$unix" -gt 0 ] || { echo "FAIL: strace saw no socket at all; the check would prove nothing"; exit 1; }
[ "$unix" -eq "$sockets" ] || { echo "FAIL: a socket of another family"; grep 'socket(' desk.trace; exit 1; }
echo "desk window: strace -f of a scripted session: $unix AF_UNIX socket(s) (display, accessibility bus), 0 IP, packet or resolver use, OK"
