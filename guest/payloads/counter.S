/* Runs forever: takes PIT interrupts at 100 Hz and prints "tick NNNN" (hex) every 10 of them.
 * Used to see a VM pause, resume and stop. */
#include "common.inc"
#define TICKS 0x6000

	START16
	movw $0, TICKS
	movw $irq0, 0x08 * 4
	movw $0, 0x08 * 4 + 2
	mov $0x11, %al /* 8259 master: vector base 8, only IRQ0 unmasked */
	out %al, $0x20
	mov $0x08, %al
	out %al, $0x21
	mov $0x04, %al
	out %al, $0x21
	mov $0x01, %al
	out %al, $0x21
	mov $0xfe, %al
	out %al, $0x21
	mov $0x34, %al /* PIT channel 0, rate generator, 100 Hz */
	out %al, $0x43
	mov $(11932 & 0xff), %al
	out %al, $0x40
	mov $(11932 >> 8), %al
	out %al, $0x40
	sti
	xor %bx, %bx
1:	hlt
	mov TICKS, %ax
	xor %dx, %dx
	mov $10, %cx
	div %cx
	test %dx, %dx
	jnz 1b
	cmp %ax, %bx
	je 1b
	mov %ax, %bx
	PUTS16 msg_tick
	call puthex16
	PUTS16 msg_nl
	jmp 1b

irq0:
	push %ax
	incw TICKS
	mov $0x20, %al
	out %al, $0x20
	pop %ax
	iret

#include "lib16.inc"
msg_tick: .asciz "tick "
msg_nl:	.asciz "\r\n"
