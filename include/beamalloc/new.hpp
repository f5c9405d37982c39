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
 * length: so each block carries one word below it, the length and where
 * the enif_alloc block starts.  Over-aligned new goes through
 * beamalloc_wide(), which checks each free; its per-block registry (one
 * lock) is too slow for every plain new.  Code compiled into libstdc++.so
 * (std::string's buffers, locales, streams) keeps libstdc++'s own operator
 * new: those bytes are not counted.  See beamalloc_cxx(3).
 */
#ifndef BEAMALLOC_NEW_HPP
#define BEAMALLOC_NEW_HPP

/* One clear message, not a cascade of errors, under an older standard:
 * the rest is skipped. */
#if __cplusplus < 201703L
#error "<beamalloc/new.hpp> needs C++17 (aligned operator new): compile with -std=c++17 or later"
#else /* the rest: C++17 */

#include <beamalloc.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

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
 * Default alignment: n + base_align bytes from beamalloc_beam(), the block
 * at the first base_align boundary at least one word above its start
 * (8-aligned, so that is at most base_align bytes in).  The word below
 * the block holds n * base_align + (block - start) / 8 - 1.
 */
inline void *
try_new(std::size_t n) noexcept
{
	unsigned char *start, *p;
	std::uintptr_t u;

	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	if (n > (static_cast<std::size_t>(-1) - base_align) / base_align)
		return nullptr;
	start = static_cast<unsigned char *>(
	    beamalloc_alloc(beamalloc_beam(), n + base_align));
	if (start == nullptr)
		return nullptr;
	u = reinterpret_cast<std::uintptr_t>(start) + word;
	p = start + word + (-u & (base_align - 1));
	reinterpret_cast<std::size_t *>(p)[-1] =
	    n * base_align + static_cast<std::size_t>(p - start) / 8 - 1;
	return p;
}

inline void
do_delete(void *mem) noexcept
{
	unsigned char *p = opaque(mem);
	std::size_t h;

	if (p == nullptr)
		return;
	h = reinterpret_cast<std::size_t *>(p)[-1];
	beamalloc_free(beamalloc_beam(), p - (h % base_align + 1) * 8,
	    h / base_align + base_align);
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

#endif /* C++17 */
#endif /* BEAMALLOC_NEW_HPP */
