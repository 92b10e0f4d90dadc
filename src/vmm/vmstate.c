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
#include "vm.h"
#include "vmstate.h"

/* Little byte-order cursor for the fixed-layout fields below. */
struct enc {
	uint8_t *p;
	size_t off, cap;
};

static void e8(struct enc *e, uint8_t v)
{
	if (e->off + 1 <= e->cap)
		e->p[e->off] = v;
	e->off += 1;
}
static void e16(struct enc *e, uint16_t v)
{
	if (e->off + 2 <= e->cap)
		put_le16(e->p + e->off, v);
	e->off += 2;
}
static void e32(struct enc *e, uint32_t v)
{
	if (e->off + 4 <= e->cap)
		put_le32(e->p + e->off, v);
	e->off += 4;
}
static void e64(struct enc *e, uint64_t v)
{
	if (e->off + 8 <= e->cap)
		put_le64(e->p + e->off, v);
	e->off += 8;
}

/* The decoder is only used on fields whose length was checked against the layout. */
struct dec {
	const uint8_t *p;
	size_t off;
};

static uint8_t d8(struct dec *d)
{
	return d->p[d->off++];
}
static uint16_t d16(struct dec *d)
{
	d->off += 2;
	return get_le16(d->p + d->off - 2);
}
static uint32_t d32(struct dec *d)
{
	d->off += 4;
	return get_le32(d->p + d->off - 4);
}
static uint64_t d64(struct dec *d)
{
	d->off += 8;
	return get_le64(d->p + d->off - 8);
}

/* A fixed-layout field: returns a decoder, or -EINVAL for a wrong length, 0 when absent. */
static int field_dec(const struct tlv_section *s, uint16_t tag, size_t len, struct dec *d)
{
	struct tlv_field f;

	if (!tlv_find(s, tag, &f))
		return 0;
	if (f.len != len)
		return -EINVAL;
	d->p = f.data;
	d->off = 0;
	return 1;
}

/* ---- configuration ---- */

enum {
	CFG_T_MEM_SIZE = 1,
	CFG_T_NCPUS,
	CFG_T_CPU_FEATURES, /* the --cpu-features list, "+name,-name" */
	CFG_T_PVM_PROFILE,
	CFG_T_PAYLOAD, /* path of the payload, when the guest is one */
	CFG_T_KERNEL, /* informational */
	CFG_T_TSC_KHZ,
	CFG_T_VIRTIO_RNG, /* u8: the machine has virtio-rng */
	CFG_T_VIRTIO_CONSOLE, /* the --virtio-console backend: the machine has virtio-console */
	/* The --net options, one per NIC in order, joined by newlines. Tags 0x20.. belong to
	 * block devices, 0x40.. to balloon and vsock. */
	CFG_T_NET = 0x30,
};

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

static char *get_str(const struct tlv_section *s, uint16_t tag)
{
	struct tlv_field f;
	char *r;

	if (!tlv_find(s, tag, &f))
		return NULL;
	r = malloc(f.len + 1);
	if (!r)
		return NULL;
	memcpy(r, f.data, f.len);
	r[f.len] = 0;
	return r;
}

/* The saved NICs. --net options given with --restore or --incoming replace their backends (a
 * migration to the same host needs other host ports), one for one. */
static int read_net_config(const struct tlv_section *s, struct vm_config *cfg,
			   struct vmstate_config *sc, char *err, size_t errlen)
{
	const char *saved[NET_MAX_NICS];
	unsigned int n = 0;
	char *p;

	sc->net = get_str(s, CFG_T_NET);
	for (p = sc->net; p && *p && n < NET_MAX_NICS; n++) {
		saved[n] = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = 0;
	}
	if (p && *p) {
		snprintf(err, errlen, "more NICs saved than this vireo supports");
		return -EINVAL;
	}
	if (cfg->nnet && cfg->nnet != n) {
		snprintf(err, errlen,
			 "the saved VM has %u NIC(s): give as many --net options as that, or "
			 "none",
			 n);
		return -EINVAL;
	}
	if (!cfg->nnet) {
		memcpy(cfg->net, saved, n * sizeof(saved[0]));
		cfg->nnet = n;
	}
	return 0;
}

