/* Reboots through the keyboard controller (command 0xFE on port 0x64), as Linux's reboot=k. */
#include "common.inc"
	START16
	PUTS16 msg
	mov $0xfe, %al
	out %al, $0x64
	/* Not reached: the VMM must have reset or stopped the VM. */
	EXIT16 0x55
#include "lib16.inc"
msg:	.asciz "rebooting\r\n"
