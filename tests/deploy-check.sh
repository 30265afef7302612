#!/usr/bin/env bash
# Checks the deployment examples in deploy/ as far as this machine allows,
# and follows the offline build recipe of docs/deploy.md without network:
#
#   systemd   systemd-analyze verify (any warning fails), the exposure score
#             of systemd-analyze security, the hardening lines, sysusers
#   config    deploy/meldkluis.toml passes `meldkluis check-config`
#   nginx     nginx -t on the example; then live, in front of a header
#             recorder and of Meldkluis: HSTS, redirect, body limit, no
#             client address passed on or written to any log
#   two nodes the PostgreSQL drop-in with the unit (verify, exposure, its
#             credentials read by check-config), nginx-upstream.conf applied
#             as it says: nginx -t, then live in front of two nodes, one
#             of them killed
#   caddy     caddy validate and caddy fmt; then live as for nginx
#   tor       tor --verify-config; tor makes an onion address without
#             network, and check-config accepts it as onion_location
#   container static checks of the Containerfile (no docker here) and a run
#             of the binary with the image's user, environment and paths
#   offline   deploy/vendor-source.sh, then the reviewer built with no
#             network and an empty cargo home; its checksums verified
#
# Installs nginx, caddy and tor with apt-get when missing, without letting
# their services start. MELDKLUIS_SKIP_OFFLINE_BUILD=1 skips the offline
# build (several minutes). Needs target/debug/meldkluis{,-review}.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BIN="$root/target/debug"
step() { printf '\n--> %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# An address no proxy may pass on or log: the test client connects from it.
CLIENT=127.0.0.2

step "tools"
missing=()
for tool in systemd-analyze:systemd nginx:nginx caddy:caddy tor:tor python3:python3 \
            curl:curl openssl:openssl setpriv:util-linux; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Keep the packages' services (nginx and caddy on port 80, a tor daemon
  # on the network) from starting on this machine.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"; made_policy=1
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ -n "$made_policy" ] && $sudo rm -f "$policy"
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    for unit in nginx caddy tor; do $sudo systemctl disable --now "$unit" 2>/dev/null || true; done
  fi
fi
[ -x "$BIN/meldkluis" ] && [ -x "$BIN/meldkluis-review" ] || cargo build --locked --bins

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; fail "nothing listens on port $1"; }

# A counsellor card and a Meldkluis server for the live checks.
echo "deploy check passphrase" > "$work/pass"
mkdir -p "$work/keys"
"$BIN/meldkluis-review" --vault "$work/vault" --passphrase-file "$work/pass" init \
  --name "Deploy Check" --organisation "Testorganisatie" --kind external --id vp-deploy \
  --card-out "$work/keys/vp-deploy.json" >/dev/null