int vmstate_read_config(const uint8_t *body, size_t len, struct vm_config *cfg,
			struct vmstate_config *sc, char *err, size_t errlen)
{
	struct tlv_section s;
	size_t pos = 0;
	uint64_t mem = 0;
	uint32_t ncpus = 0;
	uint8_t pvm = 0, rng = 0;
	char *feats;
	int ret;

	memset(sc, 0, sizeof(*sc));
	for (;;) {
		ret = tlv_next_section(body, len, &pos, &s);
		if (ret <= 0) {
			snprintf(err, errlen, "no machine configuration section");
			return -EINVAL;
		}
		if (s.id == SECTION_CONFIG)
			break;
	}
	if (s.min_version > 1) {
		snprintf(err, errlen, "machine configuration section version %u is too new",
			 s.version);
		return -EPROTONOSUPPORT;
	}
	if (tlv_get_u64(&s, CFG_T_MEM_SIZE, &mem) || tlv_get_u32(&s, CFG_T_NCPUS, &ncpus) ||
	    tlv_get_u8(&s, CFG_T_PVM_PROFILE, &pvm) || tlv_get_u8(&s, CFG_T_VIRTIO_RNG, &rng) ||
	    tlv_get_u32(&s, CFG_T_TSC_KHZ, &sc->tsc_khz)) {
		snprintf(err, errlen, "malformed machine configuration");
		return -EINVAL;
	}
	if (mem < MIB || mem > 1024 * GIB || mem % (4 * KIB) || ncpus < 1 ||
	    ncpus > VM_MAX_CPUS_DEFAULT) {
		snprintf(err, errlen,
			 "implausible machine configuration (%" PRIu64 " bytes, %u vCPUs)", mem,
			 ncpus);
		return -EINVAL;
	}
	cfg->mem_size = mem;
	cfg->ncpus = ncpus;
	cfg->saved_tsc_khz = sc->tsc_khz;
	cfg->pvm = pvm ? PVM_ON : PVM_OFF;
	feats = get_str(&s, CFG_T_CPU_FEATURES);
	cfg->ncpu_changes = 0;
	if (feats && *feats) {
		ret = cpuid_parse_features(feats, cfg->cpu_changes, CPUID_MAX_CHANGES, err, errlen);
		if (ret < 0) {
			free(feats);
			return ret;
		}
		cfg->ncpu_changes = (size_t)ret;
	}
	free(feats);
	/* Owned by the caller's config from here on (freed with the process). */
	sc->payload = get_str(&s, CFG_T_PAYLOAD);
	sc->kernel = get_str(&s, CFG_T_KERNEL);
	cfg->payload = sc->payload;
	cfg->kernel = sc->payload ? NULL : sc->kernel;
	/* The virtio devices are part of the machine; a --virtio-console given with --restore
	 * only moves the backend. */
	cfg->virtio_rng = rng;
	sc->virtio_console = get_str(&s, CFG_T_VIRTIO_CONSOLE);
	if (!sc->virtio_console)
		cfg->virtio_console = NULL;
	else if (!cfg->virtio_console)
		cfg->virtio_console = sc->virtio_console;
	return read_net_config(&s, cfg, sc, err, errlen);
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

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define PIT_CHANNEL_LEN (4 + 2 + 10 + 8)
#define PIT_LEN (3 * PIT_CHANNEL_LEN + 4)
#define PIC_LEN 16
#define IOAPIC_LEN (8 + 4 + 4 + 4 + KVM_IOAPIC_NUM_PINS * 8)

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void enc_pic(struct enc *e, const struct kvm_pic_state *p)
{
	e8(e, p->last_irr);
	e8(e, p->irr);
	e8(e, p->imr);
	e8(e, p->isr);
	e8(e, p->priority_add);
	e8(e, p->irq_base);
	e8(e, p->read_reg_select);
	e8(e, p->poll);
	e8(e, p->special_mask);
	e8(e, p->init_state);
	e8(e, p->auto_eoi);
	e8(e, p->rotate_on_auto_eoi);
	e8(e, p->special_fully_nested_mode);
	e8(e, p->init4);
	e8(e, p->elcr);
	e8(e, p->elcr_mask);
}

static void dec_pic(struct dec *d, struct kvm_pic_state *p)
{
	p->last_irr = d8(d);
	p->irr = d8(d);
	p->imr = d8(d);
	p->isr = d8(d);
	p->priority_add = d8(d);
	p->irq_base = d8(d);
	p->read_reg_select = d8(d);
	p->poll = d8(d);
	p->special_mask = d8(d);
	p->init_state = d8(d);
	p->auto_eoi = d8(d);
	p->rotate_on_auto_eoi = d8(d);
	p->special_fully_nested_mode = d8(d);
	p->init4 = d8(d);
	p->elcr = d8(d);
	p->elcr_mask = d8(d);
}

static int save_vm(struct vm *vm, struct tlv_writer *w)
{
	struct kvm_clock_data clock = { 0 };
	struct kvm_pit_state2 pit;
	struct kvm_irqchip chip;
	uint8_t buf[IOAPIC_LEN > PIT_LEN ? IOAPIC_LEN : PIT_LEN];
	struct enc e;
	size_t start = tlv_section_begin(w, SECTION_VM, 0, 1, 1);
	int64_t now;

	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0) {
		pr_err("KVM_GET_CLOCK: %s", strerror(errno));
		return -errno;
	}
	tlv_put_u64(w, VM_T_CLOCK, clock.clock);
	tlv_put_u64(w, VM_T_REALTIME, (uint64_t)realtime_ns());

	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0) {
		pr_err("KVM_GET_PIT2: %s", strerror(errno));
		return -errno;
	}
	/* A channel's load time is host CLOCK_MONOTONIC; it is saved relative to now. */
	now = monotonic_ns();
	e = (struct enc){ buf, 0, sizeof(buf) };
	for (int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &pit.channels[i];

		e32(&e, c->count);
		e16(&e, c->latched_count);
		e8(&e, c->count_latched);
		e8(&e, c->status_latched);
		e8(&e, c->status);
		e8(&e, c->read_state);
		e8(&e, c->write_state);
		e8(&e, c->write_latch);
		e8(&e, c->rw_mode);
		e8(&e, c->mode);
		e8(&e, c->bcd);
		e8(&e, c->gate);
		e64(&e, (uint64_t)(c->count_load_time - now));
	}
	e32(&e, pit.flags);
	tlv_put(w, VM_T_PIT, buf, (uint32_t)e.off);

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
			pr_err("KVM_GET_IRQCHIP %u: %s", id, strerror(errno));
			return -errno;
		}
		e = (struct enc){ buf, 0, sizeof(buf) };
		if (id == KVM_IRQCHIP_IOAPIC) {
			const struct kvm_ioapic_state *io = &chip.chip.ioapic;

			e64(&e, io->base_address);
			e32(&e, io->ioregsel);
			e32(&e, io->id);
			e32(&e, io->irr);
			for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
				e64(&e, io->redirtbl[i].bits);
			tlv_put(w, VM_T_IOAPIC, buf, (uint32_t)e.off);
		} else {
			enc_pic(&e, &chip.chip.pic);
			tlv_put(w, id == KVM_IRQCHIP_PIC_MASTER ? VM_T_PIC_MASTER : VM_T_PIC_SLAVE,
				buf, (uint32_t)e.off);
		}
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
	struct dec d;
	int r;

	r = field_dec(s, VM_T_PIT, PIT_LEN, &d);
	if (r < 0)
		return r;
	if (r) {
		int64_t now = monotonic_ns();

		memset(&pit, 0, sizeof(pit));
		for (int i = 0; i < 3; i++) {
			struct kvm_pit_channel_state *c = &pit.channels[i];

			c->count = d32(&d);
			c->latched_count = d16(&d);
			c->count_latched = d8(&d);
			c->status_latched = d8(&d);
			c->status = d8(&d);
			c->read_state = d8(&d);
			c->write_state = d8(&d);
			c->write_latch = d8(&d);
			c->rw_mode = d8(&d);
			c->mode = d8(&d);
			c->bcd = d8(&d);
			c->gate = d8(&d);
			c->count_load_time = now + (int64_t)d64(&d);
		}
		pit.flags = d32(&d);
		if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0) {
			pr_err("KVM_SET_PIT2: %s", strerror(errno));
			return -errno;
		}
	}
	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		uint16_t tag = id == KVM_IRQCHIP_PIC_MASTER  ? VM_T_PIC_MASTER
			       : id == KVM_IRQCHIP_PIC_SLAVE ? VM_T_PIC_SLAVE
							     : VM_T_IOAPIC;

		r = field_dec(s, tag, id == KVM_IRQCHIP_IOAPIC ? IOAPIC_LEN : PIC_LEN, &d);
		if (r <= 0) {
			if (r < 0)
				return r;
			continue;
		}
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (id == KVM_IRQCHIP_IOAPIC) {
			struct kvm_ioapic_state *io = &chip.chip.ioapic;

			io->base_address = d64(&d);
			io->ioregsel = d32(&d);
			io->id = d32(&d);
			io->irr = d32(&d);
			for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
				io->redirtbl[i].bits = d64(&d);
		} else {
			dec_pic(&d, &chip.chip.pic);
		}
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
			pr_err("KVM_SET_IRQCHIP %u: %s", id, strerror(errno));
			return -errno;
		}
	}
	{
		uint64_t c = 0, saved_rt = 0;

		r = tlv_get_u64(s, VM_T_CLOCK, &c);
		if (!r)
			r = tlv_get_u64(s, VM_T_REALTIME, &saved_rt);
		if (r)
			return r;
		vm->load_advance_ns = 0;
		if (advance && saved_rt && realtime_ns() > (int64_t)saved_rt)
			vm->load_advance_ns = (uint64_t)(realtime_ns() - (int64_t)saved_rt);
		clock.clock = c + vm->load_advance_ns;
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

static void enc_regs(struct enc *e, const struct kvm_regs *r)
{
	const uint64_t v[18] = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
				 r->rsp, r->rbp, r->r8,	 r->r9,	 r->r10, r->r11,
				 r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags };

	for (int i = 0; i < 18; i++)
		e64(e, v[i]);
}

