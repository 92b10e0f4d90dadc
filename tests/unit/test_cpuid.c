// SPDX-License-Identifier: MIT
/* Unit tests for src/vmm/cpuid.c: filtering a fake KVM_GET_SUPPORTED_CPUID result, feature
 * names, and the fingerprint. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "vmm/cpuid.h"

#define MAX_ENTRIES 32

#define L1_EBX_INIT 0x07010800u /* APIC ID 7, 1 logical CPU, CLFLUSH size 8, brand 0 */
#define L1_ECX_INIT ((1u << 0) | (1u << 13) | (1u << 20) | (1u << 23))
#define L1_EDX_INIT ((1u << 0) | (1u << 4) | (1u << 9) | (1u << 25) | (1u << 26))
#define L7_EBX_INIT ((1u << 0) | (1u << 5) | (1u << 7) | (1u << 20))
#define L4_LOW(level, type) (((level) << 5) | (1u << 8) | (type)) /* self-initialising */

static struct kvm_cpuid2 *cpuid_new(void)
{
	return calloc(1, sizeof(struct kvm_cpuid2) + MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
}

static void add(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx, uint32_t flags, uint32_t eax,
		uint32_t ebx, uint32_t ecx, uint32_t edx)
{
	struct kvm_cpuid_entry2 *e;

	assert_true(c->nent < MAX_ENTRIES);
	e = &c->entries[c->nent++];
	e->function = fn;
	e->index = idx;
	e->flags = flags;
	e->eax = eax;
	e->ebx = ebx;
	e->ecx = ecx;
	e->edx = edx;
}

/* Roughly what KVM reports on an Intel host, with garbage in the fields the filter rewrites. */
static struct kvm_cpuid2 *fake_cpuid(void)
{
	struct kvm_cpuid2 *c = cpuid_new();
	const uint32_t sig = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

	assert_non_null(c);
	add(c, 0, 0, 0, 0x16, 0x756e6547, 0x6c65746e, 0x49656e69); /* GenuineIntel */
	add(c, 1, 0, 0, 0x000906ea, L1_EBX_INIT, L1_ECX_INIT, L1_EDX_INIT);
	/* Cache leaves, with bits 31:14 set to garbage the filter must replace. */
	add(c, 4, 0, sig, 0xfffc0000u | L4_LOW(1u, 1u), 0x01c0003f, 0x3f, 0);
	add(c, 4, 1, sig, 0xfffc0000u | L4_LOW(1u, 2u), 0x01c0003f, 0x3f, 0);
	add(c, 4, 2, sig, 0xfffc0000u | L4_LOW(2u, 3u), 0x01c0003f, 0x3ff, 0);
	add(c, 4, 3, sig, 0xfffc0000u | L4_LOW(3u, 3u), 0x03c0003f, 0x3fff, 0);
	add(c, 7, 0, sig, 0, L7_EBX_INIT, 0, 0);
	add(c, 0xb, 0, sig, 0x55, 0x55, 0x55, 0x55);
	add(c, 0xb, 1, sig, 0x55, 0x55, 0x55, 0x55);
	add(c, 0xb, 2, sig, 0x55, 0x55, 0x55, 0x55);
	add(c, 0x40000000, 0, 0, 0, 0, 0, 0);
	add(c, 0x40000001, 0, 0, (1u << 0) | (1u << 3) | (1u << 24), 0, 0, 0);
	add(c, 0x80000001, 0, 0, 0, 0, 1u << 0, (1u << 11) | (1u << 20) | (1u << 29));
	add(c, 0x80000008, 0, 0, 0x3027, 0, 0x0000f0ffu | 0x10000u, 0);
	add(c, 0x8000001e, 0, 0, 0x77, 0x77, 0x77, 0);
	return c;
}

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(c, leaf, subleaf);

	if (!e)
		fail_msg("leaf %#x.%u missing", leaf, subleaf);
	return e;
}

static void filter(struct kvm_cpuid2 *c, unsigned int ncpus, unsigned int index, bool pvm,
		   const struct cpu_feature_change *changes, size_t nchanges)
{
	struct cpuid_params p = {
		.ncpus = ncpus,
		.vcpu_index = index,
		.changes = changes,
		.nchanges = nchanges,
		.pvm_profile = pvm,
	};

	cpuid_filter(c, &p);
}

