/* SPDX-License-Identifier: MIT */
/* The serial console's host side: the terminal (raw mode, Ctrl-A escape), a file, a unix socket
 * with one client, or nothing. Output is written by vCPU threads; input is read by the main loop
 * and handed to the UART as it has room. */
#ifndef VIREO_VMM_CONSOLE_H
#define VIREO_VMM_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "../common/capfile.h"
#include "config.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */
#define CONSOLE_BACKLOG (16 * 1024)
#define CONSOLE_REFUSALS_LOGGED 8

struct console {
	enum console_kind kind;
	int in_fd; /* -1: no input */
	int out_fd; /* -1: output dropped */
	int listen_fd; /* socket console */
	bool raw; /* terminal switched to raw mode, restore at exit */
	bool escape_enabled;
	bool escape_pending;
	struct termios saved;
	pthread_mutex_t out_lock;
	uint8_t pending[256]; /* input not yet taken by the UART */
	size_t npending, pending_off;
	const char *socket_path;
	/* File console: PATH without its ",max-size=" (owned), written through the cap. */
	char *file_path;
	struct capfile file;
	unsigned long refused; /* socket clients of another user turned away */
	/* Socket console: the last output, replayed to a client when it connects, so boot
	 * messages written before anyone listened are not lost. */
	uint8_t backlog[CONSOLE_BACKLOG];
	size_t backlog_head, backlog_len;
};

/* path: the socket path, or for a file "PATH[,max-size=SIZE]" (default cap 16 MiB). */
int console_open(struct console *c, enum console_kind kind, const char *path);
void console_close(struct console *c);
/* Restores the terminal; safe to call more than once and from die(). */
void console_restore(struct console *c);
void console_write(struct console *c, const uint8_t *buf, size_t len);

enum console_input_result {
	CONSOLE_INPUT_OK,
	CONSOLE_INPUT_QUIT,
	CONSOLE_INPUT_EOF
};
/* Reads what is waiting on in_fd into pending, handling the escape key. */
enum console_input_result console_read_input(struct console *c);
/* Feeds escape-processed input; exposed for tests. Appends to pending, returns QUIT on Ctrl-A x. */
enum console_input_result console_filter_input(struct console *c, const uint8_t *buf, size_t n);
/* Accepts a client on the socket console (replacing none: a second client is refused, and so
 * is one of another user than this process's or root). */
void console_accept(struct console *c);

#endif
