/* Timer interrupts: programs the 8259 PIC and the 8254 PIT (channel 0, 100 Hz), takes IRQ0
 * through the real-mode vector table while halted, and exits with status 0 after 5 ticks. */
#include "common.inc"
#define TICKS 0x6000

	START16
	movw $0, TICKS
	PIT_100HZ_IRQ0 irq0
	PUTS16 msg_wait
	sti
1:	hlt
	cmpw $5, TICKS
	jb 1b
	cli
	PUTS16 msg_ok
	EXIT16 0

	IRQ0_TICK_HANDLER irq0, TICKS

#include "lib16.inc"
msg_wait: .asciz "waiting for timer interrupts\r\n"
msg_ok:	.asciz "timer ok: 5 ticks\r\n"
