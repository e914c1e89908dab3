#!/bin/sh
# The demo: nginx + sse-fcgi on 127.0.0.1, in the foreground, until Ctrl-C.
#
#   sh examples/run-demo.sh            (or `make run`)
#   sh examples/run-demo.sh --tokens   streams need signed tokens (JWT)
#
# On a fresh Debian machine it first installs what is missing (tests/deps.sh,
# with sudo when not root) and builds ./sse-fcgi. Then it runs the shipped
# examples/nginx/nginx.conf and the spawn-fcgi line of
# examples/nginx/spawn-fcgi.sh with the documented substitution
# (tests/integration/README.md: listen port, FastCGI socket, log, pid, temp
# paths and the page root), everything inside one private directory, serves
# the page of examples/demo/, prints the URLs to open and the curl lines to
# publish, and waits. If sse-fcgi exits (try `kill PID` and watch the page
# reconnect), it starts it again after 3 s. Ctrl-C (SIGINT) or SIGTERM stops
# sse-fcgi (streams get a jittered retry: and a clean end), then nginx, by pid,
# and removes the directory.
#
# --tokens turns on sse-fcgi's access control (jwt { subscribe = true } with a
# random secret): the demo plays the application and mints, with `sse-fcgi
# token`, a token for one patient (doctor-123 and appointment-42) that the
# page fetches from /demo-token and keeps in the sse_token cookie; the page for
# other resources is refused (403). Publishing then needs a token too: the
# printed curl lines carry one.
#
# Environment:
#   PORT=8080       nginx listens on 127.0.0.1:$PORT
#   PROCS=1         sse-fcgi processes (spawn-fcgi -F). Without Redis a publish
#                   reaches only the process that accepted it, so more than one
#                   needs REDIS_HOST (multi-server mode).
#   REDIS_HOST REDIS_PORT REDIS_PASSWORD REDIS_DB
#                   passed through to sse-fcgi (multi-server mode)
#   DEMO_DIR        the private directory (must not exist yet; default: a new
#                   directory under ${TMPDIR:-/tmp}); removed on exit
#   SSE_FCGI_BIN    run this binary; skips the package check and the build
set -eu

cd "$(dirname "$0")/.."
REPO=$(pwd)
PORT=${PORT:-8080}
PROCS=${PROCS:-1}

say() { printf '%s\n' "$*"; }
die() { printf 'run-demo: %s\n' "$*" >&2; exit 1; }

TOKENS=0
for arg in "$@"; do
	case $arg in
	--tokens) TOKENS=1 ;;
	-h|--help) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $arg (try --tokens or --help)" ;;
	esac
done

case $PORT in ''|*[!0-9]*) die "PORT=$PORT is not a port number" ;; esac
if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then die "PORT=$PORT is not a port number"; fi
case $PROCS in ''|*[!0-9]*|0) die "PROCS=$PROCS is not a process count" ;; esac
if [ "$PROCS" -gt 1 ] && [ -z "${REDIS_HOST:-}" ]; then
	die "PROCS=$PROCS needs Redis: without it a publish reaches only the process that accepted it. Set REDIS_HOST (e.g. REDIS_HOST=127.0.0.1 PROCS=$PROCS) or use PROCS=1."
fi

# --- packages and build ----------------------------------------------------
if [ -n "${SSE_FCGI_BIN:-}" ]; then
	BIN=$SSE_FCGI_BIN
else
	sh tests/deps.sh run
	make
	BIN=$REPO/sse-fcgi
fi
[ -x "$BIN" ] || die "$BIN is not an executable (run make)"
PATH=$PATH:/usr/sbin:/sbin   # nginx, for users whose PATH lacks sbin
for tool in nginx spawn-fcgi curl; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (sh tests/deps.sh run installs it)"
done

# --- the private directory -------------------------------------------------
if [ -n "${DEMO_DIR:-}" ]; then
	if [ -e "$DEMO_DIR" ]; then
		die "DEMO_DIR=$DEMO_DIR exists; name a new directory (it is removed on exit)"
	fi
	mkdir -p "$DEMO_DIR"
	D=$(cd "$DEMO_DIR" && pwd)
else
	D=$(mktemp -d "${TMPDIR:-/tmp}/sse-fcgi-demo.XXXXXX")
fi
# The paths go into sed and nginx.conf unquoted: keep them plain.
case $D in *[!A-Za-z0-9/._-]*) rm -rf "$D"; die "DEMO_DIR=$D: use only letters, digits and / . _ -" ;; esac
# Readable by the nginx workers and the backend (www-data when we are root).
chmod 0755 "$D"
mkdir -p "$D/run" "$D/log" "$D/sse" "$D/www" "$D/nginx/tmp"

