/* dirty.S without the dirtying loop: touches all RAM once, then only watches the clock. */
#define TOUCH_ONLY
#include "dirty.S"
