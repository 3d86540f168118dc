#!/usr/bin/env bash
# Installs the Debian packages the test suite needs. Idempotent: does nothing when all are present.
set -euo pipefail
packages=(chromium)  # chromium: the web UI's browser tests (tests/web)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
