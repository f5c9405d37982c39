%% cxx.erl - a C++ NIF inside a real BEAM (t/nif/cxx_nif.cpp, built by
%% t/nif/cxx-gcc.sh and t/nif/cxx-clang.sh; NIF_NAME names the build).
-module(cxx).
-export([main/0]).
-export([leak_vector/1, pmr_vector/2, throw_in_body/1, throw_in_thread/1,
         throw_after_next/1, chain_second_done/0,
         last_capacity/0, new_array/1,
         delete_array/0, aligned_new/1, plain_news/1, new_bound/0,
         long_string/1]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), os:getenv("NIF_NAME")), 0).

leak_vector(_) -> erlang:nif_error(not_loaded).
pmr_vector(_, _) -> erlang:nif_error(not_loaded).
throw_in_body(_) -> erlang:nif_error(not_loaded).
throw_in_thread(_) -> erlang:nif_error(not_loaded).
throw_after_next(_) -> erlang:nif_error(not_loaded).
chain_second_done() -> erlang:nif_error(not_loaded).
last_capacity() -> erlang:nif_error(not_loaded).
new_array(_) -> erlang:nif_error(not_loaded).
delete_array() -> erlang:nif_error(not_loaded).
aligned_new(_) -> erlang:nif_error(not_loaded).
plain_news(_) -> erlang:nif_error(not_loaded).
new_bound() -> erlang:nif_error(not_loaded).
long_string(_) -> erlang:nif_error(not_loaded).

run(F) ->
    try F() of R -> {ok, R}
    catch error:E -> nosites({error, E})
    end.

%% A leak's sites (the allocating C++ frames) are leakcheck.erl's to
%% test: compared here without them.
nosites({error, {T, M, #{sites := _} = I}}) -> {error, {T, M, maps:remove(sites, I)}};
nosites(R) -> R.

%% F must raise memory_leak for Fn with one block of capacity x Size bytes.
leak(F, Fn, Size, Name) ->
    R = run(F),
    Bytes = last_capacity() * Size,
    Want = iolist_to_binary(io_lib:format(
             "memory leak detected in function ~s: ~b bytes in 1 block", [Fn, Bytes])),
    tap:is(R, {error, {memory_leak, Want,
                       #{function => list_to_binary(Fn), bytes => Bytes, blocks => 1}}},
           io_lib:format("~s (capacity ~b x ~b = ~b bytes)", [Name, last_capacity(), Size, Bytes])).

in_thread(Kind) ->
    Ref = throw_in_thread(Kind),
    receive {beamalloc_thread, Ref, R} -> R after 10000 -> timeout end.

settle() ->
    erlang:garbage_collect(),
    timer:sleep(50),
    erlang:memory(system).

main() ->
    tap:plan(20),
    tap:diag("====== the following leak reports are expected: ===== START"),
    leak(fun() -> leak_vector(1000) end, "leak_vector/1", 8,
         "std::vector<uint64_t, stl_allocator> of 1000 leaked: memory_leak, bytes = capacity x 8"),
    leak(fun() -> pmr_vector(777, 1) end, "pmr_vector/2", 4,
         "std::pmr::vector<uint32_t> of 777 leaked: memory_leak, bytes = capacity x 4"),
    tap:diag("==================================================== END"),
    tap:is(run(fun() -> pmr_vector(5000, 0) end), {ok, ok},
           "std::pmr::vector<uint32_t> of 5000, destroyed: no leak, no size mismatch"),
    %% A C++ exception out of a leak-checked body: an Erlang exception,
    %% not std::terminate() (the VM aborted), and the GPA checked in.
    tap:is(run(fun() -> throw_in_body(0) end), {error, enomem},
           "leak-checked body throwing std::bad_alloc (stl_allocator): error:enomem"),
    R1 = run(fun() -> throw_in_body(1) end),
    tap:ok(case R1 of {error, {cxx_exception, <<_, _/binary>>}} -> true; _ -> false end,
           io_lib:format("... throwing std::out_of_range: error:{cxx_exception, What} (~w)", [R1])),
    tap:is(run(fun() -> throw_in_body(2) end),
           {error, {cxx_exception, <<"unknown exception">>}},
           "... throwing an int: error:{cxx_exception, <<\"unknown exception\">>}"),
    %% The same from a thread of beamalloc_nif_thread_spawn(): a message,
    %% not std::terminate().
    tap:is(in_thread(0), {error, enomem},
           "thread throwing std::bad_alloc: {beamalloc_thread, Ref, {error, enomem}}"),
    R2 = in_thread(1),
    tap:ok(case R2 of {error, {cxx_exception, <<_, _/binary>>}} -> true; _ -> false end,
           io_lib:format("thread throwing std::out_of_range: {error, {cxx_exception, What}} (~w)", [R2])),
    tap:is(in_thread(2), {error, {cxx_exception, <<"unknown exception">>}},
           "thread throwing an int: {error, {cxx_exception, <<\"unknown exception\">>}}"),
    tap:is(in_thread(3), {ok, ok}, "thread returning: {ok, ok}"),
    %% A chain step that scheduled the next one, then threw: the chain
    %% ends there, checked at once (before, its 40-byte block was printed
    %% when the term was collected, and the exception raised instead).
    tap:is(run(fun() -> throw_after_next(0) end), {ok, ok},
           "chain: first step schedules the second, which frees its block"),
    tap:diag("====== the following leak report is expected: ======= START"),
    R3 = run(fun() -> throw_after_next(1) end),
    tap:diag("==================================================== END"),
    tap:is({R3, chain_second_done()},
           {{error, {memory_leak,
                     <<"memory leak detected in function throw_after_next/1: 40 bytes in 1 block">>,
                     #{function => <<"throw_after_next/1">>, bytes => 40, blocks => 1}}},
            false},
           io_lib:format("chain step throwing after beamalloc_nif_chain_next(): the chain ends "
                         "there, its leak raised in place of the exception (~w)", [R3])),
    tap:is(run(fun() -> pmr_vector(100, 0) end), {ok, ok},
           "the next leak-checked call runs clean"),
    tap:is(new_bound(), true, "the NIF's operator new is the one of <beamalloc/new.hpp>"),
    Before = settle(),
    Addr = new_array(4000000),
    Held = erlang:memory(system) - Before,
    tap:ok(Held >= 4000000,
           io_lib:format("new char[4000000]: memory(system) grew by ~b >= 4000000", [Held])),
    ok = delete_array(),
    After = erlang:memory(system) - Before,
    tap:ok(After < 1000000,
           io_lib:format("delete[]: memory(system) back within 1 MB (~b)", [After])),
    tap:is(Addr rem 16, 0, "new char[4000000] is 16-aligned"),
    tap:is(plain_news(500) rem 16, 0,
           "500 plain new char[1..500]: every address 0 mod 16 (__STDCPP_DEFAULT_NEW_ALIGNMENT__)"),
    tap:is([aligned_new(A) rem A || A <- [16, 64, 4096]], [0, 0, 0],
           "new of alignas(16), alignas(64), alignas(4096) objects: aligned, deleted"),
    tap:is(long_string(1000), 3000,
           "std::string and ostringstream buffers of libstdc++.so freed by the NIF's inlined destructors"),
    tap:done().
