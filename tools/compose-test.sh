#!/usr/bin/env bash
# make compose-test: docker-compose.yml and the Dockerfile, run for real.
#
# There is no Docker engine and no container registry here, so this script
# brings its own, from Debian packages: rootful podman, with docker-compose 1.29
# talking to podman's Docker-compatible API socket. The images the compose
# file and the Dockerfile name (redis:7, eclipse-mosquitto:2, python:3.11-slim)
# are stand-ins built from a debootstrapped Debian bookworm base (see
# tools/compose-test/*.Containerfile), tagged with those names, so that the
# compose file and the Dockerfile run unchanged. Then:
#
#   1. docker-compose up -d of the whole stack with the `pods` profile, waiting
#      for every healthcheck;
#   2. tools/compose_drill.py: clients on both nodes' published ports (each with
#      a token minted from the stack's auth_secret), a pod's telemetry, the
#      room's owner killed, the takeover timed, the gap check;
#   3. docker-compose down -v, then a check that no container, network, volume
#      or socket service of this run is left.
#
# Everything podman-specific lives here, none of it in the compose file:
#   - containers.conf: default_ulimits within the host's hard limits (podman
#     asks for nofile=1048576 and root here cannot raise its limits: "error
#     setting rlimit type 7: operation not permitted");
#   - healthchecks: podman runs them from systemd timers, and there is no
#     systemd here, so a loop runs `podman healthcheck run` meanwhile;
#   - pip inside a build reaches PyPI only when trusting the host's CA bundle:
#     builds get it mounted over the image's CA store (the python stand-in's
#     pip uses that store);
#   - a storage of its own (images cached across runs) and a socket service
#     of its own, stopped at the end.
#
# It skips, saying why, only where podman cannot run at all: not root, no apt
# to install it, or podman unusable on this kernel. SLEEPSYNC_COMPOSE_TEST=0
# skips it on purpose. Any other failure fails, with the containers' logs.
set -Eeuo pipefail
# A command that fails stops the script; say which (the trap below then tears down).
trap 'echo "compose-test: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/tools/compose-test
VENV=${VENV:-$ROOT/.venv}
# Images and the layer cache persist here between runs (and between worktrees).
STATE=${SLEEPSYNC_COMPOSE_STATE:-/var/lib/sleepsync-compose-test}
RUNROOT=/run/sleepsync-compose-test
SUITE=bookworm
BASE=localhost/sleepsync-compose-test/debian:$SUITE
# runc: crun (podman's default) refuses this kernel's hybrid cgroup layout
# ("cgroups in hybrid mode not supported"); iptables: netavark's firewall
# driver runs it to publish ports (Debian only suggests it); the keyring:
# debootstrap checks the mirror's signatures with it.
PACKAGES=(podman debootstrap uidmap slirp4netns fuse-overlayfs netavark aardvark-dns
    docker-compose runc iptables debian-archive-keyring)
HOST_CA=/etc/ssl/certs/ca-certificates.crt
# The official images the compose file and the Dockerfile name, and the stand-in for each.
declare -A STAND_INS=(
    [redis:7]=redis
    [eclipse-mosquitto:2]=mosquitto
    [python:3.11-slim]=python
)

