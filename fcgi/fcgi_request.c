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
 * The in-memory file libfcgi reads requests from. One per process, reused: creating and
 * closing one for every request cost two more syscalls and a new inode each time (a
 * publish paid them all). Rewritten from offset 0 and cut to the request's length, so
 * nothing of a longer earlier request shows through. -1 until first needed, and again
 * after libfcgi closed it (it does on a request it refuses).
 */
static int req_file = -1;

/* Puts raw[0 .. len) in req_file, positioned at its start. Returns the fd, or -1. */
static int
req_file_load(const uint8_t *raw, size_t len)
{
	size_t off = 0;

	if (req_file == -1) {
		req_file = memfd_create("fcgi-request", MFD_CLOEXEC);
		if (req_file == -1)
			return -1;
	}
	while (off < len) {
		ssize_t w = pwrite(req_file, raw + off, len - off, (off_t)off);

		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		off += (size_t)w;
	}
	if (ftruncate(req_file, (off_t)len) != 0 || lseek(req_file, 0, SEEK_SET) != 0)
		return -1;
	return req_file;
}

/* Forgets req_file after a refused request: libfcgi may have closed it (ipcFd -1 then),
 * and a descriptor number it freed must never be written to again. */
static void
req_file_drop(int closed_by_lib)
{
	if (req_file != -1 && !closed_by_lib)
		close(req_file);
	req_file = -1;
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
	int fd, inited = 0, saved, n;

	memset(req, 0, sizeof(*req));
	fd = req_file_load(raw, len);
	if (fd == -1)
		goto fail;

	if (FCGX_InitRequest(&r, -1, 0) != 0)
		goto fail;
	inited = 1;
	r.ipcFd = fd;
	r.keepConnection = 1;
	if (FCGX_Accept_r(&r) != 0) {
		req_file_drop(r.ipcFd == -1);
		inited = 0;
		FCGX_Free(&r, 0);
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
	FCGX_Free(&r, 0);   /* 0: the file stays open for the next request */
	return 0;

fail:
	saved = errno;
	if (inited)
		FCGX_Free(&r, 0);
	fcgi_request_release(req);
	errno = saved != 0 ? saved : EPROTO;
	return -1;
}
