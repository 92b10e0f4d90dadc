/* Instructions that kvm_pvm's emulator lacks at CPL0, which vireo completes itself (see
 * src/vmm/exits.c): FWAIT, STMXCSR/LDMXCSR (also RIP-relative and with a SIB byte), CLAC/STAC,
 * INT3 (#BP delivered after the instruction) and UD2 (#UD delivered at it). Then the exceptions
 * a completed STMXCSR/LDMXCSR must raise instead of touching memory: #PF (error code P|W, CR2)
 * for a store to a read-only page with CR0.WP set, which must stay unwritten; #GP(0) for
 * reserved MXCSR bits and for a non-canonical address. In long mode with an IDT. On hosts with VT-x/AMD-V the CPU runs them and the results are the same. Exit status 0
 * when every result is right; the console says which check failed otherwise. */
#include "common.inc"
#include "pm.inc"
#define PML4 0x20000
#define PD 0x22000
#define SCRATCH 0x30000

	START16
	ENTER_PM32 pm32
	.code32
pm32:
	FLAT_DATA32
	LONG_MODE_TABLES PML4
	movl $0x83, PD /* first 2 MiB, identity */
	movl $0x200081, PD + 8 /* next 2 MiB, identity and read-only */
	ENTER_LONG_MODE PML4, lm64

	.code64
lm64:
	mov $0x10, %ax
	mov %ax, %ss
	mov $0x7000, %rsp
	/* CR0.WP: read-only pages are read-only for the kernel too, as in every modern OS. */
	mov %cr0, %rax
	or $0x10000, %rax
	mov %rax, %cr0
	/* IDT: #BP (3) and #UD (6). */
	lea bp_handler(%rip), %rax
	mov $(idt + 3 * 16), %rdi
	call set_gate
	lea ud_handler(%rip), %rax
	mov $(idt + 6 * 16), %rdi
	call set_gate
	lea gp_handler(%rip), %rax
	mov $(idt + 13 * 16), %rdi
	call set_gate
	lea pf_handler(%rip), %rax
	mov $(idt + 14 * 16), %rdi
	call set_gate
	lidt idt_desc(%rip)

	/* 1. FWAIT */
	fwait
	mov $'1', %bl

	/* 2. STMXCSR through an absolute address, then RIP-relative: the reset value. */
	stmxcsr SCRATCH
	cmpl $0x1f80, SCRATCH
	jne fail
	mov $'2', %bl
	movl $0, mxcsr_out(%rip)
	stmxcsr mxcsr_out(%rip)
	cmpl $0x1f80, mxcsr_out(%rip)
	jne fail

	/* 3. LDMXCSR and STMXCSR with base + index*scale + displacement. LDMXCSR loads the
	 * default value: on kvm_pvm a new value set by the VMM may be lost (docs/pvm-hosts.md). */
	mov $SCRATCH, %rsi
	mov $2, %rcx
	movl $0x1f80, 8(%rsi, %rcx, 4)
	ldmxcsr 8(%rsi, %rcx, 4)
	movl $0, 4(%rsi)
	stmxcsr 4(%rsi)
	mov $'3', %bl
	cmpl $0x1f80, 4(%rsi)
	jne fail

	/* 4. STAC sets EFLAGS.AC, CLAC clears it (the CPU or vireo, whoever runs them). */
	mov $'4', %bl
	stac
	pushf
	pop %rax
	bt $18, %rax
	jnc fail
	clac
	pushf
	pop %rax
	bt $18, %rax
	jc fail

	/* 5. INT3: the handler counts, returns after the instruction. */
	mov $'5', %bl
	int3
	cmpl $1, bp_count(%rip)
	jne fail

	/* 6. UD2: the handler sees RIP at the ud2 and skips it. */
	mov $'6', %bl
	ud2
	cmpl $1, ud_count(%rip)
	jne fail

	/* 7. STMXCSR to a read-only page: #PF, error code present|write, CR2 the address, the
	 * handler skips the 3-byte instruction; the page still holds zeros. */
	mov $'7', %bl
	mov $0x200000, %rdi
	stmxcsr (%rdi)
	cmpl $1, pf_count(%rip)
	jne fail
	cmpl $3, pf_err(%rip)
	jne fail
	cmpq $0x200000, pf_cr2(%rip)
	jne fail
	cmpl $0, (%rdi)
	jne fail

	/* 8. LDMXCSR of a value with reserved bits: #GP(0), MXCSR unchanged ("mxcsr-gp" on the
	 * console). QEMU's software CPU (the nested test host's) loads it without a #GP: that
	 * is reported as "mxcsr-nogp" and MXCSR is set back; payload_test.py requires
	 * "mxcsr-gp" where vireo completes the instruction (kvm_pvm). */
	mov $'8', %bl
	mov $SCRATCH, %rsi
	movl $0xffff1f80, (%rsi)
	ldmxcsr (%rsi)
	cmpl $0, gp_count(%rip)
	jne 2f
	movl $0x1f80, (%rsi)
	ldmxcsr (%rsi)
	lea msg_nogp(%rip), %rax
	mov %rax, gp_word(%rip)
	incl gp_count(%rip) /* check 9 counts on from here */
	jmp 3f
