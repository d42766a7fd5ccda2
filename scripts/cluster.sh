#!/usr/bin/env bash
# docker-compose.yml's topology as plain processes on loopback, for machines without a
# container engine:
#
#   redis-server ── mpc-broker #1 ─┐
#                └─ mpc-broker #2 ─┴── nginx (load balancer) ── mpc-node join × 3
#   turnserver (coturn: STUN/TURN with the brokers' shared secret)
#
# Both brokers use one key file (one broker identity) and one Redis. The demo identities,
# credentials and the 3-party `sum` session come from deploy/setup.sh, and the parties join
# with deploy/join.sh, exactly as in docker compose; everything goes through the load
# balancer. Prints each party's result on stdout and exits 0 only if all three succeeded
# with the same session, roster and sum; 1 otherwise, saying what failed, with the logs.
# Every process and temporary file is removed on exit, also on failure or Ctrl-C.
#
#   bash scripts/cluster.sh
#
# MPC_BIN_DIR: a directory holding mpc-broker and mpc-node (default: build them with cargo
# and use target/debug). CLUSTER_TIMEOUT: seconds the parties may take (default 150).
# CLUSTER_KEEP=1 keeps the temporary directory (logs, keys) for inspection.
# CLUSTER_ICE=relay publishes the session relay-only ("ice": "relay"): every channel then
# runs through coturn, and the script checks that coturn relayed it.
# Needs redis-server, nginx and turnserver (Debian: redis-server, nginx, coturn;
# scripts/test.sh installs them) and python3 (free ports). Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PARTIES=(alice bob carol)
INPUTS=(12 30 100)
EXPECTED_SUM=142
party_timeout=${CLUSTER_TIMEOUT:-150}
start_timeout=30

say() { echo "cluster: $*" >&2; }

tmp=""
pids=()
names=()

# The tail of every log so far, for failures.
dump_logs() {
    [ -n "$tmp" ] || return 0
    local f
    for f in "$tmp"/logs/*; do
        [ -s "$f" ] || continue
        echo "---- ${f##*/} (last 25 lines)" >&2
        tail -n 25 "$f" >&2
    done
}

die() {
    say "FAILED: $*"
    dump_logs
    exit 1
}

cleanup() {
    local status=$? i deadline
    trap - EXIT INT TERM
    # Newest first: the parties, nginx, the brokers, coturn, Redis.
    local order=()
    for i in "${!pids[@]}"; do order=("$i" "${order[@]}"); done
    for i in "${order[@]}"; do
        kill -TERM "${pids[$i]}" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    for i in "${order[@]}"; do
        while kill -0 "${pids[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
            sleep 0.1
        done
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            say "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM; killing it"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
        wait "${pids[$i]}" 2>/dev/null || true
    done
    if [ -n "$tmp" ]; then
        if [ "${CLUSTER_KEEP:-}" = 1 ]; then
            say "kept $tmp"
        else
            rm -rf "$tmp"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

# Starts a background process named $1 (its output in logs/$1.log), remembered for cleanup.
spawn() {
    local name=$1
    shift
    "$@" >"$tmp/logs/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
}

# The pid of the process spawned as $1.
pid_of() {
    local i
    for i in "${!names[@]}"; do
        [ "${names[$i]}" = "$1" ] && { echo "${pids[$i]}"; return; }
    done
}

# wait_for NAME WHAT CMD…: polls CMD until it succeeds, for at most $start_timeout seconds;
# fails at once if the process NAME has exited.
wait_for() {
    local name=$1 what=$2 pid deadline=$((SECONDS + start_timeout))
    shift 2
    pid=$(pid_of "$name")
    until "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || die "$name exited before $what (see its log below)"
        [ $SECONDS -lt $deadline ] || die "$name: $what not within ${start_timeout}s"
        sleep 0.2
    done
}

# A TCP port on 127.0.0.1 accepts connections.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_get PORT PATH: the body of a 200 answer from 127.0.0.1:PORT (HTTP/1.0, 5 s at most).
http_get() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$2" "$1" >&3
        local line status=""
        IFS= read -r -t 5 status <&3 || exit 1
        [[ $status == HTTP/1.?\ 200* ]] || exit 1
        while IFS= read -r -t 5 line <&3 && [ "${line%$'\r'}" != "" ]; do :; done
        timeout 5 cat <&3
    )
}