NGINX_PID=""
BACKEND_PIDS=""

# Alive and not a zombie (an exited sse-fcgi waits for whoever reaps orphans).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) in Z*) return 1 ;; esac
	return 0
}

# Wait up to $2 tenths of a second for pid $1 to go.
gone_within() {
	n=0
	while alive "$1"; do
		[ "$n" -ge "$2" ] && return 1
		sleep 0.1
		n=$((n + 1))
	done
	return 0
}

cleanup() {
	trap '' INT TERM HUP
	trap - EXIT
	status=${1:-0}
	say ""
	say "stopping ..."
	for pid in $BACKEND_PIDS; do kill -TERM "$pid" 2>/dev/null || :; done
	for pid in $BACKEND_PIDS; do
		if ! gone_within "$pid" 100; then
			say "sse-fcgi pid $pid did not stop within 10 s of SIGTERM: killing it"
			kill -KILL "$pid" 2>/dev/null || :
		fi
	done
	if [ -n "$NGINX_PID" ]; then
		kill -TERM "$NGINX_PID" 2>/dev/null || :
		if ! gone_within "$NGINX_PID" 100; then
			say "nginx pid $NGINX_PID did not stop within 10 s: killing it"
			kill -KILL "$NGINX_PID" 2>/dev/null || :
		fi
		wait "$NGINX_PID" 2>/dev/null || :
	fi
	if [ "$status" -ne 0 ]; then
		for f in "$D/log/error.log" "$D/sse/sse-fcgi.log"; do
			if [ -s "$f" ]; then
				say "--- last lines of $f"
				tail -n 15 "$f"
			fi
		done
	fi
	rm -rf "$D"
	say "stopped; removed $D"
	exit "$status"
}
trap 'cleanup 0' INT TERM HUP
trap 'cleanup 1' EXIT

# --- the page --------------------------------------------------------------
cp examples/demo/index.html examples/demo/demo.js examples/demo/demo.css "$D/www/"
chmod 0755 "$D/www"
chmod 0644 "$D/www/"*

# --- sse-fcgi via spawn-fcgi -------------------------------------------------
SOCK=$D/run/sse-fcgi.sock
CONF=$D/sse/sse-fcgi.conf
cat > "$CONF" <<EOF
# Written by examples/run-demo.sh. Every other key keeps its default;
# conf/sse-fcgi.conf documents them all. spawn-fcgi sends the children's
# stderr to /dev/null, hence the log file.
log_file = "$D/sse/sse-fcgi.log"
EOF
chmod 0644 "$CONF"
if [ "$TOKENS" = 1 ]; then
	# A random HS256 secret for this run only: 36 random bytes, 48 characters.
	SECRET=$(head -c 36 /dev/urandom | base64 | tr -d '\n')
	cat >> "$CONF" <<EOF

# --tokens: every stream needs a token granting its resource.
jwt {
    subscribe = true
    secret = "$SECRET"
}
EOF
	chmod 0640 "$CONF"       # the secret: readable by the backend only
fi
if [ "$(id -u)" -eq 0 ]; then
	chown www-data:www-data "$D/sse"    # the backend runs as www-data
	chgrp www-data "$CONF"
fi
"$BIN" -t -c "$CONF" || die "sse-fcgi -t rejected $CONF"

# The demo's "application": it knows one patient, who may watch doctor-123 and
# appointment-42, and hands the page a token for them at /demo-token (a real
# site mints it per user with its own JWT library and sets the cookie from its
# server, HttpOnly). A day is longer than any demo runs.
if [ "$TOKENS" = 1 ]; then
	"$BIN" token -c "$CONF" --subscribe doctor-123 appointment-42 --ttl 86400 --sub demo-patient \
		> "$D/www/demo-token" || die "sse-fcgi token failed"
	chmod 0644 "$D/www/demo-token"
	PUBLISH_TOKEN=$("$BIN" token -c "$CONF" --publish '*' --ttl 86400 --sub demo-app) ||
		die "sse-fcgi token failed"
	STREAM_TOKEN=$(cat "$D/www/demo-token")
fi

