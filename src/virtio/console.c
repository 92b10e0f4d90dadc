// SPDX-License-Identifier: MIT
/* virtio-console with a single port (no VIRTIO_CONSOLE_F_MULTIPORT): queue 0 carries input to
 * the guest, queue 1 its output. The host side is a unix socket with at most one client, or an
 * output file. Everything runs on the main loop's thread under the device lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/capfile.h"
#include "../common/log.h"
#include "../common/util.h"
#include "devices.h"

#define CONSOLE_QUEUE_SIZE 128
#define CONSOLE_CONFIG_SIZE 12 /* cols, rows, max_nr_ports, emerg_wr */
#define RX_QUEUE 0
#define TX_QUEUE 1
#define CONSOLE_REFUSALS_LOGGED 8

struct virtio_console {
	struct virtio_pci vp;
	const struct virtio_pci_host *host;
	int listen_fd, client_fd, out_fd; /* -1 when absent; out_fd is client_fd or the file */
	bool client_watched;
	/* Input read from the client that the guest has no buffers for yet. While any is held
	 * the client is not watched: the guest's pace throttles the sender. */
	uint8_t rx[4096];
	size_t rx_len, rx_off;
	unsigned long dropped; /* output bytes no one could take */
	unsigned long refused; /* socket clients of another user turned away */
	char file_path[4096]; /* file: PATH without ",max-size=" */
	struct capfile file; /* file: the output, capped */
	struct virtq_chain chain;
};

static void client_readable(void *arg);

static void client_watch(struct virtio_console *con, bool on)
{
	const struct virtio_pci_host *h = con->host;

	if (con->client_fd < 0 || on == con->client_watched || !h->watch_fd || !h->unwatch_fd)
		return;
	if (on)
		con->client_watched =
			h->watch_fd(h->opaque, con->client_fd, client_readable, con) == 0;
	else
		con->client_watched = h->unwatch_fd(h->opaque, con->client_fd) != 0;
}

static void client_close(struct virtio_console *con)
{
	client_watch(con, false);
	close(con->client_fd);
	con->client_fd = con->out_fd = -1;
	con->rx_len = con->rx_off = 0;
}

/* Moves held input into the guest's receive buffers. Returns true when all of it went. */
static bool rx_deliver(struct virtio_console *con)
{
	struct virtio_dev *vdev = &con->vp.vdev;
	struct virtq *vq = &vdev->vqs[RX_QUEUE];
	bool pushed = false;
	int ret = 0;

	while (con->rx_off < con->rx_len && virtio_live(vdev) && vq->ready) {
		size_t n;

		ret = virtq_pop(vq, &con->chain);
		if (ret <= 0)
			break;
		if (con->chain.nread) {
			ret = -EINVAL;
			break;
		}
		n = virtq_chain_write(&con->chain, 0, con->rx + con->rx_off,
				      con->rx_len - con->rx_off);
		con->rx_off += n;
		virtq_push(vq, &con->chain, (uint32_t)n);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(vdev, RX_QUEUE);
	if (ret < 0)
		virtio_set_needs_reset(vdev, "bad receive buffer", ret);
	if (con->rx_off >= con->rx_len) {
		con->rx_len = con->rx_off = 0;
		return true;
	}
	return false;
}

static void client_readable(void *arg)
{
	struct virtio_console *con = arg;
	ssize_t n;

	virtio_lock(&con->vp.vdev);
	if (con->client_fd < 0)
		goto out;
	if (!rx_deliver(con)) {
		client_watch(con, false);
		goto out;
	}
	n = read(con->client_fd, con->rx, sizeof(con->rx));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		client_close(con);
		goto out;
	}
	if (n > 0) {
		con->rx_len = (size_t)n;
		if (!rx_deliver(con))
			client_watch(con, false);
	}
out:
	virtio_unlock(&con->vp.vdev);
}

