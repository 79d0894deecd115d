#!/usr/bin/env bash
# System packages the build and the tests need, from Debian's archive, installed only when missing.
set -euo pipefail

need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v git >/dev/null || need+=(git)
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
[ -x /usr/bin/chromium ] || need+=(chromium)  # the Galata UI tests drive Debian's Chromium

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]} (install them with apt-get as root)" >&2
  exit 1
fi
for attempt in 1 2 3 4 5; do
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; then
    exit 0
  fi
  echo "apt-get failed (attempt $attempt), retrying in 10 s (the apt lock may be busy)" >&2
  sleep 10
done
exit 1