start_meldkluis() { # port
  env -u MELDKLUIS_CONFIG "$BIN/meldkluis" serve --listen "127.0.0.1:$1" --data "$work/data" \
    --keys "$work/keys" >"$work/meldkluis.log" 2>&1 &
  pids+=($!); wait_port "$1"
}
# A tiny upstream that records the request headers it gets, one JSON line each.
cat > "$work/recorder.py" <<'EOF'
import http.server, json, sys
class Recorder(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as out:
            out.write(json.dumps(dict(self.headers.items())) + "\n")
        body = b"recorded"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_POST = do_GET
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Recorder).serve_forever()
EOF
# Checks one proxy, live: $1 name, $2 https port, $3 http port, $4 upstream
# port, $5 file(s) holding everything the proxy logged.
check_proxy_live() {
  local name=$1 https=$2 http=$3 upstream=$4 logs=$5
  local host=meldpunt.example.nl
  local c=(curl -sS -k --interface "$CLIENT" --resolve "$host:$https:127.0.0.1" --resolve "$host:$http:127.0.0.1")
  python3 "$work/recorder.py" "$upstream" "$work/$name-headers.jsonl" & local recorder=$!
  pids+=($recorder); wait_port "$upstream"
  # A client that tries to name an address itself.
  "${c[@]}" -D "$work/$name-head" -o /dev/null "https://$host:$https/melden" \
    -H "X-Forwarded-For: 198.51.100.7" -H "X-Real-IP: 198.51.100.7" -H "Forwarded: for=198.51.100.7"
  grep -qi '^strict-transport-security: max-age=63072000; includeSubDomains' "$work/$name-head" \
    || fail "$name: no HSTS header"
  [ -s "$work/$name-headers.jsonl" ] || fail "$name: the upstream got no request"
  python3 - "$work/$name-headers.jsonl" "$CLIENT" <<'EOF' || fail "$name: client address passed on"
import json, sys
for line in open(sys.argv[1]):
    headers = {k.lower(): v for k, v in json.loads(line).items()}
    for name in ("x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-host", "x-forwarded-proto"):
        if name in headers:
            sys.exit(f"{name}: {headers[name]}")
    for name, value in headers.items():
        if sys.argv[2] in value or "198.51.100.7" in value:
            sys.exit(f"{name}: {value}")
EOF
  local redirect
  redirect=$("${c[@]}" -o /dev/null -w '%{http_code} %{redirect_url}' "http://$host:$http/melden")
  case "$redirect" in 30[18]\ https://$host*/melden) ;; *) fail "$name: http is not redirected: $redirect";; esac
  # The upstream gone: a 502, whose error must not be logged with the address.
  kill "$recorder"; wait "$recorder" 2>/dev/null || true
  local status
  status=$("${c[@]}" -o /dev/null -w '%{http_code}' "https://$host:$https/melden")
  [ "$status" = 502 ] || fail "$name: expected 502 without upstream, got $status"
  # Meldkluis itself behind the proxy: its page with its own headers plus
  # HSTS, and the proxy's body limit.
  start_meldkluis "$upstream"
  "${c[@]}" -D "$work/$name-mk" -o "$work/$name-page" "https://$host:$https/melden"
  grep -q '^HTTP/[0-9.]* 200' "$work/$name-mk" || fail "$name: Meldkluis page not served"
  grep -qi '^content-security-policy:' "$work/$name-mk" || fail "$name: Meldkluis headers lost"
  grep -qi '^strict-transport-security:' "$work/$name-mk" || fail "$name: no HSTS on Meldkluis pages"
  # Reports need a proof of work (docs/api.md), solved as the recipe does.
  pow() { "${c[@]}" "https://$host:$https/api/v1/pow" | python3 -c 'import sys,json,hashlib,base64; c=json.load(sys.stdin); n=next(i for i in range(c["maxnumber"]+1) if hashlib.sha256((c["salt"]+str(i)).encode()).hexdigest()==c["challenge"]); print(base64.b64encode(json.dumps(dict(algorithm=c["algorithm"],challenge=c["challenge"],number=n,salt=c["salt"],signature=c["signature"])).encode()).decode())'; }
  head -c $((33 * 1024 * 1024)) /dev/zero > "$work/big"
  status=$("${c[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Meldkluis-Pow: $(pow)" \
    --data-binary @"$work/big" "https://$host:$https/api/v1/reports" 2>/dev/null || true)
  [ "$status" = 413 ] || fail "$name: a body above 32 MiB got $status"
  # A large report below the limit reaches Meldkluis (which finds no JSON).
  head -c $((20 * 1024 * 1024)) /dev/zero > "$work/big"
  status=$("${c[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Meldkluis-Pow: $(pow)" \
    --data-binary @"$work/big" "https://$host:$https/api/v1/reports" 2>/dev/null || true)
  [ "$status" = 400 ] || fail "$name: a 20 MiB body did not reach Meldkluis: $status"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  sleep 0.5
  if grep -rl "$CLIENT" $logs 2>/dev/null; then fail "$name: the client address is in a log (above)"; fi
  echo "$name: HSTS, redirect, body limits; no client address passed on or logged"
}

step "systemd units"
mkdir -p "$work/systemd"
for unit in meldkluis.service meldkluis-backup.service meldkluis-backup.timer; do
  # verify needs the executables to exist: point them at the built binary.
  sed "s#/usr/local/bin/meldkluis#$BIN/meldkluis#g" "deploy/systemd/$unit" > "$work/systemd/$unit"
done
(cd "$work/systemd" && systemd-analyze verify ./meldkluis.service ./meldkluis-backup.service ./meldkluis-backup.timer) \
  > "$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify"; }
# verify exits 0 on unknown keys and typos; any remark at all fails here.
[ ! -s "$work/verify.log" ] || { cat "$work/verify.log"; fail "systemd-analyze verify has remarks"; }
for unit in meldkluis.service meldkluis-backup.service; do
  (cd "$work/systemd" && systemd-analyze security --offline=yes --threshold=15 "./$unit") > "$work/security.log" 2>&1 \
    || { cat "$work/security.log"; fail "$unit: exposure above 1.5"; }
  tail -1 "$work/security.log"
