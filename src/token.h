/*
 * token — `sse-fcgi token`: prints an HS256 token signed with the configured jwt.secret,
 * for scripts, the demo and tests (SPEC "Access control").
 */
#ifndef TOKEN_H
#define TOKEN_H

/* argv[0] is "token". default_conf is the path used without -c or SSE_FCGI_CONF.
 * Returns the process exit status (0, 1 on a usage or config error). */
int token_main(int argc, char **argv, const char *default_conf);

#endif
