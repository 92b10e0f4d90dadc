// SPDX-License-Identifier: MIT
#include "vm.h"
#include "vcpu.h"
#include "vmdev.h"
#include "vmdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../boot/acpi.h"
#include "../boot/e820.h"
#include "../boot/layout.h"
#include "../boot/linux.h"
#include "../boot/mptable.h"
#include "../boot/pvh.h"
#include "../common/log.h"
#include "../common/util.h"

#define KVM_TSS_ADDR 0xfffbd000
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000
#define MAX_KERNEL_SIZE (512 * MIB)
#define MAX_PAYLOAD_SIZE (EBDA_START - PAYLOAD_ADDR)

/* Kernel options that hide what KVM_SET_CPUID2 cannot on PVM hosts (see shared/DESIGN.md). */
#define PVM_GUEST_OPTIONS "clearcpuid=xsave,erms,fsrm,smap,fsgsbase,pcid,invpcid,popcnt"

struct kvm_cap_need {
	int cap;
	const char *name;
	const char *what;
};

static const struct kvm_cap_need required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", "guest RAM from process memory" },
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", "in-kernel PIC/IOAPIC/LAPIC" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2", "in-kernel i8254 timer" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING", "interrupt routing table" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", "CPUID setup" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR", "TSS placement" },
	{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE", "SMP start-up state" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "stopping vCPUs reliably" },
	{ KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS", "exception injection" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD", "device interrupts from eventfds" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", "device notifications to eventfds" },
};

static int kvm_open(struct vm *vm)
{
	int v;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int err = -errno;
		if (errno == ENOENT)
			pr_err("/dev/kvm does not exist: KVM is not available on this host (enable "
			       "virtualization in the firmware and load kvm_intel or kvm_amd)");
		else if (errno == EACCES || errno == EPERM)
			pr_err("/dev/kvm: permission denied (add your user to the 'kvm' group, "
			       "or run as root)");
		else
			pr_err("/dev/kvm: %s", strerror(errno));
		return err;
	}
	v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		pr_err("/dev/kvm speaks KVM API version %d; vireo needs %d", v, KVM_API_VERSION);
		return -ENOTSUP;
	}
	for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			pr_err("this host's KVM lacks %s (%s), which vireo needs",
			       required_caps[i].name, required_caps[i].what);
			return -ENOTSUP;
		}
	}
	v = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (v <= 0)
		v = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	vm->max_vcpus = v > 0 ? (unsigned int)v : 4;
	return 0;
}

static int get_supported_cpuid(struct vm *vm)
{
	int err;

	for (int n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c =
			calloc(1, sizeof(*c) + (size_t)n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			return -ENOMEM;
		c->nent = (uint32_t)n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->supported_cpuid = c;
			return 0;
		}
		err = -errno;
		free(c);
		if (err != -E2BIG) {
			pr_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(-err));
			return err;
		}
	}
	return -E2BIG;
}

static char *build_cmdline(const struct vm *vm)
{
	const char *base = vm->cfg->cmdline ? vm->cfg->cmdline : VM_DEFAULT_CMDLINE;
	size_t len = strlen(base) + sizeof(PVM_GUEST_OPTIONS) + 2;
	char *s = malloc(len);

	if (!s)
		return NULL;
	if (vm->pvm_profile)
		snprintf(s, len, "%s %s", base, PVM_GUEST_OPTIONS);
	else
		snprintf(s, len, "%s", base);
	return s;
}

/* ACPI tables and the MP table, where firmware would leave them. */
static int build_firmware_tables(struct vm *vm)
{
	if (acpi_build(memory_gpa_ptr(&vm->mem, ACPI_TABLES_ADDR, ACPI_TABLES_MAX), ACPI_TABLES_MAX,
		       ACPI_TABLES_ADDR, vm->nvcpus) < 0 ||
	    mptable_build(memory_gpa_ptr(&vm->mem, MPTABLE_ADDR, MPTABLE_MAX), MPTABLE_MAX,
			  MPTABLE_ADDR, vm->nvcpus) < 0) {
		pr_err("ACPI or MP tables do not fit below 1 MiB (%u vCPUs)", vm->nvcpus);
		return -ENOSPC;
	}
	return 0;
}

