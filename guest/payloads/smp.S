/* SMP bring-up: counts the processors in the MP table, wakes the others with INIT-SIPI-SIPI
 * through the local APIC, and waits for each to check in. Prints "cpus=N started=M" and exits
 * with status 0 when every application processor started, 1 otherwise. */
#include "common.inc"
#include "pm.inc"
#define LAPIC 0xfee00000
#define COUNTER 0x6000
#define SPIN_LIMIT 20000000
/* The AP entry is at file offset 0x1000, i.e. 0x9000: SIPI vector 9. */
#define AP_VECTOR 0x09

	START16
	movw $0, COUNTER
	ENTER_PM32 pm32

	.code32
pm32:
	FLAT_DATA32
	/* Find "_MP_" in 0xF0000-0xFFFFF on a 16-byte boundary. */
	mov $0xf0000, %esi
1:	cmpl $0x5f504d5f, (%esi)
	je 2f
	add $16, %esi
	cmp $0x100000, %esi
	jb 1b
	mov $msg_nomp, %esi
	call puts32
	mov $2, %al
	out %al, $EXIT_PORT
	hlt
2:	mov 4(%esi), %esi /* configuration table */
	movzwl 34(%esi), %ecx /* entry count */
	lea 44(%esi), %esi
	xor %ebx, %ebx /* processors */
3:	test %ecx, %ecx
	jz 5f
	cmpb $0, (%esi)
	jne 4f
	inc %ebx
	add $20, %esi
	dec %ecx
	jmp 3b
4:	add $8, %esi
	dec %ecx
	jmp 3b
5:	mov %ebx, ncpus
	/* Software-enable the local APIC, then INIT and two SIPIs to all but self. */
	orl $0x100, LAPIC + 0xf0
	movl $0, LAPIC + 0x310
	movl $0x000c4500, LAPIC + 0x300
	mov $10000, %ecx
6:	loop 6b
	movl $(0x000c4600 | AP_VECTOR), LAPIC + 0x300
	mov $2000, %ecx
7:	loop 7b
	movl $(0x000c4600 | AP_VECTOR), LAPIC + 0x300
	/* Wait for ncpus - 1 check-ins. */
	mov ncpus, %ebx
	dec %ebx
	mov $SPIN_LIMIT, %ecx
8:	movzwl COUNTER, %eax
	cmp %ebx, %eax
	je 9f
	pause
	loop 8b
9:	mov $msg_cpus, %esi
	call puts32
	mov ncpus, %eax
	call puthex32
	mov $msg_started, %esi
	call puts32
	movzwl COUNTER, %eax
	call puthex32
	mov $msg_nl, %esi
	call puts32
	movzwl COUNTER, %eax
	cmp %ebx, %eax
	jne 10f
	mov $0, %al
	out %al, $EXIT_PORT
	hlt
10:	mov $1, %al
	out %al, $EXIT_PORT
	hlt

#include "lib32.inc"
	.code16
	GDT
ncpus:	.long 0
msg_nomp: .asciz "no MP table found\r\n"
msg_cpus: .asciz "cpus="
msg_started: .asciz " started="
msg_nl:	.asciz "\r\n"

	/* Application processors start here in real mode at vector:0000. */
	.org 0x1000
ap_start:
	cli
	xor %ax, %ax
	mov %ax, %ds
	lock incw COUNTER
1:	hlt
	jmp 1b
