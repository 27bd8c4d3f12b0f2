#!/usr/bin/env bash
# Refreshes the vendored hls.js (the watch page's player for browsers without native HLS)
# from its npm package, without a Node toolchain:
#
#   scripts/refresh-hlsjs.sh          # the latest release
#   scripts/refresh-hlsjs.sh 1.7.4    # a given version
#
# Downloads the package tarball named by the registry, checks it against the registry's
# integrity hash (sha512, Subresource Integrity format) before reading anything from it,
# then writes assets/web/vendor/hls.min.js, its licence, hls.js.version and
# assets/web/vendor/README.md (version, licence, checksums). The asset's URL carries the
# version (src/web/assets.rs reads hls.js.version), so browsers may cache it for good.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENDOR="$ROOT/assets/web/vendor"
VERSION="${1:-latest}"
REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"

for tool in curl python3 tar sha256sum; do
  command -v "$tool" >/dev/null || { echo "refresh-hlsjs: $tool is needed" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

curl -fsS --retry 3 "$REGISTRY/hls.js/$VERSION" -o "$WORK/meta.json"
read -r VERSION LICENSE TARBALL INTEGRITY < <(python3 - "$WORK/meta.json" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
print(meta["version"], meta["license"], meta["dist"]["tarball"], meta["dist"]["integrity"])
PY
)
[[ "$LICENSE" == "Apache-2.0" ]] || { echo "refresh-hlsjs: licence is now $LICENSE, review before vendoring" >&2; exit 1; }
[[ "$INTEGRITY" == sha512-* ]] || { echo "refresh-hlsjs: no sha512 integrity ($INTEGRITY)" >&2; exit 1; }

curl -fsS --retry 3 "$TARBALL" -o "$WORK/package.tgz"
ACTUAL="sha512-$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$WORK/package.tgz")"
if [[ "$ACTUAL" != "$INTEGRITY" ]]; then
  echo "refresh-hlsjs: tarball integrity mismatch: registry $INTEGRITY, downloaded $ACTUAL" >&2
  exit 1
fi

tar -xzf "$WORK/package.tgz" -C "$WORK" package/dist/hls.min.js package/LICENSE
cp "$WORK/package/dist/hls.min.js" "$VENDOR/hls.min.js"
# Apache-2.0 asks redistributions to carry the licence text.
cp "$WORK/package/LICENSE" "$VENDOR/hls.js.LICENSE"
# Read by src/web/assets.rs: the file's address carries it.
printf '%s\n' "$VERSION" >"$VENDOR/hls.js.version"
FILE_SHA256="$(sha256sum "$VENDOR/hls.min.js" | cut -d' ' -f1)"

cat >"$VENDOR/README.md" <<MD
# Vendored third-party files

## hls.min.js

- Package: [hls.js](https://github.com/video-dev/hls.js) on npm
- Version: $VERSION
- Licence: $LICENSE (Copyright (c) 2017 Dailymotion), text in \`hls.js.LICENSE\`
- Tarball: $TARBALL
- Tarball integrity (npm, checked before extraction): $INTEGRITY
- File: \`dist/hls.min.js\`, unmodified, sha256 $FILE_SHA256

The watch and embed pages load it for browsers without native HLS (all but Safari). Refresh
with \`scripts/refresh-hlsjs.sh [VERSION]\`; never edit the file by hand. It is served at
\`/assets/hls-$VERSION.min.js\` with a year-long cache: the version in the address
changes with the file.
MD
echo "hls.js $VERSION vendored ($FILE_SHA256)"
