/*
 * sse-load — SSE subscriber crowd and HTTP publisher in one epoll loop.
 *
 * Opens --streams Server-Sent Events streams (HTTP/1.1, chunked or
 * close-delimited) spread over --resources resources and over several
 * 127.0.0.x source addresses (one source/destination pair only has the
 * ephemeral port range, ~28k ports), then publishes --rate messages a second
 * (0 = as fast as the servers take them) over --pub-conns keep-alive
 * connections for --duration seconds.  Every payload is JSON carrying a
 * per-resource sequence number, the intended send time (CLOCK_MONOTONIC ns;
 * intended, not actual, so a late publisher shows up as latency instead of
 * hiding it) and the resource index, padded to --payload bytes:
 *
 *     {"s":17,"t":123456789012,"r":3,"p":"xxxx..."}
 *
 * Each stream counts events, lost and duplicated sequence numbers (a
 * sliding bitmap, so publishes overtaking each other on different publisher
 * connections are not miscounted) and misrouted events; latencies go into a
 * log-linear histogram (<1 % error).  One JSON object with the results is
 * printed on stdout at the end; progress goes to stderr.
 *
 * --hold: once every stream is up, print {"ready":...} on stdout and wait
 * until stdin has a line or EOF before publishing (the driver measures
 * server memory meanwhile).
 *
 * Why one thread: a single epoll loop that reads 256 KiB at a time and
 * parses every event in what it read costs a few hundred ns per event, well
 * above what the servers under test deliver on one core; the report carries
 * this tool's CPU time so a run where the tool was the ceiling shows.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RBUF_SIZE (256 * 1024)
#define WIN_BITS 1024            /* reorder window per stream */
#define HIST_SUB 7               /* 128 sub-buckets per power of two */
#define HIST_N (64 * (1 << HIST_SUB))

enum kind { K_SUB, K_PUB };
enum cstate { C_IDLE, C_CONNECTING, C_HEAD, C_BODY, C_DONE };
enum chunk { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_END };

struct conn {
	int fd;
	uint8_t kind;
	uint8_t state;
	uint8_t chunked;
	uint8_t chunk_state;
	uint8_t has_data;
	uint8_t established;
	uint8_t evmask_out;      /* EPOLLOUT is in the registered mask */
	uint8_t keepalive;
	uint8_t tries;
	uint32_t res;
	uint32_t chunk_left;
	char *buf;               /* head bytes, or a partial SSE line */
	uint32_t blen, bcap;
	/* SSE event being assembled */
	uint64_t ev_seq, ev_t;
	uint32_t ev_res;
	uint8_t ev_ok;
	/* sequence tracking (subscriber) */
	uint64_t base;           /* every seq < base is settled */
	uint64_t *win;           /* WIN_BITS bits for [base, base+WIN_BITS) */
	uint64_t unique;
	/* publisher */
	int status;
	int64_t clen;            /* response body bytes still expected, -1 unknown */
	uint32_t src;
	uint32_t nflight;        /* requests written or queued, not yet answered */
	uint32_t fq_head;        /* FIFO of in-flight requests (opt.pipeline slots) */
	struct pubreq *fq;
	char *out;               /* requests not yet written */
	uint32_t out_len, out_off, out_cap;
};

/* One publish in flight on a connection (answers come back in order). */
struct pubreq {
	uint64_t t_sent;         /* when it was queued, for the answer latency */
	uint32_t res;
	uint32_t fanout;         /* streams of its resource when published */
};

struct res {
	uint64_t next_seq;       /* last seq handed out */
	uint64_t sent, ok;       /* publishes written / answered 2xx */
	uint64_t received;       /* events received over all its streams */
	uint32_t nstreams;       /* established streams */
};

static struct {
	const char *host;
	int port, pub_port;
	const char *sub_path, *pub_path;
	unsigned streams, resources, src_addrs, pub_conns, payload, inflight;
	double rate, duration, drain, connect_timeout, settle;
	unsigned max_ahead, res_offset, pipeline;
	uint64_t window;
	uint64_t count;
	unsigned retries;          /* reopen a stream refused with 429/503 this often */
	int hold, quiet;
	const char *label;
} opt = {
	.host = "127.0.0.1", .port = 8080,
	.sub_path = "/sse/r%u", .pub_path = "/publish/r%u",
	.streams = 1000, .resources = 10, .src_addrs = 4, .pub_conns = 4,
	.payload = 128, .inflight = 256, .rate = 100, .duration = 10,
	.drain = 3, .connect_timeout = 120, .settle = 0.5, .max_ahead = 0, .pipeline = 1,
};

static int ep = -1;
static struct conn *conns;          /* streams, then publishers */
static struct res *resv;
static char *rbuf, *dbuf;
static size_t dbuf_cap;
static uint64_t hist[HIST_N];     /* publish-to-event latency */
static uint64_t phist[HIST_N];    /* publish request to its answer */
static uint64_t t_now;

static struct {
	uint64_t established, connecting, failed_conn, http_non200[6], early_eof;
	uint64_t closed_during, events, dup, old, misrouted, malformed, comments;
	uint64_t pub_sent, pub_ok, pub_err, pub_reconnects, bytes;
	uint64_t win_events;      /* events received inside the publish window */
	uint64_t lat_n, lat_max;
	uint64_t first_fail_errno;
	uint64_t retried;
	uint64_t pub_unanswered;  /* pipelined behind a "Connection: close" answer */
	uint64_t deliv_sent;      /* publishes x streams of their resource (window) */
	uint64_t deliv_recv;      /* events received on the right resource */
	uint64_t plat_n, plat_max;
} st;