# The first `spawn-fcgi ` line of examples/nginx/spawn-fcgi.sh, with -s, -P,
# -F, the program and its -c replaced (as in the tests). As root the socket is
# www-data's with mode 0660 and the backend runs as www-data, as shipped; as
# another user spawn-fcgi ignores -U -G -u -g and everything runs as you.
line=$(grep '^spawn-fcgi ' examples/nginx/spawn-fcgi.sh | head -n 1)
[ -n "$line" ] || die "examples/nginx/spawn-fcgi.sh has no spawn-fcgi line"
set -f
# shellcheck disable=SC2086
set -- $line
set +f
argv=""
next=""
seen=""
after_dd=0
for a in "$@"; do
	case $next in
	s) a=$SOCK; seen="$seen s" ;;
	P) a=$D/run/spawn.pid; seen="$seen P" ;;
	F) a=$PROCS; seen="$seen F" ;;
	prog) a=$BIN; seen="$seen prog" ;;
	c) a=$CONF; seen="$seen c" ;;
	esac
	if [ -n "$next" ]; then next=""
	elif [ "$after_dd" = 0 ]; then
		case $a in -s) next=s ;; -P) next=P ;; -F) next=F ;; --) after_dd=1; next=prog ;; esac
	else
		case $a in -c) next=c ;; esac
	fi
	argv="$argv $a"
done
for need in s P F prog c; do
	case "$seen " in *" $need "*) ;; *) die "examples/nginx/spawn-fcgi.sh: the spawn-fcgi line lacks its ${need} value" ;; esac
done
start_backend() {
	# shellcheck disable=SC2086
	$argv >"$D/log/spawn-fcgi.out" 2>&1 || { cat "$D/log/spawn-fcgi.out" >&2; die "spawn-fcgi failed"; }
	BACKEND_PIDS=$(paste -sd ' ' "$D/run/spawn.pid")   # one a line -> one line
}
start_backend

# --- nginx -------------------------------------------------------------------
# The documented substitution; each rule must match, and no system path may
# remain outside comments.
NCONF=$D/nginx/nginx.conf
sed -e "s|^\([[:space:]]*listen[[:space:]]\{1,\}127\.0\.0\.1:\)8080\([[:space:]]*;\)|\1$PORT\2|" \
    -e "s|unix:/run/sse-fcgi/sse-fcgi\.sock|unix:$SOCK|" \
    -e "s|/var/log/nginx/|$D/log/|g" \
    -e "s|^\([[:space:]]*pid[[:space:]]\{1,\}\)/run/nginx\.pid\([[:space:]]*;\)|\1$D/run/nginx.pid\2|" \
    -e "s|/var/lib/nginx/|$D/nginx/tmp/|g" \
    -e "s|/var/www/sse-fcgi-demo|$D/www|g" \
    examples/nginx/nginx.conf > "$NCONF"
for want in "127.0.0.1:$PORT;" "unix:$SOCK" "$D/log/" "pid $D/run/nginx.pid" "$D/nginx/tmp/" "root $D/www;"; do
	grep -qF -- "$want" "$NCONF" || die "examples/nginx/nginx.conf: the substitution found nothing to turn into '$want'"
done
# What the substitution must have replaced is gone: no system path outside
# comments, and every listen directive is the one we asked for. (Compare the
# directives themselves, not a port number: PORT=8080 is the shipped value.)
if sed 's/#.*//' "$NCONF" | grep -nE '(^|[^A-Za-z0-9_.-])(/run/|/var/log/|/var/lib/|/var/www/)' >&2; then
	die "examples/nginx/nginx.conf: a system path is left after the substitution (above)"
fi
if sed 's/#.*//' "$NCONF" | grep -nE '^[[:space:]]*listen[[:space:]]' | grep -vE "listen[[:space:]]+127\.0\.0\.1:$PORT[[:space:]]*;" >&2; then
	die "examples/nginx/nginx.conf: a listen directive is not 127.0.0.1:$PORT after the substitution (above)"
fi
cp /etc/nginx/fastcgi_params "$D/nginx/fastcgi_params"
NGX="nginx -p $D/nginx/ -c $NCONF -e $D/log/error.log"
# shellcheck disable=SC2086
$NGX -t -q || die "nginx -t failed for $NCONF"
# In its own session, so that Ctrl-C reaches only this script, which then
# stops sse-fcgi first (each stream gets a jittered retry: and a clean end,
# through nginx) and nginx after. (sse-fcgi is in its own session already:
# spawn-fcgi does that.) setsid does not fork here, so $! is nginx.
# shellcheck disable=SC2086
setsid $NGX -g 'daemon off;' >"$D/log/nginx.out" 2>&1 &
NGINX_PID=$!

