#!/usr/bin/env bash
# Builds the fuzz targets' seed corpora in fuzz/seeds/<target>/ from real captures: an
# ffmpeg publish recorded on the wire (through a local proxy to an ffmpeg RTMP listener),
# the committed FLV fixtures, and decoder configuration records cut out of short ffmpeg
# encodes (H.264, H.265, AV1, VP9, AAC, Opus). Each seed starts with the target's own
# control bytes (see the comment at the top of each fuzz/fuzz_targets/*.rs).
# Needs ffmpeg with libx264, libx265, libaom-av1, libvpx-vp9 and libopus, and python3.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seeds="$root/fuzz/seeds"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- Encodes: one short file per codec, for its configuration record. -------------------
enc() { ffmpeg -v error -y -f lavfi -i "testsrc2=size=${1}:rate=15" -t 0.5 "${@:2}"; }
enc 160x90 -c:v libx264 -profile:v baseline -pix_fmt yuv420p -f mp4 "$work/avc-baseline.mp4"
enc 176x100 -c:v libx264 -profile:v high -pix_fmt yuv420p -flags +ildct+ilme -x264-params interlaced=1 \
  -f mp4 "$work/avc-high-interlaced.mp4"
enc 100x60 -c:v libx264 -profile:v high444 -pix_fmt yuv444p -f mp4 "$work/avc-444.mp4"
enc 200x112 -c:v libx265 -x265-params log-level=none -pix_fmt yuv420p -f mp4 "$work/hevc.mp4"
enc 120x68 -c:v libx265 -x265-params log-level=none -pix_fmt yuv420p10le -f mp4 "$work/hevc-10bit.mp4"
enc 96x64 -c:v libaom-av1 -cpu-used 8 -pix_fmt yuv420p -f mp4 "$work/av1.mp4"
enc 96x64 -c:v libvpx-vp9 -deadline realtime -pix_fmt yuv420p -f mp4 "$work/vp9.mp4"
ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 0.2 -c:a libopus -ac 2 "$work/opus.ogg"
ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=22050" -t 0.2 -c:a aac -ac 1 -f mp4 "$work/aac-mono.mp4"
ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=8000" -t 0.2 -c:a aac -ac 6 -f mp4 "$work/aac-6ch.mp4"
# A small but complete FLV: header, metadata, both sequence headers, a few GOPs.
ffmpeg -v error -y -f lavfi -i "testsrc2=size=64x36:rate=10" -f lavfi -i "sine=sample_rate=22050" -t 0.6 \
  -c:v libx264 -g 3 -pix_fmt yuv420p -c:a aac -b:a 24k -ac 1 -f flv "$work/small.flv"

# --- A publish as ffmpeg sends it, recorded between it and an ffmpeg RTMP listener. -------
port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listen_port="$(port_of)"
proxy_port="$(port_of)"
ffmpeg -v error -y -listen 1 -i "rtmp://127.0.0.1:$listen_port/live/seed-key" -c copy -f flv "$work/received.flv" &
listener=$!
python3 - "$proxy_port" "$listen_port" "$work" <<'PY' &
# One connection, forwarded both ways; each direction is written to a file when it ends.
import socket, sys, threading, time
proxy_port, listen_port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", proxy_port)); srv.listen(1); srv.settimeout(60)
client, _ = srv.accept()
for _ in range(100):
    try:
        upstream = socket.create_connection(("127.0.0.1", listen_port)); break
    except OSError:
        time.sleep(0.1)
def pump(src, dst, name):
    data = bytearray()
    try:
        while chunk := src.recv(65536):
            data += chunk
            dst.sendall(chunk)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the other side closed first; what was received is kept
    open(f"{out}/{name}", "wb").write(data)
threads = [threading.Thread(target=pump, args=(client, upstream, "c2s")),
           threading.Thread(target=pump, args=(upstream, client, "s2c"))]
for t in threads: t.start()
for t in threads: t.join()
PY
proxy=$!
sleep 1
ffmpeg -v error -y -f lavfi -i "testsrc2=size=96x54:rate=10" -f lavfi -i "sine=sample_rate=22050" -t 1 \
  -c:v libx264 -g 5 -pix_fmt yuv420p -c:a aac -b:a 24k -ac 1 -f flv "rtmp://127.0.0.1:$proxy_port/live/seed-key"
wait "$proxy" "$listener"

# --- Cut the captures into seeds per target. -----------------------------------------------
rm -rf "$seeds"
python3 - "$root" "$work" "$seeds" <<'PY'
import hashlib, os, struct, sys
root, work, seeds = sys.argv[1:]
HANDSHAKE = 1 + 2 * 1536