static uint32_t *retry_q;          /* streams to reopen, FIFO */
static uint64_t *retry_at;
static size_t retry_head, retry_tail;

static int phase_publish;          /* 0 before, 1 publishing, 2 draining */
static uint64_t pub_t0, pub_t1;

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "sse-load: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned
hist_idx(uint64_t v)
{
	int msb, shift;

	if (v < (1u << HIST_SUB))
		return (unsigned)v;
	msb = 63 - __builtin_clzll(v);
	shift = msb - HIST_SUB + 1;
	return (unsigned)(shift * (1 << HIST_SUB) + (int)(v >> shift));
}

static uint64_t
hist_val(unsigned idx)
{
	unsigned shift = idx >> HIST_SUB, m = idx & ((1u << HIST_SUB) - 1);

	if (shift == 0)
		return m;
	return ((uint64_t)m << shift) + ((uint64_t)1 << (shift - 1));
}

static double
hist_pct_of(const uint64_t *h, uint64_t n, uint64_t max, double p)
{
	uint64_t want, acc = 0;

	if (n == 0)
		return -1;
	want = (uint64_t)(p / 100.0 * (double)n);
	if (want >= n)
		want = n - 1;
	for (unsigned i = 0; i < HIST_N; i++) {
		acc += h[i];
		if (acc > want)
			return (double)hist_val(i) / 1e6;
	}
	return (double)max / 1e6;
}

static double
hist_pct(double p)
{
	return hist_pct_of(hist, st.lat_n, st.lat_max, p);
}

static double
phist_pct(double p)
{
	return hist_pct_of(phist, st.plat_n, st.plat_max, p);
}

static void
buf_append(struct conn *c, const char *p, size_t n)
{
	if (c->blen + n > c->bcap) {
		uint32_t ncap = c->bcap ? c->bcap : 256;

		while (ncap < c->blen + n)
			ncap *= 2;
		c->buf = realloc(c->buf, ncap);
		if (c->buf == NULL)
			die("out of memory");
		c->bcap = ncap;
	}
	memcpy(c->buf + c->blen, p, n);
	c->blen += (uint32_t)n;
}

static void
ep_set(struct conn *c, uint32_t events, int op)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (epoll_ctl(ep, op, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	c->evmask_out = (events & EPOLLOUT) != 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->blen = 0;
	if (c->bcap > 4096) {
		free(c->buf);
		c->buf = NULL;
		c->bcap = 0;
	}
}

static int
conn_open(struct conn *c)
{
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* Defer the port choice to connect(): ports are then unique per
	 * 4-tuple, not per source address. */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (c->kind == K_PUB)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* publishers come from 127.0.0.1, the address the examples trust */
	src.sin_addr.s_addr = htonl(c->kind == K_PUB ? 0x7f000001u : 0x7f000002u + c->src);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
		close(fd);
		return -1;
	}
	dst.sin_port = htons((uint16_t)(c->kind == K_PUB && opt.pub_port ? opt.pub_port : opt.port));
	if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1)
		die("bad host %s", opt.host);
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	c->fd = fd;
	c->state = C_CONNECTING;
	c->blen = 0;
	c->chunked = 0;
	c->chunk_state = CH_SIZE;
	c->chunk_left = 0;
	c->has_data = 0;
	ep_set(c, EPOLLOUT, EPOLL_CTL_ADD);
	return 0;
}

/* ---- SSE ---------------------------------------------------------------- */

static uint64_t
parse_u64(const char **pp, const char *end, int *ok)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (p >= end || *p < '0' || *p > '9') {
		*ok = 0;
		return 0;
	}
	while (p < end && *p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	*pp = p;
	return v;
}

static int
expect(const char **pp, const char *end, const char *lit, size_t n)
{
	if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0)
		return 0;
	*pp += n;
	return 1;
}

static void
on_data(struct conn *c, const char *p, const char *end)
{
	int ok = 1;

	if (c->has_data)
		return;                  /* our payloads are one line */
	c->has_data = 1;
	c->ev_ok = 0;
	if (!expect(&p, end, "{\"s\":", 5))
		return;
	c->ev_seq = parse_u64(&p, end, &ok);
	if (!ok || !expect(&p, end, ",\"t\":", 5))
		return;
	c->ev_t = parse_u64(&p, end, &ok);
	if (!ok || !expect(&p, end, ",\"r\":", 5))
		return;
	c->ev_res = (uint32_t)parse_u64(&p, end, &ok);
	c->ev_ok = ok;
}

static void
seq_note(struct conn *c, uint64_t s)
{
	uint64_t off;

	if (c->win == NULL) {
		c->win = calloc(WIN_BITS / 64, sizeof(uint64_t));
		if (c->win == NULL)
			die("out of memory");
		c->base = 1;
	}
	if (s < c->base) {
		st.old++;
		return;
	}
	while (s - c->base >= WIN_BITS) {
		/* slide: anything unset at base is given up (counted lost at the end) */
		c->win[0] >>= 1;
		for (unsigned i = 0; i + 1 < WIN_BITS / 64; i++) {
			c->win[i] |= c->win[i + 1] << 63;
			c->win[i + 1] >>= 1;
		}
		c->base++;
	}
	off = s - c->base;
	if (c->win[off / 64] & (1ull << (off % 64))) {
		st.dup++;
		return;
	}
	c->win[off / 64] |= 1ull << (off % 64);
	c->unique++;
	/* advance base past the settled prefix, a word at a time when full */
	while (c->win[0] == ~0ull) {
		memmove(c->win, c->win + 1, (WIN_BITS / 64 - 1) * sizeof(uint64_t));
		c->win[WIN_BITS / 64 - 1] = 0;
		c->base += 64;
	}
}

