/* Unit tests for src/conf.c: defaults, the shipped conf/sse-fcgi.conf (run
 * from the repository root), every key, every kind of bad input with its
 * file, line and key, and the REDIS_* environment overrides. Test files live
 * in a mkdtemp directory removed at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "redis.h"

#define SHIPPED "conf/sse-fcgi.conf"

static char dir[64];
static char path[128];

static int
group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_conf.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/test.conf", dir);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	unlink(path);
	return rmdir(dir);
}

static void
unset_env(void)
{
	unsetenv("REDIS_HOST");
	unsetenv("REDIS_PORT");
	unsetenv("REDIS_PASSWORD");
	unsetenv("REDIS_DB");
}

static int
env_teardown(void **state)
{
	(void)state;
	unset_env();
	return 0;
}

static void
write_conf(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* Load text; expect success. */
static void
load_ok(struct conf *c, const char *text)
{
	char err[CONF_ERR_MAX];

	write_conf(text);
	conf_init(c);
	if (conf_load(c, path, err, sizeof(err)) != 0)
		fail_msg("unexpected error: %s", err);
	assert_string_equal(c->file, path);
}

/* Strings equal, both NULL counting as equal. */
static void
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
assert_conf_equal(const struct conf *a, const struct conf *b)
{
	str_eq(a->event_loop, b->event_loop);
	str_eq(a->subscribe_prefix, b->subscribe_prefix);
	str_eq(a->publish_prefix, b->publish_prefix);
	str_eq(a->stats_path, b->stats_path);
	assert_int_equal(a->max_streams, b->max_streams);
	assert_int_equal(a->max_streams_per_resource, b->max_streams_per_resource);
	assert_int_equal(a->heartbeat, b->heartbeat);
	assert_int_equal(a->retry, b->retry);
	assert_int_equal(a->max_message_bytes, b->max_message_bytes);
	assert_int_equal(a->stream_queue_bytes, b->stream_queue_bytes);
	assert_int_equal(a->stream_queue_soft_bytes, b->stream_queue_soft_bytes);
	assert_int_equal(a->stream_queue_soft_seconds, b->stream_queue_soft_seconds);
	assert_int_equal(a->history_size, b->history_size);
	assert_int_equal(a->history_ttl, b->history_ttl);
	assert_int_equal(a->history_bytes, b->history_bytes);
	str_eq(a->publish_token, b->publish_token);
	str_eq(a->cors_origin, b->cors_origin);
	str_eq(a->log_file, b->log_file);
	str_eq(a->log_level, b->log_level);
	assert_int_equal(a->syslog, b->syslog);
	str_eq(a->redis.host, b->redis.host);
	assert_int_equal(a->redis.port, b->redis.port);
	str_eq(a->redis.password, b->redis.password);
	assert_int_equal(a->redis.db, b->redis.db);
	str_eq(a->redis.socket, b->redis.socket);
	str_eq(a->redis.channel_prefix, b->redis.channel_prefix);
	assert_int_equal(a->redis.connect_timeout_ms, b->redis.connect_timeout_ms);
	assert_int_equal(a->redis.publish_timeout_ms, b->redis.publish_timeout_ms);
	assert_int_equal(a->redis.reconnect_min_ms, b->redis.reconnect_min_ms);
	assert_int_equal(a->redis.reconnect_max_ms, b->redis.reconnect_max_ms);
	assert_int_equal(a->redis.probe_interval, b->redis.probe_interval);
}

