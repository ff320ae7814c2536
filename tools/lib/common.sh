# The blocks every tools/ shell script needs, written once. Sourced, never run:
#
#   tool_name="tools/test"                                    # names the script in FAIL lines
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"     # from tools/; ../lib from tools/fuzz
#
# Needs bash 4.4+ and the caller's `set -euo pipefail`. Defines:
#   step TEXT...                 prints "==> TEXT" (a script may redefine it after sourcing)
#   fail_now TEXT...             prints "<tool_name>: FAIL: TEXT" on stderr and exits 1 (may be redefined)
#   show_log FILE [LINES]        the last LINES (60) of a log on stderr, between marker lines
#   missing_debian_packages P... prints the packages of P... that dpkg does not list as installed, one a line
#   install_debian_packages P... apt-get installs P... (as root or through sudo); fails through fail_now
#   ensure_debian_packages P...  installs those of P... that are missing (nothing when none is)
#   ensure_venv VENV REQUIREMENTS PYTHON LOG_DIR WHAT
#                                (re)creates the venv VENV from REQUIREMENTS with PYTHON when it is missing or the
#                                file changed (sha256 in VENV/.requirements.sha256); WHAT is the step's text
#   free_port                    a free 127.0.0.1 TCP port (asks the kernel through python3; a random high port
#                                without it). Another process may take it before anyone binds it: a start on it
#                                checks `listens_on` and tries another port when the process exits.
#   port_accepts PORT            succeeds when something accepts TCP connections on 127.0.0.1:PORT
#   port_is_free PORT            the opposite
#   listens_on PID PORT          succeeds when process PID itself listens on TCP port PORT (Linux: the listening
#                                socket /proc/net/tcp{,6} lists for the port is one of PID's), not another process
#   start_private_redis LOG DIR [--setsid] [REDIS_ARGUMENT...]
#                                starts redis-server on a free loopback port without persistence and waits (up to
#                                5 s) until it listens there itself and answers PONG; when it does not (another
#                                process took the port first, say) it tries a fresh port, 5 attempts in all. A
#                                REDIS_ARGUMENT @free_port is a fresh free port on every attempt (a cluster bus
#                                port). Sets redis_pid, redis_port and redis_url, or returns 1 with redis_pid
#                                empty after printing the ports tried and the end of LOG on stderr. --setsid
#                                starts it in its own session.
#   stop_pids PID...             SIGTERM, up to 5 s for all to exit, SIGKILL what is left, reap. Calls
#                                `on_stop_timeout PID` before a SIGKILL when the script defines that function.
#   wait_for_listening_line LOG PID SECONDS
#                                prints the port of the first "LISTENING <port>" line of LOG (as `socket-gateway
#                                serve` and the Python reference server print it); returns 1 if PID exits first
#                                (2 if SECONDS pass)

tool_name="${tool_name:-tools/$(basename "$0")}"

step() { printf '==> %s\n' "$*"; }

fail_now() {
    printf '%s: FAIL: %s\n' "$tool_name" "$*" >&2
    exit 1
}

show_log() {
    printf -- '---- last %s lines of %s ----\n' "${2:-60}" "$1" >&2
    tail -n "${2:-60}" "$1" >&2 || true
    printf -- '---- end of %s ----\n' "$1" >&2
}

# ---------------------------------------------------------------------------------------------------------------
# System packages (Debian).
# ---------------------------------------------------------------------------------------------------------------
missing_debian_packages() {
    local package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            printf '%s\n' "$package"
        fi
    done
}