done
unit=deploy/systemd/meldkluis.service
for line in User=meldkluis NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
            PrivateDevices=yes ReadWritePaths=/var/lib/meldkluis CapabilityBoundingSet= UMask=0077 \
            RestrictAddressFamilies=; do
  grep -q "^$line" "$unit" || fail "$unit lacks $line"
done
[ "$(grep -c '^ReadWritePaths=' "$unit")" = 1 ] && grep -q '^ReadWritePaths=/var/lib/meldkluis$' "$unit" \
  || fail "$unit: only the data directory may be writable"
sysusers=$(systemd-sysusers --dry-run --root="$work/sysroot" "$root/deploy/systemd/meldkluis.sysusers.conf" 2>&1)
grep -q "Creating user 'meldkluis'" <<<"$sysusers" || { echo "$sysusers"; fail "sysusers.d snippet"; }
echo "systemd: verify clean, hardening lines present"

step "the example configuration"
# Every setting is documented in the example, and it passes check-config
# (with this machine's directories and a free port).
for key in listen data_dir keys_dir max_body_bytes security_contact onion_location retention_days; do
  grep -q "^#\? \?$key = " deploy/meldkluis.toml || fail "deploy/meldkluis.toml does not show $key"
done
MELDKLUIS_DATA_DIR="$work/data" MELDKLUIS_KEYS_DIR="$work/keys" MELDKLUIS_LISTEN="127.0.0.1:$(free_port)" \
  "$BIN/meldkluis" --config deploy/meldkluis.toml check-config > "$work/check.log" 2>&1 \
  || { cat "$work/check.log"; fail "deploy/meldkluis.toml does not pass check-config"; }
echo "deploy/meldkluis.toml passes check-config"

step "nginx"
conf=deploy/nginx/meldkluis.conf
grep -Eq '\$(remote_addr|binary_remote_addr|proxy_add_x_forwarded_for|realip_remote_addr)' "$conf" \
  && fail "$conf uses the client address"
[ "$(grep -c '^[^#]*access_log off;' "$conf")" = "$(grep -c '^server {' "$conf")" ] || fail "$conf: a server block logs access"
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=meldpunt.example.nl" \
  -keyout "$work/nginx/key.pem" -out "$work/nginx/cert.pem" 2>/dev/null
# Run as root (CI), nginx's workers would be "nobody", who cannot write
# request bodies into this private scratch directory.
nginx_user=; [ "$(id -u)" -eq 0 ] && nginx_user="user root;"
nginx_main() { # site-file
  cat <<EOF
$nginx_user
error_log $work/nginx/logs/error.log emerg;
pid $work/nginx/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    include $1;
}
EOF
}
sed -e "s#/etc/letsencrypt/live/meldpunt.example.nl/fullchain.pem#$work/nginx/cert.pem#" \
    -e "s#/etc/letsencrypt/live/meldpunt.example.nl/privkey.pem#$work/nginx/key.pem#" \
    "$conf" > "$work/nginx/site.conf"
nginx_main "$work/nginx/site.conf" > "$work/nginx/nginx.conf"
nginx -t -q -p "$work/nginx" -c "$work/nginx/nginx.conf" || fail "nginx -t"
echo "nginx -t: the example is valid"
https=$(free_port); http=$(free_port); upstream=$(free_port)
sed -e "s#listen 80;#listen 127.0.0.1:$http;#" -e "s#listen 443 ssl http2;#listen 127.0.0.1:$https ssl http2;#" \
    -e '/listen \[::\]/d' -e "s#127.0.0.1:8080#127.0.0.1:$upstream#" \
    "$work/nginx/site.conf" > "$work/nginx/live.conf"
nginx_main "$work/nginx/live.conf" > "$work/nginx/nginx-live.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx-live.conf" -g 'daemon off;' 2>"$work/nginx/logs/stderr.log" &
pids+=($!); wait_port "$https"
check_proxy_live nginx "$https" "$http" "$upstream" "$work/nginx/logs"
for log in "$work"/nginx/logs/*; do
  case "${log##*/}" in error.log|stderr.log) ;; *) fail "nginx wrote another log: $log";; esac
