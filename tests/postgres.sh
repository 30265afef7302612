#!/usr/bin/env bash
# Runs a command with a real PostgreSQL of its own: Debian's PostgreSQL 15
# (installed if missing), a new cluster in a temporary directory, started as
# the unprivileged `postgres` user (PostgreSQL refuses root) on a free port
# of 127.0.0.1 with its socket in that directory, a role `meldkluis` with a
# password. The command gets
#   MELDKLUIS_TEST_POSTGRES_URL   postgres://meldkluis:…@127.0.0.1:PORT/postgres
#   MELDKLUIS_TEST_POSTGRES_PASSWORD_FILE  a file holding the password
#   MELDKLUIS_TEST_POSTGRES_CA        the CA (PEM) that signed the server's
#                                     certificate (for localhost and 127.0.0.1):
#                                     the server has ssl=on
#   MELDKLUIS_TEST_POSTGRES_OTHER_CA  a CA that signed nothing of it
#   MELDKLUIS_TEST_POSTGRES_SOCKET_DIR  the server's Unix socket directory
#                                     (no TLS there: PostgreSQL refuses it)
# and each test makes its own database there. Plain TCP connections work
# too (pg_hba allows both), so sslmode=disable tests run unchanged. The cluster and its
# directory are gone when the command ends, whatever its outcome.
#
#   bash tests/postgres.sh cargo nextest run --lib store
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: tests/postgres.sh COMMAND [ARG…]" >&2; exit 2; }

bin=""
for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && bin="$dir"; done
if [ -z "$bin" ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends postgresql
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && bin="$dir"; done
fi
[ -n "$bin" ] || { echo "no PostgreSQL binaries under /usr/lib/postgresql" >&2; exit 1; }

tmp=$(mktemp -d /tmp/meldkluis-pg.XXXXXX)
# As root, the cluster belongs to `postgres`; as anyone else, to them.
as_owner() { "$@"; }
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$tmp"
  as_owner() { runuser -u postgres -- "$@"; }
fi
chmod 700 "$tmp"

stop() {
  as_owner "$bin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap stop EXIT

password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$password" > "$tmp/password"
chmod 600 "$tmp/password"
[ "$(id -u)" -eq 0 ] && chown postgres "$tmp/password"
as_owner "$bin/initdb" -D "$tmp/data" -U meldkluis --pwfile="$tmp/password" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$tmp/initdb.log" 2>&1 ||
  { cat "$tmp/initdb.log"; exit 1; }

# A CA and a server certificate of its, made here (no network, a second or
# less), and another CA that signed nothing here: tests/pg_tls.rs checks
# that a server certificate of the wrong CA is refused.
command -v openssl >/dev/null || {
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends openssl
}
mkdir "$tmp/tls"
(
  cd "$tmp/tls"
  ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  for ca in ca other-ca; do
    openssl req -x509 $ec -days 2 -subj "/CN=meldkluis test $ca" \
      -keyout "$ca.key" -out "$ca.pem" 2>/dev/null
  done
  openssl req $ec -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem 2>/dev/null
  rm ca.key other-ca.key server.csr
  chmod 600 server.key
)
[ "$(id -u)" -eq 0 ] && chown -R postgres "$tmp/tls"

# A free port: ask the kernel, then let PostgreSQL take it (tries again
# when another process took it in between).
for attempt in 1 2 3 4 5; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The settings of docs/postgresql.md that keep a melder's metadata out
  # of the log, and durable commits (fsync stays on: the tests check what
  # a crash leaves).
  if as_owner "$bin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start -o "\
      -c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$tmp \
      -c ssl=on -c ssl_cert_file=$tmp/tls/server.pem -c ssl_key_file=$tmp/tls/server.key \
      -c max_connections=400 -c shared_buffers=64MB -c fsync=on -c synchronous_commit=on \
      -c log_connections=off -c log_disconnections=off -c log_statement=none \
      -c log_min_duration_statement=-1 -c log_error_verbosity=terse \
      -c log_min_error_statement=panic -c log_line_prefix='%m [%p] ' \
      -c track_commit_timestamp=off" >/dev/null; then
    break
  fi
  [ "$attempt" -lt 5 ] || { cat "$tmp/server.log"; exit 1; }
done

# The test process reads the password file as itself.
cp "$tmp/password" "$tmp/password.test"
chown "$(id -u)" "$tmp/password.test" 2>/dev/null || true
export MELDKLUIS_TEST_POSTGRES_URL="postgres://meldkluis:$password@127.0.0.1:$port/postgres"
export MELDKLUIS_TEST_POSTGRES_PASSWORD_FILE="$tmp/password.test"
export MELDKLUIS_TEST_POSTGRES_CA="$tmp/tls/ca.pem"
export MELDKLUIS_TEST_POSTGRES_OTHER_CA="$tmp/tls/other-ca.pem"
export MELDKLUIS_TEST_POSTGRES_SOCKET_DIR="$tmp"
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (cluster in $tmp)"
set +e
"$@"
status=$?
set -e
if [ "$status" -ne 0 ] && [ -s "$tmp/server.log" ]; then
  echo "--- PostgreSQL's log (the last 40 lines) ---"
  tail -n 40 "$tmp/server.log"
fi
exit "$status"