install_debian_packages() {
    (($#)) || return 0
    step "installing Debian packages: $*"
    local sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || fail_now "need root or sudo to install $*"
        sudo_cmd=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq || fail_now "apt-get update failed"
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
        fail_now "apt-get install $* failed"
}

ensure_debian_packages() {
    local missing
    mapfile -t missing < <(missing_debian_packages "$@")
    install_debian_packages "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------------------------
# A Python venv, reinstalled only when its requirements file changes.
# ---------------------------------------------------------------------------------------------------------------
ensure_venv() {
    local venv="$1" requirements="$2" python="$3" log_dir="$4" what="$5"
    local wanted_hash stamp="$1/.requirements.sha256"
    wanted_hash="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted_hash" ]]; then
        return 0
    fi
    command -v "$python" >/dev/null ||
        fail_now "$python not found; install Python 3.10+ (Debian: apt-get install python3 python3-venv)"
    step "$what"
    rm -rf "$venv"
    mkdir -p "$log_dir"
    if ! "$python" -m venv "$venv" >"$log_dir/venv.log" 2>&1; then
        show_log "$log_dir/venv.log" 20
        fail_now "could not create a venv with $python (Debian: apt-get install python3-venv)"
    fi
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
        >"$log_dir/pip.log" 2>&1; then
        show_log "$log_dir/pip.log" 40
        fail_now "pip install -r ${requirements#"${repo:-}/"} failed"
    fi
    printf '%s\n' "$wanted_hash" >"$stamp"
}

# ---------------------------------------------------------------------------------------------------------------
# Ports.
# ---------------------------------------------------------------------------------------------------------------
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' \
        2>/dev/null || shuf -i 20000-60000 -n 1
}

port_accepts() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port_is_free() {
    ! port_accepts "$1"
}

listens_on() {
    local pid="$1" hex inode
    printf -v hex '%04X' "$2"
    # Listening sockets (state 0A) whose local address ends in :PORT, by inode (field 10).
    for inode in $(awk -v port=":$hex" 'substr($2, length($2) - 4) == port && $4 == "0A" { print $10 }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
        find "/proc/$pid/fd" -maxdepth 1 -lname "socket:\[$inode\]" 2>/dev/null | grep -q . && return 0
    done
    return 1
}

# ---------------------------------------------------------------------------------------------------------------
# A private redis-server.
# ---------------------------------------------------------------------------------------------------------------
start_private_redis() {
    local log="$1" dir="$2"
    shift 2
    local launcher=()
    if [[ "${1:-}" == --setsid ]]; then
        # setsid execs in place when the shell's child is not a group leader, so $! is redis-server itself.
        launcher=(setsid)
        shift
    fi
    local up argument arguments tried=()
    redis_pid=""
    redis_port=""
    redis_url=""
    mkdir -p "$dir"
    for _ in 1 2 3 4 5; do
        redis_port="$(free_port)"
        tried+=("$redis_port")
        arguments=()
        for argument in "$@"; do
            if [[ "$argument" == @free_port ]]; then arguments+=("$(free_port)"); else arguments+=("$argument"); fi
        done
        "${launcher[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
            --logfile "$log" --daemonize no "${arguments[@]}" >/dev/null 2>&1 &
        redis_pid=$!
        up=""
        for _ in $(seq 1 50); do
            kill -0 "$redis_pid" 2>/dev/null || break
            # Itself: a redis-server that took the port first would answer PONG too.
            if listens_on "$redis_pid" "$redis_port" &&
                timeout 2 redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; then
                up=yes
                break
            fi
            sleep 0.1
        done
        if [[ -n "$up" ]]; then
            redis_url="redis://127.0.0.1:$redis_port"
            return 0
        fi
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        redis_pid=""
    done
    printf 'redis-server did not come up on 127.0.0.1 in %s attempts (ports %s; "%s" in its log: %s)\n' \
        "${#tried[@]}" "${tried[*]}" "Address already in use" "another process took the port first" >&2
    show_log "$log" 20
    return 1
}

# ---------------------------------------------------------------------------------------------------------------
# Stopping what a script started, by PID.
# ---------------------------------------------------------------------------------------------------------------
stop_pids() {
    (($#)) || return 0
    local pid alive
    kill -TERM "$@" 2>/dev/null || true
    for _ in $(seq 1 50); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then
            if declare -F on_stop_timeout >/dev/null; then on_stop_timeout "$pid"; fi
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    wait "$@" 2>/dev/null || true
}

wait_for_listening_line() {
    local log="$1" pid="$2" seconds="$3" port
    for _ in $(seq 1 $((seconds * 10))); do
        port="$(sed -n 's/^LISTENING \([0-9]*\).*/\1/p' "$log" 2>/dev/null | head -1)"
        if [[ -n "$port" ]]; then
            printf '%s\n' "$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 2
}
