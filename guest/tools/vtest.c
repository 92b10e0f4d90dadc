// SPDX-License-Identifier: MIT
/* A tiny test program for the test guest, freestanding (raw system calls, no libc) so it adds a
 * few KiB to the initramfs and never touches TLS (see docs/pvm-hosts.md):
 *
 *   vtest listen PORT        accept one AF_VSOCK connection on PORT, echo it back until EOF
 *   vtest connect PORT MSG   connect to the host (CID 2) on PORT, send MSG, half-close, print
 *                            what comes back until EOF
 *   vtest touch MIB [SECS]   fault in MIB of anonymous memory, keep it SECS seconds, then exit
 *                            (the pages are free again, but were resident in the host)
 *
 * Prints "vtest: ..." lines; exits 0 on success, 1 on failure. Built by guest/build.sh. */

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_mmap 9
#define SYS_nanosleep 35
#define SYS_socket 41
#define SYS_connect 42
#define SYS_accept 43
#define SYS_shutdown 48
#define SYS_bind 49
#define SYS_listen 50
#define SYS_exit_group 231

#define AF_VSOCK 40
#define SOCK_STREAM 1
#define VMADDR_CID_ANY 0xffffffffu
#define VMADDR_CID_HOST 2

typedef unsigned long size_t;
typedef long ssize_t;

struct sockaddr_vm {
	unsigned short svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};

static long sys(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static void out(const char *s)
{
	sys(SYS_write, 1, (long)s, (long)slen(s), 0, 0, 0);
}

static void die(const char *what, long err)
{
	char num[24];
	int i = 23;

	num[i] = 0;
	err = -err;
	do {
		num[--i] = (char)('0' + err % 10);
		err /= 10;
	} while (err && i);
	out("vtest: ");
	out(what);
	out(" failed: errno ");
	out(num + i);
	out("\n");
	sys(SYS_exit_group, 1, 0, 0, 0, 0, 0);
}

static unsigned long num(const char *s)
{
	unsigned long v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (unsigned long)(*s++ - '0');
	return v;
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static char buf[65536];

static int do_listen(unsigned int port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK,
				  .svm_port = port,
				  .svm_cid = VMADDR_CID_ANY };
	long fd = sys(SYS_socket, AF_VSOCK, SOCK_STREAM, 0, 0, 0, 0), c, n;
	unsigned long total = 0;

	if (fd < 0)
		die("socket", fd);
	if ((n = sys(SYS_bind, fd, (long)&sa, sizeof(sa), 0, 0, 0)) < 0)
		die("bind", n);
	if ((n = sys(SYS_listen, fd, 1, 0, 0, 0, 0)) < 0)
		die("listen", n);
	out("vtest: listening\n");
	c = sys(SYS_accept, fd, 0, 0, 0, 0, 0);
	if (c < 0)
		die("accept", c);
	while ((n = sys(SYS_read, c, (long)buf, sizeof(buf), 0, 0, 0)) > 0) {
		for (long off = 0; off < n;) {
			long w = sys(SYS_write, c, (long)buf + off, n - off, 0, 0, 0);

			if (w <= 0)
				die("write", w);
			off += w;
		}
		total += (unsigned long)n;
	}
	if (n < 0)
		die("read", n);
	sys(SYS_close, c, 0, 0, 0, 0, 0);
	out(total ? "vtest: echoed\n" : "vtest: empty\n");
	return 0;
}

static int do_connect(unsigned int port, const char *msg)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK,
				  .svm_port = port,
				  .svm_cid = VMADDR_CID_HOST };
	long fd = sys(SYS_socket, AF_VSOCK, SOCK_STREAM, 0, 0, 0, 0), n;

	if (fd < 0)
		die("socket", fd);
	if ((n = sys(SYS_connect, fd, (long)&sa, sizeof(sa), 0, 0, 0)) < 0)
		die("connect", n);
	if ((n = sys(SYS_write, fd, (long)msg, (long)slen(msg), 0, 0, 0)) < 0)
		die("write", n);
	sys(SYS_shutdown, fd, 1 /* SHUT_WR */, 0, 0, 0, 0);
	out("vtest: reply ");
	while ((n = sys(SYS_read, fd, (long)buf, sizeof(buf) - 1, 0, 0, 0)) > 0)
		sys(SYS_write, 1, (long)buf, n, 0, 0, 0);
	out("\n");
	if (n < 0)
		die("read", n);
	return 0;
}

static int do_touch(unsigned long mib, unsigned long secs)
{
	long ts[2] = { (long)secs, 0 };

	long p = sys(SYS_mmap, 0, (long)(mib << 20), 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);

	if (p < 0 && p > -4096)
		die("mmap", p);
	for (unsigned long off = 0; off < mib << 20; off += 4096)
		((volatile char *)p)[off] = 1;
	out("vtest: touched\n");
	if (secs)
		sys(SYS_nanosleep, (long)ts, 0, 0, 0, 0, 0);
	return 0;
}

static int run(int argc, char **argv)
{
	if (argc == 3 && streq(argv[1], "listen"))
		return do_listen((unsigned int)num(argv[2]));
	if (argc == 4 && streq(argv[1], "connect"))
		return do_connect((unsigned int)num(argv[2]), argv[3]);
	if ((argc == 3 || argc == 4) && streq(argv[1], "touch"))
		return do_touch(num(argv[2]), argc == 4 ? num(argv[3]) : 0);
	out("usage: vtest listen PORT | connect PORT MSG | touch MIB [SECS]\n");
	return 1;
}

/* The kernel enters with argc at the stack pointer, then argv. */
__attribute__((used)) static void start_c(long *sp)
{
	sys(SYS_exit_group, run((int)sp[0], (char **)(sp + 1)), 0, 0, 0, 0, 0);
}

__asm__(".global _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call start_c\n");
