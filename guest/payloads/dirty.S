/* A memory-writing guest for the snapshot and migration benchmarks. It enters long mode, then
 * user mode (CPL3, IOPL 3), where a PVM host runs it natively instead of in its instruction
 * emulator. It finds the end of low RAM (writes and reads back a pattern every 2 MiB), writes
 * every page of it once ("ram" line), then loops forever:
 *  - dirty.bin: rewrites every page of a 64 MiB window at 16 MiB, over and over;
 *  - touch.bin (TOUCH_ONLY): only reads the clock.
 * Each loop iteration reads the TSC; the largest gap between two reads is printed about every
 * 2^31 TSC ticks as "gap XXXXXXXXXXXXXXXX" (hex ticks, then reset): a pause of the guest, for a
 * snapshot or a migration's stop-copy, shows up as a large gap on the guest's own clock. */
#include "common.inc"
#include "pm.inc"
#define PML4 0x20000
#define PDPT 0x21000
#define PD0 0x22000
#define STACK_TOP 0x7000
#define WINDOW_START 0x1000000
#define WINDOW_SIZE 0x4000000
#define PRINT_TICKS 0x80000000

	START16
	PUTS16 msg_real
	ENTER_PM32 pm32

	.code32
pm32:
	FLAT_DATA32
	/* PML4 -> PDPT -> 4 PDs of 2 MiB pages: 0..4 GiB, user-accessible (U bit everywhere). */
	LONG_MODE_TABLES PML4
	orl $4, PML4
	mov $PDPT, %edi
	mov $(PD0 | 7), %eax
	mov $4, %ecx
1:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $0x1000, %eax
	add $8, %edi
	loop 1b
	mov $PD0, %edi
	mov $0x87, %eax
	mov $2048, %ecx
2:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $0x200000, %eax
	add $8, %edi
	loop 2b
	ENTER_LONG_MODE PML4, lm64

	.code64
lm64:
	mov $msg_user, %esi
	call puts64
	/* iretq to CPL3: SS, RSP, RFLAGS (IOPL 3 for the serial port, IF 0), CS, RIP. */
	pushq $0x2b
	pushq $STACK_TOP
	pushq $0x3002
	pushq $0x33
	pushq $user
	iretq

user:
	/* End of RAM: the first 2 MiB step from 16 MiB up that does not keep a written value. */
	mov $0x1000000, %rbx
	mov $0xa5a5a5a55a5a5a5a, %r8
3:	mov %rbx, %rax
	xor %r8, %rax
	mov %rax, (%rbx)
	cmp (%rbx), %rax
	jne 4f
	add $0x200000, %rbx
	mov $0xc0000000, %r9
	cmp %r9, %rbx
	jb 3b
4:	mov %rbx, %r12 /* end of RAM */
	/* Write every page from 1 MiB to the end once. */
	mov $0x100000, %rdi
5:	mov %rdi, (%rdi)
	add $4096, %rdi
	cmp %r12, %rdi
	jb 5b
	mov $msg_ram, %esi
	call puts64
	mov %r12, %rax
	call puthex64
	mov $msg_nl, %esi
	call puts64

	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %r13 /* previous TSC */
	mov %rdx, %r14 /* last print */
	xor %r15, %r15 /* largest gap */
	mov $WINDOW_START, %rdi
loop:
#ifndef TOUCH_ONLY
	mov %r13, (%rdi)
	add $4096, %rdi
	cmp $(WINDOW_START + WINDOW_SIZE), %rdi
	jb 6f
	mov $WINDOW_START, %rdi
6:
#endif
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %rax
	sub %r13, %rax
	mov %rdx, %r13
	cmp %r15, %rax
	jbe 7f
	mov %rax, %r15
7:	mov %rdx, %rax
	sub %r14, %rax
	mov $PRINT_TICKS, %r9
	cmp %r9, %rax
	jb loop
	mov %rdx, %r14
	push %rdi
	mov $msg_gap, %esi
	call puts64
	mov %r15, %rax
	call puthex64
	mov $msg_nl, %esi
	call puts64
	pop %rdi
	xor %r15, %r15
	/* The print itself is slow (port I/O exits): restart the gap measurement after it. */
	rdtsc
	shl $32, %rdx
	or %rax, %rdx
	mov %rdx, %r13
	jmp loop

/* Prints %rax as 16 hex digits. */
puthex64:
	push %rbx
	push %rcx
	mov %rax, %rbx
	mov $16, %ecx
8:	rol $4, %rbx
	mov %bl, %al
	and $0xf, %al
	add $'0', %al
	cmp $'9', %al
	jbe 9f
	add $7, %al
9:	call putc64
	loop 8b
	pop %rcx
	pop %rbx
	ret

#include "lib64.inc"

	.code32
#include "lib32.inc"
	.code16
#include "lib16.inc"

	/* The usual GDT plus user data 0x28 and 64-bit user code 0x30, both DPL 3. */
	.p2align 3
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff
	.quad 0x00cf92000000ffff
	.quad 0x00af9a000000ffff
	.quad 0x00009a000000ffff
	.quad 0x00cff2000000ffff
	.quad 0x00affa000000ffff
gdt_desc:
	.word gdt_desc - gdt - 1
	.long gdt
msg_real: .asciz "real mode\r\n"
msg_user: .asciz "long mode, entering user mode\r\n"
msg_ram: .asciz "ram "
msg_gap: .asciz "gap "
msg_nl:	.asciz "\r\n"
