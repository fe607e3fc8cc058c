#!/usr/bin/env bash
# Throwaway Kerberos realm + NTLM accounts for tests and the demo.
#   scripts/realm.sh start DIR [REALM]   -> creates DIR, starts krb5kdc on 127.0.0.1:<free port>
#   scripts/realm.sh stop DIR
# Writes DIR/env (export lines). Never touches /etc/krb5.conf or a system KDC.
set -euo pipefail
cmd=${1:?usage: realm.sh start|stop DIR [REALM]}
dir=${2:?usage: realm.sh start|stop DIR [REALM]}
realm=NEGIO.TEST
[ "$cmd" = start ] && [ -n "${3:-}" ] && [ "${3:-}" != 0 ] && realm=$3
PATH=$PATH:/usr/sbin:/sbin

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# If the realm belongs to a process (a test), stop the KDC when that process is gone, even if it
# crashed and never ran its own cleanup.
watch_owner() {
  [ -n "${NEGIO_REALM_OWNER_PID:-}" ] || return 0
  ( owner=$NEGIO_REALM_OWNER_PID
    while kill -0 "$owner" 2>/dev/null && [ -f "$dir/kdc.pid" ]; do sleep 1; done
    if [ -f "$dir/kdc.pid" ]; then
      kill "$(cat "$dir/kdc.pid")" 2>/dev/null
      # a test's temporary realm is removed with it
      case "$dir" in /tmp/negio-test-*) sleep 1; rm -rf "$dir" ;; esac
    fi
  ) </dev/null >/dev/null 2>&1 &
}

start_kdc() {
  # -T shifts the KDC's clock by the given number of seconds (clock-skew tests)
  if [ "${1:-0}" != 0 ]; then
    krb5kdc -n -T "$1" -P "$dir/kdc.pid" >>"$dir/kdc.log" 2>&1 &
  else
    krb5kdc -n -P "$dir/kdc.pid" >>"$dir/kdc.log" 2>&1 &
  fi
  echo $! > "$dir/kdc.pid"
}

stop_kdc() {
  if [ -f "$dir/kdc.pid" ]; then
    pid=$(cat "$dir/kdc.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$dir/kdc.pid"
  fi
}

wait_kdc() {
  # the KDC is up once its TCP port accepts connections
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "realm.sh: KDC did not come up (see $dir/kdc.log)" >&2
  return 1
}

case "$cmd" in
restart-kdc)
  . "$dir/env"
  stop_kdc
  start_kdc "${3:-0}"
  wait_kdc "$NEGIO_KDC_PORT"
  exit 0 ;;
stop)
  stop_kdc
  exit 0 ;;
start) ;;
*) echo "usage: realm.sh start|stop|restart-kdc DIR [REALM|OFFSET]" >&2; exit 2 ;;
esac

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
port=$(free_port)
umask 077
cat > "$dir/krb5.conf" <<CONF
[libdefaults]
  default_realm = $realm
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  udp_preference_limit = 1
  forwardable = true
  ignore_acceptor_hostname = false
[realms]
  $realm = {
    kdc = 127.0.0.1:$port
  }
[domain_realm]
  localhost = $realm
CONF
cat > "$dir/kdc.conf" <<CONF
[kdcdefaults]
  kdc_listen = 127.0.0.1:$port
  kdc_tcp_listen = 127.0.0.1:$port
[realms]
  $realm = {
    database_name = $dir/principal
    key_stash_file = $dir/stash
    kdc_listen = 127.0.0.1:$port
    kdc_tcp_listen = 127.0.0.1:$port
    max_life = 10h
    max_renewable_life = 7d
  }
[logging]
  kdc = FILE:$dir/kdc.log
  default = FILE:$dir/kdc.log
CONF
echo "gssntlmssp_v1 1.3.6.1.4.1.311.2.2.10 /usr/lib/x86_64-linux-gnu/gssntlmssp/gssntlmssp.so" > "$dir/mech.conf"

export KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf
pw() { head -c 18 /dev/urandom | base64 | tr -d '/+=' ; }
alice_pw=$(pw); bob_pw=$(pw); master=$(pw)
printf '%s\n' "$alice_pw" > "$dir/alice.password"
printf '%s\n' "$bob_pw" > "$dir/bob.password"
kdb5_util create -s -r "$realm" -P "$master" >/dev/null 2>&1
kadmin.local -r "$realm" -q "addprinc -pw $alice_pw alice" >/dev/null 2>&1
kadmin.local -r "$realm" -q "addprinc -pw $bob_pw bob" >/dev/null 2>&1
kadmin.local -r "$realm" -q "addprinc -randkey negio/localhost" >/dev/null 2>&1
kadmin.local -r "$realm" -q "addprinc -randkey other/localhost" >/dev/null 2>&1
kadmin.local -r "$realm" -q "ktadd -k $dir/service.keytab negio/localhost" >/dev/null 2>&1
kadmin.local -r "$realm" -q "ktadd -k $dir/other.keytab other/localhost" >/dev/null 2>&1
# root@REALM exists so that tests can prove it is never impersonated as uid 0
root_pw=$(pw)
printf '%s\n' "$root_pw" > "$dir/root.password"
kadmin.local -r "$realm" -q "addprinc -pw $root_pw root" >/dev/null 2>&1
# carol authenticates with a client keytab given explicitly (not the default KRB5_CLIENT_KTNAME,
# which MIT would use by itself whenever a client has no ticket)
kadmin.local -r "$realm" -q "addprinc -randkey carol" >/dev/null 2>&1
kadmin.local -r "$realm" -q "ktadd -k $dir/carol.keytab carol" >/dev/null 2>&1
printf 'NEGIO:alice:%s\nNEGIO:bob:%s\n' "$alice_pw" "$bob_pw" > "$dir/ntlm_users"

start_kdc 0
watch_owner
cat > "$dir/env" <<ENV
export KRB5_CONFIG=$dir/krb5.conf
export KRB5_KDC_PROFILE=$dir/kdc.conf
export KRB5CCNAME=FILE:$dir/cc
export KRB5_KTNAME=FILE:$dir/service.keytab
export KRB5_CLIENT_KTNAME=FILE:$dir/client.keytab
export KRB5RCACHEDIR=$dir
export GSS_MECH_CONFIG=$dir/mech.conf
export NTLM_USER_FILE=$dir/ntlm_users
export NETBIOS_COMPUTER_NAME=NEGIO-HOST
export NETBIOS_DOMAIN_NAME=NEGIO
export NEGIO_REALM=$realm
export NEGIO_REALM_DIR=$dir
export NEGIO_KDC_PORT=$port
ENV
# wait for the KDC, then get alice a ticket
. "$dir/env"
wait_kdc "$port"
kinit alice <"$dir/alice.password" >/dev/null
klist -s || { echo "realm.sh: no ticket for alice (see $dir/kdc.log)" >&2; exit 1; }
echo "realm $realm in $dir, KDC on 127.0.0.1:$port"
