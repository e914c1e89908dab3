/*
 * dedup_meta_decode on any bytes a Redis peer could publish on the meta channel.
 * Properties: a decoded record points inside the input, its origin and event are valid
 * (so encode takes them back), its id (if any) is one whole non-empty " i=" token value,
 * and its seq is not 0; encoding the decoded fields and decoding that again gives the
 * same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dedup_meta m, m2;
	char enc[DEDUP_META_MAX];
	char *buf = malloc(size + 1);
	size_t n;

	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	if (dedup_meta_decode(buf, size, &m) == 0) {
		if (m.origin < buf || m.origin + m.origin_len > buf + size || m.seq == 0)
			abort();
		if (m.event != NULL && (m.event < buf || m.event + m.event_len > buf + size))
			abort();
		/* the id: a whole token's value, inside the input, never empty */
		if (m.id != NULL && (m.id < buf + 4 || m.id + m.id_len > buf + size ||
		    m.id_len == 0 || memchr(m.id, ' ', m.id_len) != NULL ||
		    memcmp(m.id - 3, " i=", 3) != 0 ||
		    (m.id + m.id_len < buf + size && m.id[m.id_len] != ' ')))
			abort();
		n = dedup_meta_encode(enc, sizeof(enc), m.origin, m.origin_len, m.seq,
		    m.event, m.event_len);
		if (n == 0 || n > sizeof(enc))
			abort();
		if (dedup_meta_decode(enc, n, &m2) != 0)
			abort();
		if (m2.seq != m.seq || m2.origin_len != m.origin_len ||
		    memcmp(m2.origin, m.origin, m.origin_len) != 0 ||
		    (m2.event == NULL) != (m.event == NULL) || m2.event_len != m.event_len ||
		    (m.event != NULL && memcmp(m2.event, m.event, m.event_len) != 0))
			abort();
	}
	free(buf);
	return 0;
}
