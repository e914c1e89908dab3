/* fcgi_record — see fcgi_record.h. Pure: no I/O, no allocation. */
#include "fcgi_record.h"

#include <string.h>

void
fcgi_head_scan_init(struct fcgi_head_scan *s)
{
	memset(s, 0, sizeof(*s));
}

/*
 * Records are only acted on once complete (header + content + padding), so a request
 * trickling in one byte at a time is simply re-walked from s->off on the next call.
 *
 * Records that are not handed on are cut out in one compacting pass: r walks the
 * records, w is the end of what is kept, each kept byte moves at most once and the
 * unwalked rest moves once at the end. A peer sending a flood of tiny management records
 * therefore costs time linear in its bytes (cutting each record out by moving the rest
 * of the buffer would cost their square).
 */
int
fcgi_head_scan(struct fcgi_head_scan *s, uint8_t *buf, size_t *len, size_t max_stdin)
{
	size_t r = s->off, w = s->off;
	int rc = -2;

	while (rc == -2 && *len - r >= FCGI_REC_HEADER_LEN) {
		const uint8_t *h = buf + r;
		unsigned type = h[1];
		uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
		size_t clen = (size_t)h[4] << 8 | h[5];
		size_t plen = h[6];
		size_t total = FCGI_REC_HEADER_LEN + clen + plen, keep = total;

		if (h[0] != 1) {
			rc = -1;
			break;
		}
		if (*len - r < total)
			break;
		if (id == 0 || (s->have_begin && id != s->id && type != FCGI_REC_BEGIN_REQUEST)) {
			/* management record or a stray id: not ours to hand on */
			s->skipped += total;
			r += total;
			continue;
		}
		switch (type) {
		case FCGI_REC_BEGIN_REQUEST:
			if (s->have_begin || clen < 8) {
				rc = -1;
				break;
			}
			s->have_begin = 1;
			s->id = id;
			break;
		case FCGI_REC_ABORT_REQUEST:
			s->aborted = 1;
			rc = -1;
			break;
		case FCGI_REC_PARAMS:
			if (!s->have_begin || s->params_done)
				rc = -1;
			else if (clen == 0)
				s->params_done = 1;
			break;
		case FCGI_REC_STDIN:
			if (!s->params_done || s->stdin_done) {
				rc = -1;
			} else if (clen == 0) {
				/* anything after the request (there should be nothing) is left
				 * for the stream reader */
				s->stdin_done = 1;
				rc = 0;
			} else {
				s->stdin_bytes += clen;
				/* past the limit keep the header with no content, so that what
				 * is buffered stays bounded and libfcgi still sees the records */
				if (s->stdin_bytes > max_stdin) {
					s->stdin_dropped = 1;
					keep = FCGI_REC_HEADER_LEN;
				}
			}
			break;
		default:
			if (!s->have_begin) {
				rc = -1;
				break;
			}
			/* DATA and friends belong to roles we do not play: drop */
			s->skipped += total;
			r += total;
			continue;
		}
		if (rc == -1)
			break;
		if (w != r)
			memmove(buf + w, buf + r, keep);
		if (keep != total)
			buf[w + 4] = buf[w + 5] = buf[w + 6] = 0;
		w += keep;
		r += total;
	}
	if (w != r) {
		memmove(buf + w, buf + r, *len - r);
		*len -= r - w;
	}
	s->off = w;
	return rc;
}

int
fcgi_tail_feed(struct fcgi_tail *t, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (t->skip > 0) {
			size_t k = n < t->skip ? n : t->skip;
			t->skip -= (uint32_t)k;
			p += k;
			n -= k;
			continue;
		}
		t->hdr[t->hdr_len++] = *p++;
		n--;
		if (t->hdr_len < FCGI_REC_HEADER_LEN)
			continue;
		t->hdr_len = 0;
		if (t->hdr[0] != 1)
			return -1;
		if (t->hdr[1] == FCGI_REC_ABORT_REQUEST || t->hdr[1] == FCGI_REC_BEGIN_REQUEST)
			return 1;
		t->skip = ((uint32_t)t->hdr[4] << 8 | t->hdr[5]) + t->hdr[6];
	}
	return 0;
}

void
fcgi_header_encode(uint8_t out[FCGI_REC_HEADER_LEN], enum fcgi_rec_type type,
    uint16_t id, uint16_t content_len, uint8_t padding_len)
{
	out[0] = 1;
	out[1] = (uint8_t)type;
	out[2] = (uint8_t)(id >> 8);
	out[3] = (uint8_t)id;
	out[4] = (uint8_t)(content_len >> 8);
	out[5] = (uint8_t)content_len;
	out[6] = padding_len;
	out[7] = 0;
}

void
fcgi_end_encode(uint8_t out[FCGI_END_LEN], uint16_t id, uint32_t app_status)
{
	fcgi_header_encode(out, FCGI_REC_STDOUT, id, 0, 0);
	fcgi_header_encode(out + 8, FCGI_REC_END_REQUEST, id, 8, 0);
	out[16] = (uint8_t)(app_status >> 24);
	out[17] = (uint8_t)(app_status >> 16);
	out[18] = (uint8_t)(app_status >> 8);
	out[19] = (uint8_t)app_status;
	out[20] = 0; /* FCGI_REQUEST_COMPLETE */
	out[21] = out[22] = out[23] = 0;
}

size_t
fcgi_stdout_size(size_t len)
{
	size_t records = (len + FCGI_REC_MAX_CONTENT - 1) / FCGI_REC_MAX_CONTENT;

	return len + records * FCGI_REC_HEADER_LEN;
}

size_t
fcgi_stdout_encode(uint8_t *out, uint16_t id, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t *o = out;

	while (len > 0) {
		size_t k = len < FCGI_REC_MAX_CONTENT ? len : FCGI_REC_MAX_CONTENT;

		fcgi_header_encode(o, FCGI_REC_STDOUT, id, (uint16_t)k, 0);
		memcpy(o + FCGI_REC_HEADER_LEN, p, k);
		o += FCGI_REC_HEADER_LEN + k;
		p += k;
		len -= k;
	}
	return (size_t)(o - out);
}