static int load_linux(struct vm *vm, uint64_t *entry, bool *pvh)
{
	const struct vm_config *cfg = vm->cfg;
	const uint8_t *kdata = NULL, *idata = NULL;
	size_t ksize = 0, isize = 0;
	struct kernel_image k;
	struct boot_e820_entry e820[16];
	struct boot_params *bp;
	uint64_t initrd_addr = 0;
	char err[256], *cmdline = NULL;
	void *dst;
	int ret, ne820;

	ret = map_file(cfg->kernel, MAX_KERNEL_SIZE, &kdata, &ksize);
	if (ret) {
		pr_err("kernel %s: %s", cfg->kernel,
		       ret == -EFBIG ? "larger than 512 MiB, not a kernel" : strerror(-ret));
		return ret;
	}
	ret = linux_probe(kdata, ksize, &k, err, sizeof(err));
	if (ret) {
		pr_err("kernel %s: %s", cfg->kernel, err);
		goto out;
	}
	*pvh = k.has_pvh && cfg->boot != BOOT_LINUX64;
	if (cfg->boot == BOOT_PVH && !k.has_pvh) {
		pr_err("kernel %s: --boot pvh, but the kernel has no PVH entry point (ELF note "
		       "XEN_ELFNOTE_PHYS32_ENTRY; a vmlinux built with CONFIG_PVH has one)",
		       cfg->kernel);
		ret = -ENOEXEC;
		goto out;
	}
	if (k.pvh_only && cfg->boot == BOOT_LINUX64) {
		pr_err("kernel %s: --boot linux64, but a 32-bit ELF kernel has no 64-bit entry "
		       "point (it boots through PVH only)",
		       cfg->kernel);
		ret = -ENOEXEC;
		goto out;
	}
	ret = linux_load(&vm->mem, &k, err, sizeof(err));
	if (ret) {
		pr_err("kernel %s: %s", cfg->kernel, err);
		goto out;
	}
	pr_debug("kernel %s: %s, boot protocol %u.%02u, entry %#" PRIx64 ", %" PRIu64 " KiB",
		 cfg->kernel, k.format == KERNEL_ELF ? "ELF vmlinux" : "bzImage", k.version >> 8,
		 k.version & 0xff, k.entry, (k.end - k.load_addr) >> 10);
	if (cfg->initrd) {
		ret = map_file(cfg->initrd, vm->mem.ram_size, &idata, &isize);
		if (ret == -EFBIG) {
			pr_err("initrd %s is larger than guest RAM (%" PRIu64 " MiB)", cfg->initrd,
			       vm->mem.ram_size >> 20);
			goto out;
		}
		if (ret) {
			pr_err("initrd %s: %s", cfg->initrd, strerror(-ret));
			goto out;
		}
		ret = linux_place_initrd(&vm->mem, &k, isize, &initrd_addr, err, sizeof(err));
		if (ret) {
			pr_err("initrd %s: %s", cfg->initrd, err);
			goto out;
		}
		if (isize)
			memcpy(memory_gpa_ptr(&vm->mem, initrd_addr, isize), idata, isize);
	}
	cmdline = build_cmdline(vm);
	if (!cmdline) {
		ret = -ENOMEM;
		goto out;
	}
	if (strlen(cmdline) > k.cmdline_max || strlen(cmdline) >= BOOT_CMDLINE_MAX) {
		pr_err("kernel command line is %zu bytes; this kernel accepts at most %u",
		       strlen(cmdline), k.cmdline_max);
		ret = -E2BIG;
		goto out;
	}
	dst = memory_gpa_ptr(&vm->mem, BOOT_CMDLINE_ADDR, strlen(cmdline) + 1);
	memcpy(dst, cmdline, strlen(cmdline) + 1);
	pr_debug("kernel command line: %s", cmdline);

	ret = build_firmware_tables(vm);
	if (ret)
		goto out;
	ne820 = e820_build(&vm->mem, e820, (int)ARRAY_SIZE(e820));
	bp = memory_gpa_ptr(&vm->mem, BOOT_PARAMS_ADDR, sizeof(*bp));
	linux_fill_boot_params(bp, &k, BOOT_CMDLINE_ADDR, (uint32_t)strlen(cmdline), initrd_addr,
			       isize, e820, ne820, ACPI_TABLES_ADDR);
	*entry = k.entry;
	if (*pvh) {
		*entry = k.pvh_entry;
		ret = pvh_write_start_info(&vm->mem, BOOT_PVH_INFO_ADDR, BOOT_CMDLINE_ADDR,
					   initrd_addr, isize, ACPI_TABLES_ADDR, e820, ne820);
		if (ret) {
			pr_err("PVH start info does not fit");
			goto out;
		}
		pr_debug("booting through the PVH entry point %#" PRIx64, *entry);
	}
	ret = 0;
out:
	free(cmdline);
	unmap_file(kdata, ksize);
	unmap_file(idata, isize);
	return ret;
}