done

step "two nodes (deploy/two-nodes): the systemd drop-in, and nginx in front of two nodes"
# The drop-in where systemd reads it (meldkluis.service.d/), with the unit:
# verify clean, the unit's exposure unchanged.
dropin=deploy/two-nodes/meldkluis-postgres.conf
mkdir -p "$work/systemd/meldkluis.service.d"
cp "$dropin" "$work/systemd/meldkluis.service.d/postgres.conf"
(cd "$work/systemd" && systemd-analyze verify ./meldkluis.service) > "$work/verify-two.log" 2>&1 \
  || { cat "$work/verify-two.log"; fail "systemd-analyze verify with $dropin"; }
[ ! -s "$work/verify-two.log" ] || { cat "$work/verify-two.log"; fail "systemd-analyze verify has remarks on $dropin"; }
(cd "$work/systemd" && systemd-analyze security --offline=yes --threshold=15 ./meldkluis.service) > "$work/security-two.log" 2>&1 \
  || { cat "$work/security-two.log"; fail "meldkluis.service with $dropin: exposure above 1.5"; }
# The secrets as credentials, each handed to the server in a variable it
# reads: check-config with the drop-in's variables (%d a scratch directory
# of credentials as the unit's would be; the database URL left out, there
# is no database here) passes and names none as unread (a typo in a name
# would start a node without its key, silently).
for cred in db-password pow-key inbox-key; do
  grep -q "^LoadCredential=$cred:/etc/meldkluis/$cred$" "$dropin" || fail "$dropin: no credential $cred"
  grep -q "^Environment=MELDKLUIS_[A-Z_]*_FILE=%d/$cred$" "$dropin" || fail "$dropin: no variable names the credential $cred"
done
mkdir -m 0700 "$work/credentials"
echo "a database password" > "$work/credentials/db-password"
openssl rand -hex 32 > "$work/credentials/pow-key"
head -c 32 /dev/urandom | base64 > "$work/credentials/inbox-key"
dropin_env=()
while IFS= read -r line; do
  dropin_env+=("${line/\%d\//$work/credentials/}")
done < <(sed -n 's/^Environment=\(MELDKLUIS_[A-Z_]*_FILE=%d\/\)/\1/p' "$dropin")
[ "${#dropin_env[@]}" = 3 ] || fail "$dropin: expected three credential variables, found: ${dropin_env[*]}"
env "${dropin_env[@]}" MELDKLUIS_DATA_DIR="$work/data-two" MELDKLUIS_KEYS_DIR="$work/keys" MELDKLUIS_LISTEN="127.0.0.1:$(free_port)" \
  "$BIN/meldkluis" --config deploy/meldkluis.toml check-config > "$work/check-two.log" 2>&1 \
  || { cat "$work/check-two.log"; fail "check-config with the variables of $dropin"; }
if grep -i 'not read' "$work/check-two.log"; then fail "$dropin: a variable the server does not read (above)"; fi
grep -q '^Environment=MELDKLUIS_DATABASE_URL=postgres://[^ ]*sslmode=verify-full&sslrootcert=/' "$dropin" \
  || fail "$dropin: the database link is not sslmode=verify-full with a CA"
echo "$dropin: verify clean with the unit, $(tail -1 "$work/security-two.log" | sed 's/^→ //')"
# nginx: meldkluis.conf changed as nginx-upstream.conf says (its
# replacement lines taken from its own comment), its upstream on two local
# nodes. Requests go on while one node is killed; both gone, a 502.
two=deploy/two-nodes/nginx-upstream.conf
mkdir -p "$work/nginx2/logs" "$work/nginx2/tmp"
https=$(free_port); http=$(free_port); node1=$(free_port); node2=$(free_port)
python3 - "$work/nginx/live.conf" "$two" "$node1" "$node2" > "$work/nginx2/site.conf" <<'EOF' || fail "$two: its instructions do not apply to deploy/nginx/meldkluis.conf"
import re, sys
site, upstream_file, node1, node2 = sys.argv[1:]
site, upstream = open(site).read(), open(upstream_file).read()
# The comment says: replace `proxy_pass http://127.0.0.1:8080;` by the
# commented lines after "# by".
comment = upstream.split("# by\n", 1)[1]
lines = []
for line in comment.splitlines():
    if not line.startswith("#   "):
        break
    lines.append(line[4:])