START=$EPOCHREALTIME
LAST=$START
STEPS=()
say() { printf 'compose-test: %s\n' "$*"; }
SKIPPED=""
skip() {
    say "skipped: $*"
    SKIPPED=1
    exit 0
}
die() {
    trap - ERR
    say "FAILED: $*" >&2
    exit 1
}
# step NAME: NAME took the time since the previous step.
step() {
    local now=$EPOCHREALTIME
    local took
    took=$(awk -v a="$LAST" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
    STEPS+=("$1 $took")
    LAST=$now
    say "$1: ${took}s${2:+ ($2)}"
}

[ "${SLEEPSYNC_COMPOSE_TEST:-1}" = 0 ] && skip "SLEEPSYNC_COMPOSE_TEST=0"
[ "$(id -u)" = 0 ] || skip "needs root (this script sets up rootful podman only)"
[ -x "$VENV/bin/sleepsync" ] || die "no $VENV/bin/sleepsync: run make venv first"

# ---------------------------------------------------------------- packages
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || skip "no apt-get to install ${missing[*]}"
    say "installing ${missing[*]} with apt-get"
    log=$(mktemp)
    # Refuse service starts during the install: nothing gets started behind our back.
    policy=/usr/sbin/policy-rc.d
    own_policy=""
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && own_policy=1
    fi
    if apt-get update >"$log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            "${missing[@]}" >>"$log" 2>&1; then
        status=0
    else
        status=1
    fi
    [ -n "$own_policy" ] && rm -f $policy
    if [ $status != 0 ]; then
        tail -n 5 "$log" >&2
        rm -f "$log"
        skip "apt-get could not install ${missing[*]}"
    fi
    rm -f "$log"
fi
step install "${missing[*]:-nothing missing}"

# ---------------------------------------------------------------- the run's names and teardown
RUN_DIR=$(mktemp -d /tmp/sleepsync-compose-test.XXXXXX)
PROJECT=sleepsynctest$$$RANDOM
PROJECT_DIR=$RUN_DIR/project
SOCKET=$RUN_DIR/podman.sock
SERVICE_PID=""
HEALTH_PID=""
export COMPOSE_PROJECT_NAME=$PROJECT
export COMPOSE_FILE=$PROJECT_DIR/docker-compose.yml
export COMPOSE_PROFILES=pods
export DOCKER_HOST=unix://$SOCKET
export COMPOSE_HTTP_TIMEOUT=120

project_ids() { # KIND (ps -a | network ls | volume ls): this run's objects
    local kind=$1
    shift
    [ -n "${CONTAINERS_CONF:-}" ] || return 0 # podman not set up yet: nothing made
    podman "$kind" "$@" --filter "label=com.docker.compose.project=$PROJECT" \
        --format '{{.ID}}' 2>/dev/null || true
}
dnat_chains() { iptables-save -t nat 2>/dev/null | sed -n 's/^:\(NETAVARK-DN-[^ ]*\).*/\1/p'; }
DNAT_CHAINS=$(dnat_chains)
dump_logs() {
    local id
    for id in $(project_ids ps -a); do
        say "---- logs of $(podman inspect -f '{{.Name}} ({{.State.Status}}, exit {{.State.ExitCode}})' "$id")"
        podman logs --tail 40 "$id" 2>&1 | cut -c 1-400 | sed 's/^/    /' || true
        podman inspect -f '{{with .State.Health}}{{if .Log}}{{.Status}}; last checks:{{range .Log}}
    exit {{.ExitCode}}: {{.Output}}{{end}}{{end}}{{end}}' "$id" 2>/dev/null | cut -c 1-400 | sed '/^$/d;s/^/    health: /'
    done
    if [ -s "$RUN_DIR/podman-service.log" ]; then
        say "---- podman service log (last lines)"
        tail -n 20 "$RUN_DIR/podman-service.log" | sed 's/^/    /'
    fi
}
teardown() {
    local status=$?
    trap - EXIT INT TERM ERR
    set +e
    if [ -n "$SKIPPED" ]; then
        rm -rf "$RUN_DIR"
        exit 0
    fi
    [ -n "$HEALTH_PID" ] && kill "$HEALTH_PID" 2>/dev/null && wait "$HEALTH_PID" 2>/dev/null
    if [ $status != 0 ]; then
        step failed "until the failure"
        dump_logs
        LAST=$EPOCHREALTIME
    fi
    if [ -n "$SERVICE_PID" ] && [ -f "$COMPOSE_FILE" ]; then
        timeout 120 docker-compose down -v --remove-orphans --timeout 5 >"$RUN_DIR/down.log" 2>&1 ||
            { status=1 && say "docker-compose down failed:" && tail -n 5 "$RUN_DIR/down.log"; }
    fi
    # Whatever compose left (or never got to remove), podman removes.
    local ids
    mapfile -t ids < <(project_ids ps -a)
    [ ${#ids[@]} = 0 ] || podman rm -f -v "${ids[@]}" >/dev/null 2>&1
    mapfile -t ids < <(project_ids network ls)
    [ ${#ids[@]} = 0 ] || podman network rm -f "${ids[@]}" >/dev/null 2>&1
    mapfile -t ids < <(project_ids volume ls)
    [ ${#ids[@]} = 0 ] || podman volume rm -f "${ids[@]}" >/dev/null 2>&1
    if [ -n "$SERVICE_PID" ]; then
        kill "$SERVICE_PID" 2>/dev/null
        wait "$SERVICE_PID" 2>/dev/null
    fi
    # netavark 1.4 leaves an empty DNAT chain per network behind; drop the ones
    # this run made (-X refuses a chain still in use).
    local chain
    for chain in $(dnat_chains); do
        grep -qx "$chain" <<<"$DNAT_CHAINS" || iptables -t nat -X "$chain" 2>/dev/null
    done
    step down "docker-compose down -v"
    local left
    left=$(project_ids ps -a)$(project_ids network ls)$(project_ids volume ls)
    if [ -n "$left" ] || { [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; } ||
        [ -e "$SOCKET" ]; then
        say "FAILED: left behind: containers/networks/volumes [$left], service $SERVICE_PID, socket"
        status=1
    else
        say "nothing left: no container, network or volume of $PROJECT, podman service stopped"
    fi
    rm -rf "$RUN_DIR"
    say "times: $(printf '%s, ' "${STEPS[@]}" | sed 's/, $//') (seconds)"
    say "total: $(awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s"
    if [ $status = 0 ]; then
        echo "compose: $CHECKS passed, 0 failed"
    else
        say "FAILED (exit $status)"
    fi
    exit $status
}
CHECKS=0
trap teardown EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- podman's configuration
mkdir -p "$STATE/networks" "$RUNROOT"
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
cat >"$RUN_DIR/containers.conf" <<EOF
[containers]
# Podman's default (nofile=1048576) is above this host's hard limit, and root
# here cannot raise it: every container start would fail on setrlimit.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[network]
network_backend = "netavark"
network_config_dir = "$STATE/networks"

[engine]
# crun refuses hybrid cgroups (v1 controllers plus a v2 hierarchy with
# controllers, as here); runc runs on v1, hybrid and v2 alike.
runtime = "runc"
# No systemd here: cgroups by hand, events to a file.
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUNROOT/libpod"
EOF
# Our own storage: the stand-ins are tagged with official image names, and
# must never shadow a user's real redis:7 or python:3.11-slim.
cat >"$RUN_DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$RUNROOT/storage"
EOF
export CONTAINERS_CONF=$RUN_DIR/containers.conf
export CONTAINERS_STORAGE_CONF=$RUN_DIR/storage.conf
if ! out=$(podman info 2>&1 >/dev/null); then
    skip "podman cannot run here: $(tail -n 1 <<<"$out")"
fi

# ---------------------------------------------------------------- images
# One run at a time builds and starts: the stand-ins and sleepsync:latest are
# shared tags, and containers pin the image they were created from.
exec 9>"$STATE/lock"
flock 9

# The Debian mirror this machine uses, from /etc/apt/sources.list*: the first
# enabled `deb` source for $SUITE (else for any non-security suite) with `main`.
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
            {
                types = uris = suites = comps = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^[ \t]*#/ || $i !~ /:/) continue
                    key = tolower(substr($i, 1, index($i, ":") - 1))
                    val = substr($i, index($i, ":") + 1)
                    gsub(/^[ \t]+|[ \t]+$/, "", val)
                    if (key == "types") types = val
                    else if (key == "uris") uris = val
                    else if (key == "suites") suites = val
                    else if (key == "components") comps = val
                    else if (key == "enabled") enabled = tolower(val)
                }
                if (enabled == "no" || (" " types " ") !~ / deb / || (" " comps " ") !~ / main /) next
                split(uris, u, " ")
                if ((" " suites " ") ~ (" " suite " ")) { print "1 " u[1]; exit }
                if (suites !~ /security/) print "2 " u[1]
            }' "$f"
    done
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
        awk -v suite="$SUITE" '$1 == "deb" {
            i = 2; if ($i ~ /^\[/) while ($i !~ /\]$/) i++
            if ($i ~ /^\[/ || $i ~ /\]$/) i++
            uri = $i; s = $(i + 1)
            main = 0; for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
            if (!main) next
            if (s == suite) print "1 " uri; else if (s !~ /security/) print "2 " uri
        }'
}

if ! podman image exists "$BASE"; then
    mirror=$(debian_mirror | sort -s -k1,1n | head -n 1 | cut -d' ' -f2)
    [ -n "$mirror" ] || die "no Debian mirror with main in /etc/apt/sources.list*"
    say "debootstrap --variant=minbase $SUITE from $mirror"
    rootfs=$STATE/rootfs.$$
    rm -rf "$rootfs"
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$RUN_DIR/debootstrap.log" 2>&1 ||
        { tail -n 20 "$RUN_DIR/debootstrap.log"; rm -rf "$rootfs"; die "debootstrap failed"; }
    # As in Debian's official images: no service starts in builds, no
    # recommends, no cached packages or lists.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
    tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE" >>"$RUN_DIR/debootstrap.log" 2>&1
    rm -rf "$rootfs"
fi
step base-image "$BASE"

# The names must be the ones the compose file and the Dockerfile use.
for name in "${!STAND_INS[@]}"; do
    grep -qE "^\s*(image: |FROM )$name(\s|$)" "$ROOT/docker-compose.yml" "$ROOT/Dockerfile" ||
        die "neither docker-compose.yml nor the Dockerfile names $name: update tools/compose-test"
done
build() { # TAG ARGS...: a quiet podman build; its log on failure
    local tag=$1 log
    shift
    log=$RUN_DIR/build-${tag//[\/:]/_}.log
    podman build --layers -t "$tag" "$@" >"$log" 2>&1 ||
        { tail -n 30 "$log"; die "podman build of $tag failed"; }
}
for name in "${!STAND_INS[@]}"; do
    stand_in=${STAND_INS[$name]}
    build "docker.io/library/$name" --build-arg "BASE=$BASE" \
        -f "$HERE/$stand_in.Containerfile" "$HERE"
done
step stand-ins "${!STAND_INS[*]}"

# The project's image, from its Dockerfile as written. pip in the build
# trusts the system CA store; the host's bundle is the one that works here.
build localhost/sleepsync:latest --format docker -v "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro" "$ROOT"
# Each change to the code leaves the previous build's layers untagged: keep a
# day of them as cache, drop the rest so the storage does not grow forever.
podman image prune -f --filter until=24h >/dev/null
step sleepsync-image "sleepsync:latest from the Dockerfile"

# ---------------------------------------------------------------- the stack
# The compose file is used as it is; the project directory is a temporary
# copy so the generated credentials never overwrite a user's own.
mkdir -p "$PROJECT_DIR/deploy/mosquitto"
cp "$ROOT/docker-compose.yml" "$PROJECT_DIR/"
cp "$ROOT/deploy/mosquitto/mosquitto.conf" "$ROOT/deploy/mosquitto/acl" "$PROJECT_DIR/deploy/mosquitto/"
# The steps at the top of docker-compose.yml.
(cd "$PROJECT_DIR" && "$VENV/bin/sleepsync" mqtt-passwd --pods 20 --out deploy/mosquitto/passwd >/dev/null)
chmod 0644 "$PROJECT_DIR"/deploy/mosquitto/passwd   # hashes only: Mosquitto runs as uid 1883
(cd "$PROJECT_DIR" && "$VENV/bin/sleepsync" secrets >/dev/null)   # deploy/secrets/, the compose secrets
# Free host ports, published on loopback only.
read -r p1 p2 p3 < <("$VENV/bin/python" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
export SLEEPSYNC_PUBLISH_HOST=127.0.0.1 SLEEPSYNC_NODE1_PORT=$p1 SLEEPSYNC_NODE2_PORT=$p2 SLEEPSYNC_MQTT_PORT=$p3

# Podman's Docker API for docker-compose, for this run only. fd 9 (the lock)
# is not handed to it or to anything it starts.
podman system service --time=0 "unix://$SOCKET" >"$RUN_DIR/podman-service.log" 2>&1 9>&- &
SERVICE_PID=$!
for _ in $(seq 100); do
    [ -S "$SOCKET" ] && break
    kill -0 "$SERVICE_PID" 2>/dev/null || die "podman system service exited"
    sleep 0.1
done
[ -S "$SOCKET" ] || die "no podman API socket at $SOCKET"

# Healthchecks: podman schedules them with systemd timers; without systemd,
# this loop runs them: every 2 s for containers still starting, every 10 s
# for the others (so a node that stops answering turns unhealthy).
health_loop() {
    local round=0 id status
    while :; do
        round=$((round + 1))
        podman ps --filter "label=com.docker.compose.project=$PROJECT" \
            --format '{{.ID}} {{.Status}}' 2>/dev/null |
            while read -r id status; do
                case "$status" in
                *"(starting)"*) podman healthcheck run "$id" >/dev/null 2>&1 || true ;;
                *healthy*) [ $((round % 5)) != 0 ] || podman healthcheck run "$id" >/dev/null 2>&1 || true ;;
                esac
            done
        sleep 2
    done
}
health_loop 9>&- &
HEALTH_PID=$!
step podman-service "API socket for docker-compose, healthcheck loop"

timeout 300 docker-compose up -d --no-build >"$RUN_DIR/up.log" 2>&1 ||
    { cat "$RUN_DIR/up.log"; die "docker-compose up failed"; }
flock -u 9
# compose waited for redis and mosquitto; nothing waits for the nodes, so wait here.
health() { podman inspect -f '{{.State.Health.Status}}' "$(docker-compose ps -q "$1")" 2>/dev/null; }
deadline=$((SECONDS + 120))
for service in redis mosquitto node-1 node-2; do
    until [ "$(health $service)" = healthy ]; do
        [ $SECONDS -lt $deadline ] || die "$service is not healthy: $(health $service)"
        sleep 1
    done
done
[ "$(podman inspect -f '{{.State.Running}}' "$(docker-compose ps -q pods)")" = true ] ||
    die "the pods container is not running"
CHECKS=$((CHECKS + 1))
step up "redis, mosquitto, node-1, node-2 healthy; pods running"

# ---------------------------------------------------------------- the drill
if ! "$VENV/bin/python" "$ROOT/tools/compose_drill.py" \
    --node "node-1=ws://127.0.0.1:$p1" --node "node-2=ws://127.0.0.1:$p2" \
    --room lounge --compose docker-compose \
    --auth-secret-file "$PROJECT_DIR/deploy/secrets/auth_secret" |
    tee "$RUN_DIR/drill.out" | sed 's/^/compose-test:   /'; then
    die "the failover drill failed"
fi
CHECKS=$((CHECKS + $(grep -c '^step ' "$RUN_DIR/drill.out")))
killed=$(sed -n 's/^step kill [0-9.]* \(node-[0-9]*\) .*/\1/p' "$RUN_DIR/drill.out")
say "$killed after the kill: $(podman inspect -f '{{.State.Status}}, restarted {{.RestartCount}} times' \
    "$(docker-compose ps -q "$killed")")"
step drill "$(sed -n 's/^step failover [0-9.]* //p' "$RUN_DIR/drill.out")"
CHECKS=$((CHECKS + 1)) # the teardown check, done on exit
