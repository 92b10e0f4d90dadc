/* ACPI soft-off: SLP_TYP 5 (the DSDT's \_S5) with SLP_EN into PM1a_CNT (port 0x604). */
#include "common.inc"
	START16
	PUTS16 msg
	mov $0x604, %dx
	mov $((5 << 10) | (1 << 13)), %ax
	out %ax, %dx
	/* Not reached: the VMM must have powered the VM off. */
	EXIT16 0x55
#include "lib16.inc"
msg:	.asciz "powering off\r\n"
