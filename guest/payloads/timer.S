/* Timer interrupts: programs the 8259 PIC and the 8254 PIT (channel 0, 100 Hz), takes IRQ0
 * through the real-mode vector table while halted, and exits with status 0 after 5 ticks. */
#include "common.inc"
#define TICKS 0x6000

	START16
	movw $0, TICKS
	/* IVT entry for vector 0x08 (IRQ0 with the PIC based at 8, as a BIOS leaves it). */
	movw $irq0, 0x08 * 4
	movw $0, 0x08 * 4 + 2
	/* 8259 master: ICW1..ICW4, then mask everything but IRQ0; slave fully masked. */
	mov $0x11, %al
	out %al, $0x20
	mov $0x08, %al
	out %al, $0x21
	mov $0x04, %al
	out %al, $0x21
	mov $0x01, %al
	out %al, $0x21
	mov $0x11, %al
	out %al, $0xa0
	mov $0x70, %al
	out %al, $0xa1
	mov $0x02, %al
	out %al, $0xa1
	mov $0x01, %al
	out %al, $0xa1
	mov $0xff, %al
	out %al, $0xa1
	mov $0xfe, %al
	out %al, $0x21
	/* PIT channel 0, lobyte/hibyte, rate generator, divisor 11932 (100 Hz). */
	mov $0x34, %al
	out %al, $0x43
	mov $(11932 & 0xff), %al
	out %al, $0x40
	mov $(11932 >> 8), %al
	out %al, $0x40
	PUTS16 msg_wait
	sti
1:	hlt
	cmpw $5, TICKS
	jb 1b
	cli
	PUTS16 msg_ok
	EXIT16 0

irq0:
	push %ax
	incw TICKS
	mov $0x20, %al
	out %al, $0x20
	pop %ax
	iret

#include "lib16.inc"
msg_wait: .asciz "waiting for timer interrupts\r\n"
msg_ok:	.asciz "timer ok: 5 ticks\r\n"