static void test_find(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	struct kvm_cpuid_entry2 *e;

	(void)state;
	e = cpuid_find(c, 4, 2);
	assert_non_null(e);
	assert_int_equal(e->function, 4);
	assert_int_equal(e->index, 2);
	/* Leaf 1 has no significant index: any subleaf finds it. */
	e = cpuid_find(c, 1, 5);
	assert_non_null(e);
	assert_int_equal(e->function, 1);
	assert_null(cpuid_find(c, 4, 9));
	assert_null(cpuid_find(c, 0xd, 0));
	free(c);
}

static void test_leaf1_topology(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	struct kvm_cpuid_entry2 *e;

	(void)state;
	filter(c, 4, 2, false, NULL, 0);
	e = find(c, 1, 0);
	assert_int_equal(e->ebx >> 24, 2); /* initial APIC ID */
	assert_int_equal((e->ebx >> 16) & 0xff, 4); /* logical processors */
	assert_int_equal(e->ebx & 0xffff, 0x0800); /* CLFLUSH size kept */
	assert_true(e->edx & (1u << 28)); /* HTT */
	assert_true(e->ecx & (1u << 31)); /* hypervisor */
	assert_int_equal(e->ecx & ~(1u << 31), L1_ECX_INIT);
	assert_int_equal(e->edx & ~(1u << 28), L1_EDX_INIT);
	assert_int_equal(e->eax, 0x000906ea);
	free(c);
}

static void test_leaf1_single_cpu(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	struct kvm_cpuid_entry2 *e;

	(void)state;
	find(c, 1, 0)->edx |= 1u << 28;
	filter(c, 1, 0, false, NULL, 0);
	e = find(c, 1, 0);
	assert_int_equal(e->ebx >> 24, 0);
	assert_int_equal((e->ebx >> 16) & 0xff, 1);
	assert_false(e->edx & (1u << 28));
	assert_true(e->ecx & (1u << 31));
	assert_int_equal(find(c, 0xb, 1)->ebx, 1);
	assert_int_equal(find(c, 0xb, 1)->eax, 0);
	assert_int_equal(find(c, 0x80000008, 0)->ecx & 0xff, 0);
	free(c);
}

static void test_leaf1_non_power_of_two(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();

	(void)state;
	filter(c, 3, 1, false, NULL, 0);
	/* 3 CPUs need 2 bits of APIC ID: the addressable count rounds up to 4. */
	assert_int_equal((find(c, 1, 0)->ebx >> 16) & 0xff, 4);
	assert_int_equal(find(c, 1, 0)->ebx >> 24, 1);
	assert_int_equal(find(c, 0xb, 1)->eax, 2);
	assert_int_equal(find(c, 0xb, 1)->ebx, 3);
	free(c);
}

static void test_leaf4_cache_topology(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();

	(void)state;
	filter(c, 4, 2, false, NULL, 0);
	for (uint32_t i = 0; i < 4; i++) {
		struct kvm_cpuid_entry2 *e = find(c, 4, i);
		uint32_t level = (e->eax >> 5) & 7;

		assert_int_equal(e->eax >> 26, 3); /* cores per package - 1 */
		assert_int_equal(e->eax & 0x3ff, L4_LOW(level, i == 0 ? 1u : i == 1 ? 2u : 3u));
		/* Threads sharing: only the last level (L3) is shared by all four. */
		if (level >= 3)
			assert_int_equal((e->eax >> 14) & 0xfff, 3);
		else
			assert_int_equal((e->eax >> 14) & 0xfff, 0);
	}
	assert_int_equal((find(c, 4, 0)->eax >> 5) & 7, 1);
	assert_int_equal((find(c, 4, 3)->eax >> 5) & 7, 3);
	free(c);
}

static void test_leaf_b_topology(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	struct kvm_cpuid_entry2 *e;

	(void)state;
	filter(c, 4, 2, false, NULL, 0);
	e = find(c, 0xb, 0); /* SMT level: one thread per core */
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ebx, 1);
	assert_int_equal(e->ecx, 0x100);
	assert_int_equal(e->edx, 2);
	e = find(c, 0xb, 1); /* core level */
	assert_int_equal(e->eax, 2);
	assert_int_equal(e->ebx, 4);
	assert_int_equal(e->ecx, 0x201);
	assert_int_equal(e->edx, 2);
	e = find(c, 0xb, 2); /* invalid level terminates the list */
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ebx, 0);
	assert_int_equal(e->ecx & 0xff00, 0);
	assert_int_equal(e->ecx & 0xff, 2);
	assert_int_equal(e->edx, 2);
	free(c);
}

