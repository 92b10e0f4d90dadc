// SPDX-License-Identifier: MIT
/*
 * Instructions the host's KVM emulator cannot run. On PVM-style nested hosts (kvm_pvm, see
 * shared/DESIGN.md) guest kernel code runs through KVM's instruction emulator, which lacks a few
 * instructions and stops the vCPU with KVM_EXIT_INTERNAL_ERROR / EMULATION. The VMM completes the
 * ones it can do exactly (they touch only registers, MXCSR or one memory operand) or turns them
 * into the exception the CPU would raise, and names the instruction when it cannot.
 * On VT-x/AMD-V hosts this path is not reached.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../common/log.h"
#include "../common/util.h"
#include "guestmem_access.h"
#include "pagewalk.h"
#include "exits.h"
#include "vm.h"
#include "vcpu.h"

#define X86_EFLAGS_AC (1u << 18)
#define X86_CR0_PE 1u
#define X86_CR0_EM (1u << 2)
#define X86_CR0_TS (1u << 3)
#define X86_CR4_OSFXSR (1u << 9)
#define EXC_BP 3
#define EXC_UD 6
#define EXC_NM 7
#define EXC_GP 13
#define EXC_PF 14
/* MXCSR bits a CPU without an MXCSR_MASK in its FXSAVE image accepts (SDM 11.6.6). */
#define MXCSR_MASK_DEFAULT 0xffbfu

