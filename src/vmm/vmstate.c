// SPDX-License-Identifier: MIT
/* Machine state to and from TLV sections: the configuration that rebuilds the machine, KVM's VM
 * state (clock, PIT, PICs, IOAPIC), each vCPU (registers, MSRs, LAPIC, XSAVE, events) and the
 * devices of the registry. Every KVM structure is encoded field by field in a documented byte
 * order (docs/state-format.md), never as a raw struct. Runs on the main loop's thread while all
 * vCPUs are parked. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "../common/log.h"
#include "../common/tlv.h"
#include "../common/util.h"
#include "../virtio/devices.h"
#include "vm.h"
#include "vcpu.h"
#include "vmstate.h"

/* One walker for both directions of the fixed-layout fields below: encoding writes each
 * field's value into p, decoding (dec) reads it back into the field. Decoding is only used on a
 * TLV field whose length was checked against the layout, so it cannot run past the end. */
struct codec {
	uint8_t *p;
	size_t off, cap;
	bool dec;
};

#define ENCODER(buf) ((struct codec){ (buf), 0, sizeof(buf), false })

#define CODEC_FN(name, type, size, get, put)             \
	static void name(struct codec *c, type *v)       \
	{                                                \
		if (c->off + (size) <= c->cap) {         \
			if (c->dec)                      \
				*v = get(c->p + c->off); \
			else                             \
				put(c->p + c->off, *v);  \
		}                                        \
		c->off += (size);                        \
	}

static uint8_t get_u8(const uint8_t *p)
{
	return *p;
}

static void put_u8(uint8_t *p, uint8_t v)
{
	*p = v;
}

CODEC_FN(c8, __u8, 1, get_u8, put_u8)
CODEC_FN(c16, __u16, 2, get_le16, put_le16)
CODEC_FN(c32, __u32, 4, get_le32, put_le32)
CODEC_FN(c64, __u64, 8, get_le64, put_le64)

/* A field of exactly len bytes copied into dst (hardware layouts: XSAVE area, APIC page): 1 when
 * present, 0 when absent, -EINVAL for a wrong length. */
static int field_bytes(const struct tlv_section *s, uint16_t tag, void *dst, size_t len)
{
	struct tlv_field f;

	if (!tlv_find(s, tag, &f))
		return 0;
	if (f.len != len)
		return -EINVAL;
	memcpy(dst, f.data, len);
	return 1;
}

/* A fixed-layout field to decode: 1 with c set up, 0 when absent, -EINVAL for a wrong length. */
static int field_decoder(const struct tlv_section *s, uint16_t tag, size_t len, struct codec *c)
{
	struct tlv_field f;

	if (!tlv_find(s, tag, &f))
		return 0;
	if (f.len != len)
		return -EINVAL;
	/* Decoding never writes through p. */
	*c = (struct codec){ (uint8_t *)(uintptr_t)f.data, 0, len, true };
	return 1;
}

/* ---- configuration ---- */

static void put_disk(struct tlv_writer *w, uint16_t tag, const struct virtio_blk_info *d)
{
	size_t sl = strnlen(d->serial, sizeof(d->serial) - 1), nl = strlen(d->name);
	size_t pl = strlen(d->path), len = 3 + sl + 1 + nl + pl;
	uint8_t *buf = malloc(len), *p = buf;

	if (!buf) {
		w->err = -ENOMEM;
		return;
	}
	*p++ = (uint8_t)d->format;
	*p++ = d->read_only ? CFG_DISK_FLAG_READ_ONLY : 0;
	*p++ = (uint8_t)sl;
	memcpy(p, d->serial, sl);
	p += sl;
	*p++ = (uint8_t)nl;
	memcpy(p, d->name, nl);
	p += nl;
	memcpy(p, d->path, pl);
	tlv_put(w, tag, buf, (uint32_t)len);
	free(buf);
}

static void put_str(struct tlv_writer *w, uint16_t tag, const char *s)
{
	if (s)
		tlv_put(w, tag, s, (uint32_t)strlen(s));
}

