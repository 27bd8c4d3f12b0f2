#!/usr/bin/env bash
# HLS benchmark: motherstream's HLS output vs nginx-rtmp's `hls on`, fed the same input, on
# this machine.
#
#   scripts/bench-hls.sh                              # 100, 500, 1000 viewers each (~12 min)
#   VIEWERS="100 1000" DURATION=20 scripts/bench-hls.sh
#   BENCH_LOAD=0 scripts/bench-hls.sh                 # segment latency only
#   SERVERS=motherstream scripts/bench-hls.sh         # one side only
#
# Load: one ffmpeg (-re, ~2.5 Mbit/s 720p30, keyframe every 2 s) publishes to the server;
# one `hls_swarm` process plays the HLS output as N viewers (player-like playlist reloads,
# every new segment fetched once). motherstream: one DJ on air, [hls] with 2 s segments and
# 6 in the window, served by its own HTTP listener. nginx-rtmp (1 worker): `hls on` with 2 s
# fragments and a 12 s playlist, its directory served by the same nginx's http server.
# Measured over a fixed window after a warm-up: the server's CPU seconds (process tree) and
# peak RSS (scripts/bench/sample.py), and the swarm's segment fetch times and failures.
# The server runs on core 0 and every client on core 1, so the swarm does not take the
# server's CPU.
#
# Segment latency: `hls_swarm --publish` publishes the same file itself and notes when it
# wrote each keyframe; an edge watcher polls the playlist every 20 ms; latency = first
# listed − the keyframe that closed the segment.
#
# Everything runs on 127.0.0.1; every process started here is killed on exit.
# Results: target/bench-hls/results.md (+ raw JSON in target/bench-hls/runs/).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$ROOT/target/bench-hls"
RUNS="$OUT/runs"
MS_RTMP=19361 MS_HTTP=18091 NGX_RTMP=19362 NGX_HTTP=18092
read -r -a VIEWER_STEPS <<<"${VIEWERS:-100 500 1000}"
read -r -a SERVER_LIST <<<"${SERVERS:-motherstream nginx}"
DURATION="${DURATION:-30}" WARMUP="${WARMUP:-10}" RAMP="${RAMP:-200}"
LAT_DURATION="${LAT_DURATION:-40}"
BENCH_LOAD="${BENCH_LOAD:-1}" BENCH_LATENCY="${BENCH_LATENCY:-1}"
SERVER_CPU="${SERVER_CPU:-0}" CLIENT_CPU="${CLIENT_CPU:-1}"

