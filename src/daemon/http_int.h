/* SPDX-License-Identifier: MIT */
/* Shared between the files of the HTTP module (http.c, http_tls.c, http_ws.c); not for others. */
#ifndef VIREO_DAEMON_HTTP_INT_H
#define VIREO_DAEMON_HTTP_INT_H

#include <stddef.h>

struct MHD_Connection;
struct MHD_Response;

/* Loads the PEM key and certificate, or (both paths NULL) reads or creates a self-signed pair
 * under <state_dir>/tls/ (key 0600). *key and *cert are malloc'd NUL-terminated PEM text. */
int http_tls_load(const char *state_dir, const char *cert_path, const char *key_path, char **cert,
		  char **key);

/* Checks the websocket handshake headers of conn, opens a viewer of VM vm_id's console into
 * *slot and builds the 101 response that hands the connection to it. The upgrade handler takes
 * the viewer out of *slot (sets it NULL); whoever owns slot closes a viewer still there when
 * the connection ends (the 101 never went out). Returns NULL with *status, *code and *msg set
 * for a bad handshake (400) or a VM without a console (409). */
struct console_viewer;
struct MHD_Response *http_ws_response(struct MHD_Connection *conn, const char *vm_id,
				      struct console_viewer **slot, int *status, const char **code,
				      const char **msg);
/* Ends every console websocket and waits for their threads (daemon stopping). */
void http_ws_stop_all(void);

#endif
