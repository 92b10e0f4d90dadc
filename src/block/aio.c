// SPDX-License-Identifier: MIT
/*
 * Asynchronous request engine. Raw images send reads, writes and flushes to io_uring; everything
 * else (qcow2, discard, write-zeroes, or no io_uring) runs synchronously in a small thread pool.
 * Both signal one eventfd; blk_aio_complete() reaps both and runs the callbacks on its caller's
 * thread, so devices never see a callback from a pool thread.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "blk_int.h"
#include "../common/log.h"
#include "../vmm/sandbox.h"

#define AIO_THREADS 4
#define AIO_RING_DEPTH 128

struct blk_aio {
	struct blk *b;
	int efd;
	bool uring;
	struct io_uring ring;
	/* Guards the ring (submission and completion sides). */
	pthread_mutex_t ring_lock;

	pthread_t threads[AIO_THREADS];
	int nthreads;
	/* Guards the queues, stop and inflight. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct blk_req *queue, *queue_tail; /* waiting for a pool thread */
	struct blk_req *done, *done_tail; /* finished by a pool thread */
	bool stop;
	unsigned long inflight; /* submitted, done() not yet called */
};

static void signal_efd(struct blk_aio *a)
{
	uint64_t one = 1;

	/* The counter cannot overflow in practice; EAGAIN would mean it is already readable. */
	if (write(a->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_warn("%s: eventfd write: %s\n", __func__, strerror(errno));
}

static void *aio_worker(void *arg)
{
	struct blk_aio *a = arg;

	sandbox_enter_thread(SANDBOX_IO);
	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct blk_req *req;

		while (!a->stop && !a->queue)
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->stop && !a->queue)
			break;
		req = a->queue;
		a->queue = req->next;
		if (!a->queue)
			a->queue_tail = NULL;
		pthread_mutex_unlock(&a->lock);

		req->ret = blk_execute(a->b, req);

		pthread_mutex_lock(&a->lock);
		req->next = NULL;
		if (a->done_tail)
			a->done_tail->next = req;
		else
			a->done = req;
		a->done_tail = req;
		signal_efd(a);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static int aio_create(struct blk *b)
{
	const char *mode = getenv("VIREO_AIO");
	struct blk_aio *a;
	int ret;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->b = b;
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->ring_lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->efd < 0) {
		ret = -errno;
		goto err_free;
	}
	if (!mode || strcmp(mode, "threads")) {
		ret = io_uring_queue_init(AIO_RING_DEPTH, &a->ring, 0);
		if (ret == 0) {
			ret = io_uring_register_eventfd(&a->ring, a->efd);
			if (ret)
				io_uring_queue_exit(&a->ring);
		}
		a->uring = ret == 0;
		if (!a->uring)
			pr_debug("%s: io_uring unavailable (%s), using threads\n", __func__,
				 strerror(-ret));
	}
	for (; a->nthreads < AIO_THREADS; a->nthreads++) {
		ret = -pthread_create(&a->threads[a->nthreads], NULL, aio_worker, a);
		if (ret)
			goto err_threads;
	}
	b->aio = a;
	return 0;
err_threads:
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	for (int i = 0; i < a->nthreads; i++)
		pthread_join(a->threads[i], NULL);
	if (a->uring)
		io_uring_queue_exit(&a->ring);
	close(a->efd);
err_free:
	free(a);
	return ret;
}

static int aio_get(struct blk *b, struct blk_aio **out)
{
	int ret = 0;

	pthread_mutex_lock(&b->aio_init_lock);
	if (!b->aio)
		ret = aio_create(b);
	pthread_mutex_unlock(&b->aio_init_lock);
	*out = b->aio;
	return ret;
}

void blk_aio_destroy(struct blk *b)
{
	struct blk_aio *a = b->aio;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	for (int i = 0; i < a->nthreads; i++)
		pthread_join(a->threads[i], NULL);
	if (a->uring)
		io_uring_queue_exit(&a->ring);
	close(a->efd);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->ring_lock);
	free(a);
	b->aio = NULL;
}

int blk_aio_fd(struct blk *b)
{
	struct blk_aio *a;
	int ret = aio_get(b, &a);

	return ret ? ret : a->efd;
}

const char *blk_aio_engine_name(struct blk *b)
{
	if (!b->aio)
		return "none";
	return b->aio->uring ? "io_uring" : "threads";
}

/* Queues on io_uring; returns false when the ring cannot take it (then the pool does). */
static bool uring_submit(struct blk_aio *a, struct blk_req *req)
{
	struct io_uring_sqe *sqe;
	int fd = a->b->top->fd;

	pthread_mutex_lock(&a->ring_lock);
	sqe = io_uring_get_sqe(&a->ring);
	if (!sqe) {
		pthread_mutex_unlock(&a->ring_lock);
		return false;
	}
	if (req->op == BLK_OP_READ)
		io_uring_prep_readv(sqe, fd, req->iov, (unsigned int)req->iovcnt, req->offset);
	else if (req->op == BLK_OP_WRITE)
		io_uring_prep_writev(sqe, fd, req->iov, (unsigned int)req->iovcnt, req->offset);
	else
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(sqe, req);
	int ret = io_uring_submit(&a->ring);

	pthread_mutex_unlock(&a->ring_lock);
	if (ret < 0) {
		/* The sqe stays queued and goes with the next submission. */
		pr_debug("%s: io_uring_submit: %s\n", __func__, strerror(-ret));
	}
	return true;
}

