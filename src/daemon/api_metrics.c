// SPDX-License-Identifier: MIT
/*
 * /api/v1/metrics (and /metrics): Prometheus text format 0.0.4. Base units (seconds, bytes),
 * counters end in _total, facts are _info gauges of 1, states are one-hot (every state listed,
 * the current one 1). All samples of a family are written together, as the format requires.
 *
 * Per VM, from supervisor_metrics(): [{"id","name","state","stats":null|{"cpu_seconds",
 * "rss_bytes","balloon":null|{the VMM's balloon-stats: "actual_mib",...},"block":null|[{"disk",
 * "read_bytes","write_bytes","read_ops","write_ops"}],"net":null|[{the VMM's net-info: "nic",
 * "rx_frames","tx_frames",... and "rx_bytes","tx_bytes" once it counts them}]}}]. Series whose
 * numbers the VMM does not report are left out rather than shown as 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api_int.h"
#include "common/util.h"
#include "http.h"
#include "supervisor.h"

static const char *str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return NULL;
	return json_object_get_string(v);
}

/* A number member, or NULL when absent or not a number. */
static json_object *num(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return NULL;
	return v;
}

/* A label value with \, " and newlines escaped. */
static void label(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void vm_labels(FILE *f, json_object *vm)
{
	fputs("id=\"", f);
	label(f, str(vm, "id"));
	fputs("\",name=\"", f);
	label(f, str(vm, "name"));
	fputc('"', f);
}

static void value(FILE *f, json_object *v)
{
	if (json_object_is_type(v, json_type_double))
		fprintf(f, " %.9g\n", json_object_get_double(v));
	else
		fprintf(f, " %lld\n", (long long)json_object_get_int64(v));
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The first of two member names that is a number (the VMM's name and the design's). */
static json_object *num2(json_object *o, const char *key, const char *alt)
{
	json_object *v = num(o, key);

	return v || !alt ? v : num(o, alt);
}

/* One family of per-VM scalars: stats member `key` of every VM that reports it. */
static void vm_scalar(FILE *f, json_object *vms, const char *name, const char *type,
		      const char *help, const char *obj, const char *key)
{
	family(f, name, type, help);
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i), *st = NULL, *v;

		json_object_object_get_ex(vm, "stats", &st);
		if (st && obj && !json_object_object_get_ex(st, obj, &st))
			st = NULL;
		v = num(st, key);
		if (!v)
			continue;
		fprintf(f, "%s{", name);
		vm_labels(f, vm);
		fputc('}', f);
		value(f, v);
	}
}

/* One family of per-device counters: stats[list][*][key], labelled by dev_label. */
static void vm_devices(FILE *f, json_object *vms, const char *name, const char *help,
		       const char *list, const char *dev_label, const char *key, const char *alt)
{
	family(f, name, "counter", help);
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i), *st = NULL, *arr = NULL;

		json_object_object_get_ex(vm, "stats", &st);
		if (!st || !json_object_object_get_ex(st, list, &arr) ||
		    !json_object_is_type(arr, json_type_array))
			continue;
		for (size_t d = 0; d < json_object_array_length(arr); d++) {
			json_object *dev = json_object_array_get_idx(arr, d);
			json_object *v = num2(dev, key, alt);

			if (!v)
				continue;
			fprintf(f, "%s{", name);
			vm_labels(f, vm);
			fprintf(f, ",%s=\"", dev_label);
			label(f, str(dev, dev_label));
			fputs("\"}", f);
			value(f, v);
		}
	}
}

/* The balloon's size: the VMM reports it in MiB (actual_mib). */
static void vm_balloon(FILE *f, json_object *vms)
{
	family(f, "vireo_vm_balloon_bytes", "gauge", "Guest memory held by the virtio balloon.");
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i), *st = NULL, *b = NULL, *v;

		json_object_object_get_ex(vm, "stats", &st);
		if (!st || !json_object_object_get_ex(st, "balloon", &b) ||
		    !json_object_is_type(b, json_type_object))
			continue;
		fputs("vireo_vm_balloon_bytes{", f);
		vm_labels(f, vm);
		if ((v = num(b, "actual_bytes")))
			fprintf(f, "} %lld\n", (long long)json_object_get_int64(v));
		else if ((v = num(b, "actual_mib")))
			fprintf(f, "} %lld\n", (long long)json_object_get_int64(v) * 1048576LL);
		else
			fputs("} 0\n", f);
	}
}

