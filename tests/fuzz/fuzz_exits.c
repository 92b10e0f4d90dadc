// SPDX-License-Identifier: MIT
/* libFuzzer target for the instruction decoder in src/vmm/exits.c (vcpu_handle_emulation_failure:
 * prefixes, REX, VEX, ModRM/SIB/displacement, segment bases, RIP-relative operands, the memory
 * operand of LDMXCSR/STMXCSR through the guest's page tables). KVM is the stand-in of fuzz_kvm.h.
 * The input is:
 *
 *   u16 flags: bit 0 EFER.LMA, 1 CS.L, 2 CS.DB, 3 CR0.PG, 4 the instruction bytes come in
 *              kvm_run (else they are fetched from guest memory at CS.base + RIP), 5 guest
 *              memory reads are dirty-logged, 6 the host is PVM, 7 only the first
 *              1 + RIP % 15 bytes are in kvm_run; bits 8..15 make KVM ioctls fail (fuzz_kvm.h)
 *   u64 RIP, 16 x u64 general registers, u64 RFLAGS
 *   6 x u32 segment bases (ES CS SS DS FS GS)
 *   u32 translation xor, u32 translation limit (KVM_TRANSLATE, for instruction fetches)
 *   u32 CR3, u32 CR4, u16 CS selector (its RPL is the CPL), u8 bits: 0 EFER.NXE, 1 CR0.WP,
 *   2 CR0.EM, 3 CR0.TS (data accesses walk the page tables in RAM: src/vmm/pagewalk.c)
 *   15 instruction bytes (for kvm_run), then guest RAM (at most 64 KiB)
 *
 * RAM is a heap block of exactly its size, so AddressSanitizer reports any access outside. */
#include <stdint.h>
#include <stdlib.h>

#include "common/util.h"
#include "fuzz_common.h"
#include "fuzz_kvm.h"
#include "vmm/exits.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define MAX_RAM (64 * 1024)

static void set_regs(struct fz *f, uint16_t flags)
{
	struct kvm_regs *r = &fz_kvm.regs;
	struct kvm_sregs *s = &fz_kvm.sregs;
	__u64 *gprs[16] = {
		&r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp, &r->rsi, &r->rdi,
		&r->r8,	 &r->r9,  &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15
	};
	struct kvm_segment *segs[6] = { &s->es, &s->cs, &s->ss, &s->ds, &s->fs, &s->gs };
	uint8_t bits;

	memset(&fz_kvm, 0, sizeof(fz_kvm));
	r->rip = fz_u64(f);
	for (int i = 0; i < 16; i++)
		*gprs[i] = fz_u64(f);
	r->rflags = fz_u64(f);
	for (int i = 0; i < 6; i++)
		segs[i]->base = fz_u32(f);
	s->efer = (flags & 1) ? 0x500 : 0;
	s->cs.l = (flags >> 1) & 1;
	s->cs.db = (flags >> 2) & 1;
	s->cr0 = (flags & 8) ? 0x80000011 : 0x11;
	fz_kvm.xlate_xor = fz_u32(f);
	fz_kvm.xlate_limit = fz_u32(f);
	s->cr3 = fz_u32(f);
	s->cr4 = fz_u32(f);
	s->cs.selector = fz_u16(f);
	bits = fz_u8(f);
	s->efer |= (bits & 1) ? 0x800 : 0;
	s->cr0 |= (bits & 2 ? 1u << 16 : 0) | (bits & 4 ? 1u << 2 : 0) | (bits & 8 ? 1u << 3 : 0);
	fz_kvm.fail = (uint32_t)(flags >> 8) << 3; /* TRANSLATE and later; GET_REGS works */
	fz_kvm.mxcsr = 0x1f80;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vm vm;
	static struct kvm_run run;
	static uint64_t dirty[MAX_RAM / 4096 / 64 + 1];
	struct fz f = fz_init(data, size);
	struct vcpu vcpu = { .vm = &vm, .fd = FZ_KVM_VCPU_FD, .run = &run };
	uint16_t flags;
	size_t ram_size;
	uint8_t *ram;

	fz_quiet();
	flags = fz_u16(&f);
	set_regs(&f, flags);
	memset(&run, 0, sizeof(run));
	fz_bytes(&f, run.emulation_failure.insn_bytes, 15);
	if (flags & 16) {
		run.emulation_failure.ndata = 3;
		run.emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
		run.emulation_failure.insn_size = (flags & 128) ? 1 + fz_kvm.regs.rip % 15 : 15;
	}
	ram_size = MIN(fz_left(&f), (size_t)MAX_RAM);
	ram = malloc(ram_size ? ram_size : 1);
	if (!ram)
		return 0;
	fz_bytes(&f, ram, ram_size);
	memory_attach(&vm.mem, ram, ram_size);
	memset(dirty, 0, sizeof(dirty));
	vm.mem.dirty = (flags & 32) ? dirty : NULL;
	vm.pvm_host = flags & 64;
	vcpu_handle_emulation_failure(&vcpu);
	free(ram);
	return 0;
}