int guest_translate(struct vcpu *vcpu, const struct kvm_sregs *sregs, uint64_t linear,
		    uint64_t *gpa)
{
	struct kvm_translation t = { .linear_address = linear };

	if (!(sregs->cr0 & 0x80000000)) {
		*gpa = linear & 0xffffffffULL;
		return 0;
	}
	if (ioctl(vcpu->fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
		return -EFAULT;
	*gpa = t.physical_address;
	return 0;
}

/* Reads guest linear memory page by page through KVM_TRANSLATE, for instruction bytes and
 * diagnostics only: it ignores access rights, so data accesses of completed instructions go
 * through data_access and the software page walk instead. Returns the bytes read before the
 * first unmapped page. */
int guest_read_virt(struct vcpu *vcpu, const struct kvm_sregs *sregs, uint64_t linear, void *buf,
		    size_t len)
{
	uint8_t *out = buf;
	size_t done = 0;

	while (done < len) {
		size_t chunk = MIN(4096 - ((linear + done) & 4095), len - done);
		uint64_t gpa;
		const uint8_t *p;

		if (guest_translate(vcpu, sregs, linear + done, &gpa))
			break;
		p = memory_gpa_ptr(&vcpu->vm->mem, gpa, chunk);
		if (!p)
			break;
		memcpy(out + done, p, chunk);
		done += chunk;
	}
	return (int)done;
}

/* Decoded prefix and operand state of one instruction. */
struct insn {
	const uint8_t *b;
	int n; /* bytes available */
	int pos; /* next byte to decode */
	int mode; /* 16, 32 or 64 */
	bool addr16_32_override;
	uint8_t rex;
	int seg; /* -1 default, else 0 es 1 cs 2 ss 3 ds 4 fs 5 gs */
	int op_pos; /* index just after the first opcode byte */
};

static int next(struct insn *in)
{
	return in->pos < in->n ? in->b[in->pos++] : -1;
}

static uint64_t gpr(const struct kvm_regs *r, int idx)
{
	const uint64_t v[16] = { r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
				 r->r8,	 r->r9,	 r->r10, r->r11, r->r12, r->r13, r->r14, r->r15 };
	return v[idx & 15];
}

/* Effective linear address of a ModRM memory operand (mod != 3), 32/64-bit addressing. The
 * instruction length must be final for RIP-relative operands, so the displacement is kept and
 * *rip_rel says to add the next RIP. Returns 0, or -ENOTSUP for 16-bit addressing. */
static int decode_ea(struct insn *in, uint8_t modrm, const struct kvm_regs *r,
		     const struct kvm_sregs *s, uint64_t *ea, bool *rip_rel)
{
	int mod = modrm >> 6, rm = modrm & 7, base = -1, index = -1, scale = 0, c;
	bool addr64 = in->mode == 64 && !in->addr16_32_override;
	bool stack = false;
	int64_t disp = 0;
	uint64_t a = 0;

	if (in->mode == 16 && !in->addr16_32_override)
		return -ENOTSUP;
	if (in->mode != 16 && in->mode != 64 && in->addr16_32_override)
		return -ENOTSUP;
	*rip_rel = false;
	if (rm == 4) {
		int sib = next(in);
		if (sib < 0)
			return -EFAULT;
		scale = sib >> 6;
		index = ((sib >> 3) & 7) | ((in->rex & 2) << 2);
		if (index == 4)
			index = -1;
		base = (sib & 7) | ((in->rex & 1) << 3);
		if ((sib & 7) == 5 && mod == 0)
			base = -1;
	} else if (rm == 5 && mod == 0) {
		*rip_rel = in->mode == 64;
	} else {
		base = rm | ((in->rex & 1) << 3);
	}
	if (mod == 1) {
		c = next(in);
		if (c < 0)
			return -EFAULT;
		disp = (int8_t)c;
	} else if (mod == 2 || (mod == 0 && (rm == 5 || (rm == 4 && base == -1)))) {
		uint32_t d = 0;
		for (int i = 0; i < 4; i++) {
			c = next(in);
			if (c < 0)
				return -EFAULT;
			d |= (uint32_t)c << (8 * i);
		}
		disp = (int32_t)d;
	}
	if (base >= 0) {
		a += gpr(r, base);
		stack = (base & 7) == 4 || (base & 7) == 5;
	}
	if (index >= 0)
		a += gpr(r, index) << scale;
	a += (uint64_t)disp;
	if (!addr64)
		a &= 0xffffffffULL;
	/* Segment bases: only FS and GS count in 64-bit mode. */
	if (in->seg == 4)
		a += s->fs.base;
	else if (in->seg == 5)
		a += s->gs.base;
	else if (in->mode != 64)
		a += in->seg == 0			      ? s->es.base
		     : in->seg == 1			      ? s->cs.base
		     : in->seg == 2 || (in->seg < 0 && stack) ? s->ss.base
							      : s->ds.base;
	*ea = a;
	return 0;
}

/* MXCSR through KVM_GET/SET_XSAVE (offset 24 of the legacy area): on kvm_pvm hosts
 * KVM_GET_FPU/KVM_SET_FPU read zeros and ignore writes. KVM_GET_FPU is the fallback.
 * Known gap on kvm_pvm: a value written with KVM_SET_XSAVE between two KVM_RUNs does not
 * reliably reach the guest (it does when the thread is descheduled in between), so a completed
 * LDMXCSR of a new value may be lost there. Guests load MXCSR's default, which is harmless. */
static int mxcsr_access(struct vcpu *vcpu, uint32_t *val, bool write, uint32_t *mask)
{
	static struct kvm_xsave xs; /* 4 KiB: not on the vCPU thread's stack */
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct kvm_fpu fpu;
	int ret = 0;

	if (mask)
		*mask = MXCSR_MASK_DEFAULT;
	pthread_mutex_lock(&lock);
	if (ioctl(vcpu->fd, KVM_GET_XSAVE, &xs) == 0) {
		/* MXCSR_MASK at offset 28 of the legacy area; 0 means the default. */
		if (mask && xs.region[7])
			*mask = xs.region[7];
		if (write) {
			xs.region[6] = *val;
			if (ioctl(vcpu->fd, KVM_SET_XSAVE, &xs) < 0)
				ret = -errno;
		} else {
			*val = xs.region[6];
		}
		pthread_mutex_unlock(&lock);
		return ret;
	}
	pthread_mutex_unlock(&lock);
	if (ioctl(vcpu->fd, KVM_GET_FPU, &fpu) < 0)
		return -errno;
	if (!write) {
		*val = fpu.mxcsr;
		return 0;
	}
	fpu.mxcsr = *val;
	return ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

/* An exception the instruction raises instead of completing. */
struct insn_fault {
	unsigned int vector;
	bool has_error;
	uint32_t error;
	uint64_t cr2; /* #PF: the linear address */
};

static int inject_fault(struct vcpu *vcpu, const struct insn_fault *f)
{
	struct kvm_vcpu_events ev;

	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	ev.exception.injected = 1;
	ev.exception.nr = (uint8_t)f->vector;
	ev.exception.has_error_code = f->has_error;
	ev.exception.error_code = f->error;
	ev.flags = 0;
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	return 0;
}

static int inject_exception(struct vcpu *vcpu, unsigned int vector)
{
	const struct insn_fault f = { .vector = vector };

	return inject_fault(vcpu, &f);
}

/* #PF needs CR2 first: the guest's handler reads it. */
static int inject_page_fault(struct vcpu *vcpu, struct kvm_sregs *sregs, const struct insn_fault *f)
{
	sregs->cr2 = f->cr2;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, sregs) < 0)
		return -errno;
	return inject_fault(vcpu, f);
}

/* The paging state and privilege a data access of this vCPU runs with. */
static void pw_cpu_of(const struct kvm_regs *regs, const struct kvm_sregs *sregs, struct pw_cpu *c)
{
	c->cr0 = sregs->cr0;
	c->cr3 = sregs->cr3;
	c->cr4 = sregs->cr4;
	c->efer = sregs->efer;
	c->rflags = regs->rflags;
	/* The CPL is the RPL of CS in protected mode, 0 in real mode. */
	c->cpl = (sregs->cr0 & X86_CR0_PE) ? (sregs->cs.selector & 3u) : 0;
}

/* Loads or stores len (<= 8) bytes at linear as the instruction would: canonical check, the
 * page walk with its rights for both pages of a split operand (checked before anything is
 * written), then the copy. Returns 0; 1 with *f set when the instruction raises an exception
 * instead; -ENOTSUP when the operand is not in RAM (the access cannot be completed). */
static int data_access(struct vcpu *vcpu, const struct kvm_regs *regs,
		       const struct kvm_sregs *sregs, uint64_t linear, void *buf, size_t len,
		       bool write, struct insn_fault *f)
{
	struct pw_cpu cpu;
	uint8_t *host[2];
	size_t first = MIN(len, 4096 - (linear & 4095));
	uint64_t gpa;
	uint32_t err;
	int ret;

	pw_cpu_of(regs, sregs, &cpu);
	if (!pagewalk_canonical(&cpu, linear) || !pagewalk_canonical(&cpu, linear + len - 1)) {
		*f = (struct insn_fault){ .vector = EXC_GP, .has_error = true };
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t at = i == 0 ? linear : linear + first;
		size_t n = i == 0 ? first : len - first;

		host[i] = NULL;
		if (!n)
			continue;
		ret = pagewalk(&vcpu->vm->mem, &cpu, at, write ? PW_WRITE : 0, &gpa, &err);
		if (ret == -EFAULT) {
			*f = (struct insn_fault){ EXC_PF, true, err, at };
			return 1;
		}
		host[i] = ret ? NULL : memory_gpa_ptr(&vcpu->vm->mem, gpa, n);
		if (!host[i])
			return -ENOTSUP;
		if (write)
			memory_mark_dirty(&vcpu->vm->mem, gpa, n);
	}
	if (write) {
		memcpy(host[0], buf, first);
		if (len > first)
			memcpy(host[1], (uint8_t *)buf + first, len - first);
	} else {
		memcpy(buf, host[0], first);
		if (len > first)
			memcpy((uint8_t *)buf + first, host[1], len - first);
	}
	return 0;
}

static void note_once(const char *what);

/* LDMXCSR (load) or STMXCSR m32 at linear address ea, with the checks the CPU makes: #UD without
 * OS SSE support or with CR0.EM, #NM with CR0.TS, #GP(0) for a non-canonical address or
 * reserved MXCSR bits, #PF for a page the access may not touch (not present, read-only for
 * the write, supervisor-only for CPL 3, a user page under SMAP). Nothing is written through a
 * read-only (copy-on-write) mapping. Returns 0 when completed, 1 when an exception was raised
 * instead, -ENOTSUP when the operand is not RAM, or -errno. */
static int complete_mxcsr(struct vcpu *vcpu, const struct kvm_regs *regs, struct kvm_sregs *sregs,
			  bool load, uint64_t ea)
{
	struct insn_fault f = { 0 };
	uint32_t v32 = 0, cur, mask;
	int ret;

	note_once(load ? "LDMXCSR" : "STMXCSR");
	if ((sregs->cr0 & X86_CR0_EM) || !(sregs->cr4 & X86_CR4_OSFXSR))
		f.vector = EXC_UD;
	else if (sregs->cr0 & X86_CR0_TS)
		f.vector = EXC_NM;
	if (f.vector) {
		ret = inject_fault(vcpu, &f);
		return ret ? ret : 1;
	}
	if (load) {
		ret = data_access(vcpu, regs, sregs, ea, &v32, 4, false, &f);
		if (!ret)
			ret = mxcsr_access(vcpu, &cur, false, &mask);
		if (!ret && (v32 & ~mask)) {
			f = (struct insn_fault){ .vector = EXC_GP, .has_error = true };
			ret = 1;
		} else if (!ret) {
			ret = mxcsr_access(vcpu, &v32, true, NULL);
		}
	} else {
		ret = mxcsr_access(vcpu, &v32, false, NULL);
		if (!ret)
			ret = data_access(vcpu, regs, sregs, ea, &v32, 4, true, &f);
	}
	if (ret != 1)
		return ret;
	ret = f.vector == EXC_PF ? inject_page_fault(vcpu, sregs, &f) : inject_fault(vcpu, &f);
	return ret ? ret : 1;
}

/* Says once per kind that the VMM is completing instructions for the host. */
static void note_once(const char *what)
{
	static const char *seen[8];
	static int nseen;
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < nseen; i++) {
		if (seen[i] == what) {
			pthread_mutex_unlock(&lock);
			return;
		}
	}
	if (nseen < 8)
		seen[nseen++] = what;
	pthread_mutex_unlock(&lock);
	pr_debug("the host's instruction emulator lacks %s; vireo completes it", what);
}

