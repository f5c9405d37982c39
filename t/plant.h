/*
 * plant.h - a planted memory bug no memory checker sees: under ASan or
 * memcheck the bytes are written as a NIF no checker watches would, so
 * that it is the GPA's own checks that must find it (t/gpa_corrupt.c,
 * t/nif/corrupt_nif.c).
 */
#ifndef BEAMALLOC_T_PLANT_H
#define BEAMALLOC_T_PLANT_H

#include <string.h>

#include "tools.h"

static inline void
plant(unsigned char *p, size_t n, unsigned char v)
{
	BA_ASAN_UNPOISON(p, n);
	BA_VG_QUIET_BEGIN();
	memset(p, v, n);
	BA_VG_QUIET_END();
}

#endif
