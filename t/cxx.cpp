/*
 * cxx.cpp - <beamalloc.hpp>: the pmr resource, the STL allocator and the
 * owners, over GPAs whose reports are counted.  Built by make check with
 * CXX, and by t/cxx-compilers.sh with each of g++ and clang++.
 */
#include <beamalloc.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <memory_resource>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "tap.h"

namespace {

/* What a GPA reported, by kind. */
struct reports {
	std::size_t count[16];
	std::size_t last_size, last_given_size;
	beamalloc_report_kind last_kind;
	std::uintptr_t last_site;
};

void
record(void *user, const beamalloc_report *r)
{
	reports *rep = static_cast<reports *>(user);

	rep->count[r->kind]++;
	rep->last_kind = r->kind;
	rep->last_size = r->size;
	rep->last_given_size = r->given_size;
	rep->last_site = r->alloc_trace_len > 0 ? r->alloc_trace[0] : 0;
}

/* A GPA over libc whose reports go to *rep. */
beamalloc::gpa
counted_gpa(reports *rep, std::size_t limit = 0)
{
	beamalloc_gpa_config cfg;

	beamalloc_gpa_config_init(&cfg);
	cfg.report = record;
	cfg.report_user = rep;
	cfg.memory_limit = limit;
	cfg.stack_trace_depth = 0;
	return beamalloc::gpa(beamalloc_libc(), &cfg);
}

std::size_t
misuses(const reports &rep)
{
	return rep.count[BEAMALLOC_REPORT_SIZE_MISMATCH] +
	    rep.count[BEAMALLOC_REPORT_ALIGN_MISMATCH] +
	    rep.count[BEAMALLOC_REPORT_INVALID_FREE] +
	    rep.count[BEAMALLOC_REPORT_DOUBLE_FREE];
}

template <class F>
bool
throws_bad_alloc(F f)
{
	try {
		f();
	} catch (const std::bad_alloc &) {
		return true;
	}
	return false;
}

/* A vector kept alive past its resource's leak check. */
alignas(std::pmr::vector<std::uint64_t>) unsigned char
    slot[sizeof(std::pmr::vector<std::uint64_t>)];

void
test_pmr()
{
	reports rep{};
	beamalloc::gpa g = counted_gpa(&rep);
	beamalloc::resource r(g.allocator());
	std::size_t cap;

	ok(static_cast<bool>(g), "gpa owner over libc created");
	{
		std::pmr::vector<std::uint64_t> v(&r);

		for (std::uint64_t i = 0; i < 5000; i++)
			v.push_back(i);
		is_size(g.stats().live_bytes, v.capacity() * 8,
		    "pmr::vector of 5000: live bytes = capacity x 8");
	}
	is_size(g.stats().live_blocks, 0, "pmr::vector destroyed: no block left");
	is_size(misuses(rep), 0,
	    "pmr::vector grown 5000 times and destroyed: no size or "
	    "alignment mismatch reported");

	auto *v = new (slot) std::pmr::vector<std::uint64_t>(&r);
	for (std::uint64_t i = 0; i < 1000; i++)
		v->push_back(i);
	cap = v->capacity();
	is_size(g.detect_leaks(), 1, "a leaked pmr::vector: one live block");
	is_int(rep.count[BEAMALLOC_REPORT_LEAK], 1, "one leak reported");
	is_size(rep.last_size, cap * 8,
	    "the leak report names capacity x 8 = %zu bytes", cap * 8);
	v->~vector();
	is_size(g.detect_leaks(), 0, "freed: no leak");

	/* The bytes and alignment given to deallocate reach the GPA. */
	void *p = r.allocate(100, 64);
	ok(is_aligned(p, 64), "allocate(100, 64) is 64-aligned");
	r.deallocate(p, 99, 64);
	is_int(rep.count[BEAMALLOC_REPORT_SIZE_MISMATCH], 1,
	    "deallocate(p, 99, 64) of a 100-byte block: one size mismatch");
	is_size(rep.last_given_size, 99, "the report names the 99 given");
	r.deallocate(p, 100, 32);
	is_int(rep.count[BEAMALLOC_REPORT_ALIGN_MISMATCH], 1,
	    "deallocate(p, 100, 32) of a 64-aligned block: align mismatch");
	r.deallocate(p, 100, 64);
	is_size(g.stats().live_blocks, 0, "deallocate(p, 100, 64) frees it");

	/* A pool over it: upstream calls pass through too. */
	{
		std::pmr::unsynchronized_pool_resource pool(&r);
		std::pmr::map<int, std::pmr::string> m(&pool);

		for (int i = 0; i < 200; i++)
			m.emplace(i, std::pmr::string(100, 'x', &pool));
		ok(g.stats().live_blocks > 0, "a pool resource upstream of it "
		    "holds %zu blocks", g.stats().live_blocks);
	}
	is_size(g.stats().live_blocks, 0, "pool released: nothing live");
	is_size(misuses(rep), 2, "no mismatch beyond the two made on purpose");

	/* Equality: same allocator, or not. */
	beamalloc::resource r2(g.allocator()), r3(beamalloc_libc());
	ok(r == r2, "two resources over one allocator are equal");
	ok(!(r == r3), "resources over two allocators are not");
	ok(!(r == *std::pmr::new_delete_resource()),
	    "not equal to new_delete_resource()");
}

void
test_bad_alloc()
{
	reports rep{};
	beamalloc::gpa g = counted_gpa(&rep, 4096);
	beamalloc::resource r(g.allocator()), beam(beamalloc_beam());

	ok(throws_bad_alloc([&] { (void)r.allocate(8192, 8); }),
	    "over a GPA limited to 4096: allocate(8192) throws bad_alloc");
	ok(throws_bad_alloc([&] { (void)beam.allocate(64, 64); }),
	    "beamalloc_beam() (alignment 8): allocate(64, 64) throws bad_alloc");
	beamalloc::stl_allocator<std::uint64_t> a(g.allocator());
	ok(throws_bad_alloc([&] { (void)a.allocate(1000); }),
	    "stl_allocator over the limited GPA: allocate(1000 x 8) throws");
	bool arr = false;
	try {
		(void)a.allocate(SIZE_MAX / 4);
	} catch (const std::bad_array_new_length &) {
		arr = true;
	}
	ok(arr, "stl_allocator: n x sizeof(T) overflowing throws "
	    "bad_array_new_length");
	is_size(g.stats().live_blocks, 0, "nothing live after the failures");
}

void
test_stl()
{
	reports rep{};
	beamalloc::gpa g = counted_gpa(&rep);
	using str = std::basic_string<char, std::char_traits<char>,
	    beamalloc::stl_allocator<char>>;
	beamalloc::stl_allocator<int> ai(g.allocator());

	{
		std::vector<int, beamalloc::stl_allocator<int>> v(ai);

		for (int i = 0; i < 3000; i++)
			v.push_back(i);
		is_size(g.stats().live_bytes, v.capacity() * sizeof(int),
		    "vector<int> of 3000: live bytes = capacity x 4");
		std::list<double, beamalloc::stl_allocator<double>> l(
		    beamalloc::stl_allocator<double>(g.allocator()));
		for (int i = 0; i < 100; i++)
			l.push_back(i);
		is_size(g.stats().live_blocks, 101,
		    "list<double> of 100 (rebound nodes) + the vector: 101 "
		    "blocks");
		str s(300, 'y', beamalloc::stl_allocator<char>(g.allocator()));
		is_size(g.stats().live_blocks, 102, "a long string: one more");

		auto w = std::move(v);
		ok(w.get_allocator() == ai, "moved vector keeps the allocator");
		std::vector<int, beamalloc::stl_allocator<int>> c{
		    beamalloc::stl_allocator<int>(beamalloc_libc())};
		c = w;
		ok(c.get_allocator() == ai,
		    "copy-assigned vector takes the allocator (propagates)");
	}
	is_size(g.stats().live_blocks, 0, "containers destroyed: nothing live");
	is_size(misuses(rep), 0, "no mismatch reported");
	beamalloc::stl_allocator<long> al(ai);
	ok(al == ai, "rebound copy compares equal");
	ok(al != beamalloc::stl_allocator<long>(beamalloc_libc()),
	    "allocators over two allocators differ");
	is_size(g.destroy(), 0, "gpa.destroy(): no leak");
	ok(!g, "a destroyed owner is empty");
}

void
test_owners()
{
	reports rep{};
	beamalloc::gpa g = counted_gpa(&rep);
	void *p = beamalloc_alloc(g.allocator(), 48);

	ok(p != nullptr, "48 bytes from the owned GPA");
	beamalloc::gpa h(std::move(g));
	ok(!g && h, "moved: the source is empty, the target owns");
	is_size(g.destroy(), 0, "destroy() of the moved-from owner: 0");
	errno = 0;
	ok(beamalloc_alloc(g.allocator(), 16) == nullptr && errno == ENOMEM &&
	    g.detect_leaks() == 0 && g.stats().live_blocks == 0,
	    "an empty gpa owner: its allocator has no memory (NULL + "
	    "ENOMEM), no leaks, zero stats");
	is_size(h.destroy(), 1, "destroy() reports the one leaked block");
	is_size(rep.last_size, 48, "of 48 bytes");

	beamalloc::gpa d;
	ok(static_cast<bool>(d), "default gpa (over beamalloc_wide()) created");
	beamalloc_gpa *raw = d.release();
	ok(!d && raw != nullptr, "release() hands the GPA over");
	is_size(beamalloc_gpa_destroy(raw), 0, "destroyed by hand");

	beamalloc::gpa lim = counted_gpa(&rep);
	lim = counted_gpa(&rep);
	ok(static_cast<bool>(lim), "move-assigned owner holds the new GPA");

	beamalloc::arena a(beamalloc_libc());
	ok(static_cast<bool>(a), "arena owner created");
	std::size_t cap = a.capacity();
	ok(cap > 0, "arena holds %zu bytes", cap);
	{
		beamalloc::resource ar(a.allocator());
		std::pmr::vector<int> v(&ar);
		for (int i = 0; i < 10000; i++)
			v.push_back(i);
	}
	ok(a.capacity() > cap, "a pmr::vector grew the arena to %zu",
	    a.capacity());
	cap = a.capacity();
	a.reset();
	is_size(a.capacity(), cap, "reset() keeps the capacity");
	beamalloc::arena b = std::move(a);
	ok(!a && b, "moved arena: target owns");
	b.destroy();
	ok(!b, "destroyed arena is empty");
	b.reset();
	errno = 0;
	ok(b.capacity() == 0 && beamalloc_alloc(b.allocator(), 16) == nullptr &&
	    errno == ENOMEM, "an empty arena owner: reset() does nothing, "
	    "capacity 0, its allocator has no memory");

	/* An arena over a GPA: the owner gives every chunk back. */
	reports rep2{};
	beamalloc::gpa over = counted_gpa(&rep2);
	{
		beamalloc::arena c(over.allocator());
		(void)beamalloc_alloc(c.allocator(), 100000);
	}
	is_size(over.stats().live_blocks, 0,
	    "arena owner over a GPA gone: every chunk given back");
}

bool
ends_with(const char *s, const char *tail)
{
	std::size_t n = std::strlen(s), k = std::strlen(tail);

	return n >= k && std::strcmp(s + n - k, tail) == 0;
}

int *volatile kept;
unsigned leak_line;

/* A block leaked from stl_allocator::allocate, called here (inlined:
 * flatten, so that it is at any optimization level, and by clang++ at
 * -O0 too). */
__attribute__((noinline, flatten)) void
leak_through_allocate(beamalloc_allocator a)
{
	beamalloc::stl_allocator<int> al(a);

	leak_line = __LINE__ + 1;
	kept = al.allocate(10);
}

/* The header allocates on its caller's behalf: a leak's site is the line
 * that called it, not the header's own (the inline chain climbed). */
void
test_leak_site()
{
	reports rep{};
	beamalloc::gpa g = counted_gpa(&rep);
	beamalloc_symbol sym;

	leak_through_allocate(g.allocator());
	(void)g.detect_leaks();
	if (!beamalloc_symbolize(rep.last_site, &sym))
		sym.file[0] = sym.function[0] = '\0';
#if defined(__OPTIMIZE__) || defined(__clang__)
	const char *want_fn = "leak_through_allocate", *want_file = "/cxx.cpp";
	unsigned want_line = leak_line;
#else
	/* g++ -O0 inlines nothing, flatten or not: the site is allocate()'s
	 * own frame, a function of its own, with nothing to climb. */
	const char *want_fn = "allocate", *want_file = "/beamalloc.hpp";
	unsigned want_line = sym.line;
#endif

	if (sym.file[0] == '\0') {
		/* Built without -g (t/cxx-compilers.sh): no lines to name,
		 * but the code is the function's. */
		ok(std::strstr(sym.function, want_fn) != nullptr, "no debug "
		    "information: a leak from stl_allocator::allocate names "
		    "%s (%s)", want_fn, sym.function);
		return;
	}
	ok(ends_with(sym.file, want_file) && sym.line == want_line,
	    "a leak from stl_allocator::allocate names %s's line (%s:%u, "
	    "want %s:%u)", want_fn, sym.file, sym.line, want_file, want_line);
}

} /* namespace */

int
main()
{
	plan(54);
	test_pmr();
	test_bad_alloc();
	test_stl();
	test_owners();
	test_leak_site();
	return done_testing();
}
