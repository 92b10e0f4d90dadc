/* SPDX-License-Identifier: MIT */
/* A stand-in for the KVM ioctls, for targets that compile VMM code which talks to KVM (exits.c,
 * vmstate.c) without /dev/kvm: this file defines ioctl() itself, which takes precedence over the
 * C library's (and the sanitizers' wrapper). Calls on the fake fds FZ_KVM_VM_FD and
 * FZ_KVM_VCPU_FD are answered from fz_kvm; every other fd goes to the kernel. A request whose bit
 * is set in fz_kvm.fail fails with EINVAL, as KVM refusing a value would. */
#ifndef VIREO_TESTS_FUZZ_KVM_H
#define VIREO_TESTS_FUZZ_KVM_H

#include <errno.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FZ_KVM_VM_FD 1000
#define FZ_KVM_VCPU_FD 1001

enum {
	FZ_GET_REGS,
	FZ_SET_REGS,
	FZ_GET_SREGS,
	FZ_SET_SREGS,
	FZ_TRANSLATE,
	FZ_GET_XSAVE,
	FZ_SET_XSAVE,
	FZ_GET_FPU,
	FZ_SET_FPU,
	FZ_GET_EVENTS,
	FZ_SET_EVENTS,
	FZ_OTHER,
};

static struct {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint32_t fail; /* 1 << FZ_* */
	uint64_t xlate_xor; /* KVM_TRANSLATE: physical = linear ^ xlate_xor */
	uint64_t xlate_limit; /* linear addresses from here on are not mapped */
	uint32_t mxcsr;
	unsigned long calls;
} fz_kvm;

static int fz_kvm_ret(int which)
{
	if (fz_kvm.fail & (1u << which)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int fz_kvm_call(unsigned long req, void *arg)
{
	fz_kvm.calls++;
	switch (req) {
	case KVM_GET_REGS:
		memcpy(arg, &fz_kvm.regs, sizeof(fz_kvm.regs));
		return fz_kvm_ret(FZ_GET_REGS);
	case KVM_SET_REGS:
		memcpy(&fz_kvm.regs, arg, sizeof(fz_kvm.regs));
		return fz_kvm_ret(FZ_SET_REGS);
	case KVM_GET_SREGS:
		memcpy(arg, &fz_kvm.sregs, sizeof(fz_kvm.sregs));
		return fz_kvm_ret(FZ_GET_SREGS);
	case KVM_SET_SREGS:
		memcpy(&fz_kvm.sregs, arg, sizeof(fz_kvm.sregs));
		return fz_kvm_ret(FZ_SET_SREGS);
	case KVM_TRANSLATE: {
		struct kvm_translation *t = arg;

		t->valid = t->linear_address < fz_kvm.xlate_limit;
		t->physical_address = t->linear_address ^ fz_kvm.xlate_xor;
		return fz_kvm_ret(FZ_TRANSLATE);
	}
	case KVM_GET_XSAVE: {
		struct kvm_xsave *x = arg;

		memset(x, 0, sizeof(*x));
		x->region[6] = fz_kvm.mxcsr;
		return fz_kvm_ret(FZ_GET_XSAVE);
	}
	case KVM_SET_XSAVE:
		fz_kvm.mxcsr = ((struct kvm_xsave *)arg)->region[6];
		return fz_kvm_ret(FZ_SET_XSAVE);
	case KVM_GET_FPU:
		memset(arg, 0, sizeof(struct kvm_fpu));
		((struct kvm_fpu *)arg)->mxcsr = fz_kvm.mxcsr;
		return fz_kvm_ret(FZ_GET_FPU);
	case KVM_SET_FPU:
		fz_kvm.mxcsr = ((struct kvm_fpu *)arg)->mxcsr;
		return fz_kvm_ret(FZ_SET_FPU);
	case KVM_GET_VCPU_EVENTS:
		memset(arg, 0, sizeof(struct kvm_vcpu_events));
		return fz_kvm_ret(FZ_GET_EVENTS);
	case KVM_SET_VCPU_EVENTS:
		return fz_kvm_ret(FZ_SET_EVENTS);
	case KVM_GET_MSR_INDEX_LIST: {
		static const uint32_t msrs[] = { 0x10, 0x1b, 0x6e0, 0xc0000080, 0xc0000100 };
		struct kvm_msr_list *l = arg;
		uint32_t room = l->nmsrs;

		l->nmsrs = sizeof(msrs) / sizeof(msrs[0]);
		if (room < l->nmsrs) {
			errno = E2BIG;
			return -1;
		}
		memcpy(l->indices, msrs, sizeof(msrs));
		return 0;
	}
	case KVM_GET_MSRS:
	case KVM_SET_MSRS:
		/* All of them, unless the input makes KVM refuse. */
		return fz_kvm_ret(FZ_OTHER) ? -1 : (int)((struct kvm_msrs *)arg)->nmsrs;
	default:
		/* Other reads (state for a save) give zeros. */
		if ((_IOC_DIR(req) & _IOC_READ) && !(_IOC_DIR(req) & _IOC_WRITE))
			memset(arg, 0, _IOC_SIZE(req));
		return fz_kvm_ret(FZ_OTHER);
	}
}

int ioctl(int fd, unsigned long req, ...);
int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd == FZ_KVM_VM_FD || fd == FZ_KVM_VCPU_FD)
		return fz_kvm_call(req, arg);
	return (int)syscall(SYS_ioctl, fd, req, arg);
}

#endif
