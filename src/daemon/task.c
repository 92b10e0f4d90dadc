// SPDX-License-Identifier: MIT
/*
 * Tasks (task.h). Queued and running tasks live in one list in creation order; a worker takes
 * the oldest queued task whose queue key (VM id) has no task running. Since every earlier task
 * of that key is then finished, tasks of one key run in creation order: a per-VM FIFO without
 * a queue per VM. Every change is written to the store before it is published, so what a
 * client reads after an event is at least as new as the event.
 */
#include "task.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"

#define MAX_WORKERS 16

struct task {
	struct task_pool *pool;
	struct store_task row;
	json_object *result;
	json_object *error;
	task_fn fn;
	void *arg;
	void (*free_arg)(void *);
	bool running;
	bool cancel;
	struct task *next;
};

struct task_pool {
	struct store *st;
	task_publish_fn publish;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct task *head; /* queued and running tasks, oldest first */
	struct task **tail;
	bool stopping;
	int nthreads;
	pthread_t threads[MAX_WORKERS];
};

static struct task_pool *default_pool;

struct task_pool *task_pool_default(void)
{
	return default_pool;
}

/* ---- persistence and events ---------------------------------------------------------------- */

static json_object *summary(const struct task *t)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(t->row.id));
	json_object_object_add(o, "kind", json_object_new_string(t->row.kind));
	json_object_object_add(o, "vm_id",
			       t->row.vm_id[0] ? json_object_new_string(t->row.vm_id) : NULL);
	json_object_object_add(o, "state", json_object_new_string(t->row.state));
	json_object_object_add(o, "progress",
			       t->row.progress < 0 ? NULL : json_object_new_int(t->row.progress));
	return o;
}

static void publish(struct task_pool *pool, const char *type, json_object *data)
{
	if (pool->publish)
		pool->publish(type, data);
	json_object_put(data);
}

/* Writes the row (state, progress, times, result, error) and publishes task.updated. */
static void save(struct task *t)
{
	t->row.result_json =
		t->result ? json_object_to_json_string_ext(t->result, JSON_C_TO_STRING_PLAIN)
			  : NULL;
	t->row.error_json =
		t->error ? json_object_to_json_string_ext(t->error, JSON_C_TO_STRING_PLAIN) : NULL;
	if (store_task_update(t->pool->st, &t->row))
		pr_warn("task %s: its state could not be saved", t->row.id);
	publish(t->pool, "task.updated", summary(t));
}

static void task_free(struct task *t)
{
	if (t->free_arg)
		t->free_arg(t->arg);
	json_object_put(t->result);
	json_object_put(t->error);
	free(t);
}

/* Removes t from the list (lock held). */
static void unlink_task(struct task_pool *pool, struct task *t)
{
	struct task **pp = &pool->head;

	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	*pp = t->next;
	if (pool->tail == &t->next)
		pool->tail = pp;
}

static void set_error(struct task *t, const char *code, const char *msg)
{
	json_object_put(t->error);
	t->error = json_object_new_object();
	json_object_object_add(t->error, "code", json_object_new_string(code));
	json_object_object_add(t->error, "message", json_object_new_string(msg));
}

/* ---- workers ------------------------------------------------------------------------------- */

/* The oldest queued task whose key has nothing running (lock held). */
static struct task *pick(struct task_pool *pool)
{
	for (struct task *t = pool->head; t; t = t->next) {
		bool busy = false;
		if (t->running)
			continue;
		for (struct task *r = pool->head; r != t && t->row.vm_id[0]; r = r->next)
			busy |= !strcmp(r->row.vm_id, t->row.vm_id);
		if (!busy)
			return t;
	}
	return NULL;
}

static void run_one(struct task_pool *pool, struct task *t)
{
	int ret;

	snprintf(t->row.state, sizeof(t->row.state), "running");
	store_now(t->row.started_at);
	save(t);
	ret = t->fn(t, t->arg);
	pthread_mutex_lock(&pool->lock);
	if (ret == 0) {
		snprintf(t->row.state, sizeof(t->row.state), "succeeded");
		t->row.progress = 100;
	} else if (t->cancel && ret == -ECANCELED) {
		snprintf(t->row.state, sizeof(t->row.state), "cancelled");
		if (!t->error)
			set_error(t, "cancelled", "cancelled by request");
	} else {
		snprintf(t->row.state, sizeof(t->row.state), "failed");
		if (!t->error)
			set_error(t, "internal", strerror(-ret));
	}
	store_now(t->row.finished_at);
	unlink_task(pool, t);
	pthread_mutex_unlock(&pool->lock);
	save(t);
	task_free(t);
}