static int fetch(struct vcpu *vcpu, const struct kvm_regs *regs, const struct kvm_sregs *sregs,
		 uint8_t *buf, int max)
{
	struct kvm_run *run = vcpu->run;

#ifdef KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size > 0) {
		int n = run->emulation_failure.insn_size;
		if (n > max)
			n = max;
		memcpy(buf, run->emulation_failure.insn_bytes, (size_t)n);
		return n;
	}
#endif
	return guest_read_virt(vcpu, sregs, sregs->cs.base + regs->rip, buf, (size_t)max);
}

/* Names the instruction at in (prefixes and REX already consumed, first opcode byte op). */
static const char *insn_name(const struct insn *in, int op)
{
	int p = in->op_pos, op2, modrm, reg;

	if (op == 0xf4)
		return "HLT";
	if (op == 0xcd)
		return "INT n";
	if (op == 0xcf)
		return "IRET";
	if (op == 0xc5 || op == 0xc4)
		return "a VEX-encoded (AVX) instruction";
	if (op == 0x62)
		return "an EVEX-encoded (AVX-512) instruction";
	if (op != 0x0f || p >= in->n)
		return "an instruction";
	op2 = in->b[p];
	modrm = p + 1 < in->n ? in->b[p + 1] : -1;
	reg = modrm >= 0 ? (modrm >> 3) & 7 : -1;
	switch (op2) {
	case 0xc7:
		if (reg == 1)
			return (in->rex & 8) ? "CMPXCHG16B (hide with --cpu-features -cx16)"
					     : "CMPXCHG8B";
		if (reg == 6)
			return "RDRAND";
		if (reg == 7)
			return "RDSEED/RDPID";
		break;
	case 0xae:
		switch (reg) {
		case 0:
			return "FXSAVE";
		case 1:
			return "FXRSTOR";
		case 4:
			return "XSAVE (guest option clearcpuid=xsave avoids it)";
		case 5:
			return "XRSTOR (guest option clearcpuid=xsave avoids it)";
		case 6:
			return "XSAVEOPT/CLWB";
		case 7:
			return "CLFLUSH";
		default:
			break;
		}
		break;
	case 0x01:
		if (modrm == 0xd0)
			return "XGETBV";
		if (modrm == 0xd1)
			return "XSETBV";
		if (modrm == 0xf9)
			return "RDTSCP";
		if (modrm == 0xf8)
			return "SWAPGS";
		break;
	case 0xa2:
		return "CPUID";
	case 0x30:
		return "WRMSR";
	case 0x32:
		return "RDMSR";
	case 0x05:
		return "SYSCALL";
	case 0x07:
		return "SYSRET";
	case 0x31:
		return "RDTSC";
	case 0xb8:
		return "POPCNT (guest option clearcpuid=popcnt avoids it)";
	default:
		break;
	}
	return "an instruction";
}

