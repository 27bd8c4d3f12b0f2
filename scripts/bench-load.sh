#!/usr/bin/env bash
# Load benchmark: motherstream vs nginx-rtmp doing the same job on this machine.
#
#   scripts/bench-load.sh            # full run (~20 min)
#   QUICK=1 scripts/bench-load.sh    # subset (~5 min)
#   BENCH_N="1 10" BENCH_M=50 BENCH_LATENCY=0 DURATION=20 scripts/bench-load.sh  # custom subset
#   BENCH_LOAD=0 BENCH_LATENCY="ms-switch" scripts/bench-load.sh                  # one latency run
#   BENCH_LOAD=0 LAT_INPUT=nob scripts/bench-load.sh        # latency of an input without B-frames
#   BENCH_LOAD=0 BENCH_LATENCY=0 BENCH_CEILING=1 scripts/bench-load.sh           # fan-out ceiling only
#
# For each server, N publishers (ffmpeg -re, ~2.5 Mbit/s 720p30) and M players: the lead
# stream is relayed to one RTMP destination (a sink run by scripts' probe) and played by the
# M players. motherstream: N DJs queue, the first is on air, program -> --destination and
# rtmp://…/program/live. nginx-rtmp (1 worker): publisher 0 publishes to an application
# with `push` to the sink, the others to one without; players play publisher 0's stream.
# Players are one `rtmp_swarm` process (real RTMP players that count and discard what they
# receive, thousands per core), so the client does not eat the server's CPU.
# Measured over a fixed window after a warm-up: the server's CPU seconds (utime+stime of
# the process tree), context switches and peak RSS, and each player's receive rate.
# The fan-out ceiling (BENCH_CEILING=1): the server pinned to core 0, every client to core 1,
# players added until they no longer receive at the stream's rate. Then, for motherstream (and nginx for comparison), the
# added latency publisher -> destination, publisher -> player, and the switch gap.
#
# Everything runs on 127.0.0.1; every process started here is killed on exit.
# Results: target/bench/results.md (+ raw JSON in target/bench/runs/).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$ROOT/target/bench"
RUNS="$OUT/runs"
QUICK="${QUICK:-0}"

MS_RTMP=19351 MS_HTTP=18081 NGX_RTMP=19352 SINK=19350
if [[ "$QUICK" == 1 ]]; then
  NS=(1 10); MS=(0 200); DURATION="${DURATION:-15}"; WARMUP="${WARMUP:-5}"
  LAT_DURATION="${LAT_DURATION:-20}"; SWITCHES="${SWITCHES:-3}"
else
  NS=(1 10 50); MS=(0 50 200 1000); DURATION="${DURATION:-30}"; WARMUP="${WARMUP:-8}"
  LAT_DURATION="${LAT_DURATION:-40}"; SWITCHES="${SWITCHES:-4}"
fi
# Optional overrides for a targeted re-run: BENCH_N / BENCH_M (lists), BENCH_LOAD=0 (skip the
# load table), BENCH_LATENCY=0 (skip latency) or a list of latency run names.
BENCH_LOAD="${BENCH_LOAD:-1}"
[[ -n "${BENCH_N:-}" ]] && read -r -a NS <<<"$BENCH_N"
[[ -n "${BENCH_M:-}" ]] && read -r -a MS <<<"$BENCH_M"
BENCH_LATENCY="${BENCH_LATENCY:-1}"
BENCH_CEILING="${BENCH_CEILING:-$([[ $QUICK == 1 ]] && echo 0 || echo 1)}"
read -r -a CEILING_STEPS <<<"${CEILING_STEPS:-500 1000 2000 3000 4000 6000}"
RAMP=250 # players connecting per second
MAX_PUBLISHERS=50

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# Installing what is missing; everything we start is recorded and killed on exit.
# shellcheck source=bench/common.sh
source "$ROOT/scripts/bench/common.sh"

# ---------------------------------------------------------------------------------------
# Dependencies and builds
need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v nginx >/dev/null || need_apt+=(nginx)
[[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]] || need_apt+=(libnginx-mod-rtmp)
install_missing ${need_apt[@]+"${need_apt[@]}"}
command -v python3 >/dev/null || { log "python3 is required"; exit 1; }

