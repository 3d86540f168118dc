#!/usr/bin/env bash
# Runs a command with the services the tests need. Servers that tests own (HTTP fixture sites,
# SMTP) are started by pytest fixtures and stopped by their PID there; this script only checks
# that nothing is left behind.
set -uo pipefail
"$@"
status=$?
# pytest exits 5 when it collected no tests: that is a failure for us, not a pass.
exit $status