static void
dispatch(struct conn *c)
{
	uint64_t lat;

	c->has_data = 0;
	if (!c->ev_ok) {
		st.malformed++;
		return;
	}
	st.events++;
	if (phase_publish == 1)
		st.win_events++;
	if (c->ev_res != c->res + opt.res_offset) {
		st.misrouted++;
		return;
	}
	resv[c->res].received++;
	st.deliv_recv++;
	lat = t_now > c->ev_t ? t_now - c->ev_t : 0;
	hist[hist_idx(lat)]++;
	st.lat_n++;
	if (lat > st.lat_max)
		st.lat_max = lat;
	seq_note(c, c->ev_seq);
}

static void
sse_line(struct conn *c, const char *p, const char *end)
{
	size_t n = (size_t)(end - p);

	if (n == 0) {
		if (c->has_data)
			dispatch(c);
		return;
	}
	if (p[0] == ':') {
		st.comments++;
		return;
	}
	if (n >= 5 && memcmp(p, "data:", 5) == 0) {
		p += 5;
		if (p < end && *p == ' ')
			p++;
		on_data(c, p, end);
		return;
	}
	if ((n >= 6 && memcmp(p, "event:", 6) == 0) || (n >= 3 && memcmp(p, "id:", 3) == 0) ||
	    (n >= 6 && memcmp(p, "retry:", 6) == 0) || memchr(p, ':', n) == NULL)
		return;                  /* known fields, or a bare field name */
	st.malformed++;
}

/* Split d[0..n) into lines (LF, CRLF, or a lone CR); keep a trailing
 * partial line in c->buf. */
static void
sse_feed(struct conn *c, char *d, size_t n)
{
	char *p = d, *end = d + n;

	for (;;) {
		char *lf = memchr(p, '\n', (size_t)(end - p)), *le, *cr;

		if (lf == NULL)
			break;
		le = lf;
		if (le > p && le[-1] == '\r')
			le--;
		/* a lone CR inside the line also ends a line */
		while ((cr = memchr(p, '\r', (size_t)(le - p))) != NULL) {
			sse_line(c, p, cr);
			p = cr + 1;
		}
		sse_line(c, p, le);
		p = lf + 1;
	}
	c->blen = 0;
	if (p < end)
		buf_append(c, p, (size_t)(end - p));
}

/* ---- HTTP ---------------------------------------------------------------- */

static int
hex(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Removes chunk framing from src, appending payload to dst (dst may be
 * src: the payload never overtakes the framing).  Returns bytes of payload,
 * or -1 on bad framing; sets *eof on the last chunk and *used to the bytes
 * of src consumed. */
static ssize_t
dechunk(struct conn *c, const char *src, size_t n, char *dst, int *eof, size_t *used)
{
	const char *p = src, *end = src + n;
	char *o = dst;

	*used = n;
	while (p < end) {
		switch (c->chunk_state) {
		case CH_SIZE:
			if (hex(*p) >= 0) {
				c->chunk_left = c->chunk_left * 16 + (uint32_t)hex(*p);
				p++;
			} else if (*p == '\r') {
				c->chunk_state = CH_SIZE_LF;
				p++;
			} else if (*p == ';') {
				c->chunk_state = CH_EXT;
				p++;
			} else
				return -1;
			break;
		case CH_EXT:
			if (*p++ == '\r')
				c->chunk_state = CH_SIZE_LF;
			break;
		case CH_SIZE_LF:
			if (*p++ != '\n')
				return -1;
			if (c->chunk_left == 0) {
				c->chunk_state = CH_END;
				*eof = 1;
				/* the last chunk's trailing CRLF, when it is here */
				if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
					p += 2;
				*used = (size_t)(p - src);
				return o - dst;
			}
			c->chunk_state = CH_DATA;
			break;
		case CH_DATA: {
			size_t k = (size_t)(end - p);

			if (k > c->chunk_left)
				k = c->chunk_left;
			memmove(o, p, k);
			o += k;
			p += k;
			c->chunk_left -= (uint32_t)k;
			if (c->chunk_left == 0)
				c->chunk_state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (*p++ != '\r')
				return -1;
			c->chunk_state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (*p++ != '\n')
				return -1;
			c->chunk_state = CH_SIZE;
			c->chunk_left = 0;
			break;
		case CH_END:
			*eof = 1;
			*used = (size_t)(p - src);
			return o - dst;
		}
	}
	return o - dst;
}

static int
header_has(const char *h, size_t n, const char *name, const char *val)
{
	size_t nl = strlen(name), vl = strlen(val);
	const char *p = h, *end = h + n;

	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));

		if (e == NULL)
			e = end;
		if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (v < e && *v == ' ')
				v++;
			if ((size_t)(e - v) >= vl && strncasecmp(v, val, vl) == 0)
				return 1;
		}
		p = e + 1;
	}
	return 0;
}