int vcpu_handle_emulation_failure(struct vcpu *vcpu)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint8_t bytes[15];
	struct insn in = { .b = bytes, .seg = -1 };
	int op, op2, modrm, ret;
	bool rip_rel, vex = false;
	uint64_t ea;
	const char *name;
	char hex[64];

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	in.n = fetch(vcpu, &regs, &sregs, bytes, sizeof(bytes));
	in.mode = (sregs.efer & 0x400) && sregs.cs.l ? 64 : sregs.cs.db ? 32 : 16;

	for (;;) {
		op = next(&in);
		if (op == 0x66 || op == 0xf0 || op == 0xf2 || op == 0xf3)
			continue;
		if (op == 0x67) {
			in.addr16_32_override = true;
			continue;
		}
		if (op == 0x26 || op == 0x2e || op == 0x36 || op == 0x3e) {
			in.seg = (op >> 3) & 3;
			continue;
		}
		if (op == 0x64 || op == 0x65) {
			in.seg = op - 0x60;
			continue;
		}
		break;
	}
	if (in.mode == 64 && op >= 0x40 && op <= 0x4f) {
		in.rex = (uint8_t)op;
		op = next(&in);
	}
	in.op_pos = in.pos;
	if (op == 0xc5 && in.mode == 64) {
		/* Two-byte VEX: map 0F implied (for VLDMXCSR / VSTMXCSR). */
		if (next(&in) < 0)
			goto unknown;
		vex = true;
		op = 0x0f;
	}

	switch (op) {
	case 0xcc: /* INT3: a trap, so the saved RIP is after it */
		note_once("INT3");
		regs.rip += (uint64_t)in.pos;
		if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
			return -errno;
		ret = inject_exception(vcpu, EXC_BP);
		goto done;
	case 0x9b: /* FWAIT: no unmasked x87 exception is ever pending for us to raise */
		note_once("FWAIT");
		regs.rip += (uint64_t)in.pos;
		ret = ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
		goto done;
	case 0x0f:
		break;
	default:
		goto unknown;
	}
	op2 = next(&in);
	if (vex && op2 != 0xae)
		goto unknown;
	switch (op2) {
	case 0x0b: /* UD2: raise #UD at the instruction, as the CPU does */
		note_once("UD2");
		ret = inject_exception(vcpu, EXC_UD);
		goto done;
	case 0x01:
		modrm = next(&in);
		if (modrm != 0xca && modrm != 0xcb)
			goto unknown;
		note_once("CLAC/STAC");
		if (modrm == 0xca)
			regs.rflags &= ~(uint64_t)X86_EFLAGS_AC;
		else
			regs.rflags |= X86_EFLAGS_AC;
		regs.rip += (uint64_t)in.pos;
		ret = ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
		goto done;
	case 0xae:
		modrm = next(&in);
		if (modrm < 0 || (modrm >> 6) == 3)
			goto unknown;
		if (((modrm >> 3) & 7) != 2 && ((modrm >> 3) & 7) != 3)
			goto unknown;
		if (decode_ea(&in, (uint8_t)modrm, &regs, &sregs, &ea, &rip_rel))
			goto unknown;
		if (rip_rel)
			ea += regs.rip + (uint64_t)in.pos;
		ret = complete_mxcsr(vcpu, &regs, &sregs, ((modrm >> 3) & 7) == 2, ea);
		if (ret == -ENOTSUP)
			goto fault;
		if (ret < 0)
			return ret;
		if (ret == 1) {
			/* It raised an exception: RIP stays at the instruction. */
			ret = 0;
			goto done;
		}
		regs.rip += (uint64_t)in.pos;
		ret = ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
		goto done;
	default:
		goto unknown;
	}
done:
	if (ret == 0)
		vcpu->emulated++;
	return ret;
fault:
	pr_err("vcpu%u: memory operand at %#" PRIx64 " of the failed instruction is not in RAM or "
	       "its page tables are not",
	       vcpu->index, ea);
	return -ENOTSUP;
unknown:
	name = insn_name(&in, op);
	hex[0] = '\0';
	for (int i = 0, off = 0; i < in.n && i < 15; i++)
		off += snprintf(hex + off, sizeof(hex) - (size_t)off, "%02x ", bytes[i]);
	pr_err("vcpu%u: the host's KVM could not emulate %s at rip %#" PRIx64
	       " (%d-bit mode), bytes: %s; vireo cannot complete it either%s",
	       vcpu->index, name, (uint64_t)regs.rip, in.mode, in.n > 0 ? hex : "(unreadable)",
	       vcpu->vm->pvm_host ? ". On this PVM host, hide the CPU feature that makes the guest "
				    "use it (--cpu-features -NAME, or a guest option such as "
				    "clearcpuid=xsave)"
				  : "");
	return -ENOTSUP;
}
