/*
 * log — daemon logging in the OpenBSD httpd style: one process-wide
 * destination (stderr, an append-only file, or syslog), one level threshold,
 * printf-style calls per level, and fatal() for start-up failures.
 *
 * To stderr or a file every call writes exactly one line with ONE write(2):
 *
 *     2026-11-28T01:50:00.123Z sse-fcgi[4242] notice: message\n
 *
 * (UTC, milliseconds, IDENT[PID], level name). Several processes (spawn-fcgi
 * -F N) may append to one file: O_APPEND plus a single write per line keeps
 * lines whole. A line longer than LOG_LINE_MAX bytes (newline included) is cut
 * and ends in "...". Control characters in the message (a hiredis error text
 * with CRLF, say) are written as ' ' (TAB, CR, LF) or '?' (others), so one
 * call can never split into two lines or forge one.
 *
 * The only thing a call may block on is that write (or syslog(3)'s send);
 * there is no lock, buffer or allocation. A short write or EAGAIN loses the
 * line rather than waiting. Every call preserves errno, and since errno is
 * restored before formatting, "%m" in a format works as in syslog(3).
 *
 * A disabled level costs one function call and one compare; guard arguments
 * that are expensive to compute with log_is_enabled().
 *
 * Not thread-safe and not async-signal-safe: call from the main loop (a SIGHUP
 * handler sets a flag; the loop calls log_open()).
 */
#ifndef SSE_LOG_H
#define SSE_LOG_H

/* Longest line written to stderr or a file, newline included. Below PIPE_BUF,
 * so a line to a pipe (a supervisor's stderr) is atomic too. */
#define LOG_LINE_MAX 2048

/* Ordered most to least severe; a message is written when its level is <= the
 * threshold. */
enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

/* Threshold before log_set_level() is called. */
#define LOG_LEVEL_DEFAULT LOG_LEVEL_INFO

/* "error", "warning", "notice", "info", "debug" (exact, lower case) -> *out;
 * 0, or -1 for anything else (*out untouched). */
int log_level_parse(const char *name, enum log_level *out);

/* The name log_level_parse() accepts; "unknown" for an out-of-range value.
 * Returns a static string. */
const char *log_level_name(enum log_level l);

/*
 * Choose the destination. ident (NULL = "sse-fcgi", cut at 31 bytes) is copied.
 *   use_syslog      syslog(3): openlog(ident, LOG_PID, LOG_DAEMON); path ignored
 *   path != NULL    open(path, O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, 0640)
 *   path == NULL    stderr
 * May be called again at any time (SIGHUP, after logrotate moved the file):
 * the new destination is opened first, then the previous file is closed (or
 * closelog() called), so a failed reopen keeps logging where it was.
 * 0, or -1 with errno set when the file cannot be opened (destination and
 * ident unchanged).
 */
int log_open(const char *path, int use_syslog, const char *ident);

/* Close a file or syslog destination and go back to stderr. Idempotent. */
void log_close(void);

void log_set_level(enum log_level l);
enum log_level log_get_level(void);

/* 1 if a message at level l would be written, else 0. */
int log_is_enabled(enum log_level l);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Log at error level whatever the threshold, then exit(1). Start-up only:
 * it runs atexit handlers and flushes stdio, it does not end streams. */
void fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
