#!/usr/bin/env bash
# Set up everything FundTrail needs on a fresh Debian machine with Python 3.11:
# system packages (when run as root), the Python virtual environment, and the node tools.
#   scripts/setup.sh            python environment only (enough for the demo)
#   scripts/setup.sh --full     also the real-node and browser test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
[ "${1:-}" = "--full" ] && full=1

if [ "$full" = 1 ]; then
  need=()
  command -v litecoind >/dev/null 2>&1 || need+=(litecoind)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v wrk >/dev/null 2>&1 || need+=(wrk)                      # the API load benchmark
  command -v java >/dev/null 2>&1 || need+=(default-jre-headless)    # Spark (the scale-out engine)
  fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${need[@]}"
    else
      echo "setup: please install these Debian packages: ${need[*]}" >&2
    fi
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$full" = 1 ]; then
  .venv/bin/pip install -q -c constraints.txt -e '.[postgres,api,sharing,spark,dev]'
  if [ -f tools/node/package.json ]; then
    npm ci --prefix tools/node --no-audit --no-fund --loglevel=error
  fi
  if [ -f src/fundtrail/web/package.json ]; then
    npm ci --prefix src/fundtrail/web --no-audit --no-fund --loglevel=error
  fi
else
  .venv/bin/pip install -q -c constraints.txt -e '.[postgres,api,sharing]'
fi
