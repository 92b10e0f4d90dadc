// SPDX-License-Identifier: MIT
/*
 * The supervisor's API side (supervisor.h "VM resources" and "Host"): create, read, list, patch
 * and delete VMs, queue actions, history, stats, host summary and metrics. The table and the
 * VMM side are in supervisor.c, the actions in supervisor_actions.c.
 */
#include "supervisor_int.h"

#include <errno.h>
#include <fnmatch.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/log.h"

/* ---- API: VM resources ------------------------------------------------------------------ */

static int not_found(struct derror *e, const char *id)
{
	derror_set(e, "not_found", "no VM '%s'", id);
	return -ENOENT;
}

int supervisor_vm_create(struct supervisor *sv, json_object *body, json_object **vm_out,
			 struct derror *e)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct store_vm row = { 0 };
	json_object *tags;
	int ret;

	if (!vm)
		return -ENOMEM;
	ret = vmdef_from_json(body, false, &vm->def, e);
	if (ret) {
		free(vm);
		return ret;
	}
	store_uuid(vm->id);
	vm->def_json = vmdef_to_json(&vm->def);
	vm->reason = strdup("defined by api");
	snprintf(vm->state, sizeof(vm->state), "defined");
	store_now(vm->created_at);
	memcpy(vm->updated_at, vm->created_at, sizeof(vm->created_at));
	memcpy(vm->state_changed_at, vm->created_at, sizeof(vm->created_at));
	vm->generation = 1;
	vm->pidfd = -1;
	sv_vm_paths(sv, vm);
	memcpy(row.id, vm->id, sizeof(row.id));
	snprintf(row.name, sizeof(row.name), "%s", vm->def.name);
	memcpy(row.state, vm->state, sizeof(row.state));
	row.state_reason = vm->reason;
	memcpy(row.state_changed_at, vm->created_at, sizeof(row.created_at));
	memcpy(row.created_at, vm->created_at, sizeof(row.created_at));
	memcpy(row.updated_at, vm->created_at, sizeof(row.created_at));
	row.generation = 1;
	row.autostart = vm->def.autostart;
	row.def_json = (char *)json_object_to_json_string_ext(vm->def_json, JSON_C_TO_STRING_PLAIN);
	tags = vmdef_tags_json(&vm->def);

	pthread_mutex_lock(&sv->lock);
	if (sv_find(sv, vm->def.name) || sv_find(sv, vm->id)) {
		ret = -EEXIST;
	} else {
		ret = store_vm_insert(sv->cfg.store, &row, tags);
		if (!ret)
			ret = sv_table_add(sv, vm);
	}
	if (!ret)
		*vm_out = sv_vm_json(vm);
	pthread_mutex_unlock(&sv->lock);
	json_object_put(tags);
	if (ret) {
		if (ret == -EEXIST)
			derror_set(e, "name_taken", "a VM named '%s' exists", vm->def.name);
		else
			derror_set(e, "internal", "storing the VM failed");
		sv_vm_free(vm);
		return ret;
	}
	sv_publish(sv, "vm.created", json_object_get(*vm_out));
	return 0;
}

int supervisor_vm_get(struct supervisor *sv, const char *id, json_object **vm_out, struct derror *e)
{
	struct vm *vm;

	pthread_mutex_lock(&sv->lock);
	vm = sv_find(sv, id);
	if (vm)
		*vm_out = sv_vm_json(vm);
	pthread_mutex_unlock(&sv->lock);
	return vm ? 0 : not_found(e, id);
}

static bool vm_matches(const struct vm *vm, const struct vm_filter *f)
{
	bool tag = !f->tag;

	if (f->state && strcmp(vm->state, f->state))
		return false;
	if (f->name_glob && fnmatch(f->name_glob, vm->def.name, 0))
		return false;
	for (int i = 0; !tag && i < vm->def.ntags; i++)
		tag = !strcmp(vm->def.tags[i], f->tag);
	return tag;
}

int supervisor_vm_list(struct supervisor *sv, const struct vm_filter *f, json_object **out,
		       struct derror *e)
{
	int limit = f->limit <= 0 ? 100 : f->limit, total = 0;
	json_object *items;
	bool state_ok = !f->state;

