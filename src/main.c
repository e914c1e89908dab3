/*
 * main — sse-fcgi's entry: options, configuration, signals, descriptor limit, the listen
 * socket, then one event loop until SIGTERM/SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "conf.h"
#include "ev.h"
#include "fcgi_request.h"
#include "log.h"
#include "server.h"
#include "token.h"

#ifndef SSE_FCGI_VERSION
#define SSE_FCGI_VERSION "dev"
#endif
#ifndef SSE_FCGI_SYSCONFDIR
#define SSE_FCGI_SYSCONFDIR "/etc"
#endif

/* Descriptors kept back from streams: listen, signalfd, epoll, log, Redis, the EMFILE
 * reserve, and request heads still being read. */
#define FD_RESERVE 32
#define SHUTDOWN_GRACE_MS 5000

struct options {
	const char *conf_path;
	int conf_named;       /* -c or SSE_FCGI_CONF: a missing file is an error */
	int test_only;
	const char *listen;
	mode_t mode;
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: sse-fcgi [-c FILE] [-t] [-l unix:PATH|HOST:PORT] [-m MODE] [-h] [--version]\n"
	    "       sse-fcgi token [-c FILE] --subscribe PATTERN... [--publish PATTERN...]\n"
	    "                      [--ttl SECONDS] [--sub SUBJECT]\n"
	    "\n"
	    "A FastCGI responder that streams Server-Sent Events. Normally started by spawn-fcgi,\n"
	    "which passes the listen socket on descriptor 0.\n"
	    "\n"
	    "  -c FILE        configuration file (default: $SSE_FCGI_CONF, else\n"
	    "                 " SSE_FCGI_SYSCONFDIR "/sse-fcgi/sse-fcgi.conf)\n"
	    "  -t             check the configuration and exit\n"
	    "  -l unix:PATH   listen on a Unix socket (a stale socket file is removed)\n"
	    "  -l HOST:PORT   listen on TCP\n"
	    "  -m MODE        permissions of the -l unix: socket, octal (default 0660)\n"
	    "  -h, --help     this help\n"
	    "  --version      print the version\n"
	    "  token          print a token signed with jwt.secret (sse-fcgi token -h)\n"
	    "\n"
	    "Environment: SSE_FCGI_CONF; REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB override\n"
	    "the redis section of the file.\n");
}

static int
parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *end;

	memset(o, 0, sizeof(*o));
	o->mode = 0660;
	while ((ch = getopt_long(argc, argv, "c:tl:m:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->conf_path = optarg;
			o->conf_named = 1;
			break;
		case 't':
			o->test_only = 1;
			break;
		case 'l':
			o->listen = optarg;
			break;
		case 'm':
			errno = 0;
			o->mode = (mode_t)strtoul(optarg, &end, 8);
			if (errno != 0 || *end != '\0' || end == optarg || o->mode > 07777) {
				fprintf(stderr, "sse-fcgi: -m %s: not an octal mode\n", optarg);
				return -1;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("sse-fcgi %s\n", SSE_FCGI_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sse-fcgi: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	if (o->conf_path == NULL && (o->conf_path = getenv("SSE_FCGI_CONF")) != NULL &&
	    *o->conf_path != '\0')
		o->conf_named = 1;
	else if (o->conf_path == NULL || *o->conf_path == '\0')
		o->conf_path = SSE_FCGI_SYSCONFDIR "/sse-fcgi/sse-fcgi.conf";
	return 0;
}

static int
listen_unix(const char *path, mode_t mode)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd = -1;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	/* a socket left by a previous run is stale; anything else is not ours to remove */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, mode) == -1 || listen(fd, 4096) == -1)
		goto fail;
	return fd;

fail:
	if (fd != -1)
		close(fd);
	return -1;
}

static int
listen_tcp(const char *spec)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[256];
	const char *colon = strrchr(spec, ':');
	int fd = -1, one = 1, rc;
	size_t hlen;

	if (colon == NULL || colon == spec || colon[1] == '\0') {
		errno = EINVAL;
		return -1;
	}
	hlen = (size_t)(colon - spec);
	if (spec[0] == '[' && colon[-1] == ']') {   /* [::1]:9000 */
		spec++;
		hlen -= 2;
	}
	if (hlen >= sizeof(host)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc != 0) {
		errno = EINVAL;
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* The listen socket: -l, or descriptor 0 as spawn-fcgi and lighttpd hand it over. */
static int
open_listener(const struct options *o)
{
	int fd, acc = 0;
	socklen_t len = sizeof(acc);

	if (o->listen != NULL) {
		if (strncmp(o->listen, "unix:", 5) == 0)
			fd = listen_unix(o->listen + 5, o->mode);
		else
			fd = listen_tcp(o->listen);
		if (fd == -1)
			log_error("cannot listen on %s: %s", o->listen, strerror(errno));
		return fd;
	}
	if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == -1 || !acc) {
		log_error("descriptor 0 is not a listening socket: start sse-fcgi with "
		    "spawn-fcgi (or lighttpd bin-path), or give -l unix:PATH or -l HOST:PORT");
		return -1;
	}
	return 0;
}

/*
 * Raises the soft descriptor limit to the hard one (select: to FD_SETSIZE, so that no
 * descriptor can ever reach it) and returns the limit in force.
 */
static int
raise_nofile(int select_backend)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	if (select_backend && rl.rlim_cur > FD_SETSIZE)
		rl.rlim_cur = FD_SETSIZE;
	if (rl.rlim_cur > 1 << 24)
		rl.rlim_cur = 1 << 24;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		getrlimit(RLIMIT_NOFILE, &rl);
	return (int)rl.rlim_cur;
}