static void
test_defaults(void **state)
{
	struct conf c;

	(void)state;
	conf_init(&c);
	assert_null(c.file);
	assert_string_equal(c.event_loop, "epoll");
	assert_string_equal(c.subscribe_prefix, "/sse/");
	assert_string_equal(c.publish_prefix, "/publish/");
	assert_string_equal(c.stats_path, "/stats");
	assert_int_equal(c.max_streams, 65536);
	assert_int_equal(c.max_streams_per_resource, 20);
	assert_int_equal(c.heartbeat, 15);
	assert_int_equal(c.retry, 3000);
	assert_int_equal(c.max_message_bytes, 65536);
	assert_int_equal(c.stream_queue_bytes, 1048576);
	assert_int_equal(c.stream_queue_soft_bytes, 262144);
	assert_int_equal(c.stream_queue_soft_seconds, 10);
	assert_int_equal(c.history_size, 100);
	assert_int_equal(c.history_ttl, 3600);
	assert_int_equal(c.history_bytes, 16777216);
	assert_null(c.publish_token);
	assert_null(c.cors_origin);
	assert_null(c.log_file);
	assert_string_equal(c.log_level, "info");
	assert_int_equal(c.syslog, 0);
	assert_null(c.redis.host);
	assert_int_equal(c.redis.port, 6379);
	assert_null(c.redis.password);
	assert_int_equal(c.redis.db, 0);
	assert_null(c.redis.socket);
	assert_string_equal(c.redis.channel_prefix, "sse:");
	assert_int_equal(c.redis.connect_timeout_ms, 2000);
	assert_int_equal(c.redis.publish_timeout_ms, 1000);
	assert_int_equal(c.redis.reconnect_min_ms, 100);
	assert_int_equal(c.redis.reconnect_max_ms, 5000);
	assert_int_equal(c.redis.probe_interval, 5);
	assert_false(conf_redis_is_configured(&c));
	conf_release(&c);
	conf_release(&c);           /* safe twice */
	assert_null(c.event_loop);
}

static void
test_jwt_section(void **state)
{
	struct conf c;

	(void)state;
	conf_init(&c);
	assert_int_equal(c.jwt.subscribe, 0);
	assert_string_equal(c.jwt.cookie, "sse_token");
	assert_int_equal(c.jwt.leeway, 30);
	assert_null(c.jwt.secret);
	conf_release(&c);
	load_ok(&c, "jwt {\n  subscribe = true\n  secret = \"0123456789abcdef0123456789abcdef\"\n"
	    "  previous_secret = \"fedcba9876543210fedcba9876543210\"\n"
	    "\n  public_key_file = \"/etc/sse-fcgi/jwt.pem\"\n  cookie = tok\n"
	    "  issuer = \"https://clinic.example\"\n  audience = sse\n  leeway = 0\n}\n");
	assert_int_equal(c.jwt.subscribe, 1);
	assert_string_equal(c.jwt.secret, "0123456789abcdef0123456789abcdef");
	assert_string_equal(c.jwt.previous_secret, "fedcba9876543210fedcba9876543210");
	assert_string_equal(c.jwt.public_key_file, "/etc/sse-fcgi/jwt.pem");
	assert_int_equal(c.jwt.public_key_file_line, 6);
	assert_string_equal(c.jwt.cookie, "tok");
	assert_string_equal(c.jwt.issuer, "https://clinic.example");
	assert_string_equal(c.jwt.audience, "sse");
	assert_int_equal(c.jwt.leeway, 0);
	conf_release(&c);
}