	for (size_t i = 0; f->state && i < SUPERVISOR_NSTATES; i++)
		state_ok |= !strcmp(f->state, supervisor_states[i]);
	if (!state_ok || limit > 1000 || f->offset < 0) {
		derror_set(e, "invalid_value",
			   state_ok ? "limit is 1..1000 and offset >= 0" : "unknown state '%s'",
			   f->state);
		return -EINVAL;
	}
	items = json_object_new_array();
	pthread_mutex_lock(&sv->lock);
	for (size_t i = 0; i < sv->nvms; i++) {
		if (!vm_matches(sv->vms[i], f))
			continue;
		if (total >= f->offset && total < f->offset + limit)
			json_object_array_add(items, sv_vm_list_item(sv->vms[i]));
		total++;
	}
	pthread_mutex_unlock(&sv->lock);
	*out = json_object_new_object();
	json_object_object_add(*out, "items", items);
	json_object_object_add(*out, "total", json_object_new_int(total));
	json_object_object_add(*out, "limit", json_object_new_int(limit));
	json_object_object_add(*out, "offset", json_object_new_int(f->offset));
	return 0;
}

static bool idle_state(const char *s)
{
	return !strcmp(s, "defined") || !strcmp(s, "stopped") || !strcmp(s, "crashed");
}

/* Applies a parsed new definition to vm (lock held). */
static int apply_def(struct supervisor *sv, struct vm *vm, struct vm_def *nd, struct derror *e)
{
	json_object *nj = vmdef_to_json(nd), *tags = vmdef_tags_json(nd);
	char now[STORE_TIME_LEN];
	struct vm *other = sv_find(sv, nd->name);
	int ret = -EEXIST;

	store_now(now);
	if (!other || other == vm)
		ret = store_vm_update_def(
			sv->cfg.store, vm->id, vm->generation, nd->name, nd->autostart,
			json_object_to_json_string_ext(nj, JSON_C_TO_STRING_PLAIN), tags, now);
	json_object_put(tags);
	if (ret) {
		json_object_put(nj);
		if (ret == -EEXIST)
			derror_set(e, "name_taken", "a VM named '%s' exists", nd->name);
		else
			derror_set(e, ret == -ESTALE ? "generation_mismatch" : "internal",
				   "updating the VM failed");
		return ret;
	}
	vmdef_free(&vm->def);
	vm->def = *nd;
	json_object_put(vm->def_json);
	vm->def_json = nj;
	vm->generation++;
	memcpy(vm->updated_at, now, sizeof(now));
	sv_vm_dirty(vm);
	return 0;
}

/* Whether nd differs from the definition old only in the members that may change while a VMM
 * runs. */
static bool only_live_changes(json_object *old, const struct vm_def *nd)
{
	static const char *const live[] = { "description", "tags", "autostart", "restart_policy" };
	json_object *a = NULL, *b = vmdef_to_json(nd);
	bool same;

	json_object_deep_copy(old, &a, NULL);
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		json_object_object_del(a, live[i]);
		json_object_object_del(b, live[i]);
	}
	same = json_object_equal(a, b);
	json_object_put(a);
	json_object_put(b);
	return same;
}

