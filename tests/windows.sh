#!/usr/bin/env bash
# The counsellor's reviewer on Windows, tested on Linux (issue 12):
#
#   build     meldkluis-review.exe for x86_64-pc-windows-gnu with Debian's
#             mingw-w64: a release build with `--no-default-features
#             --features review` (plus `desk` once Cargo.toml has that
#             feature), the very file deploy/release.sh ships; it may
#             import only DLLs that Windows 10 and 11 ship.
#   wine      a fresh wine prefix in a temporary directory (no display).
#   unit      the library's unit tests, built for Windows, run under wine.
#   round     the CLI round trip with the .exe under Debian's wine, against
#   trip      a real Linux `meldkluis serve` on 127.0.0.1 that serves the
#             card the Windows `init` wrote into keys/: a report sent with
#             the standard-tools recipe of docs/api.md → `outbox` (wine) →
#             sync with curl on the courier endpoint → `import` (wine) →
#             `list`/`show` show the report, `export` writes its attachment
#             under a safe name → `reply --file` (a Notepad-style
#             file: BOM, CR LF) → `outbox` → sync → the melder's thread
#             look-up holds the reply, without a stray CR → `import` confirms
#             it, and the next outbox is empty. The passphrase file is UTF-16
#             with CR LF, as Windows PowerShell 5 writes it; plain `age`
#             opens the vault's identity with the passphrase as typed.
#   hostile   a damaged inbox, a wrong and an empty passphrase: a clear
#             error, exit status 2, the vault unchanged.
#   console   the passphrase prompt on a console (wine's, on a pty).
#   network   no AF_INET, AF_INET6 or AF_PACKET socket for any reviewer
#             run: wineserver (which makes Windows programs' sockets) is
#             traced with strace the whole time, with a Windows program
#             that connects to 127.0.0.1 as the control; `outbox`,
#             `import` and `show` are traced in their own process too.
#   desk      a hook for the desktop program (see desk_hook below): runs
#             when Cargo.toml has a `desk` feature, skips with a message
#             otherwise.
#
# Installs wine, mingw-w64, strace (and for the desk hook Xvfb,
# x11-utils, ImageMagick and Mesa) with apt-get, and the Rust target with
# rustup, when missing. Every wine call is bounded by `timeout`; the whole
# script prints the time each part took. Needs target/debug/meldkluis (built
# when missing). Screenshots go to target/test-output/windows/.
#
# The .exe is a release build also because a debug build is not portable:
# without embedding, a debug build reads the age crate's message files from
# the Cargo registry of the machine that built it (rust-embed), and under
# wine it panics on the first age error it would print.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
TARGET=x86_64-pc-windows-gnu
EXE="$root/target/$TARGET/release/meldkluis-review.exe"
SERVE="$root/target/debug/meldkluis"
SHOTS="$root/target/test-output/windows"
# How the desktop program is started, after `--vault DIR`; see desk_hook.
DESK_ARGS=(${MELDKLUIS_DESK_ARGS:-})

