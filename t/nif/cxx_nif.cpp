/*
 * cxx_nif.cpp - <beamalloc.hpp> and <beamalloc/new.hpp> in a C++ NIF
 * inside a real BEAM: containers over the leak-checked NIF's allocator,
 * and global operator new counted in erlang:memory(system).
 */
#include <beamalloc.hpp>
#include <beamalloc/new.hpp>
#include <beamalloc/nif.h>

#include <cstdint>
#include <memory_resource>
#include <sstream>
#include <string>
#include <vector>

namespace {

/* The capacity of the last vector leaked (read by last_capacity/0). */
std::size_t leaked_capacity;
char *held;

/* leak_vector(N): N elements pushed one by one into a vector over the
 * NIF's allocator (the buffer regrows, each old one freed with its size),
 * then the vector object dropped without its destructor. */
ERL_NIF_TERM
leak_vector_body(ErlNifEnv *env, int, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	using vec = std::vector<std::uint64_t,
	    beamalloc::stl_allocator<std::uint64_t>>;
	unsigned long n;

	if (!enif_get_ulong(env, argv[0], &n))
		return enif_make_badarg(env);
	vec *v = new vec(beamalloc::stl_allocator<std::uint64_t>(a));
	for (unsigned long i = 0; i < n; i++)
		v->push_back(i);
	leaked_capacity = v->capacity();
	::operator delete(v);	/* the object goes, its buffer stays */
	return enif_make_atom(env, "ok");
}
BEAMALLOC_NIF_LEAK_CHECKED(leak_vector, leak_vector_body)

/* pmr_vector(N, Keep): the same through std::pmr over the allocator;
 * Keep = 1 leaks the buffer (release() of a monotonic view is not
 * needed: the vector is placed in static storage and never destroyed). */
alignas(std::pmr::vector<std::uint32_t>) unsigned char
    pmr_slot[sizeof(std::pmr::vector<std::uint32_t>)];

ERL_NIF_TERM
pmr_vector_body(ErlNifEnv *env, int, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	unsigned long n;
	int keep;

	if (!enif_get_ulong(env, argv[0], &n) ||
	    !enif_get_int(env, argv[1], &keep))
		return enif_make_badarg(env);
	beamalloc::resource r(a);
	auto *v = new (pmr_slot) std::pmr::vector<std::uint32_t>(&r);
	for (unsigned long i = 0; i < n; i++)
		v->push_back(static_cast<std::uint32_t>(i));
	leaked_capacity = v->capacity();
	if (!keep)
		v->~vector();
	return enif_make_atom(env, "ok");
}
BEAMALLOC_NIF_LEAK_CHECKED(pmr_vector, pmr_vector_body)

/* throw_in_body(Kind): a leak-checked body that throws with a vector
 * over its allocator live (unwinding frees it): 0, std::bad_alloc from
 * stl_allocator (2^63 bytes asked); 1, std::out_of_range from at(); 2,
 * an int.  The leak check turns each into an Erlang exception. */
ERL_NIF_TERM
throw_in_body_body(ErlNifEnv *env, int, const ERL_NIF_TERM argv[],
    beamalloc_allocator a)
{
	std::vector<std::uint64_t, beamalloc::stl_allocator<std::uint64_t>>
	    v{beamalloc::stl_allocator<std::uint64_t>(a)};
	int kind;

	if (!enif_get_int(env, argv[0], &kind))
		return enif_make_badarg(env);
	v.assign(100, 1);
	switch (kind) {
	case 0:
		(void)v.get_allocator().allocate(std::size_t(1) << 60);
		break;
	case 1:
		(void)v.at(100);
		break;
	case 2:
		throw 42;
	}
	return enif_make_atom(env, "ok");
}
BEAMALLOC_NIF_LEAK_CHECKED(throw_in_body, throw_in_body_body)

/* throw_in_thread(Kind): the same body on a thread of
 * beamalloc_nif_thread_spawn(); 3 returns ok.  Before the catch, an
 * exception ended in std::terminate(): the VM aborted. */
ERL_NIF_TERM
throw_in_thread_fn(ErlNifEnv *env, ERL_NIF_TERM arg, beamalloc_allocator a)
{
	return throw_in_body_body(env, 1, &arg, a);
}

ERL_NIF_TERM
throw_in_thread(ErlNifEnv *env, int, const ERL_NIF_TERM argv[])
{
	return beamalloc_nif_thread_spawn(env, "throw_in_thread",
	    throw_in_thread_fn, argv[0], NULL);
}

/* throw_after_next(Kind): a chain whose first step leaves a 40-byte
 * block in the chain's allocator, schedules its second step (which
 * would free it) and then throws (kind 1; 0 returns the scheduled
 * call).  The throw ends the chain there: the leak is raised in place of
 * the exception, not printed when the chain's term is collected. */
int chain_second_ran;

ERL_NIF_TERM
chain_second(ErlNifEnv *env, int, const ERL_NIF_TERM[],
    beamalloc_nif_chain *ch)
{
	chain_second_ran = 1;
	beamalloc_free(ch->allocator, ch->state, 40);
	return enif_make_atom(env, "ok");
}

ERL_NIF_TERM
chain_first(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[],
    beamalloc_nif_chain *ch)
{
	int kind;

	if (!enif_get_int(env, argv[0], &kind))
		return enif_make_badarg(env);
	if ((ch->state = beamalloc_alloc(ch->allocator, 40)) == nullptr)
		return beamalloc_nif_raise_errno(env);
	ERL_NIF_TERM r = beamalloc_nif_chain_next(env, ch, "chain_second", 0,
	    chain_second, argc, argv);
	if (kind == 1)
		(void)std::vector<int>(3).at(10);	/* std::out_of_range */
	return r;
}

ERL_NIF_TERM
throw_after_next(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	chain_second_ran = 0;
	return beamalloc_nif_chain_start(env, argc, argv, chain_first,
	    "throw_after_next", nullptr);
}

ERL_NIF_TERM
chain_second_done(ErlNifEnv *env, int, const ERL_NIF_TERM[])
{
	return enif_make_atom(env, chain_second_ran ? "true" : "false");
}

ERL_NIF_TERM
last_capacity(ErlNifEnv *env, int, const ERL_NIF_TERM[])
{
	return enif_make_uint64(env, leaked_capacity);
}

/* new_array(N): new char[N], touched, held until delete_array/0. */
ERL_NIF_TERM
new_array(ErlNifEnv *env, int, const ERL_NIF_TERM argv[])
{
	unsigned long n;

	if (!enif_get_ulong(env, argv[0], &n) || held != nullptr)
		return enif_make_badarg(env);
	held = new char[n];
	for (unsigned long i = 0; i < n; i += 4096)
		held[i] = 1;
	return enif_make_uint64(env, reinterpret_cast<std::uintptr_t>(held));
}

ERL_NIF_TERM
delete_array(ErlNifEnv *env, int, const ERL_NIF_TERM[])
{
	delete[] held;
	held = nullptr;
	return enif_make_atom(env, "ok");
}

/* aligned_new(Align): an object of that alignment by new and delete;
 * returns its address (checked in Erlang) after writing all of it. */
template <std::size_t A>
struct alignas(A) block {
	unsigned char bytes[A];
};

template <std::size_t A>
std::uintptr_t
one_aligned()
{
	block<A> *b = new block<A>();
	std::uintptr_t u = reinterpret_cast<std::uintptr_t>(b);

	b->bytes[A - 1] = 1;
	delete b;
	return u;
}

ERL_NIF_TERM
aligned_new(ErlNifEnv *env, int, const ERL_NIF_TERM argv[])
{
	int align;

	if (!enif_get_int(env, argv[0], &align))
		return enif_make_badarg(env);
	switch (align) {
	case 16: return enif_make_uint64(env, one_aligned<16>());
	case 64: return enif_make_uint64(env, one_aligned<64>());
	case 4096: return enif_make_uint64(env, one_aligned<4096>());
	default: return enif_make_badarg(env);
	}
}

/* plain_news(N): N plain new/delete pairs of growing sizes: the lowest
 * set bit over all their addresses (16: operator new's alignment). */
ERL_NIF_TERM
plain_news(ErlNifEnv *env, int, const ERL_NIF_TERM argv[])
{
	unsigned long n;
	std::uintptr_t bits = 0;

	if (!enif_get_ulong(env, argv[0], &n))
		return enif_make_badarg(env);
	for (unsigned long i = 0; i < n; i++) {
		char *p = new char[i + 1];
		p[i] = 0;
		bits |= reinterpret_cast<std::uintptr_t>(p);
		delete[] p;
	}
	return enif_make_uint64(env, bits & (~bits + 1));
}

/* long_string(N): std::string of N chars, grown to 2N, and a stream's
 * text.  Under C++17 libstdc++.so allocates their buffers (extern
 * templates: _M_create, with its own operator new) and the destructors
 * inlined here free them with the header's operator delete. */
ERL_NIF_TERM
long_string(ErlNifEnv *env, int, const ERL_NIF_TERM argv[])
{
	unsigned long n;

	if (!enif_get_ulong(env, argv[0], &n))
		return enif_make_badarg(env);
	std::string s(n, 'x');
	s += std::string(n, 'y');
	std::ostringstream os;
	for (unsigned long i = 0; i < n; i++)
		os << i % 10;
	std::string t = os.str();
	return enif_make_uint64(env, s.size() + t.size());
}

ERL_NIF_TERM
new_bound(ErlNifEnv *env, int, const ERL_NIF_TERM[])
{
	return enif_make_atom(env, beamalloc::new_is_bound() ? "true" :
	    "false");
}

ErlNifFunc funcs[] = {
	{ "leak_vector", 1, leak_vector, 0 },
	{ "pmr_vector", 2, pmr_vector, 0 },
	{ "throw_in_body", 1, throw_in_body, 0 },
	{ "throw_in_thread", 1, throw_in_thread, 0 },
	{ "throw_after_next", 1, throw_after_next, 0 },
	{ "chain_second_done", 0, chain_second_done, 0 },
	{ "last_capacity", 0, last_capacity, 0 },
	{ "new_array", 1, new_array, 0 },
	{ "delete_array", 0, delete_array, 0 },
	{ "aligned_new", 1, aligned_new, 0 },
	{ "plain_news", 1, plain_news, 0 },
	{ "new_bound", 0, new_bound, 0 },
	{ "long_string", 1, long_string, 0 },
};

int
load(ErlNifEnv *env, void **, ERL_NIF_TERM)
{
	return beamalloc_nif_init(env);
}

void
unload(ErlNifEnv *, void *)
{
	beamalloc_nif_fini();		/* joins the threads */
}

} /* namespace */

ERL_NIF_INIT(cxx, funcs, load, NULL, NULL, unload)
