/* Local APIC timer: programs the LAPIC timer periodic on vector 0x40 and exits with status 0
 * after 5 interrupts taken while halted. Runs in "unreal" mode (real mode with a 4 GiB data
 * segment limit) so the APIC's MMIO page is reachable and interrupts go through the real-mode
 * vector table: KVM's emulator cannot run a protected-mode IRET (see docs/pvm-hosts.md). */
#include "common.inc"
#include "pm.inc"
#define LAPIC 0xfee00000
#define TICKS 0x6000
#define VECTOR 0x40

	START16
	movl $0, TICKS
	movw $lapic_irq, VECTOR * 4
	movw $0, VECTOR * 4 + 2
	/* Load a 4 GiB data segment in protected mode, then come back to real mode: DS keeps
	 * the limit. */
	ENTER_PM32 pm32
	.code32
pm32:
	mov $0x10, %ax
	mov %ax, %ds
	ljmp $0x20, $pm16
	.code16
pm16:
	mov %cr0, %eax
	and $~1, %eax
	mov %eax, %cr0
	ljmp $0, $unreal
	.code16
unreal:
	xor %ax, %ax
	mov %ax, %ds
	PUTS16 msg_wait
	/* Software-enable the APIC (spurious vector 0xff); timer: divide by 16, periodic. */
	addr32 movl $0x1ff, LAPIC + 0xf0
	addr32 movl $0x3, LAPIC + 0x3e0
	addr32 movl $(0x20000 | VECTOR), LAPIC + 0x320
	addr32 movl $100000, LAPIC + 0x380
	sti
1:	hlt
	cmpl $5, TICKS
	jb 1b
	cli
	addr32 movl $0x10000, LAPIC + 0x320 /* mask the timer */
	PUTS16 msg_ok
	EXIT16 0

lapic_irq:
	incl TICKS
	addr32 movl $0, LAPIC + 0xb0 /* EOI */
	iret

#include "lib16.inc"
	GDT
msg_wait: .asciz "waiting for LAPIC timer interrupts\r\n"
msg_ok:	.asciz "lapic timer ok: 5 interrupts\r\n"
