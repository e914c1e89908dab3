#!/bin/sh
# Installs, on Debian, what `make bench` needs on top of tests/deps.sh:
# Nchan for nginx (the comparison), gnuplot for the chart, linux-perf for
# profiling (optional, used by hand; see bench/README.md). Safe to run again:
# apt-get runs only when something is missing; services are kept from starting.
set -eu

sh "$(dirname "$0")/../tests/deps.sh"

PKGS="libnginx-mod-nchan gnuplot-nox linux-perf"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
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
# linux-perf is a nice-to-have: do not fail the bench when a kernel lacks it
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing ||
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		libnginx-mod-nchan gnuplot-nox
