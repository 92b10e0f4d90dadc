// SPDX-License-Identifier: MIT
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../boot/layout.h"
#include "../common/log.h"
#include "cpuid.h"
#include "guestmem_access.h"
#include "vcpu.h"
#include "vm.h"
#include "exits.h"

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7
#define APIC_LVT_MASKED (1u << 16)

/* The CPUID one vCPU sees, malloc'd. */
static struct kvm_cpuid2 *guest_cpuid(struct vm *vm, unsigned int index)
{
	size_t sz = sizeof(struct kvm_cpuid2) +
		    vm->supported_cpuid->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(sz);
	struct cpuid_params p = {
		.ncpus = vm->nvcpus,
		.vcpu_index = index,
		.changes = vm->cfg->cpu_changes,
		.nchanges = vm->cfg->ncpu_changes,
		.pvm_profile = vm->pvm_profile,
	};

	if (!c)
		return NULL;
	memcpy(c, vm->supported_cpuid, sz);
	cpuid_filter(c, &p);
	return c;
}

uint64_t vcpu_cpuid_fingerprint(struct vm *vm)
{
	struct kvm_cpuid2 *c = guest_cpuid(vm, 0);
	uint64_t fp = c ? cpuid_fingerprint(c) : 0;

	free(c);
	return fp;
}

/*
 * XCR0 starts with every XSAVE component the guest's CPUID offers enabled, as firmware may
 * leave it, rather than x87 only. A guest sets XCR0 itself before it uses XSAVE, so on
 * hardware this changes nothing it can see but CPUID 0xD.0 EBX before that write. It matters
 * where XSETBV never reaches KVM: QEMU's emulated AMD-V (TCG) runs a nested guest's XSETBV
 * without the intercept, so KVM kept believing XCR0 was 1, reported an XSAVE size of 576
 * bytes in CPUID 0xD.0 EBX (the kernel warns "XSAVE consistency problem") and reloaded XCR0=1
 * before every entry, under a guest using AVX and PKRU state.
 */
static void set_initial_xcr0(struct vcpu *vcpu, const struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *l1 = cpuid_find((struct kvm_cpuid2 *)c, 1, 0);
	struct kvm_cpuid_entry2 *xs = cpuid_find((struct kvm_cpuid2 *)c, 0xd, 0);
	struct kvm_xcrs xcrs;

	if (!l1 || !(l1->ecx & (1u << 26)) || !xs)
		return;
	memset(&xcrs, 0, sizeof(xcrs));
	xcrs.nr_xcrs = 1;
	xcrs.xcrs[0].xcr = 0;
	/* User components only (x87, SSE, AVX, MPX, AVX-512, PKRU, AMX); supervisor ones
	 * belong in IA32_XSS. */
	xcrs.xcrs[0].value = (((uint64_t)xs->edx << 32) | xs->eax) & 0x602ffULL;
	if (!(xcrs.xcrs[0].value & 1))
		return;
	if (ioctl(vcpu->vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) <= 0)
		return;
	if (ioctl(vcpu->fd, KVM_SET_XCRS, &xcrs) < 0)
		pr_debug("vcpu%u: KVM_SET_XCRS(XCR0=%#llx): %s", vcpu->index,
			 (unsigned long long)xcrs.xcrs[0].value, strerror(errno));
}

static int set_cpuid(struct vcpu *vcpu)
{
	struct kvm_cpuid2 *c = guest_cpuid(vcpu->vm, vcpu->index);
	int ret = 0;

	if (!c)
		return -ENOMEM;
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0) {
		ret = -errno;
		pr_err("vcpu%u: KVM_SET_CPUID2: %s", vcpu->index, strerror(errno));
	} else {
		set_initial_xcr0(vcpu, c);
	}
	free(c);
	return ret;
}

