/* eventid — see eventid.h. */
#include "eventid.h"

#include <string.h>

static int
epoch_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

int
eventid_epoch_is_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len == 0 || len > EVENTID_EPOCH_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!epoch_char(s[i]))
			return 0;
	return 1;
}

size_t
eventid_format(char *out, size_t cap, const char *epoch, size_t epoch_len, uint64_t seq)
{
	char digits[20];
	size_t nd = 0, n;

	if (!eventid_epoch_is_valid(epoch, epoch_len))
		return 0;
	do {
		digits[nd++] = (char)('0' + seq % 10);
		seq /= 10;
	} while (seq);
	n = epoch_len + 1 + nd;
	if (cap < n + 1)
		return 0;
	memcpy(out, epoch, epoch_len);
	out[epoch_len] = '-';
	for (size_t i = 0; i < nd; i++)
		out[epoch_len + 1 + i] = digits[nd - 1 - i];
	out[n] = '\0';
	return n;
}

int
eventid_parse(struct eventid *id, const char *s, size_t len)
{
	const char *dash;
	size_t elen, dlen, i;
	uint64_t seq = 0;

	if (s == NULL || len == 0 || len > EVENTID_MAX)
		return -1;
	dash = memchr(s, '-', len);
	if (dash == NULL)
		return -1;
	elen = (size_t)(dash - s);
	dlen = len - elen - 1;
	if (!eventid_epoch_is_valid(s, elen) || dlen == 0 || dlen > 20)
		return -1;
	if (dlen > 1 && dash[1] == '0')
		return -1;
	for (i = 0; i < dlen; i++) {
		unsigned d;

		if (dash[1 + i] < '0' || dash[1 + i] > '9')
			return -1;
		d = (unsigned)(dash[1 + i] - '0');
		if (seq > (UINT64_MAX - d) / 10)
			return -1;
		seq = seq * 10 + d;
	}
	id->epoch = s;
	id->epoch_len = elen;
	id->seq = seq;
	return 0;
}

int
eventid_same_epoch(const struct eventid *id, const char *epoch, size_t epoch_len)
{
	return id->epoch_len == epoch_len && memcmp(id->epoch, epoch, epoch_len) == 0;
}
