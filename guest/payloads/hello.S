/* Real-mode serial hello: prints a line on COM1 and exits with status 0. */
#include "common.inc"
	START16
	PUTS16 msg
	EXIT16 0
#include "lib16.inc"
msg:	.asciz "Hello from real mode\r\n"