static void *worker(void *arg)
{
	struct task_pool *pool = arg;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		struct task *t = pick(pool);
		if (!t && pool->stopping && !pool->head)
			break;
		if (!t) {
			pthread_cond_wait(&pool->cond, &pool->lock);
			continue;
		}
		t->running = true;
		pthread_mutex_unlock(&pool->lock);
		run_one(pool, t);
		pthread_mutex_lock(&pool->lock);
		/* The key is free again: a waiting task of that VM may go. */
		pthread_cond_broadcast(&pool->cond);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

int task_pool_create(struct store *st, int nthreads, task_publish_fn publish,
		     struct task_pool **out)
{
	struct task_pool *pool = calloc(1, sizeof(*pool));

	if (!pool)
		return -ENOMEM;
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > MAX_WORKERS)
		nthreads = MAX_WORKERS;
	pool->st = st;
	pool->publish = publish;
	pool->tail = &pool->head;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker, pool))
			break;
		pool->nthreads++;
	}
	if (!pool->nthreads) {
		free(pool);
		return -EAGAIN;
	}
	if (!default_pool)
		default_pool = pool;
	*out = pool;
	return 0;
}

void task_pool_destroy(struct task_pool *pool)
{
	struct task *queued = NULL, **qt = &queued;

	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	/* Queued tasks fail now; running ones are asked to stop at their next check point. */
	for (struct task **pp = &pool->head; *pp;) {
		struct task *t = *pp;
		if (t->running) {
			t->cancel = true;
			pp = &t->next;
			continue;
		}
		*pp = t->next;
		t->next = NULL;
		*qt = t;
		qt = &t->next;
	}
	pool->tail = &pool->head;
	for (struct task *t = pool->head; t; t = t->next)
		pool->tail = &t->next;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	while (queued) {
		struct task *t = queued;
		queued = t->next;
		snprintf(t->row.state, sizeof(t->row.state), "failed");
		set_error(t, "shutting_down", "daemon shutting down");
		store_now(t->row.finished_at);
		save(t);
		task_free(t);
	}
	for (int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	if (default_pool == pool)
		default_pool = NULL;
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool);
}

/* ---- submitting ---------------------------------------------------------------------------- */

int task_submit(struct task_pool *pool, const char *kind, const char *vm_id, const char *owner,
		task_fn fn, void *arg, void (*free_arg)(void *), json_object **task_out)
{
	struct task *t = calloc(1, sizeof(*t));
	int ret;

	if (!t) {
		if (free_arg)
			free_arg(arg);
		return -ENOMEM;
	}
	t->pool = pool;
	t->fn = fn;
	t->arg = arg;
	t->free_arg = free_arg;
	store_uuid(t->row.id);
	snprintf(t->row.kind, sizeof(t->row.kind), "%s", kind);
	snprintf(t->row.vm_id, sizeof(t->row.vm_id), "%s", vm_id ? vm_id : "");
	snprintf(t->row.owner, sizeof(t->row.owner), "%s", owner ? owner : "");
	snprintf(t->row.state, sizeof(t->row.state), "queued");
	t->row.progress = -1;
	/* created_at is taken where the task joins the queue, so the order of creation times is
	 * the order tasks of one VM run in. */
	pthread_mutex_lock(&pool->lock);
	store_now(t->row.created_at);
	ret = pool->stopping ? -ESHUTDOWN : store_task_insert(pool->st, &t->row);
	if (ret) {
		pthread_mutex_unlock(&pool->lock);
		task_free(t);
		return ret;
	}
	*pool->tail = t;
	pool->tail = &t->next;
	pthread_cond_broadcast(&pool->cond);
	if (task_out) {
		/* What GET /tasks/{id} shows now: built here, not read back, to stay cheap. */
		json_object *o = summary(t);
		json_object_object_add(o, "log", json_object_new_array());
		json_object_object_add(o, "result", NULL);
		json_object_object_add(o, "error", NULL);
		json_object_object_add(o, "created_at", json_object_new_string(t->row.created_at));
		json_object_object_add(o, "started_at", NULL);
		json_object_object_add(o, "finished_at", NULL);
		json_object_object_add(o, "owner",
				       owner ? json_object_new_string(t->row.owner) : NULL);
		*task_out = o;
	}
	/* Published before a worker can publish its first update (the lock keeps it queued). */
	publish(pool, "task.created", summary(t));
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

int task_pending(struct task_pool *pool, const char *vm_id)
{
	int n = 0;

	pthread_mutex_lock(&pool->lock);
	for (struct task *t = pool->head; t; t = t->next)
		n += !strcmp(t->row.vm_id, vm_id);
	pthread_mutex_unlock(&pool->lock);
	return n;
}

/* ---- inside a task ----------------------------------------------------------------------- */

const char *task_id(const struct task *t)
{
	return t->row.id;
}

void task_progress(struct task *t, int percent)
{
	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	if (percent == t->row.progress)
		return;
	t->row.progress = percent;
	save(t);
}

void task_log(struct task *t, const char *fmt, ...)
{
	char line[512], at[STORE_TIME_LEN];
	json_object *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	store_now(at);
	store_task_log(t->pool->st, t->row.id, at, line);
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(t->row.id));
	json_object_object_add(o, "line", json_object_new_string(line));
	publish(t->pool, "task.log", o);
}