int vmstate_save_config(struct vm *vm, struct tlv_writer *w)
{
	const struct vm_config *cfg = vm->cfg;
	char feats[CPUID_MAX_CHANGES * 24] = "";
	size_t start = tlv_section_begin(w, SECTION_CONFIG, 0, 1, 1);

	for (size_t i = 0; i < cfg->ncpu_changes; i++) {
		size_t l = strlen(feats);

		snprintf(feats + l, sizeof(feats) - l, "%s%c%s", i ? "," : "",
			 cfg->cpu_changes[i].enable ? '+' : '-', cfg->cpu_changes[i].feature->name);
	}
	tlv_put_u64(w, CFG_T_MEM_SIZE, vm->mem.ram_size);
	tlv_put_u32(w, CFG_T_NCPUS, vm->nvcpus);
	put_str(w, CFG_T_CPU_FEATURES, feats);
	tlv_put_u8(w, CFG_T_PVM_PROFILE, vm->pvm_profile);
	put_str(w, CFG_T_PAYLOAD, cfg->payload);
	put_str(w, CFG_T_KERNEL, cfg->kernel);
	tlv_put_u8(w, CFG_T_VIRTIO_RNG, cfg->virtio_rng);
	put_str(w, CFG_T_VIRTIO_CONSOLE, cfg->virtio_console);
	if (cfg->balloon)
		tlv_put_u32(w, CFG_T_BALLOON, cfg->balloon_flags);
	put_str(w, CFG_T_VSOCK, cfg->vsock);
	if (vm->ndisks) {
		struct virtio_blk_info *info = malloc(sizeof(*info));

		if (!info)
			return -ENOMEM;
		for (unsigned int i = 0; i < vm->ndisks; i++) {
			virtio_blk_describe(vm->virtio_blk[i], info);
			put_disk(w, (uint16_t)(CFG_T_DISK + i), info);
		}
		free(info);
	}
	if (cfg->nnet) {
		char nets[NET_MAX_NICS * 1024];
		size_t l = 0;

		for (unsigned int i = 0; i < cfg->nnet && l < sizeof(nets); i++)
			l += (size_t)snprintf(nets + l, sizeof(nets) - l, "%s%s", i ? "\n" : "",
					      cfg->net[i]);
		if (l >= sizeof(nets))
			return -E2BIG;
		put_str(w, CFG_T_NET, nets);
	}
	/* Read at creation: a vCPU ioctl from this thread would wait for a running vCPU to
	 * leave KVM_RUN, and a migration sends this while the guest runs. */
	if (vm->tsc_khz)
		tlv_put_u32(w, CFG_T_TSC_KHZ, vm->tsc_khz);
	tlv_section_end(w, start);
	return w->err;
}

/* ---- KVM VM state ---- */

enum {
	VM_T_CLOCK = 1,
	VM_T_PIT,
	VM_T_PIC_MASTER,
	VM_T_PIC_SLAVE,
	VM_T_IOAPIC,
	VM_T_REALTIME, /* host CLOCK_REALTIME when the state was saved, ns */
};

#define MSR_IA32_TSC 0x10

#define PIT_CHANNEL_LEN (4 + 2 + 10 + 8)
#define PIT_LEN (3 * PIT_CHANNEL_LEN + 4)
#define PIC_LEN 16
#define IOAPIC_LEN (8 + 4 + 4 + 4 + KVM_IOAPIC_NUM_PINS * 8)

static void pic_codec(struct codec *c, struct kvm_pic_state *p)
{
	__u8 *f[PIC_LEN] = { &p->last_irr,
			     &p->irr,
			     &p->imr,
			     &p->isr,
			     &p->priority_add,
			     &p->irq_base,
			     &p->read_reg_select,
			     &p->poll,
			     &p->special_mask,
			     &p->init_state,
			     &p->auto_eoi,
			     &p->rotate_on_auto_eoi,
			     &p->special_fully_nested_mode,
			     &p->init4,
			     &p->elcr,
			     &p->elcr_mask };

	for (int i = 0; i < PIC_LEN; i++)
		c8(c, f[i]);
}

