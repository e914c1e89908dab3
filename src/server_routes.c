/*
 * server_routes — see server_routes.h. Replies are complete FastCGI requests queued like
 * any event (out_stream_reply).
 */
#include "server_routes.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "conf.h"
#include "conn.h"
#include "ev.h"
#include "fcgi_request.h"
#include "hub.h"
#include "log.h"
#include "out.h"
#include "registry.h"
#include "resume.h"
#include "sse.h"
#include "stats.h"
#include "stream.h"
#include "utf8.h"

int
server_routes_init(struct server_routes *rt, const struct conf *conf)
{
	char open_text[1024], retry[SSE_RETRY_MAX + 1];
	int n;

	memset(rt, 0, sizeof(*rt));
	rt->conf = conf;
	rt->prefixes.subscribe = conf->subscribe_prefix;
	rt->prefixes.publish = conf->publish_prefix;
	rt->prefixes.stats = conf->stats_path;
	retry[sse_retry_encode(retry, (unsigned)conf->retry)] = '\0';
	n = snprintf(open_text, sizeof(open_text),
	    "Status: 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
	    "X-Accel-Buffering: no\r\n%s%s%s\r\n%s",
	    conf->cors_origin ? "Access-Control-Allow-Origin: " : "",
	    conf->cors_origin ? conf->cors_origin : "", conf->cors_origin ? "\r\n" : "", retry);
	if (n < 0 || (size_t)n >= sizeof(open_text)) {
		log_error("cors_origin is too long");
		return -1;
	}
	rt->open_msg = msg_new((size_t)n, 0);
	if (rt->open_msg == NULL)
		return -1;
	memcpy(rt->open_msg->data, open_text, (size_t)n);
	rt->open_msg->refs = MSG_STATIC;
	return 0;
}

void
server_routes_release(struct server_routes *rt)
{
	free(rt->open_msg);
	rt->open_msg = NULL;
}

/* ---- replies ---- */

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/*
 * Queues a complete reply and the end of the request; the stream closes once it is out.
 * extra is zero or more full header lines ("Name: value\r\n"). Needs only the stream,
 * so that a publish can be answered from the hub's callback.
 */
static void __attribute__((format(printf, 4, 5)))
reply(struct stream *s, int status, const char *extra, const char *fmt, ...)
{
	char body[1024], text[2048];
	va_list ap;
	int blen, tlen;

	va_start(ap, fmt);
	blen = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (blen < 0 || (size_t)blen >= sizeof(body))
		blen = snprintf(body, sizeof(body), "{\"error\":\"reply too long\"}");
	tlen = snprintf(text, sizeof(text),
	    "Status: %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
	    "Content-Length: %d\r\n%s\r\n%s\n",
	    status, status_text(status), blen + 1, extra != NULL ? extra : "", body);
	if (tlen < 0 || (size_t)tlen >= sizeof(text))
		tlen = (int)strlen(text);
	out_stream_reply(out_of(s), s, text, (size_t)tlen);
}

void
server_reply_error(struct server_routes *rt, struct stream *s, int status, const char *extra,
    const char *why)
{
	rt->refused++;
	reply(s, status, extra, "{\"error\":\"%s\"}", why);
}

/* ---- routes ---- */

/* ---- what resume.c asks of the server ---- */

#define RESUME_RETRY_MS 100   /* a replay cut at the queue bound: come back at once */

/* Replayed events obey the stream's queue bound, except that the first always goes (as
 * an empty queue always takes one event), so every resume progresses. */
static int
resume_push(void *arg, void *stream, struct msg *m, int first)
{
	struct server_routes *rt = arg;
	struct stream *s = stream;

	if (s->flags & (STREAM_DEAD | STREAM_CLOSING))
		return -2;
	if (!first && (size_t)s->queued + m->len > (size_t)rt->conf->stream_queue_bytes)
		return -1;
	return out_stream_push(rt->out, s, m) == 0 ? 0 : -2;
}

static void
resume_hold(void *arg, void *stream, int on)
{
	struct stream *s = stream;

	(void)arg;
	if (on)
		s->flags |= STREAM_HOLD;
	else
		s->flags &= (uint8_t)~STREAM_HOLD;
}

static void
resume_finish(void *arg, void *stream, int how)
{
	struct server_routes *rt = arg;
	struct stream *s = stream;

	if (s->flags & (STREAM_DEAD | STREAM_CLOSING))
		return;
	if (how == RESUME_CUT)
		out_stream_end(rt->out, s, RESUME_RETRY_MS);
	else if (how == RESUME_FAILED)
		out_stream_kill(rt->out, s);
}