int supervisor_vm_patch(struct supervisor *sv, const char *id, json_object *patch, int64_t if_match,
			json_object **vm_out, struct derror *e)
{
	static const char *const readonly[] = { "id",		"state",
						"state_reason", "state_changed_at",
						"generation",	"created_at",
						"updated_at",	"pid" };
	struct vm_def nd;
	json_object *merged;
	struct vm *vm;
	int ret;

	if (!patch || !json_object_is_type(patch, json_type_object)) {
		derror_set(e, "invalid_value", "a merge patch must be a JSON object");
		return -EINVAL;
	}
	pthread_mutex_lock(&sv->lock);
	vm = sv_find(sv, id);
	if (!vm) {
		pthread_mutex_unlock(&sv->lock);
		return not_found(e, id);
	}
	if (if_match >= 0 && if_match != vm->generation) {
		derror_set(e, "generation_mismatch", "the VM is at generation %lld, not %lld",
			   (long long)vm->generation, (long long)if_match);
		ret = -ESTALE;
	} else {
		/* Read-only members (a GET reply sent back) are ignored. */
		merged = vmdef_merge_patch(vm->def_json, patch);
		for (size_t i = 0; i < sizeof(readonly) / sizeof(readonly[0]); i++)
			json_object_object_del(merged, readonly[i]);
		ret = vmdef_from_json(merged, false, &nd, e);
		json_object_put(merged);
		if (!ret && !idle_state(vm->state) && !only_live_changes(vm->def_json, &nd)) {
			derror_set(e, "invalid_state",
				   "the VM is %s: only description, tags, autostart and "
				   "restart_policy can change now",
				   vm->state);
			ret = -EBUSY;
			vmdef_free(&nd);
		} else if (!ret) {
			ret = apply_def(sv, vm, &nd, e);
			if (ret)
				vmdef_free(&nd);
		}
	}
	if (!ret)
		*vm_out = sv_vm_json(vm);
	pthread_mutex_unlock(&sv->lock);
	if (!ret)
		sv_publish(sv, "vm.updated", json_object_get(*vm_out));
	return ret;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) ? -errno : 0;
}