assert lines and lines[0].startswith("proxy_pass http://meldkluis_nodes;"), lines
old = re.search(r"proxy_pass http://127\.0\.0\.1:\d+;", site)
assert old, "no proxy_pass in the site"
site = site.replace(old.group(0), "\n        ".join(lines), 1)
addresses = re.findall(r"server (192\.0\.2\.\d+:8080)", upstream)
assert len(addresses) == 2, addresses
upstream = upstream.replace(addresses[0], f"127.0.0.1:{node1}").replace(addresses[1], f"127.0.0.1:{node2}")
print(upstream)
print(site)
EOF
sed -e "s#listen 127.0.0.1:[0-9]*;#listen 127.0.0.1:$http;#" -e "s#listen 127.0.0.1:[0-9]* ssl http2;#listen 127.0.0.1:$https ssl http2;#" \
  -i "$work/nginx2/site.conf"
nginx_main "$work/nginx2/site.conf" | sed "s#$work/nginx/#$work/nginx2/#g" > "$work/nginx2/nginx.conf"
nginx -t -q -p "$work/nginx2" -c "$work/nginx2/nginx.conf" || fail "nginx -t with $two"
nginx -p "$work/nginx2" -c "$work/nginx2/nginx.conf" -g 'daemon off;' 2>"$work/nginx2/logs/stderr.log" &
pids+=($!); wait_port "$https"
start_node() { # port data-directory
  env -u MELDKLUIS_CONFIG "$BIN/meldkluis" serve --listen "127.0.0.1:$1" --data "$2" \
    --keys "$work/keys" >"$2.log" 2>&1 &
  pids+=($!); wait_port "$1"
}
start_node "$node1" "$work/node1"; first=${pids[-1]}
start_node "$node2" "$work/node2"; second=${pids[-1]}
host=meldpunt.example.nl
c2=(curl -sS -k --interface "$CLIENT" --resolve "$host:$https:127.0.0.1")
[ "$("${c2[@]}" "https://$host:$https/healthz")" = ok ] || fail "$two: /healthz through nginx"
kill -KILL "$first"; wait "$first" 2>/dev/null || true
for i in $(seq 6); do
  status=$("${c2[@]}" -o /dev/null -w '%{http_code}' "https://$host:$https/melden")
  [ "$status" = 200 ] || fail "$two: request $i after one node was killed got $status"
done
kill -KILL "$second"; wait "$second" 2>/dev/null || true
status=$("${c2[@]}" -o /dev/null -w '%{http_code}' "https://$host:$https/melden")
[ "$status" = 502 ] || fail "$two: expected 502 with both nodes gone, got $status"
sleep 0.5
if grep -rl "$CLIENT" "$work/nginx2/logs" 2>/dev/null; then fail "$two: the client address is in a log (above)"; fi
echo "$two: nginx -t valid; 6 of 6 requests served with one node killed, 502 with both; no client address logged"

step "caddy"
# Caddy keeps state under HOME; give it a scratch one.
caddy() { HOME="$work/caddy-home" XDG_CONFIG_HOME="$work/caddy-home/config" XDG_DATA_HOME="$work/caddy-home/data" command caddy "$@"; }
mkdir -p "$work/caddy-home"
caddy validate --config deploy/caddy/Caddyfile --adapter caddyfile > "$work/caddy-validate.log" 2>&1 \
  || { cat "$work/caddy-validate.log"; fail "caddy validate"; }
caddy fmt deploy/caddy/Caddyfile | diff -q deploy/caddy/Caddyfile - >/dev/null || fail "deploy/caddy/Caddyfile: run caddy fmt"
grep -q 'header_up -X-Forwarded-For' deploy/caddy/Caddyfile || fail "Caddyfile passes X-Forwarded-For on"
echo "caddy validate: the example is valid"
https=$(free_port); http=$(free_port); upstream=$(free_port)
# The same file with local ports, Caddy's own test CA instead of Let's
# Encrypt, and no admin endpoint.
python3 - "$https" "$http" "$upstream" "$work/caddy" > "$work/Caddyfile.live" <<'EOF'
import sys
https, http, upstream, storage = sys.argv[1:]
text = open("deploy/caddy/Caddyfile").read()
text = text.replace("{\n", f"{{\n\tadmin off\n\tskip_install_trust\n\thttp_port {http}\n\thttps_port {https}\n\tstorage file_system {storage}\n", 1)
text = text.replace("meldpunt.example.nl {", "meldpunt.example.nl {\n\ttls internal", 1)
text = text.replace("127.0.0.1:8080", f"127.0.0.1:{upstream}")
print(text)
EOF
env HOME="$work/caddy-home" XDG_CONFIG_HOME="$work/caddy-home/config" XDG_DATA_HOME="$work/caddy-home/data" \
  caddy run --config "$work/Caddyfile.live" --adapter caddyfile > "$work/caddy.log" 2>&1 &
pids+=($!); wait_port "$https"
check_proxy_live caddy "$https" "$http" "$upstream" "$work/caddy.log"

step "tor onion service"
mkdir -m 0700 -p "$work/tor/data"
{ echo "DataDirectory $work/tor/data"; echo "SocksPort 0"; echo "Log notice stdout"
  sed "s#/var/lib/tor/meldkluis/#$work/tor/hs/#" deploy/tor/torrc-meldkluis; } > "$work/tor/torrc"
tor --verify-config -f "$work/tor/torrc" > "$work/tor/verify.log" 2>&1 || { cat "$work/tor/verify.log"; fail "tor --verify-config"; }
echo "tor --verify-config: the snippet is valid"
if unshare --net true 2>/dev/null; then
  # Without network tor still makes the service's keys and address.
  unshare --net tor -f "$work/tor/torrc" > "$work/tor/run.log" 2>&1 &
  tor_pid=$!; pids+=($tor_pid)
  for _ in $(seq 100); do [ -s "$work/tor/hs/hostname" ] && break; sleep 0.2; done
  kill "$tor_pid" 2>/dev/null || true
  onion=$(cat "$work/tor/hs/hostname" 2>/dev/null) || fail "tor made no onion address"
  MELDKLUIS_DATA_DIR="$work/data" MELDKLUIS_KEYS_DIR="$work/keys" \
    "$BIN/meldkluis" check-config --listen "127.0.0.1:$(free_port)" --onion-location "http://$onion" > "$work/onion.log" 2>&1 \
    || { cat "$work/onion.log"; fail "check-config refuses tor's onion address"; }
  echo "tor made $onion offline; check-config accepts it as onion_location"
else
  echo "skipped running tor: no network namespace here (unshare --net)"
fi

step "container recipe (static: no container engine on this machine)"
cf=deploy/container/Containerfile
[ "$(grep -c '^FROM ' "$cf")" = 2 ] || fail "$cf: expected a build and a runtime stage"
grep -Eq '^FROM [^ ]+:latest' "$cf" && fail "$cf: no :latest images"
grep -Eiq '^ADD ' "$cf" && fail "$cf: use COPY, not ADD"
user=$(sed -n 's/^USER //p' "$cf" | tail -1)
case "$user" in ''|0|0:*|root|root:*) fail "$cf: the image must not run as root";; esac
grep -q 'cargo build --release --locked --bin meldkluis' "$cf" || fail "$cf: build with --locked"
# Every source the build copies exists and is not ignored.
for src in $(awk '/^COPY / && !/--from/ { for (i = 2; i < NF; i++) print $i }' "$cf"); do
  [ -e "$src" ] || fail "$cf copies $src, which does not exist"
  grep -qx "!${src%/}/\?" deploy/container/Containerfile.dockerignore || grep -qx "!$src" deploy/container/Containerfile.dockerignore \
    || fail "$cf copies $src, but the ignore file leaves it out"
