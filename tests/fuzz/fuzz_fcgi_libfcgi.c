/*
 * Differential: the same bytes to our head scanner and to libfcgi, through the decode
 * path the server uses (fcgi_request_parse). The scanner is what decides when libfcgi may
 * see a request, so:
 *  - a request the scanner passes, libfcgi accepts, with the id, the params and the body
 *    a plain reference decoder in this file reads from the same records;
 *  - a request libfcgi accepts, the scanner passes too, unless it refused it on purpose
 *    (a role other than RESPONDER, a second BEGIN_REQUEST, records of other ids before
 *    BEGIN_REQUEST, a param name holding '=' or NUL, trouble in STDIN after the params,
 *    params not ended by an empty PARAMS record: libfcgi takes an error or the end of
 *    its input between two pairs as their end);
 *  - whatever libfcgi does, the in-memory file is closed exactly once and no descriptor
 *    leaks (close() and memfd_create() are wrapped here to count).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fcgi_record.h"
#include "fcgi_request.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int watch_fd = -1, watch_closes;

int
memfd_create(const char *name, unsigned int flags)
{
	int fd = (int)syscall(SYS_memfd_create, name, flags);

	watch_fd = fd;
	watch_closes = 0;
	return fd;
}

int
close(int fd)
{
	if (fd == watch_fd && fd != -1)
		watch_closes++;
	return (int)syscall(SYS_close, fd);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (fcgi_lib_init() != 0)
		abort();
	return 0;
}

/* The records of one id, as libfcgi concatenates them: PARAMS and STDIN streams. */
struct ref {
	uint8_t params[1 << 17];
	size_t params_len;
	uint8_t body[1 << 17];
	size_t body_len;
};

static struct ref ref;

static void
ref_collect(const uint8_t *buf, size_t len, uint16_t id)
{
	int begun = 0;

	ref.params_len = ref.body_len = 0;
	for (size_t o = 0; len - o >= FCGI_REC_HEADER_LEN;) {
		const uint8_t *h = buf + o;
		size_t clen = (size_t)h[4] << 8 | h[5];
		uint16_t rid = (uint16_t)(h[2] << 8 | h[3]);
		size_t avail = len - o - FCGI_REC_HEADER_LEN;

		/* libfcgi skips every record of an id before that id's BEGIN_REQUEST */
		if (rid == id && h[1] == FCGI_REC_BEGIN_REQUEST)
			begun = 1;
		if (begun && rid == id && h[1] == FCGI_REC_PARAMS) {
			if (clen == 0)
				break;
			/* libfcgi reads a record's content as it comes: a cut one counts */
			if (clen > avail)
				clen = avail;
			memcpy(ref.params + ref.params_len, h + 8, clen);
			ref.params_len += clen;
		}
		if (avail < clen)
			break;
		o += FCGI_REC_HEADER_LEN + clen + h[6];
		if (o > len)
			break;
	}
}

static void
ref_collect_body(const uint8_t *buf, size_t len, uint16_t id)
{
	int begun = 0;

	for (size_t o = 0; len - o >= FCGI_REC_HEADER_LEN;) {
		const uint8_t *h = buf + o;
		size_t clen = (size_t)h[4] << 8 | h[5];
		uint16_t rid = (uint16_t)(h[2] << 8 | h[3]);

		if (rid == id && h[1] == FCGI_REC_BEGIN_REQUEST)
			begun = 1;
		if (begun && rid == id && h[1] == FCGI_REC_STDIN) {
			if (clen == 0)
				break;
			memcpy(ref.body + ref.body_len, h + 8, clen);
			ref.body_len += clen;
		}
		o += FCGI_REC_HEADER_LEN + clen + h[6];
	}
}

static int
ref_len(const uint8_t *p, size_t n, size_t *at, size_t *out)
{
	if (*at >= n)
		return -1;
	if (p[*at] & 0x80) {
		if (n - *at < 4)
			return -1;
		*out = (size_t)(p[*at] & 0x7f) << 24 | (size_t)p[*at + 1] << 16 |
		    (size_t)p[*at + 2] << 8 | p[*at + 3];
		*at += 4;
	} else {
		*out = p[(*at)++];
	}
	return 0;
}

