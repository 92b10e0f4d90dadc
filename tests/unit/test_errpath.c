// SPDX-License-Identifier: MIT
/* Error paths of the VMM that run before or without a guest: logging keeps errno for the caller,
 * and a vm_create that fails early leaves nothing vm_destroy would close by mistake. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/config.h"
#include "vmm/vm.h"

/* pr_err writing to a closed stderr fails with EBADF; the caller's errno must survive it. */
static void test_log_keeps_errno(void **state)
{
	int saved = dup(2);

	(void)state;
	assert_true(saved >= 0);
	close(2);
	errno = EACCES;
	pr_err("this message goes nowhere");
	assert_int_equal(errno, EACCES);
	dup2(saved, 2);
	close(saved);
}

/* vm_create fails at its first fd (the fd limit is reached): vm_destroy must not close fd 0,
 * which a zeroed struct vm would name. */
static void test_vm_create_early_failure(void **state)
{
	static struct vm vm;
	static struct vm_config cfg;
	struct rlimit old, low;
	int lowest;

	(void)state;
	if (fcntl(0, F_GETFD) < 0)
		assert_int_equal(open("/dev/null", O_RDONLY), 0);
	lowest = dup(0);
	assert_true(lowest > 0);
	close(lowest);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)lowest; /* no new fd can be opened */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	cfg.ncpus = 1;
	assert_int_equal(vm_create(&vm, &cfg), -EMFILE);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	vm_destroy(&vm);
	assert_true(fcntl(0, F_GETFD) >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_keeps_errno),
		cmocka_unit_test(test_vm_create_early_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