static void ioapic_codec(struct codec *c, struct kvm_ioapic_state *io)
{
	c64(c, &io->base_address);
	c32(c, &io->ioregsel);
	c32(c, &io->id);
	c32(c, &io->irr);
	for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		c64(c, &io->redirtbl[i].bits);
}

/* A channel's load time is host CLOCK_MONOTONIC: it travels relative to now. */
static void pit_codec(struct codec *c, struct kvm_pit_state2 *pit, int64_t now)
{
	for (int i = 0; i < 3; i++) {
		struct kvm_pit_channel_state *ch = &pit->channels[i];
		__u8 *f[10] = { &ch->count_latched, &ch->status_latched, &ch->status,
				&ch->read_state,    &ch->write_state,	 &ch->write_latch,
				&ch->rw_mode,	    &ch->mode,		 &ch->bcd,
				&ch->gate };
		/* Unsigned: a saved offset may be anything, and signed overflow is undefined. */
		__u64 rel = (__u64)ch->count_load_time - (__u64)now;

		c32(c, &ch->count);
		c16(c, &ch->latched_count);
		for (int k = 0; k < 10; k++)
			c8(c, f[k]);
		c64(c, &rel);
		if (c->dec)
			ch->count_load_time = (int64_t)((__u64)now + rel);
	}
	c32(c, &pit->flags);
}

static uint16_t irqchip_tag(uint32_t chip_id)
{
	return chip_id == KVM_IRQCHIP_PIC_MASTER  ? VM_T_PIC_MASTER
	       : chip_id == KVM_IRQCHIP_PIC_SLAVE ? VM_T_PIC_SLAVE
						  : VM_T_IOAPIC;
}

static int save_vm(struct vm *vm, struct tlv_writer *w)
{
	struct kvm_clock_data clock = { 0 };
	struct kvm_pit_state2 pit;
	struct kvm_irqchip chip;
	uint8_t buf[IOAPIC_LEN > PIT_LEN ? IOAPIC_LEN : PIT_LEN];
	struct codec c;
	size_t start = tlv_section_begin(w, SECTION_VM, 0, 1, 1);

	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0) {
		pr_err("KVM_GET_CLOCK: %s", strerror(errno));
		return -errno;
	}
	tlv_put_u64(w, VM_T_CLOCK, clock.clock);
	tlv_put_u64(w, VM_T_REALTIME, (uint64_t)clock_ns(CLOCK_REALTIME));

	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0) {
		pr_err("KVM_GET_PIT2: %s", strerror(errno));
		return -errno;
	}
	c = ENCODER(buf);
	pit_codec(&c, &pit, clock_ns(CLOCK_MONOTONIC));
	tlv_put(w, VM_T_PIT, buf, (uint32_t)c.off);

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
			pr_err("KVM_GET_IRQCHIP %u: %s", id, strerror(errno));
			return -errno;
		}
		c = ENCODER(buf);
		if (id == KVM_IRQCHIP_IOAPIC)
			ioapic_codec(&c, &chip.chip.ioapic);
		else
			pic_codec(&c, &chip.chip.pic);
		tlv_put(w, irqchip_tag(id), buf, (uint32_t)c.off);
	}
	tlv_section_end(w, start);
	return w->err;
}

/* advance: the guest's clocks (kvmclock, TSC) move on by the real time since the save, as
 * for a migration (the guest sees its downtime and keeps the right wall time). Otherwise they go
 * on from the saved values, as after a pause. Sets vm->load_advance_ns for load_vcpu. */
