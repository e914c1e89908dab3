#!/bin/sh
# Installs, on Debian, whatever the build, the demo and the tests need and is missing.
# Used by `make run`, `make test` and .ci/run. Safe to run again: it only calls apt-get
# when a package is missing. Services the packages would start (nginx on :80,
# redis-server on :6379, lighttpd, apache2, caddy) are kept from starting: the tests
# start their own.
#
#   sh tests/deps.sh        everything (build, demo, tests; chromium for the browser test;
#                           apache2 and caddy for their fronts; php-cli, php-redis,
#                           python3-redis, python3-jwt for the publisher helpers;
#                           debhelper and lintian for the Debian package;
#                           clang and libclang-rt-14-dev, which holds libFuzzer, for tests/fuzz/)
#   sh tests/deps.sh run    only what the build and the demo need (examples/run-demo.sh)
#   sh tests/deps.sh bench  everything, plus Nchan and gnuplot for `make bench`
#                           (and linux-perf for profiling by hand, where the kernel has it)
#   sh tests/deps.sh soak   everything, plus gnuplot for `make soak`
set -eu

PKGS="build-essential pkg-config libfcgi-dev libhiredis-dev libconfuse-dev libssl-dev libjansson-dev nginx
spawn-fcgi curl"
OPTIONAL=""
if [ "${1:-}" != run ]; then
	PKGS="$PKGS libcmocka-dev redis-server redis-tools lighttpd python3 procps util-linux valgrind
chromium systemd man-db openssl python3-jwt python3-cryptography iproute2 apache2 caddy
php-cli php-redis python3-redis debhelper lintian dpkg-dev clang libclang-rt-14-dev"
fi
if [ "${1:-}" = soak ]; then
	PKGS="$PKGS gnuplot-nox"
fi
if [ "${1:-}" = bench ]; then
	PKGS="$PKGS libnginx-mod-nchan gnuplot-nox"
	OPTIONAL="linux-perf"
fi

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
missing=""
for p in $PKGS; do
	installed "$p" || missing="$missing $p"
done
optional=""
for p in $OPTIONAL; do
	installed "$p" || optional="$optional $p"
done
[ -z "$missing$optional" ] && exit 0

echo "installing:$missing$optional"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
	# exit 101 = "action not allowed": apt installs services without starting them
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	own_policy=1
fi
trap '[ "$own_policy" = 1 ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get update -qq
if [ -n "$missing" ]; then
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
if [ -n "$optional" ]; then
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		$optional || echo "optional packages not installed:$optional"
fi
