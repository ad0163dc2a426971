#!/usr/bin/env bash
# One-shot set-up for a fresh machine. Usage: scripts/setup.sh [car|full]
#   car  : the agent's runtime only (what ships to the head unit) + the virtual car
#   full : + cloud-side training/export/Spark deps, test deps, mosquitto and Chromium for the tests
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-full}"
PY="${PYTHON:-python3}"

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

if [[ "$profile" == full ]]; then
  command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || apt_install mosquitto
  [[ -x /usr/bin/chromium ]] || apt_install chromium chromium-driver
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless   # Spark (cloud extra)
  "$PY" -m pip install -q --disable-pip-version-check -e '.[train,cloud,dev]'
else
  "$PY" -m pip install -q --disable-pip-version-check -e .
fi
