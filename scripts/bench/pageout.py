#!/usr/bin/env python3
"""Measures how much of a running server's RSS is its executable's start-up-only code.

usage: pageout.py PID [SECONDS ...]

Asks the kernel to reclaim the pages of PID's executable (process_madvise with
MADV_PAGEOUT, as root), then prints the process's Rss/Pss/Anonymous right after and again
after each of SECONDS (default 1 10 30). What the running server touches again comes back;
what it touched only while starting stays out. The difference is the start-up code that
RSS and PSS count for as long as nobody reclaims it.

A measurement, not a tuning: the server does not do this to itself (docs/benchmarks.md §11).
"""
import ctypes
import os
import sys
import time

SYS_PIDFD_OPEN, SYS_PROCESS_MADVISE = 434, 440  # x86_64
MADV_PAGEOUT = 21


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def rollup(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        kib = {line.split(":")[0]: int(line.split()[1]) for line in f if line.split(":")[0] in ("Rss", "Pss", "Anonymous")}
    return " ".join(f"{k} {v / 1024:.1f} MiB" for k, v in kib.items())


def page_out_executable(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        sys.exit(f"pidfd_open({pid}): errno {ctypes.get_errno()}")
    exe = os.readlink(f"/proc/{pid}/exe")
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 6 or fields[5] != exe:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            iov = IoVec(start, end - start)
            if libc.syscall(SYS_PROCESS_MADVISE, pidfd, ctypes.byref(iov), 1, MADV_PAGEOUT, 0) < 0:
                print(f"process_madvise {fields[0]} {fields[1]}: errno {ctypes.get_errno()}", file=sys.stderr)
    os.close(pidfd)


def main():
    pid = int(sys.argv[1])
    waits = [float(s) for s in sys.argv[2:]] or [1, 10, 30]
    print(f"before:         {rollup(pid)}")
    page_out_executable(pid)
    print(f"right after:    {rollup(pid)}")
    waited = 0.0
    for wait in waits:
        time.sleep(max(0.0, wait - waited))
        waited = wait
        print(f"after {wait:>4.0f} s:     {rollup(pid)}")


if __name__ == "__main__":
    main()
