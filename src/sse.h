/*
 * sse — Server-Sent Events wire framing (HTML Living Standard, "Server-sent
 * events", event stream interpretation). Pure: no I/O, no allocation, no
 * logging. One event is encoded once per publish and the bytes are shared by
 * every stream of the resource, so sizing and copying are one pass each.
 *
 * Framing of one event:
 *
 *     event: NAME\n          only when a name is given (event_len > 0)
 *     id: ID\n              only when an id is given (sse_event_id_*, id_len > 0)
 *     data: PIECE\n          one line per piece of the payload
 *     \n                     ends the event
 *
 * The payload is split on line breaks; CRLF, a lone CR and a lone LF are each
 * ONE break (the browser's own line rules), and the break bytes themselves are
 * never written. An empty piece is written as "data:\n" (no space: there is
 * nothing to protect), a non-empty one as "data: " PIECE "\n". Since the
 * browser strips exactly one space after the colon, a piece that starts with
 * a space survives ("data:  x" gives " x"). A payload with N breaks gives N+1
 * data lines, so a trailing break yields a final "data:" line and an empty
 * payload gives "data:\n\n". What the browser hands to onmessage is then the
 * payload byte for byte, with every break turned into "\n". No payload can add
 * a field or end the event early: it never reaches the stream as a line start.
 *
 * An empty payload is still one event: its single "data:" line makes the
 * browser dispatch a message whose data is "" (an event with no data line at
 * all would be dropped).
 *
 * The event name must not contain CR or LF (route_name_is_valid() names never
 * do); should one slip through, the name is cut at its first CR or LF, so it
 * can never start a line of its own. NUL bytes are passed through untouched.
 */
#ifndef SSE_SSE_H
#define SSE_SSE_H

#include <stddef.h>

/* Longest sse_retry_encode() output: "retry: 4294967295\n\n". */
#define SSE_RETRY_MAX 19

/*
 * Bytes sse_event_encode() will write for the same arguments (never 0).
 * event may be NULL or event_len 0: no "event:" line. data may be NULL when
 * data_len is 0. Only reads its arguments.
 */
size_t sse_event_size(const char *event, size_t event_len, const char *data, size_t data_len);

/*
 * The most sse_event_size() can return for any payload of data_len bytes and an event
 * name of event_len bytes: a payload made only of line breaks (each one "data:\n").
 */
size_t sse_event_size_max(size_t data_len, size_t event_len);

/*
 * Writes the framed event into out, which must hold sse_event_size() bytes of
 * the same arguments; no NUL terminator is written. Returns the number of
 * bytes written, always equal to sse_event_size(). out must not overlap the
 * inputs. Borrows everything, keeps nothing.
 */
size_t sse_event_encode(char *out, const char *event, size_t event_len, const char *data, size_t data_len);

/*
 * The same with an "id: ID" line after the event line (none when id is NULL or id_len
 * is 0): the browser's lastEventId, sent back as Last-Event-ID when it reconnects. Like
 * the name, an id is cut at its first CR or LF; event ids (eventid.h) never hold one.
 */
size_t sse_event_id_size(const char *id, size_t id_len, const char *event, size_t event_len,
    const char *data, size_t data_len);
size_t sse_event_id_encode(char *out, const char *id, size_t id_len, const char *event,
    size_t event_len, const char *data, size_t data_len);

/*
 * Writes "retry: MS\n\n" (the reconnection delay in milliseconds, followed by a
 * blank line so it stands alone) into out, which must hold SSE_RETRY_MAX
 * bytes; no NUL terminator. Returns the length written.
 */
size_t sse_retry_encode(char *out, unsigned ms);

/*
 * The idle heartbeat: a comment line plus a blank line (": hb\n\n"). Browsers
 * ignore it; it only keeps proxies' read timeouts from firing and lets a write
 * discover a dead client. Not NUL-counted: sse_heartbeat_len excludes the NUL.
 */
extern const char sse_heartbeat[];
extern const size_t sse_heartbeat_len;

#endif
