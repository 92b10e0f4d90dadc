/* SPDX-License-Identifier: MIT */
/*
 * A VM definition: the user-writable part of the API's VM object, parsed strictly from JSON
 * (unknown fields refused, every range checked), written back to JSON, merged with an RFC 7396
 * patch, and turned into the argv of `vireo run`.
 *
 * Rules (docs/api.md): name ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$; vcpus 1-64; memory_mib
 * 16-1048576; at most 16 disks, 8 nics, 16 tags (^[a-z0-9][a-z0-9._-]{0,31}$); description at
 * most 1024 bytes; boot has either kernel (+ initrd, cmdline) or payload; every path absolute,
 * without ',' (the VMM's option separator) or control characters, at most 4095 bytes. Whether
 * the files exist is checked at start (vmdef_check_files), not at definition time.
 */
#ifndef VIREO_DAEMON_VMDEF_H
#define VIREO_DAEMON_VMDEF_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "derror.h"

#define VMDEF_MAX_DISKS 16
#define VMDEF_MAX_NICS 8
#define VMDEF_MAX_TAGS 16
#define VMDEF_MAX_HOSTFWD 8

enum vm_restart_policy {
	VM_RESTART_NO,
	VM_RESTART_ON_FAILURE,
	VM_RESTART_ALWAYS,
};

struct vm_disk {
	char *path;
	char format[8]; /* "", "raw" or "qcow2" ("" = the VMM probes) */
	bool readonly;
	char serial[21];
};

struct vm_nic {
	char type[8]; /* "user" or "tap" */
	char mac[18]; /* "" = the VMM's default */
	char tap[16]; /* tap device name (type tap) */
	char *hostfwd[VMDEF_MAX_HOSTFWD]; /* type user */
	int nhostfwd;
};

/* Owns all its strings; release with vmdef_free. */
struct vm_def {
	char name[64];
	char *description;
	char tags[VMDEF_MAX_TAGS][33];
	int ntags;
	int vcpus;
	uint64_t memory_mib;
	char *kernel; /* boot: kernel/initrd/cmdline, or payload */
	char *initrd;
	char *cmdline;
	char *payload;
	struct vm_disk disks[VMDEF_MAX_DISKS];
	int ndisks;
	struct vm_nic nics[VMDEF_MAX_NICS];
	int nnics;
	bool rng;
	bool balloon;
	int64_t vsock_cid; /* -1 = none */
	bool autostart;
	enum vm_restart_policy restart_policy;
};

/* Fields of the API's VM object that are read-only: a create body or a patch that sets one gets
 * "unknown_field"... except that vmdef_from_json(ignore_readonly=true) skips them, so a GET
 * reply can be edited and sent back (PATCH of the whole object). */
bool vmdef_is_readonly_field(const char *key);

/* Parses j into def (zeroed first). Strict: an unknown field gives code "unknown_field", a wrong
 * type or range "invalid_value", always naming the field. Returns 0 or -EINVAL with e set. On
 * failure def holds nothing to free. */
int vmdef_from_json(json_object *j, bool ignore_readonly, struct vm_def *def, struct derror *e);
/* The definition as JSON (the user-writable fields, defaults written out). New reference. */
json_object *vmdef_to_json(const struct vm_def *def);
/* Tags as a JSON array of strings. New reference. */
json_object *vmdef_tags_json(const struct vm_def *def);
void vmdef_free(struct vm_def *def);

const char *vmdef_restart_policy_name(enum vm_restart_policy p);
bool vmdef_valid_name(const char *name);

/* RFC 7396 JSON merge patch: returns a new object = target with patch applied (null deletes a
 * member, objects merge recursively, anything else replaces). Neither input is changed. */
json_object *vmdef_merge_patch(json_object *target, json_object *patch);

/* Whether the patch only touches members that may change while the VM runs (description, tags,
 * autostart, restart_policy). */
bool vmdef_patch_is_live(json_object *patch);

/* At start time: every file the VM needs exists and is readable (kernel, initrd, payload,
 * disks; writable disks writable). Returns 0 or -ENOENT/-EACCES with e = "unprocessable". */
int vmdef_check_files(const struct vm_def *def, struct derror *e);

/* The argv of the VMM: vireo run <def options> --on-reboot restart --api-sock API
 * --console socket:CONSOLE, NULL-terminated (a guest reboot restarts the VM in place rather than
 * ending the VMM), malloc'd (vmdef_argv_free). vireo is the binary's path. */
int vmdef_argv(const struct vm_def *def, const char *vireo, const char *api_sock,
	       const char *console_sock, char ***argv);
void vmdef_argv_free(char **argv);

#endif