# N distinct free ports on 127.0.0.1, each free for both TCP and UDP (coturn uses both).
free_ports() {
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to pick free ports"
    python3 - "$1" <<'EOF'
import socket, sys
n, held, ports = int(sys.argv[1]), [], []
while len(ports) < n:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        continue
    held += [t, u]
    ports.append(port)
print(" ".join(map(str, ports)))
EOF
}

# The path of a tool (also in /usr/sbin, which is not on every user's PATH), or a failure
# saying which package provides it.
tool() {
    local p
    p=$(command -v "$1" 2>/dev/null) || p=""
    [ -n "$p" ] || { [ -x "/usr/sbin/$1" ] && p=/usr/sbin/$1; }
    [ -n "$p" ] || die "$1 not found: install the Debian package $2 (apt-get install $2; scripts/test.sh does it)"
    echo "$p"
}

# ---- binaries and tools
if [ -n "${MPC_BIN_DIR:-}" ]; then
    bin=$(cd "$MPC_BIN_DIR" 2>/dev/null && pwd) || die "MPC_BIN_DIR=$MPC_BIN_DIR is not a directory"
else
    say "building mpc-broker and mpc-node (set MPC_BIN_DIR to use existing binaries)"
    cargo build --locked -p broker -p node --bin mpc-broker --bin mpc-node
    bin=$root/target/debug
fi
for b in mpc-broker mpc-node; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing (MPC_BIN_DIR must hold both mpc-broker and mpc-node)"
done
export MPC_NODE=$bin/mpc-node
redis=$(tool redis-server redis-server)
nginx=$(tool nginx nginx)
turnserver=$(tool turnserver coturn)
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) not found"
# (timeout --foreground below: the step stays in this script's process group, so Ctrl-C and a
# kill of the group reach it.)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mpc-cluster.XXXXXX")
mkdir -p "$tmp/logs" "$tmp/redis" "$tmp/nginx" "$tmp/turn"
read -r redis_port turn_port b1_port b2_port lb_port <<<"$(free_ports 5)"
[ -n "$lb_port" ] || die "could not pick free ports"
turn_secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

# ---- identities (deploy/setup.sh keys): the shared broker key, demo keys, credentials
timeout --foreground 60 bash deploy/setup.sh keys "$tmp/data" 2>"$tmp/logs/setup-keys.log" \
    || die "deploy/setup.sh keys failed"
organizer=$(tr -d '\n' <"$tmp/data/organizer.did")
say "organizer $organizer; parties ${PARTIES[*]} (demo seeds, deploy/setup.sh)"

# ---- Redis
spawn redis "$redis" --bind 127.0.0.1 --port "$redis_port" --dir "$tmp/redis" \
    --appendonly yes --save "" --daemonize no --protected-mode yes
wait_for redis "listening on port $redis_port" listening "$redis_port"
say "redis-server on 127.0.0.1:$redis_port (appendonly, $tmp/redis)"

# ---- coturn: STUN and TURN with the REST-credential secret the brokers sign with
: >"$tmp/turn/turnserver.conf" # not /etc/turnserver.conf
spawn coturn "$turnserver" -c "$tmp/turn/turnserver.conf" \
    --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$turn_port" \
    --use-auth-secret --static-auth-secret="$turn_secret" --realm=mpc-broker.local \
    --allow-loopback-peers --fingerprint --no-cli --no-tls --no-dtls --no-rfc5780 \
    --db="$tmp/turn/turndb" --pidfile="$tmp/turn/turnserver.pid" \
    --log-file=stdout --simple-log --verbose
wait_for coturn "listening on port $turn_port" listening "$turn_port"
say "turnserver (coturn) on 127.0.0.1:$turn_port (use-auth-secret)"

# ---- two broker replicas: one key file, one Redis
for i in 1 2; do
    port_var=b${i}_port
    NO_COLOR=1 MPC_BROKER_TURN_SECRET=$turn_secret spawn "broker$i" "$bin/mpc-broker" \
        --config "$tmp/data/broker.json" --listen "127.0.0.1:${!port_var}" \
        --redis-url "redis://127.0.0.1:$redis_port/0" --wait-for-store 10 \
        --stun "stun:127.0.0.1:$turn_port" --turn "turn:127.0.0.1:$turn_port"
done
for i in 1 2; do
    port_var=b${i}_port
    wait_for "broker$i" "healthy on port ${!port_var}" http_get "${!port_var}" /healthz
done
field() { sed -n "/\"$1\": *\"/{s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p;q;}"; }
did1=$(http_get "$b1_port" /v1/broker | field did)
did2=$(http_get "$b2_port" /v1/broker | field did)
[ -n "$did1" ] && [ "$did1" = "$did2" ] \
    || die "the replicas are not one broker identity: broker1 is '$did1', broker2 is '$did2'"
