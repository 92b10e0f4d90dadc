// SPDX-License-Identifier: MIT
/*
 * VM definitions (vmdef.h): strict JSON in, JSON out, merge patches, `vireo run` argv. The
 * definition crosses a trust boundary (any API client with the admin role), and every string
 * in it ends up in the VMM's argv: paths are absolute and free of ',' (the VMM's option
 * separator) and control characters, names and tags follow fixed patterns.
 */
#include "vmdef.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_MAX_LEN 4095

static const char *const readonly_fields[] = {
	"id",	      "state",	    "state_reason", "state_changed_at",
	"generation", "created_at", "updated_at",   "pid",
};

bool vmdef_is_readonly_field(const char *key)
{
	for (size_t i = 0; i < sizeof(readonly_fields) / sizeof(readonly_fields[0]); i++)
		if (!strcmp(key, readonly_fields[i]))
			return true;
	return false;
}

/* Every character of s is in set (or alnum when alnum is true); length within [1, max]. */
static bool match_chars(const char *s, size_t max, const char *set, bool alnum_first)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	if (alnum_first && !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c < 128 && (isalnum(c) || strchr(set, c))))
			return false;
	}
	return true;
}

bool vmdef_valid_name(const char *name)
{
	return match_chars(name, 63, "._-", true);
}

static bool valid_tag(const char *t)
{
	for (const char *p = t; *p; p++)
		if (isupper((unsigned char)*p))
			return false;
	return match_chars(t, 32, "._-", true);
}

static bool valid_path(const char *p)
{
	size_t n = strlen(p);

	if (n < 2 || n > PATH_MAX_LEN || p[0] != '/' || strchr(p, ','))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

static bool valid_mac(const char *m)
{
	if (strlen(m) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i]))
			return false;
	}
	return true;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* ---- strict parsing ------------------------------------------------------------------------ */

/* Allowed keys of one object level; NULL-terminated. */
static int check_keys(json_object *o, const char *where, const char *const *keys,
		      bool ignore_readonly, struct derror *e)
{
	json_object_object_foreach(o, k, v)
	{
		bool ok = false;
		(void)v;
		for (int i = 0; keys[i]; i++)
			ok |= !strcmp(k, keys[i]);
		if (!ok && ignore_readonly && !*where && vmdef_is_readonly_field(k))
			ok = true;
		if (!ok) {
			derror_set(e, "unknown_field", "unknown field '%s%s'", where, k);
			return -EINVAL;
		}
	}
	return 0;
}

static int get_str(json_object *o, const char *key, const char *where, json_object **v,
		   struct derror *e)
{
	*v = NULL;
	if (!json_object_object_get_ex(o, key, v) || json_object_is_type(*v, json_type_null)) {
		*v = NULL;
		return 0;
	}
	if (!json_object_is_type(*v, json_type_string)) {
		derror_set(e, "invalid_value", "'%s%s' must be a string", where, key);
		return -EINVAL;
	}
	return 0;
}

static int get_path(json_object *o, const char *key, const char *where, char **out,
		    struct derror *e)
{
	json_object *v;
	int ret = get_str(o, key, where, &v, e);

	if (ret || !v)
		return ret;
	if (!valid_path(json_object_get_string(v))) {
		derror_set(e, "invalid_value",
			   "'%s%s' must be an absolute path without ',' or control characters",
			   where, key);
		return -EINVAL;
	}
	*out = strdup(json_object_get_string(v));
	return *out ? 0 : -ENOMEM;
}

static int get_bool(json_object *o, const char *key, const char *where, bool *out, struct derror *e)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		derror_set(e, "invalid_value", "'%s%s' must be true or false", where, key);
		return -EINVAL;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

static int get_int(json_object *o, const char *key, int64_t min, int64_t max, int64_t *out,
		   struct derror *e)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < min ||
	    json_object_get_int64(v) > max) {
		derror_set(e, "invalid_value", "'%s' must be an integer from %lld to %lld", key,
			   (long long)min, (long long)max);
		return -EINVAL;
	}
	*out = json_object_get_int64(v);
	return 0;
}