static void *
resume_node_stream(struct registry_node *n)
{
	return (char *)n - offsetof(struct stream, node);
}

const struct resume_ops server_resume_ops = {
	resume_push, resume_hold, resume_finish, resume_node_stream
};

/* The stream is open: start it at the client's last id, if it gave one. The header (what
 * EventSource sends on its own reconnects) wins over the query (a page's stored id). */
static void
resume_start(struct server_routes *rt, struct stream *s, const struct route *r,
    const struct fcgi_request *req)
{
	const char *id = r->last_event_id;
	size_t id_len = r->last_event_id_len;
	int how;

	if (req->last_event_id[0] != '\0') {
		id = req->last_event_id;
		id_len = strlen(id);
	}
	how = resume_stream_start(rt->resume, s, r->resource, r->resource_len, id, id_len);
	if (how == RESUME_CUT || how == RESUME_FAILED)
		resume_finish(rt, s, how);
}

/*
 * GET <subscribe_prefix><resource>: the checks a stream open goes through (access checks
 * belong before the limits, so that a refused request counts against nothing), then the
 * stream is registered and gets its head; whatever must reach it before live events (a
 * replay from history) is queued right after the head, with out_stream_push.
 */
static void
subscribe(struct server_routes *rt, struct stream *s, const struct route *r,
    const struct fcgi_request *req)
{
	const struct conf *c = rt->conf;
	struct resource *res;
	const char *why;
	int st;

	st = access_subscribe(c->access, req->cookie, req->uri, r->resource, r->resource_len,
	    time(NULL), &why);
	if (st != 0) {
		server_reply_error(rt, s, st, st == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL, why);
		return;
	}
	if (rt->shutting_down) {
		server_reply_error(rt, s, 503, "Retry-After: " RETRY_AFTER "\r\n", "shutting down");
		return;
	}
	if (registry_streams(rt->reg) >= rt->ceiling) {
		log_info("stream limit reached (%zu), refusing %.*s", rt->ceiling,
		    (int)r->resource_len, r->resource);
		rt->on_full(rt->arg);
		server_reply_error(rt, s, 503, "Retry-After: " RETRY_AFTER "\r\n",
		    "too many streams on this process");
		return;
	}
	res = registry_find(rt->reg, r->resource, r->resource_len);
	if (registry_resource_streams(res) >= (size_t)c->max_streams_per_resource) {
		server_reply_error(rt, s, 429, "Retry-After: " RETRY_AFTER "\r\n",
		    "too many streams on this resource");
		return;
	}
	if (out_stream_listen(rt->out, s, r->resource, r->resource_len) == -1) {
		server_reply_error(rt, s, 503, "Retry-After: " RETRY_AFTER "\r\n", "out of memory");
		return;
	}
	/* This stream fills the process: leave the accept race now, before a connection
	 * that a sibling with room could take is accepted here only to be refused. */
	if (registry_streams(rt->reg) >= rt->ceiling)
		rt->on_full(rt->arg);
	if (out_stream_push(rt->out, s, rt->open_msg) == 0)
		resume_start(rt, s, r, req);
}

static void
on_published(void *arg, const struct hub_result *res)
{
	struct stream *s = arg;

	s->flags &= (uint8_t)~STREAM_PENDING;
	if (res->fallback)
		reply(s, 200, NULL,
		    "{\"mode\":\"%s\",\"delivered\":%zu,\"fallback\":true,\"reason\":\"%s\"}",
		    res->mode, res->delivered, res->reason);
	else
		reply(s, 200, NULL, "{\"mode\":\"%s\",\"delivered\":%zu,\"fallback\":false}",
		    res->mode, res->delivered);
}

static int
authorized(struct server_routes *rt, struct stream *s, const struct route *r,
    const struct fcgi_request *req)
{
	const char *why;
	int st = access_publish(rt->conf->access, rt->conf->publish_token, req->authorization,
	    r->resource, r->resource_len, time(NULL), &why);

	if (st == 0)
		return 1;
	server_reply_error(rt, s, st, st == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL, why);
	return 0;
}

/* POST <publish_prefix><resource>: auth, size, body checks, then the hub; the reply is
 * sent by on_published once the hub has answered. */
