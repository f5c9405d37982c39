/* leakmod.h - t/diag/leakmod.c's entry points (see there). */
#include "beamalloc.h"

#define LEAKMOD_API __attribute__((visibility("default")))

LEAKMOD_API int leakmod_run(beamalloc_allocator a);
LEAKMOD_API int leakmod_double_free(beamalloc_allocator a);
LEAKMOD_API int leakmod_oom_leak(beamalloc_allocator a, void *arg);
