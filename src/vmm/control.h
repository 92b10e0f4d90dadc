/* SPDX-License-Identifier: MIT */
/* The per-VM control socket (`vireo run --api-sock PATH`): newline-delimited JSON requests and
 * replies on a unix stream socket. The protocol is in docs/control-socket.md and
 * api/control-socket.schema.json. Runs in the main loop's thread. */
#ifndef VIREO_VMM_CONTROL_H
#define VIREO_VMM_CONTROL_H

#include <stddef.h>

#define CONTROL_MAX_CLIENTS 8
#define CONTROL_MAX_REQUEST 4096
#define CONTROL_REFUSALS_LOGGED 8

struct vm;

struct control;

struct control_client {
	int fd; /* -1: free slot */
	struct control *owner;
	char buf[CONTROL_MAX_REQUEST];
	size_t len;
};

struct control {
	int listen_fd;
	const char *path;
	struct control_client clients[CONTROL_MAX_CLIENTS];
	unsigned long refused; /* clients of another user turned away */
	struct vm *vm; /* set by control_watch: the VM served, whose main loop watches the fds */
};

int control_open(struct control *c, const char *path);
void control_close(struct control *c);
/* Accepts a client; returns its slot or -1. A client of another user (not root) is refused
 * with a reply saying so, and logged. */
int control_accept(struct control *c);
/* Reads and answers what client slot i sent. Returns 0, or -1 when the client is gone (its fd
 * is then closed and the slot freed; the caller drops it from its poll set first). */
int control_serve(struct control *c, int i, struct vm *vm);
/* Serves vm from its main loop: the listening socket and each client are fds watched there
 * (vm_watch_fd), so the loop knows nothing of the control socket. Returns 0 or -errno. */
int control_watch(struct control *c, struct vm *vm);

/* Handles one request line and writes the reply (one line, without newline) into out. Exposed
 * for tests. */
void control_handle(struct vm *vm, const char *request, char *out, size_t outlen);

/* control_virtio.c: commands of virtio devices (balloon, balloon-stats). Returns 1 with the
 * reply in out when cmd is one of them, else 0. req is a json_object. */
struct json_object;
int control_virtio_handle(struct vm *vm, const char *cmd, struct json_object *req, char *out,
			  size_t outlen);

#endif