static void vm_metrics(FILE *f, json_object *vms)
{
	family(f, "vireo_vm_info", "gauge", "A VM defined on this host (always 1).");
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		fputs("vireo_vm_info{", f);
		vm_labels(f, json_object_array_get_idx(vms, i));
		fputs("} 1\n", f);
	}
	family(f, "vireo_vm_state", "gauge", "The VM's state, one-hot over every state.");
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *cur = str(vm, "state");

		for (size_t s = 0; s < SUPERVISOR_NSTATES; s++) {
			fputs("vireo_vm_state{", f);
			vm_labels(f, vm);
			fprintf(f, ",state=\"%s\"} %d\n", supervisor_states[s],
				cur && !strcmp(cur, supervisor_states[s]));
		}
	}
	vm_scalar(f, vms, "vireo_vm_cpu_seconds_total", "counter",
		  "CPU time used by the VM's VMM process (user + system).", NULL, "cpu_seconds");
	vm_scalar(f, vms, "vireo_vm_memory_rss_bytes", "gauge",
		  "Resident memory of the VM's VMM process.", NULL, "rss_bytes");
	vm_balloon(f, vms);
	vm_devices(f, vms, "vireo_vm_block_read_bytes_total", "Bytes read by the guest per disk.",
		   "block", "disk", "read_bytes", NULL);
	vm_devices(f, vms, "vireo_vm_block_write_bytes_total",
		   "Bytes written by the guest per disk.", "block", "disk", "write_bytes", NULL);
	vm_devices(f, vms, "vireo_vm_block_read_ops_total", "Read requests per disk.", "block",
		   "disk", "read_ops", NULL);
	vm_devices(f, vms, "vireo_vm_block_write_ops_total", "Write requests per disk.", "block",
		   "disk", "write_ops", NULL);
	vm_devices(f, vms, "vireo_vm_net_rx_bytes_total", "Bytes received by the guest per NIC.",
		   "net", "nic", "rx_bytes", NULL);
	vm_devices(f, vms, "vireo_vm_net_tx_bytes_total", "Bytes sent by the guest per NIC.", "net",
		   "nic", "tx_bytes", NULL);
	vm_devices(f, vms, "vireo_vm_net_rx_packets_total",
		   "Packets received by the guest per NIC.", "net", "nic", "rx_packets",
		   "rx_frames");
	vm_devices(f, vms, "vireo_vm_net_tx_packets_total", "Packets sent by the guest per NIC.",
		   "net", "nic", "tx_packets", "tx_frames");
}

static void host_metrics(FILE *f, json_object *vms)
{
	static const char *const classes[] = { "0xx", "1xx", "2xx", "3xx", "4xx", "5xx" };
	uint64_t total, avail, codes[6];
	json_object *sum = NULL, *committed = NULL;

	family(f, "vireo_host_vms", "gauge", "VMs on this host by state.");
	for (size_t s = 0; s < SUPERVISOR_NSTATES; s++) {
		int n = 0;

		for (size_t i = 0; i < json_object_array_length(vms); i++) {
			const char *cur = str(json_object_array_get_idx(vms, i), "state");

			n += cur && !strcmp(cur, supervisor_states[s]);
		}
		fprintf(f, "vireo_host_vms{state=\"%s\"} %d\n", supervisor_states[s], n);
	}
	if (supervisor_default() && !supervisor_host_summary(supervisor_default(), &sum))
		committed = num(sum, "memory_committed_bytes");
	family(f, "vireo_host_memory_committed_bytes", "gauge",
	       "Guest memory of the VMs that have a VMM process.");
	fprintf(f, "vireo_host_memory_committed_bytes %lld\n",
		committed ? (long long)json_object_get_int64(committed) : 0LL);
	json_object_put(sum);
	host_meminfo(&total, &avail);
	family(f, "vireo_host_memory_available_bytes", "gauge",
	       "Memory available for new work (MemAvailable).");
	fprintf(f, "vireo_host_memory_available_bytes %llu\n", (unsigned long long)avail);
	family(f, "vireo_host_memory_total_bytes", "gauge", "Physical memory (MemTotal).");
	fprintf(f, "vireo_host_memory_total_bytes %llu\n", (unsigned long long)total);
	family(f, "vireod_info", "gauge", "The daemon's version (always 1).");
	fprintf(f, "vireod_info{version=\"%s\"} 1\n", VIREO_VERSION);
	http_requests_by_code(codes);
	family(f, "vireod_http_requests_total", "counter",
	       "API requests answered, by status class.");
	for (int c = 1; c < 6; c++)
		fprintf(f, "vireod_http_requests_total{code=\"%s\"} %llu\n", classes[c],
			(unsigned long long)codes[c]);
}

static void metrics_get(struct http_req *req, struct http_resp *resp)
{
	json_object *vms = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)req;
	if (!supervisor_default() || supervisor_metrics(supervisor_default(), &vms)) {
		json_object_put(vms);
		vms = json_object_new_array();
	}
	f = open_memstream(&buf, &len);
	if (!f) {
		json_object_put(vms);
		http_errno(resp, -ENOMEM, NULL);
		return;
	}
	vm_metrics(f, vms);
	host_metrics(f, vms);
	fclose(f);
	json_object_put(vms);
	resp->text = buf;
	resp->text_len = len;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	resp->kind = HTTP_BODY_TEXT;
	resp->status = 200;
}

const struct http_route api_metrics_routes[] = {
	{ "GET", "/metrics", ROLE_VIEWER, metrics_get },
	{ NULL, NULL, ROLE_NONE, NULL },
};