static int64_t
header_clen(const char *h, size_t n)
{
	const char *p = h, *end = h + n;

	while (p < end) {
		const char *e = memchr(p, '\n', (size_t)(end - p));

		if (e == NULL)
			e = end;
		if ((size_t)(e - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
			return strtoll(p + 15, NULL, 10);
		p = e + 1;
	}
	return -1;
}

static void sub_fail(struct conn *c, int status);
static void pub_done(struct conn *c);
static void pub_broken(struct conn *c);

/* Parses the response head in c->buf; returns bytes of head, 0 if
 * incomplete. */
static size_t
head_parse(struct conn *c)
{
	char *e;
	size_t hl;

	if (c->blen < 4)
		return 0;
	e = memmem(c->buf, c->blen, "\r\n\r\n", 4);
	if (e == NULL)
		return 0;
	hl = (size_t)(e - c->buf) + 4;
	c->status = (c->blen > 12 && memcmp(c->buf, "HTTP/1.", 7) == 0) ? atoi(c->buf + 9) : 0;
	c->chunked = (uint8_t)header_has(c->buf, hl, "transfer-encoding", "chunked");
	c->keepalive = !header_has(c->buf, hl, "connection", "close") &&
	    memcmp(c->buf, "HTTP/1.1", 8) == 0;
	c->clen = header_clen(c->buf, hl);
	c->chunk_state = CH_SIZE;
	c->chunk_left = 0;
	return hl;
}

static void
sub_body(struct conn *c, char *p, size_t n)
{
	size_t need = c->blen + n, used;
	ssize_t got;
	int eof = 0;

	if (c->blen == 0) {
		/* no partial line kept: parse the read buffer where it is */
		if (c->chunked) {
			got = dechunk(c, p, n, p, &eof, &used);
			if (got < 0) {
				st.malformed++;
				sub_fail(c, -2);
				return;
			}
		} else
			got = (ssize_t)n;
		sse_feed(c, p, (size_t)got);
		if (eof)
			sub_fail(c, -1);
		return;
	}
	if (need > dbuf_cap) {
		while (dbuf_cap < need)
			dbuf_cap *= 2;
		dbuf = realloc(dbuf, dbuf_cap);
		if (dbuf == NULL)
			die("out of memory");
	}
	memcpy(dbuf, c->buf, c->blen);
	if (c->chunked) {
		got = dechunk(c, p, n, dbuf + c->blen, &eof, &used);
		if (got < 0) {
			st.malformed++;
			sub_fail(c, -2);
			return;
		}
	} else {
		memcpy(dbuf + c->blen, p, n);
		got = (ssize_t)n;
	}
	sse_feed(c, dbuf, c->blen + (size_t)got);
	if (eof)
		sub_fail(c, -1);
}

static void
sub_input(struct conn *c, char *p, size_t n)
{
	if (c->state == C_HEAD) {
		size_t hl, old = c->blen;

		buf_append(c, p, n);
		hl = head_parse(c);
		if (hl == 0)
			return;
		if (c->status != 200) {
			sub_fail(c, c->status);
			return;
		}
		c->state = C_BODY;
		c->established = 1;
		st.established++;
		st.connecting--;
		resv[c->res].nstreams++;
		/* body bytes after the head, from the caller's buffer */
		p += hl - old;
		n -= hl - old;
		c->blen = 0;
		if (n == 0)
			return;
	}
	sub_body(c, p, n);
}

static void
sub_fail(struct conn *c, int status)
{
	if (c->established) {
		st.closed_during++;
		resv[c->res].nstreams--;
		c->established = 0;
	} else if ((status == 429 || status == 503) && c->tries < opt.retries) {
		/* what the README's page script does: come back a little later */
		c->tries++;
		st.retried++;
		retry_q[retry_tail % opt.streams] = (uint32_t)(c - conns);
		retry_at[retry_tail % opt.streams] = t_now + 100000000ull;
		retry_tail++;
	} else {
		st.connecting--;
		if (status == 429)
			st.http_non200[0]++;
		else if (status == 503)
			st.http_non200[1]++;
		else if (status == -1)
			st.early_eof++;
		else if (status == -3)
			st.failed_conn++;
		else
			st.http_non200[2]++;
	}
	c->state = C_DONE;
	conn_close(c);
}

/* ---- publisher ------------------------------------------------------------ */

static void
out_reserve(struct conn *c, size_t n)
{
	if (c->out_len + n <= c->out_cap)
		return;
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + n > c->out_cap) {
		uint32_t ncap = c->out_cap ? c->out_cap : 4096;

		while (ncap < c->out_len + n)
			ncap *= 2;
		c->out = realloc(c->out, ncap);
		if (c->out == NULL)
			die("out of memory");
		c->out_cap = ncap;
	}
}

/* Appends one POST for resource r to c's output and to its FIFO of
 * requests awaiting an answer. */
static void
pub_request(struct conn *c, uint32_t r, uint64_t seq, uint64_t t)
{
	char body[4096], path[256];
	int bl, hl;
	unsigned pad;
	struct pubreq *q;

	bl = snprintf(body, sizeof(body), "{\"s\":%" PRIu64 ",\"t\":%" PRIu64 ",\"r\":%u,\"p\":\"",
	    seq, t, r + opt.res_offset);
	pad = opt.payload > (unsigned)bl + 2 ? opt.payload - (unsigned)bl - 2 : 0;
	if (pad > sizeof(body) - (size_t)bl - 3)
		pad = (unsigned)(sizeof(body) - (size_t)bl - 3);
	memset(body + bl, 'x', pad);
	bl += (int)pad;
	body[bl++] = '"';
	body[bl++] = '}';
	snprintf(path, sizeof(path), opt.pub_path, r + opt.res_offset);
	out_reserve(c, 512 + (size_t)bl);
	hl = snprintf(c->out + c->out_len, 512,
	    "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %d\r\n\r\n", path, opt.host, bl);
	if (hl >= 512)
		die("request head too large");
	memcpy(c->out + c->out_len + hl, body, (size_t)bl);
	c->out_len += (uint32_t)(hl + bl);
	q = &c->fq[(c->fq_head + c->nflight) % opt.pipeline];
	q->t_sent = t_now;
	q->res = r;
	q->fanout = resv[r].nstreams;
	c->nflight++;
	st.deliv_sent += q->fanout;
}

static void pub_broken(struct conn *c);

static void
pub_write(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (w < 0) {
			if (errno == EAGAIN) {
				if (!c->evmask_out)
					ep_set(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
				return;
			}
			pub_broken(c);
			return;
		}
		c->out_off += (uint32_t)w;
	}
	c->out_off = c->out_len = 0;
	if (c->evmask_out)
		ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
}

/* The requests still in c's FIFO will get no answer: counted as errors
 * (broken connection) or as unanswered (the server said it closes). */
static void
pub_forget(struct conn *c, uint64_t *counter)
{
	while (c->nflight > 0) {
		struct pubreq *q = &c->fq[c->fq_head];

		st.deliv_sent -= q->fanout;
		(*counter)++;
		c->fq_head = (c->fq_head + 1) % opt.pipeline;
		c->nflight--;
	}
	c->fq_head = 0;
	c->out_off = c->out_len = 0;
}

static void
pub_done(struct conn *c)
{
	struct pubreq *q = &c->fq[c->fq_head];
	uint64_t lat = t_now > q->t_sent ? t_now - q->t_sent : 0;

	c->fq_head = (c->fq_head + 1) % opt.pipeline;
	c->nflight--;
	phist[hist_idx(lat)]++;
	st.plat_n++;
	if (lat > st.plat_max)
		st.plat_max = lat;
	if (c->status >= 200 && c->status < 300) {
		st.pub_ok++;
		resv[q->res].ok++;
	} else {
		st.pub_err++;
		st.deliv_sent -= q->fanout;
		if (st.pub_err <= 3)
			fprintf(stderr, "sse-load: publish answered %d\n", c->status);
	}
	c->state = C_HEAD;
	if (!c->keepalive) {
		/* the server processes nothing pipelined behind this answer */
		pub_forget(c, &st.pub_unanswered);
		conn_close(c);
		c->state = C_IDLE;
	}
}

static void
pub_broken(struct conn *c)
{
	pub_forget(c, &st.pub_err);
	st.pub_reconnects++;
	if (c->fd >= 0)
		conn_close(c);
	c->state = C_IDLE;
}

/* Parses every complete answer in what arrived (pipelined answers come
 * back to back, in request order). */
static void
pub_input(struct conn *c, char *p, size_t n)
{
	size_t off = 0;

	if (c->nflight == 0) {
		pub_broken(c);           /* unsolicited bytes */
		return;
	}
	buf_append(c, p, n);
	while (c->fd >= 0 && c->nflight > 0 && off < c->blen) {
		if (c->state != C_BODY) {
			char *e = memmem(c->buf + off, c->blen - off, "\r\n\r\n", 4);
			size_t hl;

			if (e == NULL)
				break;
			/* head_parse works on c->buf: shift the consumed part out first */
			if (off > 0) {
				memmove(c->buf, c->buf + off, c->blen - off);
				c->blen -= (uint32_t)off;
				off = 0;
			}
			hl = head_parse(c);
			off = hl;
			c->state = C_BODY;
		}
		if (c->chunked) {
			size_t used;
			int eof = 0;

			if (dechunk(c, c->buf + off, c->blen - off, dbuf, &eof, &used) < 0) {
				pub_broken(c);
				return;
			}
			off += used;
			if (!eof)
				break;
			pub_done(c);
		} else if (c->clen >= 0) {
			if ((int64_t)(c->blen - off) < c->clen) {
				/* wait for the rest of the body */
				if (off > 0) {
					memmove(c->buf, c->buf + off, c->blen - off);
					c->blen -= (uint32_t)off;
				}
				return;
			}
			off += (size_t)c->clen;
			pub_done(c);
		} else
			break;               /* close-delimited: ends with EOF */
	}
	if (c->fd < 0)
		return;
	if (off >= c->blen)
		c->blen = 0;
	else if (off > 0) {
		memmove(c->buf, c->buf + off, c->blen - off);
		c->blen -= (uint32_t)off;
	}
}

/* ---- loop ----------------------------------------------------------------- */

static uint64_t pub_issued;        /* publishes scheduled so far */
static unsigned rr;                /* next resource */
static unsigned pub_rr;            /* publisher connection served first */

static int
res_blocked(uint32_t r)
{
	struct res *x = &resv[r];

	if (opt.max_ahead == 0 || x->nstreams == 0)
		return 0;
	return x->sent * x->nstreams > x->received + (uint64_t)opt.max_ahead * x->nstreams;
}

/* --window: no publish while this many deliveries (publishes x streams of
 * their resource) are still on their way over all streams. */
static int
window_blocked(void)
{
	return opt.window && st.deliv_sent > st.deliv_recv &&
	    st.deliv_sent - st.deliv_recv >= opt.window;
}

/* Hands out due publishes one per connection in turn (so the window or
 * the rate is shared evenly), up to --pipeline in flight on each, then
 * writes each connection's new requests with one write. */
static void
pump(void)
{
	unsigned np = opt.pub_conns, added;
	uint64_t due;

	if (phase_publish != 1)
		return;
	if (t_now >= pub_t1) {
		phase_publish = 2;
		return;
	}
	if (opt.rate > 0)
		due = (uint64_t)((double)(t_now - pub_t0) * opt.rate / 1e9) + 1;
	else
		due = UINT64_MAX;
	if (opt.count && due > opt.count)
		due = opt.count;
	for (unsigned i = 0; i < np; i++) {
		struct conn *c = &conns[opt.streams + i];

		if (c->fd < 0 && c->state != C_CONNECTING && conn_open(c) < 0)
			die("publisher connect: %s", strerror(errno));
	}
	do {
		added = 0;
		for (unsigned k = 0; k < np && pub_issued < due; k++) {
			struct conn *c = &conns[opt.streams + (pub_rr + k) % np];
			uint32_t r = rr;
			uint64_t t;

			if (c->fd < 0 || c->state == C_CONNECTING || c->nflight >= opt.pipeline)
				continue;
			if (res_blocked(r) || window_blocked())
				goto write;
			t = opt.rate > 0 ? pub_t0 + (uint64_t)((double)pub_issued * 1e9 / opt.rate) : t_now;
			rr = (rr + 1) % opt.resources;
			resv[r].sent++;
			pub_request(c, r, ++resv[r].next_seq, t);
			pub_issued++;
			st.pub_sent++;
			added++;
		}
		pub_rr = (pub_rr + 1) % np;
	} while (added > 0 && pub_issued < due);
write:
	for (unsigned i = 0; i < np; i++) {
		struct conn *c = &conns[opt.streams + i];

		if (c->fd >= 0 && c->state != C_CONNECTING && c->out_len > c->out_off && !c->evmask_out)
			pub_write(c);
	}
}

static void
on_event(struct conn *c, uint32_t events)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			if (st.first_fail_errno == 0)
				st.first_fail_errno = (uint64_t)err;
			if (c->kind == K_SUB)
				sub_fail(c, -3);
			else
				pub_broken(c);
			return;
		}
		if (c->kind == K_SUB) {
			char req[512], path[256];
			int n;

			snprintf(path, sizeof(path), opt.sub_path, c->res + opt.res_offset);
			n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n"
			    "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n", path, opt.host);
			if (write(c->fd, req, (size_t)n) != n) {
				sub_fail(c, -3);
				return;
			}
			c->state = C_HEAD;
			ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
		} else {
			c->state = C_IDLE;
			ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
		}
		return;
	}
	if (c->kind == K_PUB && (events & EPOLLOUT)) {
		pub_write(c);
		if (c->fd < 0)
			return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (int rounds = 0; rounds < 4; rounds++) {
			ssize_t n = read(c->fd, rbuf, RBUF_SIZE);

			if (n < 0) {
				if (errno == EAGAIN)
					return;
				n = 0;
			}
			if (n == 0) {
				if (c->kind == K_SUB)
					sub_fail(c, -1);
				else
					pub_broken(c);
				return;
			}
			st.bytes += (uint64_t)n;
			if (c->kind == K_SUB)
				sub_input(c, rbuf, (size_t)n);
			else
				pub_input(c, rbuf, (size_t)n);
			if (c->fd < 0 || n < RBUF_SIZE)
				return;
		}
	}
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: sse-load [options]\n"
	    "  --host A --port N            server (127.0.0.1:8080)\n"
	    "  --pub-port N                 publish to another port (cross-server runs)\n"
	    "  --retries N                  reopen a stream refused with 429/503 up to N times, 100 ms later\n"
	    "  --count N                    publish at most N messages\n"
	    "  --res-offset N               first resource index (several instances, disjoint resources)\n"
	    "  --sub-path FMT --pub-path FMT  printf paths with %%u = resource (/sse/r%%u, /publish/r%%u)\n"
	    "  --streams N --resources N    subscribers and resources (1000, 10)\n"
	    "  --src-addrs N                client source addresses 127.0.0.2.. (4)\n"
	    "  --inflight N                 streams connecting at once (256)\n"
	    "  --rate R                     messages/s over all resources, 0 = max (100)\n"
	    "  --max-ahead K                with --rate 0: at most K undelivered messages per stream\n"
	    "  --duration S --drain S       publish time, wait for stragglers (10, 3)\n"
	    "  --pub-conns N --payload B    keep-alive publishers, payload bytes (4, 128)\n"
	    "  --pipeline P                 at most P requests in flight on each publisher (1)\n"
	    "  --window W                   publish only while < W deliveries (publishes x streams)\n"
	    "                               are outstanding over all streams (0 = no limit)\n"
	    "  --settle S                   pause between all-connected and publishing (0.5)\n"
	    "  --hold                       print {\"ready\":..} and wait for a stdin line first\n"
	    "  --label S                    copied into the result\n");
	exit(2);
}

