/*
 * fcgi_record — FastCGI record framing, pure (no I/O, no libfcgi).
 *
 * Two readers and one writer:
 *  - fcgi_head_scan() walks the raw bytes of a request as they arrive and says when the
 *    whole request (BEGIN_REQUEST, PARAMS to its empty record, STDIN to its empty record)
 *    is in the buffer, so the loop never hands libfcgi a request it would block on.
 *  - fcgi_tail_feed() watches a connection after its request was taken (a live stream):
 *    all it has to notice is FCGI_ABORT_REQUEST; everything else is skipped.
 *  - fcgi_header_encode() writes the 8-byte header our own non-blocking writer needs.
 *
 * Return codes follow picohttpparser: -1 protocol error, -2 need more bytes, >= 0 done.
 */
#ifndef SSE_FCGI_RECORD_H
#define SSE_FCGI_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define FCGI_REC_HEADER_LEN 8
#define FCGI_REC_MAX_CONTENT 65535u

enum fcgi_rec_type {
	FCGI_REC_BEGIN_REQUEST = 1,
	FCGI_REC_ABORT_REQUEST = 2,
	FCGI_REC_END_REQUEST = 3,
	FCGI_REC_PARAMS = 4,
	FCGI_REC_STDIN = 5,
	FCGI_REC_STDOUT = 6,
	FCGI_REC_STDERR = 7,
	FCGI_REC_GET_VALUES = 9,
};

/* The one FastCGI role sse-fcgi plays (the low byte of BEGIN_REQUEST's role). */
#define FCGI_REC_ROLE_RESPONDER 1

/* State of one request head being received; zero it (fcgi_head_scan_init) per connection. */
struct fcgi_head_scan {
	size_t off;          /* bytes of buf already walked */
	size_t stdin_bytes;  /* STDIN content seen, dropped or not */
	size_t skipped;      /* bytes of records cut out that are not the request's */
	uint16_t id;         /* request id from BEGIN_REQUEST */
	uint8_t have_begin;
	uint8_t params_done;
	uint8_t stdin_done;
	uint8_t stdin_dropped; /* more than max_stdin arrived: contents were cut out */
	uint8_t aborted;       /* ABORT_REQUEST seen before the request was complete */
};

void fcgi_head_scan_init(struct fcgi_head_scan *s);

/*
 * Walks buf[s->off .. *len). Management records (request id 0), records for other
 * request ids and of types no responder reads are cut out of buf, in one pass per call
 * (time linear in the bytes walked), and counted in s->skipped: they are bytes the peer
 * sent, so the caller counts them toward its request size limit. Once STDIN content passes max_stdin, the contents of
 * later STDIN records are cut out too (their headers stay, with length 0, so the request
 * stays well formed for libfcgi) and stdin_dropped is set: the caller answers 413 after
 * the body has been drained, never buffering more than max_stdin of it.
 * Returns 0 once the whole request is in buf (buf[0 .. *len) is then exactly what libfcgi
 * must parse), -2 to wait for more bytes, -1 on a protocol error or an abort.
 *
 * Everything libfcgi will read is checked first, so that a request passed here is one
 * libfcgi accepts and reads as we do: BEGIN_REQUEST with an 8-byte body, no padding
 * and the RESPONDER role, PARAMS holding whole name-value pairs (each length within the
 * bytes present; names without '=' or NUL) ended by an empty record without padding,
 * then STDIN. Anything else is -1.
 */
int fcgi_head_scan(struct fcgi_head_scan *s, uint8_t *buf, size_t *len, size_t max_stdin);

/* Watches a connection after its request head: 16 bytes of state per stream. */
struct fcgi_tail {
	uint32_t skip;       /* content + padding bytes of the current record still to skip */
	uint8_t hdr_len;
	uint8_t hdr[FCGI_REC_HEADER_LEN];
};

/* Returns 1 when an ABORT_REQUEST (or a BEGIN_REQUEST: we never multiplex) was seen,
 * -1 on a malformed header, 0 otherwise (all bytes consumed). */
int fcgi_tail_feed(struct fcgi_tail *t, const uint8_t *p, size_t n);

/* Writes a record header for content_len (<= 65535) bytes and padding_len bytes. */
void fcgi_header_encode(uint8_t out[FCGI_REC_HEADER_LEN], enum fcgi_rec_type type,
    uint16_t id, uint16_t content_len, uint8_t padding_len);

/* Empty STDOUT + END_REQUEST(app_status, REQUEST_COMPLETE): 24 bytes written to out. */
#define FCGI_END_LEN 24
void fcgi_end_encode(uint8_t out[FCGI_END_LEN], uint16_t id, uint32_t app_status);

/*
 * Frames len bytes of data as STDOUT records (each <= 65535 bytes of content) into out,
 * which must hold fcgi_stdout_size(len) bytes. Returns bytes written.
 */
size_t fcgi_stdout_size(size_t len);
size_t fcgi_stdout_encode(uint8_t *out, uint16_t id, const void *data, size_t len);

#endif