static int get_array(json_object *o, const char *key, size_t max, json_object **arr,
		     struct derror *e)
{
	*arr = NULL;
	if (!json_object_object_get_ex(o, key, arr) || json_object_is_type(*arr, json_type_null)) {
		*arr = NULL;
		return 0;
	}
	if (!json_object_is_type(*arr, json_type_array)) {
		derror_set(e, "invalid_value", "'%s' must be an array", key);
		return -EINVAL;
	}
	if (json_object_array_length(*arr) > max) {
		derror_set(e, "invalid_value", "'%s' has more than %zu entries", key, max);
		return -EINVAL;
	}
	return 0;
}

static int parse_boot(json_object *b, struct vm_def *d, struct derror *e)
{
	static const char *const keys[] = { "kernel", "initrd", "cmdline", "payload", NULL };
	json_object *v;
	int ret;

	if (!json_object_is_type(b, json_type_object)) {
		derror_set(e, "invalid_value", "'boot' must be an object");
		return -EINVAL;
	}
	ret = check_keys(b, "boot.", keys, false, e);
	if (!ret)
		ret = get_path(b, "kernel", "boot.", &d->kernel, e);
	if (!ret)
		ret = get_path(b, "initrd", "boot.", &d->initrd, e);
	if (!ret)
		ret = get_path(b, "payload", "boot.", &d->payload, e);
	if (!ret)
		ret = get_str(b, "cmdline", "boot.", &v, e);
	if (ret)
		return ret;
	if (v) {
		const char *c = json_object_get_string(v);
		if (strlen(c) > 2048 || !printable(c)) {
			derror_set(e, "invalid_value",
				   "'boot.cmdline' must be at most 2048 printable characters");
			return -EINVAL;
		}
		d->cmdline = strdup(c);
		if (!d->cmdline)
			return -ENOMEM;
	}
	if (!d->kernel == !d->payload) {
		derror_set(e, "invalid_value", "'boot' needs either 'kernel' or 'payload'");
		return -EINVAL;
	}
	if (d->payload && (d->initrd || d->cmdline)) {
		derror_set(e, "invalid_value", "'boot.payload' takes no initrd or cmdline");
		return -EINVAL;
	}
	return 0;
}

/* Names element i of array arr in where ("arr[i].") and checks it is an object with known keys. */
static int check_item(json_object *o, const char *arr, int i, char *where, size_t len,
		      const char *const *keys, struct derror *e)
{
	snprintf(where, len, "%s[%d].", arr, i);
	if (!json_object_is_type(o, json_type_object)) {
		derror_set(e, "invalid_value", "'%s[%d]' must be an object", arr, i);
		return -EINVAL;
	}
	return check_keys(o, where, keys, false, e);
}

static int parse_disk(json_object *o, int i, struct vm_disk *dk, struct derror *e)
{
	static const char *const keys[] = { "path", "format", "readonly", "serial", NULL };
	char where[24];
	json_object *v;
	int ret;

	ret = check_item(o, "disks", i, where, sizeof(where), keys, e);
	if (ret)
		return ret;
	ret = get_path(o, "path", where, &dk->path, e);
	if (!ret && !dk->path) {
		derror_set(e, "invalid_value", "'%spath' is required", where);
		ret = -EINVAL;
	}
	if (!ret)
		ret = get_bool(o, "readonly", where, &dk->readonly, e);
	if (!ret)
		ret = get_str(o, "format", where, &v, e);
	if (!ret && v) {
		const char *f = json_object_get_string(v);
		if (strcmp(f, "raw") && strcmp(f, "qcow2")) {
			derror_set(e, "invalid_value", "'%sformat' must be raw or qcow2", where);
			return -EINVAL;
		}
		snprintf(dk->format, sizeof(dk->format), "%s", f);
	}
	if (!ret)
		ret = get_str(o, "serial", where, &v, e);
	if (!ret && v) {
		if (!match_chars(json_object_get_string(v), 20, "._-", false)) {
			derror_set(e, "invalid_value",
				   "'%sserial' must be 1-20 characters of [A-Za-z0-9._-]", where);
			return -EINVAL;
		}
		snprintf(dk->serial, sizeof(dk->serial), "%s", json_object_get_string(v));
	}
	return ret;
}

static int parse_nic_user(json_object *o, const char *where, struct vm_nic *n, struct derror *e)
{
	json_object *fw;
	int ret = get_array(o, "hostfwd", VMDEF_MAX_HOSTFWD, &fw, e);

	for (size_t j = 0; !ret && fw && j < json_object_array_length(fw); j++) {
		json_object *r = json_object_array_get_idx(fw, j);
		const char *s = json_object_get_string(r);
		if (!json_object_is_type(r, json_type_string) ||
		    !match_chars(s, 80, ":.-[]", false)) {
			derror_set(e, "invalid_value",
				   "'%shostfwd[%zu]' must be a rule like tcp:127.0.0.1:2222-:22",
				   where, j);
			return -EINVAL;
		}
		n->hostfwd[n->nhostfwd] = strdup(s);
		if (!n->hostfwd[n->nhostfwd])
			return -ENOMEM;
		n->nhostfwd++;
	}
	return ret;
}

