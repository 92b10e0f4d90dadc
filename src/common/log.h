/* SPDX-License-Identifier: MIT */
/* Logging for vireo: messages go to stderr, prefixed with "vireo:" and the level. */
#ifndef VIREO_COMMON_LOG_H
#define VIREO_COMMON_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

enum log_level {
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG
};

/* Messages above this level are dropped. Default LOG_INFO; `-v` raises it, `-q` lowers it. */
extern enum log_level log_max_level;

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Restores the terminal (through the hook below) and exits with status 1. Only before the guest
 * starts, or for states the VMM cannot continue from. */
noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Called by die() before exiting, so a raw-mode terminal is never left behind. */
void log_set_exit_hook(void (*hook)(void));

/* While the console is in raw mode a bare "\n" does not return the carriage; log_msg then
 * writes "\r\n". */
void log_set_raw_terminal(int raw);

#define pr_err(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define pr_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define pr_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define pr_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
