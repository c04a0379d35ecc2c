#!/bin/sh
# Debian packages the test suite needs beyond Python: Chromium (and its driver) for the web
# app's browser tests (tests/test_web_browser.py, driven by Playwright with
# executable_path=/usr/bin/chromium; never `playwright install`). `make test` runs it.
# As root on Debian it installs what is missing and prints one line when it does; anywhere
# else it installs nothing and says nothing: the browser tests then say what is missing.
set -eu

command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || exit 0
[ "$(id -u)" = 0 ] || exit 0

missing=""
for package in chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $package"
done
[ -n "$missing" ] || exit 0

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # one word per package
apt-get install -y -qq $missing >/dev/null
echo "installed Debian's$missing (for the browser tests)"