static void dec_regs(struct dec *d, struct kvm_regs *r)
{
	__u64 *v[18] = { &r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
			 &r->rsp, &r->rbp, &r->r8,  &r->r9,  &r->r10, &r->r11,
			 &r->r12, &r->r13, &r->r14, &r->r15, &r->rip, &r->rflags };

	for (int i = 0; i < 18; i++)
		*v[i] = d64(d);
}

static void enc_seg(struct enc *e, const struct kvm_segment *s)
{
	e64(e, s->base);
	e32(e, s->limit);
	e16(e, s->selector);
	e8(e, s->type);
	e8(e, s->present);
	e8(e, s->dpl);
	e8(e, s->db);
	e8(e, s->s);
	e8(e, s->l);
	e8(e, s->g);
	e8(e, s->avl);
	e8(e, s->unusable);
}

static void dec_seg(struct dec *d, struct kvm_segment *s)
{
	s->base = d64(d);
	s->limit = d32(d);
	s->selector = d16(d);
	s->type = d8(d);
	s->present = d8(d);
	s->dpl = d8(d);
	s->db = d8(d);
	s->s = d8(d);
	s->l = d8(d);
	s->g = d8(d);
	s->avl = d8(d);
	s->unusable = d8(d);
}

static void enc_sregs(struct enc *e, const struct kvm_sregs *s)
{
	const struct kvm_segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs,
					      &s->gs, &s->ss, &s->tr, &s->ldt };

	for (int i = 0; i < 8; i++)
		enc_seg(e, segs[i]);
	e64(e, s->gdt.base);
	e16(e, s->gdt.limit);
	e64(e, s->idt.base);
	e16(e, s->idt.limit);
	e64(e, s->cr0);
	e64(e, s->cr2);
	e64(e, s->cr3);
	e64(e, s->cr4);
	e64(e, s->cr8);
	e64(e, s->efer);
	e64(e, s->apic_base);
	for (int i = 0; i < 4; i++)
		e64(e, s->interrupt_bitmap[i]);
}