static void
parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", 1, 0, 'H' }, { "port", 1, 0, 'P' }, { "sub-path", 1, 0, 's' },
		{ "pub-path", 1, 0, 'p' }, { "streams", 1, 0, 'n' }, { "resources", 1, 0, 'r' },
		{ "src-addrs", 1, 0, 'a' }, { "inflight", 1, 0, 'i' }, { "rate", 1, 0, 'R' },
		{ "max-ahead", 1, 0, 'k' }, { "duration", 1, 0, 'd' }, { "drain", 1, 0, 'D' },
		{ "pub-conns", 1, 0, 'c' }, { "payload", 1, 0, 'b' }, { "settle", 1, 0, 'S' },
		{ "hold", 0, 0, 'h' }, { "label", 1, 0, 'l' }, { "connect-timeout", 1, 0, 'T' },
		{ "quiet", 0, 0, 'q' }, { "pub-port", 1, 0, 'o' }, { "res-offset", 1, 0, 'O' }, { "count", 1, 0, 'C' }, { "retries", 1, 0, 'y' },
		{ "pipeline", 1, 0, 'L' }, { "window", 1, 0, 'W' }, { 0, 0, 0, 0 }
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'H': opt.host = optarg; break;
		case 'P': opt.port = atoi(optarg); break;
		case 's': opt.sub_path = optarg; break;
		case 'p': opt.pub_path = optarg; break;
		case 'n': opt.streams = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': opt.resources = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'a': opt.src_addrs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'i': opt.inflight = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'R': opt.rate = atof(optarg); break;
		case 'k': opt.max_ahead = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': opt.duration = atof(optarg); break;
		case 'D': opt.drain = atof(optarg); break;
		case 'c': opt.pub_conns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'b': opt.payload = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': opt.settle = atof(optarg); break;
		case 'h': opt.hold = 1; break;
		case 'l': opt.label = optarg; break;
		case 'T': opt.connect_timeout = atof(optarg); break;
		case 'q': opt.quiet = 1; break;
		case 'o': opt.pub_port = atoi(optarg); break;
		case 'y': opt.retries = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'C': opt.count = strtoull(optarg, NULL, 10); break;
		case 'L': opt.pipeline = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'W': opt.window = strtoull(optarg, NULL, 10); break;
		case 'O': opt.res_offset = (unsigned)strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (opt.resources == 0 || opt.src_addrs == 0 || opt.src_addrs > 250 || opt.inflight == 0 ||
	    opt.pub_conns == 0 || opt.payload < 64 || opt.payload > 3500 || opt.pipeline == 0 ||
	    opt.pipeline > 4096)
		usage();
}

