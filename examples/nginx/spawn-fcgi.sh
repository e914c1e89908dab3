#!/bin/sh
# Start sse-fcgi behind nginx with spawn-fcgi (run as root, e.g. from an init
# script or a systemd unit with Type=forking and PIDFile=/run/sse-fcgi/spawn.pid).
#
#   -s     the Unix socket nginx's fastcgi_pass points at (nginx.conf).
#   -M -U -G
#          socket mode 0660, owned by www-data: only the nginx workers
#          (user www-data) may connect.  The FastCGI socket is for the web
#          server alone — whoever can connect can publish.
#   -u -g  the sse-fcgi process runs as www-data, not root.
#   -F 1   exactly ONE process.  Without Redis a publish reaches only the
#          process that accepted it, so several processes would each see only
#          part of the streams.  With Redis configured (redis { host ... } in
#          sse-fcgi.conf, or REDIS_HOST) use -F N, e.g. one per core: every
#          process subscribes and all of them share one socket.
#   -P     the pid file lists the forked children's pids (one a line);
#          `kill -TERM $(cat /run/sse-fcgi/spawn.pid)` stops them gracefully
#          (each stream gets a jittered retry: and a clean end).
#
# spawn-fcgi sends the children's stdout/stderr to /dev/null: set log_file or
# syslog in sse-fcgi.conf, or you will never see a log line.  spawn-fcgi does
# not restart a process that dies; let your service manager watch it.
set -e

install -d -o www-data -g www-data -m 0750 /run/sse-fcgi

# Check the configuration first: a bad file prints the file, line and key.
/usr/local/sbin/sse-fcgi -t -c /etc/sse-fcgi/sse-fcgi.conf

spawn-fcgi -s /run/sse-fcgi/sse-fcgi.sock -M 0660 -U www-data -G www-data -u www-data -g www-data -F 1 -P /run/sse-fcgi/spawn.pid -- /usr/local/sbin/sse-fcgi -c /etc/sse-fcgi/sse-fcgi.conf

# With Redis, several processes on this host (same socket, same config):
# spawn-fcgi -s /run/sse-fcgi/sse-fcgi.sock -M 0660 -U www-data -G www-data -u www-data -g www-data -F 4 -P /run/sse-fcgi/spawn.pid -- /usr/local/sbin/sse-fcgi -c /etc/sse-fcgi/sse-fcgi.conf
