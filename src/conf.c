/* conf — configuration file and environment; see conf.h. */
#include "conf.h"

#include <confuse.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "eventid.h"
#include "fcgi_record.h"
#include "log.h"
#include "route.h"
#include "sse.h"

#define FILE_MAX        (1024 * 1024)   /* a config file is a few KB */
#define ECHO_MAX        40              /* bytes of a bad value quoted back */
#define STR_MAX         4096            /* longest string value */
#define ROUTE_MAX       256             /* longest prefix or path */
#define SECT_MAX        8               /* brace nesting tracked by the scanner */
/* SSE_CHANNEL_NS of redis.h (the lower module cannot include the upper one; a unit
 * test holds the two equal) */
#define RESERVED_CHANNEL_NS "__sse-fcgi__:"

#ifdef __linux__
#define DEFAULT_EVENT_LOOP "epoll"
#else
#define DEFAULT_EVENT_LOOP "select"
#endif

/* ---- the keys ---------------------------------------------------------- */

enum key_type { KT_STR, KT_INT, KT_BOOL };

/* What a string value must look like (checked on the final value). */
enum str_rule {
	SR_ANY,             /* non-empty */
	SR_SECRET,          /* non-empty, never echoed */
	SR_EVENT_LOOP,
	SR_PREFIX,          /* '/' ... '/', path characters */
	SR_PATH,            /* '/' ..., path characters */
	SR_TOKEN,           /* 16..4096 visible ASCII, never echoed */
	SR_HEADER,          /* visible ASCII: it goes into a response header */
	SR_LOG_LEVEL,
	SR_HOST,            /* visible ASCII, at most 255 */
	SR_SOCKET,          /* fits sockaddr_un.sun_path */
	SR_CHANNEL,         /* visible ASCII, no glob characters */
	SR_JWT_SECRET,      /* 32..4096 bytes, never echoed */
	SR_COOKIE           /* an RFC 6265 cookie name */
};

struct key {
	const char *sect;           /* NULL (top level), "redis" or "jwt" */
	const char *name;
	enum key_type type;
	size_t off;                 /* of the field in struct conf */
	long min, max;              /* KT_INT */
	enum str_rule rule;         /* KT_STR */
};

#define T_STR(f, r)     { NULL, #f, KT_STR, offsetof(struct conf, f), 0, 0, r }
#define T_INT(f, lo, hi) { NULL, #f, KT_INT, offsetof(struct conf, f), lo, hi, SR_ANY }
#define T_BOOL(f)       { NULL, #f, KT_BOOL, offsetof(struct conf, f), 0, 1, SR_ANY }
#define R_STR(f, r)     { "redis", #f, KT_STR, offsetof(struct conf, redis.f), 0, 0, r }
#define R_INT(f, lo, hi) { "redis", #f, KT_INT, offsetof(struct conf, redis.f), lo, hi, SR_ANY }
#define J_STR(f, r)     { "jwt", #f, KT_STR, offsetof(struct conf, jwt.f), 0, 0, r }
#define J_INT(f, lo, hi) { "jwt", #f, KT_INT, offsetof(struct conf, jwt.f), lo, hi, SR_ANY }
#define J_BOOL(f)       { "jwt", #f, KT_BOOL, offsetof(struct conf, jwt.f), 0, 1, SR_ANY }

/* The one list of keys: libconfuse's option tables are built from it, and
 * values are copied and checked through it. Top-level keys first. */
static const struct key keys[] = {
	T_STR(event_loop, SR_EVENT_LOOP),
	T_STR(subscribe_prefix, SR_PREFIX),
	T_STR(publish_prefix, SR_PREFIX),
	T_STR(stats_path, SR_PATH),
	T_INT(max_streams, 1, 1048576),
	T_INT(max_streams_per_resource, 1, 1048576),
	T_INT(heartbeat, 1, 3600),
	T_INT(retry, 1, 3600000),
	T_INT(max_message_bytes, 1, 16 * 1024 * 1024),
	T_INT(stream_queue_bytes, 4096, 1024 * 1024 * 1024),
	T_INT(stream_queue_soft_bytes, 0, 1024 * 1024 * 1024),
	T_INT(stream_queue_soft_seconds, 1, 3600),
	T_INT(history_size, 0, 100000),
	T_INT(history_ttl, 1, 2592000),
	T_INT(history_bytes, 0, 1024 * 1024 * 1024),
	T_STR(publish_token, SR_TOKEN),
	T_STR(cors_origin, SR_HEADER),
	T_STR(log_file, SR_ANY),
	T_STR(log_level, SR_LOG_LEVEL),
	T_BOOL(syslog),
	R_STR(host, SR_HOST),
	R_INT(port, 1, 65535),
	R_STR(password, SR_SECRET),
	R_INT(db, 0, INT_MAX),
	R_STR(socket, SR_SOCKET),
	R_STR(channel_prefix, SR_CHANNEL),
	R_INT(connect_timeout_ms, 1, 60000),
	R_INT(publish_timeout_ms, 1, 60000),
	R_INT(reconnect_min_ms, 1, 600000),
	R_INT(reconnect_max_ms, 1, 600000),
	R_INT(probe_interval, 1, 3600),
	J_BOOL(subscribe),
	J_STR(secret, SR_JWT_SECRET),
	J_STR(previous_secret, SR_JWT_SECRET),
	J_STR(public_key_file, SR_ANY),
	J_STR(cookie, SR_COOKIE),
	J_STR(issuer, SR_ANY),
	J_STR(audience, SR_ANY),
	J_INT(leeway, 0, 3600),
};