static int parse_nic(json_object *o, int i, struct vm_nic *n, struct derror *e)
{
	static const char *const keys[] = { "type", "mac", "hostfwd", "tap", NULL };
	char where[24];
	json_object *v;
	int ret;

	ret = check_item(o, "nics", i, where, sizeof(where), keys, e);
	if (!ret)
		ret = get_str(o, "type", where, &v, e);
	if (ret)
		return ret;
	if (!v || (strcmp(json_object_get_string(v), "user") &&
		   strcmp(json_object_get_string(v), "tap"))) {
		derror_set(e, "invalid_value", "'%stype' must be user or tap", where);
		return -EINVAL;
	}
	snprintf(n->type, sizeof(n->type), "%s", json_object_get_string(v));
	ret = get_str(o, "mac", where, &v, e);
	if (!ret && v) {
		if (!valid_mac(json_object_get_string(v))) {
			derror_set(e, "invalid_value", "'%smac' must look like 52:54:00:12:34:56",
				   where);
			return -EINVAL;
		}
		snprintf(n->mac, sizeof(n->mac), "%s", json_object_get_string(v));
	}
	if (!ret)
		ret = get_str(o, "tap", where, &v, e);
	if (ret)
		return ret;
	if (!strcmp(n->type, "tap")) {
		if (!v || !match_chars(json_object_get_string(v), 15, "._-", false)) {
			derror_set(e, "invalid_value",
				   "'%stap' must name a tap device (1-15 of [A-Za-z0-9._-])",
				   where);
			return -EINVAL;
		}
		if (json_object_object_get_ex(o, "hostfwd", NULL)) {
			derror_set(e, "invalid_value", "'%shostfwd' is for user networking", where);
			return -EINVAL;
		}
		snprintf(n->tap, sizeof(n->tap), "%s", json_object_get_string(v));
		return 0;
	}
	if (v) {
		derror_set(e, "invalid_value", "'%stap' is for type tap", where);
		return -EINVAL;
	}
	return parse_nic_user(o, where, n, e);
}

static int parse_devices(json_object *o, struct vm_def *d, struct derror *e)
{
	static const char *const keys[] = { "rng", "balloon", "vsock_cid", NULL };
	int ret;

	if (!json_object_is_type(o, json_type_object)) {
		derror_set(e, "invalid_value", "'devices' must be an object");
		return -EINVAL;
	}
	ret = check_keys(o, "devices.", keys, false, e);
	if (!ret)
		ret = get_bool(o, "rng", "devices.", &d->rng, e);
	if (!ret)
		ret = get_bool(o, "balloon", "devices.", &d->balloon, e);
	if (!ret)
		ret = get_int(o, "vsock_cid", 3, 0xfffffffe, &d->vsock_cid, e);
	return ret;
}

static int parse_tags(json_object *arr, struct vm_def *d, struct derror *e)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *t = json_object_array_get_idx(arr, i);
		const char *s = json_object_get_string(t);
		bool dup = false;
		if (!json_object_is_type(t, json_type_string) || !valid_tag(s)) {
			derror_set(e, "invalid_value",
				   "'tags[%zu]' must match ^[a-z0-9][a-z0-9._-]{0,31}$", i);
			return -EINVAL;
		}
		for (int j = 0; j < d->ntags; j++)
			dup |= !strcmp(d->tags[j], s);
		if (!dup)
			snprintf(d->tags[d->ntags++], sizeof(d->tags[0]), "%s", s);
	}
	return 0;
}

