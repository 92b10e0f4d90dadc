// SPDX-License-Identifier: MIT
#include "cpuid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../common/util.h"

/* clang-format off */
#define F(n, l, s, r, b) { n, l, s, CPUID_##r, b }
static const struct cpu_feature features[] = {
	F("sse3", 1, 0, ECX, 0), F("pclmulqdq", 1, 0, ECX, 1), F("monitor", 1, 0, ECX, 3),
	F("vmx", 1, 0, ECX, 5), F("ssse3", 1, 0, ECX, 9), F("fma", 1, 0, ECX, 12),
	F("cx16", 1, 0, ECX, 13), F("pdcm", 1, 0, ECX, 15), F("pcid", 1, 0, ECX, 17),
	F("sse4_1", 1, 0, ECX, 19), F("sse4_2", 1, 0, ECX, 20), F("x2apic", 1, 0, ECX, 21),
	F("movbe", 1, 0, ECX, 22), F("popcnt", 1, 0, ECX, 23),
	F("tsc_deadline_timer", 1, 0, ECX, 24), F("aes", 1, 0, ECX, 25),
	F("xsave", 1, 0, ECX, 26), F("avx", 1, 0, ECX, 28), F("f16c", 1, 0, ECX, 29),
	F("rdrand", 1, 0, ECX, 30), F("hypervisor", 1, 0, ECX, 31),
	F("fpu", 1, 0, EDX, 0), F("vme", 1, 0, EDX, 1), F("de", 1, 0, EDX, 2),
	F("pse", 1, 0, EDX, 3), F("tsc", 1, 0, EDX, 4), F("msr", 1, 0, EDX, 5),
	F("pae", 1, 0, EDX, 6), F("mce", 1, 0, EDX, 7), F("cx8", 1, 0, EDX, 8),
	F("apic", 1, 0, EDX, 9), F("sep", 1, 0, EDX, 11), F("mtrr", 1, 0, EDX, 12),
	F("pge", 1, 0, EDX, 13), F("mca", 1, 0, EDX, 14), F("cmov", 1, 0, EDX, 15),
	F("pat", 1, 0, EDX, 16), F("pse36", 1, 0, EDX, 17), F("clflush", 1, 0, EDX, 19),
	F("mmx", 1, 0, EDX, 23), F("fxsr", 1, 0, EDX, 24), F("sse", 1, 0, EDX, 25),
	F("sse2", 1, 0, EDX, 26), F("ht", 1, 0, EDX, 28),
	F("fsgsbase", 7, 0, EBX, 0), F("tsc_adjust", 7, 0, EBX, 1), F("bmi1", 7, 0, EBX, 3),
	F("hle", 7, 0, EBX, 4), F("avx2", 7, 0, EBX, 5), F("smep", 7, 0, EBX, 7),
	F("bmi2", 7, 0, EBX, 8), F("erms", 7, 0, EBX, 9), F("invpcid", 7, 0, EBX, 10),
	F("rtm", 7, 0, EBX, 11), F("mpx", 7, 0, EBX, 14), F("avx512f", 7, 0, EBX, 16),
	F("avx512dq", 7, 0, EBX, 17), F("rdseed", 7, 0, EBX, 18), F("adx", 7, 0, EBX, 19),
	F("smap", 7, 0, EBX, 20), F("avx512ifma", 7, 0, EBX, 21),
	F("clflushopt", 7, 0, EBX, 23), F("clwb", 7, 0, EBX, 24), F("avx512cd", 7, 0, EBX, 28),
	F("sha_ni", 7, 0, EBX, 29), F("avx512bw", 7, 0, EBX, 30), F("avx512vl", 7, 0, EBX, 31),
	F("avx512vbmi", 7, 0, ECX, 1), F("umip", 7, 0, ECX, 2), F("pku", 7, 0, ECX, 3),
	F("waitpkg", 7, 0, ECX, 5), F("avx512_vbmi2", 7, 0, ECX, 6), F("gfni", 7, 0, ECX, 8),
	F("vaes", 7, 0, ECX, 9), F("vpclmulqdq", 7, 0, ECX, 10),
	F("avx512_vnni", 7, 0, ECX, 11), F("avx512_bitalg", 7, 0, ECX, 12),
	F("avx512_vpopcntdq", 7, 0, ECX, 14), F("la57", 7, 0, ECX, 16),
	F("rdpid", 7, 0, ECX, 22), F("fsrm", 7, 0, EDX, 4),
	F("avx512_vp2intersect", 7, 0, EDX, 8), F("md_clear", 7, 0, EDX, 10),
	F("serialize", 7, 0, EDX, 14), F("arch_capabilities", 7, 0, EDX, 29),
	F("xsaveopt", 0xd, 1, EAX, 0), F("xsavec", 0xd, 1, EAX, 1),
	F("xgetbv1", 0xd, 1, EAX, 2), F("xsaves", 0xd, 1, EAX, 3),
	F("lahf_lm", 0x80000001, 0, ECX, 0), F("cmp_legacy", 0x80000001, 0, ECX, 1),
	F("svm", 0x80000001, 0, ECX, 2), F("abm", 0x80000001, 0, ECX, 5),
	F("sse4a", 0x80000001, 0, ECX, 6), F("misalignsse", 0x80000001, 0, ECX, 7),
	F("3dnowprefetch", 0x80000001, 0, ECX, 8), F("topoext", 0x80000001, 0, ECX, 22),
	F("syscall", 0x80000001, 0, EDX, 11), F("nx", 0x80000001, 0, EDX, 20),
	F("mmxext", 0x80000001, 0, EDX, 22), F("pdpe1gb", 0x80000001, 0, EDX, 26),
	F("rdtscp", 0x80000001, 0, EDX, 27), F("lm", 0x80000001, 0, EDX, 29),
	F("invtsc", 0x80000007, 0, EDX, 8),
	F("kvmclock", 0x40000001, 0, EAX, 0), F("kvm_nopiodelay", 0x40000001, 0, EAX, 1),
	F("kvmclock2", 0x40000001, 0, EAX, 3), F("kvm_async_pf", 0x40000001, 0, EAX, 4),
	F("kvm_steal_time", 0x40000001, 0, EAX, 5), F("kvm_pv_eoi", 0x40000001, 0, EAX, 6),
	F("kvm_pv_unhalt", 0x40000001, 0, EAX, 7), F("kvm_pv_tlb_flush", 0x40000001, 0, EAX, 9),
	F("kvm_pv_send_ipi", 0x40000001, 0, EAX, 11),
	F("kvm_poll_control", 0x40000001, 0, EAX, 12),
	F("kvm_pv_sched_yield", 0x40000001, 0, EAX, 13),
	F("kvm_msi_ext_dest_id", 0x40000001, 0, EAX, 15),
	F("kvmclock_stable", 0x40000001, 0, EAX, 24),
};
#undef F
/* clang-format on */

