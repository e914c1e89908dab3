/*
 * server_routes — what each route answers: the event stream's checks and limits, the
 * publish (auth, size, UTF-8, then the hub), the count, /stats, and every error reply.
 * Replies are complete FastCGI requests built here and queued like any event.
 */
#include "server.h"
#include "server_impl.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "fcgi_record.h"
#include "fcgi_request.h"
#include "hub.h"
#include "log.h"
#include "registry.h"
#include "resume.h"
#include "stats.h"
#include "utf8.h"

/* A whole reply as ready-made records: STDOUT with text, then the end of the request. */
static struct msg *
msg_reply(uint16_t id, const char *text, size_t len)
{
	struct msg *m = msg_new(fcgi_stdout_size(len) + FCGI_END_LEN, 1);
	size_t off;

	if (m == NULL)
		return NULL;
	off = fcgi_stdout_encode((uint8_t *)m->data, id, text, len);
	fcgi_end_encode((uint8_t *)m->data + off, id, 0);
	return m;
}

/* ---- replies ---- */

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/* Queues text (CGI headers and body, or a last retry:) and the end of the request; the
 * stream closes once it is out. */
void
server_reply_text(struct server *srv, struct stream *s, const char *text, size_t len)
{
	struct msg *m = msg_reply(s->id, text, len);

	if (s->flags & STREAM_HOLD) {   /* its last words: no replay may follow them */
		resume_stream_gone(srv->resume, s);
		s->flags &= (uint8_t)~STREAM_HOLD;
	}
	if (m == NULL) {
		server_stream_kill(srv, s);
		return;
	}
	s->flags |= STREAM_CLOSING;
	server_stream_push(srv, s, m, SIZE_MAX);
	msg_unref(m);
}

/*
 * Queues a complete reply and the end of the request; the stream closes once it is out.
 * extra is zero or more full header lines ("Name: value\r\n").
 */
static void
reply(struct server *srv, struct stream *s, int status, const char *extra,
    const char *fmt, ...)
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
	if (status != 200)
		srv->refused++;
	server_reply_text(srv, s, text, (size_t)tlen);
}

void
server_reply_error(struct server *srv, struct stream *s, int status, const char *extra,
    const char *why)
{
	reply(srv, s, status, extra, "{\"error\":\"%s\"}", why);
}

/* ---- routes ---- */

#define RESUME_RETRY_MS 100   /* a replay cut at the queue bound: come back at once */

/* ---- what resume.c asks of the server ---- */

/* Replayed events obey the stream's queue bound like live ones, except that the first
 * always goes (as an empty queue always takes one event), so every resume progresses. */