static void
raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)opt.streams + opt.pub_conns + 64;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want)
		rl.rlim_max = want;      /* works as root (CAP_SYS_RESOURCE) */
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		fprintf(stderr, "sse-load: RLIMIT_NOFILE only %llu\n", (unsigned long long)rl.rlim_max);
	}
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[1024];
	struct itimerspec its = { .it_interval = { 0, 1000000 }, .it_value = { 0, 1000000 } };
	struct conn tick = { .fd = -1 }, in = { .fd = 0 };
	uint64_t t_start, t_conn_done = 0, t_settle_end = 0, t_last_event = 0, last_events = 0;
	uint64_t expected = 0, lost = 0, open_end = 0, last_progress = 0;
	unsigned next_open = 0, total;
	double cpu0, cpu_pub0 = 0, cpu_pub1 = 0;
	int waiting_stdin = 0, holding = 0;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	total = opt.streams + opt.pub_conns;
	conns = calloc(total, sizeof(*conns));
	resv = calloc(opt.resources, sizeof(*resv));
	rbuf = malloc(RBUF_SIZE);
	retry_q = calloc(opt.streams ? opt.streams : 1, sizeof(*retry_q));
	retry_at = calloc(opt.streams ? opt.streams : 1, sizeof(*retry_at));
	dbuf_cap = RBUF_SIZE * 2;
	dbuf = malloc(dbuf_cap);
	if (conns == NULL || resv == NULL || rbuf == NULL || dbuf == NULL)
		die("out of memory");
	for (unsigned i = 0; i < total; i++) {
		conns[i].fd = -1;
		conns[i].kind = i < opt.streams ? K_SUB : K_PUB;
		conns[i].res = i < opt.streams ? i % opt.resources : 0;
		conns[i].src = i % opt.src_addrs;
		if (i >= opt.streams && (conns[i].fq = calloc(opt.pipeline, sizeof(struct pubreq))) == NULL)
			die("out of memory");
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	tick.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ep < 0 || tick.fd < 0)
		die("epoll/timerfd: %s", strerror(errno));
	timerfd_settime(tick.fd, 0, &its, NULL);
	ep_set(&tick, EPOLLIN, EPOLL_CTL_ADD);
	cpu0 = cpu_seconds();
	t_start = t_now = now_ns();

	for (;;) {
		int n;

		/* reopen refused streams whose pause is over (they still count as
		 * connecting, so the connect phase waits for them) */
		while (retry_head < retry_tail && retry_at[retry_head % opt.streams] <= t_now) {
			struct conn *c = &conns[retry_q[retry_head % opt.streams]];

			retry_head++;
			if (conn_open(c) < 0)
				sub_fail(c, -3);
		}
		/* open streams, at most opt.inflight waiting for their head */
		while (next_open < opt.streams && st.connecting < opt.inflight) {
			struct conn *c = &conns[next_open++];

			st.connecting++;
			if (conn_open(c) < 0) {
				if (st.first_fail_errno == 0)
					st.first_fail_errno = (uint64_t)errno;
				sub_fail(c, -3);
			}
		}
		if (!t_conn_done && next_open == opt.streams && st.connecting == 0) {
			t_conn_done = t_now;
			fprintf(stderr, "sse-load: %" PRIu64 " of %u streams up in %.2f s\n",
			    st.established, opt.streams, (double)(t_conn_done - t_start) / 1e9);
			/* publishers connect now, so the first publish does not pay it */
			for (unsigned i = 0; i < opt.pub_conns; i++)
				if (conn_open(&conns[opt.streams + i]) < 0)
					die("publisher connect: %s", strerror(errno));
			if (opt.hold) {
				printf("{\"ready\":true,\"established\":%" PRIu64 ",\"requested\":%u}\n",
				    st.established, opt.streams);
				fflush(stdout);
				fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
				ep_set(&in, EPOLLIN, EPOLL_CTL_ADD);
				waiting_stdin = 1;
				holding = 1;
			} else
				t_settle_end = t_now + (uint64_t)(opt.settle * 1e9);
		}
		if (!t_conn_done && (double)(t_now - t_start) / 1e9 > opt.connect_timeout)
			die("connect phase timed out: %" PRIu64 " up, %" PRIu64 " connecting",
			    st.established, st.connecting);
		if (t_settle_end && !holding && phase_publish == 0 && t_now >= t_settle_end) {
			phase_publish = 1;
			pub_t0 = t_now;
			pub_t1 = t_now + (uint64_t)(opt.duration * 1e9);
			cpu_pub0 = cpu_seconds();
			if (opt.duration <= 0)
				phase_publish = 2;
		}
		pump();
		if (phase_publish == 2) {
			int busy = 0;

			if (!cpu_pub1) {
				cpu_pub1 = cpu_seconds();
				t_last_event = t_now;
				last_events = st.events;
			}
			for (unsigned i = 0; i < opt.pub_conns; i++)
				busy |= conns[opt.streams + i].nflight > 0;
			expected = 0;
			for (unsigned r = 0; r < opt.resources; r++)
				expected += resv[r].ok * resv[r].nstreams;
			if (st.events != last_events) {
				last_events = st.events;
				t_last_event = t_now;
			}
			if (!busy && (st.events >= expected || t_now - t_last_event > 1000000000ull ||
			    (double)(t_now - pub_t1) / 1e9 > opt.drain))
				break;
			if ((double)(t_now - pub_t1) / 1e9 > opt.drain + 5)
				break;
		}
		if (!opt.quiet && t_now - last_progress > 2000000000ull) {
			last_progress = t_now;
			fprintf(stderr, "sse-load: up %" PRIu64 " connecting %" PRIu64 " events %" PRIu64
			    " pub %" PRIu64 "/%" PRIu64 "\n", st.established, st.connecting, st.events,
			    st.pub_ok, st.pub_sent);
		}

		n = epoll_wait(ep, evs, 1024, 1000);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		t_now = now_ns();
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c == &tick) {
				uint64_t x;

				if (read(tick.fd, &x, sizeof(x)) < 0) {
					/* spurious wake-up */
				}
				continue;
			}
			if (c == &in) {
				char b[256];
				ssize_t r = read(0, b, sizeof(b));

				if (r < 0 && errno == EAGAIN)
					continue;
				if (waiting_stdin) {
					waiting_stdin = 0;
					holding = 0;
					epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
					t_settle_end = t_now;
				}
				continue;
			}
			if (c->fd >= 0)
				on_event(c, evs[i].events);
		}
	}

	for (unsigned i = 0; i < opt.streams; i++) {
		struct conn *c = &conns[i];

		if (c->established) {
			open_end++;
			if (c->unique < resv[c->res].ok)
				lost += resv[c->res].ok - c->unique;
		}
	}
	{
		double pub_wall = (double)((pub_t1 < t_now ? pub_t1 : t_now) - pub_t0) / 1e9;
		double cpu_pub = cpu_pub1 - cpu_pub0;

		printf("{\"label\":\"%s\",\"streams\":%u,\"resources\":%u,\"established\":%" PRIu64
		    ",\"open_at_end\":%" PRIu64 ",\"closed_during\":%" PRIu64
		    ",\"refused_429\":%" PRIu64 ",\"refused_503\":%" PRIu64 ",\"refused_other\":%" PRIu64
		    ",\"retried\":%" PRIu64 ",\"early_eof\":%" PRIu64 ",\"connect_errors\":%" PRIu64 ",\"first_errno\":\"%s\""
		    ",\"connect_s\":%.3f,\"rate\":%.1f,\"duration_s\":%.3f"
		    ",\"pub_sent\":%" PRIu64 ",\"pub_ok\":%" PRIu64 ",\"pub_err\":%" PRIu64
		    ",\"pub_reconnects\":%" PRIu64 ",\"pub_unanswered\":%" PRIu64 ",\"publish_per_s\":%.1f"
		    ",\"pub_lat_p50_ms\":%.3f,\"pub_lat_p99_ms\":%.3f,\"pipeline\":%u,\"window\":%" PRIu64
		    ",\"events\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"lost\":%" PRIu64
		    ",\"dup\":%" PRIu64 ",\"old\":%" PRIu64 ",\"misrouted\":%" PRIu64
		    ",\"malformed\":%" PRIu64 ",\"comments\":%" PRIu64
		    ",\"delivered_per_s\":%.1f,\"lat_p50_ms\":%.3f,\"lat_p90_ms\":%.3f"
		    ",\"lat_p99_ms\":%.3f,\"lat_p999_ms\":%.3f,\"lat_max_ms\":%.3f"
		    ",\"tool_cpu_s\":%.3f,\"tool_cpu_publish_pct\":%.1f,\"bytes\":%" PRIu64 "}\n",
		    opt.label ? opt.label : "", opt.streams, opt.resources, st.established, open_end,
		    st.closed_during, st.http_non200[0], st.http_non200[1], st.http_non200[2],
		    st.retried, st.early_eof, st.failed_conn,
		    st.first_fail_errno ? strerror((int)st.first_fail_errno) : "",
		    (double)(t_conn_done - t_start) / 1e9, opt.rate, pub_wall,
		    st.pub_sent, st.pub_ok, st.pub_err, st.pub_reconnects, st.pub_unanswered,
		    pub_wall > 0 ? (double)st.pub_ok / pub_wall : 0.0,
		    phist_pct(50), phist_pct(99), opt.pipeline, opt.window,
		    st.events, expected, lost, st.dup, st.old, st.misrouted, st.malformed, st.comments,
		    pub_wall > 0 ? (double)st.win_events / pub_wall : 0.0,
		    hist_pct(50), hist_pct(90), hist_pct(99), hist_pct(99.9), (double)st.lat_max / 1e6,
		    cpu_seconds() - cpu0, pub_wall > 0 ? 100.0 * cpu_pub / pub_wall : 0.0, st.bytes);
	}
	return 0;
}