/* Names the PVM profile hides. Only bits present in KVM_GET_SUPPORTED_CPUID take effect this
 * way on such hosts; the rest are hidden with guest kernel options (PVM_GUEST_OPTIONS in vm.c).
 * The kvm_pv_* features are the ones a guest uses through hypercalls: a VMCALL from the guest
 * kernel never completes on kvm_pvm (the vCPU stays on it), so PV IPIs, PV unhalt and PV yield
 * must not be offered. */
static const char *const pvm_hidden[] = {
	"cx16",
	"smap",
	"fsgsbase",
	"pcid",
	"invpcid",
	"erms",
	"fsrm",
	"xsave",
	"popcnt",
	"kvm_pv_send_ipi",
	"kvm_pv_sched_yield",
	"kvm_pv_unhalt",
};

static int name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
		if (x >= 'A' && x <= 'Z')
			x = (char)(x - 'A' + 'a');
		if (x != y)
			return 0;
	}
	return *a == *b;
}

const struct cpu_feature *cpuid_feature_lookup(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(features); i++)
		if (name_eq(name, features[i].name))
			return &features[i];
	return NULL;
}

void cpuid_feature_names(char *buf, size_t len)
{
	size_t off = 0;

	if (!len)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(features) && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s", i ? "," : "", features[i].name);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

int cpuid_parse_features(const char *list, struct cpu_feature_change *out, size_t max, char *err,
			 size_t errlen)
{
	char tmp[1024], *save = NULL, *tok;
	int n = 0;

	if (!list || strlen(list) >= sizeof(tmp)) {
		snprintf(err, errlen, "feature list missing or too long");
		return -EINVAL;
	}
	strcpy(tmp, list);
	for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool enable = true;
		const struct cpu_feature *f;

		if (*tok == '-' || *tok == '+') {
			enable = *tok == '+';
			tok++;
		}
		f = cpuid_feature_lookup(tok);
		if (!f) {
			snprintf(err, errlen,
				 "unknown CPU feature '%s' (see `vireo run --help` for names)",
				 tok);
			return -EINVAL;
		}
		if ((size_t)n >= max) {
			snprintf(err, errlen, "too many CPU feature changes (at most %zu)", max);
			return -EINVAL;
		}
		out[n].feature = f;
		out[n].enable = enable;
		n++;
	}
	if (n == 0) {
		snprintf(err, errlen, "empty CPU feature list");
		return -EINVAL;
	}
	return n;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *cpuid, uint32_t leaf, uint32_t subleaf)
{
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		if (e->function != leaf)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != subleaf)
			continue;
		return e;
	}
	return NULL;
}