# Quiet wine (also its hint that the 32-bit half is missing: not needed).
export WINEDEBUG=-all
t0=$(date +%s)
last=$t0
timing=()
step() { printf '\n--> %s\n' "$*"; }
took() { # name: records how long the part since the last call took
  local now; now=$(date +%s)
  timing+=("$(printf '%-34s %4ds' "$1" $((now - last)))")
  last=$now
}
fail() { echo "FAIL: $*" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
console_pid=
xvfb_pid=
desk_pid=
wineserver_pid=
cleanup() {
  set +e
  [ -n "$desk_pid" ] && kill "$desk_pid" 2>/dev/null
  [ -n "$console_pid" ] && kill "$console_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  # Ends this prefix's wineserver and every wine process in it, no other,
  # and removes the server's directory (Debian's wine names it in the file
  # `wineserver` of the prefix).
  if [ -d "$work/prefix" ]; then
    WINEPREFIX="$work/prefix" timeout 20 wineserver -k 2>/dev/null
    server_dir=$(cat "$work/prefix/wineserver" 2>/dev/null)
    [[ "$server_dir" =~ ^wine-[A-Za-z0-9]+$ ]] && rm -rf "${TMPDIR:-/tmp}/$server_dir"
  fi
  [ -n "$wineserver_pid" ] && kill "$wineserver_pid" 2>/dev/null
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step "tools"
missing=()
for tool in wine:wine /usr/lib/wine/wine64:wine64 x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64 \
            strace:strace script:bsdutils iconv:libc-bin \
            age:age jq:jq curl:curl openssl:openssl; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
has_desk=
if sed -n '/^\[features\]/,/^\[/p' Cargo.toml | grep -qE '^desk[[:space:]]*='; then
  has_desk=1
  for tool in Xvfb:xvfb xwininfo:x11-utils import:imagemagick identify:imagemagick; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
  done
  # OpenGL for wine's opengl32 on Xvfb (software rendering).
  dpkg -s libgl1-mesa-dri >/dev/null 2>&1 || missing+=(libgl1-mesa-dri)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
wine --version
took "tools"

# The same features as deploy/release.sh: what is tested is what ships.
features=review
step "build meldkluis-review.exe ($TARGET, release, features $features)"
# rustc links this target with x86_64-w64-mingw32-gcc by default. (Setting
# CARGO_TARGET_…_LINKER would change every crate's fingerprint and rebuild
# what deploy/release.sh built.)
cargo build --locked --release --target "$TARGET" --no-default-features --features "$features" \
  --bin meldkluis-review
if [ -n "$has_desk" ]; then
  cargo build --locked --release --target "$TARGET" --no-default-features --features desk \
    --bin meldkluis-desk
fi
[ -x "$SERVE" ] || cargo build --locked --bin meldkluis
# The .exe must start on a plain Windows 10 or 11: only system DLLs (no
# libgcc, libwinpthread or other mingw runtime beside it).
dlls=$(x86_64-w64-mingw32-objdump -p "$EXE" | sed -n 's/^[[:space:]]*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u)
echo "imports: $(echo $dlls)"
while read -r dll; do
  case "$dll" in
    kernel32.dll|advapi32.dll|bcrypt.dll|bcryptprimitives.dll|msvcrt.dll|ntdll.dll|userenv.dll|ws2_32.dll|api-ms-win-core-*.dll) ;;
    *) fail "meldkluis-review.exe needs $dll, which Windows does not ship" ;;
  esac
done <<<"$dlls"
echo "meldkluis-review.exe: $(du -h "$EXE" | cut -f1), system DLLs only"
# The release's checksum file for it, and the manuals name what is built.
mkdir -p "$work/dist"
cp "$EXE" "$work/dist/"
bash deploy/checksums.sh "$work/dist" >/dev/null
grep -qE '^[0-9a-f]{64}  meldkluis-review\.exe$' "$work/dist/SHA256SUMS" || fail "SHA256SUMS has no line for meldkluis-review.exe"
(cd "$work/dist" && sha256sum -c --quiet SHA256SUMS) || fail "sha256sum -c"
grep -q 'target/$windows/release/meldkluis-review.exe' deploy/release.sh || fail "deploy/release.sh does not ship this .exe"
for manual in docs/counsellor-manual.nl.md docs/counsellor-manual.en.md; do
  for text in 'meldkluis-review.exe' 'SHA256SUMS' 'certutil -hashfile meldkluis-review.exe SHA256' \
              'Get-FileHash .\meldkluis-review.exe -Algorithm SHA256' 'Windows 10 of 11' ; do
    [ "$manual" = docs/counsellor-manual.en.md ] && [ "$text" = 'Windows 10 of 11' ] && text='Windows 10 or 11'
    grep -qF -- "$text" "$manual" || fail "$manual does not say: $text"
  done
done
echo "SHA256SUMS lists it; release.sh ships it; both manuals name it and how to check it on Windows"
took "build (cargo, mingw-w64)"

step "a fresh wine prefix"
export WINEPREFIX="$work/prefix" WINEARCH=win64 WINEDEBUG=-all
# A bare environment (CI's has no LANG) makes wine's window titles ASCII:
# the desk's title, with its em dash, then fails to convert. Set it here.
export LANG=C.UTF-8
# No Mono or Gecko installers, no menu entries in $HOME (winemenubuilder);
# no display: a console program needs none.
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
unset DISPLAY WAYLAND_DISPLAY
# One server for the whole run (it stays ten minutes after its last
# program; cleanup ends it), so a wine call starts in a tenth of a second
# instead of one and a half. It runs under strace: wine makes a Windows
# program's sockets in wineserver, not in the program's own process, so
# only this trace shows them (see "no IP socket" below).
mkdir -p "$WINEPREFIX"
strace -f -qq --seccomp-bpf -e trace=socket,connect -o "$work/wineserver.trace" wineserver -f -p600 &
wineserver_pid=$!
for _ in $(seq 100); do [ -s "$WINEPREFIX/wineserver" ] && break; sleep 0.1; done
[ -s "$WINEPREFIX/wineserver" ] || fail "wineserver did not start"
timeout 300 wineboot --init </dev/null >"$work/wineboot.log" 2>&1 \
  || { cat "$work/wineboot.log"; fail "wineboot"; }
[ "$(readlink "$WINEPREFIX/dosdevices/z:")" = / ] || fail "the prefix has no drive Z: for /"
mkdir -p "$work/app"
cp "$EXE" "$work/app/"
if [ ! -e "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" ]; then
  # Rust's standard library (1.78 and later) takes its random numbers from
  # ProcessPrng in bcryptprimitives.dll, which every Windows 10 and 11 has
  # but wine gained only in 8.13; Debian 12 has wine 8.0. A stand-in for
  # this test only (never shipped) answers from RtlGenRandom, wine's
  # cryptographic random source; it sits beside the .exe, where Windows
  # looks first.
  cat > "$work/processprng.c" <<'EOF'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
EOF
  x86_64-w64-mingw32-gcc -O2 -shared -o "$work/app/bcryptprimitives.dll" "$work/processprng.c" -ladvapi32
  echo "wine $(wine --version) lacks bcryptprimitives.dll: a test-only ProcessPrng stand-in sits beside the .exe"
fi
# A Windows path for a Linux one (drive Z: is /).
winpath() { printf 'Z:%s' "$(sed 's#/#\\#g' <<<"$1")"; }
win_exe=$(winpath "$work/app/meldkluis-review.exe")
timeout 60 wine "$win_exe" --version </dev/null | grep -q '^meldkluis-review ' || fail "the .exe does not start under wine"
# Control for the socket check: a small Windows program that connects to
# 127.0.0.1 shows up in wineserver's trace as an AF_INET socket.
cat > "$work/connect.c" <<'CSOURCE'
#include <winsock2.h>
int main(void) {
    WSADATA data;
    struct sockaddr_in to = {0};
    WSAStartup(MAKEWORD(2, 2), &data);
    SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(s, (struct sockaddr *)&to, sizeof to);
    return s == INVALID_SOCKET;
}
CSOURCE
x86_64-w64-mingw32-gcc -O2 -o "$work/app/connect.exe" "$work/connect.c" -lws2_32
timeout 60 wine "$(winpath "$work/app/connect.exe")" </dev/null || fail "the control program made no socket"
for _ in $(seq 50); do grep -q 'AF_INET' "$work/wineserver.trace" && break; sleep 0.1; done
grep -q 'AF_INET' "$work/wineserver.trace" || fail "wineserver's trace misses a Windows program's socket; the check would prove nothing"
trace_mark=$(wc -l < "$work/wineserver.trace")
took "wine prefix (wineboot)"

step "the library's unit tests on Windows (under wine)"
# The vault, export, bundle and text-file tests with Windows' file system
# semantics (renames over existing files, exclusive creation, paths).
unit_exe=$(cargo test --locked --release --target "$TARGET" --no-default-features --features "$features" \
  --lib --no-run --message-format=json \
  | jq -r 'select(.reason == "compiler-artifact" and .profile.test == true) | .executable // empty' | tail -1)
[ -n "$unit_exe" ] && [ -f "$unit_exe" ] || fail "no unit test executable for $TARGET"
cp "$unit_exe" "$work/app/unit-tests.exe"
timeout 300 wine "$(winpath "$work/app/unit-tests.exe")" --test-threads 2 </dev/null > "$work/unit.out" 2>&1 \
  || { tail -40 "$work/unit.out"; fail "unit tests under wine"; }
grep -E '^test result: ok\. [1-9][0-9]* passed; 0 failed' "$work/unit.out" || { tail -20 "$work/unit.out"; fail "unit tests under wine"; }
took "unit tests (build, wine)"

step "init under wine (UTF-16 passphrase file with CR LF)"
mkdir -p "$work/keys" "$work/usb" "$work/melder"
PASS='wijnrank vijver kompas één oktober'
# What Windows PowerShell 5 writes for `"…" > pass.txt`: UTF-16LE, BOM, CR LF.
{ printf '\xff\xfe'; printf '%s\r\n' "$PASS" | iconv -f UTF-8 -t UTF-16LE; } > "$work/pass.txt"
VAULT="$work/vault"
review_win() { # runs the Windows reviewer with the vault and passphrase file; bounded
  timeout 120 wine "$win_exe" --vault "$(winpath "$VAULT")" --passphrase-file "$(winpath "$work/pass.txt")" "$@" </dev/null
}
# Classical keys: the report below is made with Debian's age 1.1.1, which
# cannot encrypt to a hybrid (age1pq1) recipient; the hybrid code itself is
# in the library's unit tests that run under wine above.
review_win init --name "Windows Test" --organisation "Testorganisatie" --kind external --id vp-windows \
  --classical-keys --card-out "$(winpath "$work/keys/vp-windows.json")" > "$work/init.out"
cat "$work/init.out"
jq -e '.id == "vp-windows" and (.age_recipient | startswith("age1"))' "$work/keys/vp-windows.json" >/dev/null \
  || fail "init wrote no card with id vp-windows into keys/"
cmp -s "$work/keys/vp-windows.json" "$VAULT/card.json" || fail "the card in keys/ differs from the vault's"
for file in identity.age signing-key.age state.age; do [ -s "$VAULT/$file" ] || fail "no $file in the vault"; done
ls "$VAULT" | grep -q '\.tmp$' && fail "a temporary file was left in the vault"
# The identity is a standard age file locked with the passphrase as typed
# (no byte-order mark, no CR): plain `age` opens it, reading from a terminal.
(sleep 1; printf '%s\n' "$PASS") | timeout 60 script -qec \
  "age -d -o '$work/identity.txt' '$VAULT/identity.age'" /dev/null >/dev/null 2>&1 || true
grep -q '^AGE-SECRET-KEY-1' "$work/identity.txt" \
  || fail "age -d does not open identity.age with the passphrase as typed"
rm -f "$work/identity.txt"
took "init (wine) and the card"

step "a real server with that card; a report by the standard-tools recipe"
"$SERVE" serve --listen 127.0.0.1:0 --data "$work/data" --keys "$work/keys" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
SERVER=$(sed -n 's/^Meldkluis listening on //p' "$work/server.log")
[ -n "$SERVER" ] || { cat "$work/server.log"; fail "the server did not start"; }
pow() { # the one-line proof-of-work solver of docs/api.md
  curl -sS "$SERVER/api/v1/pow" | python3 -c 'import sys,json,hashlib,base64; c=json.load(sys.stdin); n=next(i for i in range(c["maxnumber"]+1) if hashlib.sha256((c["salt"]+str(i)).encode()).hexdigest()==c["challenge"]); print(base64.b64encode(json.dumps(dict(algorithm=c["algorithm"],challenge=c["challenge"],number=n,salt=c["salt"],signature=c["signature"])).encode()).decode())'
}
curl -sS "$SERVER/api/v1/counsellors" | jq -e '.counsellors[] | select(.id == "vp-windows")' >/dev/null \
  || fail "the server does not offer the card the Windows init wrote"
(
  cd "$work/melder"
  printf 'Melding voor de Windows-test.\nTweede regel: één, Überweisung, 漢字.\n' > melding.txt
  # ---- docs/api.md, "Submitting with standard tools" ----
  age-keygen -o reply.key 2>/dev/null
  REPLY=$(age-keygen -y reply.key)
  openssl rand -hex 32 > lookup.key
  COUNSELLOR=vp-windows
  curl -sS "$SERVER/api/v1/counsellors" \
    | jq -r --arg id "$COUNSELLOR" '.counsellors[] | select(.id == $id) | .age_recipient' > counsellor.txt
  # An attachment whose name tries a path and an NTFS alternate data
  # stream (`name:stream`); its bytes include CR LF, NUL and 0xFF.
  printf 'Bijlage.\r\n\000\377' > ../bijlage.bin
  base64 -w0 ../bijlage.bin > attachment.b64
  jq -n --rawfile text melding.txt --arg r "$REPLY" --arg c "$COUNSELLOR" --rawfile a attachment.b64 \
    '{v: 1, kind: "report", text: $text, reply_recipient: $r, counsellors: [$c],
      attachments: [{name: "..\\..\\Windows\\verslag.txt:verborgen", type: "text/plain", data: $a}]}' > envelope.json
  size=$(wc -c < envelope.json); bucket=4096
  while [ "$bucket" -lt "$size" ]; do bucket=$((bucket * 2)); done
  { cat envelope.json; head -c $((bucket - size)) /dev/zero | tr '\0' ' '; } > padded.json
  age -r "$(cat counsellor.txt)" -r "$REPLY" -o report.age padded.json
  base64 -w0 report.age > report.b64
  jq -n --arg c "$COUNSELLOR" --rawfile k lookup.key --rawfile m report.b64 \
    '{counsellors: [$c], lookup_key: ($k | rtrimstr("\n")), message: $m}' \
    | curl -sS --fail-with-body -H 'Content-Type: application/json' -H "Meldkluis-Pow: $(pow)" --data-binary @- "$SERVER/api/v1/reports"
  echo
)
took "server and report (recipe)"