static int load_payload(struct vm *vm)
{
	uint8_t *data;
	size_t size;
	int ret;

	ret = read_file(vm->cfg->payload, MAX_PAYLOAD_SIZE, &data, &size);
	if (ret) {
		pr_err("payload %s: %s", vm->cfg->payload,
		       ret == -EFBIG ? "too large (a payload must fit below 0x9fc00)"
				     : strerror(-ret));
		return ret;
	}
	memcpy(memory_gpa_ptr(&vm->mem, PAYLOAD_ADDR, size), data, size);
	free(data);
	/* MP and ACPI tables let payloads find the CPUs as an OS would. */
	return build_firmware_tables(vm);
}

int vm_set_memory_slots(struct vm *vm, bool log_dirty)
{
	for (int i = 0; i < vm->mem.nregions; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = (uint32_t)i,
			.flags = log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.regions[i].hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			int err = -errno;

			pr_err("KVM_SET_USER_MEMORY_REGION%s: %s",
			       log_dirty ? " (dirty logging on)" : "", strerror(-err));
			return err;
		}
	}
	return 0;
}

static bool pvm_detect(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t entry = 0;
	bool pvh = false;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	/* Every fd vm_destroy closes is -1 before anything can fail: a zeroed one is stdin. */
	vm->kvm_fd = vm->vm_fd = vm->stop_fd = vm->rx_space_fd = -1;
	vm->watch_ep = vm->stop_deadline_fd = -1;
	migration_init(&vm->migration);
	pthread_mutex_init(&vm->watch_lock, NULL);
	vm->watch_ep = epoll_create1(EPOLL_CLOEXEC);
	if (vm->watch_ep < 0)
		return -errno;
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->stop_deadline_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->stop_deadline_fd < 0)
		return -errno;
	vm->nvcpus = cfg->ncpus;

	ret = kvm_open(vm);
	if (ret)
		return ret;
	if (cfg->ncpus > vm->max_vcpus) {
		pr_err("--cpus %u: this host's KVM allows at most %u vCPUs per VM", cfg->ncpus,
		       vm->max_vcpus);
		return -EINVAL;
	}
	vm->pvm_host = pvm_detect();
	vm->pvm_profile = cfg->pvm == PVM_ON || (cfg->pvm == PVM_AUTO && vm->pvm_host);
	if (vm->pvm_host)
		pr_info("host KVM is kvm_pvm (nested, without VT-x/AMD-V): guest kernel code runs "
			"in KVM's instruction emulator, about a million instructions per second");
	if (vm->pvm_profile)
		pr_info("PVM compatibility profile: CPUID hides cx16,smap,fsgsbase,pcid,invpcid,"
			"erms,fsrm,xsave,popcnt and the hypercall-based kvm_pv_send_ipi,"
			"kvm_pv_sched_yield,kvm_pv_unhalt%s",
			cfg->kernel && !cfg->no_boot
				? "; guest command line gets '" PVM_GUEST_OPTIONS "'"
				: "");

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		pr_err("KVM_CREATE_VM: %s", strerror(-ret));
		return ret;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		pr_debug("KVM_SET_TSS_ADDR: %s", strerror(errno));
	{
		uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
		    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
			pr_debug("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		pr_err("KVM_CREATE_IRQCHIP: %s", strerror(-ret));
		return ret;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		pr_err("KVM_CREATE_PIT2: %s", strerror(-ret));
		return ret;
	}
	ret = vm_irq_routing_init(vm);
	if (ret)
		return ret;
	ret = get_supported_cpuid(vm);
	if (ret)
		return ret;
	vm->cpuid_fingerprint = vcpu_cpuid_fingerprint(vm);

	if (cfg->ram_from_fd) {
		ret = memory_map_fd(&vm->mem, cfg->ram_fd, cfg->mem_size);
		if (ret) {
			pr_err("cannot map guest RAM from the snapshot: %s", strerror(-ret));
			return ret;
		}
		vm->ram_from_file = true;
	} else {
		ret = memory_alloc(&vm->mem, cfg->mem_size, cfg->hugepages);
	}
	if (ret) {
		pr_err("cannot allocate %" PRIu64 " MiB of guest RAM%s: %s", cfg->mem_size >> 20,
		       cfg->hugepages ? " from huge pages (is /proc/sys/vm/nr_hugepages set?)" : "",
		       strerror(-ret));
		return ret;
	}
	ret = vm_set_memory_slots(vm, false);
	if (ret)
		return ret;

	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0)
		return -errno;
	vm->rx_space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->rx_space_fd < 0)
		return -errno;
	ret = vm_setup_devices(vm);
	if (ret)
		return ret;

	if (!cfg->no_boot) {
		ret = cfg->payload ? load_payload(vm) : load_linux(vm, &entry, &pvh);
		if (ret)
			return ret;
	}

	vm->vcpus = calloc(vm->nvcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned int i = 0; i < vm->nvcpus; i++) {
		ret = vcpu_create(vm, &vm->vcpus[i], i);
		if (ret)
			return ret;
	}
	{
		int khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);

		vm->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
		pr_debug("guest TSC %u kHz", vm->tsc_khz);
	}
	/* A restored or incoming guest gets its registers from the saved state. */
	if (cfg->no_boot)
		return 0;
	/* vCPU 0 is the bootstrap processor; the others wait in the in-kernel LAPIC for the
	 * INIT/SIPI sequence the guest sends, as on real hardware. */
	if (cfg->payload)
		ret = vcpu_setup_real_mode(&vm->vcpus[0], 0, PAYLOAD_ADDR, 0x7000);
	else if (pvh)
		ret = vcpu_setup_protected_mode(&vm->vcpus[0], entry, BOOT_PVH_INFO_ADDR);
	else
		ret = vcpu_setup_long_mode(&vm->vcpus[0], entry, BOOT_PARAMS_ADDR);
	if (ret) {
		pr_err("vcpu0: initial register state: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

void vm_set_tsc_khz(struct vm *vm, uint32_t khz)
{
	int cur = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);

	if (cur == (int)khz || cur <= 0)
		return;
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) <= 0) {
		pr_warn("the saved guest ran with a %u kHz TSC, this host's is %d kHz and KVM "
			"cannot scale it: guest time may drift",
			khz, cur);
		return;
	}
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		if (ioctl(vm->vcpus[i].fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0) {
			pr_warn("vcpu%u: KVM_SET_TSC_KHZ %u: %s", i, khz, strerror(errno));
			return;
		}
	vm->tsc_khz = khz;
}