log "building motherstream (release), the latency probe and the player swarm"
# MS_BIN=path compares another build of the server; BENCH_BUILD=0 uses what is built.
[[ ${BENCH_BUILD:-1} == 0 ]] || (cd "$ROOT" && cargo build --release --quiet --bin motherstream --example latency_probe --example rtmp_swarm)
SWARM="$TARGET_DIR/release/examples/rtmp_swarm"
MS_BIN="${MS_BIN:-$TARGET_DIR/release/motherstream}"
PROBE="$TARGET_DIR/release/examples/latency_probe"
SAMPLE="$ROOT/scripts/bench/sample.py"

mkdir -p "$OUT" "$RUNS"
rm -f "$RUNS"/*.json

# ---------------------------------------------------------------------------------------
# Inputs: ~2.5 Mbit/s 720p30 H.264 + AAC, keyframe every 2 s (noise keeps the bitrate up).
make_input() { # make_input FILE SOURCE SECONDS [B-FRAMES]
  [[ -s "$1" ]] && return 0
  log "encoding $(basename "$1")"
  ffmpeg -nostdin -v error -y -f lavfi -i "$2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$3" \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 2300k -maxrate 2300k -bufsize 4600k \
    -g 60 -keyint_min 60 -sc_threshold 0 ${4:+-bf "$4"} -c:a aac -b:a 128k -ac 2 -f flv "$1.tmp"
  mv "$1.tmp" "$1"
}
make_input "$OUT/input.flv" testsrc2 20
make_input "$OUT/input2.flv" testsrc 10
# Without B-frames: the program's presentation delay (which lets a splice into a DJ who
# uses B-frames need no pause) is then zero, so the latency runs measure the send path.
make_input "$OUT/input-nob.flv" testsrc2 20 0
LAT_INPUT="${LAT_INPUT:-$OUT/input.flv}"
[[ $LAT_INPUT == nob ]] && LAT_INPUT="$OUT/input-nob.flv"

# ---------------------------------------------------------------------------------------
# motherstream accounts (made once, copied into a fresh data dir per run so no queue
# state carries over between runs).
TEMPLATE="$OUT/ms-template"
if [[ ! -s "$TEMPLATE/keys" ]] || (($(wc -l <"$TEMPLATE/keys") < MAX_PUBLISHERS + 2)); then
  log "creating $((MAX_PUBLISHERS + 2)) motherstream accounts"
  rm -rf "$TEMPLATE"; mkdir -p "$TEMPLATE/data"
  for i in $(seq 0 $((MAX_PUBLISHERS + 1))); do
    "$MS_BIN" user add --dj-name "dj$i" --email "dj$i@bench.invalid" --data-dir "$TEMPLATE/data" \
      2>/dev/null | tail -n 1 >>"$TEMPLATE/keys.tmp"
  done
  mv "$TEMPLATE/keys.tmp" "$TEMPLATE/keys"
fi
mapfile -t KEYS <"$TEMPLATE/keys"

start_motherstream() { # start_motherstream RUNDIR [destination] ; sets SERVER_PID
  local dir="$1" dest="${2:-}"
  rm -rf "$dir/data"; cp -r "$TEMPLATE/data" "$dir/data"
  cat >"$dir/motherstream.toml" <<EOF
rtmp_listen = "127.0.0.1:$MS_RTMP"
http_listen = "127.0.0.1:$MS_HTTP"
data_dir = "$dir/data"
destinations = [${dest:+\"$dest\"}]
[limits]
max_connections = 16384
max_connections_per_ip = 16384
max_players_per_ip = 16384
max_publishers_per_ip = 1024
publish_attempts_per_minute = 100000
idle_timeout = 3600
EOF
  MOTHERSTREAM_LOG=warn start_bg "$dir/server.log" "$MS_BIN" serve --config "$dir/motherstream.toml"
  SERVER_PID=$BG_PID
  wait_port "$MS_RTMP"
}

start_nginx() { # start_nginx RUNDIR ; sets SERVER_PID
  local dir="$1"
  mkdir -p "$dir/nginx"
  cat >"$dir/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 16384; }
worker_rlimit_nofile 20000;
rtmp {
  server {
    listen 127.0.0.1:$NGX_RTMP;
    chunk_size 4096;
    # The lead: played by the players and pushed to the destination.
    application lead { live on; push rtmp://127.0.0.1:$SINK/live/sink; }
    # Everyone else: ingested only.
    application live { live on; }
  }
}
EOF
  start_bg "$dir/server.log" nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf"
  SERVER_PID=$BG_PID
  wait_port "$NGX_RTMP"
}

publish_url() { # publish_url SERVER INDEX
  if [[ $1 == motherstream ]]; then echo "rtmp://127.0.0.1:$MS_RTMP/live/${KEYS[$2]}"
  elif (($2 == 0)); then echo "rtmp://127.0.0.1:$NGX_RTMP/lead/s0"
  else echo "rtmp://127.0.0.1:$NGX_RTMP/live/s$2"; fi
}
play_url() {
  if [[ $1 == motherstream ]]; then echo "rtmp://127.0.0.1:$MS_RTMP/program/live"
  else echo "rtmp://127.0.0.1:$NGX_RTMP/lead/s0"; fi
}

start_publishers() { # start_publishers SERVER DIR FIRST N : sets LOAD_PIDS
  local i
  for ((i = $3; i < $3 + $4; i++)); do
    start_bg "$2/pub$i.log" ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} ffmpeg -nostdin -v error -re -stream_loop -1 -i "$OUT/input.flv" -c copy \
      -f flv "$(publish_url "$1" "$i")"
    LOAD_PIDS+=("$BG_PID")
    if ((i == 0)); then sleep 2; else sleep 0.1; fi # the first one is the lead
  done
}
start_players() { # start_players SERVER DIR M [WARMUP DURATION OUT.json] : one swarm process
  (($3 > 0)) || return 0
  local app_stream
  app_stream=$(play_url "$1"); app_stream=${app_stream#rtmp://*/}
  local server_port=$([[ $1 == motherstream ]] && echo $MS_RTMP || echo $NGX_RTMP)
  start_bg "$2/players.log" ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} "$SWARM" \
    --server "127.0.0.1:$server_port" --play "$app_stream" --players "$3" --ramp "$RAMP" \
    --warmup "${4:-0}" --duration "${5:-3600}" ${6:+--out "$6"}
  PLAYER_PIDS+=("$BG_PID")
}
ramp_seconds() { echo $((($1 + RAMP - 1) / RAMP)); }
count_alive() { local n=0 p; for p in "$@"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done; echo $n; }