static void
test_shipped_equals_defaults(void **state)
{
	struct conf c, d;
	char err[CONF_ERR_MAX];

	(void)state;
	conf_init(&c);
	conf_init(&d);
	if (conf_load(&c, SHIPPED, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.file, SHIPPED);
	assert_conf_equal(&c, &d);
	assert_false(conf_redis_is_configured(&c));
	conf_release(&c);
	conf_release(&d);
}

static void
test_empty_file(void **state)
{
	struct conf c, d;

	(void)state;
	load_ok(&c, "");
	conf_init(&d);
	assert_conf_equal(&c, &d);
	conf_release(&c);
	load_ok(&c, "# only a comment\n\n   \n");
	assert_conf_equal(&c, &d);
	conf_release(&c);
	conf_release(&d);
}

static void
test_every_key(void **state)
{
	struct conf c;

	(void)state;
	load_ok(&c,
	    "event_loop = select\n"
	    "subscribe_prefix = \"/events/\"\n"
	    "publish_prefix = '/pub/'\n"
	    "stats_path = /status\n"
	    "max_streams = 1000\n"
	    "max_streams_per_resource = 5\n"
	    "heartbeat = 30\n"
	    "retry = 10000\n"
	    "max_message_bytes = 1024\n"
	    "stream_queue_bytes = 8192\n"
	    "stream_queue_soft_bytes = 0\n"
	    "stream_queue_soft_seconds = 60\n"
	    "history_size = 0\n"
	    "history_ttl = 60\n"
	    "history_bytes = 1048576\n"
	    "publish_token = \"0123456789abcdef\"\n"
	    "cors_origin = \"https://app.example.com\"\n"
	    "log_file = \"/var/log/sse.log\"\n"
	    "log_level = debug\n"
	    "syslog = true\n"
	    "redis {\n"
	    "    host = \"10.0.0.5\"\n"
	    "    port = 6380\n"
	    "    password = \"pa#ss//wo/*rd*/\"\n"
	    "    db = 3\n"
	    "    channel_prefix = \"app1:sse:\"\n"
	    "    connect_timeout_ms = 500\n"
	    "    publish_timeout_ms = 250\n"
	    "    reconnect_min_ms = 50\n"
	    "    reconnect_max_ms = 2000\n"
	    "    probe_interval = 2\n"
	    "}\n");
	assert_string_equal(c.event_loop, "select");
	assert_string_equal(c.subscribe_prefix, "/events/");
	assert_string_equal(c.publish_prefix, "/pub/");
	assert_string_equal(c.stats_path, "/status");
	assert_int_equal(c.max_streams, 1000);
	assert_int_equal(c.max_streams_per_resource, 5);
	assert_int_equal(c.heartbeat, 30);
	assert_int_equal(c.retry, 10000);
	assert_int_equal(c.max_message_bytes, 1024);
	assert_int_equal(c.stream_queue_bytes, 8192);
	assert_int_equal(c.stream_queue_soft_bytes, 0);
	assert_int_equal(c.stream_queue_soft_seconds, 60);
	assert_int_equal(c.history_size, 0);
	assert_int_equal(c.history_ttl, 60);
	assert_int_equal(c.history_bytes, 1048576);
	assert_string_equal(c.publish_token, "0123456789abcdef");
	assert_string_equal(c.cors_origin, "https://app.example.com");
	assert_string_equal(c.log_file, "/var/log/sse.log");
	assert_string_equal(c.log_level, "debug");
	assert_int_equal(c.syslog, 1);
	assert_string_equal(c.redis.host, "10.0.0.5");
	assert_int_equal(c.redis.port, 6380);
	assert_string_equal(c.redis.password, "pa#ss//wo/*rd*/");  /* not comments */
	assert_int_equal(c.redis.db, 3);
	assert_null(c.redis.socket);
	assert_string_equal(c.redis.channel_prefix, "app1:sse:");
	assert_int_equal(c.redis.connect_timeout_ms, 500);
	assert_int_equal(c.redis.publish_timeout_ms, 250);
	assert_int_equal(c.redis.reconnect_min_ms, 50);
	assert_int_equal(c.redis.reconnect_max_ms, 2000);
	assert_int_equal(c.redis.probe_interval, 2);
	assert_true(conf_redis_is_configured(&c));
	conf_release(&c);

	load_ok(&c, "redis {\n socket = \"/run/redis.sock\"\n}\nsyslog = off\n");
	assert_string_equal(c.redis.socket, "/run/redis.sock");
	assert_null(c.redis.host);
	assert_int_equal(c.syslog, 0);
	assert_true(conf_redis_is_configured(&c));
	conf_release(&c);
}

static void
test_syntax_variants(void **state)
{
	struct conf c;

	(void)state;
	/* Comments of every kind, no spaces, a one-line section, quoted ints,
	 * a literal "${" in single quotes, leading-zero decimals. */
	load_ok(&c,
	    "/* block\n   comment */ heartbeat=20 // trailing\n"
	    "retry = \"4000\"   # trailing\n"
	    "redis{port=1234 password='${NOT_EXPANDED}'}\n"
	    "max_streams = 010\n");
	assert_int_equal(c.heartbeat, 20);
	assert_int_equal(c.retry, 4000);
	assert_int_equal(c.redis.port, 1234);
	assert_string_equal(c.redis.password, "${NOT_EXPANDED}");
	assert_int_equal(c.max_streams, 10);
	conf_release(&c);
}

static void
test_load_over_current_values(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	load_ok(&c, "heartbeat = 40\n");
	write_conf("retry = 5000\n");
	assert_int_equal(conf_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.heartbeat, 40);  /* kept: not in the second file */
	assert_int_equal(c.retry, 5000);
	conf_release(&c);
}

/* ---- errors ---------------------------------------------------------------- */

struct bad {
	const char *name;
	const char *text;
	int line;                   /* 0: no ":LINE:" expected */
	const char *key;            /* expected "KEY: " after the location, or NULL */
	const char *what;           /* substring of the message */
};

static const struct bad bads[] = {
	{ "unknown key", "# c\nheartbeat = 5\n// c\nbogus = 1\n", 4, "bogus", "unknown key" },
	{ "unknown key in redis", "# comment\n\nredis {\n  # c\n  port = 1\n  bogus = 2\n}\n",
	  6, "redis.bogus", "unknown key" },
	{ "unknown key after comments", "/* a\nb\nc */\n# d\n# e\nnope = 1\n", 6, "nope", "unknown key" },
	{ "int not a number", "\n\nheartbeat = abc\n", 3, "heartbeat", "must be an integer, not \"abc\"" },
	{ "int hex", "heartbeat = 0x10\n", 1, "heartbeat", "must be an integer" },
	{ "int trailing junk", "retry = \"5s\"\n", 1, "retry", "must be an integer" },
	{ "int in redis not a number", "redis {\n\n  port = \"x\"\n}\n", 3, "redis.port",
	  "must be an integer" },
	{ "bool", "# x\nsyslog = maybe\n", 2, "syslog", "must be true or false" },
	{ "section as value", "\nredis = 5\n", 2, "redis", "expected '{'" },
	{ "value as section", "heartbeat { }\n", 1, "heartbeat", "expected '='" },
	{ "heartbeat 0", "# a\n# b\nheartbeat = 0\n", 3, "heartbeat", "must be between 1 and 3600" },
	{ "heartbeat 3601", "heartbeat = 3601\n", 1, "heartbeat", "must be between 1 and 3600" },
	{ "heartbeat overflow", "heartbeat = 99999999999999999999999\n", 1, "heartbeat",
	  "must be between 1 and 3600" },
	{ "negative", "max_streams = -1\n", 1, "max_streams", "must be between 1 and" },
	{ "port range", "redis {\n  port = 70000\n}\n", 2, "redis.port", "must be between 1 and 65535" },
	{ "queue too small", "stream_queue_bytes = 100\n", 1, "stream_queue_bytes",
	  "must be between 4096 and" },
	{ "history_size negative", "history_size = -1\n", 1, "history_size",
	    "must be between 0 and 100000" },
	{ "history_ttl 0", "\nhistory_ttl = 0\n", 2, "history_ttl",
	    "must be between 1 and 2592000" },
	{ "history_bytes over", "history_bytes = 1073741825\n", 1, "history_bytes",
	    "must be between 0 and 1073741824" },
	{ "message too big", "max_message_bytes = 16777217\n", 1, "max_message_bytes",
	  "must be between 1 and 16777216" },
	{ "bad event_loop", "\n\n\nevent_loop = \"kqueue\"\n", 4, "event_loop",
	  "must be \"epoll\" or \"select\", not \"kqueue\"" },
	{ "bad log_level", "log_level = verbose\n", 1, "log_level", "must be one of" },
	{ "empty token", "publish_token = \"\"\n", 1, "publish_token", "must not be empty" },
	{ "token with space", "publish_token = \"0123456789 abcdef\"\n", 1, "publish_token",
	  "visible ASCII" },
	{ "empty prefix", "subscribe_prefix = \"\"\n", 1, "subscribe_prefix", "must not be empty" },
	{ "prefix without /", "\npublish_prefix = \"publish/\"\n", 2, "publish_prefix",
	  "must start and end with '/'" },
	{ "prefix without trailing /", "subscribe_prefix = \"/sse\"\n", 1, "subscribe_prefix",
	  "must start and end with '/'" },
	{ "prefix with %", "subscribe_prefix = \"/s%20/\"\n", 1, "subscribe_prefix", "'%'" },
	{ "stats without /", "stats_path = stats\n", 1, "stats_path", "must start with '/'" },
	{ "same prefixes", "subscribe_prefix = \"/x/\"\npublish_prefix = \"/x/\"\n", 2,
	  "publish_prefix", "must differ" },
	{ "empty host", "redis {\n  host = \"\"\n}\n", 2, "redis.host", "must not be empty" },
	{ "host and socket", "redis {\n  host = a\n  socket = \"/s\"\n}\n", 3, "redis.socket",
	  "not both" },
	{ "glob in channel prefix", "redis {\n  channel_prefix = \"sse*\"\n}\n", 2,
	  "redis.channel_prefix", "PSUBSCRIBE" },
	{ "reserved channel prefix", "# c\nredis {\n  channel_prefix = \"__sse-fcgi__:app:\"\n}\n", 3,
	  "redis.channel_prefix", "must not start with \"__sse-fcgi__:\"" },
	{ "reserved channel prefix exactly", "redis {\n  channel_prefix = \"__sse-fcgi__:\"\n}\n", 2,
	  "redis.channel_prefix", "sse-fcgi's own channels" },
	{ "reconnect min > max", "redis {\n reconnect_max_ms = 50\n}\n", 2, "redis.reconnect_max_ms",
	  "must not exceed" },
	{ "queue below message", "max_message_bytes = 300000\n", 1, "max_message_bytes",
	  "stream_queue_bytes (1048576) must hold the largest encoded message, 1800425 bytes "
	    "for max_message_bytes 300000" },
	{ "queue below encoded message", "max_message_bytes = 65536\nstream_queue_bytes = 262144\n",
	  2, "stream_queue_bytes", "must hold the largest encoded message, 393473 bytes" },
	{ "queue below encoded message and id line",
	  "max_message_bytes = 65536\nstream_queue_bytes = 393415\n", 2, "stream_queue_bytes",
	  "must hold the largest encoded message, 393473 bytes" },
	{ "soft over hard", "stream_queue_soft_bytes = 2000000\n", 1, "stream_queue_soft_bytes",
	  "must not exceed stream_queue_bytes (1048576)" },
	{ "soft seconds 0", "stream_queue_soft_seconds = 0\n", 1, "stream_queue_soft_seconds",
	  "must be between 1 and 3600" },
	{ "duplicate key", "heartbeat = 5\n\nheartbeat = 6\n", 3, "heartbeat",
	  "given twice (first on line 1)" },
	{ "missing closing brace", "# c\nredis {\n  port = 1\n\nheartbeat = 5\n", 2, "redis",
	  "missing '}'" },
	{ "missing closing brace at end", "heartbeat = 5\nredis {\n  port = 1\n", 2, "redis",
	  "missing '}'" },
	{ "extra closing brace", "heartbeat = 5\n# c\n}\n", 3, NULL, "unexpected closing brace" },
	{ "unterminated string", "\ncors_origin = \"abc\nheartbeat = 5\n", 2, NULL, "never closed" },
	{ "unterminated comment", "heartbeat = 5\n/* abc\n\n", 2, NULL, "never closed" },
	{ "env expansion quoted", "# ${IGNORED}\nredis {\n  password = \"x${HOME}\"\n}\n", 3,
	  "redis.password", "\"${\" is not allowed" },
	{ "env expansion bare", "\nlog_file = ${HOME}\n", 2, "log_file", "\"${\" is not allowed" },
	{ "equals only", "=\n", 1, NULL, "syntax error" },
	/* found by fuzz_conf: a quoted name spanning lines came back inside the message */
	{ "quoted key spanning lines", "\"a\nb\" = 1\n", 2, "a?b", "unknown key" },
	{ "jwt secret short", "jwt {\n  secret = \"0123456789abcdef0123456789abcde\"\n}\n", 2,
	  "jwt.secret", "must be at least 32 bytes long" },
	{ "jwt previous short", "jwt {\n secret = \"0123456789abcdef0123456789abcdef\"\n"
	  " previous_secret = \"short\"\n}\n", 3, "jwt.previous_secret", "at least 32 bytes" },
	{ "jwt previous alone", "jwt {\n\n previous_secret = \"0123456789abcdef0123456789abcdef\"\n}\n",
	  3, "jwt.previous_secret", "needs secret" },
	{ "jwt subscribe without key", "# c\njwt {\n  subscribe = true\n  issuer = x\n}\n", 3,
	  "jwt.subscribe", "needs jwt.secret or jwt.public_key_file" },
	{ "jwt cookie name", "jwt {\n  cookie = \"a;b\"\n}\n", 2, "jwt.cookie", "cookie name" },
	{ "jwt leeway", "jwt {\n  leeway = 3601\n}\n", 2, "jwt.leeway", "between 0 and 3600" },
	{ "jwt unknown key", "jwt {\n  algorithm = HS256\n}\n", 2, "jwt.algorithm", "unknown key" },
};

static void
check_bad(const char *name, const char *text, int line, const char *key,
    const char *what, const char *secret)
{
	struct conf c, d;
	char err[CONF_ERR_MAX], want[256];

	write_conf(text);
	conf_init(&c);
	conf_init(&d);
	memset(err, 'Z', sizeof(err));
	if (conf_load(&c, path, err, sizeof(err)) == 0)
		fail_msg("%s: accepted", name);
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: %s%s", path, line, key ? key : "", key ? ": " : "");
	else
		snprintf(want, sizeof(want), "%s: ", path);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("%s: got \"%s\", want it to start with \"%s\"", name, err, want);
	if (what != NULL && strstr(err, what) == NULL)
		fail_msg("%s: got \"%s\", want \"%s\" in it", name, err, what);
	if (secret != NULL && strstr(err, secret) != NULL)
		fail_msg("%s: secret echoed: \"%s\"", name, err);
	assert_null(strchr(err, '\n'));
	assert_conf_equal(&c, &d);          /* untouched on error */
	assert_null(c.file);
	conf_release(&c);
	conf_release(&d);
}

static void
test_errors(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++)
		check_bad(bads[i].name, bads[i].text, bads[i].line, bads[i].key, bads[i].what, NULL);
	check_bad("short token", "\n# c\npublish_token = \"tooshort123\"\n", 3, "publish_token",
	    "at least 16 bytes", "tooshort123");
	check_bad("password not echoed", "redis {\n password = \"\"\n}\n", 2, "redis.password",
	    "must not be empty", NULL);
	check_bad("missing value", "heartbeat =\n\n# c\n", 1, NULL, "premature end of file", NULL);
	check_bad("missing value no newline", "retry = 1\nheartbeat =", 2, NULL,
	    "premature end of file", NULL);
}