def seed(target, data):
    d = os.path.join(seeds, target)
    os.makedirs(d, exist_ok=True)
    data = bytes(data)
    open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb").write(data)

def read(path):
    return open(path, "rb").read()

def box(data, name):
    """The contents of the first ISO-BMFF box called `name` (its size precedes the name)."""
    i = data.find(name)
    size = int.from_bytes(data[i - 4:i], "big")
    return data[i + 4:i - 4 + size]

def rtmp_messages(buf):
    """(type id, body) of each complete message in a client's chunk stream."""
    pos, chunk_size, prev, partial, out = 0, 128, {}, {}, []
    try:
        while pos < len(buf):
            fmt, csid = buf[pos] >> 6, buf[pos] & 0x3F
            pos += 1
            if csid == 0:
                csid, pos = 64 + buf[pos], pos + 1
            elif csid == 1:
                csid, pos = 64 + buf[pos] + 256 * buf[pos + 1], pos + 2
            h = dict(prev.get(csid, {}))
            if fmt <= 2:
                ts = int.from_bytes(buf[pos:pos + 3], "big"); pos += 3
                if fmt <= 1:
                    h["len"], h["type"] = int.from_bytes(buf[pos:pos + 3], "big"), buf[pos + 3]; pos += 4
                    if fmt == 0:
                        pos += 4
                h["ext"] = ts == 0xFFFFFF
                if h["ext"]:
                    pos += 4
            elif h.get("ext"):
                pos += 4
            prev[csid] = h
            part = partial.get(csid, b"")
            n = min(chunk_size, h["len"] - len(part))
            if pos + n > len(buf):
                break
            part += buf[pos:pos + n]; pos += n
            if len(part) == h["len"]:
                out.append((h["type"], part)); part = b""
                if h["type"] == 1:
                    chunk_size = int.from_bytes(out[-1][1][:4], "big") & 0x7FFFFFFF
            partial[csid] = part
    except (IndexError, KeyError):
        pass
    return out

def flv_tags(data):
    """(type, body) of each tag of an FLV file."""
    pos, out = int.from_bytes(data[5:9], "big") + 4, []
    while pos + 11 <= len(data):
        kind, size = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        out.append((kind, data[pos + 11:pos + 11 + size]))
        pos += 11 + size + 4
    return out

c2s, s2c = read(f"{work}/c2s"), read(f"{work}/s2c")
assert len(c2s) > HANDSHAKE and len(s2c) > HANDSHAKE, "the publish was not captured"
client_chunks, server_chunks = c2s[HANDSHAKE:], s2c[HANDSHAKE:]
client_msgs, server_msgs = rtmp_messages(client_chunks), rtmp_messages(server_chunks)
assert any(t == 20 for t, _ in client_msgs), "no command in the capture"

# handshake: piece size, then what the peer sent (client's C0C1C2, server's S0S1S2).
seed("handshake", b"\x00" + c2s[:HANDSHAKE + 32])
seed("handshake", b"\x61" + c2s[:HANDSHAKE + 32])
seed("handshake", b"\x00" + s2c[:HANDSHAKE + 32])

# chunk and session: piece size (session: + refuse bit), then the chunk stream, cut after
# the first media so that seeds stay small.
first_media = client_chunks[:12 * 1024]
for piece in (0, 1, 0x2D):
    seed("chunk", bytes([piece]) + first_media)
seed("chunk", b"\x00" + server_chunks[:4096])
for first in (0, 0x07, 0x80):
    seed("session", bytes([first]) + first_media)

# message: type id, then body; amf0: command and data bodies.
seen = set()
for type_id, body in client_msgs + server_msgs:
    if type_id in (8, 9) and body[:2] not in (b"\xaf\x00", b"\x17\x00"):
        continue  # media beyond the sequence headers adds nothing to these targets
    key = (type_id, body[:40])
    if key in seen:
        continue
    seen.add(key)
    seed("message", bytes([type_id]) + body[:2048])
    if type_id in (18, 20):
        seed("amf0", body)

# flv_file: piece size, then files.
small = read(f"{work}/small.flv")
seed("flv_file", b"\x00" + small)
seed("flv_file", b"\x1F" + small[:6000])
seed("flv_file", b"\x00" + read(f"{root}/tests/fixtures/slate.flv")[:8192])

# Tags and configuration records out of the fixtures and the encodes.
video_records = {0: [], 1: [], 2: [], 3: []}  # avc, hevc, av1, vp9
audio_configs = []
tags = flv_tags(small) + flv_tags(read(f"{root}/tests/fixtures/dj.flv"))[:40] + flv_tags(read(f"{root}/tests/fixtures/dj2.flv"))[:10]
avc_header = next(body for kind, body in tags if kind == 9 and body[:2] == b"\x17\x00")
keyframe = next(body for kind, body in tags if kind == 9 and body[:2] == b"\x17\x01" and len(body) < 16000)
inter = next(body for kind, body in tags if kind == 9 and body[:2] == b"\x27\x01")
for kind, body in tags:
    if kind == 9 and body[:2] == b"\x17\x00":
        video_records[0].append(body[5:])
    if kind == 8 and body[:2] == b"\xaf\x00":
        audio_configs.append(body[2:])
