/*
 * beamalloc/new.hpp - send a C++ NIF's global operator new and delete to
 * the BEAM (beamalloc_beam(): enif_alloc), so its memory is counted in
 * erlang:memory(system), as Rustler's `allocator` feature does for Rust.
 *
 * Include it in exactly ONE translation unit of the NIF: it defines the
 * replaceable operators (every form: plain, array, nothrow, sized,
 * aligned), which may exist once per program.  Link the NIF with
 * -Wl,-Bsymbolic-functions: beam.smp itself links libstdc++, whose
 * operator new the NIF's calls would otherwise bind to (the BEAM loads
 * NIFs with local symbols).  beamalloc::new_is_bound() tells whether they
 * did.  Outside the BEAM (unit tests), beamalloc_beam() is malloc.
 *
 * enif_alloc gives 8-byte alignment, operator new must give
 * __STDCPP_DEFAULT_NEW_ALIGNMENT__ (16), and unsized delete must find the
 * length: so each block carries two words below it, the length and where
 * the enif_alloc block starts, and a tag.  Over-aligned new goes through
 * beamalloc_wide(), which checks each free; its per-block registry (one
 * lock) is too slow for every plain new.  Code compiled into libstdc++.so
 * (std::string's buffers under C++17, locales, streams) keeps libstdc++'s
 * own operator new: those bytes are not counted, and a block of it that
 * the NIF's own code deletes (a std::string's destructor, inlined) lacks
 * the tag and goes back to free().  See beamalloc_cxx(3).
 */
#ifndef BEAMALLOC_NEW_HPP
#define BEAMALLOC_NEW_HPP

/* One clear message, not a cascade of errors, under an older standard
 * or without aligned new (std::align_val_t): the rest is skipped. */
#if __cplusplus < 201703L
#error "<beamalloc/new.hpp> needs C++17 (aligned operator new): compile with -std=c++17 or later"
#elif !defined(__cpp_aligned_new)
#error "<beamalloc/new.hpp> needs aligned operator new: drop -fno-aligned-new (g++) or -fno-aligned-allocation (clang++)"
#else /* the rest: C++17 with aligned new */

#include <beamalloc.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#if defined(__SANITIZE_ADDRESS__) || defined(__has_feature)
#include <dlfcn.h>	/* free_foreign() under AddressSanitizer */
#endif