# Ready when /stats answers through nginx: both are up and connected.
n=0
until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/stats" 2>/dev/null; do
	alive "$NGINX_PID" || { cat "$D/log/nginx.out" >&2; die "nginx exited (port $PORT taken? set PORT=...)"; }
	for pid in $BACKEND_PIDS; do alive "$pid" || die "sse-fcgi pid $pid exited"; done
	[ "$n" -ge 100 ] && die "no answer from http://127.0.0.1:$PORT/stats within 10 s"
	sleep 0.1
	n=$((n + 1))
done

# --- tell the user -------------------------------------------------------------
URL=http://127.0.0.1:$PORT
if [ -n "${REDIS_HOST:-}" ]; then
	mode="multi-server mode through Redis at $REDIS_HOST, $PROCS process(es)"
else
	mode="single-server mode, 1 process; several processes need Redis: REDIS_HOST=127.0.0.1 PROCS=4 make run"
fi
if [ "$TOKENS" = 0 ]; then
cat <<EOF

sse-fcgi demo is running ($mode).

Open in a browser:
  $URL/
      the queue board of doctor-123 and the status page of appointment-42
  $URL/?doctor=doctor-7&appointment=appointment-9
      other resources

Publish from this machine (nginx answers /publish/ on 127.0.0.1 only):
  curl -sS -X POST '$URL/publish/doctor-123?event=queue_update' -H 'Content-Type: application/json' -d '{"type":"queue_update","nowServing":"A-17","waiting":4,"estimatedWait":12}'
  curl -sS -X POST '$URL/publish/appointment-42?event=status_change' -H 'Content-Type: application/json' -d '{"type":"status_change","status":"IN_CONSULTATION"}'

Watch a raw stream:       curl -N $URL/sse/doctor-123
Counters of the process:  curl $URL/stats
Logs: $D/log/ (nginx), $D/sse/sse-fcgi.log
nginx pid $NGINX_PID, sse-fcgi pid(s) $BACKEND_PIDS

Press Ctrl-C to stop.
EOF
else
cat <<EOF

sse-fcgi demo is running ($mode), streams need signed tokens.

Open in a browser:
  $URL/
      the queue board of doctor-123 and the status page of appointment-42: the page
      fetches its token from /demo-token (minted by sse-fcgi token for these two)
      and sends it in the sse_token cookie
  $URL/?doctor=doctor-7&appointment=appointment-9
      another patient's resources: refused (403), the page says so

Publish from this machine (nginx answers /publish/ on 127.0.0.1 only; publishing needs a token too):
  curl -sS -X POST '$URL/publish/doctor-123?event=queue_update' -H 'Authorization: Bearer $PUBLISH_TOKEN' -H 'Content-Type: application/json' -d '{"type":"queue_update","nowServing":"A-17","waiting":4,"estimatedWait":12}'
  curl -sS -X POST '$URL/publish/appointment-42?event=status_change' -H 'Authorization: Bearer $PUBLISH_TOKEN' -H 'Content-Type: application/json' -d '{"type":"status_change","status":"IN_CONSULTATION"}'

Watch a raw stream:       curl -N -b 'sse_token=$STREAM_TOKEN' $URL/sse/doctor-123
Without a token:          curl -i $URL/sse/doctor-123
Counters of the process:  curl $URL/stats
Logs: $D/log/ (nginx), $D/sse/sse-fcgi.log
nginx pid $NGINX_PID, sse-fcgi pid(s) $BACKEND_PIDS

Press Ctrl-C to stop.
EOF
fi

# --- foreground until Ctrl-C ---------------------------------------------------
# spawn-fcgi never restarts a child; the demo does, after a pause, so that you
# can stop the backend (kill PID) and watch the page: "reconnecting", nginx's
# 502 ("server unavailable"), then live again through its reconnect script.
while :; do
	alive "$NGINX_PID" || { say "nginx exited"; cleanup 1; }
	for pid in $BACKEND_PIDS; do
		alive "$pid" && continue
		say "sse-fcgi pid $pid exited; starting sse-fcgi again in 3 s (Ctrl-C stops the demo)"
		for other in $BACKEND_PIDS; do kill -TERM "$other" 2>/dev/null || :; done
		for other in $BACKEND_PIDS; do gone_within "$other" 100 || kill -KILL "$other" 2>/dev/null || :; done
		sleep 3
		start_backend
		say "sse-fcgi pid(s) $BACKEND_PIDS"
		break
	done
	sleep 1
done
