/*
 * cxx_new.cpp - <beamalloc/new.hpp> natively (beamalloc_beam() is malloc
 * here): every form of operator new and delete, alignment, the
 * new-handler, nothrow and bad_alloc.  The real-VM side (counted in
 * erlang:memory(system)) is t/nif/cxx-*.sh.
 */
#include "config.h"

#include <beamalloc/new.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "tap.h"
#include "under.h"

namespace {

struct alignas(64) line {
	unsigned char b[64];
};

struct alignas(4096) page {
	unsigned char b[4096];
};

int handler_calls;

void
handler()
{
	handler_calls++;
	std::set_new_handler(nullptr);	/* give up the second time */
}

/* malloc's block, its origin hidden from the compiler (GCC warns of a
 * mismatched delete it can see). */
void *
from_malloc(std::size_t n)
{
	void *p = std::malloc(n);

	__asm__("" : "+r"(p));
	return p;
}

/* A length no allocator can serve (the front-end refuses it at once). */
constexpr std::size_t huge = SIZE_MAX / 2;

} /* namespace */

int
main()
{
	std::uintptr_t bits = 0;

	/* valgrind puts its own operator new and delete in place of ours
	 * (consistently: the header keeps each out of line) and aborts
	 * where a failing new must throw. */
	if (UNDER_VALGRIND())
		skip_all("valgrind replaces operator new and delete");
	plan(19);
	ok(beamalloc::new_is_bound(), "operator new is the header's");

	for (std::size_t i = 0; i < 300; i++) {
		char *p = new char[i];
		std::memset(p, 0xa5, i);
		bits |= reinterpret_cast<std::uintptr_t>(p);
		delete[] p;
	}
	is_int(bits & 15, 0, "300 new char[0..299]: every address 0 mod 16");
	void *z1 = ::operator new(0), *z2 = ::operator new(0);
	ok(z1 != nullptr && z2 != nullptr && z1 != z2,
	    "operator new(0) twice: two distinct non-null pointers");
	::operator delete(z1);
	::operator delete(z2, std::size_t(0));

	line *l = new line();
	page *pg = new page();
	ok(is_aligned(l, 64) && is_aligned(pg, 4096),
	    "new alignas(64), alignas(4096): aligned");
	l->b[63] = 1;
	pg->b[4095] = 1;
	delete l;
	delete pg;
	line *la = new line[7];
	ok(is_aligned(la, 64), "new alignas(64)[7]: aligned");
	delete[] la;
	void *a1 = ::operator new(100, std::align_val_t(256));
	ok(is_aligned(a1, 256), "operator new(100, align 256)");
	::operator delete(a1, std::align_val_t(256));	/* unsized */
	void *a2 = ::operator new[](100, std::align_val_t(32), std::nothrow);
	ok(a2 != nullptr && is_aligned(a2, 32),
	    "operator new[](100, align 32, nothrow)");
	::operator delete[](a2, std::size_t(100), std::align_val_t(32));
	void *a3 = ::operator new(24, std::align_val_t(8));
	ok(is_aligned(a3, 16), "operator new(24, align 8): the default 16");
	::operator delete(a3, std::align_val_t(8));

	void *n1 = ::operator new(10, std::nothrow);
	ok(n1 != nullptr, "operator new(10, nothrow)");
	::operator delete(n1, std::nothrow);
	ok(::operator new(huge, std::nothrow) == nullptr,
	    "operator new(SIZE_MAX / 2, nothrow) == nullptr");
	ok(::operator new[](huge, std::align_val_t(128), std::nothrow) ==
	    nullptr, "operator new[](SIZE_MAX / 2, align 128, nothrow) == "
	    "nullptr");
	bool threw = false;
	try {
		(void)::operator new(huge);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	ok(threw, "operator new(SIZE_MAX / 2) throws bad_alloc");
	threw = false;
	std::set_new_handler(handler);
	try {
		(void)::operator new[](huge, std::align_val_t(64));
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	ok(threw && handler_calls == 1,
	    "a new-handler is called (once: it removes itself), then bad_alloc");

	/* A block from libstdc++.so's own operator new (malloc's: in the
	 * BEAM, std::string's buffers under C++17) deleted by the header's
	 * operator delete (the string's destructor, inlined into the NIF):
	 * no tag below it, so it goes back to free(). */
	void *m = from_malloc(100);
	::operator delete(m);
	m = from_malloc(5000);
	::operator delete(m, std::size_t(5000));
	ok(true, "malloc's blocks deleted by the header's operator delete "
	    "(unsized, sized): given to free()");
	char *own = new char[40];
	std::memset(own, 0, 40);
	delete[] own;
	ok(true, "and the header's own blocks still to beamalloc_beam()");

	/* The standard library's own use, through the header. */
	std::vector<std::string> v;
	for (int i = 0; i < 1000; i++)
		v.emplace_back(50, static_cast<char>('a' + i % 26));
	is_int(v[999][49], 'a' + 999 % 26, "vector<string> of 1000");
	auto sp = std::make_shared<line>();
	ok(is_aligned(sp.get(), 64), "make_shared<alignas(64)>: aligned");
	auto up = std::make_unique<std::uint64_t[]>(1000);
	up[999] = 7;
	is_int(up[999], 7, "make_unique<uint64_t[]>(1000)");
	v.clear();
	v.shrink_to_fit();
	ok(v.capacity() == 0, "all of it freed (valgrind checks the rest)");
	return done_testing();
}
