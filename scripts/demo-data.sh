#!/bin/sh
# Make sure Fashion-MNIST is somewhere neuralab looks, for `make demo` and `make test` on a
# fresh machine: already found -> nothing to do; else download it; else, as root on Debian,
# install Debian's dataset-fashion-mnist package (works where only the package mirror is
# reachable). Progress goes to stdout, failures to stderr (`make test` hides them: the tests
# then say what is missing).
set -e
NEURALAB="${1:-.venv/bin/neuralab}"
"$NEURALAB" data path fashion-mnist >/dev/null 2>&1 && exit 0
"$NEURALAB" data fetch fashion-mnist && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's dataset-fashion-mnist package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    exit 0
fi
echo "Fashion-MNIST not found and not downloadable; see \`neuralab data path fashion-mnist\`" >&2
exit 1
