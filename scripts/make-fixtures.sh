#!/usr/bin/env bash
# Regenerates the committed media assets (needs ffmpeg with libx264 and the DejaVu fonts).
# They are committed so that building and testing need no external tool.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fixtures="$root/tests/fixtures"

# DJ 1: 10 s of 320x180@30 H.264 High + AAC stereo 44.1 kHz, one keyframe per second.
ffmpeg -v error -y -f lavfi -i testsrc2=size=320x180:rate=30 -f lavfi -i "sine=frequency=440:sample_rate=44100" \
  -t 10 -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -b:v 150k -maxrate 200k -bufsize 300k \
  -g 30 -keyint_min 30 -sc_threshold 0 -c:a aac -b:a 64k -ac 2 -f flv "$fixtures/dj.flv"

# DJ 2: a different picture, frame rate and sample rate (640x360@25, AAC 48 kHz), to prove
# the program stays decodable when DJs' streams differ.
ffmpeg -v error -y -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i "sine=frequency=660:sample_rate=48000" \
  -t 6 -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -b:v 200k -maxrate 250k -bufsize 400k \
  -g 25 -keyint_min 25 -sc_threshold 0 -c:a aac -b:a 64k -ac 2 -f flv "$fixtures/dj2.flv"

# A slate file as a user would pass with --slate (the program's tests play it): 2 s of
# 1280x720@30 H.264 Main + silent AAC, a keyframe per second. The built-in slate is
# generated at start-up instead (src/channel/slate.rs).
font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
ffmpeg -v error -y -f lavfi -i "color=c=0x14141f:s=1280x720:r=30" -f lavfi -i "anullsrc=r=44100:cl=stereo" -t 2 \
  -vf "drawtext=fontfile=$font:text='motherstream':fontcolor=0xffd54a:fontsize=72:x=(w-text_w)/2:y=(h-text_h)/2-40,drawtext=fontfile=$font:text='the next set starts soon':fontcolor=white@0.8:fontsize=36:x=(w-text_w)/2:y=(h/2)+40" \
  -c:v libx264 -preset slow -tune stillimage -profile:v main -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 \
  -b:v 300k -c:a aac -b:a 64k -ac 2 -ar 44100 -f flv "$fixtures/slate.flv"

# The text of the generated slate (src/channel/slate.rs draws it in the channel profile):
# 8-bit coverage masks at 1.5 times their size in a 1280x720 picture, cropped to the ink.
for part in "title:motherstream:108" "subtitle:the next set starts soon:54"; do
  IFS=: read -r name text size <<<"$part"
  python3 - "$root/assets/slate-$name.pgm" "$text" "$size" "$font" <<'PY'
import subprocess, sys
out, text, size, font = sys.argv[1:]
raw = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=1920x1080",
    "-vf", f"drawtext=fontfile={font}:text='{text}':fontcolor=white:fontsize={size}:x=100:y=100",
    "-frames:v", "1", "-pix_fmt", "gray", "-f", "rawvideo", "-"], check=True, capture_output=True).stdout
w, h = 1920, 1080
rows = [raw[y * w:(y + 1) * w] for y in range(h)]
ys = [y for y in range(h) if any(rows[y])]
xs = [x for x in range(w) if any(rows[y][x] for y in ys)]
x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
with open(out, "wb") as f:
    f.write(b"P5\n%d %d\n255\n" % (x1 - x0, y1 - y0))
    f.write(b"".join(rows[y][x0:x1] for y in range(y0, y1)))
PY
done