static void set_msrs(struct vcpu *vcpu)
{
	static const struct {
		uint32_t index;
		uint64_t value;
	} init[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },
		{ MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 },
		{ MSR_CSTAR, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		{ MSR_SYSCALL_MASK, 0 },
		{ MSR_LSTAR, 0 },
		{ MSR_IA32_MISC_ENABLE, 1 }, /* fast strings */
		{ MSR_MTRR_DEF_TYPE, (1u << 11) | 6 }, /* MTRRs on, default write-back */
	};
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[16];
	} m;
	int n;

	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < sizeof(init) / sizeof(init[0]); i++) {
		m.e[i].index = init[i].index;
		m.e[i].data = init[i].value;
	}
	m.hdr.nmsrs = sizeof(init) / sizeof(init[0]);
	n = ioctl(vcpu->fd, KVM_SET_MSRS, &m);
	/* KVM stops at the first MSR it refuses; PVM hosts refuse some. The guest sets what it
	 * needs itself, so this is worth a debug line, not a failure. */
	if (n < (int)m.hdr.nmsrs)
		pr_debug("vcpu%u: KVM took %d of %u initial MSRs (refused %#x)", vcpu->index, n,
			 m.hdr.nmsrs, n >= 0 ? m.e[n].index : 0);
}

static int set_lapic(struct vcpu *vcpu)
{
	struct kvm_lapic_state l;
	uint32_t *lvt0 = (uint32_t *)(l.regs + APIC_LVT0);
	uint32_t *lvt1 = (uint32_t *)(l.regs + APIC_LVT1);

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	/* As PC firmware leaves it (virtual wire mode): LINT0 takes the 8259's ExtINT and LINT1
	 * is NMI, unmasked on the bootstrap processor only. */
	*lvt0 = (*lvt0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
	*lvt1 = (*lvt1 & ~0x700u) | (APIC_MODE_NMI << 8);
	if (vcpu->index == 0) {
		*lvt0 &= ~APIC_LVT_MASKED;
		*lvt1 &= ~APIC_LVT_MASKED;
	}
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &l) < 0)
		return -errno;
	return 0;
}

/* The x87/SSE state a CPU has after reset (FCW 0x37f, MXCSR 0x1f80); KVM does not provide it
 * on every host (kvm_pvm reports MXCSR 0). */
static int set_fpu(struct vcpu *vcpu)
{
	struct kvm_fpu fpu;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *vcpu, unsigned int index)
{
	int mmap_size, ret;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0) {
		ret = -errno;
		pr_err("vcpu%u: KVM_CREATE_VCPU: %s", index, strerror(errno));
		return ret;
	}
	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < (int)sizeof(struct kvm_run)) {
		pr_err("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		ret = -EINVAL;
		goto err_close;
	}
	vcpu->run_size = (size_t)mmap_size;
	vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		ret = -errno;
		vcpu->run = NULL;
		pr_err("vcpu%u: mmap kvm_run: %s", index, strerror(errno));
		goto err_close;
	}
	ret = set_cpuid(vcpu);
	if (ret)
		goto err_unmap;
	set_msrs(vcpu);
	ret = set_fpu(vcpu);
	if (ret) {
		pr_err("vcpu%u: FPU setup: %s", index, strerror(-ret));
		goto err_unmap;
	}
	ret = set_lapic(vcpu);
	if (ret) {
		pr_err("vcpu%u: LAPIC setup: %s", index, strerror(-ret));
		goto err_unmap;
	}
	return 0;
err_unmap:
	munmap(vcpu->run, vcpu->run_size);
	vcpu->run = NULL;
err_close:
	close(vcpu->fd);
	vcpu->fd = -1;
	return ret;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	free(vcpu->samples);
	vcpu->samples = NULL;
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

/* A flat 4 GiB segment; l64 makes it a 64-bit code segment, otherwise it is 32-bit (D/B). */
static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, bool l64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	if (l64)
		s->l = 1;
	else
		s->db = 1;
}

