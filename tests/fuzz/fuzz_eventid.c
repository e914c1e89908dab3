/*
 * eventid_parse on any bytes a browser can send as Last-Event-ID (or last_event_id), or a
 * Redis peer as the " i=" id of a meta record. Properties: an accepted id is canonical
 * (formatting what was parsed gives back exactly the input, so one position has one
 * spelling), its epoch points inside the input and is valid; a rejected input leaves the
 * result untouched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eventid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct eventid untouched = { "x", 1, 42 };
	struct eventid id = untouched;
	char out[EVENTID_MAX + 1];
	char *buf = malloc(size + 1);
	size_t n;

	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	if (eventid_parse(&id, buf, size) == 0) {
		if (id.epoch < buf || id.epoch + id.epoch_len > buf + size ||
		    !eventid_epoch_is_valid(id.epoch, id.epoch_len) || size > EVENTID_MAX)
			abort();
		n = eventid_format(out, sizeof(out), id.epoch, id.epoch_len, id.seq);
		if (n != size || memcmp(out, buf, size) != 0 || out[n] != '\0')
			abort();
		if (!eventid_same_epoch(&id, buf, id.epoch_len))
			abort();
	} else if (id.epoch != untouched.epoch || id.epoch_len != untouched.epoch_len ||
	    id.seq != untouched.seq) {
		abort();
	}
	free(buf);
	return 0;
}