static uint32_t *entry_reg(struct kvm_cpuid_entry2 *e, enum cpuid_reg r)
{
	switch (r) {
	case CPUID_EAX:
		return &e->eax;
	case CPUID_EBX:
		return &e->ebx;
	case CPUID_ECX:
		return &e->ecx;
	default:
		return &e->edx;
	}
}

static void apply_feature(struct kvm_cpuid2 *cpuid, const struct cpu_feature *f, bool enable)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(cpuid, f->leaf, f->subleaf);
	uint32_t *reg;

	if (!e)
		return;
	reg = entry_reg(e, f->reg);
	if (enable)
		*reg |= 1u << f->bit;
	else
		*reg &= ~(1u << f->bit);
}

static unsigned int order_base_2(unsigned int n)
{
	unsigned int s = 0;

	while ((1u << s) < n)
		s++;
	return s;
}

void cpuid_filter(struct kvm_cpuid2 *cpuid, const struct cpuid_params *p)
{
	unsigned int ncpus = p->ncpus ? p->ncpus : 1;
	unsigned int apic = p->vcpu_index;
	unsigned int core_shift = order_base_2(ncpus);

	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case 1:
			e->ebx &= 0x0000ffff;
			e->ebx |= apic << 24;
			e->ebx |= (1u << core_shift) << 16;
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: EBX[23:16] is valid */
			else
				e->edx &= ~(1u << 28);
			e->ecx |= 1u << 31; /* hypervisor */
			break;
		case 4:
			/* Cache leaves: one core per thread; the last level is shared by all. */
			e->eax &= 0x3ff;
			e->eax |= (ncpus - 1) << 26;
			if (((e->eax >> 5) & 7) >= 3)
				e->eax |= (ncpus - 1) << 14;
			break;
		case 0xb:
		case 0x1f:
			e->edx = apic;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = 1u << 8;
			} else if (e->index == 1) {
				e->eax = core_shift;
				e->ebx = ncpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = 0;
				e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x40000000:
			e->eax = MAX(e->eax, 0x40000001u);
			memcpy(&e->ebx, "KVMK", 4);
			memcpy(&e->ecx, "VMKV", 4);
			memcpy(&e->edx, "M\0\0\0", 4);
			break;
		case 0x80000008:
			e->ecx = (e->ecx & ~0xf0ffu) | (core_shift << 12) | (ncpus - 1);
			break;
		case 0x8000001e:
			e->eax = apic;
			e->ebx = apic & 0xff;
			e->ecx = 0;
			break;
		default:
			break;
		}
	}
	if (p->pvm_profile)
		for (size_t i = 0; i < ARRAY_SIZE(pvm_hidden); i++)
			apply_feature(cpuid, cpuid_feature_lookup(pvm_hidden[i]), false);
	for (size_t i = 0; i < p->nchanges; i++)
		apply_feature(cpuid, p->changes[i].feature, p->changes[i].enable);
}

uint64_t cpuid_fingerprint(const struct kvm_cpuid2 *cpuid)
{
	static const uint32_t leaves[] = { 0, 1, 7, 0xd, 0x80000001, 0x80000007, 0x80000008 };
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t l = 0; l < ARRAY_SIZE(leaves); l++) {
		for (uint32_t i = 0; i < cpuid->nent; i++) {
			const struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
			uint32_t w[5];

			if (e->function != leaves[l])
				continue;
			w[0] = e->index;
			w[1] = e->eax;
			/* Leaf 1 EBX carries the APIC ID, which differs per vCPU. */
			w[2] = e->function == 1 ? (e->ebx & 0xffff) : e->ebx;
			w[3] = e->ecx;
			w[4] = e->edx;
			for (size_t k = 0; k < 5; k++)
				for (int b = 0; b < 4; b++) {
					h ^= (w[k] >> (8 * b)) & 0xff;
					h *= 0x100000001b3ULL;
				}
		}
	}
	return h;
}
