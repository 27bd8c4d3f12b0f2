#!/usr/bin/env bash
# Installs the external tools the tests use (Debian/Ubuntu): ffmpeg/ffprobe as a real RTMP
# publisher and media checker, PostgreSQL's server for the store and database tests
# (scripts/test-postgres.sh runs a throwaway cluster from it), and headless Chromium with its
# chromedriver for the browser tests, and nginx with its RTMP module as a real platform for
# the interop matrix (tests/server/matrix.rs). Safe to run repeatedly.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
# Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin, out of PATH.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
# nginx-light is the smallest nginx; the matrix runs it with its own config, never as a service.
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
# Debian's package names: Ubuntu ships Chromium only as a snap, which does not run in containers.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# Without recommended packages nothing may pull in a font, and pages would screenshot as boxes.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -eq 0 ]; then
  echo "test dependencies already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
