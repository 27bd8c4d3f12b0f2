#!/usr/bin/env bash
# Installs the external tools the tests use (Debian/Ubuntu): ffmpeg/ffprobe as a real RTMP
# publisher and media checker, and PostgreSQL's server for the store and database tests
# (scripts/test-postgres.sh runs a throwaway cluster from it). Safe to run repeatedly.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
# Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin, out of PATH.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
  echo "test dependencies already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