#undef T_STR
#undef T_INT
#undef T_BOOL
#undef R_STR
#undef R_INT
#undef J_STR
#undef J_INT
#undef J_BOOL

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char **
str_field(struct conf *c, const struct key *k)
{
	return (char **)(void *)((char *)c + k->off);
}

static int *
int_field(struct conf *c, const struct key *k)
{
	return (int *)(void *)((char *)c + k->off);
}

static int
find_key(const char *sect, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if ((sect == NULL) != (keys[i].sect == NULL))
			continue;
		if (sect != NULL && strcmp(sect, keys[i].sect) != 0)
			continue;
		if (strcmp(name, keys[i].name) == 0)
			return (int)i;
	}
	return -1;
}

/* "heartbeat" or "redis.port" */
static void
key_label(char *buf, size_t len, const char *sect, const char *name)
{
	if (sect != NULL)
		snprintf(buf, len, "%s.%s", sect, name);
	else
		snprintf(buf, len, "%s", name);
}

/* ---- errors ------------------------------------------------------------ */

/* One load in progress. libconfuse callbacks get no user pointer, and its
 * lexer is global anyway, so a file-scope pointer costs nothing more. */
struct load {
	const char *file;
	char *err;
	size_t errlen;
	int failed;
	int last_line;              /* last line with something besides comments */
	cfg_t *root;
	int line[NKEYS];            /* where each key was set, 0 = not in the file */
};

static struct load *cur;

/* Record the first error only: later ones are usually its echoes. line 0
 * leaves LINE out, label NULL leaves KEY out. */
