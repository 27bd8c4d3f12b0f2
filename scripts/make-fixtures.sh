#!/usr/bin/env bash
# Regenerates the committed test fixtures (needs ffmpeg with libx264). The fixtures are
# committed so that `cargo test` itself needs no external tool.
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures"
# 10 s of 320x180@30 H.264 High + AAC stereo 44.1 kHz, one keyframe per second, ~220 kbit/s.
ffmpeg -v error -y -f lavfi -i testsrc2=size=320x180:rate=30 -f lavfi -i "sine=frequency=440:sample_rate=44100" \
  -t 10 -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -b:v 150k -maxrate 200k -bufsize 300k \
  -g 30 -keyint_min 30 -sc_threshold 0 -c:a aac -b:a 64k -ac 2 -f flv dj.flv
