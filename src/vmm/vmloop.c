// SPDX-License-Identifier: MIT
/* The main loop of a running VM (vm_run): the vCPU threads are started, then one epoll set
 * serves stop requests, signals, the run timeout and the graceful-stop deadline, console input
 * with back-pressure from the UART, and the fds watched with vm_watch_fd (devices, the control
 * socket and its clients) until something asks the VM to stop; then the vCPU threads are
 * stopped and joined. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "vmloop.h"
#include "vm.h"
#include "vcpu.h"

enum {
	TAG_STOP,
	TAG_SIGNAL,
	TAG_TIMER,
	TAG_INPUT,
	TAG_RXSPACE,
	TAG_LISTEN,
	TAG_DEADLINE,
	TAG_WATCH, /* device fds (vm_watch_fd) */
};

/* The loop's own fds and the console input watch (owned here, closed by loop_close). */
struct vm_loop {
	int ep, sfd, tfd;
	bool input_watched;
	int watched_fd;
};

static void kick_handler(int sig)
{
	(void)sig;
}

/* Offers pending console input to the UART; returns true when all of it was taken. */
static bool deliver_input(struct vm *vm)
{
	struct console *c = &vm->console;

	if (c->pending_off < c->npending)
		c->pending_off += serial8250_receive(&vm->com1, c->pending + c->pending_off,
						     c->npending - c->pending_off);
	return c->pending_off >= c->npending;
}

static int epoll_add(int ep, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void *profiler_thread(void *arg)
{
	struct vm *vm = arg;
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	while (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
		nanosleep(&ts, NULL);
		for (unsigned int i = 0; i < vm->nvcpus; i++)
			vcpu_request_sample(&vm->vcpus[i]);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Writes "count rip" lines, most frequent first is left to sort(1); one block per vCPU. */
static void profile_write(struct vm *vm)
{
	FILE *f = fopen(vm->cfg->profile, "w");

	if (!f) {
		pr_err("--profile %s: %s", vm->cfg->profile, strerror(errno));
		return;
	}
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		fprintf(f, "# vcpu%u: %zu samples\n", i, v->nsamples);
		qsort(v->samples, v->nsamples, sizeof(uint64_t), cmp_u64);
		for (size_t j = 0; j < v->nsamples;) {
			size_t k = j;
			while (k < v->nsamples && v->samples[k] == v->samples[j])
				k++;
			fprintf(f, "%zu %016" PRIx64 "\n", k - j, v->samples[j]);
			j = k;
		}
	}
	fclose(f);
}

static void loop_close(struct vm_loop *l)
{
	if (l->ep >= 0)
		close(l->ep);
	if (l->sfd >= 0)
		close(l->sfd);
	if (l->tfd >= 0)
		close(l->tfd);
}

/* Signals: SIGINT/SIGTERM/SIGHUP come through a signalfd; SIGUSR1 (vCPU kicks) is blocked here
 * and unblocked by each vCPU thread for itself. Then the epoll set and the run timeout. */
static int loop_open(struct vm *vm, struct vm_loop *l)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigset_t set;

	*l = (struct vm_loop){ .ep = -1, .sfd = -1, .tfd = -1, .watched_fd = -1 };
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigdelset(&set, SIGUSR1);
	l->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->sfd < 0 || l->ep < 0) {
		pr_err("event loop: %s", strerror(errno));
		return -1;
	}
	epoll_add(l->ep, vm->stop_fd, TAG_STOP);
	epoll_add(l->ep, l->sfd, TAG_SIGNAL);
	epoll_add(l->ep, vm->rx_space_fd, TAG_RXSPACE);
	if (vm->console.listen_fd >= 0)
		epoll_add(l->ep, vm->console.listen_fd, TAG_LISTEN);
	epoll_add(l->ep, vm->stop_deadline_fd, TAG_DEADLINE);
	epoll_add(l->ep, vm->watch_ep, TAG_WATCH);
	if (vm->cfg->timeout_s) {
		struct itimerspec its = { .it_value.tv_sec = vm->cfg->timeout_s };

		l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (l->tfd < 0 || timerfd_settime(l->tfd, 0, &its, NULL) < 0) {
			pr_err("timeout timer: %s", strerror(errno));
			return -1;
		}
		epoll_add(l->ep, l->tfd, TAG_TIMER);
	}
	return 0;
}

static void start_threads(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		int ret = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);

		if (ret) {
			pr_err("cannot start vCPU thread %u: %s", i, strerror(ret));
			vm_request_stop(vm, STOP_ERROR, EXIT_ERROR);
			break;
		}
		vm->vcpus[i].started = true;
	}
	if (vm->cfg->profile && vm->stop_reason == STOP_NONE)
		vm->profiler_started =
			pthread_create(&vm->profiler, NULL, profiler_thread, vm) == 0;
}