static void __attribute__((format(printf, 4, 5)))
load_error(struct load *ld, int line, const char *label, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;
	int r;

	if (ld->failed)
		return;
	ld->failed = 1;
	if (ld->errlen == 0)
		return;
	if (line > 0)
		r = snprintf(ld->err, ld->errlen, "%s:%d: ", ld->file, line);
	else
		r = snprintf(ld->err, ld->errlen, "%s: ", ld->file);
	if (r > 0)
		n = (size_t)r < ld->errlen ? (size_t)r : ld->errlen - 1;
	if (label != NULL && n < ld->errlen) {
		r = snprintf(ld->err + n, ld->errlen - n, "%s: ", label);
		if (r > 0)
			n += (size_t)r < ld->errlen - n ? (size_t)r : ld->errlen - n - 1;
	}
	va_start(ap, fmt);
	vsnprintf(ld->err + n, ld->errlen - n, fmt, ap);
	va_end(ap);
	/* one line whatever the file held: a quoted "key" can span lines, and
	 * libconfuse quotes such text back in its own messages */
	for (char *p = ld->err; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* A bad value, quoted back on one line: cut, control characters as '?'. */
static const char *
echo(char *buf, size_t len, const char *v)
{
	size_t i, n = strlen(v);
	size_t max = len - 5;           /* quotes, "...", NUL */
	size_t o = 0;

	buf[o++] = '"';
	for (i = 0; i < n && i < max && i < ECHO_MAX; i++) {
		unsigned char ch = (unsigned char)v[i];
		buf[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	buf[o++] = '"';
	if (i < n) {
		o--;
		memcpy(buf + o, "...\"", 4);
		o += 4;
	}
	buf[o] = '\0';
	return buf;
}

/* libconfuse's messages, reworded to "KEY: what". Compared by format string,
 * which is stable (and untranslated: we never call setlocale). */
static const struct {
	const char *fmt;
	const char *what;
} cfg_msgs[] = {
	{ "no such option '%s'", "unknown key" },
	{ "missing equal sign after option '%s'", "expected '=' after the key" },
	{ "attempt to append to non-list option '%s'", "'+=' is not allowed here, use '='" },
	{ "missing opening brace for section '%s'", "is a section: expected '{'" },
	{ "invalid integer value for option '%s'", "must be an integer" },
	{ "integer value for option '%s' is out of range", "is out of range" },
	{ "invalid boolean value for option '%s'", "must be true or false" },
};

static void
on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char label[128], msg[256];
	const char *sect;
	size_t i;
	int line;

	if (cur == NULL || cur->failed)
		return;
	sect = cfg != cur->root ? cfg->name : NULL;
	for (i = 0; i < sizeof(cfg_msgs) / sizeof(cfg_msgs[0]); i++) {
		if (strcmp(fmt, cfg_msgs[i].fmt) == 0) {
			key_label(label, sizeof(label), sect, va_arg(ap, const char *));
			load_error(cur, cfg->line, label, "%s", cfg_msgs[i].what);
			return;
		}
	}
	/* At EOF libconfuse's line is past the end; the statement left unfinished
	 * is on the last line that has anything. */
	line = strcmp(fmt, "premature end of file") == 0 ? cur->last_line : cfg->line;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	load_error(cur, line, sect, "syntax error: %s", msg);
}

/* ---- libconfuse callbacks ---------------------------------------------- */

static void
label_of(char *buf, size_t len, cfg_t *cfg, cfg_opt_t *opt)
{
	key_label(buf, len, cfg != cur->root ? cfg->name : NULL, opt->name);
}

/* Decimal only: libconfuse's strtol(.., 0) reads "010" as 8 and "0x10" as 16. */
static int
parse_int(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char label[128], q[64];
	const char *p = value;
	char *end;
	long v;

	if (p != NULL && (*p == '-' || *p == '+'))
		p++;
	if (p == NULL || *p < '0' || *p > '9')
		goto bad;
	errno = 0;
	v = strtol(value, &end, 10);
	if (*end != '\0')
		goto bad;
	if (errno == ERANGE)
		v = *value == '-' ? LONG_MIN : LONG_MAX;    /* range check says why */
	*(long *)result = v;
	return 0;
bad:
	label_of(label, sizeof(label), cfg, opt);
	load_error(cur, cfg->line, label, "must be an integer, not %s",
	    echo(q, sizeof(q), value != NULL ? value : ""));
	return -1;
}

static int
parse_bool(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char label[128], q[64];
	int b = cfg_parse_boolean(value);

	if (b < 0) {
		label_of(label, sizeof(label), cfg, opt);
		load_error(cur, cfg->line, label, "must be true or false, not %s",
		    echo(q, sizeof(q), value != NULL ? value : ""));
		return -1;
	}
	*(cfg_bool_t *)result = b ? cfg_true : cfg_false;
	return 0;
}

/* Called by libconfuse right after a value is stored: remember the line (for
 * the checks that run after parsing) and refuse a second assignment. */
static int
on_set(cfg_t *cfg, cfg_opt_t *opt)
{
	char label[128];
	int i = find_key(cfg != cur->root ? cfg->name : NULL, opt->name);

	if (i < 0)
		return 0;
	if (cur->line[i] != 0) {
		label_of(label, sizeof(label), cfg, opt);
		load_error(cur, cfg->line, label, "given twice (first on line %d)", cur->line[i]);
		return -1;
	}
	cur->line[i] = cfg->line > 0 ? cfg->line : 1;
	return 0;
}

/* ---- pre-scan ------------------------------------------------------------ */

/* Characters of an unquoted libconfuse string (its lexer's negated class). */
static int
is_word(unsigned char ch)
{
	return ch != '\0' && strchr(" \t\r\n#\"'={}()+,*", ch) == NULL;
}

struct scan {
	struct load *ld;
	int line;
	const char *word;           /* last unquoted word */
	size_t word_len;
	const char *key;            /* word before the last '=' */
	size_t key_len;
	int depth;
	struct { int line; const char *name; size_t len; } open[SECT_MAX];
};

static void
scan_env_error(struct scan *sc)
{
	char label[128];
	const char *lbl = NULL;

	if (sc->key != NULL) {
		if (sc->depth > 0 && sc->depth <= SECT_MAX)
			snprintf(label, sizeof(label), "%.*s.%.*s", (int)sc->open[sc->depth - 1].len,
			    sc->open[sc->depth - 1].name, (int)sc->key_len, sc->key);
		else
			snprintf(label, sizeof(label), "%.*s", (int)sc->key_len, sc->key);
		lbl = label;
	}
	load_error(sc->ld, sc->line, lbl, "\"${\" is not allowed: environment variables are "
	    "not expanded in this file (single-quote a literal \"${\")");
}

static int
is_env(const char *s, size_t i, size_t len)
{
	return s[i] == '$' && i + 1 < len && s[i + 1] == '{';
}

/* Blank s[i..] up to the end of the line; returns the index of the '\n' (or len). */
static size_t
blank_line(char *s, size_t i, size_t len)
{
	while (i < len && s[i] != '\n')
		s[i++] = ' ';
	return i;
}

/*
 * Walk the text as libconfuse's lexer will, before it does:
 *   - blank out comments ("#...", "//...", C-style), keeping newlines, since
 *     libconfuse 3.3 counts two or three lines for every comment;
 *   - refuse "${" outside comments and single quotes (silent env expansion);
 *   - refuse NUL bytes, unterminated strings and comments, and a '{' never
 *     closed (libconfuse accepts one at end of file).
 * Like the lexer, '#' ends an unquoted word and starts a comment, while "//"
 * and C-style comment openers only count at the start of a word.
 */
static int
prescan(struct load *ld, char *s, size_t len)
{
	struct scan sc;
	size_t i, j;
	int in_word = 0, start;
	char label[128];

	memset(&sc, 0, sizeof(sc));
	sc.ld = ld;
	sc.line = 1;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\0') {
			load_error(ld, sc.line, NULL, "NUL byte in the file");
			return -1;
		}
		if (is_env(s, i, len)) {
			scan_env_error(&sc);
			return -1;
		}
		if (in_word) {
			if (is_word(ch))
				continue;
			sc.word_len = (size_t)(s + i - sc.word);
			in_word = 0;
		}
		switch (ch) {
		case '\n':
			sc.line++;
			break;
		case '#':
			i = blank_line(s, i, len) - 1;
			break;
		case '/':
			if (i + 1 < len && s[i + 1] == '/') {
				i = blank_line(s, i, len) - 1;
			} else if (i + 1 < len && s[i + 1] == '*') {
				start = sc.line;
				s[i] = s[i + 1] = ' ';
				for (j = i + 2; j < len && !(s[j] == '*' && j + 1 < len && s[j + 1] == '/'); j++) {
					if (s[j] == '\n')
						sc.line++;
					else
						s[j] = ' ';
				}
				if (j >= len) {
					load_error(ld, start, NULL, "comment opened here is never closed");
					return -1;
				}
				s[j] = s[j + 1] = ' ';
				i = j + 1;
			} else {
				sc.word = s + i;
				in_word = 1;
			}
			break;
		case '"':
		case '\'':
			start = sc.line;
			for (j = i + 1; j < len && s[j] != (char)ch; j++) {
				if (s[j] == '\\' && j + 1 < len)
					j++;
				else if (ch == '"' && is_env(s, j, len)) {
					scan_env_error(&sc);
					return -1;
				}
				if (s[j] == '\n')
					sc.line++;
			}
			if (j >= len) {
				sc.line = start;
				load_error(ld, start, NULL, "string opened here is never closed");
				return -1;
			}
			i = j;
			break;
		case '=':
			sc.key = sc.word;
			sc.key_len = sc.word_len;
			break;
		case '{':
			if (sc.depth < SECT_MAX) {
				sc.open[sc.depth].line = sc.line;
				sc.open[sc.depth].name = sc.word != NULL ? sc.word : "";
				sc.open[sc.depth].len = sc.word != NULL ? sc.word_len : 0;
			}
			sc.depth++;
			sc.key = NULL;
			break;
		case '}':
			if (sc.depth > 0)
				sc.depth--;     /* an extra '}' is libconfuse's to report */
			sc.key = NULL;
			break;
		default:
			if (is_word(ch)) {
				sc.word = s + i;
				in_word = 1;
			}
			break;
		}
	}
	for (i = 0, sc.line = 1; i < len; i++) {
		if (s[i] == '\n')
			sc.line++;
		else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			ld->last_line = sc.line;
	}
	if (sc.depth > 0) {
		int d = sc.depth <= SECT_MAX ? sc.depth - 1 : SECT_MAX - 1;

		snprintf(label, sizeof(label), "%.*s", (int)sc.open[d].len, sc.open[d].name);
		load_error(ld, sc.open[d].line, sc.open[d].len > 0 ? label : NULL,
		    "'{' opened here is never closed (missing '}')");
		return -1;
	}
	return 0;
}

/* ---- struct conf ----------------------------------------------------------- */

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		fatal("conf: out of memory");
	return d;
}