log() { printf '[bench-hls %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# Installing what is missing; everything we start is recorded and killed on exit.
# shellcheck source=bench/common.sh
source "$ROOT/scripts/bench/common.sh"
wait_url() { # wait_url URL : up to 30 s for a 200
  for _ in $(seq 300); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  log "$1 did not answer 200"; return 1
}

# ---------------------------------------------------------------------------------------
# Dependencies and builds
need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v nginx >/dev/null || need_apt+=(nginx)
command -v curl >/dev/null || need_apt+=(curl)
[[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ]] || need_apt+=(libnginx-mod-rtmp)
install_missing ${need_apt[@]+"${need_apt[@]}"}
command -v python3 >/dev/null || { log "python3 is required"; exit 1; }

log "building motherstream (release) and the HLS swarm"
[[ ${BENCH_BUILD:-1} == 0 ]] || (cd "$ROOT" && cargo build --release --quiet --bin motherstream --example hls_swarm)
MS_BIN="${MS_BIN:-$TARGET_DIR/release/motherstream}"
SWARM="$TARGET_DIR/release/examples/hls_swarm"
SAMPLE="$ROOT/scripts/bench/sample.py"
mkdir -p "$OUT" "$RUNS"
# KEEP_RUNS=1 adds to the previous results (re-running one configuration).
[[ ${KEEP_RUNS:-0} == 1 ]] || rm -f "$RUNS"/*.json

# Input: ~2.5 Mbit/s 720p30 H.264 + AAC, keyframe every 2 s (noise keeps the bitrate up);
# the same recipe as scripts/bench-load.sh.
INPUT="$OUT/input.flv"
if [[ ! -s $INPUT ]]; then
  log "encoding the input"
  ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 20 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 2300k -maxrate 2300k -bufsize 4600k \
    -g 60 -keyint_min 60 -sc_threshold 0 -c:a aac -b:a 128k -ac 2 -f flv "$INPUT.tmp"
  mv "$INPUT.tmp" "$INPUT"
fi

TEMPLATE="$OUT/ms-template"
if [[ ! -s "$TEMPLATE/key" ]]; then
  rm -rf "$TEMPLATE"; mkdir -p "$TEMPLATE/data"
  "$MS_BIN" user add --dj-name dj0 --email dj0@bench.invalid --data-dir "$TEMPLATE/data" 2>/dev/null | tail -n 1 >"$TEMPLATE/key"
fi
KEY="$(cat "$TEMPLATE/key")"

start_motherstream() { # start_motherstream RUNDIR ; sets SERVER_PID
  local dir="$1"
  rm -rf "$dir/data"; cp -r "$TEMPLATE/data" "$dir/data"
  cat >"$dir/motherstream.toml" <<EOF
rtmp_listen = "127.0.0.1:$MS_RTMP"
http_listen = "127.0.0.1:$MS_HTTP"
data_dir = "$dir/data"
[hls]
enabled = true
segment_seconds = 2
window = 6
low_latency = ${LOW_LATENCY:-false}
[limits]
max_connections = 16384
max_connections_per_ip = 16384
http_max_connections = 16384
http_max_connections_per_ip = 16384
publish_attempts_per_minute = 100000
idle_timeout = 3600
EOF
  MOTHERSTREAM_LOG=warn start_bg "$dir/server.log" taskset -c "$SERVER_CPU" "$MS_BIN" serve --config "$dir/motherstream.toml"
  SERVER_PID=$BG_PID
  wait_port "$MS_HTTP"
}

start_nginx() { # start_nginx RUNDIR ; sets SERVER_PID
  local dir="$1"
  mkdir -p "$dir/nginx" "$dir/hls"
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
    application hls {
      live on;
      hls on;
      hls_path $dir/hls;
      hls_fragment 2s;
      hls_playlist_length 12s;
    }
  }
}
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:$NGX_HTTP;
    location /hls/ {
      alias $dir/hls/;
      add_header Cache-Control no-cache;
    }
  }
}
EOF
  start_bg "$dir/server.log" taskset -c "$SERVER_CPU" nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf"
  SERVER_PID=$BG_PID
  wait_port "$NGX_RTMP"
}

publish_url() { if [[ $1 == motherstream ]]; then echo "rtmp://127.0.0.1:$MS_RTMP/live/$KEY"; else echo "rtmp://127.0.0.1:$NGX_RTMP/hls/program"; fi; }
playlist_url() {
  if [[ $1 == motherstream ]]; then echo "http://127.0.0.1:$MS_HTTP/hls/program.m3u8"
  else echo "http://127.0.0.1:$NGX_HTTP/hls/program.m3u8"; fi
}
# motherstream's variants get their own result files: -ll (low_latency), -blocking.
VARIANT=""
[[ ${LOW_LATENCY:-false} == true ]] && VARIANT+="-ll"
[[ -n ${BLOCKING:-} ]] && VARIANT+="-blocking"
label() { if [[ $1 == motherstream ]]; then echo "motherstream$VARIANT"; else echo "$1"; fi; }
start_server() { if [[ $1 == motherstream ]]; then start_motherstream "$2"; else start_nginx "$2"; fi; }

# ---------------------------------------------------------------------------------------
# 1. CPU and memory per viewer
run_load() { # run_load SERVER VIEWERS
  local server=$1 n=$2 name="load-$(label "$1")-v$2"
  local dir="$OUT/work/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  log "load: $server, $n viewers (${WARMUP}s warm-up + ${DURATION}s measured)"
  start_server "$server" "$dir"
  local server_pid=$SERVER_PID
  start_bg "$dir/publisher.log" taskset -c "$CLIENT_CPU" ffmpeg -nostdin -v error -re -stream_loop -1 -i "$INPUT" \
    -c copy -f flv "$(publish_url "$server")"
  local publisher=$BG_PID
  wait_url "$(playlist_url "$server")"
  local ramp=$(((n + RAMP - 1) / RAMP))
  start_bg "$dir/swarm.log" taskset -c "$CLIENT_CPU" "$SWARM" --url "$(playlist_url "$server")" --viewers "$n" \
    --ramp "$RAMP" --warmup "$WARMUP" --duration "$DURATION" ${BLOCKING:+--blocking} \
    --out "$RUNS/$name.swarm.json"
  local swarm=$BG_PID
  sleep $((ramp + WARMUP))
  python3 "$SAMPLE" "$server_pid" "$DURATION" "$RUNS/$name.json" >/dev/null
  for _ in $(seq 100); do kill -0 "$swarm" 2>/dev/null || break; sleep 0.1; done
  stop_pids "$swarm" "$publisher" "$server_pid"
  python3 - "$RUNS/$name.json" "$(label "$server")" "$n" "$RUNS/$name.swarm.json" <<'EOF'
import json, sys
path, server, n, swarm_path = sys.argv[1:]
r = json.load(open(path))
try:
    swarm = json.load(open(swarm_path))
except (OSError, ValueError):
    swarm = {}
r.update(server=server, viewers=int(n), swarm=swarm)
json.dump(r, open(path, "w"))
EOF
}

# 2. Segment latency: the swarm publishes and watches the playlist's edge.
run_latency() { # run_latency SERVER
  local server=$1 name="latency-$(label "$1")"
  local dir="$OUT/work/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  log "latency: $server (${LAT_DURATION}s)"
  start_server "$server" "$dir"
  local server_pid=$SERVER_PID app key
  if [[ $server == motherstream ]]; then app=live key=$KEY; else app=hls key=program; fi
  taskset -c "$CLIENT_CPU" "$SWARM" --url "$(playlist_url "$server")" --viewers 10 --ramp 10 --warmup 10 \
    --duration "$LAT_DURATION" --publish "$INPUT" --rtmp "127.0.0.1:$([[ $server == motherstream ]] && echo $MS_RTMP || echo $NGX_RTMP)" \
    --app "$app" --key "$key" --out "$RUNS/$name.json" >"$dir/swarm.log" 2>&1 || log "latency $server: swarm failed (see $dir/swarm.log)"
  stop_pids "$server_pid"
}

if [[ $BENCH_LOAD == 1 ]]; then
  for n in "${VIEWER_STEPS[@]}"; do
    for server in "${SERVER_LIST[@]}"; do run_load "$server" "$n"; done
  done
fi
if [[ $BENCH_LATENCY == 1 ]]; then
  for server in "${SERVER_LIST[@]}"; do run_latency "$server"; done
fi

# ---------------------------------------------------------------------------------------
# Report
python3 - "$RUNS" "$OUT/results.md" <<'EOF'
import glob, json, os, sys
runs, out = sys.argv[1:]
def ms(d, k):
    v = d.get(k)
    return "—" if v is None else f"{v:.1f}"
lines = ["# HLS benchmark", "",
         "| server | viewers | CPU % of a core | CPU % per 100 viewers | peak RSS MiB | segments/s | Mbit/s out | fetch p50 / p99 / max ms | failures | missed |",
         "|---|---|---|---|---|---|---|---|---|---|"]
loads = [json.load(open(p)) for p in glob.glob(os.path.join(runs, "load-*.json")) if not p.endswith(".swarm.json")]
for r in sorted(loads, key=lambda r: (r["viewers"], r["server"])):
    s = r.get("swarm", {})
    f = s.get("segment_fetch_ms", {})
    fails = sum(s.get("failures", {}).values()) if s else "no result"
    per100 = f"{r['cpu_pct'] * 100 / r['viewers']:.2f}" if r["viewers"] else "—"
    lines.append(f"| {r['server']} | {r['viewers']} | {r['cpu_pct']:.1f} | {per100} | "
                 f"{r['peak_rss_mib']:.0f} | {s.get('segments_per_s', 0):.0f} | {s.get('mbps', 0):.0f} | "
                 f"{ms(f, 'p50')} / {ms(f, 'p99')} / {ms(f, 'max')} | {fails} | {s.get('missed', '?')} |")
lines += ["", "| server | segment listed after its closing keyframe: p50 / p90 / max ms | segments | input keyframe interval ms | glass to glass estimate, standard / LL-HLS player s |",
          "|---|---|---|---|---|"]
for p in sorted(glob.glob(os.path.join(runs, "latency-*.json"))):
    r = json.load(open(p))
    l = r["segment_listed_after_keyframe_ms"]
    g = r.get("glass_to_glass_estimate", {})
    lines.append(f"| {os.path.basename(p)[8:-5]} | {ms(l, 'p50')} / {ms(l, 'p90')} / {ms(l, 'max')} | {l['n']} | "
                 f"{r['input_keyframe_interval_ms']} | {ms(g, 'standard_player_s')} / {ms(g, 'low_latency_player_s')} |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
log "results: $OUT/results.md"