/* Stops and joins the vCPU threads and the profiler, then reports what the run left. */
static void stop_threads(struct vm *vm)
{
	__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE);
	/* Parked vCPUs wake up, see the stop and leave. */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	if (vm->profiler_started) {
		pthread_join(vm->profiler, NULL);
		profile_write(vm);
	}
	/* A guest that did not finish in time: show where each vCPU was. */
	if (vm->stop_reason == STOP_TIMEOUT)
		for (unsigned int i = 0; i < vm->nvcpus; i++)
			vcpu_dump_regs(&vm->vcpus[i]);
	if (log_max_level >= LOG_DEBUG)
		for (unsigned int i = 0; i < vm->nvcpus; i++)
			pr_debug("vcpu%u: %lu exits, %lu instructions completed for the host "
				 "emulator",
				 i, vm->vcpus[i].exits, vm->vcpus[i].emulated);
	pr_debug("%lu KVM_SET_GSI_ROUTING calls", vm->routing_sets);
}

/* Watch the console input only while the UART has taken everything read so far: that is the
 * back-pressure from a slow guest. */
static void update_input_watch(struct vm *vm, struct vm_loop *l)
{
	struct console *c = &vm->console;
	bool want_input = c->in_fd >= 0 && c->pending_off >= c->npending;

	if (want_input && (!l->input_watched || l->watched_fd != c->in_fd)) {
		if (l->input_watched)
			epoll_ctl(l->ep, EPOLL_CTL_DEL, l->watched_fd, NULL);
		l->input_watched = epoll_add(l->ep, c->in_fd, TAG_INPUT) == 0;
		l->watched_fd = c->in_fd;
	} else if (!want_input && l->input_watched) {
		epoll_ctl(l->ep, EPOLL_CTL_DEL, l->watched_fd, NULL);
		l->input_watched = false;
	}
}

static void console_input(struct vm *vm, struct vm_loop *l)
{
	switch (console_read_input(&vm->console)) {
	case CONSOLE_INPUT_QUIT:
		pr_info("console escape: stopping the VM");
		vm_request_stop(vm, STOP_USER, EXIT_GUEST_OFF);
		break;
	case CONSOLE_INPUT_EOF:
		/* No more input (stdin closed): the guest keeps running. */
		epoll_ctl(l->ep, EPOLL_CTL_DEL, l->watched_fd, NULL);
		l->input_watched = false;
		vm->console.in_fd = -1;
		break;
	default:
		deliver_input(vm);
		break;
	}
}

static void dispatch(struct vm *vm, struct vm_loop *l, uint64_t tag)
{
	struct signalfd_siginfo si;
	uint64_t v;

	switch (tag) {
	case TAG_SIGNAL:
		if (read(l->sfd, &si, sizeof(si)) == sizeof(si)) {
			pr_info("signal %u: stopping the VM", si.ssi_signo);
			vm_request_stop(vm, STOP_SIGNAL, 128 + (int)si.ssi_signo);
		}
		break;
	case TAG_TIMER:
		pr_err("timeout: the guest was still running after %u s; stopping it",
		       vm->cfg->timeout_s);
		vm_request_stop(vm, STOP_TIMEOUT, EXIT_TIMEOUT);
		break;
	case TAG_RXSPACE:
		if (read(vm->rx_space_fd, &v, sizeof(v)) >= 0)
			deliver_input(vm);
		break;
	case TAG_LISTEN:
		console_accept(&vm->console);
		break;
	case TAG_DEADLINE:
		if (read(vm->stop_deadline_fd, &v, sizeof(v)) < 0)
			break;
		pr_info("the guest did not power off within %u s; stopping it", vm->stop_timeout_s);
		vm_request_stop(vm, STOP_USER, EXIT_GUEST_OFF);
		break;
	case TAG_WATCH:
		vm_dispatch_watches(vm);
		break;
	case TAG_INPUT:
		console_input(vm, l);
		break;
	case TAG_STOP:
		break; /* the loop condition sees it */
	default:
		break;
	}
}

int vm_run(struct vm *vm)
{
	struct vm_loop l;

	if (loop_open(vm, &l)) {
		loop_close(&l);
		return EXIT_ERROR;
	}
	start_threads(vm);
	while (__atomic_load_n(&vm->stop_reason, __ATOMIC_SEQ_CST) == STOP_NONE) {
		struct epoll_event evs[8];
		int n;

		update_input_watch(vm, &l);
		n = epoll_wait(l.ep, evs, 8, -1);
		if (n < 0 && errno != EINTR) {
			pr_err("epoll_wait: %s", strerror(errno));
			vm_request_stop(vm, STOP_ERROR, EXIT_ERROR);
		}
		for (int i = 0; i < n; i++)
			dispatch(vm, &l, evs[i].data.u64);
	}
	stop_threads(vm);
	loop_close(&l);
	return vm->exit_status;
}
