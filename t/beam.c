/*
 * beam.c - the BEAM base allocator.  Built twice: with WITH_STUB it links
 * t/enif_stub.c, which binds the weak enif_* references the way beam.smp
 * does (blocks 8 mod 16); without it, the malloc fallback outside the VM.
 * Both must keep the same 8-byte contract.
 */
#include <errno.h>
#include <string.h>

#include "beamalloc.h"
#include "tap.h"
#ifdef WITH_STUB
#include "enif_stub.h"
#endif

int
main(void)
{
	beamalloc_allocator a = beamalloc_beam();
	unsigned char *p, *q;
	size_t i, mod16 = 0;
	void *blocks[64];

#ifdef WITH_STUB
	ok(beamalloc_in_vm(), "in_vm() is true when enif_* are bound");
#else
	ok(!beamalloc_in_vm(), "in_vm() is false outside the BEAM");
#endif
	is_size(beamalloc_native_align(a), 8, "native alignment is 8");

	for (i = 0; i < 64; i++) {
		blocks[i] = beamalloc_alloc_aligned(a, 24 + i, 8);
		if (((uintptr_t)blocks[i] & 15) == 8)
			mod16++;
	}
	for (i = 0; i < 64 && blocks[i] && is_aligned(blocks[i], 8); i++)
		;
	is_size(i, 64, "64 blocks at alignment 8, all 8-aligned");
#ifdef WITH_STUB
	is_size(mod16, 64, "the stub really gives 8 mod 16 blocks");
	is_size(stub_live_blocks, 64, "the blocks came from enif_alloc");
#else
	diag("%zu of 64 malloc blocks were 8 mod 16", mod16);
#endif
	for (i = 0; i < 64; i++)
		beamalloc_free_aligned(a, blocks[i], 24 + i, 8);

	errno = 0;
	p = beamalloc_alloc_aligned(a, 32, 16);
	ok(p == NULL && errno == EINVAL,
	    "alignment 16 fails with EINVAL, never silently");
	errno = 0;
	ok(beamalloc_alloc_aligned(a, 4096, 4096) == NULL && errno == EINVAL,
	    "alignment 4096 fails with EINVAL");

	/* resize never moves: shrink succeeds in place, grow fails */
	p = beamalloc_alloc(a, 1000);
	memset(p, 7, 1000);
	ok(beamalloc_resize(a, p, 1000, 8, 500), "shrink in place succeeds");
	ok(!beamalloc_resize(a, p, 500, 8, 100000),
	    "grow in place fails (enif_realloc could move it)");
	ok(p[0] == 7 && p[499] == 7, "the block is untouched");

	/* remap may move (enif_realloc) and keeps contents and 8 */
	q = beamalloc_remap(a, p, 500, 8, 100000);
	ok(q != NULL && is_aligned(q, 8), "remap grows, 8-aligned");
	for (i = 0; q && i < 500 && q[i] == 7; i++)
		;
	is_size(i, 500, "remap kept the contents");
	q = beamalloc_realloc(a, q, 100000, 8, 3);
	ok(q != NULL && q[0] == 7 && q[2] == 7, "realloc shrinks, kept");
	beamalloc_free(a, q, 3);
#ifdef WITH_STUB
	is_size(stub_live_blocks, 0, "every enif_alloc block was freed");
#endif
	return done_testing();
}