# ---------------------------------------------------------------------------------------
# 1. CPU and memory under load
run_load() { # run_load SERVER N M [NAME_PREFIX]
  local server=$1 n=$2 m=$3 name="${4:-}$1-n$2-m$3"
  local dir="$OUT/work/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  log "load: $server N=$n M=$m (${WARMUP}s warm-up + ${DURATION}s measured)${SERVER_CPU:+, server on CPU $SERVER_CPU}"
  start_bg "$dir/sink.log" ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} "$PROBE" sink --listen "127.0.0.1:$SINK" \
    --duration 3600 --out "$RUNS/$name.sink.json"
  local sink=$BG_PID
  wait_port "$SINK"
  if [[ $server == motherstream ]]; then start_motherstream "$dir" "rtmp://127.0.0.1:$SINK/live/sink"
  else start_nginx "$dir"; fi
  if [[ -n ${SERVER_CPU:-} ]]; then taskset -a -p -c "$SERVER_CPU" "$SERVER_PID" >/dev/null; fi
  LOAD_PIDS=() PLAYER_PIDS=()
  start_publishers "$server" "$dir" 0 "$n"
  local ramp; ramp=$(ramp_seconds "$m")
  start_players "$server" "$dir" "$m" "$WARMUP" "$DURATION" "$RUNS/$name.players.json"
  sleep $((ramp + WARMUP))
  python3 "$SAMPLE" "$SERVER_PID" "$DURATION" "$RUNS/$name.json" >/dev/null
  local pubs_alive
  pubs_alive=$(count_alive "${LOAD_PIDS[@]}")
  # The swarm ends by itself after its window; give it a few seconds' slack.
  for _ in $(seq 100); do
    (($(count_alive ${PLAYER_PIDS[@]+"${PLAYER_PIDS[@]}"}) == 0)) && break
    sleep 0.1
  done
  stop_pids ${PLAYER_PIDS[@]+"${PLAYER_PIDS[@]}"} "${LOAD_PIDS[@]}"
  stop_pids "$SERVER_PID" "$sink"
  python3 - "$RUNS/$name.json" "$server" "$n" "$m" "$pubs_alive" "$RUNS/$name.players.json" <<'EOF'