/* The namespace conf refuses is the one the Redis module really uses: a channel_prefix
 * under it passed -t and then every payload was taken as internal and dropped. Names
 * that only share a beginning with it stay allowed. */
static void
test_reserved_channel_prefix(void **state)
{
	struct conf c;
	char text[256];

	(void)state;
	snprintf(text, sizeof(text), "redis {\n  channel_prefix = \"%sx:\"\n}\n", SSE_CHANNEL_NS);
	check_bad("SSE_CHANNEL_NS prefix", text, 2, "redis.channel_prefix", SSE_CHANNEL_NS, NULL);
	load_ok(&c, "redis {\n  channel_prefix = \"__sse-fcgi_:\"\n}\n");
	assert_string_equal(c.redis.channel_prefix, "__sse-fcgi_:");
	conf_release(&c);
	load_ok(&c, "redis {\n  channel_prefix = \"app:__sse-fcgi__:\"\n}\n");
	conf_release(&c);
}

static void
test_missing_file(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX], want[256];

	(void)state;
	conf_init(&c);
	snprintf(want, sizeof(want), "%s/nope.conf", dir);
	assert_int_equal(conf_load(&c, want, err, sizeof(err)), -1);
	strcat(want, ": cannot open: No such file or directory");
	assert_string_equal(err, want);
	assert_int_equal(conf_load(&c, dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ": cannot open: Is a directory"));
	conf_release(&c);
}

