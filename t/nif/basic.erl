%% basic.erl - the base and wide allocators inside a real BEAM.
-module(basic).
-export([main/0]).
-export([in_vm/0, hold/3, release/1, allocate_raw/1,
         allocate_large_aligned/1, beam_alignment/0, wide_bad_free/0]).
-on_load(init/0).

-define(BASE_BEAM, 0).
-define(LIBC, 1).
-define(WIDE, 2).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "basic_nif"), 0).

in_vm() -> erlang:nif_error(not_loaded).
hold(_, _, _) -> erlang:nif_error(not_loaded).
release(_) -> erlang:nif_error(not_loaded).
allocate_raw(_) -> erlang:nif_error(not_loaded).
allocate_large_aligned(_) -> erlang:nif_error(not_loaded).
beam_alignment() -> erlang:nif_error(not_loaded).
wide_bad_free() -> erlang:nif_error(not_loaded).

%% Growth of erlang:memory(total) while Which holds Len bytes at Align.
growth(Which, Len, Align) ->
    erlang:garbage_collect(),
    timer:sleep(100),
    Start = erlang:memory(total),
    Addr = hold(Which, Len, Align),
    Grown = erlang:memory(total) - Start,
    ok = release(Which),
    {Addr, Grown}.

main() ->
    tap:plan(9),
    tap:ok(in_vm(), "beamalloc_in_vm() is true inside erl"),
    tap:is(allocate_raw(3), [0, 1, 2], "allocate_raw(3) == [0,1,2]"),
    {_, Beam} = growth(?BASE_BEAM, 1000000, 8),
    tap:ok(Beam >= 1000000,
           io_lib:format("beam: memory(total) grew by ~b >= 1000000", [Beam])),
    {_, Libc} = growth(?LIBC, 1000000, 8),
    tap:ok(Libc < 1000000,
           io_lib:format("libc: memory(total) grew by ~b < 1000000 (untracked)", [Libc])),
    {Addr, Wide} = growth(?WIDE, 1000000, 4096),
    tap:ok(Wide >= 1000000,
           io_lib:format("wide over beam: grew by ~b >= 1000000", [Wide])),
    tap:is(Addr rem 4096, 0, "wide over beam: 1000000 bytes at 0 mod 4096"),
    tap:is(allocate_large_aligned(3) rem 4096, 0,
           "rem(allocate_large_aligned(3), 4096) == 0"),
    tap:is(beam_alignment(), 8,
           "enif_alloc guarantees exactly 8 (the lowest set bit over 1536 blocks)"),
    tap:is(wide_bad_free(), 1,
           "wide: allocated at 64, freed at 8: reported once, ignored, the VM lives"),
    tap:done().