struct signals {
	struct server *srv;
	struct conf *conf;
	const struct options *opts;
	int nofile;
};

static int
stream_ceiling(const struct conf *conf, int nofile)
{
	int ceiling = nofile - FD_RESERVE;

	return ceiling > conf->max_streams ? conf->max_streams : ceiling;
}

/* What the log may say about access control: never a secret, only which keys are set. */
static const char *
jwt_summary(const struct conf_jwt *j)
{
	static char buf[160];

	snprintf(buf, sizeof(buf), "stream tokens %s (secret %s, previous_secret %s, "
	    "public key %s)", j->subscribe ? "required" : "not required",
	    j->secret != NULL ? "set" : "unset", j->previous_secret != NULL ? "set" : "unset",
	    j->public_key_file != NULL ? "set" : "unset");
	return buf;
}

static int
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/*
 * SIGHUP: re-read the file. What can change under running streams (limits, heartbeat,
 * log level, token) is taken; what is wired into sockets or shared headers is named in
 * a warning and waits for a restart. A bad file changes nothing.
 */
static void
reload(struct signals *sg)
{
	struct conf next, *cur = sg->conf;
	struct conf_jwt jtmp;
	char err[1024];
	enum log_level level;
	char *tmp;

	conf_init(&next);
	if ((sg->opts->conf_named || access(sg->opts->conf_path, F_OK) == 0) &&
	    conf_load(&next, sg->opts->conf_path, err, sizeof(err)) == -1)
		goto fail;
	if (conf_apply_env(&next, err, sizeof(err)) == -1)
		goto fail;
	/* keys are read before anything changes: a bad key file keeps the running ones */
	if ((next.access = access_new(&next.jwt, next.file, err, sizeof(err))) == NULL)
		goto fail;
	/* open streams are not re-checked: a stream outlives its token (SPEC) */
	jtmp = cur->jwt;
	cur->jwt = next.jwt;
	next.jwt = jtmp;
	access_free(cur->access);
	cur->access = next.access;
	next.access = NULL;
	cur->max_streams = next.max_streams;
	cur->max_streams_per_resource = next.max_streams_per_resource;
	cur->heartbeat = next.heartbeat;
	cur->max_message_bytes = next.max_message_bytes;
	cur->stream_queue_bytes = next.stream_queue_bytes;
	cur->stream_queue_soft_bytes = next.stream_queue_soft_bytes;
	cur->stream_queue_soft_seconds = next.stream_queue_soft_seconds;
	tmp = cur->publish_token;
	cur->publish_token = next.publish_token;
	next.publish_token = tmp;
	tmp = cur->log_level;
	cur->log_level = next.log_level;
	next.log_level = tmp;
	if (log_level_parse(cur->log_level, &level) == 0)
		log_set_level(level);
	if (str_differs(cur->event_loop, next.event_loop) ||
	    str_differs(cur->subscribe_prefix, next.subscribe_prefix) ||
	    str_differs(cur->publish_prefix, next.publish_prefix) ||
	    str_differs(cur->stats_path, next.stats_path) || cur->retry != next.retry ||
	    str_differs(cur->cors_origin, next.cors_origin) ||
	    str_differs(cur->log_file, next.log_file) || cur->syslog != next.syslog ||
	    str_differs(cur->redis.host, next.redis.host) ||
	    str_differs(cur->redis.socket, next.redis.socket) ||
	    cur->redis.port != next.redis.port ||
	    str_differs(cur->redis.channel_prefix, next.redis.channel_prefix))
		log_warn("reload: event_loop, routes, retry, cors_origin, logging destination and "
		    "redis settings changed in the file take effect only after a restart");
	server_reconfigure(sg->srv, stream_ceiling(cur, sg->nofile));
	log_notice("configuration reloaded: max_streams %d (stream ceiling %d), "
	    "max_streams_per_resource %d, heartbeat %d s, log_level %s, %s", cur->max_streams,
	    stream_ceiling(cur, sg->nofile), cur->max_streams_per_resource, cur->heartbeat,
	    cur->log_level, jwt_summary(&cur->jwt));
	conf_release(&next);
	return;

fail:
	log_error("reload failed, keeping the running configuration: %s", err);
	access_free(next.access);
	conf_release(&next);
}

