/* 64-bit paging setup: real mode -> protected mode -> long mode with 4-level paging. Maps the
 * first GiB twice (at 0 and at 1 GiB), writes through one mapping and reads through the other.
 * Exit status 0 when both views agree, 1 otherwise. */
#include "common.inc"
#include "pm.inc"
#define PML4 0x20000
#define PDPT 0x21000
#define PD 0x22000
#define PROBE 0x30000
#define ALIAS 0x40000000

	START16
	PUTS16 msg_real
	ENTER_PM32 pm32

	.code32
pm32:
	FLAT_DATA32
	mov $msg_pm, %esi
	call puts32
	/* PML4[0] -> PDPT; PDPT[0] and PDPT[1] -> the same PD of 2 MiB pages. */
	LONG_MODE_TABLES PML4
	movl $(PD | 3), PDPT + 8
	mov $PD, %edi
	mov $0x83, %eax
	mov $512, %ecx
1:	mov %eax, (%edi)
	movl $0, 4(%edi)
	add $0x200000, %eax
	add $8, %edi
	loop 1b
	ENTER_LONG_MODE PML4, lm64

	.code64
lm64:
	mov $msg_lm, %esi
	call puts64
	movl $0x1234abcd, PROBE
	mov $(ALIAS + PROBE), %rax
	mov (%rax), %ebx
	cmp $0x1234abcd, %ebx
	jne bad
	movl $0x5a5a5a5a, (%rax)
	cmpl $0x5a5a5a5a, PROBE
	jne bad
	mov $msg_ok, %esi
	call puts64
	mov $0, %al
	out %al, $EXIT_PORT
	hlt
bad:
	mov $msg_bad, %esi
	call puts64
	mov $1, %al
	out %al, $EXIT_PORT
	hlt

#include "lib64.inc"

	.code32
#include "lib32.inc"
	.code16
#include "lib16.inc"
	GDT
msg_real: .asciz "real mode\r\n"
msg_pm:	.asciz "protected mode\r\n"
msg_lm:	.asciz "long mode\r\n"
msg_ok:	.asciz "paging ok: alias and identity mappings agree\r\n"
msg_bad: .asciz "paging BROKEN: alias mapping disagrees\r\n"
