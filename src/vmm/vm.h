/* SPDX-License-Identifier: MIT */
/* One virtual machine: the KVM VM, its RAM, devices and vCPUs, and the reason it stopped. */
#ifndef VIREO_VMM_VM_H
#define VIREO_VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "../devices/bus.h"
#include "../devices/pci.h"
#include "../devices/platform.h"
#include "../devices/rtc.h"
#include "../devices/serial8250.h"
#include "../mem/memory.h"
#include "../virtio/pci.h"
#include "config.h"
#include "console.h"
#include "migrate.h"
#include "vmio.h"

struct vcpu;

/* Exit statuses of `vireo run` (documented in --help). */
#define EXIT_GUEST_OFF 0
#define EXIT_ERROR 1
#define EXIT_USAGE 2
#define EXIT_GUEST_CRASH 3
#define EXIT_TIMEOUT 124

enum stop_reason {
	STOP_NONE,
	STOP_POWEROFF,
	STOP_REBOOT,
	STOP_CRASH,
	STOP_ERROR,
	STOP_TIMEOUT,
	STOP_SIGNAL,
	STOP_USER, /* console escape */
	STOP_PAYLOAD_EXIT,
	STOP_MIGRATED, /* the guest now runs on the migration destination */
};

enum vm_state {
	VM_RUNNING,
	VM_PAUSED,
	VM_STOPPING
};

struct vm_status {
	enum vm_state state;
	unsigned int vcpus;
	uint64_t memory_mib;
	uint64_t uptime_ms;
	uint64_t exits;
	bool pvm_profile;
};

/* One entry of the device registry: what snapshots save and load, in this order. */
struct vm_device {
	const struct device_ops *ops;
	void *dev;
	uint32_t instance;
};

#define VM_MAX_DEVICES 32
struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;
	bool pvm_host; /* detected kvm_pvm */
	bool pvm_profile; /* workarounds applied */
	struct guest_mem mem;
	struct kvm_cpuid2 *supported_cpuid;
	uint64_t cpuid_fingerprint; /* of the CPUID vCPU 0 sees */
	uint32_t tsc_khz; /* vCPU 0's TSC frequency, 0 if unknown */
	uint64_t load_advance_ns; /* while loading state: how far the guest's clocks move on */
	unsigned int max_vcpus;
	struct vcpu *vcpus;
	unsigned int nvcpus;

	struct bus pio;
	struct bus mmio;
	struct serial8250 com1;
	struct rtc rtc;
	struct platform platform;
	struct pci_bus pci;
	struct console console;
	struct vm_device devices[VM_MAX_DEVICES];
	unsigned int ndevices;
	/* RAM came from a snapshot's memory file (MAP_PRIVATE), not from zero. */
	bool ram_from_file;

	/* Stop handshake: the first stop request wins; the main loop is woken by stop_fd. */
	int stop_fd;
	/* Written by the UART (any vCPU thread) when its receive FIFO has room again; read by the
	 * main loop, which then offers the console input it holds back. */
	int rx_space_fd;
	enum stop_reason stop_reason;
	int exit_status;
	bool stopping;
	pthread_t profiler;
	bool profiler_started;

	/* Pause: vCPU threads park on pause_cond between KVM_RUN calls while paused is set. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	bool paused;
	unsigned int parked;
	/* Graceful stop: the power button was pressed; hard stop when this timer fires. */
	int stop_deadline_fd;
	unsigned int stop_timeout_s;
	struct migration migration;

	/* vmio.c: KVM's GSI routing table, kept here whole because KVM_SET_GSI_ROUTING replaces
	 * it; MSI routes are added and changed by devices from any thread. */
	pthread_mutex_t irq_lock;
	struct kvm_irq_routing_entry routes[VM_MAX_ROUTES];
	unsigned int nroutes;
	uint32_t next_msi_gsi;
	/* routes differs from what KVM has: vm_msi_route changed it, vm_msi_commit sends it. */
	bool routes_dirty;
	unsigned long routing_sets; /* KVM_SET_GSI_ROUTING calls made */
	/* Device fds the main loop watches: their own epoll set, itself watched by vm_run.
	 * watch_lock guards the table: devices may (un)watch from vCPU threads. */
	int watch_ep;
	pthread_mutex_t watch_lock;
	struct vm_watch watches[VM_MAX_WATCHES];
	struct virtio_pci_host virtio_host;
	struct virtio_pci *virtio_rng;
	struct virtio_pci *virtio_console;
	struct virtio_pci *virtio_balloon;
	struct virtio_pci *virtio_vsock;
	struct virtio_pci *virtio_blk[VM_MAX_DISKS];
	unsigned int ndisks;
	struct virtio_pci *virtio_net[NET_MAX_NICS];
	unsigned int nnet;
};

/* Builds the machine from cfg: KVM, RAM, devices, guest image, vCPUs. Returns 0 or -errno after
 * printing why. */
int vm_create(struct vm *vm, const struct vm_config *cfg);
void vm_destroy(struct vm *vm);
/* Called from any thread: ends the VM with this reason and status (first caller wins). */
void vm_request_stop(struct vm *vm, enum stop_reason reason, int status);
/* Control operations, called from the main loop's thread. Return 0 or -errno. */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
/* timeout_s 0: stop now. Otherwise press the ACPI power button and stop hard if the guest has
 * not powered off after timeout_s seconds. */
int vm_stop(struct vm *vm, unsigned int timeout_s);
void vm_get_status(struct vm *vm, struct vm_status *st);

/* (Re)registers guest RAM with KVM, with or without KVM's dirty page log. */
int vm_set_memory_slots(struct vm *vm, bool log_dirty);

/* Gives every vCPU this TSC frequency when KVM can scale the TSC (restore and migration to a
 * host with another frequency); warns when it cannot. */
void vm_set_tsc_khz(struct vm *vm, uint32_t khz);

/* Logs (at debug level) the wall and CPU time from process start to the first KVM_RUN. */
void vm_note_first_run(struct vm *vm);
/* CLOCK_MONOTONIC at process start, set by main. */
extern uint64_t vmm_start_ns;

#endif
