/*
 * conf — the configuration: built-in defaults, the file (libconfuse syntax),
 * then the REDIS_* environment variables, into one plain struct. The only
 * user of libconfuse; its cfg_t lives inside conf_load() and is freed there.
 *
 * File syntax (libconfuse): `key = value` lines, `#` and `//` comments and
 * C-style comments, strings in "double" or 'single' quotes (unquoted works
 * for simple words and numbers), booleans true/false (yes/no, on/off too),
 * and two sections `redis { key = value ... }` and `jwt { ... }`. Keys are
 * case-sensitive.
 *
 * Stricter than plain libconfuse, on purpose:
 *   - integers are decimal only ("010" is ten, "0x10" is an error);
 *   - a key given twice is an error (libconfuse would keep the last one);
 *   - "${" outside single quotes and comments is an error: libconfuse would
 *     silently replace ${VAR} with the environment variable, or with nothing
 *     when unset, and that cannot be switched off. Write a literal "${" in
 *     single quotes; use the REDIS_* variables for per-deployment values;
 *   - a section left open at the end of the file is an error naming the line
 *     of its '{' (libconfuse accepts it, or says "no such option" for the
 *     next key);
 *   - every value is checked after parsing, on the final values: ranges,
 *     enums, route prefixes, a publish_token of 16+ bytes, non-empty strings,
 *     and a few cross-checks (see conf_load()).
 * libconfuse 3.3 also miscounts lines after every comment; the loader blanks
 * comments before handing the text over, so reported lines are exact.
 *
 * Every error is ONE line without a trailing newline:
 *     FILE:LINE: KEY: what is wrong
 * KEY is "name" at top level and "redis.name" or "jwt.name" inside a section. LINE (and
 * then KEY) is left out only when there is none: "FILE: cannot open: ...", or
 * a cross-check between values that did not come from the file. Values of
 * publish_token, redis.password, jwt.secret and jwt.previous_secret are never
 * echoed.
 *
 * Not thread-safe (neither is libconfuse's lexer): load at start-up or from
 * the main loop on SIGHUP.
 */
#ifndef SSE_CONF_H
#define SSE_CONF_H

#include <stddef.h>

/* Recommended size of the err buffers below; longer messages are cut. */
#define CONF_ERR_MAX 512

struct conf_redis {
	char *host;               /* NULL = not configured */
	int port;                 /* 6379 */
	char *password;           /* NULL = no AUTH */
	int db;                   /* 0; accepted and checked, pub/sub ignores it */
	char *socket;             /* unix socket path instead of host:port, NULL */
	char *channel_prefix;     /* "sse:"; no glob characters (PSUBSCRIBE prefix*),
	                           * not inside "__sse-fcgi__:" (sse-fcgi's own channels) */
	int connect_timeout_ms;   /* 2000 */
	int publish_timeout_ms;   /* 1000: a publish is answered within this */
	int reconnect_min_ms;     /* 100: first reconnect delay, doubled up to max */
	int reconnect_max_ms;     /* 5000: with the defaults a process is back in
							   * multi-server mode within 10 s of Redis returning */
	int probe_interval;       /* seconds between subscriber probes, 5 */
};

/* Access control (SPEC "Access control"). The key file is read and checked by
 * access_new() (access.h), not here: conf knows no crypto. */
struct conf_jwt {
	int subscribe;                 /* bool, 0: streams need a token when 1 */
	char *secret;                  /* HS256 key, >= 32 bytes, NULL = no HS256 */
	char *previous_secret;         /* also accepted (rotation); needs secret */
	char *public_key_file;         /* PEM: RSA -> RS256, EC P-256 -> ES256 */
	int public_key_file_line;      /* its line in the file, for access_new()'s error */
	char *cookie;                  /* "sse_token" */
	char *issuer;                  /* NULL = iss not checked */
	char *audience;                /* NULL = aud not checked */
	int leeway;                    /* seconds of clock skew, 0..3600, default 30 */
};

struct access;