static void test_kvm_and_amd_leaves(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	struct kvm_cpuid_entry2 *e;
	char sig[12];

	(void)state;
	filter(c, 4, 2, false, NULL, 0);
	e = find(c, 0x40000000, 0);
	memcpy(sig, &e->ebx, 4);
	memcpy(sig + 4, &e->ecx, 4);
	memcpy(sig + 8, &e->edx, 4);
	assert_memory_equal(sig, "KVMKVMKVM\0\0\0", 12);
	assert_true(e->eax >= 0x40000001);
	/* KVM features are left as reported. */
	assert_int_equal(find(c, 0x40000001, 0)->eax, (1u << 0) | (1u << 3) | (1u << 24));

	e = find(c, 0x80000008, 0);
	assert_int_equal(e->ecx & 0xff, 3); /* NC: cores - 1 */
	assert_int_equal((e->ecx >> 12) & 0xf, 2); /* ApicIdSize */
	assert_int_equal(e->ecx & ~0xf0ffu, 0x10000u); /* other bits kept */
	assert_int_equal(e->eax, 0x3027);

	e = find(c, 0x8000001e, 0);
	assert_int_equal(e->eax, 2);
	assert_int_equal(e->ebx & 0xff, 2);
	assert_int_equal(e->ecx, 0);
	free(c);
}

static void test_pvm_profile(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();

	(void)state;
	filter(c, 2, 0, true, NULL, 0);
	assert_false(find(c, 1, 0)->ecx & (1u << 13)); /* cx16 */
	assert_false(find(c, 1, 0)->ecx & (1u << 23)); /* popcnt */
	assert_false(find(c, 7, 0)->ebx & (1u << 20)); /* smap */
	assert_false(find(c, 7, 0)->ebx & (1u << 0)); /* fsgsbase */
	/* Others untouched. */
	assert_true(find(c, 1, 0)->ecx & (1u << 20)); /* sse4_2 */
	assert_true(find(c, 7, 0)->ebx & (1u << 5)); /* avx2 */
	assert_true(find(c, 7, 0)->ebx & (1u << 7)); /* smep */
	free(c);

	/* Without the profile nothing is hidden. */
	c = fake_cpuid();
	filter(c, 2, 0, false, NULL, 0);
	assert_true(find(c, 1, 0)->ecx & (1u << 13));
	assert_true(find(c, 7, 0)->ebx & (1u << 20));
	free(c);
}

static void test_user_changes_after_profile(void **state)
{
	struct kvm_cpuid2 *c = fake_cpuid();
	struct cpu_feature_change ch[8];
	char err[128];
	int n;

	(void)state;
	n = cpuid_parse_features("+cx16,-avx2,x2apic,-lm,+xsaveopt", ch, ARRAY_SIZE(ch), err,
				 sizeof(err));
	assert_int_equal(n, 5);
	filter(c, 4, 1, true, ch, (size_t)n);
	assert_true(find(c, 1, 0)->ecx & (1u << 13)); /* cx16 re-enabled */
	assert_false(find(c, 7, 0)->ebx & (1u << 20)); /* smap still hidden */
	assert_false(find(c, 7, 0)->ebx & (1u << 5)); /* avx2 cleared */
	assert_true(find(c, 1, 0)->ecx & (1u << 21)); /* x2apic set although not reported */
	assert_false(find(c, 0x80000001, 0)->edx & (1u << 29)); /* lm cleared */
	assert_true(find(c, 0x80000001, 0)->edx & (1u << 20)); /* nx kept */
	/* xsaveopt lives in leaf 0xd, which is absent: nothing is added. */
	assert_null(cpuid_find(c, 0xd, 1));
	free(c);
}

