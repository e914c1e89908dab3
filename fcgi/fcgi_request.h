/*
 * fcgi_request — the one place libfcgi is used: it decodes a request whose bytes have
 * all arrived (see fcgi_head_scan) into plain strings. libfcgi's own reads and writes
 * block, so it never touches a live socket: the complete request is handed to it through
 * an in-memory file, where every read it makes returns at once. Stream output is written
 * by our own non-blocking writer (fcgi_record.h), never by libfcgi.
 */
#ifndef SSE_FCGI_REQUEST_H
#define SSE_FCGI_REQUEST_H

#include <stddef.h>
#include <stdint.h>

/* Everything the server needs from a request. Strings are owned by the struct,
 * NUL-terminated, never NULL (empty when the param was absent) except body. */
struct fcgi_request {
	uint16_t id;
	char *method;
	char *uri;            /* raw REQUEST_URI */
	char *authorization;  /* HTTP_AUTHORIZATION */
	char *accept;         /* HTTP_ACCEPT */
	char *cookie;         /* HTTP_COOKIE (carries the stream token, access.h) */
	char *last_event_id;  /* HTTP_LAST_EVENT_ID: what EventSource sends on reconnect */
	char *body;           /* STDIN, NULL when empty; body_len bytes (+ a NUL) */
	size_t body_len;
};

/* Once per process, after signals are blocked: libfcgi installs handlers in FCGX_Init. */
int fcgi_lib_init(void);

/*
 * Decodes raw[0 .. len), which fcgi_head_scan() said is one complete request, into req.
 * Returns 0, or -1 (errno set) when libfcgi refuses it or memory runs out; req is then
 * left empty. Release with fcgi_request_release().
 */
int fcgi_request_parse(struct fcgi_request *req, const uint8_t *raw, size_t len);
void fcgi_request_release(struct fcgi_request *req);

#endif