/* Every char * is owned by the struct (malloc'ed); NULL means unset. */
struct conf {
	char *file;                    /* path it was loaded from, NULL for built-in defaults */
	char *event_loop;              /* "epoll" (default on Linux) or "select" */
	char *subscribe_prefix;        /* "/sse/"; starts and ends with '/' */
	char *publish_prefix;          /* "/publish/"; likewise, differs from subscribe_prefix */
	char *stats_path;              /* "/stats"; starts with '/' */
	int max_streams;               /* 65536 per process (clamped at run time by descriptors) */
	int max_streams_per_resource;  /* 20 (the seed's) */
	int heartbeat;                 /* seconds, 1..3600, default 15 */
	int retry;                     /* ms in `retry:` lines, 1..3600000, default 3000 */
	int max_message_bytes;         /* 65536, 1..16 MiB */
	int stream_queue_bytes;        /* 1048576: hard limit on what a non-reading stream
									* holds; >= the largest encoded message */
	int stream_queue_soft_bytes;   /* 262144: soft limit, 0 = none; <= stream_queue_bytes */
	int stream_queue_soft_seconds; /* 10: time a stream may stay over the soft limit */
	int history_size;              /* 100 events per resource, 0..100000; 0 = no ids */
	int history_ttl;               /* 3600 s after a resource's last publish, 1..2592000 */
	int history_bytes;             /* 16 MiB, single-server history per process, 0..1 GiB */
	char *publish_token;           /* NULL = no auth; else 16..4096 visible ASCII bytes */
	char *cors_origin;             /* NULL = no Access-Control-Allow-Origin header */
	char *log_file;                /* NULL = stderr */
	char *log_level;               /* "info"; a log_level_parse() name */
	int syslog;                    /* bool, 0; wins over log_file */
	struct conf_redis redis;
	struct conf_jwt jwt;
	/* Built from jwt by main (access_new()) and freed by it, not by conf_release();
	 * NULL until then. conf_load() carries it over unchanged. */
	struct access *access;
};

/* Built-in defaults; strings are strdup'ed. Start-up only: out of memory is
 * fatal(). */
void conf_init(struct conf *c);

/* Free every string and zero the struct. Safe on an init'ed, a released or an
 * all-zero struct. */
void conf_release(struct conf *c);

/*
 * Read the file at path and apply the keys it sets over the current values of
 * c (normally fresh from conf_init()); keys it does not mention keep their
 * value. Then check the final values:
 *   ranges as listed on struct conf; event_loop and log_level names;
 *   subscribe_prefix/publish_prefix: '/'...'/', no '?', '#', '%', space;
 *   stats_path: starts with '/', same characters;
 *   redis.channel_prefix: no glob characters, not starting with "__sse-fcgi__:";
 *   publish_token: unset, or 16..4096 bytes of visible ASCII;
 *   set strings are never empty (comment the line out to unset a key);
 *   redis.host and redis.socket not both; reconnect_min_ms <= reconnect_max_ms;
 *   stream_queue_bytes >= conf_message_bytes_max() (the largest message, encoded,
 *   fits a queue); stream_queue_soft_bytes <= stream_queue_bytes;
 *   jwt.secret and jwt.previous_secret: 32..4096 bytes; previous_secret needs
 *   secret; jwt.cookie: a cookie name; jwt.subscribe = true needs a secret or a
 *   public_key_file (whose content access_new() checks).
 * 0 on success, c->file set to a copy of path. -1 on error with one line in
 * err (errlen > 0) and c left exactly as it was.
 */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen);

/*
 * Apply REDIS_HOST, REDIS_PORT (1..65535), REDIS_PASSWORD, REDIS_DB (>= 0),
 * the seed's variables. As in the seed, a variable that is unset OR empty
 * changes nothing. REDIS_HOST replaces the file's endpoint: it clears
 * redis.socket. 0, or -1 with one line naming the variable in err and c
 * unchanged (e.g. "REDIS_PORT: must be an integer between 1 and 65535, not \"abc\"").
 */
int conf_apply_env(struct conf *c, char *err, size_t errlen);

/*
 * Bytes one message of max_message_bytes can take on a stream in the worst case: SSE
 * framing of a payload made of line breaks (6 bytes each, "data:\n"), the longest event
 * name, the longest id line while history is on (history_size > 0), and FastCGI
 * record headers.
 */
size_t conf_message_bytes_max(int max_message_bytes, int history_size);

/* 1 if Redis is configured (redis.host or redis.socket set), else 0. */
int conf_redis_is_configured(const struct conf *c);

#endif
