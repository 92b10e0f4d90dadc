// SPDX-License-Identifier: MIT
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum log_level log_max_level = LOG_INFO;
static void (*exit_hook)(void);
static int raw_terminal;

void log_set_exit_hook(void (*hook)(void))
{
	exit_hook = hook;
}

void log_set_raw_terminal(int raw)
{
	raw_terminal = raw;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	char buf[2048];
	int n;

	n = snprintf(buf, sizeof(buf), "vireo: %s", prefix[level]);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	n = (int)strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	/* One write per message, so lines from vCPU threads do not interleave. */
	if (raw_terminal)
		fprintf(stderr, "%s\r\n", buf);
	else
		fprintf(stderr, "%s\n", buf);
}

/* errno is the caller's after logging: a failed write to stderr must not change the error a
 * caller reports next (pr_err("...: %s", strerror(errno)); return -errno;). */
void log_msg(enum log_level level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
	errno = saved;
}

void die(const char *fmt, ...)
{
	va_list ap;

	if (exit_hook)
		exit_hook();
	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