int blk_submit(struct blk *b, struct blk_req *req)
{
	struct blk_aio *a;
	int ret = aio_get(b, &a);
	uint64_t len;

	if (ret)
		return ret;
	if (req->op > BLK_OP_WRITE_ZEROES)
		return -EINVAL;
	len = (req->op == BLK_OP_READ || req->op == BLK_OP_WRITE) ? iov_size(req->iov, req->iovcnt)
								  : req->len;
	if (req->op != BLK_OP_FLUSH &&
	    (req->offset > blk_size(b) || len > blk_size(b) - req->offset))
		return -EINVAL;
	if (req->op != BLK_OP_READ && blk_is_read_only(b))
		return -EROFS;

	pthread_mutex_lock(&a->lock);
	a->inflight++;
	pthread_mutex_unlock(&a->lock);
	req->next = NULL;
	req->ret = 0;
	if (a->uring && b->top->drv->format == BLK_FORMAT_RAW && req->op <= BLK_OP_FLUSH &&
	    !(req->op == BLK_OP_WRITE && blk_write_guarded(b, req->offset)) && uring_submit(a, req))
		return 0;

	pthread_mutex_lock(&a->lock);
	if (a->queue_tail)
		a->queue_tail->next = req;
	else
		a->queue = req;
	a->queue_tail = req;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

/* io_uring may move fewer bytes than asked (a signal, a page-cache quirk): the rest is done
 * synchronously here. */
static int uring_result(struct blk_aio *a, struct blk_req *req, int res)
{
	struct iovec stack[8], *part = stack;
	size_t len;
	int n, ret;

	if (res < 0 || req->op == BLK_OP_FLUSH)
		return res < 0 ? res : 0;
	len = iov_size(req->iov, req->iovcnt);
	if ((size_t)res >= len)
		return 0;
	if (req->iovcnt > 8) {
		part = malloc(sizeof(*part) * (size_t)req->iovcnt);
		if (!part)
			return -ENOMEM;
	}
	n = iov_slice(req->iov, req->iovcnt, (size_t)res, len - (size_t)res, part);
	if (req->op == BLK_OP_READ)
		ret = blk_full_preadv(a->b->top->fd, part, n, req->offset + (uint64_t)res, true);
	else
		ret = blk_full_pwritev(a->b->top->fd, part, n, req->offset + (uint64_t)res);
	if (part != stack)
		free(part);
	return ret;
}

static void finish(struct blk_aio *a, struct blk_req *req, int ret)
{
	pthread_mutex_lock(&a->lock);
	a->inflight--;
	pthread_mutex_unlock(&a->lock);
	req->done(req, ret);
}

int blk_aio_complete(struct blk *b)
{
	struct blk_aio *a = b->aio;
	struct blk_req *list;
	uint64_t cnt;
	int n = 0;

	if (!a)
		return 0;
	if (read(a->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return -errno;
	if (a->uring) {
		/* Anything a failed io_uring_submit() left in the ring goes now. */
		pthread_mutex_lock(&a->ring_lock);
		io_uring_submit(&a->ring);
		pthread_mutex_unlock(&a->ring_lock);
		for (;;) {
			struct io_uring_cqe *cqe;
			struct blk_req *req;
			int res;

			pthread_mutex_lock(&a->ring_lock);
			if (io_uring_peek_cqe(&a->ring, &cqe)) {
				pthread_mutex_unlock(&a->ring_lock);
				break;
			}
			req = io_uring_cqe_get_data(cqe);
			res = cqe->res;
			io_uring_cqe_seen(&a->ring, cqe);
			pthread_mutex_unlock(&a->ring_lock);
			finish(a, req, uring_result(a, req, res));
			n++;
		}
	}
	pthread_mutex_lock(&a->lock);
	list = a->done;
	a->done = a->done_tail = NULL;
	pthread_mutex_unlock(&a->lock);
	while (list) {
		struct blk_req *req = list;

		list = list->next;
		finish(a, req, req->ret);
		n++;
	}
	return n;
}

void blk_drain(struct blk *b)
{
	struct blk_aio *a = b->aio;

	if (!a)
		return;
	for (;;) {
		unsigned long left;
		struct pollfd p = { .fd = a->efd, .events = POLLIN };

		blk_aio_complete(b);
		pthread_mutex_lock(&a->lock);
		left = a->inflight;
		pthread_mutex_unlock(&a->lock);
		if (!left)
			return;
		poll(&p, 1, 100);
	}
}
