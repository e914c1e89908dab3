/* fcgi_record — see fcgi_record.h. Pure: no I/O, no allocation. */
#include "fcgi_record.h"

#include <string.h>

void
fcgi_head_scan_init(struct fcgi_head_scan *s)
{
	memset(s, 0, sizeof(*s));
}

/*
 * The PARAMS stream as libfcgi reads it: the contents of the PARAMS records of one
 * request id, concatenated, record boundaries meaning nothing.
 */
struct params_reader {
	const uint8_t *buf;
	size_t next;    /* header of the next record to look at */
	size_t end;     /* end of the records to walk */
	size_t pos;     /* next content byte of the current record */
	size_t left;    /* content bytes left in the current record */
	uint16_t id;
};

/* Makes left > 0, moving on to the next PARAMS record with content; -1 at the end. */
static int
params_fill(struct params_reader *r)
{
	while (r->left == 0) {
		const uint8_t *h = r->buf + r->next;
		size_t clen;

		if (r->next > r->end || r->end - r->next < FCGI_REC_HEADER_LEN)
			return -1;
		clen = (size_t)h[4] << 8 | h[5];
		if (h[1] == FCGI_REC_PARAMS && (uint16_t)(h[2] << 8 | h[3]) == r->id) {
			r->pos = r->next + FCGI_REC_HEADER_LEN;
			r->left = clen;
		}
		r->next += FCGI_REC_HEADER_LEN + clen + h[6];
	}
	return 0;
}

static int
params_byte(struct params_reader *r)
{
	if (params_fill(r) != 0)
		return -1;
	r->left--;
	return r->buf[r->pos++];
}

/* One name or value length: one byte, or four with the top bit set. */
static int
params_len(struct params_reader *r, size_t *len)
{
	int b = params_byte(r);

	if (b < 0)
		return -1;
	*len = (size_t)b;
	if (b & 0x80) {
		*len = (size_t)(b & 0x7f);
		for (int i = 0; i < 3; i++) {
			if ((b = params_byte(r)) < 0)
				return -1;
			*len = *len << 8 | (size_t)b;
		}
	}
	return 0;
}

/* Skips n bytes of the stream; with is_name, refuses '=' and NUL in them. */
static int
params_skip(struct params_reader *r, size_t n, int is_name)
{
	while (n > 0) {
		size_t k;

		if (params_fill(r) != 0)
			return -1;
		k = n < r->left ? n : r->left;
		if (is_name && (memchr(r->buf + r->pos, '=', k) != NULL ||
		    memchr(r->buf + r->pos, '\0', k) != NULL))
			return -1;
		r->pos += k;
		r->left -= k;
		n -= k;
	}
	return 0;
}

/*
 * Checks, before libfcgi reads them, that the PARAMS records in buf[0 .. end) hold
 * whole name-value pairs and nothing else. libfcgi would refuse a pair cut short (and
 * fcgi <= 2.4.4 overflowed on huge lengths: CVE-2025-23016); here no length can exceed
 * the bytes actually present. libfcgi keeps a pair as the C string "name=value", so a
 * name holding '=' or NUL would read back as another name: refused too. One pass over
 * the stream, once per request.
 */
static int
params_check(const uint8_t *buf, size_t end, uint16_t id)
{
	struct params_reader r = { buf, 0, end, 0, 0, id };
	size_t nlen, vlen;

	for (;;) {
		if (params_fill(&r) != 0)
			return 0;   /* the stream ends between two pairs */
		if (params_len(&r, &nlen) != 0 || params_len(&r, &vlen) != 0 ||
		    params_skip(&r, nlen, 1) != 0 || params_skip(&r, vlen, 0) != 0)
			return -1;
	}
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
			/* libfcgi refuses any other body length, and we play no other role.
			 * libfcgi also never skips this record's padding (it resets its
			 * reader for PARAMS first) and would read the padding as the next
			 * header: padding here is refused. */
			if (s->have_begin || clen != 8 || plen != 0 || h[8] != 0 ||
			    h[9] != FCGI_REC_ROLE_RESPONDER) {
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
			if (!s->have_begin || s->params_done) {
				rc = -1;
			} else if (clen == 0) {
				/* every PARAMS record of the request is kept in buf[0 .. w)
				 * now. libfcgi resets its reader for STDIN before it would
				 * skip this record's padding, and reads the padding as a
				 * header: refused */
				if (plen != 0 || params_check(buf, w, s->id) != 0)
					rc = -1;
				else
					s->params_done = 1;
			}
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
