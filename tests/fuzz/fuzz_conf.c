/*
 * conf_load on any file text (written to an in-memory file, read back through its
 * /proc/self/fd path). Properties: a refused file gives ONE line that starts with the
 * path and leaves the conf exactly as it was; an accepted one holds only values the
 * header promises (ranges, prefixes, the cross-checks, no channel_prefix inside
 * sse-fcgi's own channel namespace); nothing leaks either way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
check_valid(const struct conf *c)
{
	size_t n;

	if (c->heartbeat < 1 || c->heartbeat > 3600 || c->max_streams < 1 ||
	    c->max_message_bytes < 1 || c->stream_queue_bytes < c->max_message_bytes ||
	    c->redis.port < 1 || c->redis.port > 65535 ||
	    c->redis.reconnect_min_ms > c->redis.reconnect_max_ms)
		abort();
	n = strlen(c->subscribe_prefix);
	if (n < 1 || c->subscribe_prefix[0] != '/' || c->subscribe_prefix[n - 1] != '/')
		abort();
	n = strlen(c->publish_prefix);
	if (n < 1 || c->publish_prefix[0] != '/' || c->publish_prefix[n - 1] != '/')
		abort();
	if (strcmp(c->subscribe_prefix, c->publish_prefix) == 0 || c->stats_path[0] != '/')
		abort();
	if (c->redis.host != NULL && c->redis.socket != NULL)
		abort();
	if (c->publish_token != NULL && strlen(c->publish_token) < 16)
		abort();
	if (c->redis.channel_prefix == NULL || c->redis.channel_prefix[0] == '\0' ||
	    strncmp(c->redis.channel_prefix, "__sse-fcgi__:", 13) == 0 ||
	    strpbrk(c->redis.channel_prefix, "*?[]\\ ") != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c, before;
	char path[64], err[CONF_ERR_MAX];
	int fd = memfd_create("fuzz-conf", MFD_CLOEXEC);

	if (fd == -1)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	conf_init(&c);
	conf_init(&before);
	if (conf_load(&c, path, err, sizeof(err)) == 0) {
		check_valid(&c);
		if (c.file == NULL || strcmp(c.file, path) != 0)
			abort();
	} else {
		if (err[0] == '\0' || strchr(err, '\n') != NULL ||
		    strncmp(err, path, strlen(path)) != 0)
			abort();
		if (c.file != NULL || c.heartbeat != before.heartbeat ||
		    c.max_message_bytes != before.max_message_bytes ||
		    !same_str(c.subscribe_prefix, before.subscribe_prefix) ||
		    !same_str(c.redis.channel_prefix, before.redis.channel_prefix) ||
		    !same_str(c.redis.host, before.redis.host))
			abort();
	}
	conf_release(&c);
	conf_release(&before);
	close(fd);
	return 0;
}
