/* virtio-rng over modern virtio-pci, driven from 32-bit protected mode by polling (no
 * interrupts): finds the function on PCI bus 0, negotiates VIRTIO_F_VERSION_1, sets up queue 0
 * and reads 16 random bytes. Then it offers malformed requests (a descriptor loop, a buffer
 * outside RAM, an available index far ahead, a readable buffer) and checks that each one puts
 * the device into DEVICE_NEEDS_RESET while the VMM keeps running (the serial port still
 * answers), and that a reset brings the device back. Needs `vireo run --rng`. */
#include "common.inc"
#include "pm.inc"
#define DESC 0x10000
#define AVAIL 0x11000
#define USED 0x12000
#define BUF 0x13000
#define QSIZE 8
#define OUTSIDE_RAM 0xbff00000 /* above the payload's RAM, below the PCI window */
#define TIMEOUT 400000 /* polling iterations: about a second of emulated guest code */

/* Descriptor idx of the queue at DESC. */
.macro VDESC idx, addr, len, flags, next
	movl $\addr, DESC + 16 * \idx
	movl $0, DESC + 16 * \idx + 4
	movl $\len, DESC + 16 * \idx + 8
	movw $\flags, DESC + 16 * \idx + 12
	movw $\next, DESC + 16 * \idx + 14
.endm

.macro EXPECT_NEEDS_RESET msg, used
	mov $\used, %cx
	call wait_needs_reset
	mov $\msg, %esi
	call puts32
	call init_device
.endm

	START16
	ENTER_PM32 pm32

	.code32
pm32:
	FLAT_DATA32
	/* Find 1af4:1044 (virtio 1.x, device ID 4) in slots 1-31. */
	mov $0x80000800, %ebx
1:	mov %ebx, %eax
	call pci_read
	cmp $0x10441af4, %eax
	je 2f
	add $0x800, %ebx
	cmp $0x80010000, %ebx
	jb 1b
	mov $msg_nodev, %esi
	jmp fail
2:	lea 0x20(%ebx), %eax /* BAR 4, low half (the BAR lies below 4 GiB) */
	call pci_read
	and $0xfffffff0, %eax
	mov %eax, %ebp
	lea 0x04(%ebx), %eax /* command: memory decoding, bus master */
	mov $0x0006, %ecx
	call pci_write
	call init_device

	/* A good request: 16 bytes into BUF. */
	VDESC 0, BUF, 16, 2, 0
	xor %ax, %ax
	call submit
	mov $1, %cx
	call wait_used
	mov $msg_ok, %esi
	call puts32
	mov USED + 8, %eax /* used len */
	call puthex32
	mov $msg_data, %esi
	call puts32
	mov BUF, %eax
	call puthex32
	mov $msg_nl, %esi
	call puts32
	cmpl $16, USED + 8
	jne bad_len

	/* A loop: 1 -> 2 -> 1. */
	VDESC 1, BUF, 16, 3, 2
	VDESC 2, BUF, 16, 3, 1
	mov $1, %ax
	call submit
	EXPECT_NEEDS_RESET msg_loop, 1

	/* A buffer outside guest RAM. */
	VDESC 0, OUTSIDE_RAM, 16, 2, 0
	xor %ax, %ax
	call submit
	EXPECT_NEEDS_RESET msg_ram, 0

	/* The available index 100 entries ahead of a queue of 8. */
	VDESC 0, BUF, 16, 2, 0
	movw $100, AVAIL + 2
	movw $0, 0x3000(%ebp)
	EXPECT_NEEDS_RESET msg_idx, 0

	/* A device-readable buffer where the device must write. */
	VDESC 0, BUF, 16, 0, 0
	xor %ax, %ax
	call submit
	EXPECT_NEEDS_RESET msg_dir, 0

	/* Reset worked: a good request again. */
	VDESC 0, BUF, 16, 2, 0
	xor %ax, %ax
	call submit
	mov $1, %cx
	call wait_used
	mov $msg_again, %esi
	call puts32
	EXIT16 0

bad_len:
	mov $msg_len, %esi
