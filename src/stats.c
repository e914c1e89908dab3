/* stats — see stats.h. */
#include "stats.h"

#include <stdio.h>
#include <string.h>

static size_t
result(int n)
{
	return n < 0 ? (size_t)-1 : (size_t)n;
}

size_t
stats_format_json(char *out, size_t cap, const struct stats_view *v)
{
	return result(snprintf(out, cap,
	    "{\"pid\":%ld,\"mode\":\"%s\",\"event_loop\":\"%s\",\"streams\":%zu,"
	    "\"resources\":%zu,\"stream_ceiling\":%zu,\"connections\":%zu,"
	    "\"messages_in\":%llu,\"messages_out\":%llu,\"dropped_slow\":%llu,"
	    "\"refused\":%llu,\"redis_reconnects\":%lu,\"fallbacks\":%lu,"
	    "\"probe_failures\":%lu,\"uptime\":%lld}",
	    v->pid, v->mode, v->loop, v->streams, v->resources, v->ceiling, v->connections,
	    v->in, v->out, v->dropped, v->refused, v->reconnects, v->fallbacks, v->probe_failures, v->uptime));
}

size_t
stats_format_prometheus(char *out, size_t cap, const struct stats_view *v)
{
	return result(snprintf(out, cap,
	    "# HELP sse_fcgi_info Process identity; value is always 1.\n"
	    "# TYPE sse_fcgi_info gauge\n"
	    "sse_fcgi_info{pid=\"%ld\",mode=\"%s\",event_loop=\"%s\"} 1\n"
	    "# HELP sse_fcgi_streams Event streams open.\n# TYPE sse_fcgi_streams gauge\n"
	    "sse_fcgi_streams{pid=\"%ld\"} %zu\n"
	    "# HELP sse_fcgi_resources Resources with at least one stream.\n"
	    "# TYPE sse_fcgi_resources gauge\nsse_fcgi_resources{pid=\"%ld\"} %zu\n"
	    "# HELP sse_fcgi_stream_ceiling Streams this process accepts.\n"
	    "# TYPE sse_fcgi_stream_ceiling gauge\nsse_fcgi_stream_ceiling{pid=\"%ld\"} %zu\n"
	    "# HELP sse_fcgi_redis_up 1 in multi-server mode, 0 in single-server mode.\n"
	    "# TYPE sse_fcgi_redis_up gauge\nsse_fcgi_redis_up{pid=\"%ld\"} %d\n"
	    "# HELP sse_fcgi_messages_in_total Publishes accepted.\n"
	    "# TYPE sse_fcgi_messages_in_total counter\nsse_fcgi_messages_in_total{pid=\"%ld\"} %llu\n"
	    "# HELP sse_fcgi_messages_out_total Events queued to streams.\n"
	    "# TYPE sse_fcgi_messages_out_total counter\nsse_fcgi_messages_out_total{pid=\"%ld\"} %llu\n"
	    "# HELP sse_fcgi_dropped_slow_total Streams closed because their client stalled.\n"
	    "# TYPE sse_fcgi_dropped_slow_total counter\nsse_fcgi_dropped_slow_total{pid=\"%ld\"} %llu\n"
	    "# HELP sse_fcgi_refused_total Requests answered with an error status.\n"
	    "# TYPE sse_fcgi_refused_total counter\nsse_fcgi_refused_total{pid=\"%ld\"} %llu\n"
	    "# HELP sse_fcgi_redis_reconnects_total Redis reconnections.\n"
	    "# TYPE sse_fcgi_redis_reconnects_total counter\nsse_fcgi_redis_reconnects_total{pid=\"%ld\"} %lu\n"
	    "# HELP sse_fcgi_fallbacks_total Publishes delivered locally although Redis is configured.\n"
	    "# TYPE sse_fcgi_fallbacks_total counter\nsse_fcgi_fallbacks_total{pid=\"%ld\"} %lu\n"
	    "# HELP sse_fcgi_probe_failures_total Redis subscriber probes that did not come back.\n"
	    "# TYPE sse_fcgi_probe_failures_total counter\nsse_fcgi_probe_failures_total{pid=\"%ld\"} %lu\n"
	    "# HELP sse_fcgi_uptime_seconds Seconds since start.\n"
	    "# TYPE sse_fcgi_uptime_seconds gauge\nsse_fcgi_uptime_seconds{pid=\"%ld\"} %lld\n",
	    v->pid, v->mode, v->loop, v->pid, v->streams, v->pid, v->resources, v->pid, v->ceiling,
	    v->pid, strcmp(v->mode, "redis") == 0, v->pid, v->in, v->pid, v->out, v->pid,
	    v->dropped, v->pid, v->refused, v->pid, v->reconnects, v->pid, v->fallbacks, v->pid,
	    v->probe_failures, v->pid, v->uptime));
}