say "mpc-broker replicas on 127.0.0.1:$b1_port and 127.0.0.1:$b2_port, both $did1"

# ---- nginx in front of both
user_line=""
# As root, nginx would switch its workers to "nobody:nobody", and Debian has no group nobody.
if [ "$(id -u)" -eq 0 ]; then user_line="user root root;"; fi
cat >"$tmp/nginx/nginx.conf" <<EOF
# Generated by scripts/cluster.sh; the proxying is deploy/nginx-proxy.conf, as in compose.
daemon off;
master_process on;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/logs/nginx-error.log warn;
$user_line
events {
    worker_connections 256;
}
http {
    log_format upstream '\$request_method \$uri \$status upstream=\$upstream_addr';
    access_log $tmp/logs/nginx-access.log upstream;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        '' '';
    }
    upstream brokers {
        least_conn;
        server 127.0.0.1:$b1_port max_fails=1 fail_timeout=5s;
        server 127.0.0.1:$b2_port max_fails=1 fail_timeout=5s;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$lb_port;
        include $root/deploy/nginx-proxy.conf;
    }
}
EOF
nginx_args=(-p "$tmp/nginx" -c "$tmp/nginx/nginx.conf")
# -e (nginx ≥ 1.19.5): the error log before the configuration is read, instead of the
# compiled-in path, which may not be writable.
if "$nginx" -h 2>&1 | grep -q -- '-e filename'; then nginx_args+=(-e "$tmp/logs/nginx-error.log"); fi
"$nginx" -t -q "${nginx_args[@]}" 2>"$tmp/logs/nginx-test.log" || die "nginx rejected the generated configuration"
spawn nginx "$nginx" "${nginx_args[@]}"
wait_for nginx "proxying on port $lb_port" http_get "$lb_port" /healthz
lb=http://127.0.0.1:$lb_port
say "nginx load balancer on $lb"

# ---- the session (deploy/setup.sh publish), published through the load balancer
ICE_POLICY=${CLUSTER_ICE:-all} timeout --foreground 60 bash deploy/setup.sh publish "$lb" "$tmp/data" 2>"$tmp/logs/setup-publish.log" \
    || die "deploy/setup.sh publish through $lb failed"
session=$(tr -d '\n' <"$tmp/data/session.id")
say "session $session published; ${#PARTIES[@]} parties join through $lb"

# ---- three parties (deploy/join.sh), each a separate mpc-node join process
declare -A party_pid=()
for i in "${!PARTIES[@]}"; do
    name=${PARTIES[$i]}
    bash deploy/join.sh "$lb" "$tmp/data" "$name" "${INPUTS[$i]}" \
        --udp 127.0.0.1:0 --wait 120 >"$tmp/$name.out" 2>"$tmp/logs/$name.log" &
    pids+=($!)
    names+=("$name")
    party_pid[$name]=$!