/* General registers at an entry point: everything zero but what the protocol passes. */
static int set_entry_regs(struct vcpu *vcpu, uint64_t rip, uint64_t rsp, uint64_t rsi, uint64_t rbx)
{
	struct kvm_regs regs;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = rip;
	regs.rsp = rsp;
	regs.rsi = rsi;
	regs.rbx = rbx;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* The boot GDT and flat segments shared by both protected-mode entries: 32-bit code 0x08
 * (PVH), 64-bit code __BOOT_CS 0x10, data __BOOT_DS 0x18, a TSS 0x20. CS is 32- or 64-bit. */
static int setup_flat_segments(struct vcpu *vcpu, struct kvm_sregs *sregs, bool long_mode)
{
	uint64_t *gdt = memory_gpa_ptr(&vcpu->vm->mem, BOOT_GDT_ADDR, 5 * 8);

	if (!gdt)
		return -EINVAL;
	gdt[0] = 0;
	gdt[1] = 0x00cf9b000000ffffULL;
	gdt[2] = 0x00af9b000000ffffULL;
	gdt[3] = 0x00cf93000000ffffULL;
	gdt[4] = 0x00808b0000000fffULL;
	if (ioctl(vcpu->fd, KVM_GET_SREGS, sregs) < 0)
		return -errno;
	seg_flat(&sregs->cs, long_mode ? BOOT_CS : BOOT_CS32, 0xb, long_mode);
	seg_flat(&sregs->ds, BOOT_DS, 0x3, false);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
	memset(&sregs->tr, 0, sizeof(sregs->tr));
	sregs->tr.selector = BOOT_TSS;
	sregs->tr.limit = 0xfff;
	sregs->tr.type = 0xb;
	sregs->tr.present = 1;
	sregs->gdt.base = BOOT_GDT_ADDR;
	sregs->gdt.limit = 5 * 8 - 1;
	sregs->idt.base = 0;
	sregs->idt.limit = 0;
	return 0;
}

int vcpu_setup_long_mode(struct vcpu *vcpu, uint64_t entry, uint64_t boot_params)
{
	struct guest_mem *mem = &vcpu->vm->mem;
	uint64_t *pml4 = memory_gpa_ptr(mem, BOOT_PML4_ADDR, 4096);
	uint64_t *pdpt = memory_gpa_ptr(mem, BOOT_PDPT_ADDR, 4096);
	uint64_t *pd = memory_gpa_ptr(mem, BOOT_PD_ADDR, 4 * 4096);
	struct kvm_sregs sregs;
	int ret;

	if (!pml4 || !pdpt || !pd)
		return -EINVAL;
	/* Identity map of the first 4 GiB with 2 MiB pages. */
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = BOOT_PDPT_ADDR | 0x3;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD_ADDR + (uint64_t)i * 4096) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83;

	ret = setup_flat_segments(vcpu, &sregs, true);
	if (ret)
		return ret;
	sregs.cr0 = 0x80000033; /* PG | NE | ET | MP | PE */
	sregs.cr3 = BOOT_PML4_ADDR;
	sregs.cr4 = 0x20; /* PAE */
	sregs.efer = 0x500; /* LMA | LME */
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	return set_entry_regs(vcpu, entry, BOOT_STACK_TOP, boot_params, 0);
}

int vcpu_setup_protected_mode(struct vcpu *vcpu, uint64_t entry, uint64_t start_info)
{
	struct kvm_sregs sregs;
	int ret;

	ret = setup_flat_segments(vcpu, &sregs, false);
	if (ret)
		return ret;
	sregs.cr0 = 0x11; /* ET | PE: protected mode, paging off */
	sregs.cr3 = 0;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	return set_entry_regs(vcpu, entry, 0, 0, start_info);
}

int vcpu_setup_real_mode(struct vcpu *vcpu, uint16_t cs, uint16_t ip, uint16_t sp)
{
	struct kvm_sregs sregs;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cs.selector = cs;
	sregs.cs.base = (uint64_t)cs << 4;
	sregs.ds.selector = sregs.es.selector = sregs.ss.selector = 0;
	sregs.ds.base = sregs.es.base = sregs.ss.base = 0;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	return set_entry_regs(vcpu, ip, sp, 0, 0);
}