int supervisor_vm_delete(struct supervisor *sv, const char *id, struct derror *e)
{
	json_object *ev;
	struct vm *vm;
	size_t i;
	int ret;

	pthread_mutex_lock(&sv->lock);
	vm = sv_find(sv, id);
	if (!vm) {
		pthread_mutex_unlock(&sv->lock);
		return not_found(e, id);
	}
	if (!idle_state(vm->state) || vm->vmm_pid || task_pending(sv->cfg.tasks, vm->id)) {
		derror_set(e, "invalid_state", "the VM is %s%s: stop it first", vm->state,
			   task_pending(sv->cfg.tasks, vm->id) ? " with tasks queued" : "");
		pthread_mutex_unlock(&sv->lock);
		return -EBUSY;
	}
	ret = store_vm_delete(sv->cfg.store, vm->id);
	if (ret) {
		derror_set(e, "internal", "deleting the VM failed");
		pthread_mutex_unlock(&sv->lock);
		return ret;
	}
	for (i = 0; sv->vms[i] != vm; i++)
		;
	memmove(&sv->vms[i], &sv->vms[i + 1], (sv->nvms - i - 1) * sizeof(sv->vms[0]));
	sv->nvms--;
	pthread_mutex_unlock(&sv->lock);
	if (nftw(vm->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
		pr_warn("vm %s: could not remove all of %s", vm->def.name, vm->dir);
	ev = json_object_new_object();
	json_object_object_add(ev, "id", json_object_new_string(vm->id));
	json_object_object_add(ev, "name", json_object_new_string(vm->def.name));
	sv_publish(sv, "vm.deleted", ev);
	sv_vm_free(vm);
	return 0;
}

int supervisor_vm_action(struct supervisor *sv, const char *id, const char *action,
			 json_object *args, const char *principal, json_object **task_out,
			 struct derror *e)
{
	char vm_id[STORE_ID_LEN], by[160];
	struct vm *vm;
	int ret;

	if (!sv_action_known(action)) {
		derror_set(e, "not_found",
			   "no action '%s' (start, shutdown, stop, reboot, reset, pause, resume, "
			   "snapshot, migrate)",
			   action);
		return -ENOENT;
	}
	ret = sv_action_check_args(action, args, e);
	if (ret)
		return ret;
	pthread_mutex_lock(&sv->lock);
	vm = sv_find(sv, id);
	if (!vm) {
		pthread_mutex_unlock(&sv->lock);
		return not_found(e, id);
	}
	memcpy(vm_id, vm->id, sizeof(vm_id));
	/* With nothing queued the answer is certain now; otherwise the task decides. */
	if (!sv_action_allowed(action, vm->state) && !task_pending(sv->cfg.tasks, vm->id)) {
		derror_set(e, "invalid_state", "cannot %s a VM that is %s", action, vm->state);
		pthread_mutex_unlock(&sv->lock);
		return -EBUSY;
	}
	pthread_mutex_unlock(&sv->lock);
	snprintf(by, sizeof(by), "api (%s)", principal ? principal : "anonymous");
	ret = sv_action_submit(sv, vm_id, action, args, principal, by, task_out);
	if (ret)
		derror_set(e, ret == -ESHUTDOWN ? "shutting_down" : "internal",
			   "queueing the task failed");
	return ret;
}

/* The ids a bulk body selects: {"ids":[...]} or {"tag":"t"}. */
static int bulk_ids(struct supervisor *sv, json_object *body, json_object **ids, struct derror *e)
{
	json_object *v;

	if (body && json_object_is_type(body, json_type_object)) {
		json_object_object_foreach(body, k, val)
		{
			(void)val;
			if (strcmp(k, "ids") && strcmp(k, "tag") && strcmp(k, "args")) {
				derror_set(e, "unknown_field", "unknown field '%s'", k);
				return -EINVAL;
			}
		}
	}
	if (body && json_object_object_get_ex(body, "ids", &v)) {
		if (!json_object_is_type(v, json_type_array)) {
			derror_set(e, "invalid_value", "'ids' must be an array of VM ids or names");
			return -EINVAL;
		}
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (!json_object_is_type(json_object_array_get_idx(v, i),
						 json_type_string)) {
				derror_set(e, "invalid_value", "'ids' must be strings");
				return -EINVAL;
			}
		*ids = json_object_get(v);
		return 0;
	}
	if (body && json_object_object_get_ex(body, "tag", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			derror_set(e, "invalid_value", "'tag' must be a string");
			return -EINVAL;
		}
		*ids = json_object_new_array();
		pthread_mutex_lock(&sv->lock);
		for (size_t i = 0; i < sv->nvms; i++)
			for (int t = 0; t < sv->vms[i]->def.ntags; t++)
				if (!strcmp(sv->vms[i]->def.tags[t], json_object_get_string(v)))
					json_object_array_add(
						*ids, json_object_new_string(sv->vms[i]->id));
		pthread_mutex_unlock(&sv->lock);
		return 0;
	}
	derror_set(e, "invalid_value", "the body needs \"ids\": [...] or \"tag\": \"...\"");
	return -EINVAL;
}

int supervisor_vm_action_bulk(struct supervisor *sv, const char *action, json_object *body,
			      const char *principal, json_object **out, struct derror *e)
{
	json_object *ids, *tasks, *args = NULL;
	int ret;

	if (body)
		json_object_object_get_ex(body, "args", &args);
	if (!sv_action_known(action)) {
		derror_set(e, "not_found", "no action '%s'", action);
		return -ENOENT;
	}
	ret = sv_action_check_args(action, args, e);
	if (!ret)
		ret = bulk_ids(sv, body, &ids, e);
	if (ret)
		return ret;
	tasks = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(ids); i++) {
		const char *id = json_object_get_string(json_object_array_get_idx(ids, i));
		struct derror one = { 0 };
		json_object *task = NULL;
		if (supervisor_vm_action(sv, id, action, args, principal, &task, &one)) {
			json_object *err = json_object_new_object();
			json_object_object_add(err, "code", json_object_new_string(one.code));
			json_object_object_add(err, "message", json_object_new_string(one.message));
			task = json_object_new_object();
			json_object_object_add(task, "vm_id", json_object_new_string(id));
			json_object_object_add(task, "error", err);
		}
		json_object_array_add(tasks, task);
	}
	json_object_put(ids);
	*out = json_object_new_object();
	json_object_object_add(*out, "tasks", tasks);
	return 0;
}

int supervisor_vm_history(struct supervisor *sv, const char *id, json_object **out,
			  struct derror *e)
{
	char vm_id[STORE_ID_LEN];
	int ret = supervisor_vm_resolve(sv, id, vm_id);

	if (ret)
		return not_found(e, id);
	ret = store_vm_history(sv->cfg.store, vm_id, 0, out);
	if (ret)
		derror_set(e, "internal", "reading the history failed");
	return ret;
}

int supervisor_vm_stats(struct supervisor *sv, const char *id, json_object **out, struct derror *e)
{
	char sock[PATH_MAX], vm_id[STORE_ID_LEN], state[16];
	pid_t pid;
	bool balloon;
	int nnics;
	struct vm *vm;

	pthread_mutex_lock(&sv->lock);
	vm = sv_find(sv, id);
	if (!vm) {
		pthread_mutex_unlock(&sv->lock);
		return not_found(e, id);
	}
	snprintf(sock, sizeof(sock), "%s", vm->api_sock);
	memcpy(vm_id, vm->id, sizeof(vm_id));
	memcpy(state, vm->state, sizeof(state));
	pid = vm->vmm_pid;
	balloon = vm->def.balloon;
	nnics = vm->def.nnics;
	pthread_mutex_unlock(&sv->lock);
	*out = sv_stats(sock, pid, balloon, nnics);
	json_object_object_add(*out, "id", json_object_new_string(vm_id));
	json_object_object_add(*out, "state", json_object_new_string(state));
	return 0;
}

int supervisor_vm_resolve(struct supervisor *sv, const char *id, char out[STORE_ID_LEN])
{
	struct vm *vm;

	pthread_mutex_lock(&sv->lock);
	vm = sv_find(sv, id);
	if (vm)
		memcpy(out, vm->id, STORE_ID_LEN);
	pthread_mutex_unlock(&sv->lock);
	return vm ? 0 : -ENOENT;
}

/* ---- API: host --------------------------------------------------------------------------- */

int supervisor_host_summary(struct supervisor *sv, json_object **out)
{
	int counts[SUPERVISOR_NSTATES] = { 0 };
	json_object *vms = json_object_new_object();
	uint64_t committed = 0;

	pthread_mutex_lock(&sv->lock);
	for (size_t i = 0; i < sv->nvms; i++) {
		for (size_t s = 0; s < SUPERVISOR_NSTATES; s++)
			counts[s] += !strcmp(sv->vms[i]->state, supervisor_states[s]);
		if (sv->vms[i]->vmm_pid)
			committed += sv->vms[i]->def.memory_mib << 20;
	}
	pthread_mutex_unlock(&sv->lock);
	for (size_t s = 0; s < SUPERVISOR_NSTATES; s++)
		json_object_object_add(vms, supervisor_states[s], json_object_new_int(counts[s]));
	*out = json_object_new_object();
	json_object_object_add(*out, "vms", vms);
	json_object_object_add(*out, "memory_committed_bytes",
			       json_object_new_int64((int64_t)committed));
	return 0;
}

int supervisor_metrics(struct supervisor *sv, json_object **out)
{
	json_object *items = json_object_new_array();

	pthread_mutex_lock(&sv->lock);
	for (size_t i = 0; i < sv->nvms; i++) {
		struct vm *vm = sv->vms[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(vm->id));
		json_object_object_add(o, "name", json_object_new_string(vm->def.name));
		json_object_object_add(o, "state", json_object_new_string(vm->state));
		json_object_object_add(o, "memory_mib",
				       json_object_new_int64((int64_t)vm->def.memory_mib));
		/* Filled in below, outside the lock. */
		json_object_object_add(o, "stats", NULL);
		if (vm->vmm_pid) {
			json_object_object_add(o, "_sock", json_object_new_string(vm->api_sock));
			json_object_object_add(o, "_pid", json_object_new_int(vm->vmm_pid));
			json_object_object_add(o, "_balloon",
					       json_object_new_boolean(vm->def.balloon));
			json_object_object_add(o, "_nics", json_object_new_int(vm->def.nnics));
		}
		json_object_array_add(items, o);
	}
	pthread_mutex_unlock(&sv->lock);
	for (size_t i = 0; i < json_object_array_length(items); i++) {
		json_object *o = json_object_array_get_idx(items, i), *sock;
		if (!json_object_object_get_ex(o, "_sock", &sock))
			continue;
		json_object_object_add(
			o, "stats",
			sv_stats(json_object_get_string(sock),
				 json_object_get_int(json_object_object_get(o, "_pid")),
				 json_object_get_boolean(json_object_object_get(o, "_balloon")),
				 json_object_get_int(json_object_object_get(o, "_nics"))));
		json_object_object_del(o, "_sock");
		json_object_object_del(o, "_pid");
		json_object_object_del(o, "_balloon");
		json_object_object_del(o, "_nics");
	}
	*out = items;
	return 0;
}
