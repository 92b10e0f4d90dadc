// SPDX-License-Identifier: MIT
/*
 * Console fan-out (consolehub.h). One reader thread polls every attached console socket and
 * appends what arrives to that console's ring; each viewer keeps its own position in the
 * ring's byte stream and an eventfd the reader pokes. Viewers never block the reader: a slow
 * one skips ahead when the ring wraps past it.
 */
#include "consolehub.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"

struct hub_console {
	char vm_id[40];
	int fd;
	uint8_t *ring; /* CONSOLEHUB_RING bytes */
	uint64_t written; /* bytes ever appended: the ring holds the last CONSOLEHUB_RING */
	bool ended;
	int refs; /* the hub's list (1 while attached) + open viewers */
	struct console_viewer *viewers;
	struct hub_console *next;
};

struct console_viewer {
	struct consolehub *hub;
	struct hub_console *con;
	uint64_t pos;
	int efd;
	struct console_viewer *next;
};

struct consolehub {
	pthread_mutex_t lock;
	int epfd;
	int wakefd;
	bool stopping;
	pthread_t thread;
	struct hub_console *consoles;
};

static struct consolehub *default_hub;

struct consolehub *consolehub_default(void)
{
	return default_hub;
}

static void poke(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) < 0)
		pr_debug("consolehub: eventfd write: %s", strerror(errno));
}

/* Drops one reference (lock held); frees the console with the last. */
static void con_put(struct hub_console *c)
{
	if (--c->refs > 0)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->ring);
	free(c);
}

/* Marks c ended, tells its viewers, removes it from the hub (lock held). */
static void con_end(struct consolehub *hub, struct hub_console *c)
{
	struct hub_console **pp = &hub->consoles;

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	*pp = c->next;
	c->ended = true;
	epoll_ctl(hub->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	shutdown(c->fd, SHUT_RDWR);
	for (struct console_viewer *v = c->viewers; v; v = v->next)
		poke(v->efd);
	con_put(c);
}

static void con_append(struct hub_console *c, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t off = (size_t)(c->written % CONSOLEHUB_RING);
		size_t chunk = CONSOLEHUB_RING - off;
		if (chunk > n - i)
			chunk = n - i;
		memcpy(c->ring + off, buf + i, chunk);
		c->written += chunk;
		i += chunk;
	}
	for (struct console_viewer *v = c->viewers; v; v = v->next)
		poke(v->efd);
}

static void *reader(void *arg)
{
	struct consolehub *hub = arg;
	struct epoll_event ev[16];
	uint8_t buf[4096];

	for (;;) {
		int n = epoll_wait(hub->epfd, ev, 16, -1);
		pthread_mutex_lock(&hub->lock);
		if (hub->stopping) {
			pthread_mutex_unlock(&hub->lock);
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			struct hub_console *c = ev[i].data.ptr;
			if (!c)
				continue; /* the wake fd: only to notice stopping */
			bool found = false;
			for (struct hub_console *x = hub->consoles; x; x = x->next)
				found |= x == c;
			if (!found)
				continue;
			ssize_t got = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (got > 0)
				con_append(c, buf, (size_t)got);
			else if (got == 0 || (errno != EAGAIN && errno != EINTR))
				con_end(hub, c);
		}
		pthread_mutex_unlock(&hub->lock);
	}
}

int consolehub_create(struct consolehub **out)
{
	struct consolehub *hub = calloc(1, sizeof(*hub));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int ret;

	if (!hub)
		return -ENOMEM;
	pthread_mutex_init(&hub->lock, NULL);
	hub->epfd = epoll_create1(EPOLL_CLOEXEC);
	hub->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (hub->epfd < 0 || hub->wakefd < 0 ||
	    epoll_ctl(hub->epfd, EPOLL_CTL_ADD, hub->wakefd, &ev)) {
		ret = -errno;
		goto err_free;
	}
	ret = -pthread_create(&hub->thread, NULL, reader, hub);
	if (ret)
		goto err_free;
	if (!default_hub)
		default_hub = hub;
	*out = hub;
	return 0;

err_free:
	if (hub->epfd >= 0)
		close(hub->epfd);
	if (hub->wakefd >= 0)
		close(hub->wakefd);
	free(hub);
	return ret;
}

void consolehub_destroy(struct consolehub *hub)
{
	if (!hub)
		return;
	pthread_mutex_lock(&hub->lock);
	hub->stopping = true;
	poke(hub->wakefd);
	pthread_mutex_unlock(&hub->lock);
	pthread_join(hub->thread, NULL);
	pthread_mutex_lock(&hub->lock);
	while (hub->consoles)
		con_end(hub, hub->consoles);
	pthread_mutex_unlock(&hub->lock);
	/* Viewers still open keep their console alive until consolehub_close; they must not
	 * outlive the hub's lock, so the HTTP side closes them first (http_stop). */
	close(hub->epfd);
	close(hub->wakefd);
	if (default_hub == hub)
		default_hub = NULL;
	pthread_mutex_destroy(&hub->lock);
	free(hub);
}

static int connect_retry(const char *path, int timeout_ms)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct timespec ts = { 0, 20 * 1000000 };
	int fd, err = -ENOENT;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, strlen(path) + 1);
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		err = -errno;
		close(fd);
		if (err != -ENOENT && err != -ECONNREFUSED)
			break;
		nanosleep(&ts, NULL);
	}
	return err;
}

