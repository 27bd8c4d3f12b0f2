#!/usr/bin/env python3
"""Samples a server process tree's CPU time and memory for a fixed time.

usage: sample.py PID SECONDS OUT.json

CPU: utime+stime of PID and all its descendants (nginx: master + workers; motherstream:
one process, all threads), from /proc/PID/stat, at the start and end of the window; also
the user-mode part alone (utime), which tells the server's own code from the kernel's
socket and scheduling work.
Memory: peak over 0.5 s samples of the summed VmRSS, and the summed VmHWM at the end
(VmHWM covers the process's whole life, including start-up); at the end of the window, the
summed Pss (pages shared between nginx's master and worker count once) and Anonymous
(heap, stacks: what the server allocated, as opposed to its mapped binary and libraries)
from /proc/PID/smaps_rollup.
Context switches: voluntary + involuntary, all threads, over the window.
Also reports the whole machine's CPU use from /proc/stat, to show whether the load
generators saturated the box.
"""
import json
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += children(p)
    return pids


def cpu_ticks(pid):
    """(utime, stime) of PID in clock ticks; zeros if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])
    except OSError:
        return 0, 0


def kib(pid, key, source="status"):
    """A `Key:   N kB` line of /proc/PID/status (or smaps_rollup); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/{source}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def context_switches(pid):
    """Voluntary + involuntary context switches of all threads of PID."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def per_core():
    """(busy, total) jiffies of each CPU."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                out.append((sum(v) - idle, sum(v)))
    return out


def machine():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def main():
    pid, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    pids = tree(pid)
    start_cpu = {p: cpu_ticks(p) for p in pids}
    start_cs = {p: context_switches(p) for p in pids}
    m0 = machine()
    c0 = per_core()
    t0 = time.monotonic()
    peak_rss = 0
    while time.monotonic() - t0 < seconds:
        peak_rss = max(peak_rss, sum(kib(p, "VmRSS") for p in tree(pid)))
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    pids_end = tree(pid)
    user_ticks = system_ticks = 0
    for p in pids_end:
        (user0, system0), (user1, system1) = start_cpu.get(p, (0, 0)), cpu_ticks(p)
        user_ticks += user1 - user0
        system_ticks += system1 - system0
    user = user_ticks / TICK
    cpu = (user_ticks + system_ticks) / TICK
    switches = sum(context_switches(p) - start_cs.get(p, 0) for p in pids_end)
    hwm = sum(kib(p, "VmHWM") for p in pids_end)
    pss = sum(kib(p, "Pss", "smaps_rollup") for p in pids_end)
    anon = sum(kib(p, "Anonymous", "smaps_rollup") for p in pids_end)
    m1 = machine()
    c1 = per_core()
    busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
    result = {
        "pids": pids_end,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "cpu_pct": 100.0 * cpu / elapsed,
        "user_cpu_s": user,
        "context_switches_per_s": switches / elapsed,
        "peak_rss_mib": peak_rss / 1024,
        "vmhwm_mib": hwm / 1024,
        "pss_mib": pss / 1024,
        "anonymous_mib": anon / 1024,
        "machine_busy_pct": 100.0 * busy,
        "core_busy_pct": [100.0 * (b1 - b0) / max(1, t1 - t0) for (b0, t0), (b1, t1) in zip(c0, c1)],
    }
    with open(out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
