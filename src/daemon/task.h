/* SPDX-License-Identifier: MIT */
/*
 * Tasks: every long operation (each VM action) is a task with a state (queued, running,
 * succeeded, failed, cancelled), progress 0-100 or null, log lines, a result and an error, all
 * persisted through store.c as they change, and published as events.
 *
 * A pool of worker threads runs tasks. Tasks that name a queue key (the VM id) run strictly
 * one after another in creation order (per-VM FIFO): 50 actions posted at once on one VM
 * serialise, and each sees the state its predecessor left. Tasks of different keys run in
 * parallel, up to the pool size.
 *
 * Cancel: a queued task becomes cancelled at once; a running one gets its cancel flag set,
 * which its function polls with task_cancelled() at its check points.
 */
#ifndef VIREO_DAEMON_TASK_H
#define VIREO_DAEMON_TASK_H

#include <stdbool.h>

#include <json-c/json.h>

#include "derror.h"
#include "store.h"

struct task;
struct task_pool;

/* Publishes an event (type, data): the pool calls it with "task.created" and "task.updated"
 * {id,kind,vm_id,state,progress} and "task.log" {id,line}. The caller keeps ownership of data
 * (events_publish fits). May be NULL. */
typedef void (*task_publish_fn)(const char *type, json_object *data);

/* A task's work. Runs on a worker thread. Returns 0 (succeeded; the result set by
 * task_set_result, or null) or -errno (failed; the error set by task_fail, or a generic one
 * from the errno). */
typedef int (*task_fn)(struct task *t, void *arg);

/* The pool the daemon created (the first task_pool_create), for the API handlers. */
struct task_pool *task_pool_default(void);
/* Starts nthreads workers. */
int task_pool_create(struct store *st, int nthreads, task_publish_fn publish,
		     struct task_pool **out);
/* Stops taking tasks, lets running ones finish (their functions should honour cancel), marks
 * queued ones failed "daemon shutting down", joins the workers and frees the pool. */
void task_pool_destroy(struct task_pool *pool);

/* Queues fn(arg) as a task of kind (e.g. "vm.start") about vm_id (NULL: no queue key, no VM),
 * on behalf of owner (the principal, may be NULL). free_arg (may be NULL) releases arg after
 * the task ends or is cancelled before running. *task_out (if not NULL) receives the task's
 * JSON as GET /tasks/{id} would show it at creation (new reference). */
int task_submit(struct task_pool *pool, const char *kind, const char *vm_id, const char *owner,
		task_fn fn, void *arg, void (*free_arg)(void *), json_object **task_out);

/* Number of tasks queued or running for this queue key (0: the VM is idle). */
int task_pending(struct task_pool *pool, const char *vm_id);

/* ---- Inside a task function ------------------------------------------------------------- */
const char *task_id(const struct task *t);
/* Progress 0-100 (persisted and published when it changes). */
void task_progress(struct task *t, int percent);
/* One log line (persisted, published). */
__attribute__((format(printf, 2, 3))) void task_log(struct task *t, const char *fmt, ...);
/* The result object (ownership taken). */
void task_set_result(struct task *t, json_object *result);
/* The error: {"code":code,"message":...}; returns -EINVAL for convenience ("return
 * task_fail(...)" in a task function). A later call replaces an earlier one. */
__attribute__((format(printf, 3, 4))) int task_fail(struct task *t, const char *code,
						    const char *fmt, ...);
/* Sets the error from a struct derror; returns -EINVAL. */
int task_fail_derror(struct task *t, const struct derror *e);
bool task_cancelled(const struct task *t);

/* ---- API -------------------------------------------------------------------------------- */
/* GET /tasks/{id}: see store_task_get. -ENOENT with e "not_found". */
int task_get(struct task_pool *pool, const char *id, json_object **out, struct derror *e);
/* GET /tasks: state and vm_id filters may be NULL; limit 1..1000 (default 100 when <= 0). */
int task_list(struct task_pool *pool, const char *state, const char *vm_id, int limit, int offset,
	      json_object **out, struct derror *e);
/* DELETE /tasks/{id}: 0 when cancelled (queued) or cancel requested (running); -ENOENT
 * ("not_found"); -EALREADY ("invalid_state") when already finished. */
int task_cancel(struct task_pool *pool, const char *id, struct derror *e);

#endif