static void
test_small_err_buffer(void **state)
{
	struct conf c;
	char err[12];

	(void)state;
	write_conf("bogus = 1\n");
	conf_init(&c);
	memset(err, 'Z', sizeof(err));
	assert_int_equal(conf_load(&c, path, err, sizeof(err)), -1);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(conf_load(&c, path, NULL, 0), -1);
	conf_release(&c);
}

/* ---- environment ------------------------------------------------------------ */

static void
test_env_overrides(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	(void)state;
	unset_env();
	load_ok(&c, "redis {\n socket = \"/run/r.sock\"\n port = 1\n}\n");
	setenv("REDIS_HOST", "redis.internal", 1);
	setenv("REDIS_PORT", "6390", 1);
	setenv("REDIS_PASSWORD", "s3cret", 1);
	setenv("REDIS_DB", "2", 1);
	if (conf_apply_env(&c, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.redis.host, "redis.internal");
	assert_null(c.redis.socket);        /* REDIS_HOST names the endpoint */
	assert_int_equal(c.redis.port, 6390);
	assert_string_equal(c.redis.password, "s3cret");
	assert_int_equal(c.redis.db, 2);
	assert_true(conf_redis_is_configured(&c));
	conf_release(&c);
}

static void
test_env_unset_or_empty(void **state)
{
	struct conf c, d;
	char err[CONF_ERR_MAX];

	(void)state;
	unset_env();
	conf_init(&c);
	conf_init(&d);
	assert_int_equal(conf_apply_env(&c, err, sizeof(err)), 0);
	assert_conf_equal(&c, &d);
	setenv("REDIS_HOST", "", 1);
	setenv("REDIS_PORT", "", 1);
	setenv("REDIS_PASSWORD", "", 1);
	setenv("REDIS_DB", "", 1);
	assert_int_equal(conf_apply_env(&c, err, sizeof(err)), 0);
	assert_conf_equal(&c, &d);
	assert_false(conf_redis_is_configured(&c));
	conf_release(&c);
	conf_release(&d);
}

static void
test_env_bad(void **state)
{
	static const struct { const char *var, *value, *want; } cases[] = {
		{ "REDIS_PORT", "abc", "REDIS_PORT: must be an integer between 1 and 65535, not \"abc\"" },
		{ "REDIS_PORT", "0", "REDIS_PORT: must be an integer between 1 and 65535" },
		{ "REDIS_PORT", "65536", "REDIS_PORT: " },
		{ "REDIS_PORT", "6379x", "REDIS_PORT: " },
		{ "REDIS_PORT", " 6379", "REDIS_PORT: " },
		{ "REDIS_PORT", "-1", "REDIS_PORT: " },
		{ "REDIS_PORT", "99999999999999999999", "REDIS_PORT: " },
		{ "REDIS_DB", "-1", "REDIS_DB: must be an integer between 0 and" },
		{ "REDIS_DB", "x", "REDIS_DB: " },
		{ "REDIS_HOST", "has space", "REDIS_HOST: " },
	};
	struct conf c, d;
	char err[CONF_ERR_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unset_env();
		setenv("REDIS_HOST", "h", 1);       /* must not be applied either */
		setenv(cases[i].var, cases[i].value, 1);
		conf_init(&c);
		conf_init(&d);
		assert_int_equal(conf_apply_env(&c, err, sizeof(err)), -1);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("%s=%s: got \"%s\"", cases[i].var, cases[i].value, err);
		assert_conf_equal(&c, &d);
		conf_release(&c);
		conf_release(&d);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_shipped_equals_defaults),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_jwt_section),
		cmocka_unit_test(test_syntax_variants),
		cmocka_unit_test(test_load_over_current_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_reserved_channel_prefix),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_small_err_buffer),
		cmocka_unit_test_teardown(test_env_overrides, env_teardown),
		cmocka_unit_test_teardown(test_env_unset_or_empty, env_teardown),
		cmocka_unit_test_teardown(test_env_bad, env_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
