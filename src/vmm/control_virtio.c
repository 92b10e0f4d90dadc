// SPDX-License-Identifier: MIT
/* Control socket commands of virtio devices that the host steers at run time: the balloon's
 * target and statistics. Kept apart from control.c, which dispatches here for commands it does
 * not know. Runs on the main loop's thread; the devices take their own locks. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "../virtio/devices.h"
#include "control.h"
#include "vm.h"

static void reply(json_object *r, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
}

static void reply_error(char *out, size_t outlen, const char *msg)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", json_object_new_string(msg));
	reply(r, out, outlen);
}

static void add_u64(json_object *r, const char *key, uint64_t v)
{
	json_object_object_add(r, key, json_object_new_int64((int64_t)v));
}

static void add_balloon(json_object *r, const struct balloon_status *st)
{
	add_u64(r, "target_mib", st->target_bytes >> 20);
	add_u64(r, "actual_mib", st->actual_bytes >> 20);
	add_u64(r, "target_pages", st->target_bytes >> 12);
	add_u64(r, "actual_pages", st->actual_bytes >> 12);
	add_u64(r, "inflated_pages", st->inflated_pages);
	add_u64(r, "deflated_pages", st->deflated_pages);
	add_u64(r, "discarded_bytes", st->discarded_bytes);
	add_u64(r, "reported_bytes", st->reported_bytes);
	json_object_object_add(r, "driver_ok", json_object_new_boolean(st->driver_ok));
}

/* {"cmd":"balloon","target_mib":N}: N MiB of guest RAM in the balloon (0 deflates it all). */
static void handle_balloon(struct vm *vm, json_object *req, char *out, size_t outlen)
{
	struct balloon_status st;
	json_object *arg, *r;
	int64_t mib;
	int ret;

	if (!json_object_object_get_ex(req, "target_mib", &arg) ||
	    !json_object_is_type(arg, json_type_int) || (mib = json_object_get_int64(arg)) < 0) {
		reply_error(out, outlen, "balloon needs \"target_mib\": a number of MiB >= 0");
		return;
	}
	/* 2^30 MiB is past any RAM and keeps the shift below from overflowing. */
	ret = mib > (1LL << 30)
		      ? -ERANGE
		      : virtio_balloon_set_target(vm->virtio_balloon, (uint64_t)mib << 20);
	if (ret) {
		reply_error(out, outlen,
			    ret == -ERANGE ? "target_mib is larger than guest RAM"
					   : strerror(-ret));
		return;
	}
	virtio_balloon_get_status(vm->virtio_balloon, &st);
	r = json_object_new_object();
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	add_balloon(r, &st);
	reply(r, out, outlen);
}

/* {"cmd":"balloon-stats"}: the latest statistics the guest sent, and a request for fresh ones
 * (they arrive asynchronously: stats_age_ms says how old these are). */
static void handle_balloon_stats(struct vm *vm, char *out, size_t outlen)
{
	struct balloon_status st;
	json_object *r, *stats;
	int ret = virtio_balloon_request_stats(vm->virtio_balloon);

	virtio_balloon_get_status(vm->virtio_balloon, &st);
	r = json_object_new_object();
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	add_balloon(r, &st);
	stats = json_object_new_object();
	for (unsigned int i = 0; i < BALLOON_NR_STATS; i++)
		if (st.stats_mask & (1u << i))
			add_u64(stats, virtio_balloon_stat_names[i], st.stats[i]);
	json_object_object_add(r, "stats", stats);
	add_u64(r, "stats_updates", st.stats_updates);
	json_object_object_add(r, "stats_age_ms", json_object_new_int64(st.stats_age_ms));
	json_object_object_add(r, "stats_supported", json_object_new_boolean(ret != -ENOTSUP));
	reply(r, out, outlen);
}

int control_virtio_handle(struct vm *vm, const char *cmd, json_object *req, char *out,
			  size_t outlen)
{
	if (!strcmp(cmd, "balloon") || !strcmp(cmd, "balloon-stats")) {
		if (!vm->virtio_balloon)
			reply_error(out, outlen, "this VM has no balloon (vireo run --balloon)");
		else if (!strcmp(cmd, "balloon"))
			handle_balloon(vm, req, out, outlen);
		else
			handle_balloon_stats(vm, out, outlen);
		return 1;
	}
	return 0;
}