void task_set_result(struct task *t, json_object *result)
{
	json_object_put(t->result);
	t->result = result;
}

int task_fail(struct task *t, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set_error(t, code, msg);
	return -EINVAL;
}

int task_fail_derror(struct task *t, const struct derror *e)
{
	set_error(t, e->code ? e->code : "internal", e->message);
	return -EINVAL;
}

bool task_cancelled(const struct task *t)
{
	bool c;

	pthread_mutex_lock(&t->pool->lock);
	c = t->cancel;
	pthread_mutex_unlock(&t->pool->lock);
	return c;
}

/* ---- API ------------------------------------------------------------------------------------ */

int task_get(struct task_pool *pool, const char *id, json_object **out, struct derror *e)
{
	int ret = store_task_get(pool->st, id, out);

	if (ret == -ENOENT)
		derror_set(e, "not_found", "no task %s", id);
	else if (ret)
		derror_set(e, "internal", "reading task %s failed", id);
	return ret;
}

int task_list(struct task_pool *pool, const char *state, const char *vm_id, int limit, int offset,
	      json_object **out, struct derror *e)
{
	static const char *const states[] = { "queued", "running", "succeeded", "failed",
					      "cancelled" };
	bool ok = !state;
	int ret;

	for (size_t i = 0; state && i < sizeof(states) / sizeof(states[0]); i++)
		ok |= !strcmp(state, states[i]);
	if (!ok) {
		derror_set(e, "invalid_value",
			   "state must be queued, running, succeeded, failed or cancelled");
		return -EINVAL;
	}
	if (limit <= 0)
		limit = 100;
	if (limit > 1000 || offset < 0) {
		derror_set(e, "invalid_value", "limit is 1..1000 and offset >= 0");
		return -EINVAL;
	}
	ret = store_task_list(pool->st, state, vm_id, limit, offset, out);
	if (ret)
		derror_set(e, "internal", "listing tasks failed");
	return ret;
}

int task_cancel(struct task_pool *pool, const char *id, struct derror *e)
{
	struct task *t;

	pthread_mutex_lock(&pool->lock);
	for (t = pool->head; t && strcmp(t->row.id, id); t = t->next)
		;
	if (t && t->running) {
		t->cancel = true;
		pthread_mutex_unlock(&pool->lock);
		return 0;
	}
	if (t) {
		unlink_task(pool, t);
		pthread_mutex_unlock(&pool->lock);
		snprintf(t->row.state, sizeof(t->row.state), "cancelled");
		set_error(t, "cancelled", "cancelled before it ran");
		store_now(t->row.finished_at);
		save(t);
		task_free(t);
		return 0;
	}
	pthread_mutex_unlock(&pool->lock);
	json_object *o;
	if (store_task_get(pool->st, id, &o) == 0) {
		json_object_put(o);
		derror_set(e, "invalid_state", "task %s has already finished", id);
		return -EALREADY;
	}
	derror_set(e, "not_found", "no task %s", id);
	return -ENOENT;
}