void
conf_init(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	c->event_loop = xstrdup(DEFAULT_EVENT_LOOP);
	c->subscribe_prefix = xstrdup("/sse/");
	c->publish_prefix = xstrdup("/publish/");
	c->stats_path = xstrdup("/stats");
	c->max_streams = 65536;
	c->max_streams_per_resource = 20;
	c->heartbeat = 15;
	c->retry = 3000;
	c->max_message_bytes = 65536;
	c->stream_queue_bytes = 1048576;
	c->stream_queue_soft_bytes = 262144;
	c->stream_queue_soft_seconds = 10;
	c->history_size = 100;
	c->history_ttl = 3600;
	c->history_bytes = 16 * 1024 * 1024;
	c->log_level = xstrdup("info");
	c->redis.port = 6379;
	c->redis.channel_prefix = xstrdup("sse:");
	c->redis.connect_timeout_ms = 2000;
	c->redis.publish_timeout_ms = 1000;
	c->redis.reconnect_min_ms = 100;
	c->redis.reconnect_max_ms = 5000;
	c->redis.probe_interval = 5;
	c->jwt.cookie = xstrdup("sse_token");
	c->jwt.leeway = 30;
}

void
conf_release(struct conf *c)
{
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if (keys[i].type == KT_STR)
			free(*str_field(c, &keys[i]));
	}
	free(c->file);
	memset(c, 0, sizeof(*c));
}

