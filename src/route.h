/*
 * route — maps REQUEST_METHOD + raw REQUEST_URI to what the request asks for,
 * and checks the publish token. Pure: no I/O, no allocation, no logging; the
 * caller turns a returned status into a reply.
 *
 * Nothing is ever percent-decoded: the path is the raw REQUEST_URI up to the
 * first '?', compared byte for byte (case-sensitive) with the prefixes, so a
 * '%' in a resource is simply an invalid name. Methods are compared exactly
 * ("get" is not GET).
 *
 *   stats path, exact          GET -> ROUTE_STATS          else 405, Allow "GET"
 *   subscribe prefix + NAME    GET -> ROUTE_SUBSCRIBE      else 405, Allow "GET"
 *   publish prefix + NAME      POST -> ROUTE_PUBLISH,
 *                              GET -> ROUTE_PUBLISH_COUNT  else 405, Allow "GET, POST"
 *   anything else              404
 *
 * Order of checks: unknown path 404, then wrong method 405, then a bad resource
 * 400, then (publish only) a bad event 400. So "DELETE /sse/a%20b" is 405 and
 * "GET /ssex/a" is 404. The stats path matches exactly; its query is ignored.
 * When both prefixes match (one is a prefix of the other) the longer one wins.
 * Prefixes normally end in '/'; a NULL or empty prefix disables that route.
 *
 * Query (after the first '?'), split on '&'. ROUTE_SUBSCRIBE takes the first
 * non-empty "last_event_id=VALUE", raw (ids never need escaping; anything else is
 * the caller's "malformed"). ROUTE_PUBLISH reads:
 * "event=NAME" sets the event name, which must be a valid name (an empty value
 * or a bare "event" is 400), and a second event parameter is 400 rather than
 * guessing which one the publisher meant. Every other parameter is ignored,
 * and on the other routes the whole query is ignored (event is left NULL).
 */
#ifndef SSE_ROUTE_H
#define SSE_ROUTE_H

#include <stddef.h>

enum route_kind {
	ROUTE_NONE,
	ROUTE_SUBSCRIBE,        /* GET  <subscribe><resource> */
	ROUTE_PUBLISH,          /* POST <publish><resource>[?event=NAME] */
	ROUTE_PUBLISH_COUNT,    /* GET  <publish><resource>: this process's stream count */
	ROUTE_STATS             /* GET  <stats> */
};

/* Borrowed strings, normally "/sse/", "/publish/", "/stats" from the config. */
struct route_prefixes {
	const char *subscribe;
	const char *publish;
	const char *stats;
};

/* Every pointer borrows from the uri given to route_parse(), except allow,
 * which is a static string; valid as long as that uri is. */
struct route {
	enum route_kind kind;
	const char *resource;   /* not NUL-terminated; NULL for ROUTE_STATS */
	size_t resource_len;
	const char *event;      /* from ?event=NAME on ROUTE_PUBLISH; NULL if absent */
	size_t event_len;
	const char *allow;      /* set on 405 only: the Allow header value */
	const char *last_event_id;   /* ?last_event_id= on ROUTE_SUBSCRIBE; NULL if absent */
	size_t last_event_id_len;
};

/*
 * Returns 0 and fills r when the request is routable, else the HTTP status to
 * answer: 404 unknown path, 405 wrong method (r->allow set), 400 bad resource
 * or bad event name. r is always reset first (kind ROUTE_NONE on failure).
 * method may be NULL (treated as no method: 405 on a known path); uri is the
 * raw REQUEST_URI, uri_len bytes, not necessarily NUL-terminated; p must not
 * be NULL. Keeps no pointer beyond what it stores into r.
 */
int route_parse(struct route *r, const struct route_prefixes *p, const char *method,
    const char *uri, size_t uri_len);

/* 1 when s is 1..128 bytes of A-Z a-z 0-9 - _ . : (resources and event names;
 * safe in a Redis channel name and PSUBSCRIBE pattern), else 0. */
int route_name_is_valid(const char *s, size_t len);

/* Longest valid name. */
#define ROUTE_NAME_MAX 128

/*
 * Checks an Authorization header value (the HTTP_AUTHORIZATION param; may be
 * NULL when absent) against token, a NUL-terminated non-empty secret. The value
 * must be "Bearer" (any case), one or more spaces, then the token; trailing
 * spaces and tabs are ignored. Returns 1 on a match, else 0 (also for a NULL
 * or empty token). The comparison's time depends only on the length of what
 * the client sent and on the token's length, never on where the two differ.
 */
int route_token_check(const char *authorization, const char *token);

#endif