/*
 * Walks the params; with want set, finds the first pair named want and returns its value
 * as libfcgi's C string would hold it (cut at a NUL). Returns 0, -1 on a malformed
 * stream, 1 when a name holds '=' or NUL.
 */
static int
ref_params(const char *want, char *val, size_t valsize)
{
	size_t at = 0, nlen, vlen;
	int odd = 0, found = 0;

	if (val != NULL)
		val[0] = '\0';
	while (at < ref.params_len) {
		const uint8_t *name;

		if (ref_len(ref.params, ref.params_len, &at, &nlen) != 0 ||
		    ref_len(ref.params, ref.params_len, &at, &vlen) != 0 ||
		    nlen > ref.params_len - at || vlen > ref.params_len - at - nlen)
			return -1;
		name = ref.params + at;
		if (memchr(name, '=', nlen) != NULL || memchr(name, '\0', nlen) != NULL)
			odd = 1;
		if (want != NULL && !found && nlen == strlen(want) && memcmp(name, want, nlen) == 0) {
			size_t k = strnlen((const char *)name + nlen, vlen);

			if (k >= valsize)
				abort();
			memcpy(val, name + nlen, k);
			val[k] = '\0';
			found = 1;
		}
		at += nlen + vlen;
	}
	return odd;
}

/* Why the scanner may refuse what libfcgi takes: see the header comment. */
static int
refused_on_purpose(const uint8_t *buf, size_t len)
{
	int begins = 0, role = 0, params_end = 0;
	uint16_t id = 0;

	for (size_t o = 0; len - o >= FCGI_REC_HEADER_LEN;) {
		const uint8_t *h = buf + o;
		size_t clen = (size_t)h[4] << 8 | h[5];
		uint16_t rid = (uint16_t)(h[2] << 8 | h[3]);

		if (len - o - FCGI_REC_HEADER_LEN < clen + h[6] || h[0] != 1)
			break;   /* where libfcgi stops reading too */
		if (h[1] == FCGI_REC_BEGIN_REQUEST && rid != 0) {
			if (begins++ == 0) {
				id = rid;
				role = h[8] << 8 | h[9];
			}
		} else if (rid != 0 && begins == 0) {
			return 1;
		}
		if (begins > 1)
			return 1;
		if (begins == 1 && rid == id && h[1] == FCGI_REC_PARAMS && clen == 0) {
			params_end = 1;
			break;
		}
		o += FCGI_REC_HEADER_LEN + clen + h[6];
	}
	/* libfcgi ends the params at any read error or at the end of the bytes, when
	 * that falls between two pairs; the scanner wants the empty PARAMS record */
	if (!params_end || role != FCGI_REC_ROLE_RESPONDER)
		return 1;
	ref_collect(buf, len, id);
	return ref_params(NULL, NULL, 0) == 1;
}

/*
 * What of a refused input is given to libfcgi. libfcgi allocates what a pair's lengths
 * say before it reads the pair, and Debian 12's libfcgi (2.4.2-2+deb12u1) aborts the
 * process in Malloc() when the two lengths add up past INT_MAX: found by this target,
 * and the reason the scanner checks every length against the bytes present. Such
 * params are not given to libfcgi here (0 is returned); the scanner must refuse them.
 * Nor are management records (request id 0): libfcgi leaks the params of a
 * FCGI_GET_VALUES it cannot read (also found here; the scanner cuts every management
 * record), nor padding on BEGIN_REQUEST or on the empty PARAMS record, which libfcgi
 * reads as the next header (found here too; the scanner refuses it), nor a second
 * BEGIN_REQUEST, which libfcgi answers by writing an END_REQUEST into the very file it
 * reads from (the scanner refuses it), nor an empty record of another request id:
 * libfcgi then keeps skipping, and drops the content of its own next record (found
 * here; the scanner cuts records of other ids before libfcgi sees them).
 * The input is cut right after the header where libfcgi stops reading the params (a bad
 * version, a record of the request's id that is not PARAMS, the empty PARAMS record),
 * so that reading the body finds nothing more: after such a header libfcgi would read
 * content bytes as headers, which is not the question asked here.
 */