namespace beamalloc {
namespace new_detail {

/* Bumped by every operator new defined here (relaxed: a hint only). */
inline unsigned long calls;

/* The compiler knows operator new's result as an object of n bytes, so
 * reading the word below it would be out of bounds to the optimizer
 * (clang -O2 folds it away once delete is inlined beside new): hide
 * where the pointer came from. */
inline unsigned char *
opaque(void *p) noexcept
{
	__asm__("" : "+r"(p));
	return static_cast<unsigned char *>(p);
}

constexpr std::size_t word = sizeof(std::size_t);
constexpr std::size_t base_align = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
static_assert(base_align >= 2 * word && base_align % 8 == 0,
    "the header needs two words below a default-aligned block");

/*
 * Default alignment: n + base_align + word bytes from beamalloc_beam(),
 * the block at the first base_align boundary at least two words above
 * its start (8-aligned, so that is at most base_align + word bytes in).
 * The word below the block holds h = n * base_align + (block - start) /
 * 8 - 1, the word below that a tag, the block's address ^ h ^ tag_key.
 *
 * The tag tells the header's blocks from libstdc++'s: in the BEAM,
 * libstdc++.so keeps its own operator new (malloc), and with libstdc++'s
 * templates declared extern (C++17 and before), std::string's buffers are
 * allocated inside libstdc++.so (_M_create) but freed by code inlined
 * into the NIF (_M_dispose): without the tag, the NIF's delete read a
 * length below a malloc block and handed enif_free a wild pointer.  A
 * block without the tag goes back to std::free().
 */
constexpr std::size_t tag_key = static_cast<std::size_t>(
    0x62a5e1a770c9d3b1ULL);

/* Reads below a block that may be malloc's: inside its chunk header,
 * which AddressSanitizer poisons (its redzone). */
#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize_address))
#endif
inline bool
ours(const unsigned char *p, std::size_t *h) noexcept
{
	const std::size_t *w = reinterpret_cast<const std::size_t *>(p);

	*h = w[-1];
	return w[-2] == (reinterpret_cast<std::uintptr_t>(p) ^ *h ^ tag_key);
}

/* A block of libstdc++'s operator new: malloc's, so free()'s.  Under
 * AddressSanitizer its runtime's operator new serves libstdc++ (and free()
 * of one is an alloc-dealloc-mismatch): its operator delete, the first in
 * the global scope, unless that is this one (a program, not a NIF). */
#if defined(__SANITIZE_ADDRESS__)
#define BEAMALLOC_NEW_ASAN_ 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BEAMALLOC_NEW_ASAN_ 1
#endif
#endif
inline void
free_foreign(void *p) noexcept
{
#ifdef BEAMALLOC_NEW_ASAN_
	using del = void (*)(void *) noexcept;
	static del next = reinterpret_cast<del>(
	    dlsym(RTLD_DEFAULT, "_ZdlPv"));
	del self = ::operator delete;

	if (next != nullptr && next != self) {
		next(p);
		return;
	}
#endif
	std::free(p);
}

inline void *
try_new(std::size_t n) noexcept
{
	unsigned char *start, *p;
	std::uintptr_t u;
	std::size_t h;

	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	if (n > (static_cast<std::size_t>(-1) - base_align - word) /
	    base_align)
		return nullptr;
	start = static_cast<unsigned char *>(
	    beamalloc_alloc(beamalloc_beam(), n + base_align + word));
	if (start == nullptr)
		return nullptr;
	u = reinterpret_cast<std::uintptr_t>(start) + 2 * word;
	p = start + 2 * word + (-u & (base_align - 1));
	h = n * base_align + static_cast<std::size_t>(p - start) / 8 - 1;
	reinterpret_cast<std::size_t *>(p)[-1] = h;
	reinterpret_cast<std::size_t *>(p)[-2] =
	    reinterpret_cast<std::uintptr_t>(p) ^ h ^ tag_key;
	return p;
}

inline void
do_delete(void *mem) noexcept
{
	unsigned char *p = opaque(mem);
	std::size_t h;

	if (p == nullptr)
		return;
	if (!ours(p, &h)) {
		free_foreign(p);	/* libstdc++'s operator new's */
		return;
	}
	reinterpret_cast<std::size_t *>(p)[-2] = 0;	/* not ours again */
	beamalloc_free(beamalloc_beam(), p - (h % base_align + 1) * 8,
	    h / base_align + base_align + word);
}

/*
 * Over-aligned (align > base_align): align + n bytes at align from
 * beamalloc_wide(), the block align bytes in, n in the word below it.
 */
inline void *
try_new_aligned(std::size_t n, std::align_val_t al) noexcept
{
	std::size_t align = static_cast<std::size_t>(al);
	unsigned char *start, *p;

	if (align <= base_align)
		return try_new(n);
	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	if (n > static_cast<std::size_t>(-1) - align)
		return nullptr;
	start = static_cast<unsigned char *>(
	    beamalloc_alloc_aligned(beamalloc_wide(), align + n, align));
	if (start == nullptr)
		return nullptr;
	p = start + align;
	reinterpret_cast<std::size_t *>(p)[-1] = n;
	return p;
}

inline void
do_delete_aligned(void *mem, std::align_val_t al) noexcept
{
	std::size_t align = static_cast<std::size_t>(al);
	unsigned char *p = opaque(mem);

	if (align <= base_align) {
		do_delete(mem);
		return;
	}
	if (p == nullptr)
		return;
	beamalloc_free_aligned(beamalloc_wide(), p - align,
	    align + reinterpret_cast<std::size_t *>(p)[-1], align);
}

/* [new.delete.single]: call the new-handler until it gives up. */
template <class F>
inline void *
new_loop(F attempt)
{
	for (;;) {
		void *p = attempt();

		if (p != nullptr)
			return p;
		std::new_handler h = std::get_new_handler();
		if (h == nullptr) {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
			throw std::bad_alloc();
#else
			std::abort();
#endif
		}
		h();
	}
}

template <class F>
inline void *
new_nothrow(F attempt) noexcept
{
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
	try {
		return new_loop(attempt);
	} catch (...) {
		return nullptr;
	}
#else
	return attempt();
#endif
}

} /* namespace new_detail */

/* True when this NIF's calls to operator new reach the definitions
 * below (see -Wl,-Bsymbolic-functions above). */
inline bool
new_is_bound() noexcept
{
	unsigned long before = __atomic_load_n(&new_detail::calls,
	    __ATOMIC_RELAXED);
	void *volatile p = ::operator new(1);

	::operator delete(p);
	return __atomic_load_n(&new_detail::calls, __ATOMIC_RELAXED) != before;
}

} /* namespace beamalloc */

