/* SPDX-License-Identifier: MIT */
/* Live migration over TCP (protocol: docs/migration.md). The source side runs in its own thread,
 * started by the control socket's migrate command, while the guest keeps running; the
 * destination side is `vireo run --incoming tcp:HOST:PORT`. */
#ifndef VIREO_VMM_MIGRATE_H
#define VIREO_VMM_MIGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "migtls.h"

#define MIG_PROTOCOL_VERSION 1u
#define MIG_DEFAULT_MAX_DOWNTIME_MS 300
#define MIG_MAX_ROUNDS 30

struct vm;
struct vm_config;

enum mig_phase {
	MIG_NONE,
	MIG_SETUP, /* connecting, handshake, configuration */
	MIG_PRECOPY, /* copying memory while the guest runs */
	MIG_STOPCOPY, /* guest paused: last pages and device state */
	MIG_COMPLETED,
	MIG_FAILED,
	MIG_CANCELLED,
};

struct mig_status {
	enum mig_phase phase;
	unsigned int rounds;
	uint64_t ram_bytes;
	uint64_t transferred_bytes;
	uint64_t remaining_bytes; /* dirty at the end of the last round */
	uint64_t dirty_pages_per_s;
	double bandwidth_mib_s;
	double expected_downtime_ms;
	double downtime_ms; /* guest paused, once completed (or failed in stop-copy) */
	double total_ms;
	char error[256];
};

/* Per-VM migration state, embedded in struct vm. */
struct migration {
	pthread_mutex_t lock; /* protects status */
	struct mig_status status;
	pthread_t thread;
	bool thread_started;
	bool cancel;
	int fd;
	char host[256], port[16];
	unsigned int max_downtime_ms;
	struct mig_tls_opts tls;
};

const char *mig_phase_name(enum mig_phase p);
void migration_init(struct migration *m);
/* Starts migrating vm to uri ("tcp:HOST:PORT") over TLS with the credentials tls ("psk=FILE",
 * "x509=DIR"; NULL: the VM's --migration-tls), or over plain TCP when insecure. Returns 0 or
 * -errno with the reason in err (-EBUSY when one is already running, -EINVAL without
 * credentials and without insecure). */
int migration_start(struct vm *vm, const char *uri, unsigned int max_downtime_ms, const char *tls,
		    bool insecure, char *err, size_t errlen);
int migration_cancel(struct vm *vm);
void migration_get_status(struct vm *vm, struct mig_status *st);
/* True while the migration owns the pause state (stop-copy): pause, resume and snapshot wait. */
bool migration_busy(struct vm *vm);
/* Joins the thread at VM teardown. */
void migration_finish(struct vm *vm);

/* Destination: waits on cfg->incoming for a source, authenticates it (--migration-tls; plain
 * TCP with --insecure-migration), takes its configuration into cfg and returns the connection
 * in ch. A peer that fails the TLS handshake or does not start with the protocol's greeting is
 * dropped and the wait goes on. Returns 0 or -errno. */
int migration_incoming_accept(struct vm_config *cfg, uint64_t *cpuid_fingerprint,
			      struct mig_chan *ch);
/* The handshake on one connection that is already authenticated (START, then CONFIG into cfg).
 * Returns 0, -EPROTO for a peer that is not a vireo source, or another -errno. Exposed for the
 * fuzzer, which feeds it a socketpair as a plain-TCP channel. */
int migration_incoming_handshake(struct mig_chan *ch, struct vm_config *cfg,
				 uint64_t *cpuid_fingerprint);
/* Destination, after vm_create: receives memory and state into vm, loads it and acknowledges.
 * Returns 0 (the guest can run) or -errno after telling the source. Closes ch. */
int migration_incoming_receive(struct vm *vm, struct mig_chan *ch, uint64_t cpuid_fingerprint);

#endif