static int
resume_push(void *arg, void *stream, struct msg *m, int first)
{
	struct server *srv = arg;
	struct stream *s = stream;
	size_t limit = (size_t)srv->conf->stream_queue_bytes;

	if (s->flags & STREAM_DEAD)
		return -2;
	if (!first && (size_t)s->queued + m->len > limit)
		return -1;
	return server_stream_push(srv, s, m, SIZE_MAX) == 0 ? 0 : -2;
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
	struct server *srv = arg;
	struct stream *s = stream;

	if (s->flags & STREAM_DEAD)
		return;
	if (how == RESUME_CUT && (s->flags & STREAM_SSE))
		server_stream_end(srv, s, RESUME_RETRY_MS);
	else if (how == RESUME_FAILED)
		server_stream_kill(srv, s);
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
resume_start(struct server *srv, struct stream *s, const struct route *r,
    const struct fcgi_request *req)
{
	const char *id = r->last_event_id;
	size_t id_len = r->last_event_id_len;
	int how;

	if (req->last_event_id[0] != '\0') {
		id = req->last_event_id;
		id_len = strlen(id);
	}
	how = resume_stream_start(srv->resume, s, r->resource, r->resource_len, id, id_len);
	if (how == RESUME_CUT || how == RESUME_FAILED)
		resume_finish(srv, s, how);
}

static void
subscribe(struct server *srv, struct stream *s, const struct route *r,
    const struct fcgi_request *req)
{
	const struct conf *c = srv->conf;
	struct resource *res;

	if (srv->shutting_down) {
		server_reply_error(srv, s, 503, "Retry-After: " RETRY_AFTER "\r\n", "shutting down");
		return;
	}
	if (registry_streams(srv->reg) >= srv->ceiling) {
		log_info("stream limit reached (%zu), refusing %.*s", srv->ceiling,
		    (int)r->resource_len, r->resource);
		server_listen_step_back(srv);
		server_reply_error(srv, s, 503, "Retry-After: " RETRY_AFTER "\r\n",
		    "too many streams on this process");
		return;
	}
	res = registry_find(srv->reg, r->resource, r->resource_len);
	if (registry_resource_streams(res) >= (size_t)c->max_streams_per_resource) {
		server_reply_error(srv, s, 429, "Retry-After: " RETRY_AFTER "\r\n",
		    "too many streams on this resource");
		return;
	}
	if (server_stream_listen(srv, s, r->resource, r->resource_len) == -1) {
		server_reply_error(srv, s, 503, "Retry-After: " RETRY_AFTER "\r\n", "out of memory");
		return;
	}
	resume_start(srv, s, r, req);
}

static void
on_published(void *arg, const struct hub_result *res)
{
	struct stream *s = arg;
	struct server *srv = s->owner;

	s->flags &= (uint8_t)~STREAM_PENDING;
	if (res->fallback)
		reply(srv, s, 200, NULL,
		    "{\"mode\":\"%s\",\"delivered\":%zu,\"fallback\":true,\"reason\":\"%s\"}",
		    res->mode, res->delivered, res->reason);
	else
		reply(srv, s, 200, NULL, "{\"mode\":\"%s\",\"delivered\":%zu,\"fallback\":false}",
		    res->mode, res->delivered);
}

static int
authorized(struct server *srv, struct stream *s, const struct fcgi_request *req)
{
	const char *token = srv->conf->publish_token;

	if (token == NULL || route_token_check(req->authorization, token))
		return 1;
	server_reply_error(srv, s, 401, "WWW-Authenticate: Bearer\r\n", "missing or wrong bearer token");
	return 0;
}

static void
publish(struct server *srv, struct stream *s, const struct route *r,
    const struct fcgi_request *req, int too_large)
{
	if (!authorized(srv, s, req))
		return;
	if (too_large) {
		reply(srv, s, 413, NULL, "{\"error\":\"message over %d bytes\"}",
		    srv->conf->max_message_bytes);
		return;
	}
	if (r->event_len == 5 && memcmp(r->event, "reset", 5) == 0) {
		server_reply_error(srv, s, 400, NULL, "the event name reset is reserved");
		return;
	}
	if (req->body_len == 0) {
		server_reply_error(srv, s, 400, NULL, "empty message");
		return;
	}
	if (!utf8_is_valid(req->body, req->body_len)) {
		server_reply_error(srv, s, 400, NULL, "message is not valid UTF-8");
		return;
	}
	srv->messages_in++;
	s->flags |= STREAM_PENDING;
	if (hub_publish(srv->hub, r->resource, r->resource_len, r->event, r->event_len,
	    req->body, req->body_len, on_published, s) == -1) {
		s->flags &= (uint8_t)~STREAM_PENDING;
		server_reply_error(srv, s, 503, "Retry-After: " RETRY_AFTER "\r\n", "out of memory");
	}
}

static void
stats_read(struct server *srv, struct stats_view *v)
{
	v->pid = (long)getpid();
	v->mode = hub_mode(srv->hub);
	v->loop = ev_loop_backend(srv->loop);
	v->streams = registry_streams(srv->reg);
	v->resources = registry_resources(srv->reg);
	v->ceiling = srv->ceiling;
	v->connections = srv->nconns + srv->nstreams;
	v->in = srv->messages_in;
	v->out = srv->messages_out;
	v->dropped = srv->dropped_slow;
	v->refused = srv->refused;
	v->reconnects = hub_reconnects(srv->hub);
	v->fallbacks = hub_fallbacks(srv->hub);
	v->probe_failures = hub_probe_failures(srv->hub);
	v->uptime = (long long)(time(NULL) - srv->started);
}

/* JSON by default; Prometheus text when the scraper asks for text/plain or OpenMetrics. */
static void
stats(struct server *srv, struct stream *s, const struct fcgi_request *req)
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

	stats_read(srv, &v);
	memcpy(text, head, hlen);
	n = prom ? stats_format_prometheus(text + hlen, sizeof(text) - hlen, &v) :
	    stats_format_json(text + hlen, sizeof(text) - hlen, &v);
	if (n >= sizeof(text) - hlen) {
		server_reply_error(srv, s, 500, NULL, "stats too long");
		return;
	}
	server_reply_text(srv, s, text, hlen + n);
}

void
server_route(struct server *srv, struct stream *s, const struct fcgi_request *req, int too_large)
{
	struct route r;
	int status = route_parse(&r, &srv->prefixes, req->method, req->uri, strlen(req->uri));
	char allow[64];

	switch (status) {
	case 0:
		break;
	case 405:
		snprintf(allow, sizeof(allow), "Allow: %s\r\n", r.allow);
		server_reply_error(srv, s, 405, allow, "method not allowed");
		return;
	case 404:
		server_reply_error(srv, s, 404, NULL, "not found");
		return;
	default:
		server_reply_error(srv, s, status, NULL,
		    "resource and event names are 1-128 bytes of A-Z a-z 0-9 - _ . :");
		return;
	}
	switch (r.kind) {
	case ROUTE_SUBSCRIBE:
		subscribe(srv, s, &r, req);
		break;
	case ROUTE_PUBLISH:
		publish(srv, s, &r, req, too_large);
		break;
	case ROUTE_PUBLISH_COUNT:
		if (authorized(srv, s, req))
			reply(srv, s, 200, NULL, "{\"resource\":\"%.*s\",\"streams\":%zu}",
			    (int)r.resource_len, r.resource, registry_resource_streams(
			    registry_find(srv->reg, r.resource, r.resource_len)));
		break;
	case ROUTE_STATS:
		stats(srv, s, req);
		break;
	default:
		server_reply_error(srv, s, 404, NULL, "not found");
		break;
	}
}