/* The replaceable forms, [new.delete]; never inline, so a second
 * translation unit that includes this header fails to link, and never
 * inlined, so a tool that replaces operator new and delete (valgrind)
 * replaces every pair whole. */
#define BEAMALLOC_NEW_DEF __attribute__((noinline))

BEAMALLOC_NEW_DEF void *
operator new(std::size_t n)
{
	return beamalloc::new_detail::new_loop(
	    [n] { return beamalloc::new_detail::try_new(n); });
}

BEAMALLOC_NEW_DEF void *
operator new[](std::size_t n)
{
	return ::operator new(n);
}

BEAMALLOC_NEW_DEF void *
operator new(std::size_t n, const std::nothrow_t &) noexcept
{
	return beamalloc::new_detail::new_nothrow(
	    [n] { return beamalloc::new_detail::try_new(n); });
}

BEAMALLOC_NEW_DEF void *
operator new[](std::size_t n, const std::nothrow_t &) noexcept
{
	return ::operator new(n, std::nothrow);
}

BEAMALLOC_NEW_DEF void *
operator new(std::size_t n, std::align_val_t al)
{
	return beamalloc::new_detail::new_loop(
	    [n, al] { return beamalloc::new_detail::try_new_aligned(n, al); });
}

BEAMALLOC_NEW_DEF void *
operator new[](std::size_t n, std::align_val_t al)
{
	return ::operator new(n, al);
}

BEAMALLOC_NEW_DEF void *
operator new(std::size_t n, std::align_val_t al,
    const std::nothrow_t &) noexcept
{
	return beamalloc::new_detail::new_nothrow(
	    [n, al] { return beamalloc::new_detail::try_new_aligned(n, al); });
}

BEAMALLOC_NEW_DEF void *
operator new[](std::size_t n, std::align_val_t al,
    const std::nothrow_t &) noexcept
{
	return ::operator new(n, al, std::nothrow);
}

/* Sized or not, the length comes from the block's own word. */
BEAMALLOC_NEW_DEF void operator delete(void *p) noexcept { beamalloc::new_detail::do_delete(p); }
BEAMALLOC_NEW_DEF void operator delete[](void *p) noexcept { beamalloc::new_detail::do_delete(p); }
BEAMALLOC_NEW_DEF void
operator delete(void *p, std::size_t) noexcept
{
	beamalloc::new_detail::do_delete(p);
}
BEAMALLOC_NEW_DEF void
operator delete[](void *p, std::size_t) noexcept
{
	beamalloc::new_detail::do_delete(p);
}
BEAMALLOC_NEW_DEF void
operator delete(void *p, const std::nothrow_t &) noexcept
{
	beamalloc::new_detail::do_delete(p);
}
BEAMALLOC_NEW_DEF void
operator delete[](void *p, const std::nothrow_t &) noexcept
{
	beamalloc::new_detail::do_delete(p);
}
BEAMALLOC_NEW_DEF void
operator delete(void *p, std::align_val_t al) noexcept
{
	beamalloc::new_detail::do_delete_aligned(p, al);
}
BEAMALLOC_NEW_DEF void
operator delete[](void *p, std::align_val_t al) noexcept
{
	beamalloc::new_detail::do_delete_aligned(p, al);
}
BEAMALLOC_NEW_DEF void
operator delete(void *p, std::size_t, std::align_val_t al) noexcept
{
	beamalloc::new_detail::do_delete_aligned(p, al);
}
BEAMALLOC_NEW_DEF void
operator delete[](void *p, std::size_t, std::align_val_t al) noexcept
{
	beamalloc::new_detail::do_delete_aligned(p, al);
}
BEAMALLOC_NEW_DEF void
operator delete(void *p, std::align_val_t al, const std::nothrow_t &) noexcept
{
	beamalloc::new_detail::do_delete_aligned(p, al);
}
BEAMALLOC_NEW_DEF void
operator delete[](void *p, std::align_val_t al,
    const std::nothrow_t &) noexcept
{
	beamalloc::new_detail::do_delete_aligned(p, al);
}

#undef BEAMALLOC_NEW_DEF

#endif /* C++17 with aligned new */
#endif /* BEAMALLOC_NEW_HPP */