void vcpu_dump_regs(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	uint8_t insn[16];
	char bytes[64] = "unreadable";
	int n;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		pr_err("vcpu%u: registers unavailable: %s", vcpu->index, strerror(errno));
		return;
	}
	n = guest_read_virt(vcpu, &s, s.cs.base + r.rip, insn, sizeof(insn));
	if (n > 0) {
		int off = 0;
		for (int i = 0; i < n && off < (int)sizeof(bytes) - 3; i++)
			off += snprintf(bytes + off, sizeof(bytes) - (size_t)off, "%02x%s", insn[i],
					i + 1 < n ? " " : "");
	}
	pr_err("vcpu%u registers:\n"
	       "  rip %016" PRIx64 "  rsp %016" PRIx64 "  rflags %016" PRIx64 "\n"
	       "  rax %016" PRIx64 "  rbx %016" PRIx64 "  rcx %016" PRIx64 "\n"
	       "  rdx %016" PRIx64 "  rsi %016" PRIx64 "  rdi %016" PRIx64 "\n"
	       "  rbp %016" PRIx64 "  r8  %016" PRIx64 "  r9  %016" PRIx64 "\n"
	       "  r10 %016" PRIx64 "  r11 %016" PRIx64 "  r12 %016" PRIx64 "\n"
	       "  r13 %016" PRIx64 "  r14 %016" PRIx64 "  r15 %016" PRIx64 "\n"
	       "  cs %04x (base %" PRIx64 " l=%u db=%u)  ss %04x  ds %04x  tr %04x\n"
	       "  cr0 %016" PRIx64 "  cr2 %016" PRIx64 "  cr3 %016" PRIx64 "\n"
	       "  cr4 %016" PRIx64 "  efer %016" PRIx64 "\n"
	       "  gdt %" PRIx64 "/%x  idt %" PRIx64 "/%x\n"
	       "  code at rip: %s",
	       vcpu->index, (uint64_t)r.rip, (uint64_t)r.rsp, (uint64_t)r.rflags, (uint64_t)r.rax,
	       (uint64_t)r.rbx, (uint64_t)r.rcx, (uint64_t)r.rdx, (uint64_t)r.rsi, (uint64_t)r.rdi,
	       (uint64_t)r.rbp, (uint64_t)r.r8, (uint64_t)r.r9, (uint64_t)r.r10, (uint64_t)r.r11,
	       (uint64_t)r.r12, (uint64_t)r.r13, (uint64_t)r.r14, (uint64_t)r.r15, s.cs.selector,
	       (uint64_t)s.cs.base, s.cs.l, s.cs.db, s.ss.selector, s.ds.selector, s.tr.selector,
	       (uint64_t)s.cr0, (uint64_t)s.cr2, (uint64_t)s.cr3, (uint64_t)s.cr4, (uint64_t)s.efer,
	       (uint64_t)s.gdt.base, s.gdt.limit, (uint64_t)s.idt.base, s.idt.limit, bytes);
}

void vcpu_kick(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(vcpu->thread, SIGUSR1);
}

static void handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *p = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++, p += run->io.size)
		bus_access(&vcpu->vm->pio, run->io.port, p, run->io.size,
			   run->io.direction == KVM_EXIT_IO_OUT);
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint32_t len = run->mmio.len;

	if (len == 0 || len > 8)
		return;
	bus_access(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write);
}

static bool is_reset_state(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs sr;

	return ioctl(vcpu->fd, KVM_GET_REGS, &r) == 0 && ioctl(vcpu->fd, KVM_GET_SREGS, &sr) == 0 &&
	       r.rip == 0xfff0 && sr.cs.selector == 0xf000;
}

static void crash(struct vcpu *vcpu, const char *what)
{
	pr_err("vcpu%u: %s", vcpu->index, what);
	vcpu_dump_regs(vcpu);
	vm_request_stop(vcpu->vm, STOP_CRASH, EXIT_GUEST_CRASH);
}

