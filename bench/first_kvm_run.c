// SPDX-License-Identifier: MIT
/* LD_PRELOAD probe for the benchmarks: the same start-up figure for every VMM (vireo, QEMU,
 * kvmtool), none of which needs to know about it.
 *
 * It wraps libc's ioctl(). At the first KVM_RUN of the process it writes one line of JSON to
 * $BENCH_FIRST_RUN_OUT:
 *   wall_ms      since $BENCH_T0_NS (CLOCK_MONOTONIC, set by the parent just before it starts
 *                the VMM), so program loading and dynamic linking count
 *   user_ms, sys_ms, minflt, majflt   getrusage(RUSAGE_SELF): all threads so far
 *   ioctls       per request: count and wall time spent inside it, e.g. KVM_CREATE_VM
 * and, if $BENCH_FIRST_RUN_EXIT=1, ends the process there (_exit(0)): under
 * `valgrind --tool=callgrind` the profile then covers exactly process start -> first KVM_RUN.
 * Each ioctl costs one clock_gettime pair more; nothing else changes.
 *
 * Built by bench/common.py (cc -shared -fPIC -O2 first_kvm_run.c -ldl). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef int (*ioctl_fn)(int, unsigned long, ...);

static ioctl_fn real_ioctl;
static int first_run_done;

#define NSLOTS 128
static struct slot {
	unsigned long req;
	unsigned long count;
	uint64_t ns;
} slots[NSLOTS];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const struct {
	unsigned long req;
	const char *name;
} names[] = {
#define N(x)          \
	{             \
		x, #x \
	}
	N(KVM_GET_API_VERSION),
	N(KVM_CREATE_VM),
	N(KVM_CHECK_EXTENSION),
	N(KVM_GET_VCPU_MMAP_SIZE),
	N(KVM_GET_SUPPORTED_CPUID),
	N(KVM_GET_MSR_INDEX_LIST),
	N(KVM_GET_MSR_FEATURE_INDEX_LIST),
	N(KVM_CREATE_VCPU),
	N(KVM_SET_USER_MEMORY_REGION),
	N(KVM_SET_TSS_ADDR),
	N(KVM_SET_IDENTITY_MAP_ADDR),
	N(KVM_CREATE_IRQCHIP),
	N(KVM_CREATE_PIT2),
	N(KVM_IRQ_LINE),
	N(KVM_IRQ_LINE_STATUS),
	N(KVM_SET_GSI_ROUTING),
	N(KVM_IRQFD),
	N(KVM_IOEVENTFD),
	N(KVM_ENABLE_CAP),
	N(KVM_SET_CLOCK),
	N(KVM_GET_CLOCK),
	N(KVM_GET_REGS),
	N(KVM_SET_REGS),
	N(KVM_GET_SREGS),
	N(KVM_SET_SREGS),
	N(KVM_GET_SREGS2),
	N(KVM_SET_SREGS2),
	N(KVM_GET_XSAVE2),
	N(KVM_CREATE_DEVICE),
	N(KVM_SET_DEVICE_ATTR),
	N(KVM_HAS_DEVICE_ATTR),
	N(KVM_SET_IRQCHIP),
	N(KVM_GET_FPU),
	N(KVM_SET_FPU),
	N(KVM_GET_MSRS),
	N(KVM_SET_MSRS),
	N(KVM_SET_CPUID2),
	N(KVM_GET_CPUID2),
	N(KVM_GET_LAPIC),
	N(KVM_SET_LAPIC),
	N(KVM_GET_XSAVE),
	N(KVM_SET_XSAVE),
	N(KVM_GET_XCRS),
	N(KVM_SET_XCRS),
	N(KVM_GET_VCPU_EVENTS),
	N(KVM_SET_VCPU_EVENTS),
	N(KVM_GET_DEBUGREGS),
	N(KVM_SET_DEBUGREGS),
	N(KVM_GET_MP_STATE),
	N(KVM_SET_MP_STATE),
	N(KVM_SET_SIGNAL_MASK),
	N(KVM_SET_TSC_KHZ),
	N(KVM_GET_TSC_KHZ),
	N(KVM_SET_BOOT_CPU_ID),
	N(KVM_GET_IRQCHIP),
	N(KVM_GET_PIT2),
	N(KVM_SET_PIT2),
	N(KVM_GET_DIRTY_LOG),
	N(KVM_SET_GUEST_DEBUG),
	N(KVM_KVMCLOCK_CTRL),
	N(KVM_SIGNAL_MSI),
	N(KVM_REGISTER_COALESCED_MMIO),
	N(KVM_SET_PMU_EVENT_FILTER),
	N(KVM_GET_STATS_FD),
	N(KVM_X86_SET_MCE),
	N(KVM_X86_SETUP_MCE),
	N(KVM_X86_GET_MCE_CAP_SUPPORTED),
	N(KVM_GET_NESTED_STATE),
	N(KVM_SET_NESTED_STATE),
	N(KVM_RUN),
#undef N
};

static void req_name(unsigned long req, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].req == req) {
			snprintf(buf, len, "%s", names[i].name);
			return;
		}
	snprintf(buf, len, "0x%lx", req);
}

static void account(unsigned long req, uint64_t ns)
{
	unsigned int h = (unsigned int)((req * 2654435761ul) >> 7) % NSLOTS;

	for (unsigned int i = 0; i < NSLOTS; i++, h = (h + 1) % NSLOTS) {
		unsigned long cur = __atomic_load_n(&slots[h].req, __ATOMIC_ACQUIRE);

		if (cur == 0 && __atomic_compare_exchange_n(&slots[h].req, &cur, req, false,
							    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			cur = req;
		if (cur == req) {
			__atomic_add_fetch(&slots[h].count, 1, __ATOMIC_RELAXED);
			__atomic_add_fetch(&slots[h].ns, ns, __ATOMIC_RELAXED);
			return;
		}
	}
}

static void report(void)
{
	const char *path = getenv("BENCH_FIRST_RUN_OUT");
	const char *t0s = getenv("BENCH_T0_NS");
	uint64_t t = now_ns();
	struct rusage ru;
	char buf[16384], name[64];
	size_t n = 0;
	int fd;

	if (!path)
		return;
	getrusage(RUSAGE_SELF, &ru);
	n += (size_t)snprintf(
		buf + n, sizeof(buf) - n,
		"{\"pid\": %d, \"wall_ms\": %.3f, \"user_ms\": %.3f, \"sys_ms\": %.3f, "
		"\"minflt\": %ld, \"majflt\": %ld, \"ioctls\": {",
		getpid(), t0s ? (double)(t - strtoull(t0s, NULL, 10)) / 1e6 : -1.0,
		ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3,
		ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3, ru.ru_minflt, ru.ru_majflt);
	for (int i = 0, first = 1; i < NSLOTS && n < sizeof(buf) - 200; i++) {
		if (!slots[i].req)
			continue;
		req_name(slots[i].req, name, sizeof(name));
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s\": [%lu, %.3f]",
				      first ? "" : ", ", name, slots[i].count, slots[i].ns / 1e6);
		first = 0;
	}
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "}}\n");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, buf, n) < 0)
			perror("first_kvm_run: write");
		close(fd);
	}
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	unsigned long req_lo;
	uint64_t t;
	int ret;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real_ioctl)
		real_ioctl = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
	/* QEMU passes the request as an int: KVM's _IOR/_IOWR numbers arrive sign-extended. */
	req_lo = (unsigned int)req;
	if (req_lo == KVM_RUN && !__atomic_exchange_n(&first_run_done, 1, __ATOMIC_ACQ_REL)) {
		report();
		if (getenv("BENCH_FIRST_RUN_EXIT"))
			_exit(0);
	}
	if (req_lo == KVM_RUN)
		return real_ioctl(fd, req, arg);
	t = now_ns();
	ret = real_ioctl(fd, req, arg);
	account(req_lo, now_ns() - t);
	return ret;
}
