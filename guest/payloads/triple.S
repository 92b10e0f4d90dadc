/* Triple fault: in protected mode with an empty IDT, a divide error cannot be delivered
 * (#DE -> #GP -> #DF -> shutdown). The VMM must report it and exit non-zero. */
#include "common.inc"
#include "pm.inc"
	START16
	PUTS16 msg
	ENTER_PM32 pm32
	.code32
pm32:
	FLAT_DATA32
	lidt idt_empty
	xor %ecx, %ecx
	div %ecx
	/* Not reached. */
	mov $0x55, %al
	out %al, $EXIT_PORT
	hlt
	.code16
#include "lib16.inc"
	GDT
	.p2align 3
idt_empty:
	.word 0
	.long 0
msg:	.asciz "about to triple fault\r\n"
