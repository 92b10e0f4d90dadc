/* A 32-bit ELF kernel entered through PVH (XEN_ELFNOTE_PHYS32_ENTRY): protected mode, paging
 * off, %ebx = the hvm_start_info. Prints whether its magic is right, then powers off (ACPI). */
	.code32
	.section .note.Xen, "a", @note
	.align 4
	.long 4, 4, 18		/* namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.align 4
	.long _start

	.text
	.globl _start
_start:
	mov $msg_bad, %esi
	cmpl $0x336ec578, (%ebx)	/* hvm_start_info.magic */
	jne 1f
	mov $msg_ok, %esi
1:	mov $0x3f8, %dx
2:	lodsb
	test %al, %al
	jz 3f
	out %al, %dx
	jmp 2b
3:	mov $0x604, %dx
	mov $((5 << 10) | (1 << 13)), %ax
	out %ax, %dx
	hlt
	jmp 3b

	.section .rodata
msg_ok:	.asciz "pvh32 ok: start_info magic\r\n"
msg_bad: .asciz "pvh32: bad start_info magic\r\n"
