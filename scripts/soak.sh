#!/usr/bin/env bash
# The soak run (tests/server/soak.rs): 8 DJs of the interop matrix rotate through clean
# stops, drops, reconnects, slot expiries, skips and kicks for N minutes while nginx-rtmp is
# the platform (restarted at random) and players come and go, all on 127.0.0.1. Prints
# platform connections, the largest presentation gap per transition kind, A/V offsets, the
# server's RSS and open files over time, and decode errors; exits non-zero if a bar is missed.
#   scripts/soak.sh [--minutes N] [--seed S]     (default: 30 minutes, seed 16)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=30
seed=16
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "usage: $0 [--minutes N] [--seed S]" >&2; exit 2 ;;
  esac
done
export MOTHERSTREAM_SOAK_MINUTES="$minutes" MOTHERSTREAM_SOAK_SEED="$seed"
exec cargo test --locked --test server -- --ignored --exact soak::soak --nocapture