static int load_vm(struct vm *vm, const struct tlv_section *s, bool advance)
{
	struct kvm_clock_data clock = { 0 };
	struct kvm_pit_state2 pit;
	struct kvm_irqchip chip;
	struct codec c;
	int r;

	r = field_decoder(s, VM_T_PIT, PIT_LEN, &c);
	if (r < 0)
		return r;
	if (r) {
		memset(&pit, 0, sizeof(pit));
		pit_codec(&c, &pit, clock_ns(CLOCK_MONOTONIC));
		if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0) {
			pr_err("KVM_SET_PIT2: %s", strerror(errno));
			return -errno;
		}
	}
	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		r = field_decoder(s, irqchip_tag(id),
				  id == KVM_IRQCHIP_IOAPIC ? IOAPIC_LEN : PIC_LEN, &c);
		if (r < 0)
			return r;
		if (!r)
			continue;
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (id == KVM_IRQCHIP_IOAPIC)
			ioapic_codec(&c, &chip.chip.ioapic);
		else
			pic_codec(&c, &chip.chip.pic);
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
			pr_err("KVM_SET_IRQCHIP %u: %s", id, strerror(errno));
			return -errno;
		}
	}
	{
		uint64_t saved_clock = 0, saved_rt = 0, now;

		r = tlv_get_u64(s, VM_T_CLOCK, &saved_clock);
		if (!r)
			r = tlv_get_u64(s, VM_T_REALTIME, &saved_rt);
		if (r)
			return r;
		/* Unsigned: saved_rt comes from the stream, and as a negative int64 it made the
		 * subtraction overflow. A time in the future advances nothing. */
		now = (uint64_t)clock_ns(CLOCK_REALTIME);
		vm->load_advance_ns = 0;
		if (advance && saved_rt && now > saved_rt)
			vm->load_advance_ns = now - saved_rt;
		clock.clock = saved_clock + vm->load_advance_ns;
	}
	if (clock.clock && ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0) {
		pr_err("KVM_SET_CLOCK: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* ---- vCPUs ---- */

enum {
	VCPU_T_REGS = 1,
	VCPU_T_SREGS,
	VCPU_T_XSAVE,
	VCPU_T_XCRS,
	VCPU_T_LAPIC,
	VCPU_T_MSRS,
	VCPU_T_EVENTS,
	VCPU_T_MP_STATE,
	VCPU_T_DEBUGREGS,
};

#define REGS_LEN (18 * 8)
#define SEG_LEN (8 + 4 + 2 + 9)
#define SREGS_LEN (8 * SEG_LEN + 2 * 10 + 7 * 8 + 4 * 8)
#define EVENTS_LEN 28
#define DEBUGREGS_LEN (6 * 8 + 4)
#define MSR_ENTRY_LEN 12
#define XCR_ENTRY_LEN 12

static void regs_codec(struct codec *c, struct kvm_regs *r)
{
	__u64 *f[18] = { &r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
			 &r->rsp, &r->rbp, &r->r8,  &r->r9,  &r->r10, &r->r11,
			 &r->r12, &r->r13, &r->r14, &r->r15, &r->rip, &r->rflags };

	for (int i = 0; i < 18; i++)
		c64(c, f[i]);
}

static void seg_codec(struct codec *c, struct kvm_segment *s)
{
	__u8 *f[9] = { &s->type, &s->present, &s->dpl, &s->db,	    &s->s,
		       &s->l,	 &s->g,	      &s->avl, &s->unusable };

	c64(c, &s->base);
	c32(c, &s->limit);
	c16(c, &s->selector);
	for (int i = 0; i < 9; i++)
		c8(c, f[i]);
}

static void sregs_codec(struct codec *c, struct kvm_sregs *s)
{
	struct kvm_segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs,
					&s->gs, &s->ss, &s->tr, &s->ldt };
	__u64 *f[7] = { &s->cr0, &s->cr2, &s->cr3, &s->cr4, &s->cr8, &s->efer, &s->apic_base };

	for (int i = 0; i < 8; i++)
		seg_codec(c, segs[i]);
	c64(c, &s->gdt.base);
	c16(c, &s->gdt.limit);
	c64(c, &s->idt.base);
	c16(c, &s->idt.limit);
	for (int i = 0; i < 7; i++)
		c64(c, f[i]);
	for (int i = 0; i < 4; i++)
		c64(c, &s->interrupt_bitmap[i]);
}

static void events_codec(struct codec *c, struct kvm_vcpu_events *v)
{
	__u8 pad = 0;
	__u8 *f[12] = {
		&v->exception.injected, &v->exception.nr,	&v->exception.has_error_code,
		&v->exception.pending,	&v->interrupt.injected, &v->interrupt.nr,
		&v->interrupt.soft,	&v->interrupt.shadow,	&v->nmi.injected,
		&v->nmi.pending,	&v->nmi.masked,		&pad
	};
	__u8 *smi[4] = { &v->smi.smm, &v->smi.pending, &v->smi.smm_inside_nmi,
			 &v->smi.latched_init };

	for (int i = 0; i < 4; i++)
		c8(c, f[i]);
	c32(c, &v->exception.error_code);
	for (int i = 4; i < 12; i++)
		c8(c, f[i]);
	c32(c, &v->sipi_vector);
	c32(c, &v->flags);
	for (int i = 0; i < 4; i++)
		c8(c, smi[i]);
}

static void debugregs_codec(struct codec *c, struct kvm_debugregs *d)
{
	for (int i = 0; i < 4; i++)
		c64(c, &d->db[i]);
	c64(c, &d->dr6);
	__u32 flags = (__u32)d->flags;

	c64(c, &d->dr7);
	c32(c, &flags); /* only low bits are defined */
	d->flags = flags;
}

/* The MSRs KVM says are worth saving (KVM_GET_MSR_INDEX_LIST: hardware and emulated ones,
 * kvmclock and the other paravirtual MSRs included). Cached per VM. */
static int msr_list(struct vm *vm, struct kvm_msr_list **out)
{
	static struct kvm_msr_list *cached;
	struct kvm_msr_list probe = { .nmsrs = 0 }, *l;

	if (cached) {
		*out = cached;
		return 0;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -errno;
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return -errno;
	}
	cached = l;
	*out = l;
	return 0;
}

/* KVM_GET_MSRS/KVM_SET_MSRS stop at the first MSR they refuse; this goes on past it, so one
 * MSR a host does not have costs only that MSR. Returns how many were transferred in place
 * (refused entries are dropped from m). */
static unsigned int msrs_transfer(struct vcpu *vcpu, struct kvm_msrs *m, unsigned long req)
{
	unsigned int done = 0, n = m->nmsrs;
	struct kvm_msr_entry *e = m->entries;

	while (done < n) {
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e[64];
		} b;
		unsigned int batch = MIN(n - done, 64u);
		int r;

		memset(&b.hdr, 0, sizeof(b.hdr));
		b.hdr.nmsrs = batch;
		memcpy(b.e, e + done, batch * sizeof(*e));
		r = ioctl(vcpu->fd, req, &b);
		if (r < 0)
			r = 0;
		memcpy(e + done, b.e, (size_t)r * sizeof(*e));
		done += (unsigned int)r;
		if ((unsigned int)r < batch) {
			pr_debug("vcpu%u: MSR %#x refused by %s", vcpu->index, e[done].index,
				 req == KVM_GET_MSRS ? "KVM_GET_MSRS" : "KVM_SET_MSRS");
			memmove(e + done, e + done + 1, (n - done - 1) * sizeof(*e));
			n--;
		}
	}
	m->nmsrs = n;
	return n;
}

