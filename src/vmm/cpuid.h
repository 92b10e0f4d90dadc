/* SPDX-License-Identifier: MIT */
/* Guest CPUID: filtering of KVM_GET_SUPPORTED_CPUID, topology, feature masks by name. */
#ifndef VIREO_VMM_CPUID_H
#define VIREO_VMM_CPUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

enum cpuid_reg {
	CPUID_EAX,
	CPUID_EBX,
	CPUID_ECX,
	CPUID_EDX
};

struct cpu_feature {
	const char *name;
	uint32_t leaf;
	uint32_t subleaf;
	enum cpuid_reg reg;
	uint8_t bit;
};

/* One requested change from --cpu-features: "+name" or "name" sets, "-name" clears. */
struct cpu_feature_change {
	const struct cpu_feature *feature;
	bool enable;
};

#define CPUID_MAX_CHANGES 64

/* Looks a feature up by its /proc/cpuinfo-style name ("smap", "sse4_2"; '-' and '_' equal). */
const struct cpu_feature *cpuid_feature_lookup(const char *name);
/* Parses "-smap,-pcid,+x2apic" into changes. Returns count or -EINVAL with a message in err. */
int cpuid_parse_features(const char *list, struct cpu_feature_change *out, size_t max, char *err,
			 size_t errlen);
/* Writes the list of known feature names, comma separated, for --help and error messages. */
void cpuid_feature_names(char *buf, size_t len);

struct cpuid_params {
	unsigned int ncpus;
	unsigned int vcpu_index; /* this vCPU; also its APIC ID */
	const struct cpu_feature_change *changes;
	size_t nchanges;
	bool pvm_profile; /* hide what the PVM host emulator cannot run (see DESIGN.md) */
};

/* Rewrites the entries reported by KVM_GET_SUPPORTED_CPUID (in place) into what one vCPU sees:
 * APIC IDs and topology for params->ncpus single-threaded cores in one package, the KVM
 * paravirt leaves, the hypervisor bit, then the PVM profile and the user's changes. "Set" of a
 * bit the host does not support is still applied: the user asked for it. */
void cpuid_filter(struct kvm_cpuid2 *cpuid, const struct cpuid_params *params);

/* Finds an entry (subleaf ignored for leaves without KVM_CPUID_FLAG_SIGNIFCANT_INDEX). */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *cpuid, uint32_t leaf, uint32_t subleaf);

/* Hash of the feature-relevant CPUID words, to tell hosts apart (snapshots, migration). */
uint64_t cpuid_fingerprint(const struct kvm_cpuid2 *cpuid);

#endif
