/* Real-mode serial hello: prints a line on COM1 and exits with status 0. */
#include "common.inc"
	.code16
	.globl _start
_start:
	cli
	xor %ax, %ax
	mov %ax, %ds
	mov %ax, %ss
	mov $0x7000, %sp
	PUTS16 msg
	EXIT16 0
#include "lib16.inc"
msg:	.asciz "Hello from real mode\r\n"