#define MSR_IA32_TSC_DEADLINE 0x6e0

static int save_vcpu(struct vcpu *vcpu, struct tlv_writer *w)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct kvm_debugregs dbg;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_msr_list *list = NULL;
	struct kvm_msrs *m;
	uint8_t buf[SREGS_LEN + 64], *mb;
	struct codec c;
	size_t start;
	int ret;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0) {
		pr_err("vcpu%u: reading its state: %s", vcpu->index, strerror(errno));
		return -errno;
	}
	start = tlv_section_begin(w, SECTION_VCPU, vcpu->index, 1, 1);
	c = ENCODER(buf);
	regs_codec(&c, &regs);
	tlv_put(w, VCPU_T_REGS, buf, (uint32_t)c.off);
	c = ENCODER(buf);
	sregs_codec(&c, &sregs);
	tlv_put(w, VCPU_T_SREGS, buf, (uint32_t)c.off);
	/* XSAVE area in the architectural (hardware-defined) layout; legacy FPU/SSE state
	 * included. */
	if (ioctl(vcpu->fd, KVM_GET_XSAVE, &xsave) == 0)
		tlv_put(w, VCPU_T_XSAVE, xsave.region, sizeof(xsave.region));
	else
		pr_warn("vcpu%u: KVM_GET_XSAVE: %s; FPU state not saved", vcpu->index,
			strerror(errno));
	if (ioctl(vcpu->vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0 &&
	    ioctl(vcpu->fd, KVM_GET_XCRS, &xcrs) == 0) {
		c = ENCODER(buf);
		for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
			c32(&c, &xcrs.xcrs[i].xcr);
			c64(&c, &xcrs.xcrs[i].value);
		}
		tlv_put(w, VCPU_T_XCRS, buf, (uint32_t)c.off);
	}
	/* The APIC register page, also a hardware layout. */
	tlv_put(w, VCPU_T_LAPIC, lapic.regs, sizeof(lapic.regs));
	c = ENCODER(buf);
	events_codec(&c, &ev);
	tlv_put(w, VCPU_T_EVENTS, buf, (uint32_t)c.off);
	tlv_put_u32(w, VCPU_T_MP_STATE, mp.mp_state);
	if (ioctl(vcpu->fd, KVM_GET_DEBUGREGS, &dbg) == 0) {
		c = ENCODER(buf);
		debugregs_codec(&c, &dbg);
		tlv_put(w, VCPU_T_DEBUGREGS, buf, (uint32_t)c.off);
	}

	ret = msr_list(vcpu->vm, &list);
	if (ret) {
		pr_err("KVM_GET_MSR_INDEX_LIST: %s", strerror(-ret));
		return ret;
	}
	m = calloc(1, sizeof(*m) + list->nmsrs * sizeof(struct kvm_msr_entry));
	mb = malloc((size_t)list->nmsrs * MSR_ENTRY_LEN + 1);
	if (!m || !mb) {
		free(m);
		free(mb);
		return -ENOMEM;
	}
	m->nmsrs = list->nmsrs;
	for (uint32_t i = 0; i < list->nmsrs; i++)
		m->entries[i].index = list->indices[i];
	msrs_transfer(vcpu, m, KVM_GET_MSRS);
	c = (struct codec){ mb, 0, (size_t)list->nmsrs * MSR_ENTRY_LEN, false };
	for (uint32_t i = 0; i < m->nmsrs; i++) {
		c32(&c, &m->entries[i].index);
		c64(&c, &m->entries[i].data);
	}
	tlv_put(w, VCPU_T_MSRS, mb, (uint32_t)c.off);
	free(m);
	free(mb);
	tlv_section_end(w, start);
	return w->err;
}