static void client_accept(void *arg)
{
	struct virtio_console *con = arg;
	int fd = accept4(con->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	uid_t uid = (uid_t)-1;
	pid_t pid = 0;

	if (fd < 0)
		return;
	if (unix_peer_check(fd, &uid, &pid)) {
		/* The port is a line into the guest: only this user or root may have it. */
		if (con->refused++ < CONSOLE_REFUSALS_LOGGED)
			pr_warn("virtio-console: refused a client of uid %d (pid %d): not this "
				"VM's user or root",
				(int)uid, (int)pid);
		close(fd);
		return;
	}
	virtio_lock(&con->vp.vdev);
	if (con->client_fd >= 0) {
		/* One client at a time: the port has one reader. */
		close(fd);
	} else {
		con->client_fd = con->out_fd = fd;
		client_watch(con, true);
	}
	virtio_unlock(&con->vp.vdev);
}

/* Never blocks the main loop on a slow reader: what the socket cannot take now is dropped and
 * counted, as on a serial line nobody listens to. */
static void out_write(struct virtio_console *con, const uint8_t *p, size_t len)
{
	ssize_t w = -1;

	if (con->out_fd >= 0 && con->listen_fd >= 0)
		w = send(con->out_fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	else if (con->out_fd >= 0)
		w = capfile_write(&con->file, p, len);
	if (w < (ssize_t)len)
		con->dropped += len - (w > 0 ? (size_t)w : 0);
}

static int tx_process(struct virtio_console *con)
{
	struct virtio_dev *vdev = &con->vp.vdev;
	struct virtq *vq = &vdev->vqs[TX_QUEUE];
	bool pushed = false;
	int ret;

	while ((ret = virtq_pop(vq, &con->chain)) == 1) {
		if (con->chain.nwrite)
			return -EINVAL;
		for (unsigned int i = 0; i < con->chain.nread; i++)
			out_write(con, con->chain.bufs[i].host, con->chain.bufs[i].len);
		virtq_push(vq, &con->chain, 0);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(vdev, TX_QUEUE);
	return ret;
}

static int console_notify(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_console *con = vdev->priv;

	if (q == TX_QUEUE)
		return tx_process(con);
	/* New receive buffers: deliver held input and listen to the client again. */
	if (rx_deliver(con))
		client_watch(con, true);
	return 0;
}

static void console_config_read(struct virtio_dev *vdev, uint32_t off, uint8_t *data, uint32_t len)
{
	/* cols, rows and max_nr_ports only mean something with features we do not offer. */
	(void)vdev;
	(void)off;
	memset(data, 0, len);
}

static const struct virtio_device_ops console_ops = {
	.name = "virtio-console",
	.device_id = 3,
	.pci_class = 0x07, /* simple communication controller */
	.pci_subclass = 0x80,
	.num_queues = 2,
	.queue_size = CONSOLE_QUEUE_SIZE,
	.config_size = CONSOLE_CONFIG_SIZE,
	.config_read = console_config_read,
	.notify = console_notify,
};

static int open_backend(struct virtio_console *con, const char *spec)
{
	if (!strncmp(spec, "socket:", 7)) {
		int fd = unix_listen(spec + 7, 1);

		if (fd < 0) {
			pr_err("virtio-console socket %s: %s", spec + 7, unix_listen_strerror(fd));
			return fd;
		}
		con->listen_fd = fd;
		if (con->host->watch_fd)
			return con->host->watch_fd(con->host->opaque, fd, client_accept, con);
		return 0;
	}
	if (!strncmp(spec, "file:", 5)) {
		size_t len;
		uint64_t max;
		int ret;

		if (capfile_parse_spec(spec + 5, &len, &max))
			return -EINVAL;
		if (len >= sizeof(con->file_path))
			return -ENAMETOOLONG;
		memcpy(con->file_path, spec + 5, len);
		/* Appended to: with --restore the same file goes on. */
		ret = capfile_open(&con->file, con->file_path, max, true);
		if (!ret)
			con->out_fd = con->file.fd;
		return ret;
	}
	return -EINVAL;
}

int virtio_console_create(struct virtio_pci **out, const struct virtio_pci_host *host,
			  struct pci_bus *pci, struct bus *mmio, uint32_t intx_irq,
			  const char *spec)
{
	struct virtio_console *con = calloc(1, sizeof(*con));
	int ret;

	if (!con)
		return -ENOMEM;
	con->host = host;
	con->listen_fd = con->client_fd = con->out_fd = con->file.fd = -1;
	ret = open_backend(con, spec);
	if (ret) {
		if (con->listen_fd >= 0)
			close(con->listen_fd);
		capfile_close(&con->file);
		free(con);
		return ret;
	}
	ret = virtio_pci_create(&con->vp, &console_ops, con, host, pci, mmio, intx_irq);
	if (ret)
		return ret; /* the machine is being torn down: left allocated */
	*out = &con->vp;
	return 0;
}

const struct device_ops virtio_console_device_ops =
	VIRTIO_PCI_DEVICE_OPS("virtio-console", SECTION_VIRTIO_CONSOLE);
