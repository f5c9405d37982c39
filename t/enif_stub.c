/*
 * enif_stub.c - stands in for beam.smp in native tests.  Linking it into a
 * test program binds libbeamalloc's weak enif_* references here, as the
 * dynamic linker does inside the VM.  Like ERTS, it guarantees 8 bytes and
 * never 16: every block is deliberately 8 mod 16.  It counts live blocks
 * and bytes so tests can see that the BEAM allocator really used it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enif_stub.h"

size_t stub_live_blocks;
size_t stub_calls;

/* Each block: [size_t len][pad to 16][8 bytes][user ...]: user is 8 mod 16. */
#define STUB_HDR 24

void *
enif_alloc(size_t size)
{
	unsigned char *raw;

	if (size > SIZE_MAX - STUB_HDR)
		return NULL;
	raw = aligned_alloc(16, (size + STUB_HDR + 15) & ~(size_t)15);
	if (raw == NULL)
		return NULL;
	memcpy(raw, &size, sizeof(size));
	stub_live_blocks++;
	stub_calls++;
	return raw + STUB_HDR;
}

void
enif_free(void *ptr)
{
	if (ptr == NULL)
		return;
	stub_live_blocks--;
	stub_calls++;
	free((unsigned char *)ptr - STUB_HDR);
}

/* Always moves, as erts_realloc may, keeping only 8-byte alignment. */
void *
enif_realloc(void *ptr, size_t size)
{
	unsigned char *p;
	size_t old;

	if (ptr == NULL)
		return enif_alloc(size);
	p = enif_alloc(size);
	if (p == NULL)
		return NULL;
	memcpy(&old, (unsigned char *)ptr - STUB_HDR, sizeof(old));
	memcpy(p, ptr, old < size ? old : size);
	enif_free(ptr);
	return p;
}