static void test_parse_features(void **state)
{
	struct cpu_feature_change ch[4];
	char err[128];

	(void)state;
	assert_int_equal(cpuid_parse_features("-smap,-pcid,+x2apic", ch, 4, err, sizeof(err)), 3);
	assert_string_equal(ch[0].feature->name, "smap");
	assert_false(ch[0].enable);
	assert_string_equal(ch[1].feature->name, "pcid");
	assert_false(ch[1].enable);
	assert_string_equal(ch[2].feature->name, "x2apic");
	assert_true(ch[2].enable);
	assert_int_equal(cpuid_parse_features("avx", ch, 4, err, sizeof(err)), 1);
	assert_true(ch[0].enable);

	err[0] = '\0';
	assert_int_equal(cpuid_parse_features("-smap,-bogus", ch, 4, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'bogus'"));
	err[0] = '\0';
	assert_int_equal(cpuid_parse_features("", ch, 4, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(cpuid_parse_features(",,", ch, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(cpuid_parse_features("-", ch, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(cpuid_parse_features("+-smap", ch, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(cpuid_parse_features(NULL, ch, 4, err, sizeof(err)), -EINVAL);
	err[0] = '\0';
	assert_int_equal(cpuid_parse_features("sse,sse2,sse3", ch, 2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many"));
}

static void test_parse_features_too_long(void **state)
{
	struct cpu_feature_change ch[4];
	char list[1100];
	char err[128];

	(void)state;
	memset(list, 'a', sizeof(list) - 1);
	list[sizeof(list) - 1] = '\0';
	err[0] = '\0';
	assert_int_equal(cpuid_parse_features(list, ch, 4, err, sizeof(err)), -EINVAL);
	assert_true(strlen(err) > 0);
}

static void test_feature_lookup(void **state)
{
	const struct cpu_feature *f;

	(void)state;
	f = cpuid_feature_lookup("sse4_2");
	assert_non_null(f);
	assert_int_equal(f->leaf, 1);
	assert_int_equal(f->reg, CPUID_ECX);
	assert_int_equal(f->bit, 20);
	assert_ptr_equal(cpuid_feature_lookup("sse4-2"), f);
	assert_ptr_equal(cpuid_feature_lookup("SSE4_2"), f);
	assert_ptr_equal(cpuid_feature_lookup("Sse4-2"), f);
	assert_null(cpuid_feature_lookup("sse4"));
	assert_null(cpuid_feature_lookup("sse4_22"));
	assert_null(cpuid_feature_lookup(""));

	f = cpuid_feature_lookup("smap");
	assert_non_null(f);
	assert_int_equal(f->leaf, 7);
	assert_int_equal(f->reg, CPUID_EBX);
	assert_int_equal(f->bit, 20);
	f = cpuid_feature_lookup("tsc-deadline-timer");
	assert_non_null(f);
	assert_int_equal(f->bit, 24);
	f = cpuid_feature_lookup("lm");
	assert_non_null(f);
	assert_int_equal(f->leaf, 0x80000001);
	assert_int_equal(f->reg, CPUID_EDX);
	assert_int_equal(f->bit, 29);
}

static void test_feature_names(void **state)
{
	char buf[4096];
	char small[10];

	(void)state;
	cpuid_feature_names(buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "sse3,", 5), 0);
	assert_non_null(strstr(buf, ",smap,"));
	assert_non_null(strstr(buf, ",x2apic,"));
	memset(small, 'x', sizeof(small));
	cpuid_feature_names(small, sizeof(small));
	assert_true(memchr(small, '\0', sizeof(small)) != NULL);
	assert_int_equal(strncmp(small, "sse3,", 5), 0);
}

static void test_fingerprint(void **state)
{
	struct kvm_cpuid2 *a = fake_cpuid(), *b = fake_cpuid(), *c = fake_cpuid();
	struct cpu_feature_change ch;

	(void)state;
	filter(a, 4, 0, false, NULL, 0);
	filter(b, 4, 3, false, NULL, 0);
	assert_true(cpuid_fingerprint(a) == cpuid_fingerprint(b));
	ch.feature = cpuid_feature_lookup("avx2");
	ch.enable = false;
	filter(c, 4, 0, false, &ch, 1);
	assert_true(cpuid_fingerprint(a) != cpuid_fingerprint(c));
	/* One bit in an extended leaf changes it too. */
	find(b, 0x80000001, 0)->ecx ^= 1u << 5;
	assert_true(cpuid_fingerprint(a) != cpuid_fingerprint(b));
	free(a);
	free(b);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_leaf1_topology),
		cmocka_unit_test(test_leaf1_single_cpu),
		cmocka_unit_test(test_leaf1_non_power_of_two),
		cmocka_unit_test(test_leaf4_cache_topology),
		cmocka_unit_test(test_leaf_b_topology),
		cmocka_unit_test(test_kvm_and_amd_leaves),
		cmocka_unit_test(test_pvm_profile),
		cmocka_unit_test(test_user_changes_after_profile),
		cmocka_unit_test(test_parse_features),
		cmocka_unit_test(test_parse_features_too_long),
		cmocka_unit_test(test_feature_lookup),
		cmocka_unit_test(test_feature_names),
		cmocka_unit_test(test_fingerprint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