void vm_request_stop(struct vm *vm, enum stop_reason reason, int status)
{
	enum stop_reason none = STOP_NONE;
	uint64_t one = 1;

	if (__atomic_compare_exchange_n(&vm->stop_reason, &none, reason, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST)) {
		vm->exit_status = status;
		if (write(vm->stop_fd, &one, sizeof(one)) < 0)
			pr_debug("stop eventfd: %s", strerror(errno));
	}
}

uint64_t vmm_start_ns;

void vm_note_first_run(struct vm *vm)
{
	(void)vm;
	pr_debug("startup: first KVM_RUN %.3f ms after start, %.3f ms of CPU time",
		 (double)((uint64_t)clock_ns(CLOCK_MONOTONIC) - vmm_start_ns) / 1e6,
		 (double)clock_ns(CLOCK_PROCESS_CPUTIME_ID) / 1e6);
}

int vm_pause(struct vm *vm)
{
	struct timespec deadline;
	int ret = 0;

	pthread_mutex_lock(&vm->pause_lock);
	if (vm->paused) {
		pthread_mutex_unlock(&vm->pause_lock);
		return 0;
	}
	__atomic_store_n(&vm->paused, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	/* Paused means every vCPU is out of KVM_RUN and parked. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < vm->nvcpus && ret == 0 &&
	       __atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) == STOP_NONE)
		ret = -pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &deadline);
	pthread_mutex_unlock(&vm->pause_lock);
	if (ret) {
		pr_err("pause: only %u of %u vCPUs stopped within 10 s", vm->parked, vm->nvcpus);
		return ret;
	}
	/* No vCPU adds work now; devices finish theirs (disks drain in-flight requests), so a
	 * paused VM is a settled one that snapshots and migration can save. */
	for (unsigned int i = 0; i < vm->ndevices; i++)
		if (vm->devices[i].ops->quiesce)
			vm->devices[i].ops->quiesce(vm->devices[i].dev);
	return 0;
}

int vm_resume(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ndevices; i++)
		if (vm->devices[i].ops->resume)
			vm->devices[i].ops->resume(vm->devices[i].dev);
	pthread_mutex_lock(&vm->pause_lock);
	__atomic_store_n(&vm->paused, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return 0;
}

int vm_stop(struct vm *vm, unsigned int timeout_s)
{
	struct itimerspec its = { .it_value.tv_sec = timeout_s };

	if (timeout_s == 0) {
		pr_info("stop requested: stopping the VM now");
		vm_request_stop(vm, STOP_USER, EXIT_GUEST_OFF);
		return 0;
	}
	/* The guest must run to see the button. */
	vm_resume(vm);
	pr_info("stop requested: ACPI power button pressed, %u s for the guest to power off",
		timeout_s);
	vm->stop_timeout_s = timeout_s;
	platform_power_button(&vm->platform);
	if (timerfd_settime(vm->stop_deadline_fd, 0, &its, NULL) < 0)
		return -errno;
	return 0;
}

void vm_get_status(struct vm *vm, struct vm_status *st)
{
	st->state = __atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) != STOP_NONE ? VM_STOPPING
		    : __atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE)		     ? VM_PAUSED
										     : VM_RUNNING;
	st->vcpus = vm->nvcpus;
	st->memory_mib = vm->mem.ram_size >> 20;
	st->uptime_ms = ((uint64_t)clock_ns(CLOCK_MONOTONIC) - vmm_start_ns) / 1000000;
	st->exits = 0;
	for (unsigned int i = 0; i < vm->nvcpus; i++)
		st->exits += __atomic_load_n(&vm->vcpus[i].exits, __ATOMIC_RELAXED);
	st->pvm_profile = vm->pvm_profile;
}

void vm_destroy(struct vm *vm)
{
	migration_finish(vm);
	if (vm->stop_deadline_fd >= 0)
		close(vm->stop_deadline_fd);
	vm->stop_deadline_fd = -1;
	if (vm->watch_ep >= 0)
		close(vm->watch_ep);
	vm->watch_ep = -1;
	if (vm->vcpus) {
		for (unsigned int i = 0; i < vm->nvcpus; i++)
			if (vm->vcpus[i].vm)
				vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	/* The vCPUs are gone: flush and close the disk images (clears their qcow2 dirty bit). */
	vm_disks_close(vm);
	free(vm->supported_cpuid);
	vm->supported_cpuid = NULL;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	if (vm->rx_space_fd >= 0)
		close(vm->rx_space_fd);
	vm->rx_space_fd = -1;
	vm->vm_fd = vm->kvm_fd = vm->stop_fd = -1;
	memory_free(&vm->mem);
}
