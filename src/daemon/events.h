/* SPDX-License-Identifier: MIT */
/*
 * vireod's event stream: an in-memory ring of the last EVENTS_RING events, each with a sequence
 * number that only grows. Any thread publishes; readers (GET /api/v1/events, served as SSE) wait
 * on a condition variable for events after the last sequence number they saw, so a client that
 * reconnects with Last-Event-ID misses nothing still in the ring.
 *
 * Event types and their data (the API's contract, api/openapi.yaml "Event"):
 *   vm.created / vm.updated   the VM as GET /vms/{id} returns it
 *   vm.deleted                {id, name}
 *   vm.state                  {id, name, from, to, reason}
 *   task.created/task.updated {id, kind, vm_id, state, progress}
 *   task.log                  {id, line}
 */
#ifndef VIREO_DAEMON_EVENTS_H
#define VIREO_DAEMON_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct json_object;

#define EVENTS_RING 4096

struct event {
	uint64_t seq;
	char type[32]; /* "vm.state", ... */
	int64_t at_ms; /* wall clock, ms since the epoch */
	char *data; /* JSON text of the event's data (malloc'd) */
};

int events_init(void);
/* Wakes every waiter (they get -ESHUTDOWN) and frees the ring. */
void events_fini(void);

/* Publishes an event. data is serialised at once; the caller keeps ownership of it (NULL gives
 * {}). Thread-safe, never blocks on readers. */
void events_publish(const char *type, struct json_object *data);

/* The sequence number of the newest event (0 when none was published yet). */
uint64_t events_last_seq(void);

/* Copies up to max events with seq > after into out, oldest first, waiting up to timeout_ms for
 * the first one. Events older than the ring are gone: the copy starts at the oldest kept.
 * Returns the count (0 on timeout) or -ESHUTDOWN once events_shutdown() was called. The caller
 * frees the copies with events_release(). */
int events_wait(uint64_t after, struct event *out, int max, int timeout_ms);
void events_release(struct event *ev, int n);

/* Makes every current and future events_wait() return -ESHUTDOWN (daemon stopping). */
void events_shutdown(void);

#endif