fail:
	call puts32
	mov $EXIT_PORT, %dx
	mov $1, %al
	out %al, %dx
3:	hlt
	jmp 3b

/* %eax: config address; returns the dword in %eax. */
pci_read:
	mov $0xcf8, %dx
	out %eax, %dx
	mov $0xcfc, %dx
	in %dx, %eax
	ret

/* %eax: config address, %ecx: the dword to write. */
pci_write:
	mov $0xcf8, %dx
	out %eax, %dx
	mov $0xcfc, %dx
	mov %ecx, %eax
	out %eax, %dx
	ret

/* Reset, negotiate VERSION_1 only, queue 0 of QSIZE at DESC/AVAIL/USED, DRIVER_OK. The common
 * configuration is at the start of the BAR (%ebp). */
init_device:
	movb $0, 0x14(%ebp)
	mov $DESC, %edi
	xor %eax, %eax
	mov $(3 * 4096 / 4), %ecx
	rep stosl
	movb $3, 0x14(%ebp) /* ACKNOWLEDGE | DRIVER */
	movl $1, 0x08(%ebp)
	movl $1, 0x0c(%ebp) /* feature bit 32: VERSION_1 */
	movl $0, 0x08(%ebp)
	movl $0, 0x0c(%ebp)
	movb $0xb, 0x14(%ebp) /* | FEATURES_OK */
	testb $8, 0x14(%ebp)
	jnz 1f
	mov $msg_feat, %esi
	jmp fail
1:	movw $0, 0x16(%ebp)
	movw $QSIZE, 0x18(%ebp)
	movl $DESC, 0x20(%ebp)
	movl $0, 0x24(%ebp)
	movl $AVAIL, 0x28(%ebp)
	movl $0, 0x2c(%ebp)
	movl $USED, 0x30(%ebp)
	movl $0, 0x34(%ebp)
	movw $1, 0x1c(%ebp)
	movb $0xf, 0x14(%ebp) /* | DRIVER_OK */
	ret

/* Makes descriptor %ax available and notifies queue 0. */
submit:
	movzwl AVAIL + 2, %ecx
	mov %ecx, %edx
	and $(QSIZE - 1), %edx
	mov %ax, AVAIL + 4(, %edx, 2)
	inc %ecx
	mov %cx, AVAIL + 2
	movw $0, 0x3000(%ebp)
	ret

/* Waits until used->idx is %cx. */
wait_used:
	mov $TIMEOUT, %edi
1:	cmpw %cx, USED + 2
	je 2f
	pause
	dec %edi
	jnz 1b
	mov $msg_timeout, %esi
	jmp fail
2:	ret

/* Waits for DEVICE_NEEDS_RESET; used->idx must still be %cx. */
wait_needs_reset:
	mov $TIMEOUT, %edi
1:	testb $0x40, 0x14(%ebp)
	jnz 2f
	pause
	dec %edi
	jnz 1b
	mov $msg_noreset, %esi
	jmp fail
2:	cmpw %cx, USED + 2 /* and nothing more was completed */
	je 3f
	mov $msg_used, %esi
	jmp fail
3:	ret

	GDT
#include "lib32.inc"
msg_nodev: .asciz "no virtio-rng on PCI bus 0 (run with --rng)\r\n"
msg_feat: .asciz "FEATURES_OK refused\r\n"
msg_timeout: .asciz "timeout waiting for the used ring\r\n"
msg_noreset: .asciz "timeout waiting for NEEDS_RESET\r\n"
msg_used: .asciz "a malformed request was completed\r\n"
msg_len: .asciz "\r\nused length is not 16\r\n"
msg_ok: .asciz "rng ok: used len "
msg_data: .asciz " data "
msg_nl: .asciz "\r\n"
msg_loop: .asciz "loop: needs reset\r\n"
msg_ram: .asciz "outside RAM: needs reset\r\n"
msg_idx: .asciz "avail index: needs reset\r\n"
msg_dir: .asciz "readable buffer: needs reset\r\n"
msg_again: .asciz "rng ok after reset\r\n"