/* Deep copy; -1 when out of memory (dst then holds nothing to free). */
static int
conf_dup(struct conf *dst, const struct conf *src)
{
	size_t i;
	char **f;

	memcpy(dst, src, sizeof(*dst));
	dst->file = NULL;
	for (i = 0; i < NKEYS; i++) {
		if (keys[i].type == KT_STR)
			*str_field(dst, &keys[i]) = NULL;
	}
	for (i = 0; i < NKEYS; i++) {
		if (keys[i].type != KT_STR)
			continue;
		f = str_field((struct conf *)src, &keys[i]);
		if (*f != NULL && (*str_field(dst, &keys[i]) = strdup(*f)) == NULL) {
			conf_release(dst);
			return -1;
		}
	}
	if (src->file != NULL && (dst->file = strdup(src->file)) == NULL) {
		conf_release(dst);
		return -1;
	}
	return 0;
}

size_t
conf_message_bytes_max(int max_message_bytes, int history_size)
{
	size_t n = max_message_bytes > 0 ? (size_t)max_message_bytes : 0;
	size_t id_line = history_size > 0 ? sizeof("id: \n") - 1 + EVENTID_MAX : 0;

	return fcgi_stdout_size(sse_event_size_max(n, ROUTE_NAME_MAX) + id_line);
}

int
conf_redis_is_configured(const struct conf *c)
{
	return c->redis.host != NULL || c->redis.socket != NULL;
}

/* ---- checks on final values ---------------------------------------------- */

static int
all_visible(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	}
	return 1;
}

