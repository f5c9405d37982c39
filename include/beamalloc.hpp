/*
 * beamalloc.hpp - libbeamalloc from C++17 (header-only, over <beamalloc.h>).
 *
 *   beamalloc::resource          std::pmr::memory_resource over any allocator
 *   beamalloc::stl_allocator<T>  an allocator for the standard containers
 *   beamalloc::gpa               owns a beamalloc_gpa (create .. destroy)
 *   beamalloc::arena             owns a beamalloc_arena (create .. destroy)
 *
 * Each deallocation passes the length and alignment of its allocation on
 * unchanged, so a GPA underneath checks them and counts leaks exactly.
 * Allocation failure throws std::bad_alloc (std::abort() when built with
 * -fno-exceptions), as the standard requires of both; the owners never
 * throw: test them with operator bool (errno says why they are empty).
 *
 * The library itself is C: nothing here needs more than its C ABI.
 * See beamalloc_cxx(3).
 */
#ifndef BEAMALLOC_HPP
#define BEAMALLOC_HPP

/* One clear message, not a cascade of errors, under an older standard:
 * the rest is skipped. */
#if __cplusplus < 201703L
#error "<beamalloc.hpp> needs C++17 (std::pmr): compile with -std=c++17 or later"
#else /* the rest: C++17 */

#include <beamalloc.h>

#include <cstddef>
#include <cstdlib>
#include <memory_resource>
#include <new>
#include <type_traits>

namespace beamalloc {

/* The standard's failure for an allocation that cannot be served. */
[[noreturn]] inline void
throw_bad_alloc()
{
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
	throw std::bad_alloc();
#else
	std::abort();
#endif
}

/* Two allocators are the same when they share context and vtable: then
 * each can free what the other gave. */
inline bool
same(beamalloc_allocator a, beamalloc_allocator b) noexcept
{
	return a.ctx == b.ctx && a.vtable == b.vtable;
}

/* ------------------------------------------------------------------------
 * std::pmr::memory_resource
 * ---------------------------------------------------------------------- */

class resource : public std::pmr::memory_resource {
public:
	explicit resource(beamalloc_allocator a) noexcept : a_(a) {}
	beamalloc_allocator allocator() const noexcept { return a_; }

protected:
	void *
	do_allocate(std::size_t bytes, std::size_t align) override
	{
		void *p = beamalloc_alloc_aligned(a_, bytes, align);

		if (p == nullptr)
			throw_bad_alloc();
		return p;
	}

	/* bytes and align are those of the allocation ([mem.res.private]),
	 * handed on as they are. */
	void
	do_deallocate(void *p, std::size_t bytes, std::size_t align) override
	{
		beamalloc_free_aligned(a_, p, bytes, align);
	}

	bool
	do_is_equal(const std::pmr::memory_resource &other) const
	    noexcept override
	{
		if (this == &other)
			return true;
#if defined(__cpp_rtti) || defined(__GXX_RTTI)
		const resource *r = dynamic_cast<const resource *>(&other);
		return r != nullptr && same(a_, r->a_);
#else
		return false;
#endif
	}

private:
	beamalloc_allocator a_;
};

/* ------------------------------------------------------------------------
 * Allocator for the standard containers
 * ---------------------------------------------------------------------- */

template <class T>
class stl_allocator {
public:
	using value_type = T;
	/* The allocator goes with the memory on move, copy and swap. */
	using propagate_on_container_copy_assignment = std::true_type;
	using propagate_on_container_move_assignment = std::true_type;
	using propagate_on_container_swap = std::true_type;
	using is_always_equal = std::false_type;

	explicit stl_allocator(beamalloc_allocator a) noexcept : a_(a) {}
	template <class U>
	stl_allocator(const stl_allocator<U> &o) noexcept : a_(o.allocator())
	{
	}

	T *
	allocate(std::size_t n)
	{
		void *p;

		if (n > static_cast<std::size_t>(-1) / sizeof(T)) {
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
			throw std::bad_array_new_length();
#else
			std::abort();
#endif
		}
		p = beamalloc_alloc_aligned(a_, n * sizeof(T), alignof(T));
		if (p == nullptr)
			throw_bad_alloc();
		return static_cast<T *>(p);
	}