static void
publish(struct server_routes *rt, struct stream *s, const struct route *r,
    const struct fcgi_request *req, int too_large)
{
	if (!authorized(rt, s, r, req))
		return;
	if (too_large) {
		rt->refused++;
		reply(s, 413, NULL, "{\"error\":\"message over %d bytes\"}",
		    rt->conf->max_message_bytes);
		return;
	}
	if (r->event_len == 5 && memcmp(r->event, "reset", 5) == 0) {
		server_reply_error(rt, s, 400, NULL, "the event name reset is reserved");
		return;
	}
	if (req->body_len == 0) {
		server_reply_error(rt, s, 400, NULL, "empty message");
		return;
	}
	if (!utf8_is_valid(req->body, req->body_len)) {
		server_reply_error(rt, s, 400, NULL, "message is not valid UTF-8");
		return;
	}
	rt->messages_in++;
	s->flags |= STREAM_PENDING;
	if (hub_publish(rt->hub, r->resource, r->resource_len, r->event, r->event_len,
	    req->body, req->body_len, on_published, s) == -1) {
		s->flags &= (uint8_t)~STREAM_PENDING;
		server_reply_error(rt, s, 503, "Retry-After: " RETRY_AFTER "\r\n", "out of memory");
	}
}

static void
stats_read(struct server_routes *rt, struct stats_view *v)
{
	v->pid = (long)getpid();
	v->mode = hub_mode(rt->hub);
	v->loop = ev_loop_backend(rt->loop);
	v->streams = registry_streams(rt->reg);
	v->resources = registry_resources(rt->reg);
	v->ceiling = rt->ceiling;
	v->connections = conn_pool_count(rt->conns) + out_streams(rt->out);
	v->in = rt->messages_in;
	v->out = rt->messages_out;
	v->dropped = out_dropped(rt->out);
	v->refused = rt->refused;
	v->reconnects = hub_reconnects(rt->hub);
	v->fallbacks = hub_fallbacks(rt->hub);
	v->probe_failures = hub_probe_failures(rt->hub);
	v->uptime = (long long)(time(NULL) - rt->started);
}

/* JSON by default; Prometheus text when the scraper asks for text/plain or OpenMetrics. */
static void
stats(struct server_routes *rt, struct stream *s, const struct fcgi_request *req)
{
	static const char json_head[] = "Status: 200 OK\r\nContent-Type: application/json\r\n"
	    "Cache-Control: no-store\r\n\r\n";
	static const char prom_head[] = "Status: 200 OK\r\n"
	    "Content-Type: text/plain; version=0.0.4\r\nCache-Control: no-store\r\n\r\n";
	int prom = strstr(req->accept, "text/plain") != NULL ||
	    strstr(req->accept, "application/openmetrics-text") != NULL;
	const char *head = prom ? prom_head : json_head;
	size_t hlen = strlen(head), n;
	struct stats_view v;
	char text[4096];

	stats_read(rt, &v);
	memcpy(text, head, hlen);
	n = prom ? stats_format_prometheus(text + hlen, sizeof(text) - hlen, &v) :
	    stats_format_json(text + hlen, sizeof(text) - hlen, &v);
	if (n >= sizeof(text) - hlen) {
		server_reply_error(rt, s, 500, NULL, "stats too long");
		return;
	}
	out_stream_reply(rt->out, s, text, hlen + n);
}

void
server_route(struct server_routes *rt, struct stream *s, const struct fcgi_request *req, int too_large)
{
	struct route r;
	int status = route_parse(&r, &rt->prefixes, req->method, req->uri, strlen(req->uri));
	char allow[64];

	switch (status) {
	case 0:
		break;
	case 405:
		snprintf(allow, sizeof(allow), "Allow: %s\r\n", r.allow);
		server_reply_error(rt, s, 405, allow, "method not allowed");
		return;
	case 404:
		server_reply_error(rt, s, 404, NULL, "not found");
		return;
	default:
		server_reply_error(rt, s, status, NULL,
		    "resource and event names are 1-128 bytes of A-Z a-z 0-9 - _ . :");
		return;
	}
	switch (r.kind) {
	case ROUTE_SUBSCRIBE:
		subscribe(rt, s, &r, req);
		break;
	case ROUTE_PUBLISH:
		publish(rt, s, &r, req, too_large);
		break;
	case ROUTE_PUBLISH_COUNT:
		if (authorized(rt, s, &r, req))
			reply(s, 200, NULL, "{\"resource\":\"%.*s\",\"streams\":%zu}",
			    (int)r.resource_len, r.resource, registry_resource_streams(
			    registry_find(rt->reg, r.resource, r.resource_len)));
		break;
	case ROUTE_STATS:
		stats(rt, s, req);
		break;
	default:
		server_reply_error(rt, s, 404, NULL, "not found");
		break;
	}
}

