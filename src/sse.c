/* sse — Server-Sent Events wire framing; see sse.h for the format. */
#include "sse.h"

#include <string.h>

#define EVENT_PREFIX     "event: "
#define EVENT_PREFIX_LEN (sizeof EVENT_PREFIX - 1)
#define ID_PREFIX        "id: "
#define ID_PREFIX_LEN    (sizeof ID_PREFIX - 1)
#define DATA_PREFIX      "data: "
#define DATA_PREFIX_LEN  (sizeof DATA_PREFIX - 1)
#define DATA_EMPTY       "data:\n"
#define DATA_EMPTY_LEN   (sizeof DATA_EMPTY - 1)

const char sse_heartbeat[] = ": hb\n\n";
const size_t sse_heartbeat_len = sizeof sse_heartbeat - 1;

/*
 * Finds line breaks with two cached memchr() positions instead of a byte loop:
 * glibc's memchr is vectorised, and each byte class is scanned once over the
 * whole payload, so a JSON payload without breaks costs two fast scans.
 */
struct scan {
	const char *end;
	const char *cr;   /* next '\r' at or after the last query, or end */
	const char *lf;   /* next '\n' likewise */
};

static const char *
find(const char *p, const char *end, int c)
{
	const char *q = p < end ? memchr(p, c, (size_t)(end - p)) : NULL;
	return q ? q : end;
}

static void
scan_init(struct scan *s, const char *data, size_t len)
{
	s->end = data + len;
	s->cr = find(data, s->end, '\r');
	s->lf = find(data, s->end, '\n');
}

/* First CR or LF at or after p, or end. */
static const char *
scan_next(struct scan *s, const char *p)
{
	if (s->cr < p)
		s->cr = find(p, s->end, '\r');
	if (s->lf < p)
		s->lf = find(p, s->end, '\n');
	return s->cr < s->lf ? s->cr : s->lf;
}

/* Past the break at b: CRLF is one break of two bytes. */
static const char *
skip_break(const char *b, const char *end)
{
	if (*b == '\r' && b + 1 < end && b[1] == '\n')
		return b + 2;
	return b + 1;
}

/* A name or id holding a line break would start a line of its own: cut it there. */
static size_t
name_len(const char *event, size_t event_len)
{
	size_t i;

	if (event == NULL)
		return 0;
	for (i = 0; i < event_len; i++)
		if (event[i] == '\r' || event[i] == '\n')
			break;
	return i;
}

size_t
sse_event_size(const char *event, size_t event_len, const char *data, size_t data_len)
{
	return sse_event_id_size(NULL, 0, event, event_len, data, data_len);
}

size_t
sse_event_encode(char *out, const char *event, size_t event_len, const char *data, size_t data_len)
{
	return sse_event_id_encode(out, NULL, 0, event, event_len, data, data_len);
}

size_t
sse_event_id_size(const char *id, size_t id_len, const char *event, size_t event_len,
    const char *data, size_t data_len)
{
	struct scan s;
	const char *p, *b;
	size_t n = 0;

	event_len = name_len(event, event_len);
	if (event_len)
		n += EVENT_PREFIX_LEN + event_len + 1;
	id_len = name_len(id, id_len);
	if (id_len)
		n += ID_PREFIX_LEN + id_len + 1;
	if (data == NULL)
		data = "", data_len = 0;
	scan_init(&s, data, data_len);
	for (p = data;; p = skip_break(b, s.end)) {
		b = scan_next(&s, p);
		n += b > p ? DATA_PREFIX_LEN + (size_t)(b - p) + 1 : DATA_EMPTY_LEN;
		if (b == s.end)
			break;
	}
	return n + 1;
}

size_t
sse_event_size_max(size_t data_len, size_t event_len)
{
	/* every byte a break: data_len + 1 empty pieces */
	return (event_len ? EVENT_PREFIX_LEN + event_len + 1 : 0) + (data_len + 1) * DATA_EMPTY_LEN + 1;
}

size_t
sse_event_id_encode(char *out, const char *id, size_t id_len, const char *event,
    size_t event_len, const char *data, size_t data_len)
{
	struct scan s;
	const char *p, *b;
	char *o = out;

	event_len = name_len(event, event_len);
	if (event_len) {
		memcpy(o, EVENT_PREFIX, EVENT_PREFIX_LEN);
		o += EVENT_PREFIX_LEN;
		memcpy(o, event, event_len);
		o += event_len;
		*o++ = '\n';
	}
	id_len = name_len(id, id_len);
	if (id_len) {
		memcpy(o, ID_PREFIX, ID_PREFIX_LEN);
		o += ID_PREFIX_LEN;
		memcpy(o, id, id_len);
		o += id_len;
		*o++ = '\n';
	}
	if (data == NULL)
		data = "", data_len = 0;
	scan_init(&s, data, data_len);
	for (p = data;; p = skip_break(b, s.end)) {
		b = scan_next(&s, p);
		if (b > p) {
			memcpy(o, DATA_PREFIX, DATA_PREFIX_LEN);
			o += DATA_PREFIX_LEN;
			memcpy(o, p, (size_t)(b - p));
			o += b - p;
			*o++ = '\n';
		} else {
			memcpy(o, DATA_EMPTY, DATA_EMPTY_LEN);
			o += DATA_EMPTY_LEN;
		}
		if (b == s.end)
			break;
	}
	*o++ = '\n';
	return (size_t)(o - out);
}

size_t
sse_retry_encode(char *out, unsigned ms)
{
	char digits[10];
	size_t nd = 0, n = 0;

	do {
		digits[nd++] = (char)('0' + ms % 10);
		ms /= 10;
	} while (ms);
	memcpy(out, "retry: ", 7);
	n = 7;
	while (nd)
		out[n++] = digits[--nd];
	out[n++] = '\n';
	out[n++] = '\n';
	return n;
}