done
entry=$(sed -n 's/^ENTRYPOINT \["\([^"]*\)".*/\1/p' "$cf")
grep -q "^COPY --from=build /out$entry $entry" "$cf" || fail "$cf: the entrypoint $entry is not copied from the build"
port=$(sed -n 's/^EXPOSE //p' "$cf")
grep -q "MELDKLUIS_LISTEN=0.0.0.0:$port" "$cf" || fail "$cf: EXPOSE $port differs from MELDKLUIS_LISTEN"
# The binary needs only what the distroless cc image has.
ldd "$BIN/meldkluis" | awk '{print $1}' | grep -Ev '^(linux-vdso\.so\.1|libgcc_s\.so\.1|libm\.so\.6|libc\.so\.6|/lib64/ld-linux-x86-64\.so\.2|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1)$' \
  && fail "the server needs a library the distroless cc image lacks (above)"
# Run it as the image would: its environment and user, a data directory
# owned by that user, the cards read-only.
mkdir -p "$work/image/var/lib/meldkluis" "$work/image/etc/meldkluis"
cp -r "$work/keys" "$work/image/etc/meldkluis/keys"
image_env=()
while read -r pair; do
  image_env+=("$(sed -e "s#=/var/lib/meldkluis#=$work/image/var/lib/meldkluis#" -e "s#=/etc/meldkluis#=$work/image/etc/meldkluis#" \
    -e "s#=0.0.0.0:$port#=127.0.0.1:$(free_port)#" <<<"$pair")")