static int parse_top(json_object *j, struct vm_def *d, struct derror *e)
{
	json_object *v, *arr;
	int64_t n;
	int ret;

	ret = get_str(j, "name", "", &v, e);
	if (ret)
		return ret;
	if (!v || !vmdef_valid_name(json_object_get_string(v))) {
		derror_set(e, "invalid_value",
			   "'name' must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$");
		return -EINVAL;
	}
	snprintf(d->name, sizeof(d->name), "%s", json_object_get_string(v));
	ret = get_str(j, "description", "", &v, e);
	if (!ret && v) {
		if (json_object_get_string_len(v) > 1024) {
			derror_set(e, "invalid_value", "'description' is longer than 1024 bytes");
			return -EINVAL;
		}
		d->description = strdup(json_object_get_string(v));
	}
	if (!ret)
		ret = get_array(j, "tags", VMDEF_MAX_TAGS, &arr, e);
	if (!ret)
		ret = parse_tags(arr, d, e);
	n = d->vcpus;
	if (!ret)
		ret = get_int(j, "vcpus", 1, 64, &n, e);
	d->vcpus = (int)n;
	n = (int64_t)d->memory_mib;
	if (!ret)
		ret = get_int(j, "memory_mib", 16, 1048576, &n, e);
	d->memory_mib = (uint64_t)n;
	if (!ret)
		ret = get_bool(j, "autostart", "", &d->autostart, e);
	if (!ret)
		ret = get_str(j, "restart_policy", "", &v, e);
	if (ret || !v)
		return ret;
	if (!strcmp(json_object_get_string(v), "no"))
		d->restart_policy = VM_RESTART_NO;
	else if (!strcmp(json_object_get_string(v), "on-failure"))
		d->restart_policy = VM_RESTART_ON_FAILURE;
	else if (!strcmp(json_object_get_string(v), "always"))
		d->restart_policy = VM_RESTART_ALWAYS;
	else {
		derror_set(e, "invalid_value", "'restart_policy' must be no, on-failure or always");
		return -EINVAL;
	}
	return 0;
}

int vmdef_from_json(json_object *j, bool ignore_readonly, struct vm_def *d, struct derror *e)
{
	static const char *const keys[] = { "name",	  "description", "tags",	   "vcpus",
					    "memory_mib", "boot",	 "disks",	   "nics",
					    "devices",	  "autostart",	 "restart_policy", NULL };
	json_object *v, *arr;
	int ret;

	memset(d, 0, sizeof(*d));
	d->vcpus = 1;
	d->memory_mib = 256;
	d->vsock_cid = -1;
	if (!j || !json_object_is_type(j, json_type_object)) {
		derror_set(e, "invalid_value", "the VM definition must be a JSON object");
		return -EINVAL;
	}
	ret = check_keys(j, "", keys, ignore_readonly, e);
	if (!ret)
		ret = parse_top(j, d, e);
	if (!ret && !json_object_object_get_ex(j, "boot", &v)) {
		derror_set(e, "invalid_value", "'boot' is required");
		ret = -EINVAL;
	}
	if (!ret)
		ret = parse_boot(v, d, e);
	if (!ret)
		ret = get_array(j, "disks", VMDEF_MAX_DISKS, &arr, e);
	for (size_t i = 0; !ret && arr && i < json_object_array_length(arr); i++, d->ndisks++)
		ret = parse_disk(json_object_array_get_idx(arr, i), (int)i, &d->disks[i], e);
	if (!ret)
		ret = get_array(j, "nics", VMDEF_MAX_NICS, &arr, e);
	for (size_t i = 0; !ret && arr && i < json_object_array_length(arr); i++, d->nnics++)
		ret = parse_nic(json_object_array_get_idx(arr, i), (int)i, &d->nics[i], e);
	if (!ret && json_object_object_get_ex(j, "devices", &v) &&
	    !json_object_is_type(v, json_type_null))
		ret = parse_devices(v, d, e);
	if (ret) {
		vmdef_free(d);
		if (ret == -ENOMEM)
			derror_set(e, "internal", "out of memory");
	}
	return ret;
}

void vmdef_free(struct vm_def *d)
{
	free(d->description);
	free(d->kernel);
	free(d->initrd);
	free(d->cmdline);
	free(d->payload);
	for (int i = 0; i < VMDEF_MAX_DISKS; i++)
		free(d->disks[i].path);
	for (int i = 0; i < VMDEF_MAX_NICS; i++)
		for (int k = 0; k < VMDEF_MAX_HOSTFWD; k++)
			free(d->nics[i].hostfwd[k]);
	memset(d, 0, sizeof(*d));
	d->vsock_cid = -1;
}

/* ---- JSON out, patches --------------------------------------------------------------------- */

const char *vmdef_restart_policy_name(enum vm_restart_policy p)
{
	return p == VM_RESTART_ALWAYS ? "always" : p == VM_RESTART_ON_FAILURE ? "on-failure" : "no";
}

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

