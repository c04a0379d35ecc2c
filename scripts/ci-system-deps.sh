#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: Chromium (and its driver) for the web
# app's browser tests (tests/test_web_browser.py, driven by Playwright with
# executable_path=/usr/bin/chromium; never `playwright install`).
# Idempotent and quiet: installs only what is missing, prints one line when it installs.
set -euo pipefail

packages=(chromium chromium-driver)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq "${missing[@]}" > /dev/null
echo "ci-system-deps: installed ${missing[*]}"