static void
on_signal(struct ev_loop *loop, int fd, int events, void *arg)
{
	struct signals *sg = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_notice("received %s, shutting down", si.ssi_signo == SIGTERM ?
			    "SIGTERM" : "SIGINT");
			if (sg->srv != NULL)
				server_shutdown(sg->srv, SHUTDOWN_GRACE_MS);
			else
				ev_loop_stop(loop);
			break;
		case SIGHUP:
			if (log_open(sg->conf->log_file, sg->conf->syslog, "sse-fcgi") == -1)
				log_error("cannot reopen %s: %s", sg->conf->log_file, strerror(errno));
			log_notice("received SIGHUP, log reopened, reloading the configuration");
			if (sg->srv != NULL)
				reload(sg);
			break;
		}
	}
}

int
main(int argc, char **argv)
{
	struct options o;
	struct conf conf;
	struct signals sg = { NULL, &conf, &o, 0 };
	struct ev_loop *loop = NULL;
	struct server *srv = NULL;
	char err[1024];
	sigset_t set;
	int sfd = -1, lfd = -1, nofile, ceiling, status = 1;
	enum log_level level;

	conf_init(&conf);
	if (argc > 1 && strcmp(argv[1], "token") == 0) {
		status = token_main(argc - 1, argv + 1, SSE_FCGI_SYSCONFDIR "/sse-fcgi/sse-fcgi.conf");
		goto done;
	}
	if (parse_options(&o, argc, argv) == -1)
		goto done;
	if (o.conf_named || access(o.conf_path, F_OK) == 0) {
		if (conf_load(&conf, o.conf_path, err, sizeof(err)) == -1) {
			fprintf(stderr, "sse-fcgi: %s\n", err);
			goto done;
		}
	}
	if (conf_apply_env(&conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "sse-fcgi: %s\n", err);
		goto done;
	}
	if ((conf.access = access_new(&conf.jwt, conf.file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "sse-fcgi: %s\n", err);
		goto done;
	}
	if (o.test_only) {
		printf("sse-fcgi: configuration %s test is successful\n",
		    conf.file != NULL ? conf.file : "(built-in defaults)");
		status = 0;
		goto done;
	}

	/* Signals are taken before libfcgi's FCGX_Init installs handlers of its own. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd == -1 || fcgi_lib_init() == -1) {
		fprintf(stderr, "sse-fcgi: cannot set up signals or libfcgi: %s\n", strerror(errno));
		goto done;
	}
	signal(SIGPIPE, SIG_IGN);

	if (log_level_parse(conf.log_level, &level) == 0)
		log_set_level(level);
	if (log_open(conf.log_file, conf.syslog, "sse-fcgi") == -1) {
		fprintf(stderr, "sse-fcgi: cannot open log_file %s: %s\n", conf.log_file,
		    strerror(errno));
		goto done;
	}
	srandom((unsigned)(time(NULL) ^ getpid()));

	nofile = raise_nofile(strcmp(conf.event_loop, "select") == 0);
	loop = ev_loop_new(conf.event_loop, nofile);
	if (loop == NULL) {
		log_error("cannot start the %s event loop: %s", conf.event_loop, strerror(errno));
		goto done;
	}
	nofile = ev_loop_setsize(loop);
	sg.nofile = nofile;
	ceiling = stream_ceiling(&conf, nofile);
	if (ceiling < 1) {
		log_error("only %d descriptors: raise the limit (ulimit -n) above %d", nofile,
		    FD_RESERVE);
		goto done;
	}
	lfd = open_listener(&o);
	if (lfd == -1)
		goto done;
	if (ev_io_add(loop, sfd, EV_READ, on_signal, &sg) == -1)
		goto done;
	srv = server_new(loop, &conf, lfd, ceiling);
	if (srv == NULL)
		goto done;
	lfd = -1;   /* the server owns it now */
	sg.srv = srv;
	log_notice("sse-fcgi %s started: pid %ld, config %s, event_loop %s, stream ceiling %d "
	    "(max_streams %d, %d descriptors)", SSE_FCGI_VERSION, (long)getpid(),
	    conf.file != NULL ? conf.file : "(built-in defaults)", ev_loop_backend(loop),
	    ceiling, conf.max_streams, nofile);
	log_notice("access: %s", jwt_summary(&conf.jwt));
	ev_loop_run(loop);
	log_notice("sse-fcgi stopped");
	status = 0;

done:
	server_free(srv);
	if (lfd > 0)
		close(lfd);
	if (sfd != -1)
		close(sfd);
	ev_loop_free(loop);
	access_free(conf.access);
	conf_release(&conf);
	log_close();
	return status;
}