2:	cmpl $1, gp_count(%rip)
	jne fail
	cmpl $0, gp_err(%rip)
	jne fail
	movl $0, 4(%rsi)
	stmxcsr 4(%rsi)
	cmpl $0x1f80, 4(%rsi)
	jne fail
3:

	/* 9. STMXCSR to a non-canonical address: #GP(0). */
	mov $'9', %bl
	mov $0x0000800000000000, %rdi
	stmxcsr (%rdi)
	cmpl $2, gp_count(%rip)
	jne fail

	lea msg_ok(%rip), %rsi
	call puts64
	mov gp_word(%rip), %rsi
	call puts64
	lea msg_nl(%rip), %rsi
	call puts64
	mov $0, %al
	out %al, $EXIT_PORT
	hlt

fail:
	lea msg_fail(%rip), %rsi
	call puts64
	mov %bl, %al
	call putc64
	lea msg_nl(%rip), %rsi
	call puts64
	mov $1, %al
	out %al, $EXIT_PORT
	hlt

bp_handler:
	incl bp_count(%rip)
	iretq

ud_handler:
	incl ud_count(%rip)
	mov (%rsp), %rax
	cmpw $0x0b0f, (%rax) /* the saved RIP points at the ud2 itself */
	jne 1f
	addq $2, (%rsp)
1:	iretq

/* #GP and #PF push an error code; both skip the faulting 3-byte instruction. */
gp_handler:
	pop %rax
	mov %eax, gp_err(%rip)
	incl gp_count(%rip)
	addq $3, (%rsp)
	iretq

pf_handler:
	pop %rax
	mov %eax, pf_err(%rip)
	mov %cr2, %rax
	mov %rax, pf_cr2(%rip)
	incl pf_count(%rip)
	addq $3, (%rsp)
	iretq

/* %rax = handler, %rdi = gate: 64-bit interrupt gate, selector 0x18. */
set_gate:
	mov %ax, (%rdi)
	movw $0x18, 2(%rdi)
	movw $0x8e00, 4(%rdi)
	shr $16, %rax
	mov %ax, 6(%rdi)
	shr $16, %rax
	mov %eax, 8(%rdi)
	movl $0, 12(%rdi)
	ret

#include "lib64.inc"

	.code16
	GDT
	.p2align 4
idt_desc:
	.word 256 * 16 - 1
	.quad idt
bp_count: .long 0
ud_count: .long 0
mxcsr_out: .long 0
gp_count: .long 0
gp_err: .long 0
pf_count: .long 0
pf_err: .long 0
pf_cr2: .quad 0
gp_word: .quad msg_gp
msg_ok:	.asciz "emulation ok: fwait stmxcsr ldmxcsr stac clac int3 ud2 pf gp "
msg_gp:	.asciz "mxcsr-gp"
msg_nogp: .asciz "mxcsr-nogp"
msg_fail: .asciz "emulation FAILED at check "
msg_nl:	.asciz "\r\n"
	.p2align 4
idt:
	.fill 256 * 16, 1, 0
