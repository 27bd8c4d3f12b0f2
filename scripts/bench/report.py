#!/usr/bin/env python3
"""Turns the JSON files of scripts/bench-load.sh into a Markdown report.

usage: report.py RUNS_DIR OUT.md WINDOW_SECONDS
"""
import glob
import json
import os
import platform
import subprocess
import sys

runs_dir, out_path, window = sys.argv[1], sys.argv[2], sys.argv[3]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


lines = []
lines.append(f"# Load benchmark: motherstream vs nginx-rtmp\n")
lines.append(f"Machine: {os.cpu_count()} CPUs ({cpu_model()}). "
             f"Measured window: {window} s per configuration after warm-up. "
             "CPU % is of one core; 'machine busy' is the whole box (all load generators included).\n")

loads, ceiling = {}, {}
for path in glob.glob(os.path.join(runs_dir, "*.json")):
    name = os.path.basename(path)
    if name.startswith("lat-") or name.endswith((".sink.json", ".players.json")):
        continue
    r = load(path)
    if r and "server" in r:
        sink = load(path[:-5] + ".sink.json") or {}
        r["sink_kbit_s"] = sink.get("received_kbit_s")
        (ceiling if name.startswith("ceiling-") else loads)[(r["server"], r["n"], r["m"])] = r


def player_rates(r):
    p = r.get("players") or {}
    if not r["m"]:
        return "–"
    return f"{fmt(p.get('kbps_p10'), '.0f')} / {fmt(p.get('kbps_median'), '.0f')}"

lines.append("| server | N publishers | M players | CPU s | of which user s | CPU % | peak RSS MiB | CPU vs nginx | RSS vs nginx "
             "| PSS / anonymous MiB at end | context switches/s | destination kbit/s | player kbit/s p10 / median "
             "| publishers / players alive at end | machine busy % |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (server, n, m) in sorted(loads, key=lambda k: (k[1], k[2], k[0] != "motherstream")):
    r = loads[(server, n, m)]
    ref = loads.get(("nginx", n, m))
    rss = max(r["peak_rss_mib"], r["vmhwm_mib"])
    if ref and server != "nginx":
        ref_rss = max(ref["peak_rss_mib"], ref["vmhwm_mib"])
        cpu_ratio = f"{r['cpu_s'] / ref['cpu_s']:.2f}x" if ref["cpu_s"] > 0 else "n/a"
        rss_ratio = f"{rss / ref_rss:.2f}x" if ref_rss > 0 else "n/a"
    else:
        cpu_ratio = rss_ratio = "1.00x" if server == "nginx" else "n/a"
    lines.append(
        f"| {server} | {n} | {m} | {r['cpu_s']:.2f} | {fmt(r.get('user_cpu_s'), '.2f')} | {r['cpu_pct']:.1f} | {rss:.1f} | {cpu_ratio} | {rss_ratio} "
        f"| {fmt(r.get('pss_mib'), '.1f')} / {fmt(r.get('anonymous_mib'), '.1f')} "
        f"| {fmt(r.get('context_switches_per_s'), '.0f')} | {fmt(r.get('sink_kbit_s'), '.0f')} | {player_rates(r)} "
        f"| {r['publishers_alive']}/{n} · {r['players_alive']}/{m} | {r['machine_busy_pct']:.0f} |")

if ceiling:
    lines.append("\n## Fan-out ceiling (server alone on one core, every client on the other)\n")
    lines.append("Players keep up when the slowest tenth receives at least 95 % of the destination's rate "
                 "(the stream's own rate).\n")
    lines.append("| server | M players | server CPU % of its core | µs CPU per player per second "
                 "| player kbit/s p10 / median | alive | keeps up | client core busy % |")
    lines.append("|---|---:|---:|---:|---:|---:|---|---:|")
    for (server, n, m) in sorted(ceiling, key=lambda k: (k[0], k[2])):
        r = ceiling[(server, n, m)]
        p = r.get("players") or {}
        stream = r.get("sink_kbit_s") or 0
        keeps = stream > 0 and (p.get("kbps_p10") or 0) >= 0.95 * stream and p.get("alive") == m
        per_player = 1e6 * r["cpu_s"] / r["elapsed_s"] / m
        lines.append(f"| {server} | {m} | {r['cpu_pct']:.0f} | {per_player:.0f} | {player_rates(r)} "
                     f"| {p.get('alive', 0)}/{m} | {'yes' if keeps else 'no'} "
                     f"| {fmt((r.get('core_busy_pct') or [None, None])[1], '.0f')} |")

lines.append("\n## Latency (publisher write → arrival, video frames matched by payload)\n")
lines.append("| run | frames | p50 ms | p90 ms | p99 ms | max ms | received kbit/s |")
lines.append("|---|---:|---:|---:|---:|---:|---:|")
switch = None
for path in sorted(glob.glob(os.path.join(runs_dir, "lat-*.json"))):
    r = load(path)
    if not r:
        continue
    name = os.path.basename(path)[4:-5]
    if r.get("switches"):
        switch = (name, r)
    lat = r["latency"]
    lines.append(f"| {name} | {lat['n']} | {fmt(lat['p50_ms'])} | {fmt(lat['p90_ms'])} | {fmt(lat['p99_ms'])} "
                 f"| {fmt(lat['max_ms'])} | {r['received_kbit_s']:.0f} |")

if switch:
    name, r = switch
    lines.append(f"\n## Switch gap ({name})\n")
    lines.append("Wall gap: arrival of the first frame of the new DJ minus the last frame of the previous one. "
                 "Program gap: the same in program timestamps (ideally one frame, ~33 ms).\n")
    lines.append("| switch | wall gap ms | program ts gap ms | frames from neither DJ between | latency of first frame ms |")
    lines.append("|---|---:|---:|---:|---:|")
    for i, s in enumerate(r["switches"], 1):
        lines.append(f"| {i}: {s['from']}→{s['to']} | {s['wall_gap_ms']:.0f} | {s['program_ts_gap_ms']} "
                     f"| {s['unrecognised_frames_between']} | {s['first_frame_latency_ms']:.0f} |")
    lines.append("\nLatency per stint (each DJ's time on air):\n")
    lines.append("| stint | source | frames | p50 ms | p99 ms |")
    lines.append("|---|---:|---:|---:|---:|")
    for i, s in enumerate(r["stints"], 1):
        lines.append(f"| {i} | {s['source']} | {s['n']} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} |")

with open(out_path, "w") as f:
    f.write("\n".join(lines) + "\n")
