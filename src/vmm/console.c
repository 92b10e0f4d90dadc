// SPDX-License-Identifier: MIT
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/capfile.h"
#include "../common/log.h"
#include "../common/util.h"

int console_open(struct console *c, enum console_kind kind, const char *path)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->out_lock, NULL);
	c->kind = kind;
	c->in_fd = c->out_fd = c->listen_fd = -1;
	switch (kind) {
	case CONSOLE_STDIO:
		c->in_fd = STDIN_FILENO;
		c->out_fd = STDOUT_FILENO;
		if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &c->saved) == 0) {
			struct termios raw = c->saved;
			cfmakeraw(&raw);
			if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
				c->raw = true;
				c->escape_enabled = true;
				log_set_raw_terminal(1);
			}
		}
		return 0;
	case CONSOLE_FILE: {
		size_t len;
		uint64_t max;
		int err;

		if (capfile_parse_spec(path, &len, &max))
			return -EINVAL; /* checked with a message by config_parse_run */
		c->file_path = strndup(path, len);
		if (!c->file_path)
			return -ENOMEM;
		err = capfile_open(&c->file, c->file_path, max, false);
		if (err) {
			pr_err("console file %s: %s", c->file_path, strerror(-err));
			return err;
		}
		c->out_fd = c->file.fd;
		return 0;
	}
	case CONSOLE_SOCKET:
		c->listen_fd = unix_listen(path, 1);
		if (c->listen_fd < 0) {
			int err = c->listen_fd;
			pr_err("console socket %s: %s", path, unix_listen_strerror(err));
			c->listen_fd = -1;
			return err;
		}
		c->socket_path = path;
		return 0;
	case CONSOLE_NONE:
		return 0;
	}
	return -EINVAL;
}

void console_restore(struct console *c)
{
	if (c->raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &c->saved);
		c->raw = false;
		log_set_raw_terminal(0);
	}
}

void console_close(struct console *c)
{
	console_restore(c);
	if (c->kind == CONSOLE_FILE) {
		capfile_close(&c->file);
		free(c->file_path);
		c->file_path = NULL;
	}
	if (c->kind == CONSOLE_SOCKET) {
		if (c->in_fd >= 0)
			close(c->in_fd);
		if (c->listen_fd >= 0)
			close(c->listen_fd);
		if (c->socket_path)
			unlink(c->socket_path);
	}
	c->in_fd = c->out_fd = c->listen_fd = -1;
	pthread_mutex_destroy(&c->out_lock);
}

static void drop_client(struct console *c)
{
	if (c->kind != CONSOLE_SOCKET || c->in_fd < 0)
		return;
	close(c->in_fd);
	c->in_fd = c->out_fd = -1;
}

static void backlog_add(struct console *c, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		c->backlog[(c->backlog_head + c->backlog_len) % CONSOLE_BACKLOG] = buf[i];
		if (c->backlog_len < CONSOLE_BACKLOG)
			c->backlog_len++;
		else
			c->backlog_head = (c->backlog_head + 1) % CONSOLE_BACKLOG;
	}
}

/* Sends the backlog to a new client; what does not fit the socket buffer is dropped. */
static void backlog_replay(struct console *c, int fd)
{
	size_t first = MIN(c->backlog_len, CONSOLE_BACKLOG - c->backlog_head);

	if (send(fd, c->backlog + c->backlog_head, first, MSG_NOSIGNAL) == (ssize_t)first &&
	    c->backlog_len > first)
		if (send(fd, c->backlog, c->backlog_len - first, MSG_NOSIGNAL) < 0)
			pr_debug("console: backlog replay cut short");
}

void console_write(struct console *c, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&c->out_lock);
	if (c->kind == CONSOLE_SOCKET)
		backlog_add(c, buf, len);
	while (len && c->out_fd >= 0) {
		ssize_t n;

		if (c->kind == CONSOLE_SOCKET)
			n = send(c->out_fd, buf, len, MSG_NOSIGNAL);
		else if (c->kind == CONSOLE_FILE)
			n = capfile_write(&c->file, buf, len);
		else
			n = write(c->out_fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break; /* a stalled socket client loses output rather than the guest */
		if (n <= 0) {
			if (c->kind == CONSOLE_SOCKET)
				drop_client(c);
			else
				c->out_fd = -1; /* output closed: keep the guest running */
			break;
		}
		buf += n;
		len -= (size_t)n;
	}
	pthread_mutex_unlock(&c->out_lock);
}

void console_accept(struct console *c)
{
	static const char denied[] = "vireo: permission denied: not this VM's user\r\n";
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	uid_t uid = (uid_t)-1;
	pid_t pid = 0;

	if (fd < 0)
		return;
	if (unix_peer_check(fd, &uid, &pid)) {
		/* The console is the guest's keyboard: only this user or root may have it. */
		if (c->refused++ < CONSOLE_REFUSALS_LOGGED)
			pr_warn("console socket: refused a client of uid %d (pid %d): not this "
				"VM's user or root",
				(int)uid, (int)pid);
		if (send(fd, denied, sizeof(denied) - 1, MSG_NOSIGNAL) < 0)
			pr_debug("console: could not tell a refused client why");
		close(fd);
		return;
	}
	pthread_mutex_lock(&c->out_lock);
	if (c->in_fd >= 0) {
		pthread_mutex_unlock(&c->out_lock);
		static const char busy[] = "vireo: console already in use\r\n";
		if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL) < 0)
			pr_debug("console: could not tell a second client it is refused");
		close(fd);
		return;
	}
	backlog_replay(c, fd);
	c->in_fd = c->out_fd = fd;
	pthread_mutex_unlock(&c->out_lock);
}

enum console_input_result console_filter_input(struct console *c, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t b = buf[i];

		if (c->npending + 2 > sizeof(c->pending))
			break; /* caller reads at most sizeof(pending)/2 bytes at a time */
		if (c->escape_enabled && c->escape_pending) {
			c->escape_pending = false;
			if (b == 'x' || b == 'X')
				return CONSOLE_INPUT_QUIT;
			if (b != CONSOLE_ESCAPE)
				c->pending[c->npending++] = CONSOLE_ESCAPE;
			c->pending[c->npending++] = b;
			continue;
		}
		if (c->escape_enabled && b == CONSOLE_ESCAPE) {
			c->escape_pending = true;
			continue;
		}
		c->pending[c->npending++] = b;
	}
	return CONSOLE_INPUT_OK;
}

enum console_input_result console_read_input(struct console *c)
{
	uint8_t buf[sizeof(c->pending) / 2];
	ssize_t n;

	if (c->in_fd < 0)
		return CONSOLE_INPUT_EOF;
	c->npending = c->pending_off = 0;
	n = read(c->in_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return CONSOLE_INPUT_OK;
	if (n <= 0) {
		if (c->kind == CONSOLE_SOCKET) {
			pthread_mutex_lock(&c->out_lock);
			drop_client(c);
			pthread_mutex_unlock(&c->out_lock);
			return CONSOLE_INPUT_OK;
		}
		return CONSOLE_INPUT_EOF;
	}
	return console_filter_input(c, buf, (size_t)n);
}