	void
	deallocate(T *p, std::size_t n) noexcept
	{
		beamalloc_free_aligned(a_, p, n * sizeof(T), alignof(T));
	}

	beamalloc_allocator allocator() const noexcept { return a_; }

private:
	beamalloc_allocator a_;
};

template <class T, class U>
inline bool
operator==(const stl_allocator<T> &a, const stl_allocator<U> &b) noexcept
{
	return same(a.allocator(), b.allocator());
}

template <class T, class U>
inline bool
operator!=(const stl_allocator<T> &a, const stl_allocator<U> &b) noexcept
{
	return !(a == b);
}

/* ------------------------------------------------------------------------
 * Owners: move-only, the C object destroyed with the owner
 * ---------------------------------------------------------------------- */

class gpa {
public:
	/* Over beamalloc_wide(), as the global GPA and the NIF leak check. */
	gpa() noexcept : g_(beamalloc_gpa_create(beamalloc_wide(), nullptr)) {}
	/* cfg may be null (the defaults). */
	explicit gpa(beamalloc_allocator backing,
	    const beamalloc_gpa_config *cfg = nullptr) noexcept
	    : g_(beamalloc_gpa_create(backing, cfg))
	{
	}
	gpa(const gpa &) = delete;
	gpa &operator=(const gpa &) = delete;
	gpa(gpa &&o) noexcept : g_(o.g_) { o.g_ = nullptr; }
	gpa &
	operator=(gpa &&o) noexcept
	{
		if (this != &o) {
			(void)destroy();
			g_ = o.g_;
			o.g_ = nullptr;
		}
		return *this;
	}
	~gpa() { (void)destroy(); }

	explicit operator bool() const noexcept { return g_ != nullptr; }
	beamalloc_gpa *get() const noexcept { return g_; }
	beamalloc_allocator
	allocator() const noexcept
	{
		return beamalloc_gpa_allocator(g_);
	}
	std::size_t detect_leaks() noexcept { return beamalloc_gpa_detect_leaks(g_); }
	beamalloc_gpa_stats
	stats() const noexcept
	{
		beamalloc_gpa_stats st;

		beamalloc_gpa_get_stats(g_, &st);
		return st;
	}
	/* Destroy now (leaks reported); returns the leak count, 0 if empty. */
	std::size_t
	destroy() noexcept
	{
		beamalloc_gpa *g = g_;

		g_ = nullptr;
		return g != nullptr ? beamalloc_gpa_destroy(g) : 0;
	}
	/* Give up ownership: the caller destroys what it returns. */
	beamalloc_gpa *
	release() noexcept
	{
		beamalloc_gpa *g = g_;

		g_ = nullptr;
		return g;
	}

private:
	beamalloc_gpa *g_;
};

class arena {
public:
	explicit arena(beamalloc_allocator backing) noexcept
	    : a_(beamalloc_arena_create(backing))
	{
	}
	arena(const arena &) = delete;
	arena &operator=(const arena &) = delete;
	arena(arena &&o) noexcept : a_(o.a_) { o.a_ = nullptr; }
	arena &
	operator=(arena &&o) noexcept
	{
		if (this != &o) {
			destroy();
			a_ = o.a_;
			o.a_ = nullptr;
		}
		return *this;
	}
	~arena() { destroy(); }

	explicit operator bool() const noexcept { return a_ != nullptr; }
	beamalloc_arena *get() const noexcept { return a_; }
	beamalloc_allocator
	allocator() const noexcept
	{
		return beamalloc_arena_allocator(a_);
	}
	void reset() noexcept { beamalloc_arena_reset(a_); }
	std::size_t
	capacity() const noexcept
	{
		return beamalloc_arena_capacity(a_);
	}
	void
	destroy() noexcept
	{
		if (a_ != nullptr)
			beamalloc_arena_destroy(a_);
		a_ = nullptr;
	}
	beamalloc_arena *
	release() noexcept
	{
		beamalloc_arena *a = a_;

		a_ = nullptr;
		return a;
	}

private:
	beamalloc_arena *a_;
};

} /* namespace beamalloc */

#endif /* C++17 */
#endif /* BEAMALLOC_HPP */
