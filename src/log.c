/* log — daemon logging; see log.h. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define IDENT_MAX 32

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_NOTICE] = "notice",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

static const int level_prio[] = {
	[LOG_LEVEL_ERROR] = LOG_ERR,
	[LOG_LEVEL_WARNING] = LOG_WARNING,
	[LOG_LEVEL_NOTICE] = LOG_NOTICE,
	[LOG_LEVEL_INFO] = LOG_INFO,
	[LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

#define NLEVELS ((int)(sizeof(level_names) / sizeof(level_names[0])))

/* Process-wide state. openlog() keeps the ident pointer, hence the static
 * buffer. */
static enum log_level log_threshold = LOG_LEVEL_DEFAULT;
static int log_fd = STDERR_FILENO;
static int log_fd_owned;
static int log_syslog;
static char log_ident[IDENT_MAX] = "sse-fcgi";

int
log_level_parse(const char *name, enum log_level *out)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < NLEVELS; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *
log_level_name(enum log_level l)
{
	if ((int)l < 0 || (int)l >= NLEVELS)
		return "unknown";
	return level_names[l];
}

/* Release what we own: a file we opened (never the inherited stderr, even if
 * a file we opened happens to be descriptor 2) and the syslog connection. */
static void
drop_destination(void)
{
	if (log_fd_owned)
		close(log_fd);
	if (log_syslog)
		closelog();
	log_fd = STDERR_FILENO;
	log_fd_owned = 0;
	log_syslog = 0;
}

int
log_open(const char *path, int use_syslog, const char *ident)
{
	int saved_errno;
	int fd = -1;

	/* Open the new file before letting go of the old destination, so a
	 * failed reopen (a full disk, a removed directory) keeps logging. */
	if (!use_syslog && path != NULL) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd < 0)
			return -1;
	}
	saved_errno = errno;

	drop_destination();     /* closelog() before the ident buffer changes */
	snprintf(log_ident, sizeof(log_ident), "%s", ident != NULL ? ident : "sse-fcgi");
	if (use_syslog) {
		openlog(log_ident, LOG_PID, LOG_DAEMON);
		log_syslog = 1;
	} else if (fd >= 0) {
		log_fd = fd;
		log_fd_owned = 1;
	}
	errno = saved_errno;
	return 0;
}

void
log_close(void)
{
	int saved_errno = errno;

	drop_destination();
	errno = saved_errno;
}

void
log_set_level(enum log_level l)
{
	if ((int)l < 0)
		l = LOG_LEVEL_ERROR;
	if ((int)l >= NLEVELS)
		l = LOG_LEVEL_DEBUG;
	log_threshold = l;
}

enum log_level
log_get_level(void)
{
	return log_threshold;
}

int
log_is_enabled(enum log_level l)
{
	return l <= log_threshold;
}

/* Replace what could end or forge a line. */
static void
sanitize(char *s, size_t len)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '\n' || c == '\r' || c == '\t')
			s[i] = ' ';
		else if (c < 0x20 || c == 0x7f)
			s[i] = '?';
	}
}

/* Format one line into a stack buffer and hand it over in one call. The
 * prefix (timestamp, ident, pid, level) is at most ~90 bytes, so it always
 * fits; only the message is ever cut. */
static void
vlog(enum log_level l, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t len, cap, msg_start;
	int n, saved_errno = errno;
	ssize_t w;

	if (log_syslog) {
		len = 0;
		n = snprintf(buf, sizeof(buf), "%s: ", level_names[l]);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		len = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(buf + len, sizeof(buf) - len, ".%03ldZ %s[%ld] %s: ",
		    ts.tv_nsec / 1000000L, log_ident, (long)getpid(), level_names[l]);
	}
	if (n < 0)
		n = 0;
	msg_start = len + (size_t)n;
	if (msg_start >= sizeof(buf) - 1)
		msg_start = sizeof(buf) - 1;

	/* Room for the message, keeping one byte for '\n' (file/stderr only). */
	cap = sizeof(buf) - msg_start - 1;
	errno = saved_errno;        /* for %m */
	n = vsnprintf(buf + msg_start, cap + 1, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > cap) {
		len = sizeof(buf) - 1;
		memcpy(buf + len - 3, "...", 3);
	} else {
		len = msg_start + (size_t)n;
	}
	sanitize(buf + msg_start, len - msg_start);

	if (log_syslog) {
		buf[len] = '\0';
		syslog(level_prio[l], "%s", buf);
	} else {
		buf[len++] = '\n';
		do
			w = write(log_fd, buf, len);
		while (w < 0 && errno == EINTR);    /* nothing was written: safe to redo */
	}
	errno = saved_errno;
}

#define LOG_FN(fn, level)                       \
	void fn(const char *fmt, ...)               \
	{                                           \
		va_list ap;                             \
												\
		if ((level) > log_threshold)            \
			return;                             \
		va_start(ap, fmt);                      \
		vlog((level), fmt, ap);                 \
		va_end(ap);                             \
	}

LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warn, LOG_LEVEL_WARNING)
LOG_FN(log_notice, LOG_LEVEL_NOTICE)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
