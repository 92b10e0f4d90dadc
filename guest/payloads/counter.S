/* Runs forever: takes PIT interrupts at 100 Hz and prints "tick NNNN" (hex) every 10 of them.
 * Used to see a VM pause, resume and stop. */
#include "common.inc"
#define TICKS 0x6000

	START16
	movw $0, TICKS
	PIT_100HZ_IRQ0 irq0
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

	IRQ0_TICK_HANDLER irq0, TICKS

#include "lib16.inc"
msg_tick: .asciz "tick "
msg_nl:	.asciz "\r\n"
