// SPDX-License-Identifier: MIT
/*
 * The event ring. One mutex guards it; readers sleep on a condition variable and copy what they
 * need, so a slow SSE client never holds the lock while writing to its socket and never slows a
 * publisher down (it just falls behind and, if it falls further than the ring, loses the oldest).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/util.h"
#include "events.h"

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond;
static struct event *ev_ring; /* EVENTS_RING slots; slot of seq s is s % EVENTS_RING */
static uint64_t ev_last; /* newest seq; events (ev_last - kept, ev_last] are in the ring */
static int ev_down;
static int ev_ready;

int events_init(void)
{
	pthread_condattr_t attr;

	pthread_mutex_lock(&ev_lock);
	if (ev_ready) {
		pthread_mutex_unlock(&ev_lock);
		return 0;
	}
	ev_ring = calloc(EVENTS_RING, sizeof(*ev_ring));
	if (!ev_ring) {
		pthread_mutex_unlock(&ev_lock);
		return -ENOMEM;
	}
	/* Waits use the monotonic clock: a wall clock step must not stall an event stream. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ev_cond, &attr);
	pthread_condattr_destroy(&attr);
	ev_last = 0;
	ev_down = 0;
	ev_ready = 1;
	pthread_mutex_unlock(&ev_lock);
	return 0;
}

void events_shutdown(void)
{
	pthread_mutex_lock(&ev_lock);
	ev_down = 1;
	if (ev_ready)
		pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
}

void events_fini(void)
{
	events_shutdown();
	pthread_mutex_lock(&ev_lock);
	if (ev_ready) {
		for (int i = 0; i < EVENTS_RING; i++)
			free(ev_ring[i].data);
		free(ev_ring);
		ev_ring = NULL;
		pthread_cond_destroy(&ev_cond);
		ev_ready = 0;
	}
	pthread_mutex_unlock(&ev_lock);
}

void events_publish(const char *type, struct json_object *data)
{
	const char *txt =
		data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "{}";
	char *copy = strdup(txt);
	struct event *slot;

	if (!copy)
		return;
	pthread_mutex_lock(&ev_lock);
	if (!ev_ready) {
		pthread_mutex_unlock(&ev_lock);
		free(copy);
		return;
	}
	ev_last++;
	slot = &ev_ring[ev_last % EVENTS_RING];
	free(slot->data);
	slot->seq = ev_last;
	snprintf(slot->type, sizeof(slot->type), "%s", type);
	slot->at_ms = clock_ns(CLOCK_REALTIME) / 1000000;
	slot->data = copy;
	pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
}

uint64_t events_last_seq(void)
{
	uint64_t s;

	pthread_mutex_lock(&ev_lock);
	s = ev_last;
	pthread_mutex_unlock(&ev_lock);
	return s;
}

/* Copies the events after `after` that are still kept; called with ev_lock held. */
static int events_copy(uint64_t after, struct event *out, int max)
{
	uint64_t oldest = ev_last >= EVENTS_RING ? ev_last - EVENTS_RING + 1 : 1;
	int n = 0;

	if (after + 1 < oldest)
		after = oldest - 1;
	for (uint64_t s = after + 1; s <= ev_last && n < max; s++) {
		const struct event *e = &ev_ring[s % EVENTS_RING];

		out[n] = *e;
		out[n].data = strdup(e->data);
		if (!out[n].data)
			break;
		n++;
	}
	return n;
}

int events_wait(uint64_t after, struct event *out, int max, int timeout_ms)
{
	struct timespec until;
	int n = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ev_lock);
	for (;;) {
		if (ev_down || !ev_ready) {
			n = -ESHUTDOWN;
			break;
		}
		if (ev_last > after) {
			n = events_copy(after, out, max);
			break;
		}
		if (pthread_cond_timedwait(&ev_cond, &ev_lock, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&ev_lock);
	return n;
}

void events_release(struct event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		free(ev[i].data);
		ev[i].data = NULL;
	}
}