import json, sys
path, server, n, m, pa, players_path = sys.argv[1:]
r = json.load(open(path))
try:
    players = json.load(open(players_path))
except (OSError, ValueError):
    players = {"alive": 0}
r.update(server=server, n=int(n), m=int(m), publishers_alive=int(pa), players_alive=players.get("alive", 0),
         players=players)
json.dump(r, open(path, "w"))
EOF
}

# 1b. Fan-out ceiling: players per core at the stream's rate, server alone on core 0.
run_ceiling() { # run_ceiling SERVER
  local m
  for m in "${CEILING_STEPS[@]}"; do
    SERVER_CPU=0 CLIENT_CPU=1 run_load "$1" 1 "$m" ceiling-
  done
}

# 2. Latency and switch gap (the probe publishes and receives at the protocol level)
run_latency() { # run_latency NAME SERVER RECEIVER(sink|play) [OTHER_PUBLISHERS PLAYERS [switch]]
  local name=$1 server=$2 recv=$3 others=${4:-0} players=${5:-0} sw=${6:-}
  [[ $BENCH_LATENCY == 1 || " $BENCH_LATENCY " == *" $name "* ]] || return 0
  local dir="$OUT/work/lat-$name"
  rm -rf "$dir"; mkdir -p "$dir"
  log "latency: $name"
  local dest="" args=()
  if [[ $recv == sink ]]; then
    dest="rtmp://127.0.0.1:$SINK/live/sink"; args+=(--listen "127.0.0.1:$SINK")
  else
    args+=(--play "$([[ $server == motherstream ]] && echo program/live || echo lead/s0)")
  fi
  if [[ $server == motherstream ]]; then
    start_motherstream "$dir" "$dest"
    args+=(--server "127.0.0.1:$MS_RTMP" --app live --key "${KEYS[$MAX_PUBLISHERS]}")
  else
    start_nginx "$dir"
    args+=(--server "127.0.0.1:$NGX_RTMP" --app lead --key s0)
  fi
  if [[ -n $sw ]]; then
    args+=(--key2 "${KEYS[$((MAX_PUBLISHERS + 1))]}" --file2 "$OUT/input2.flv" --switches "$SWITCHES" --stint 6)
  fi
  start_bg "$dir/probe.log" "$PROBE" latency "${args[@]}" --file "$LAT_INPUT" \
    --duration "$LAT_DURATION" --warmup "$([[ $others$players == 00 ]] && echo 5 || echo 15)" \
    --out "$RUNS/lat-$name.json"
  local probe=$BG_PID
  LOAD_PIDS=() PLAYER_PIDS=()
  sleep 2 # the probe is the lead
  ((others > 0)) && start_publishers "$server" "$dir" 1 "$others"
  start_players "$server" "$dir" "$players"
  # Bounded wait for the probe (its own duration + slack).
  local limit=$((LAT_DURATION + 6 * SWITCHES + 40))
  for _ in $(seq $((limit * 10))); do kill -0 "$probe" 2>/dev/null || break; sleep 0.1; done
  stop_pids "$probe" ${PLAYER_PIDS[@]+"${PLAYER_PIDS[@]}"} ${LOAD_PIDS[@]+"${LOAD_PIDS[@]}"}
  stop_pids "$SERVER_PID"
  [[ -s "$RUNS/lat-$name.json" ]] || log "latency $name: no result (see $dir/probe.log)"
}

# Servers alternate per configuration, so that any background load hits both alike.
if [[ "$BENCH_LOAD" == 1 ]]; then
  for n in "${NS[@]}"; do
    for m in "${MS[@]}"; do
      for server in motherstream nginx; do
        run_load "$server" "$n" "$m"
      done
    done
  done
fi

if [[ "$BENCH_CEILING" == 1 ]]; then
  for server in motherstream nginx; do run_ceiling "$server"; done
fi

if [[ "$BENCH_LATENCY" != 0 ]]; then
run_latency ms-destination motherstream sink
run_latency ms-player motherstream play
run_latency nginx-destination nginx sink
if [[ "$QUICK" != 1 ]]; then
  run_latency ms-destination-loaded motherstream sink 9 50
  run_latency nginx-destination-loaded nginx sink 9 50
fi
run_latency ms-switch motherstream sink 0 0 switch
fi

python3 "$ROOT/scripts/bench/report.py" "$RUNS" "$OUT/results.md" "$DURATION"
cat "$OUT/results.md"
