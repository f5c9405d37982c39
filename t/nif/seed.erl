%% seed.erl - the seed's GPA and arena tests inside a real BEAM, plus the
%% global GPA's and an arena's memory tracked by the VM.
-module(seed).
-export([main/0]).
-export([leaks/0, noleak/0, gpa_live/0, gpa_detect/0, gpa_hold/1,
         gpa_release/0, arena_hold/2, arena_release/0, with_arena/0,
         arena_sum/1]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "seed_nif"), 0).

leaks() -> erlang:nif_error(not_loaded).
noleak() -> erlang:nif_error(not_loaded).
gpa_live() -> erlang:nif_error(not_loaded).
gpa_detect() -> erlang:nif_error(not_loaded).
gpa_hold(_) -> erlang:nif_error(not_loaded).
gpa_release() -> erlang:nif_error(not_loaded).
arena_hold(_, _) -> erlang:nif_error(not_loaded).
arena_release() -> erlang:nif_error(not_loaded).
with_arena() -> erlang:nif_error(not_loaded).
arena_sum(_) -> erlang:nif_error(not_loaded).

%% Growth of erlang:memory(total) across Hold(), and Hold's result;
%% Release() undoes it.
growth(Hold, Release) ->
    erlang:garbage_collect(),
    timer:sleep(100),
    Start = erlang:memory(total),
    R = Hold(),
    Grown = erlang:memory(total) - Start,
    ok = Release(),
    {R, Grown}.

badarg(F) ->
    try F() of R -> {returned, R}
    catch error:badarg -> badarg
    end.

main() ->
    tap:plan(17),
    %% leaks/noleak, as the seed: detect while an 8-byte block is live.
    tap:diag("====== the following leak report is expected: ====== START"),
    tap:ok(leaks(), "leaks() is true: the global GPA reports the live block"),
    tap:diag("==================================================== END"),
    tap:ok(not noleak(), "noleak() is false: freed before the check"),
    tap:is(gpa_live(), {0, 0}, "global GPA: nothing live afterwards"),

    %% The global GPA's memory is the VM's (GPA -> wide -> enif_alloc).
    {ok, Gpa} = growth(fun() -> gpa_hold(1000000) end, fun gpa_release/0),
    tap:ok(Gpa >= 1000000,
           io_lib:format("global GPA: memory(total) grew by ~b >= 1000000", [Gpa])),
    ok = gpa_hold(1000000),
    {Blocks, Bytes} = gpa_live(),
    tap:ok(Blocks =:= 1 andalso Bytes >= 1000000,
           io_lib:format("global GPA stats while holding: ~b block, ~b bytes",
                         [Blocks, Bytes])),
    tap:diag("====== a leak report for the held block is expected: == START"),
    tap:is(gpa_detect(), 1, "a leak check from a NIF finds the held block"),
    tap:diag("==================================================== END"),
    ok = gpa_release(),
    tap:is(gpa_detect(), 0, "after the free, the leak check finds nothing"),

    %% with_arena, arena_sum
    tap:is(with_arena(), [0, 1, 2, 3], "with_arena() == [0,1,2,3]"),
    tap:is(arena_sum([1, 2, 3]), 6, "arena_sum([1,2,3]) == 6"),
    tap:is(arena_sum([]), 0, "arena_sum([]) == 0"),
    tap:is(arena_sum(lists:seq(1, 100000)), 5000050000,
           "arena_sum(lists:seq(1,100000)): 800 KB decoded into the arena"),
    tap:is(arena_sum([18446744073709551615, 0]), 18446744073709551615,
           "arena_sum: the full u64 range"),
    tap:is(badarg(fun() -> arena_sum([1, foo, 3]) end), badarg,
           "arena_sum([1,foo,3]): badarg"),
    tap:is(badarg(fun() -> arena_sum([1, -2]) end), badarg,
           "arena_sum([1,-2]): badarg (not a u64)"),
    tap:is(badarg(fun() -> arena_sum([1 | 2]) end), badarg,
           "arena_sum([1|2]): badarg (improper list)"),

    %% An arena over the BEAM base: its chunks are the VM's memory.
    {Cap, Arena} = growth(fun() -> arena_hold(100, 10000) end,
                          fun arena_release/0),
    tap:ok(Cap >= 1000000 andalso Arena >= 1000000,
           io_lib:format("arena over beam: capacity ~b, memory(total) grew by ~b >= 1000000",
                         [Cap, Arena])),
    tap:is(gpa_live(), {0, 0}, "global GPA: nothing live at the end"),
    tap:done().