/* Order as KVM needs it: CPUID was set at creation; then MP state, registers, special registers
 * (which set the APIC base), XSAVE, XCRs, LAPIC, MSRs (the TSC deadline after the LAPIC), debug
 * registers and last the pending events. */
static int load_vcpu(struct vcpu *vcpu, const struct tlv_section *s)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct kvm_debugregs dbg;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct tlv_field f;
	struct codec c;
	const char *what = NULL;
	int r;

	mp.mp_state = KVM_MP_STATE_RUNNABLE;
	if (tlv_get_u32(s, VCPU_T_MP_STATE, &mp.mp_state))
		return -EINVAL;
	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		what = "KVM_SET_MP_STATE";
	r = field_decoder(s, VCPU_T_REGS, REGS_LEN, &c);
	if (r < 0)
		return r;
	if (r) {
		regs_codec(&c, &regs);
		if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
			what = "KVM_SET_REGS";
	}
	r = field_decoder(s, VCPU_T_SREGS, SREGS_LEN, &c);
	if (r < 0)
		return r;
	if (r) {
		memset(&sregs, 0, sizeof(sregs));
		sregs_codec(&c, &sregs);
		if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
			what = "KVM_SET_SREGS";
	}
	r = field_bytes(s, VCPU_T_XSAVE, xsave.region, sizeof(xsave.region));
	if (r < 0)
		return r;
	if (r && ioctl(vcpu->fd, KVM_SET_XSAVE, &xsave) < 0)
		what = "KVM_SET_XSAVE";
	if (tlv_find(s, VCPU_T_XCRS, &f)) {
		if (f.len % XCR_ENTRY_LEN || f.len / XCR_ENTRY_LEN > KVM_MAX_XCRS)
			return -EINVAL;
		memset(&xcrs, 0, sizeof(xcrs));
		field_decoder(s, VCPU_T_XCRS, f.len, &c);
		xcrs.nr_xcrs = f.len / XCR_ENTRY_LEN;
		for (uint32_t i = 0; i < xcrs.nr_xcrs; i++) {
			c32(&c, &xcrs.xcrs[i].xcr);
			c64(&c, &xcrs.xcrs[i].value);
		}
		if (xcrs.nr_xcrs && ioctl(vcpu->fd, KVM_SET_XCRS, &xcrs) < 0)
			what = "KVM_SET_XCRS";
	}
	r = field_bytes(s, VCPU_T_LAPIC, lapic.regs, sizeof(lapic.regs));
	if (r < 0)
		return r;
	if (r && ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		what = "KVM_SET_LAPIC";
	if (tlv_find(s, VCPU_T_MSRS, &f)) {
		uint32_t n = f.len / MSR_ENTRY_LEN;
		struct kvm_msrs *m;

		if (f.len % MSR_ENTRY_LEN)
			return -EINVAL;
		m = calloc(1, sizeof(*m) + (size_t)n * sizeof(struct kvm_msr_entry));
		if (!m)
			return -ENOMEM;
		field_decoder(s, VCPU_T_MSRS, f.len, &c);
		m->nmsrs = n;
		for (uint32_t i = 0; i < n; i++) {
			c32(&c, &m->entries[i].index);
			c64(&c, &m->entries[i].data);
			if (m->entries[i].index == MSR_IA32_TSC && vcpu->vm->tsc_khz)
				m->entries[i].data +=
					vcpu->vm->load_advance_ns * vcpu->vm->tsc_khz / 1000000ULL;
		}
		if (msrs_transfer(vcpu, m, KVM_SET_MSRS) < n)
			pr_debug("vcpu%u: %u of %u MSRs restored", vcpu->index, m->nmsrs, n);
		free(m);
	}
	r = field_decoder(s, VCPU_T_DEBUGREGS, DEBUGREGS_LEN, &c);
	if (r < 0)
		return r;
	if (r) {
		memset(&dbg, 0, sizeof(dbg));
		debugregs_codec(&c, &dbg);
		if (ioctl(vcpu->fd, KVM_SET_DEBUGREGS, &dbg) < 0)
			pr_debug("vcpu%u: KVM_SET_DEBUGREGS: %s", vcpu->index, strerror(errno));
	}
	r = field_decoder(s, VCPU_T_EVENTS, EVENTS_LEN, &c);
	if (r < 0)
		return r;
	if (r) {
		memset(&ev, 0, sizeof(ev));
		events_codec(&c, &ev);
		/* Only what every KVM with these capabilities accepts. */
		ev.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			    KVM_VCPUEVENT_VALID_SHADOW;
		if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			what = "KVM_SET_VCPU_EVENTS";
	}
	if (what) {
		pr_err("vcpu%u: %s refused the saved state", vcpu->index, what);
		return -EINVAL;
	}
	return 0;
}