static void dec_sregs(struct dec *d, struct kvm_sregs *s)
{
	struct kvm_segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs,
					&s->gs, &s->ss, &s->tr, &s->ldt };

	for (int i = 0; i < 8; i++)
		dec_seg(d, segs[i]);
	s->gdt.base = d64(d);
	s->gdt.limit = d16(d);
	s->idt.base = d64(d);
	s->idt.limit = d16(d);
	s->cr0 = d64(d);
	s->cr2 = d64(d);
	s->cr3 = d64(d);
	s->cr4 = d64(d);
	s->cr8 = d64(d);
	s->efer = d64(d);
	s->apic_base = d64(d);
	for (int i = 0; i < 4; i++)
		s->interrupt_bitmap[i] = d64(d);
}

static void enc_events(struct enc *e, const struct kvm_vcpu_events *v)
{
	e8(e, v->exception.injected);
	e8(e, v->exception.nr);
	e8(e, v->exception.has_error_code);
	e8(e, v->exception.pending);
	e32(e, v->exception.error_code);
	e8(e, v->interrupt.injected);
	e8(e, v->interrupt.nr);
	e8(e, v->interrupt.soft);
	e8(e, v->interrupt.shadow);
	e8(e, v->nmi.injected);
	e8(e, v->nmi.pending);
	e8(e, v->nmi.masked);
	e8(e, 0);
	e32(e, v->sipi_vector);
	e32(e, v->flags);
	e8(e, v->smi.smm);
	e8(e, v->smi.pending);
	e8(e, v->smi.smm_inside_nmi);
	e8(e, v->smi.latched_init);
}

