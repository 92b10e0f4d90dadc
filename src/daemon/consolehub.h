/* SPDX-License-Identifier: MIT */
/*
 * The serial consoles of running VMs. The VMM's console socket (`--console socket:PATH`) takes
 * one client; the hub is that client for every VM and fans the output out to any number of
 * viewers (websocket connections of GET /vms/{id}/console). It keeps the last 64 KiB of each
 * console in a ring, which a new viewer gets first. Input from any viewer goes to the VM.
 *
 * A viewer reads without blocking the hub: it polls consolehub_viewer_fd() (readable when new
 * output is there or the console closed) together with its own socket, then calls
 * consolehub_viewer_read(). A viewer that falls more than the ring behind skips ahead (it
 * loses output, never stalls the VM or other viewers).
 */
#ifndef VIREO_DAEMON_CONSOLEHUB_H
#define VIREO_DAEMON_CONSOLEHUB_H

#include <stddef.h>
#include <sys/types.h>

#define CONSOLEHUB_RING (64 * 1024)

struct consolehub;
struct console_viewer;

/* The hub the daemon created (the first consolehub_create), for the websocket handler. */
struct consolehub *consolehub_default(void);

/* Starts the hub's reader thread. */
int consolehub_create(struct consolehub **out);
/* Closes every console and viewer (viewers see end of stream) and frees the hub. */
void consolehub_destroy(struct consolehub *hub);

/* Connects to the VM's console socket (retrying up to timeout_ms while the VMM creates it).
 * Replaces an earlier attachment of the same vm_id. Called by the supervisor when a VM starts
 * or is re-attached. */
int consolehub_attach(struct consolehub *hub, const char *vm_id, const char *sock_path,
		      int timeout_ms);
/* Forgets the VM's console (the VM ended); its viewers see end of stream. */
void consolehub_detach(struct consolehub *hub, const char *vm_id);

/* A new viewer of vm_id. -ENOENT when the VM has no console attached (not running). */
int consolehub_open(struct consolehub *hub, const char *vm_id, struct console_viewer **out);
/* An fd (eventfd) that polls readable when consolehub_viewer_read has something to return. */
int consolehub_viewer_fd(const struct console_viewer *v);
/* Copies up to len bytes of output not yet seen by this viewer. Returns the count, 0 when
 * nothing is new (the fd is then cleared), or -EPIPE when the console ended and everything
 * was read. */
ssize_t consolehub_viewer_read(struct console_viewer *v, void *buf, size_t len);
/* Sends input to the VM. Returns len, or -EPIPE when the console has ended. */
ssize_t consolehub_viewer_write(struct console_viewer *v, const void *buf, size_t len);
void consolehub_close(struct console_viewer *v);

#endif