/* Why a string value is wrong, or NULL if it is fine. */
static const char *
str_problem(const struct key *k, const char *v)
{
	enum log_level lvl;
	size_t n = strlen(v);

	if (n == 0)
		return "must not be empty (comment the line out to leave it unset)";
	if (n > STR_MAX)
		return "is too long (at most 4096 bytes)";
	switch (k->rule) {
	case SR_ANY:
	case SR_SECRET:
		break;
	case SR_EVENT_LOOP:
#ifdef __linux__
		if (strcmp(v, "epoll") != 0 && strcmp(v, "select") != 0)
			return "must be \"epoll\" or \"select\"";
#else
		if (strcmp(v, "select") != 0)
			return "must be \"select\" (epoll is Linux only)";
#endif
		break;
	case SR_PREFIX:
		if (v[0] != '/' || v[n - 1] != '/')
			return "must start and end with '/'";
		/* fall through */
	case SR_PATH:
		if (v[0] != '/')
			return "must start with '/'";
		if (n > ROUTE_MAX)
			return "is too long (at most 256 bytes)";
		if (!all_visible(v) || strpbrk(v, "?#%") != NULL)
			return "must not contain spaces, control characters, '?', '#' or '%'";
		break;
	case SR_TOKEN:
		if (n < 16)
			return "must be at least 16 bytes long";
		if (!all_visible(v))
			return "must be visible ASCII without spaces";
		break;
	case SR_HEADER:
		if (!all_visible(v))
			return "must be visible ASCII without spaces";
		break;
	case SR_LOG_LEVEL:
		if (log_level_parse(v, &lvl) != 0)
			return "must be one of error, warning, notice, info, debug";
		break;
	case SR_HOST:
		if (n > 255 || !all_visible(v))
			return "must be a host name or address (visible ASCII, at most 255 bytes)";
		break;
	case SR_SOCKET:
		if (n >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return "is too long for a unix socket path";
		break;
	case SR_CHANNEL:
		if (n > ROUTE_MAX || !all_visible(v))
			return "must be visible ASCII without spaces, at most 256 bytes";
		if (strpbrk(v, "*?[]\\") != NULL)
			return "must not contain * ? [ ] or \\ (it is used as a PSUBSCRIBE pattern)";
		/* every payload channel would then look like one of sse-fcgi's own, which
		 * the subscriber never delivers: the process would publish into a void */
		if (strncmp(v, RESERVED_CHANNEL_NS, strlen(RESERVED_CHANNEL_NS)) == 0)
			return "must not start with \"" RESERVED_CHANNEL_NS "\" (sse-fcgi's own channels)";
		break;
	case SR_JWT_SECRET:
		if (n < 32)
			return "must be at least 32 bytes long (HS256 keys shorter than the hash are weak)";
		break;
	case SR_COOKIE:
		if (n > 128 || !all_visible(v) || strpbrk(v, "()<>@,;:\\\"/[]?={}") != NULL)
			return "must be a cookie name (visible ASCII, no separators such as ; = , \" /)";
		break;
	}
	return NULL;
}

static int
later(const struct load *ld, int a, int b)
{
	return ld->line[a] > ld->line[b] ? a : b;
}

static void cross_error(struct load *ld, int a, int b, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* A check between two keys: blame whichever was set later in the file. */
static void
cross_error(struct load *ld, int a, int b, const char *fmt, ...)
{
	char label[128], msg[256];
	va_list ap;
	int k = later(ld, a, b);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	key_label(label, sizeof(label), keys[k].sect, keys[k].name);
	load_error(ld, ld->line[k], ld->line[k] > 0 ? label : NULL, "%s", msg);
}

static int
validate(struct load *ld, struct conf *c)
{
	char label[128], q[64];
	const char *why;
	size_t i;
	int v;

	for (i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		key_label(label, sizeof(label), k->sect, k->name);
		if (k->type == KT_INT) {
			v = *int_field(c, k);
			if (v < k->min || v > k->max) {
				load_error(ld, ld->line[i], label, "must be between %ld and %ld", k->min, k->max);
				return -1;
			}
		} else if (k->type == KT_STR && *str_field(c, k) != NULL) {
			why = str_problem(k, *str_field(c, k));
			if (why == NULL)
				continue;
			if (k->rule == SR_SECRET || k->rule == SR_TOKEN || k->rule == SR_JWT_SECRET ||
			    strlen(*str_field(c, k)) == 0)
				load_error(ld, ld->line[i], label, "%s", why);
			else
				load_error(ld, ld->line[i], label, "%s, not %s", why,
				    echo(q, sizeof(q), *str_field(c, k)));
			return -1;
		}
	}

#define KEY(name) find_key(NULL, name)
#define RKEY(name) find_key("redis", name)
#define JKEY(name) find_key("jwt", name)
	if (strcmp(c->subscribe_prefix, c->publish_prefix) == 0) {
		cross_error(ld, KEY("subscribe_prefix"), KEY("publish_prefix"),
		    "subscribe_prefix and publish_prefix must differ");
		return -1;
	}
	if ((size_t)c->stream_queue_bytes <
	    conf_message_bytes_max(c->max_message_bytes, c->history_size)) {
		cross_error(ld, KEY("stream_queue_bytes"), KEY("max_message_bytes"),
		    "stream_queue_bytes (%d) must hold the largest encoded message, "
		    "%zu bytes for max_message_bytes %d",
		    c->stream_queue_bytes,
		    conf_message_bytes_max(c->max_message_bytes, c->history_size),
		    c->max_message_bytes);
		return -1;
	}
	if (c->stream_queue_soft_bytes > c->stream_queue_bytes) {
		cross_error(ld, KEY("stream_queue_soft_bytes"), KEY("stream_queue_bytes"),
		    "stream_queue_soft_bytes (%d) must not exceed stream_queue_bytes (%d)",
		    c->stream_queue_soft_bytes, c->stream_queue_bytes);
		return -1;
	}
	if (c->redis.reconnect_min_ms > c->redis.reconnect_max_ms) {
		cross_error(ld, RKEY("reconnect_min_ms"), RKEY("reconnect_max_ms"),
		    "reconnect_min_ms (%d) must not exceed reconnect_max_ms (%d)",
		    c->redis.reconnect_min_ms, c->redis.reconnect_max_ms);
		return -1;
	}
	if (c->redis.host != NULL && c->redis.socket != NULL) {
		cross_error(ld, RKEY("host"), RKEY("socket"), "set redis.host or redis.socket, not both");
		return -1;
	}
	if (c->jwt.previous_secret != NULL && c->jwt.secret == NULL) {
		cross_error(ld, JKEY("previous_secret"), JKEY("previous_secret"),
		    "previous_secret needs secret (the new one) beside it");
		return -1;
	}
	if (c->jwt.subscribe && c->jwt.secret == NULL && c->jwt.public_key_file == NULL) {
		cross_error(ld, JKEY("subscribe"), JKEY("subscribe"),
		    "subscribe = true needs jwt.secret or jwt.public_key_file to check tokens");
		return -1;
	}
	c->jwt.public_key_file_line = ld->line[JKEY("public_key_file")];
#undef KEY
#undef RKEY
#undef JKEY
	return 0;
}

/* ---- loading ------------------------------------------------------------- */

/* Whole file into a NUL-terminated buffer ending in '\n' (so libconfuse never
 * sees an empty stream); NULL with the error recorded. */
static char *
read_file(struct load *ld, size_t *lenp)
{
	struct stat st;
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t r;
	int fd = -1;

	fd = open(ld->file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		load_error(ld, 0, NULL, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		load_error(ld, 0, NULL, "cannot open: %s", strerror(EISDIR));
		goto fail;
	}
	for (;;) {
		if (cap - len < 4096 + 2) {
			cap = cap == 0 ? 8192 : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				load_error(ld, 0, NULL, "out of memory");
				goto fail;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len - 2);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			load_error(ld, 0, NULL, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > FILE_MAX) {
			load_error(ld, 0, NULL, "file is larger than 1 MiB");
			goto fail;
		}
	}
	close(fd);
	if (len == 0 || buf[len - 1] != '\n')
		buf[len++] = '\n';
	buf[len] = '\0';
	*lenp = len;
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/* libconfuse option tables built from keys[]. Defaults stay out of libconfuse
 * (CFGF_NODEFAULT): only keys the file sets are copied over c. */
static void
build_opt(cfg_opt_t *o, const struct key *k)
{
	cfg_opt_t str = CFG_STR(k->name, NULL, CFGF_NODEFAULT);
	cfg_opt_t num = CFG_INT_CB(k->name, 0, CFGF_NODEFAULT, parse_int);
	cfg_opt_t boo = CFG_BOOL_CB(k->name, cfg_false, CFGF_NODEFAULT, parse_bool);

	*o = k->type == KT_STR ? str : k->type == KT_INT ? num : boo;
	o->validcb = on_set;
}

static cfg_t *
parse(struct load *ld, char *text, size_t len)
{
	cfg_opt_t top[NKEYS + 3], red[NKEYS + 1], jwt[NKEYS + 1];
	cfg_opt_t end = CFG_END();
	cfg_opt_t sec = CFG_SEC("redis", red, CFGF_NONE);
	cfg_opt_t jsec = CFG_SEC("jwt", jwt, CFGF_NONE);
	size_t i, nt = 0, nr = 0, nj = 0;
	cfg_t *cfg = NULL;
	FILE *fp = NULL;
	int rc;

	for (i = 0; i < NKEYS; i++) {
		if (keys[i].sect == NULL)
			build_opt(&top[nt++], &keys[i]);
		else if (strcmp(keys[i].sect, "redis") == 0)
			build_opt(&red[nr++], &keys[i]);
		else
			build_opt(&jwt[nj++], &keys[i]);
	}
	red[nr] = end;
	jwt[nj] = end;
	top[nt++] = sec;
	top[nt++] = jsec;
	top[nt] = end;

	cfg = cfg_init(top, CFGF_NONE);
	if (cfg == NULL) {
		load_error(ld, 0, NULL, "out of memory");
		return NULL;
	}
	cfg_set_error_function(cfg, on_cfg_error);
	fp = fmemopen(text, len, "r");
	if (fp == NULL) {
		load_error(ld, 0, NULL, "cannot parse: %s", strerror(errno));
		goto fail;
	}
	ld->root = cfg;
	cur = ld;
	rc = cfg_parse_fp(cfg, fp);
	cur = NULL;
	fclose(fp);
	if (rc != CFG_SUCCESS || ld->failed) {
		load_error(ld, 0, NULL, "cannot parse");     /* only if nothing said why */
		goto fail;
	}
	return cfg;
fail:
	cfg_free(cfg);
	return NULL;
}

/* Copy what the file set into c. -1 when out of memory. */
static int
copy_values(struct load *ld, cfg_t *cfg, struct conf *c)
{
	char *v, **f;
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		cfg_t *sec = k->sect == NULL ? cfg : cfg_getsec(cfg, k->sect);

		if (ld->line[i] == 0 || sec == NULL)
			continue;
		switch (k->type) {
		case KT_STR:
			v = cfg_getstr(sec, k->name);
			f = str_field(c, k);
			free(*f);
			*f = NULL;
			if (v != NULL && (*f = strdup(v)) == NULL) {
				load_error(ld, 0, NULL, "out of memory");
				return -1;
			}
			break;
		case KT_INT: {
			long n = cfg_getint(sec, k->name);
			/* Out of int range: clamp, the range check then says why. */
			*int_field(c, k) = n < INT_MIN ? INT_MIN : n > INT_MAX ? INT_MAX : (int)n;
			break;
		}
		case KT_BOOL:
			*int_field(c, k) = cfg_getbool(sec, k->name) == cfg_true;
			break;
		}
	}
	return 0;
}

int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	struct load ld;
	struct conf tmp;
	char *text = NULL;
	size_t len = 0;
	cfg_t *cfg = NULL;
	int have_tmp = 0;

	memset(&ld, 0, sizeof(ld));
	ld.file = path;
	ld.err = err;
	ld.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';

	if ((text = read_file(&ld, &len)) == NULL)
		goto fail;
	if (prescan(&ld, text, len) != 0)
		goto fail;
	if ((cfg = parse(&ld, text, len)) == NULL)
		goto fail;
	if (conf_dup(&tmp, c) != 0) {
		load_error(&ld, 0, NULL, "out of memory");
		goto fail;
	}
	have_tmp = 1;
	if (copy_values(&ld, cfg, &tmp) != 0)
		goto fail;
	cfg_free(cfg);
	cfg = NULL;
	free(text);
	text = NULL;
	if (validate(&ld, &tmp) != 0)
		goto fail;
	free(tmp.file);
	if ((tmp.file = strdup(path)) == NULL) {
		load_error(&ld, 0, NULL, "out of memory");
		goto fail;
	}
	conf_release(c);
	*c = tmp;
	return 0;
fail:
	if (cfg != NULL)
		cfg_free(cfg);
	free(text);
	if (have_tmp)
		conf_release(&tmp);
	return -1;
}

/* ---- environment ------------------------------------------------------- */

static void env_error(char *err, size_t errlen, const char *var, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
env_error(char *err, size_t errlen, const char *var, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (errlen == 0)
		return;
	n = snprintf(err, errlen, "%s: ", var);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* Decimal integer in [lo, hi] from an environment variable. */
static int
env_int(const char *var, const char *v, long lo, long hi, int *out,
    char *err, size_t errlen)
{
	char q[64];
	char *end;
	long n;

	errno = 0;
	n = (*v >= '0' && *v <= '9') ? strtol(v, &end, 10) : 0;
	if (*v < '0' || *v > '9' || *end != '\0' || errno == ERANGE || n < lo || n > hi) {
		env_error(err, errlen, var, "must be an integer between %ld and %ld, not %s",
		    lo, hi, echo(q, sizeof(q), v));
		return -1;
	}
	*out = (int)n;
	return 0;
}

int
conf_apply_env(struct conf *c, char *err, size_t errlen)
{
	const char *host = getenv("REDIS_HOST");
	const char *port = getenv("REDIS_PORT");
	const char *pass = getenv("REDIS_PASSWORD");
	const char *db = getenv("REDIS_DB");
	char *nhost = NULL, *npass = NULL, q[64];
	int nport = c->redis.port, ndb = c->redis.db;

	if (errlen > 0)
		err[0] = '\0';
	/* Check everything before changing anything. */
	if (host != NULL && *host != '\0' && str_problem(&keys[find_key("redis", "host")], host)) {
		env_error(err, errlen, "REDIS_HOST", "%s, not %s",
		    str_problem(&keys[find_key("redis", "host")], host), echo(q, sizeof(q), host));
		return -1;
	}
	if (port != NULL && *port != '\0' && env_int("REDIS_PORT", port, 1, 65535, &nport, err, errlen))
		return -1;
	if (db != NULL && *db != '\0' && env_int("REDIS_DB", db, 0, INT_MAX, &ndb, err, errlen))
		return -1;
	if (pass != NULL && strlen(pass) > STR_MAX) {
		env_error(err, errlen, "REDIS_PASSWORD", "is too long (at most 4096 bytes)");
		return -1;
	}
	if ((host != NULL && *host != '\0' && (nhost = strdup(host)) == NULL) ||
	    (pass != NULL && *pass != '\0' && (npass = strdup(pass)) == NULL)) {
		free(nhost);
		env_error(err, errlen, "REDIS_*", "out of memory");
		return -1;
	}

	if (nhost != NULL) {
		free(c->redis.host);
		c->redis.host = nhost;
		free(c->redis.socket);          /* the variable names the endpoint */
		c->redis.socket = NULL;
	}
	if (npass != NULL) {
		free(c->redis.password);
		c->redis.password = npass;
	}
	c->redis.port = nport;
	c->redis.db = ndb;
	return 0;
}