int consolehub_attach(struct consolehub *hub, const char *vm_id, const char *sock_path,
		      int timeout_ms)
{
	struct hub_console *c = calloc(1, sizeof(*c));
	struct epoll_event ev = { .events = EPOLLIN };
	int fd;

	if (!c)
		return -ENOMEM;
	c->ring = malloc(CONSOLEHUB_RING);
	fd = connect_retry(sock_path, timeout_ms);
	if (!c->ring || fd < 0) {
		free(c->ring);
		free(c);
		if (fd >= 0)
			close(fd);
		return fd < 0 ? fd : -ENOMEM;
	}
	snprintf(c->vm_id, sizeof(c->vm_id), "%s", vm_id);
	c->fd = fd;
	c->refs = 1;
	ev.data.ptr = c;
	consolehub_detach(hub, vm_id);
	pthread_mutex_lock(&hub->lock);
	if (epoll_ctl(hub->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		int err = -errno;
		pthread_mutex_unlock(&hub->lock);
		close(fd);
		free(c->ring);
		free(c);
		return err;
	}
	c->next = hub->consoles;
	hub->consoles = c;
	pthread_mutex_unlock(&hub->lock);
	return 0;
}

void consolehub_detach(struct consolehub *hub, const char *vm_id)
{
	pthread_mutex_lock(&hub->lock);
	for (struct hub_console *c = hub->consoles; c; c = c->next) {
		if (!strcmp(c->vm_id, vm_id)) {
			con_end(hub, c);
			break;
		}
	}
	pthread_mutex_unlock(&hub->lock);
}

int consolehub_open(struct consolehub *hub, const char *vm_id, struct console_viewer **out)
{
	struct console_viewer *v = calloc(1, sizeof(*v));
	struct hub_console *c;

	if (!v)
		return -ENOMEM;
	v->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->efd < 0) {
		free(v);
		return -EMFILE;
	}
	pthread_mutex_lock(&hub->lock);
	for (c = hub->consoles; c && strcmp(c->vm_id, vm_id); c = c->next)
		;
	if (!c) {
		pthread_mutex_unlock(&hub->lock);
		close(v->efd);
		free(v);
		return -ENOENT;
	}
	v->hub = hub;
	v->con = c;
	v->pos = c->written > CONSOLEHUB_RING ? c->written - CONSOLEHUB_RING : 0;
	v->next = c->viewers;
	c->viewers = v;
	c->refs++;
	if (c->written)
		poke(v->efd);
	pthread_mutex_unlock(&hub->lock);
	*out = v;
	return 0;
}

int consolehub_viewer_fd(const struct console_viewer *v)
{
	return v->efd;
}

ssize_t consolehub_viewer_read(struct console_viewer *v, void *buf, size_t len)
{
	struct hub_console *c = v->con;
	uint64_t drain;
	size_t n = 0;

	pthread_mutex_lock(&v->hub->lock);
	if (c->written - v->pos > CONSOLEHUB_RING)
		v->pos = c->written - CONSOLEHUB_RING; /* fell behind: skip what was overwritten */
	while (n < len && v->pos < c->written) {
		size_t off = (size_t)(v->pos % CONSOLEHUB_RING);
		size_t chunk = CONSOLEHUB_RING - off;
		if (chunk > c->written - v->pos)
			chunk = (size_t)(c->written - v->pos);
		if (chunk > len - n)
			chunk = len - n;
		memcpy((uint8_t *)buf + n, c->ring + off, chunk);
		n += chunk;
		v->pos += chunk;
	}
	if (v->pos == c->written) {
		if (read(v->efd, &drain, sizeof(drain)) < 0)
			drain = 0; /* nothing pending: fine */
		if (c->ended)
			poke(v->efd); /* stays readable so the caller sees -EPIPE */
	}
	bool ended = c->ended;
	pthread_mutex_unlock(&v->hub->lock);
	if (n == 0 && ended)
		return -EPIPE;
	return (ssize_t)n;
}

ssize_t consolehub_viewer_write(struct console_viewer *v, const void *buf, size_t len)
{
	ssize_t ret = (ssize_t)len;
	size_t off = 0;

	pthread_mutex_lock(&v->hub->lock);
	while (!v->con->ended && off < len) {
		ssize_t n = send(v->con->fd, (const uint8_t *)buf + off, len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* The VMM reads its console input slowly: wait a little, never forever. */
			struct pollfd p = { .fd = v->con->fd, .events = POLLOUT };
			if (poll(&p, 1, 100) <= 0)
				break;
			continue;
		}
		ret = -EPIPE;
		break;
	}
	if (v->con->ended)
		ret = -EPIPE;
	pthread_mutex_unlock(&v->hub->lock);
	return ret;
}

void consolehub_close(struct console_viewer *v)
{
	struct consolehub *hub;
	struct console_viewer **pp;

	if (!v)
		return;
	hub = v->hub;
	pthread_mutex_lock(&hub->lock);
	for (pp = &v->con->viewers; *pp && *pp != v; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = v->next;
	con_put(v->con);
	pthread_mutex_unlock(&hub->lock);
	close(v->efd);
	free(v);
}
