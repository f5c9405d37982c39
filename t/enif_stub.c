/*
 * enif_stub.c - stands in for beam.smp in native tests.  Linking it into a
 * test program binds libbeamalloc's weak enif_* references here, as the
 * dynamic linker does inside the VM.  Like ERTS, it guarantees 8 bytes and
 * never 16: every block is deliberately 8 mod 16.  It counts live blocks
 * and bytes so tests can see that the BEAM allocator really used it.
 * Thread-safe, as the VM's is: a library's decay thread frees too.  Live
 * blocks are listed in an array of their starts, so that those a test
 * leaves on purpose (a library unloaded while holding them: t/gpa_unload)
 * stay reachable for LeakSanitizer and memcheck (linked through the
 * blocks themselves, memcheck called them possibly lost).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enif_stub.h"

/* Each block: this header, then the user's bytes, which are 8 mod 16. */
struct stub_hdr {
	size_t len;
	size_t idx;			/* in stub_blocks */
	size_t pad;
};
#define STUB_HDR sizeof(struct stub_hdr)
_Static_assert(STUB_HDR % 16 == 8, "user blocks are 8 mod 16");

size_t stub_live_blocks;
size_t stub_calls;
void (*stub_free_hook)(size_t len);
static size_t stub_live_bytes;
static struct stub_hdr **stub_blocks;	/* stub_live_blocks of them */
static size_t stub_cap;
static pthread_mutex_t stub_lock = PTHREAD_MUTEX_INITIALIZER;

void *
enif_alloc(size_t size)
{
	struct stub_hdr *h, **n;

	if (size > SIZE_MAX - STUB_HDR - 15)
		return NULL;
	h = aligned_alloc(16, (size + STUB_HDR + 15) & ~(size_t)15);
	if (h == NULL)
		return NULL;
	h->len = size;
	pthread_mutex_lock(&stub_lock);
	if (stub_live_blocks == stub_cap) {
		n = realloc(stub_blocks, (stub_cap ? stub_cap * 2 : 256) *
		    sizeof(*n));
		if (n == NULL) {
			pthread_mutex_unlock(&stub_lock);
			free(h);
			return NULL;
		}
		stub_blocks = n;
		stub_cap = stub_cap ? stub_cap * 2 : 256;
	}
	h->idx = stub_live_blocks;
	stub_blocks[stub_live_blocks++] = h;
	stub_live_bytes += size;
	stub_calls++;
	pthread_mutex_unlock(&stub_lock);
	return (unsigned char *)h + STUB_HDR;
}

void
enif_free(void *ptr)
{
	struct stub_hdr *h, *last;

	if (ptr == NULL)
		return;
	h = (struct stub_hdr *)((unsigned char *)ptr - STUB_HDR);
	pthread_mutex_lock(&stub_lock);
	last = stub_blocks[--stub_live_blocks];
	stub_blocks[h->idx] = last;
	last->idx = h->idx;
	stub_live_bytes -= h->len;
	stub_calls++;
	pthread_mutex_unlock(&stub_lock);
	if (stub_free_hook != NULL)
		stub_free_hook(h->len);
	free(h);
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
	old = ((struct stub_hdr *)((unsigned char *)ptr - STUB_HDR))->len;
	memcpy(p, ptr, old < size ? old : size);
	enif_free(ptr);
	return p;
}

void
stub_held(size_t *blocks, size_t *bytes)
{
	pthread_mutex_lock(&stub_lock);
	*blocks = stub_live_blocks;
	*bytes = stub_live_bytes;
	pthread_mutex_unlock(&stub_lock);
}
