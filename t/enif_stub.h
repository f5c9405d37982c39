/* enif_stub.h - the stand-in for beam.smp's enif_alloc family. */
#ifndef BEAMALLOC_ENIF_STUB_H
#define BEAMALLOC_ENIF_STUB_H

#include <stddef.h>

/* Default visibility even under -fvisibility=hidden: the library must be
 * able to bind to them, as it binds to beam.smp's exports. */
#define STUB_EXPORT __attribute__((visibility("default")))
STUB_EXPORT void *enif_alloc(size_t size);
STUB_EXPORT void *enif_realloc(void *ptr, size_t size);
STUB_EXPORT void enif_free(void *ptr);

extern size_t stub_live_blocks;	/* blocks allocated and not yet freed */
extern size_t stub_calls;	/* calls to any of the three */

/* Live blocks and their bytes, read under the stub's lock (other threads
 * may be calling it). */
void stub_held(size_t *blocks, size_t *bytes);
/* Called with each block's length as it is freed, when set. */
extern void (*stub_free_hook)(size_t len);

#endif