done
started=$SECONDS
deadline=$((started + party_timeout))
declare -A party_status=()
while [ ${#party_status[@]} -lt ${#PARTIES[@]} ]; do
    for name in "${PARTIES[@]}"; do
        [ -z "${party_status[$name]:-}" ] || continue
        if ! kill -0 "${party_pid[$name]}" 2>/dev/null; then
            st=0
            wait "${party_pid[$name]}" || st=$?
            party_status[$name]=$st
            say "$name exited with status $st after $((SECONDS - started))s"
            # After a failure, the others get 30 s more to report how they saw it.
            if [ "$st" -ne 0 ] && [ $deadline -gt $((SECONDS + 30)) ]; then deadline=$((SECONDS + 30)); fi
        fi
    done
    if [ ${#party_status[@]} -lt ${#PARTIES[@]} ] && [ $SECONDS -ge $deadline ]; then
        running=() failed=()
        for name in "${PARTIES[@]}"; do
            if [ -z "${party_status[$name]:-}" ]; then
                running+=("$name")
            elif [ "${party_status[$name]}" -ne 0 ]; then
                failed+=("$name")
            fi
        done
        if [ ${#failed[@]} -gt 0 ]; then
            die "${failed[*]} failed (see the log below), and ${running[*]} still waited 30 s later"
        fi
        die "${running[*]} did not finish within ${party_timeout}s (CLUSTER_TIMEOUT)"
    fi
    sleep 0.2
done

# ---- each party's output, then consistency
failed=()
for i in "${!PARTIES[@]}"; do
    name=${PARTIES[$i]}
    echo "== $name (input ${INPUTS[$i]}): exit ${party_status[$name]}"
    cat "$tmp/$name.out"
    [ "${party_status[$name]}" -eq 0 ] || failed+=("$name")
done
[ ${#failed[@]} -eq 0 ] || die "party ${failed[*]} failed (its log below names the phase and the reason)"

# Compare the fields that must agree. mpc-node prints pretty JSON; compacted, each field is
# "name":value with no spaces (DIDs, session ids and numbers have none).
compact() { tr -d ' \n' <"$tmp/$1.out"; }
# json_value NAME REGEX: the value of the first field NAME matching REGEX, read from stdin.
json_value() { { grep -o "\"$1\":$2" || true; } | sed -n "1s/^\"$1\"://p"; }
ref=${PARTIES[0]}
ref_parties=$(compact "$ref" | json_value parties '\[[^]]*\]')
indices=()
for name in "${PARTIES[@]}"; do
    c=$(compact "$name")
    got=$(json_value session '"[^"]*"' <<<"$c")
    [ "$got" = "\"$session\"" ] || die "$name reports session ${got:-none}, not the published $session"
    got=$(json_value parties '\[[^]]*\]' <<<"$c")
    [ -n "$got" ] && [ "$got" = "$ref_parties" ] || die "$name's roster ${got:-(none)} differs from $ref's $ref_parties"
    did=$(tr -d '\n' <"$tmp/data/$name.did")
    grep -q "\"$did\"" <<<"$got" || die "$name ($did) is not on its roster $got"
    got=$(json_value sum '-\{0,1\}[0-9]*' <<<"$c")
    [ "$got" = "$EXPECTED_SUM" ] || die "$name's sum is ${got:-missing}, expected $EXPECTED_SUM"
    got=$(json_value count '[0-9]*' <<<"$c")
    [ "$got" = "${#PARTIES[@]}" ] || die "$name's count is ${got:-missing}, expected ${#PARTIES[@]}"
    indices+=("$(json_value index '[0-9]*' <<<"$c")")
done
[ "$(printf '%s\n' "${indices[@]}" | sort -u | grep -c .)" -eq ${#PARTIES[@]} ] \
    || die "the parties do not have distinct roster indices: ${indices[*]}"

# Both replicas served the session. nginx balances by open connections (least_conn), so the
# parties' signaling sockets usually land on both and their messages cross replicas through
# Redis. nginx logs a WebSocket when it closes: give it a moment after the parties' exit.
served() { grep -c "upstream=127.0.0.1:$1\$" "$tmp/logs/nginx-access.log" || true; }
sockets() { grep -c "/signal 101 upstream=127.0.0.1:$1\$" "$tmp/logs/nginx-access.log" || true; }
log_deadline=$((SECONDS + 5))
while [ $(($(sockets "$b1_port") + $(sockets "$b2_port"))) -lt ${#PARTIES[@]} ] && [ $SECONDS -lt $log_deadline ]; do
    sleep 0.1
done
n1=$(served "$b1_port")
n2=$(served "$b2_port")
[ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] || die "the load balancer did not use both replicas (broker1: $n1 requests, broker2: $n2)"
say "requests through the load balancer: broker1 $n1 ($(sockets "$b1_port") signaling sockets), broker2 $n2 ($(sockets "$b2_port"))"

# The parties allocated TURN relays on coturn with the credentials the brokers issued them
# (signed with the shared static-auth-secret), although on loopback the direct path wins.
allocs=$(grep -c 'ALLOCATE processed, success' "$tmp/logs/coturn.log" || true)
[ "$allocs" -gt 0 ] || die "no TURN allocation succeeded on coturn: it did not accept the brokers' TURN credentials"
say "coturn: $allocs TURN allocations with broker-issued credentials"
if [ "${CLUSTER_ICE:-all}" = relay ]; then
    # Relay-only: every pair's channel needs a permission on coturn for the other's relay.
    perms=$(grep -c 'CREATE_PERMISSION processed, success' "$tmp/logs/coturn.log" || true)
    [ "$perms" -gt 0 ] || die "the session is relay-only, but coturn created no permission: the channels did not run through TURN"
    say "coturn: relay-only session, $perms permissions created for relayed channels"
fi
say "ok: ${#PARTIES[@]} parties, one session ($session), one roster, sum $EXPECTED_SUM of ${#PARTIES[@]} inputs"
