/* Reboots through the keyboard controller (command 0xFE on port 0x64), as Linux's reboot=k. */
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
	mov $0xfe, %al
	out %al, $0x64
	/* Not reached: the VMM must have reset or stopped the VM. */
	EXIT16 0x55
#include "lib16.inc"
msg:	.asciz "rebooting\r\n"
