/*
 * sse_event_encode against a reference event-stream parser written from the HTML
 * standard's rules (lines end at CRLF, LF or CR; an empty line dispatches; "name:value"
 * with one leading space stripped; ':' starts a comment). Input: first byte is the event
 * name's length, then the name, then the payload. Properties: the output is exactly
 * sse_event_size() bytes; parsed, it gives exactly one event, dispatched by its last
 * line and not before; its only fields are data (and event when a name was given); the
 * data is the payload with each CRLF, CR or LF turned into "\n"; the name is the given
 * one cut at its first CR or LF.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a browser dispatches from one encoded event; aborts on anything else. */
static void
parse_one(const char *o, size_t n, char *data, size_t *data_len, char *name,
    size_t *name_len)
{
	size_t i = 0, dl = 0, events = 0, data_lines = 0, names = 0;

	*name_len = 0;
	while (i < n) {
		size_t start = i, end, colon, vstart;

		while (i < n && o[i] != '\r' && o[i] != '\n')
			i++;
		if (i == n)
			abort();   /* a last line without its end: the event never dispatches */
		end = i;
		if (o[i] == '\r' && i + 1 < n && o[i + 1] == '\n')
			i++;
		i++;
		if (end == start) {
			/* dispatch: must be the very end */
			events++;
			if (i != n)
				abort();
			continue;
		}
		if (o[start] == ':')
			abort();   /* the encoder writes no comments */
		for (colon = start; colon < end && o[colon] != ':'; colon++)
			;
		vstart = colon < end ? colon + 1 : end;
		if (vstart < end && o[vstart] == ' ')
			vstart++;
		if (colon - start == 4 && memcmp(o + start, "data", 4) == 0) {
			if (data_lines++ > 0)
				data[dl++] = '\n';
			memcpy(data + dl, o + vstart, end - vstart);
			dl += end - vstart;
		} else if (colon - start == 5 && memcmp(o + start, "event", 5) == 0) {
			if (names++ > 0 || data_lines > 0)
				abort();
			memcpy(name, o + vstart, end - vstart);
			*name_len = end - vstart;
		} else {
			abort();   /* a field the payload must never create */
		}
	}
	if (events != 1 || data_lines == 0)
		abort();
	*data_len = dl;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *name, *payload;
	size_t name_len, payload_len, need, got, dl, nl, pl = 0, cut;
	char *out, *pdata, *pname, *norm;

	if (size < 1)
		return 0;
	name_len = data[0];
	if (name_len > size - 1)
		name_len = size - 1;
	name = (const char *)data + 1;
	payload = name + name_len;
	payload_len = size - 1 - name_len;

	need = sse_event_size(name, name_len, payload, payload_len);
	out = malloc(need);
	pdata = malloc(need);
	pname = malloc(need);
	norm = malloc(payload_len + 1);
	if (out == NULL || pdata == NULL || pname == NULL || norm == NULL)
		abort();
	got = sse_event_encode(out, name, name_len, payload, payload_len);
	if (got != need)
		abort();
	parse_one(out, got, pdata, &dl, pname, &nl);

	for (size_t i = 0; i < payload_len; i++) {
		if (payload[i] == '\r') {
			norm[pl++] = '\n';
			if (i + 1 < payload_len && payload[i + 1] == '\n')
				i++;
		} else {
			norm[pl++] = payload[i];
		}
	}
	if (dl != pl || memcmp(pdata, norm, pl) != 0)
		abort();
	for (cut = 0; cut < name_len && name[cut] != '\r' && name[cut] != '\n'; cut++)
		;
	if (nl != cut || memcmp(pname, name, cut) != 0)
		abort();
	free(out);
	free(pdata);
	free(pname);
	free(norm);
	return 0;
}