json_object *vmdef_tags_json(const struct vm_def *d)
{
	json_object *a = json_object_new_array();

	for (int i = 0; i < d->ntags; i++)
		json_object_array_add(a, json_object_new_string(d->tags[i]));
	return a;
}

static json_object *boot_json(const struct vm_def *d)
{
	json_object *b = json_object_new_object();

	if (d->payload) {
		json_object_object_add(b, "payload", json_object_new_string(d->payload));
		return b;
	}
	json_object_object_add(b, "kernel", json_object_new_string(d->kernel));
	json_object_object_add(b, "initrd", str_or_null(d->initrd));
	json_object_object_add(b, "cmdline", str_or_null(d->cmdline));
	return b;
}

static json_object *nic_json(const struct vm_nic *n)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(n->type));
	if (n->mac[0])
		json_object_object_add(o, "mac", json_object_new_string(n->mac));
	if (!strcmp(n->type, "tap")) {
		json_object_object_add(o, "tap", json_object_new_string(n->tap));
	} else {
		json_object *fw = json_object_new_array();
		for (int k = 0; k < n->nhostfwd; k++)
			json_object_array_add(fw, json_object_new_string(n->hostfwd[k]));
		json_object_object_add(o, "hostfwd", fw);
	}
	return o;
}

json_object *vmdef_to_json(const struct vm_def *d)
{
	json_object *j = json_object_new_object(), *a, *dev;

	json_object_object_add(j, "name", json_object_new_string(d->name));
	json_object_object_add(j, "description",
			       json_object_new_string(d->description ? d->description : ""));
	json_object_object_add(j, "tags", vmdef_tags_json(d));
	json_object_object_add(j, "vcpus", json_object_new_int(d->vcpus));
	json_object_object_add(j, "memory_mib", json_object_new_int64((int64_t)d->memory_mib));
	json_object_object_add(j, "boot", boot_json(d));
	a = json_object_new_array();
	for (int i = 0; i < d->ndisks; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(d->disks[i].path));
		if (d->disks[i].format[0])
			json_object_object_add(o, "format",
					       json_object_new_string(d->disks[i].format));
		json_object_object_add(o, "readonly",
				       json_object_new_boolean(d->disks[i].readonly));
		if (d->disks[i].serial[0])
			json_object_object_add(o, "serial",
					       json_object_new_string(d->disks[i].serial));
		json_object_array_add(a, o);
	}
	json_object_object_add(j, "disks", a);
	a = json_object_new_array();
	for (int i = 0; i < d->nnics; i++)
		json_object_array_add(a, nic_json(&d->nics[i]));
	json_object_object_add(j, "nics", a);
	dev = json_object_new_object();
	json_object_object_add(dev, "rng", json_object_new_boolean(d->rng));
	json_object_object_add(dev, "balloon", json_object_new_boolean(d->balloon));
	json_object_object_add(dev, "vsock_cid",
			       d->vsock_cid < 0 ? NULL : json_object_new_int64(d->vsock_cid));
	json_object_object_add(j, "devices", dev);
	json_object_object_add(j, "autostart", json_object_new_boolean(d->autostart));
	json_object_object_add(
		j, "restart_policy",
		json_object_new_string(vmdef_restart_policy_name(d->restart_policy)));
	return j;
}

json_object *vmdef_merge_patch(json_object *target, json_object *patch)
{
	json_object *out = NULL;

	if (!json_object_is_type(patch, json_type_object))
		return json_object_get(patch);
	if (target && json_object_is_type(target, json_type_object))
		json_object_deep_copy(target, &out, NULL);
	else
		out = json_object_new_object();
	json_object_object_foreach(patch, k, v)
	{
		if (!v) {
			json_object_object_del(out, k);
			continue;
		}
		json_object *cur = NULL;
		json_object_object_get_ex(out, k, &cur);
		json_object_object_add(out, k, vmdef_merge_patch(cur, v));
	}
	return out;
}

bool vmdef_patch_is_live(json_object *patch)
{
	static const char *const live[] = { "description", "tags", "autostart", "restart_policy" };

	if (!json_object_is_type(patch, json_type_object))
		return false;
	json_object_object_foreach(patch, k, v)
	{
		bool ok = false;
		(void)v;
		for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
			ok |= !strcmp(k, live[i]);
		if (!ok)
			return false;
	}
	return true;
}

