/* fcgi_request — see fcgi_request.h. The only file that includes libfcgi's headers. */
#include "fcgi_request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fcgiapp.h>

int
fcgi_lib_init(void)
{
	return FCGX_Init() == 0 ? 0 : -1;
}

static char *
param_dup(const char *name, FCGX_ParamArray envp)
{
	const char *v = FCGX_GetParam(name, envp);

	return strdup(v != NULL ? v : "");
}

void
fcgi_request_release(struct fcgi_request *req)
{
	free(req->method);
	free(req->uri);
	free(req->authorization);
	free(req->accept);
	free(req->cookie);
	free(req->last_event_id);
	free(req->body);
	memset(req, 0, sizeof(*req));
}

/*
 * ipcFd and keepConnection sit below libfcgi's "don't use" line: FCGX_Accept_r reads a
 * request from ipcFd when it is already set, instead of accepting. That is exactly the
 * entry point needed, and it is confined to this function.
 */
int
fcgi_request_parse(struct fcgi_request *req, const uint8_t *raw, size_t len)
{
	FCGX_Request r;
	int fd = -1, inited = 0, saved, n;
	size_t off = 0;

	memset(req, 0, sizeof(*req));
	fd = memfd_create("fcgi-request", MFD_CLOEXEC);
	if (fd == -1)
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, raw + off, len - off);

		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		goto fail;

	if (FCGX_InitRequest(&r, -1, 0) != 0)
		goto fail;
	inited = 1;
	r.ipcFd = fd;
	r.keepConnection = 1;
	if (FCGX_Accept_r(&r) != 0) {
		/*
		 * A request libfcgi refuses, it closes itself (FCGX_Free(r, 1) before it
		 * would accept the next one) and leaves ipcFd at -1. Closing fd again could
		 * close whatever took the number meanwhile (a resolver thread's socket), so
		 * it is closed here only when libfcgi did not.
		 */
		if (r.ipcFd != fd)
			fd = -1;
		errno = EPROTO;
		goto fail;
	}
	req->id = (uint16_t)r.requestId;
	req->method = param_dup("REQUEST_METHOD", r.envp);
	req->uri = param_dup("REQUEST_URI", r.envp);
	req->authorization = param_dup("HTTP_AUTHORIZATION", r.envp);
	req->accept = param_dup("HTTP_ACCEPT", r.envp);
	req->cookie = param_dup("HTTP_COOKIE", r.envp);
	req->last_event_id = param_dup("HTTP_LAST_EVENT_ID", r.envp);
	if (req->method == NULL || req->uri == NULL || req->authorization == NULL ||
	    req->accept == NULL || req->cookie == NULL || req->last_event_id == NULL)
		goto fail;

	/* STDIN is at most what the scanner let through, and all in the file: read it whole */
	req->body = malloc(len + 1);
	if (req->body == NULL)
		goto fail;
	n = FCGX_GetStr(req->body, (int)len, r.in);
	if (n < 0)
		goto fail;
	req->body_len = (size_t)n;
	req->body[n] = '\0';
	if (n == 0) {
		free(req->body);
		req->body = NULL;
	}
	FCGX_Free(&r, 0);
	close(fd);
	return 0;

fail:
	saved = errno;
	if (inited)
		FCGX_Free(&r, 0);
	if (fd != -1)
		close(fd);
	fcgi_request_release(req);
	errno = saved != 0 ? saved : EPROTO;
	return -1;
}
