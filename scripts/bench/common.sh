# What the bench scripts share (sourced, not run; they define `log` first): installing what
# they need, and process bookkeeping: everything a script starts with start_bg is recorded
# and killed when it exits.
# shellcheck shell=bash
PIDS=()
start_bg() { # start_bg LOGFILE CMD... ; sets BG_PID
  "${@:2}" </dev/null >"$1" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID")
}
stop_pids() { # stop_pids PID... : TERM, wait up to 5 s, then KILL
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  # Forget them, so that cleanup never signals a recycled PID.
  local keep=() q
  for q in ${PIDS[@]+"${PIDS[@]}"}; do
    [[ " $* " == *" $q "* ]] || keep+=("$q")
  done
  PIDS=(${keep[@]+"${keep[@]}"})
}
cleanup() {
  trap - EXIT INT TERM
  if ((${#PIDS[@]})); then stop_pids "${PIDS[@]}"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # wait_port PORT : up to 15 s
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "port $1 did not open"; return 1
}

install_missing() { # install_missing PACKAGE... : apt-get install, as root or with sudo
  (($#)) || return 0
  log "installing $*"
  local sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