/* ---- start time ---------------------------------------------------------------------------- */

static int check_file(const char *what, const char *path, int mode, struct derror *e)
{
	if (path && access(path, mode) != 0) {
		int err = errno;
		derror_set(e, "unprocessable", "%s %s: %s", what, path, strerror(err));
		return err == ENOENT ? -ENOENT : -EACCES;
	}
	return 0;
}

int vmdef_check_files(const struct vm_def *d, struct derror *e)
{
	int ret = check_file("kernel", d->kernel, R_OK, e);

	if (!ret)
		ret = check_file("initrd", d->initrd, R_OK, e);
	if (!ret)
		ret = check_file("payload", d->payload, R_OK, e);
	for (int i = 0; !ret && i < d->ndisks; i++)
		ret = check_file("disk", d->disks[i].path,
				 d->disks[i].readonly ? R_OK : R_OK | W_OK, e);
	return ret;
}

/* ---- argv ------------------------------------------------------------------------------------ */

struct argv_buf {
	char **v;
	int n;
	bool oom;
};

static void push(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void push(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	char **nv;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	nv = realloc(a->v, sizeof(char *) * (size_t)(a->n + 2));
	if (!s || !nv) {
		free(s);
		if (nv)
			a->v = nv;
		a->oom = true;
		return;
	}
	a->v = nv;
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void push_nic(struct argv_buf *a, const struct vm_nic *n)
{
	char opt[1024];
	size_t o;

	if (!strcmp(n->type, "tap"))
		o = (size_t)snprintf(opt, sizeof(opt), "tap=%s", n->tap);
	else
		o = (size_t)snprintf(opt, sizeof(opt), "user");
	for (int k = 0; k < n->nhostfwd && o < sizeof(opt); k++)
		o += (size_t)snprintf(opt + o, sizeof(opt) - o, ",hostfwd=%s", n->hostfwd[k]);
	if (n->mac[0] && o < sizeof(opt))
		snprintf(opt + o, sizeof(opt) - o, ",mac=%s", n->mac);
	push(a, "--net");
	push(a, "%s", opt);
}

int vmdef_argv(const struct vm_def *d, const char *vireo, const char *api_sock,
	       const char *console_sock, char ***argv)
{
	struct argv_buf a = { 0 };
	char *dir = strdup(api_sock);

	push(&a, "%s", vireo);
	push(&a, "run");
	push(&a, "--cpus");
	push(&a, "%d", d->vcpus);
	push(&a, "--memory");
	push(&a, "%lluM", (unsigned long long)d->memory_mib);
	if (d->payload) {
		push(&a, "--payload");
		push(&a, "%s", d->payload);
	} else {
		push(&a, "--kernel");
		push(&a, "%s", d->kernel);
		if (d->initrd) {
			push(&a, "--initrd");
			push(&a, "%s", d->initrd);
		}
		if (d->cmdline) {
			push(&a, "--cmdline");
			push(&a, "%s", d->cmdline);
		}
	}
	for (int i = 0; i < d->ndisks; i++) {
		const struct vm_disk *k = &d->disks[i];
		push(&a, "--disk");
		push(&a, "%s%s%s%s%s%s", k->path, k->format[0] ? ",format=" : "", k->format,
		     k->readonly ? ",readonly" : "", k->serial[0] ? ",serial=" : "", k->serial);
	}
	for (int i = 0; i < d->nnics; i++)
		push_nic(&a, &d->nics[i]);
	if (d->rng)
		push(&a, "--rng");
	if (d->balloon)
		push(&a, "--balloon");
	if (d->vsock_cid >= 0 && dir) {
		push(&a, "--vsock");
		push(&a, "cid=%lld,uds=%s/vsock.sock", (long long)d->vsock_cid, dirname(dir));
	}
	/* A guest reboot restarts the VM in place (the VMM would otherwise exit with 0, which the
	 * daemon would take for a power-off). */
	push(&a, "--on-reboot");
	push(&a, "restart");
	push(&a, "--api-sock");
	push(&a, "%s", api_sock);
	push(&a, "--console");
	push(&a, "socket:%s", console_sock);
	free(dir);
	if (a.oom || !dir) {
		vmdef_argv_free(a.v);
		return -ENOMEM;
	}
	*argv = a.v;
	return 0;
}

void vmdef_argv_free(char **argv)
{
	for (int i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}