done < <(python3 - "$cf" <<'EOF'
import shlex, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
for line in text.splitlines():
    if line.startswith("ENV "):
        print("\n".join(shlex.split(line[4:])))
EOF
)
[ "${#image_env[@]}" -ge 3 ] || fail "$cf: could not read its ENV"
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  chown -R "${user%%:*}:${user#*:}" "$work/image/var/lib/meldkluis"
  chmod 0755 "$work" "$work/image" "$work/image/etc" "$work/image/etc/meldkluis" "$work/image/var" "$work/image/var/lib"
  run_as=(setpriv --reuid "${user%%:*}" --regid "${user#*:}" --clear-groups)
fi
env -i "${image_env[@]}" "${run_as[@]}" "$BIN/meldkluis" check-config > "$work/image.log" 2>&1 \
  || { cat "$work/image.log"; fail "the image's settings do not pass check-config"; }
env -i "${image_env[@]}" "${run_as[@]}" "$BIN/meldkluis" serve > "$work/image-serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/image-serve.log" && break; sleep 0.1; done
grep -q "listening on" "$work/image-serve.log" || { cat "$work/image-serve.log"; fail "the image's command does not serve"; }
[ -f "$work/image/var/lib/meldkluis/meldkluis.sqlite" ] || fail "the image's data directory is not used"
echo "Containerfile: static checks pass; its user, environment and paths serve"

step "offline build of the reviewer (docs/deploy.md)"
if [ "${MELDKLUIS_SKIP_OFFLINE_BUILD:-}" = 1 ]; then
  echo "skipped (MELDKLUIS_SKIP_OFFLINE_BUILD=1)"
else
  bash deploy/vendor-source.sh "$work/meldkluis-src.tar.gz" | tail -1
  mkdir -p "$work/offline/cargo-home"
  tar -xzf "$work/meldkluis-src.tar.gz" -C "$work/offline"
  no_network=()
  if unshare --net true 2>/dev/null; then no_network=(unshare --net); else
    echo "note: no network namespace here; relying on --offline and an empty cargo home"; fi
  (
    cd "$work/offline/meldkluis-src"
    # The recipe, word for word; an empty CARGO_HOME proves nothing comes
    # from this machine's download cache.
    "${no_network[@]}" env CARGO_HOME="$work/offline/cargo-home" CARGO_NET_OFFLINE=true \
      cargo build --offline --locked --release --no-default-features --features review --bin meldkluis-review
  ) > "$work/offline/build.log" 2>&1 || { tail -30 "$work/offline/build.log"; fail "the offline build"; }
  built="$work/offline/meldkluis-src/target/release"
  "$built/meldkluis-review" --version
  echo "offline passphrase 123" > "$work/offline/pass"
  "$built/meldkluis-review" --vault "$work/offline/vault" --passphrase-file "$work/offline/pass" init \
    --name "Offline" --organisation "Test" --kind external --id vp-offline >/dev/null
  "$built/meldkluis-review" --vault "$work/offline/vault" --passphrase-file "$work/offline/pass" \
    outbox "$work/offline/outbox.tar" >/dev/null
  # Checksums: written, verified, and a changed copy is caught.
  mkdir -p "$work/offline/dist"
  cp "$built/meldkluis-review" "$work/offline/dist/"
  bash deploy/checksums.sh "$work/offline/dist"
  (cd "$work/offline/dist" && sha256sum -c SHA256SUMS) || fail "sha256sum -c"
  printf 'x' >> "$work/offline/dist/meldkluis-review"
  (cd "$work/offline/dist" && sha256sum -c SHA256SUMS >/dev/null 2>&1) && fail "a changed binary passed sha256sum -c"
  echo "offline build: built without network, works, checksums verify"
fi

step "deploy checks passed"