static void dec_events(struct dec *d, struct kvm_vcpu_events *v)
{
	v->exception.injected = d8(d);
	v->exception.nr = d8(d);
	v->exception.has_error_code = d8(d);
	v->exception.pending = d8(d);
	v->exception.error_code = d32(d);
	v->interrupt.injected = d8(d);
	v->interrupt.nr = d8(d);
	v->interrupt.soft = d8(d);
	v->interrupt.shadow = d8(d);
	v->nmi.injected = d8(d);
	v->nmi.pending = d8(d);
	v->nmi.masked = d8(d);
	(void)d8(d);
	v->sipi_vector = d32(d);
	v->flags = d32(d);
	v->smi.smm = d8(d);
	v->smi.pending = d8(d);
	v->smi.smm_inside_nmi = d8(d);
	v->smi.latched_init = d8(d);
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
	struct enc e;
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
	e = (struct enc){ buf, 0, sizeof(buf) };
	enc_regs(&e, &regs);
	tlv_put(w, VCPU_T_REGS, buf, (uint32_t)e.off);
	e = (struct enc){ buf, 0, sizeof(buf) };
	enc_sregs(&e, &sregs);
	tlv_put(w, VCPU_T_SREGS, buf, (uint32_t)e.off);
	/* XSAVE area in the architectural (hardware-defined) layout; legacy FPU/SSE state
	 * included. */
	if (ioctl(vcpu->fd, KVM_GET_XSAVE, &xsave) == 0)
		tlv_put(w, VCPU_T_XSAVE, xsave.region, sizeof(xsave.region));
	else
		pr_warn("vcpu%u: KVM_GET_XSAVE: %s; FPU state not saved", vcpu->index,
			strerror(errno));
	if (ioctl(vcpu->vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0 &&
	    ioctl(vcpu->fd, KVM_GET_XCRS, &xcrs) == 0) {
		e = (struct enc){ buf, 0, sizeof(buf) };
		for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
			e32(&e, xcrs.xcrs[i].xcr);
			e64(&e, xcrs.xcrs[i].value);
		}
		tlv_put(w, VCPU_T_XCRS, buf, (uint32_t)e.off);
	}
	/* The APIC register page, also a hardware layout. */
	tlv_put(w, VCPU_T_LAPIC, lapic.regs, sizeof(lapic.regs));
	e = (struct enc){ buf, 0, sizeof(buf) };
	enc_events(&e, &ev);
	tlv_put(w, VCPU_T_EVENTS, buf, (uint32_t)e.off);
	tlv_put_u32(w, VCPU_T_MP_STATE, mp.mp_state);
	if (ioctl(vcpu->fd, KVM_GET_DEBUGREGS, &dbg) == 0) {
		e = (struct enc){ buf, 0, sizeof(buf) };
		for (int i = 0; i < 4; i++)
			e64(&e, dbg.db[i]);
		e64(&e, dbg.dr6);
		e64(&e, dbg.dr7);
		e32(&e, dbg.flags);
		tlv_put(w, VCPU_T_DEBUGREGS, buf, (uint32_t)e.off);
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
	e = (struct enc){ mb, 0, (size_t)list->nmsrs * MSR_ENTRY_LEN };
	for (uint32_t i = 0; i < m->nmsrs; i++) {
		e32(&e, m->entries[i].index);
		e64(&e, m->entries[i].data);
	}
	tlv_put(w, VCPU_T_MSRS, mb, (uint32_t)e.off);
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
	struct dec d;
	const char *what = NULL;
	int r;

	mp.mp_state = KVM_MP_STATE_RUNNABLE;
	if (tlv_get_u32(s, VCPU_T_MP_STATE, &mp.mp_state))
		return -EINVAL;
	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		what = "KVM_SET_MP_STATE";
	r = field_dec(s, VCPU_T_REGS, REGS_LEN, &d);
	if (r < 0)
		return r;
	if (r) {
		dec_regs(&d, &regs);
		if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
			what = "KVM_SET_REGS";
	}
	r = field_dec(s, VCPU_T_SREGS, SREGS_LEN, &d);
	if (r < 0)
		return r;
	if (r) {
		memset(&sregs, 0, sizeof(sregs));
		dec_sregs(&d, &sregs);
		if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
			what = "KVM_SET_SREGS";
	}
	if (tlv_find(s, VCPU_T_XSAVE, &f)) {
		if (f.len != sizeof(xsave.region))
			return -EINVAL;
		memcpy(xsave.region, f.data, f.len);
		if (ioctl(vcpu->fd, KVM_SET_XSAVE, &xsave) < 0)
			what = "KVM_SET_XSAVE";
	}
	if (tlv_find(s, VCPU_T_XCRS, &f)) {
		if (f.len % XCR_ENTRY_LEN || f.len / XCR_ENTRY_LEN > KVM_MAX_XCRS)
			return -EINVAL;
		memset(&xcrs, 0, sizeof(xcrs));
		d = (struct dec){ f.data, 0 };
		xcrs.nr_xcrs = f.len / XCR_ENTRY_LEN;
		for (uint32_t i = 0; i < xcrs.nr_xcrs; i++) {
			xcrs.xcrs[i].xcr = d32(&d);
			xcrs.xcrs[i].value = d64(&d);
		}
		if (xcrs.nr_xcrs && ioctl(vcpu->fd, KVM_SET_XCRS, &xcrs) < 0)
			what = "KVM_SET_XCRS";
	}
	if (tlv_find(s, VCPU_T_LAPIC, &f)) {
		if (f.len != sizeof(lapic.regs))
			return -EINVAL;
		memcpy(lapic.regs, f.data, f.len);
		if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
			what = "KVM_SET_LAPIC";
	}
	if (tlv_find(s, VCPU_T_MSRS, &f)) {
		uint32_t n = f.len / MSR_ENTRY_LEN;
		struct kvm_msrs *m;

		if (f.len % MSR_ENTRY_LEN)
			return -EINVAL;
		m = calloc(1, sizeof(*m) + (size_t)n * sizeof(struct kvm_msr_entry));
		if (!m)
			return -ENOMEM;
		d = (struct dec){ f.data, 0 };
		m->nmsrs = n;
		for (uint32_t i = 0; i < n; i++) {
			m->entries[i].index = d32(&d);
			m->entries[i].data = d64(&d);
			if (m->entries[i].index == MSR_IA32_TSC && vcpu->vm->tsc_khz)
				m->entries[i].data +=
					vcpu->vm->load_advance_ns * vcpu->vm->tsc_khz / 1000000ULL;
		}
		if (msrs_transfer(vcpu, m, KVM_SET_MSRS) < n)
			pr_debug("vcpu%u: %u of %u MSRs restored", vcpu->index, m->nmsrs, n);
		free(m);
	}
	r = field_dec(s, VCPU_T_DEBUGREGS, DEBUGREGS_LEN, &d);
	if (r < 0)
		return r;
	if (r) {
		memset(&dbg, 0, sizeof(dbg));
		for (int i = 0; i < 4; i++)
			dbg.db[i] = d64(&d);
		dbg.dr6 = d64(&d);
		dbg.dr7 = d64(&d);
		dbg.flags = d32(&d);
		if (ioctl(vcpu->fd, KVM_SET_DEBUGREGS, &dbg) < 0)
			pr_debug("vcpu%u: KVM_SET_DEBUGREGS: %s", vcpu->index, strerror(errno));
	}
	r = field_dec(s, VCPU_T_EVENTS, EVENTS_LEN, &d);
	if (r < 0)
		return r;
	if (r) {
		memset(&ev, 0, sizeof(ev));
		dec_events(&d, &ev);
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