static void vcpu_take_sample(struct vcpu *vcpu)
{
	struct kvm_regs r;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0)
		return;
	if (vcpu->nsamples == vcpu->samples_cap) {
		size_t cap = vcpu->samples_cap ? vcpu->samples_cap * 2 : 4096;
		uint64_t *p = realloc(vcpu->samples, cap * sizeof(*p));
		if (!p)
			return;
		vcpu->samples = p;
		vcpu->samples_cap = cap;
	}
	vcpu->samples[vcpu->nsamples++] = r.rip;
}

void vcpu_request_sample(struct vcpu *vcpu)
{
	if (!vcpu->started)
		return;
	__atomic_store_n(&vcpu->sample_requested, true, __ATOMIC_RELEASE);
	pthread_kill(vcpu->thread, SIGUSR1);
}

void vcpu_park(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (vm->paused && __atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) == STOP_NONE)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	struct kvm_run *run = vcpu->run;
	char msg[160];
	sigset_t set;

	sandbox_enter_thread(SANDBOX_VCPU);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	if (vcpu->index == 0)
		vm_note_first_run(vm);
	/* Stop as soon as anyone asked for it, this vCPU included (a triple fault must not be
	 * re-entered and reported again). */
	while (__atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE) == STOP_NONE) {
		if (__atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE)) {
			/* An I/O or MMIO read the VMM just answered is finished by KVM only on
			 * the next entry; with immediate_exit it finishes and returns at once,
			 * so the registers a snapshot reads are complete. */
			__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
			if (ioctl(vcpu->fd, KVM_RUN, 0) == 0)
				pr_debug("vcpu%u: exit %u while completing I/O before a pause",
					 vcpu->index, run->exit_reason);
			__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			vcpu_park(vcpu);
			continue;
		}
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				sandbox_test_point(SANDBOX_VCPU);
				__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				if (__atomic_exchange_n(&vcpu->sample_requested, false,
							__ATOMIC_ACQ_REL))
					vcpu_take_sample(vcpu);
				continue;
			}
			pr_err("vcpu%u: KVM_RUN: %s", vcpu->index, strerror(errno));
			vm_request_stop(vm, STOP_ERROR, EXIT_ERROR);
			break;
		}
		vcpu->exits++;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(vcpu);
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(vcpu);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_HLT:
			/* Only without an in-kernel LAPIC, which vireo always has. */
			crash(vcpu, "halted with no interrupt controller to wake it");
			break;
		case KVM_EXIT_SHUTDOWN:
			/* A PC resets on a triple fault (Linux's last reboot method is one). */
			if (vm->cfg->on_reboot == REBOOT_RESTART) {
				pr_info("vcpu%u: triple fault: resetting the guest (--on-reboot "
					"restart)",
					vcpu->index);
				vm_request_stop(vm, STOP_REBOOT, EXIT_GUEST_OFF);
				break;
			}
			/* On AMD-V, KVM has already put the vCPU in its reset state. */
			crash(vcpu, is_reset_state(vcpu)
					    ? "triple fault: the guest CPU shut down (registers "
					      "below: KVM already reset the vCPU, as on AMD-V)"
					    : "triple fault: the guest CPU shut down");
			break;
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(msg, sizeof(msg),
				 "KVM could not enter the guest (hardware reason %#llx)",
				 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			crash(vcpu, msg);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
				vm_request_stop(vm, STOP_REBOOT, EXIT_GUEST_OFF);
			else if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
				vm_request_stop(vm, STOP_POWEROFF, EXIT_GUEST_OFF);
			else
				crash(vcpu, "guest reported a crash (system event)");
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
				if (vcpu_handle_emulation_failure(vcpu) == 0)
					break;
				crash(vcpu, "instruction emulation failed (see above)");
				break;
			}
			snprintf(msg, sizeof(msg), "KVM internal error, suberror %u",
				 run->internal.suberror);
			crash(vcpu, msg);
			break;
		default:
			snprintf(msg, sizeof(msg), "unexpected KVM exit reason %u",
				 run->exit_reason);
			crash(vcpu, msg);
			break;
		}
	}
	return NULL;
}