for name in ("avc-baseline", "avc-high-interlaced", "avc-444"):
    video_records[0].append(box(read(f"{work}/{name}.mp4"), b"avcC"))
for name in ("hevc", "hevc-10bit"):
    video_records[1].append(box(read(f"{work}/{name}.mp4"), b"hvcC"))
video_records[2].append(box(read(f"{work}/av1.mp4"), b"av1C"))
video_records[3].append(box(read(f"{work}/vp9.mp4"), b"vpcC"))
for name in ("aac-mono", "aac-6ch"):
    esds = box(read(f"{work}/{name}.mp4"), b"esds")
    # The DecoderSpecificInfo (tag 5) holds the AudioSpecificConfig.
    i = esds.index(b"\x05", 20)
    audio_configs.append(esds[i + 2:i + 2 + esds[i + 1]])
ogg = read(f"{work}/opus.ogg")
opus_head = ogg[ogg.index(b"OpusHead"):ogg.index(b"OpusHead") + 19]

for which, records in video_records.items():
    for record in records:
        seed("video_config", bytes([which]) + record)
for record in video_records[0]:
    sps_len = int.from_bytes(record[6:8], "big")
    seed("sps", b"\x00" + record[8:8 + sps_len])
for record in video_records[1]:
    pos = 23
    for _ in range(record[22]):
        nal_type, count = record[pos] & 0x3F, int.from_bytes(record[pos + 1:pos + 3], "big"); pos += 3
        for _ in range(count):
            n = int.from_bytes(record[pos:pos + 2], "big")
            if nal_type == 33:
                seed("sps", b"\x01" + record[pos + 2:pos + 2 + n])
            pos += 2 + n
for asc in audio_configs:
    seed("audio_config", b"\x00" + asc)
seed("audio_config", b"\x01" + opus_head)

# flv_tag: composition shift, split point, then a tag body and a sequence header body.
def tag_seed(shift, body, header=b""):
    seed("flv_tag", bytes([shift]) + struct.pack(">H", len(body)) + body + header)
tag_seed(0, keyframe, avc_header)
tag_seed(40, inter, avc_header)
tag_seed(0, avc_header)
for kind, body in tags[:12]:
    if kind == 8:
        tag_seed(0, body[:64])
hvcc = video_records[1][0]
tag_seed(0, b"\x1c\x00\x00\x00\x00" + hvcc)                               # legacy HEVC (id 12) header
tag_seed(0, b"\x90hvc1" + hvcc)                                           # Enhanced: SequenceStart
tag_seed(33, b"\x91hvc1\x00\x00\x21" + keyframe[5:200], b"\x90hvc1" + hvcc)  # CodedFrames + cts
tag_seed(7, b"\x93avc1" + keyframe[5:200], b"\x90avc1" + video_records[0][0])  # CodedFramesX
tag_seed(0, b"\x90av01" + video_records[2][0])
tag_seed(0, b"\x90vp09" + video_records[3][0])
tag_seed(0, b"\x96\x00hvc1\x00" + b"\x00" * 8)                            # multitrack, one track
tag_seed(0, b"\x96\x21hvc1\x01\x00\x00\x10" + b"\x00" * 16)              # many tracks
tag_seed(0, b"\x97\x01\x00\x00\x13avc1\x00\x00\x00" + b"\x00" * 8)        # ModEx then CodedFrames
tag_seed(0, b"\x94hvc1\x02\x00\x0acolorInfo")                             # metadata
tag_seed(0, b"\xd0\x00")                                                  # command frame
tag_seed(0, b"\x90Opus" + opus_head)                                      # Enhanced audio
tag_seed(0, b"\x90mp4a" + audio_configs[0])
tag_seed(0, b"\x95\x00Opus\x01" + opus_head)                              # audio multitrack

for url in (b"rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop",
            b"rtmps://live-api-s.facebook.com:443/rtmp/FB-123?s_bl=1&s_sw=0",
            b"rtmp://[::1]:1935/live/instance/key",
            b"RTMP://127.0.0.1/program/live"):
    seed("url", url)
PY
du -sh "$seeds"
for dir in "$seeds"/*/; do printf '%-14s %3d seeds\n' "$(basename "$dir")" "$(find "$dir" -type f | wc -l)"; done