courier_sync() { # outbox file → inbox file, with curl on the courier endpoint
  curl -sS --fail-with-body -H 'Content-Type: application/octet-stream' --data-binary @"$1" \
    "$SERVER/api/v1/courier/sync" -o "$2" || fail "the server refused $(basename "$1")"
}
manifest() { tar -xOf "$1" manifest.json; }

step "outbox, sync, import, list, show, export under wine"
review_win outbox "$(winpath "$work/usb/outbox-1.tar")"
manifest "$work/usb/outbox-1.tar" | jq -e '.counsellor == "vp-windows" and .counter == 1 and (.items | length) == 0' >/dev/null \
  || fail "outbox 1 is not an empty sync request with counter 1"
courier_sync "$work/usb/outbox-1.tar" "$work/usb/inbox-1.age"
review_win import "$(winpath "$work/usb/inbox-1.age")"
review_win list > "$work/list.out"
cat "$work/list.out"
cases=$(grep -cE '^[0-9a-f]{8}\b' "$work/list.out" || true)
[ "$cases" = 1 ] || fail "list shows $cases cases, expected the one report"
case_id=$(grep -oE '^[0-9a-f]{8}' "$work/list.out" | head -1)
review_win show "$case_id" > "$work/show.out"
grep -qF 'Melding voor de Windows-test.' "$work/show.out" || { cat "$work/show.out"; fail "show lacks the report"; }
grep -qF 'Tweede regel: één, Überweisung, 漢字.' "$work/show.out" \
  || { cat "$work/show.out"; fail "show mangles the report's non-ASCII text"; }
