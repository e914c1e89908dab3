/* token — `sse-fcgi token`; see token.h. */
#include "token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "conf.h"
#include "jwt.h"

#define TTL_MAX (10LL * 366 * 24 * 3600)

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: sse-fcgi token [-c FILE] --subscribe PATTERN... [--publish PATTERN...]\n"
	    "                      [--ttl SECONDS] [--sub SUBJECT]\n"
	    "\n"
	    "Prints a JSON Web Token signed (HS256) with jwt.secret of the configuration.\n"
	    "A PATTERN is a resource name, a prefix ending in '*', or '*'. The token's iss and\n"
	    "aud are jwt.issuer and jwt.audience when set; it expires after --ttl seconds\n"
	    "(default 3600).\n");
}

int
token_main(int argc, char **argv, const char *default_conf)
{
	const char **sub = NULL, **pub = NULL, *path = NULL, *subject = NULL, *env;
	const char ***list = NULL;
	size_t nsub = 0, npub = 0, *count = NULL;
	long long ttl = 3600;
	struct jwt_mint m;
	struct conf conf;
	char err[1024], *tok = NULL, *end;
	int i, status = 1;

	conf_init(&conf);
	sub = calloc((size_t)argc, sizeof(*sub));
	pub = calloc((size_t)argc, sizeof(*pub));
	if (sub == NULL || pub == NULL) {
		fprintf(stderr, "sse-fcgi token: out of memory\n");
		goto done;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--subscribe") == 0 || strcmp(a, "--publish") == 0) {
			list = a[2] == 's' ? &sub : &pub;
			count = a[2] == 's' ? &nsub : &npub;
			if (i + 1 >= argc || argv[i + 1][0] == '-') {
				fprintf(stderr, "sse-fcgi token: %s needs at least one PATTERN\n", a);
				goto usage;
			}
			continue;
		}
		if ((strcmp(a, "-c") == 0 || strcmp(a, "--ttl") == 0 || strcmp(a, "--sub") == 0)) {
			if (i + 1 >= argc) {
				fprintf(stderr, "sse-fcgi token: %s needs a value\n", a);
				goto usage;
			}
			list = NULL;
			if (a[1] == 'c') {
				path = argv[++i];
			} else if (strcmp(a, "--sub") == 0) {
				subject = argv[++i];
			} else {
				errno = 0;
				ttl = strtoll(argv[++i], &end, 10);
				if (errno != 0 || *end != '\0' || end == argv[i] || ttl < 1 ||
				    ttl > TTL_MAX) {
					fprintf(stderr, "sse-fcgi token: --ttl %s: must be seconds, "
					    "1 to %lld\n", argv[i], TTL_MAX);
					goto done;
				}
			}
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			status = 0;
			goto done;
		}
		if (a[0] == '-' || list == NULL) {
			fprintf(stderr, "sse-fcgi token: unexpected argument: %s\n", a);
			goto usage;
		}
		if (!access_grant_is_valid(a)) {
			fprintf(stderr, "sse-fcgi token: %s: a PATTERN is a resource name (1-128 "
			    "bytes of A-Z a-z 0-9 - _ . :), that name followed by '*', or '*'\n", a);
			goto done;
		}
		(*list)[(*count)++] = a;
	}
	if (nsub == 0 && npub == 0) {
		fprintf(stderr, "sse-fcgi token: give --subscribe or --publish PATTERN\n");
		goto usage;
	}
	if (path == NULL && (env = getenv("SSE_FCGI_CONF")) != NULL && *env != '\0')
		path = env;
	if (path == NULL)
		path = default_conf;
	if (conf_load(&conf, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "sse-fcgi token: %s\n", err);
		goto done;
	}
	if (conf.jwt.secret == NULL) {
		fprintf(stderr, "sse-fcgi token: %s: jwt.secret is not set: tokens are signed "
		    "with it (HS256)\n", path);
		goto done;
	}
	memset(&m, 0, sizeof(m));
	m.sub = subject;
	m.iss = conf.jwt.issuer;
	m.aud = conf.jwt.audience;
	m.iat = (long long)time(NULL);
	m.exp = m.iat + ttl;
	m.subscribe = sub;
	m.nsubscribe = nsub;
	m.publish = pub;
	m.npublish = npub;
	tok = jwt_mint_hs256(conf.jwt.secret, strlen(conf.jwt.secret), &m);
	if (tok == NULL) {
		fprintf(stderr, "sse-fcgi token: out of memory\n");
		goto done;
	}
	printf("%s\n", tok);
	status = fflush(stdout) == 0 ? 0 : 1;
	goto done;

usage:
	usage(stderr);
done:
	free(tok);
	free(sub);
	free(pub);
	conf_release(&conf);
	return status;
}