static size_t
raw_prefix(const uint8_t *buf, size_t len)
{
	size_t at = 0, nlen, vlen, o, cut = len;
	uint16_t id = 0;

	for (o = 0; len - o >= FCGI_REC_HEADER_LEN;) {
		const uint8_t *h = buf + o;
		uint16_t rid = (uint16_t)(h[2] << 8 | h[3]);
		size_t clen = (size_t)h[4] << 8 | h[5];

		if (h[0] != 1) {
			cut = o + FCGI_REC_HEADER_LEN;
			break;
		}
		if (rid == 0)
			return 0;
		if (h[6] != 0 && (h[1] == FCGI_REC_BEGIN_REQUEST ||
		    (h[1] == FCGI_REC_PARAMS && clen == 0)))
			return 0;
		if (h[1] == FCGI_REC_BEGIN_REQUEST && id != 0)
			return 0;
		if (h[1] != FCGI_REC_BEGIN_REQUEST && rid != id && clen == 0)
			return 0;
		if (h[1] == FCGI_REC_BEGIN_REQUEST) {
			id = rid;
		} else if (id != 0 && rid == id && (h[1] != FCGI_REC_PARAMS || clen == 0)) {
			cut = o + FCGI_REC_HEADER_LEN;
			break;
		}
		o += FCGI_REC_HEADER_LEN + clen + h[6];
		if (o >= len)
			break;
	}
	if (id == 0)
		return cut;
	ref_collect(buf, cut, id);
	while (ref_len(ref.params, ref.params_len, &at, &nlen) == 0 &&
	    ref_len(ref.params, ref.params_len, &at, &vlen) == 0) {
		if (nlen > len || vlen > len)
			return 0;
		at += nlen + vlen;
	}
	return cut;
}

static void
check_field(const char *name, const char *got)
{
	static char want[1 << 17];

	if (ref_params(name, want, sizeof(want)) != 0)
		abort();
	if (strcmp(want, got) != 0)
		abort();
}

static int
lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd != -1)
		syscall(SYS_close, fd);
	return fd;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fcgi_head_scan s;
	struct fcgi_request req;
	uint8_t *buf;
	size_t len = size, raw = 0;
	int r, rc, fd0 = lowest_free_fd();

	if (size > 60000)
		return 0;
	buf = malloc(size + 1);
	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	fcgi_head_scan_init(&s);
	r = fcgi_head_scan(&s, buf, &len, 1 << 20);

	ref.params_len = 0;
	if (r != 0 && (raw = raw_prefix(data, size)) == 0) {
		free(buf);
		return 0;
	}
	watch_fd = -1;
	if (r == 0)
		rc = fcgi_request_parse(&req, buf, len);
	else
		rc = fcgi_request_parse(&req, data, raw);
	if (watch_fd != -1 && watch_closes != 1)
		abort();   /* the in-memory file closed twice, or not at all */
	watch_fd = -1;
	if (lowest_free_fd() != fd0)
		abort();
	if (rc != 0 && rc != -1)
		abort();

	if (r == 0) {
		if (rc != 0)
			abort();   /* the scanner passed what libfcgi refuses */
		if (req.id != s.id)
			abort();
		ref_collect(buf, s.off, s.id);
		check_field("REQUEST_METHOD", req.method);
		check_field("REQUEST_URI", req.uri);
		check_field("HTTP_AUTHORIZATION", req.authorization);
		check_field("HTTP_ACCEPT", req.accept);
		ref.body_len = 0;
		ref_collect_body(buf, s.off, s.id);
		if (req.body_len != ref.body_len ||
		    (req.body_len > 0 && memcmp(req.body, ref.body, req.body_len) != 0))
			abort();
		if ((req.body == NULL) != (req.body_len == 0))
			abort();
	} else if (rc == 0 && !s.params_done && !refused_on_purpose(data, raw)) {
		abort();   /* libfcgi takes a head the scanner refuses or waits on */
	}
	if (rc == 0)
		fcgi_request_release(&req);
	free(buf);
	return 0;
}
