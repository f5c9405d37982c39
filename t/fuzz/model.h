/*
 * model.h - run a byte string as a sequence of allocator operations on one
 * of libbeamalloc's allocators, checking every result against a reference
 * model.  Shared by the libFuzzer harness (fuzz.c) and the corpus replay
 * test of make check (replay.c).  Any mismatch prints what was expected
 * and aborts, so libFuzzer keeps the input and make check fails.
 */
#ifndef BEAMALLOC_FUZZ_MODEL_H
#define BEAMALLOC_FUZZ_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* Number of allocators the model knows, and their names ("gpa", ...). */
extern const int fz_ntargets;
const char *fz_target_name(int target);
/* Index of the target called name, or -1. */
int fz_target_find(const char *name);

/* Decode data into operations and run them on target; abort on a finding. */
void fz_run(int target, const uint8_t *data, size_t size);

/* Operations run so far by fz_run, over all calls. */
extern unsigned long long fz_ops;

#endif