echo "show $case_id: the report's text, accents and all"
review_win export "$case_id" --to "$(winpath "$work/exported")"
exported=$(cd "$work/exported" && ls -A)
[ "$exported" = "01-verslag.txt_verborgen" ] || fail "export wrote: $exported (expected 01-verslag.txt_verborgen)"
cmp -s "$work/exported/01-verslag.txt_verborgen" "$work/bijlage.bin" || fail "the exported attachment differs"
[ -z "$(find "$work" -maxdepth 2 -name '*verslag*' -not -path "$work/exported/*")" ] || fail "export wrote outside its folder"
echo "export: the hostile name became $exported, bytes exact, nothing outside the folder"
took "outbox/sync/import/list/show/export"

step "reply --file (Notepad style: BOM, CR LF), outbox, sync"
printf '\xef\xbb\xbfWij hebben uw melding ontvangen.\r\nMet vriendelijke groet, de vertrouwenspersoon (ë).\r\n' > "$work/antwoord.txt"
review_win reply "$case_id" --file "$(winpath "$work/antwoord.txt")"
review_win outbox "$(winpath "$work/usb/outbox-2.tar")"
manifest "$work/usb/outbox-2.tar" | jq -e '.counter == 2 and (.items | length) == 1 and .items[0].kind == "reply"' >/dev/null \
  || fail "outbox 2 does not carry the reply"
courier_sync "$work/usb/outbox-2.tar" "$work/usb/inbox-2.age"
# ---- docs/api.md, "Reading replies with standard tools" ----
jq -n --rawfile k "$work/melder/lookup.key" '{lookup_key: ($k | rtrimstr("\n"))}' \
  | curl -sS --fail-with-body -H 'Content-Type: application/json' --data-binary @- "$SERVER/api/v1/thread" \
  | jq -r '.messages[] | .message' > "$work/thread.b64"
: > "$work/thread.jsonl"
while read -r m; do
  base64 -d <<<"$m" | age -d -i "$work/melder/reply.key" | jq -c . >> "$work/thread.jsonl"
done < "$work/thread.b64"
jq -r '.kind' "$work/thread.jsonl" | paste -sd' ' | grep -qx 'report reply' \
  || { cat "$work/thread.jsonl"; fail "the server's thread is not: report, reply"; }
expected=$'Wij hebben uw melding ontvangen.\nMet vriendelijke groet, de vertrouwenspersoon (ë).\n'
got=$(jq -j 'select(.kind == "reply") | .text' "$work/thread.jsonl"; printf x)
[ "${got%x}" = "$expected" ] || { printf '%q\n' "${got%x}"; fail "the melder's copy of the reply differs (BOM or CR left in?)"; }
echo "the server holds the reply; the melder reads it exactly as written"
took "reply/outbox/sync/thread look-up"

step "import confirms the reply; the next outbox is empty"
review_win import "$(winpath "$work/usb/inbox-2.age")"
review_win outbox "$(winpath "$work/usb/outbox-3.tar")"
manifest "$work/usb/outbox-3.tar" | jq -e '.counter == 3 and (.items | length) == 0 and .inbox_ack == 1' >/dev/null \
  || { manifest "$work/usb/outbox-3.tar"; fail "the reply is still queued after its confirmation"; }
courier_sync "$work/usb/outbox-3.tar" "$work/usb/inbox-3.age"
took "confirmation"

step "hostile input under wine: a clear error, nothing changed"
snapshot() { (cd "$VAULT" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before=$(snapshot)
expect_refusal() { # label expected-text(ERE) command...: exit status 2, the text on stderr, vault unchanged
  local label=$1 text=$2; shift 2
  local status=0
  "$@" >"$work/refused.out" 2>"$work/refused.err" || status=$?
  [ "$status" = 2 ] || { cat "$work/refused.err"; fail "$label: exit status $status, expected 2"; }
  grep -qEi -- "$text" "$work/refused.err" || { cat "$work/refused.err"; fail "$label: no clear error"; }
  [ "$(snapshot)" = "$before" ] || fail "$label changed the vault"
  echo "$label: $(head -1 "$work/refused.err")"
}
head -c 5000 /dev/urandom > "$work/usb/damaged.age"
expect_refusal "a damaged inbox" "inbox" review_win import "$(winpath "$work/usb/damaged.age")"
head -c $(($(wc -c < "$work/usb/inbox-1.age") / 2)) "$work/usb/inbox-1.age" > "$work/usb/cut.age"
expect_refusal "a cut-off inbox" "inbox" review_win import "$(winpath "$work/usb/cut.age")"
printf 'not the passphrase\r\n' > "$work/wrong.txt"
expect_refusal "a wrong passphrase" "passphrase|wachtwoordzin" timeout 120 wine "$win_exe" --vault "$(winpath "$VAULT")" \
  --passphrase-file "$(winpath "$work/wrong.txt")" list
printf '\r\n' > "$work/empty.txt"
expect_refusal "an empty passphrase file" "empty|leeg" timeout 120 wine "$win_exe" --vault "$(winpath "$VAULT")" \
  --passphrase-file "$(winpath "$work/empty.txt")" list
took "hostile input"

step "the passphrase prompt on a console (wine's console on a pty)"
# `script` gives wine a terminal, so the program finds a console and asks
# there; the passphrase is typed (with the Return key's CR) once the prompt
# shows. (tmux's terminal does not pass keys on to wine 8's console.)
# Wine's console can take a moment after drawing the prompt before it reads
# keys, so a run that hangs is tried again with a longer pause, up to three
# times; a run that ends with an error fails at once.
# The program must be in the terminal's foreground process group, or wine's
# console never reads a key: `script` runs its command with $SHELL (CI has
# none set, and dash forks), and plain `timeout` moves itself into a group
# of its own. Hence SHELL=/bin/bash and `timeout --foreground`: without them
# the step hung in CI (and here under `env -i`) however long it waited.
console_try() { # pause-after-prompt: 0 when `list` ran, 124 when it hung
  rm -f "$work/console.in"; mkfifo "$work/console.in"
  LC_ALL=C.UTF-8 SHELL=/bin/bash script -qfec "timeout --foreground 60 wine '$win_exe' --vault '$(winpath "$VAULT")' list" /dev/null \
    < "$work/console.in" > "$work/console.out" 2>&1 &
  local pid=$! status=0
  exec 4>"$work/console.in"
  for _ in $(seq 300); do grep -qiE 'passphrase|wachtwoordzin' "$work/console.out" && break; sleep 0.2; done
  grep -qiE 'passphrase|wachtwoordzin' "$work/console.out" || { cat -v "$work/console.out"; fail "no passphrase prompt on the console"; }
  sleep "$1"
  printf '%s\r' "$PASS" >&4
  wait "$pid" || status=$?
  exec 4>&-
  return "$status"
}
status=1
for pause in 1 4 10; do
  status=0; console_try "$pause" || status=$?
  [ "$status" = 124 ] || break
  echo "the console did not read the typed passphrase within 60 s after a ${pause} s pause; trying again"
done
[ "$status" = 0 ] || { cat -v "$work/console.out"; fail "list after the prompt failed ($status)"; }
grep -q "$case_id" "$work/console.out" || { cat -v "$work/console.out"; fail "list after the prompt shows no case"; }
grep -qF "$PASS" "$work/console.out" && fail "the passphrase was echoed on the console"
echo "prompt: typed passphrase not echoed, vault opened, case $case_id listed"
took "console prompt"


# ---- hook: the desktop program on Windows (issue 12, "Done when" 4) ----
# When Cargo.toml has a `desk` feature, the .exe built above has the
# desktop program in it (`--features review,desk`). This starts it under
# wine on an Xvfb display (1366×768) with the vault made above, waits for a
# window whose title starts with "Meldkluis", and takes a screenshot of its
# unlock screen: target/test-output/windows/desk-unlock.png, checked not to
# be blank (look at it too). It is started as `meldkluis-review.exe --vault
# DIR desk`; set MELDKLUIS_DESK_ARGS (or DESK_ARGS at the top) when the
# desktop program's command line differs. eframe/egui draws with OpenGL
# (glow): wine's opengl32 uses the host's Mesa on Xvfb (libgl1-mesa-dri);
# a wgpu renderer would need Vulkan or Direct3D 12 under wine instead.
# Checked machinery (Xvfb, wine's X11 driver, xwininfo, import) with wine's
# own notepad.exe while the desktop program did not yet exist.
desk_hook() {
  step "desktop program under wine (desk hook)"
  if [ -z "$has_desk" ]; then
    echo "skipped: Cargo.toml has no \`desk\` feature yet (the desktop program is not built)"
    return 0
  fi
  mkdir -p "$SHOTS"
  Xvfb -displayfd 3 -screen 0 1366x768x24 -nolisten tcp 3>"$work/display" 2>"$work/xvfb.log" &
  xvfb_pid=$!
  for _ in $(seq 100); do [ -s "$work/display" ] && break; sleep 0.1; done
  [ -s "$work/display" ] || { cat "$work/xvfb.log"; fail "Xvfb did not start"; }
  export DISPLAY=":$(cat "$work/display")"
  # The desktop program is its own .exe, beside the command line's.
  cp "$(dirname "$EXE")/meldkluis-desk.exe" "$work/app/"
  timeout 180 wine "$(winpath "$work/app/meldkluis-desk.exe")" --vault "$(winpath "$VAULT")" "${DESK_ARGS[@]}" </dev/null >"$work/desk.log" 2>&1 &
  desk_pid=$!
  local shown=
  for _ in $(seq 120); do
    if xwininfo -root -tree 2>/dev/null | grep -q '"Meldkluis'; then shown=1; break; fi
    kill -0 "$desk_pid" 2>/dev/null || break
    sleep 0.5
  done
  [ -n "$shown" ] || { cat "$work/desk.log"; xwininfo -root -tree | head -30; fail "no Meldkluis window under wine"; }
  sleep 3 # the first frames
  import -window root "$SHOTS/desk-unlock.png"
  local colours; colours=$(identify -format '%k' "$SHOTS/desk-unlock.png")
  [ "$colours" -gt 8 ] || fail "the screenshot is blank ($colours colours)"
  echo "screenshot: $SHOTS/desk-unlock.png ($colours colours); look at it"
  kill "$desk_pid" 2>/dev/null || true
  wait "$desk_pid" 2>/dev/null || true
  desk_pid=
  unset DISPLAY
  took "desk hook"
}
desk_hook

step "no IP socket from the reviewer under wine (strace)"
# First three runs traced in the program's own process, where wine makes
# none of a Windows program's sockets but anything the program did behind
# wine's back would show.
traced() { # subcommand args...: runs the Windows reviewer under strace -f
  strace -f -qq -e trace=socket,connect -o "$work/rev.trace" \
    timeout 120 wine "$win_exe" --vault "$(winpath "$VAULT")" --passphrase-file "$(winpath "$work/pass.txt")" "$@" \
    </dev/null >/dev/null
  if grep -E 'AF_INET|AF_INET6|AF_PACKET' "$work/rev.trace"; then fail "$1 opened an IP socket under wine (above)"; fi
  echo "$1: $(grep -c 'socket(' "$work/rev.trace" || true) socket calls in its own process (AF_UNIX, to wineserver), none AF_INET, AF_INET6 or AF_PACKET"
}
traced outbox "$(winpath "$work/usb/outbox-4.tar")"
traced import "$(winpath "$work/usb/inbox-3.age")"
traced show "$case_id"
# Then wineserver's trace: every Windows program since the control was the
# reviewer (its unit tests, init, outbox, import, list, show, export,
# reply, the refusals, the prompt, the desktop program when the hook ran,
# the three runs above), and wineserver, which makes their sockets, made
# no IP socket.
if tail -n +"$((trace_mark + 1))" "$work/wineserver.trace" | grep -E 'AF_INET|AF_INET6|AF_PACKET'; then
  fail "a socket for the reviewer under wine (above)"
fi
families=$(tail -n +"$((trace_mark + 1))" "$work/wineserver.trace" | grep -oE '(socket|connect)\(([0-9]+, \{sa_family=)?AF_[A-Z0-9]+' \
  | sed -E 's/\(.*(AF_[A-Z0-9]+)/ \1/' | sort | uniq -c | sed 's/^ *//' | paste -sd, || true)
echo "wineserver since the control: ${families:-no socket calls}; none AF_INET, AF_INET6 or AF_PACKET"
took "strace"

step "windows: all passed"
printf '%s\n' "${timing[@]}"
printf '%-34s %4ds\n' "total" $(($(date +%s) - t0))