/* ---- everything ---- */

int vmstate_save(struct vm *vm, struct tlv_writer *w)
{
	int ret = vmstate_save_config(vm, w);

	if (!ret)
		ret = save_vm(vm, w);
	for (unsigned int i = 0; !ret && i < vm->nvcpus; i++)
		ret = save_vcpu(&vm->vcpus[i], w);
	for (unsigned int i = 0; !ret && i < vm->ndevices; i++) {
		const struct vm_device *d = &vm->devices[i];
		size_t start = tlv_section_begin(w, d->ops->section_id, d->instance,
						 d->ops->version, d->ops->min_version);

		ret = d->ops->save(d->dev, w);
		tlv_section_end(w, start);
		if (ret)
			pr_err("saving %s: %s", d->ops->name, strerror(-ret));
	}
	return ret ? ret : w->err;
}

int vmstate_load(struct vm *vm, const uint8_t *body, size_t len, bool advance_clock)
{
	struct tlv_section s;
	size_t pos = 0;
	const uint8_t *vm_sec = NULL;
	bool *seen_vcpu = calloc(vm->nvcpus, sizeof(bool));
	int r, ret = 0;

	if (!seen_vcpu)
		return -ENOMEM;
	/* Devices first: their loads raise interrupt lines again, which the interrupt
	 * controllers' state (in the VM section) then overrides with what was saved. */
	while (!ret && (r = tlv_next_section(body, len, &pos, &s)) == 1) {
		const struct vm_device *dev = NULL;

		if (s.id == SECTION_CONFIG)
			continue;
		if (s.id == SECTION_VM) {
			vm_sec = body + pos - s.len - TLV_SECTION_HDR;
			continue;
		}
		if (s.id == SECTION_VCPU)
			continue;
		for (unsigned int i = 0; i < vm->ndevices; i++)
			if (vm->devices[i].ops->section_id == s.id &&
			    vm->devices[i].instance == s.instance)
				dev = &vm->devices[i];
		if (!dev) {
			pr_err("the snapshot has state for a device this machine lacks (section %u "
			       "instance %u)",
			       s.id, s.instance);
			ret = -EINVAL;
			break;
		}
		if (s.min_version > dev->ops->version) {
			pr_err("%s state version %u needs a newer vireo (this one reads up to %u)",
			       dev->ops->name, s.version, dev->ops->version);
			ret = -EPROTONOSUPPORT;
			break;
		}
		ret = dev->ops->load(dev->dev, &s);
		if (ret)
			pr_err("%s: malformed saved state", dev->ops->name);
	}
	if (!ret && vm_sec) {
		size_t p = (size_t)(vm_sec - body);

		if (tlv_next_section(body, len, &p, &s) == 1) {
			if (s.min_version > 1) {
				pr_err("vm state version %u needs a newer vireo", s.version);
				ret = -EPROTONOSUPPORT;
			} else {
				ret = load_vm(vm, &s, advance_clock);
			}
		}
	} else if (!ret) {
		pr_err("the snapshot has no VM section");
		ret = -EINVAL;
	}
	for (pos = 0; !ret && (r = tlv_next_section(body, len, &pos, &s)) == 1;) {
		if (s.id != SECTION_VCPU)
			continue;
		if (s.instance >= vm->nvcpus || s.min_version > 1) {
			pr_err("vcpu section %u (version %u) does not fit this machine", s.instance,
			       s.version);
			ret = -EINVAL;
			break;
		}
		ret = load_vcpu(&vm->vcpus[s.instance], &s);
		seen_vcpu[s.instance] = true;
		if (ret)
			pr_err("vcpu%u: %s state", s.instance,
			       ret == -EINVAL ? "malformed or refused" : strerror(-ret));
	}
	for (unsigned int i = 0; !ret && i < vm->nvcpus; i++)
		if (!seen_vcpu[i]) {
			pr_err("the snapshot has no state for vcpu%u", i);
			ret = -EINVAL;
		}
	free(seen_vcpu);
	return ret;
}
