#!/bin/sh
# Start sse-fcgi on one app host of the multi-server example (run as root;
# identical on every app host).
#
# -F 2: two processes sharing the socket, both subscribed to Redis (set in
# sse-fcgi.conf), so a publish accepted by either reaches the streams of
# both -- and of every process on the other hosts.  One per core is a good
# number.  WITHOUT Redis this would lose messages: use -F 1 then.
#
# spawn-fcgi does not restart a process that dies; the systemd units
# (sse-fcgi.socket + sse-fcgi@1.service + sse-fcgi@2.service) do, with the
# same socket path.  Socket, users and mode as in examples/nginx/spawn-fcgi.sh.
set -e

install -d -o www-data -g www-data -m 0750 /run/sse-fcgi /var/log/sse-fcgi
/usr/local/sbin/sse-fcgi -t -c /etc/sse-fcgi/sse-fcgi.conf

spawn-fcgi -s /run/sse-fcgi/sse-fcgi.sock -M 0660 -U www-data -G www-data -u www-data -g www-data -F 2 -P /run/sse-fcgi/spawn.pid -- /usr/local/sbin/sse-fcgi -c /etc/sse-fcgi/sse-fcgi.conf
