/* Never finishes: interrupts off, halted. Used to test --timeout. */
#include "common.inc"
	.code16
	.globl _start
_start:
	cli
	xor %ax, %ax
	mov %ax, %ds
	mov $msg, %si
	call puts16
1:	hlt
	jmp 1b
#include "lib16.inc"
msg:	.asciz "hanging on purpose\r\n"
