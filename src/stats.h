/*
 * stats — what /stats says about one process, as JSON or as Prometheus text (format
 * 0.0.4). Pure: the server fills a struct stats_view, these format it.
 */
#ifndef SSE_STATS_H
#define SSE_STATS_H

#include <stddef.h>

struct stats_view {
	long pid;
	const char *mode;          /* "redis" or "local" */
	const char *loop;          /* event loop backend */
	size_t streams, resources, ceiling, connections;
	unsigned long long in, out, dropped, refused;
	unsigned long reconnects, fallbacks, probe_failures;
	long long uptime;          /* seconds */
};

/*
 * Both write at most cap bytes (NUL included) and return the length the whole text
 * needs, as snprintf does: a return >= cap means out was too small.
 * Every Prometheus series carries pid="N": each process behind one socket answers
 * for itself.
 */
size_t stats_format_json(char *out, size_t cap, const struct stats_view *v);
size_t stats_format_prometheus(char *out, size_t cap, const struct stats_view *v);

#endif
