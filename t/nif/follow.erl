%% follow.erl - <beamalloc/nif.h> following a NIF's memory in a real BEAM:
%% a GPA's stats as a map (exact figures, and the time of one call), leak
%% checks across enif_schedule_nif() steps, on threads of their own, and
%% in resources that own an allocator, found at destruction.
-module(follow).
-export([main/0]).
-export([reports/0, st_alloc/3, st_free_all/1, st_stats/1, st_peak/0,
         st_time/2, chain3/1, chain_raise/1, chain_wide/1,
         chain_last_step/0, thr/2, thr_zeroed/0, own_zeroed/0,
         own_new/2, own_push/2, own_sum/1]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "follow_nif"), 0).

reports() -> erlang:nif_error(not_loaded).
st_alloc(_, _, _) -> erlang:nif_error(not_loaded).
st_free_all(_) -> erlang:nif_error(not_loaded).
st_stats(_) -> erlang:nif_error(not_loaded).
st_peak() -> erlang:nif_error(not_loaded).
st_time(_, _) -> erlang:nif_error(not_loaded).
chain3(_) -> erlang:nif_error(not_loaded).
chain_raise(_) -> erlang:nif_error(not_loaded).
chain_wide(_) -> erlang:nif_error(not_loaded).
chain_last_step() -> erlang:nif_error(not_loaded).
thr(_, _) -> erlang:nif_error(not_loaded).
thr_zeroed() -> erlang:nif_error(not_loaded).
own_zeroed() -> erlang:nif_error(not_loaded).
own_new(_, _) -> erlang:nif_error(not_loaded).
own_push(_, _) -> erlang:nif_error(not_loaded).
own_sum(_) -> erlang:nif_error(not_loaded).

run(F) ->
    try F() of R -> {ok, R}
    catch error:E -> nosites({error, E})
    end.

%% A leak's sites are leakcheck.erl's to test: the comparisons here leave
%% them out.
nosites({error, {T, M, #{sites := _} = I}}) -> {error, {T, M, maps:remove(sites, I)}};
nosites(R) -> R.

class(Size, #{classes := Cs}) ->
    [C] = [C || C = #{size := S} <- Cs, S =:= Size],
    maps:with([live_blocks, live_bytes], C).

%% The classes plus large, summed.
sums(#{classes := Cs, large := #{live_blocks := LB, live_bytes := LY}}) ->
    {lists:sum([B || #{live_blocks := B} <- Cs]) + LB,
     lists:sum([Y || #{live_bytes := Y} <- Cs]) + LY}.

stats() ->
    %% 1,000 x 64 B on one thread (the test's process, calls in turn).
    ok = st_alloc(safe, 1000, 64),
    S1 = st_stats(safe),
    tap:is({class(64, S1), maps:with([live_blocks, live_bytes], S1)},
           {#{live_blocks => 1000, live_bytes => 64000},
            #{live_blocks => 1000, live_bytes => 64000}},
           "1,000 x 64 B: class 64 has live_blocks 1000, live_bytes 64000"),
    #{classes := Cs} = S1,
    tap:is([S || #{size := S} <- Cs],
           [8, 16, 24, 32] ++
               [(5 + K) bsl (B - 2) || B <- lists:seq(5, 13), K <- lists:seq(0, 3)],
           "classes: one map per small class, 8 B to 16 KiB (8, 16, 24, 32, then "
           "four per power of two), smallest first"),
    tap:ok(lists:all(fun(K) -> is_map_key(K, S1) end,
                     [live_bytes, peak_bytes, live_blocks, backing_bytes,
                      classes, large]) andalso
           maps:get(backing_bytes, S1) >= 64000 andalso
           maps:get(peak_bytes, S1) >= 64000,
           "the map has live_bytes, peak_bytes >= 64000, live_blocks, "
           "backing_bytes >= 64000, classes, large"),
    %% Mixed sizes, an alignment-free odd length, large blocks.
    ok = st_alloc(safe, 10, 24),
    ok = st_alloc(safe, 5, 100),
    ok = st_alloc(safe, 3, 16385),
    ok = st_alloc(safe, 1, 100000),
    S2 = st_stats(safe),
    Live2 = 64000 + 240 + 500 + 3 * 16385 + 100000,
    tap:is({class(24, S2), class(112, S2), maps:get(large, S2),
            maps:get(live_bytes, S2), maps:get(live_blocks, S2), sums(S2)},
           {#{live_blocks => 10, live_bytes => 240},
            #{live_blocks => 5, live_bytes => 500},
            #{live_blocks => 4, live_bytes => 3 * 16385 + 100000},
            Live2, 1019, {1019, Live2}},
           "mixed sizes (safety on): 24 B in class 24 and 100 B in class 112 "
           "count requested bytes; 4 large; classes + large = live_blocks, live_bytes"),
    %% Safety off: no lengths kept, a class counts whole slots.
    ok = st_alloc(unsafe, 10, 20),
    ok = st_alloc(unsafe, 2, 64),
    ok = st_alloc(unsafe, 1, 20000),
    S3 = st_stats(unsafe),
    tap:is({class(24, S3), class(64, S3), maps:get(large, S3),
            maps:with([live_blocks, live_bytes], S3), sums(S3)},
           {#{live_blocks => 10, live_bytes => 240},
            #{live_blocks => 2, live_bytes => 128},
            #{live_blocks => 1, live_bytes => 20000},
            #{live_blocks => 13, live_bytes => 20328},
            {13, 20368}},
           "safety off: exact blocks; a class's live_bytes is its slots' bytes "
           "(240 for 10 x 20 B), live_bytes stays requested (sums differ by 40)"),
    %% Freed: all zero.
    ok = st_free_all(safe), ok = st_free_all(unsafe),
    S4 = st_stats(safe),
    tap:is({maps:with([live_blocks, live_bytes], S4), sums(S4),
            maps:get(large, S4)},
           {#{live_blocks => 0, live_bytes => 0}, {0, 0},
            #{live_blocks => 0, live_bytes => 0}},
           "all freed: every figure back to 0"),
    %% The peak, reset (in one call: one thread).
    {P0, Ret, P1, L1, P2} = st_peak(),
    tap:ok(P0 >= 64000 + 240 + 500 + 3 * 16385 + 100000 andalso Ret =:= P0
           andalso P1 =:= L1 andalso L1 =:= 0 andalso P2 =:= 1000,
           io_lib:format("reset_peak: returns the old peak (~b), the peak is "
                         "then live (~b = ~b), and follows 1000 B: ~b",
                         [Ret, P1, L1, P2])),
    %% Time of one call, 10,000 live blocks.
    ok = st_alloc(safe, 10000, 64),
    #{live_blocks := 10000} = st_stats(safe),
    Ns = st_time(safe, 200),
    tap:diag(io_lib:format("beamalloc_nif_make_stats: ~.2f us per call "
                           "(best of 5 x 200, 10,000 live blocks of 64 B)",
                           [Ns / 1000])),
    %% Time is the benchmarks' business: here only that the calls read.
    After = st_stats(safe),
    tap:ok(maps:get(live_blocks, After) =:= 10000 andalso
           maps:get(live_bytes, After) =:= 640000,
           "1,000 make_stats calls change nothing: 10,000 blocks, 640,000 bytes live"),
    ok = st_free_all(safe),
    G = st_stats(global),
    tap:ok(is_map(G) andalso length(maps:get(classes, G)) =:= 40,
           "make_stats(env, NULL): the global GPA's map").

chains() ->
    reports(),
    tap:is({run(fun() -> chain3(false) end), chain_last_step(), reports()},
           {{ok, {done, 3}}, 3, {0, 0, 0, 0}},
           "chain3(false): 3 steps (one dirty), state carried, clean: {done, 3}"),
    R = run(fun() -> chain3(true) end),
    tap:is({R, chain_last_step(), reports()},
           {{error, {memory_leak,
                     <<"memory leak detected in function chain3/1: "
                       "24 bytes in 1 block">>,
                     #{function => <<"chain3/1">>, bytes => 24, blocks => 1}}},
            3, {1, 24, 0, 0}},
           "chain3(true): the 24 B leaked in step 2 raises {memory_leak, _, "
           "#{bytes := 24, blocks := 1}} from step 3; reported once"),
    tap:is({run(fun() -> chain_raise(true) end), chain_last_step(), reports()},
           {{error, boom}, 2, {0, 0, 0, 0}},
           "chain raising in step 2 after freeing: its own exception, "
           "nothing reported"),
    tap:is({run(fun() -> chain_raise(false) end), reports()},
           {{error, {memory_leak,
                     <<"memory leak detected in function chain_raise/1: "
                       "16 bytes in 1 block">>,
                     #{function => <<"chain_raise/1">>, bytes => 16,
                       blocks => 1}}},
            {1, 16, 0, 0}},
           "chain raising in step 2 with its state live: the allocator is "
           "released at once, its leak reported and raised"),
    Wide1 = {run(fun() -> chain_wide(true) end), chain_last_step(), reports()},
    Wide2 = {run(fun() -> chain_wide(false) end), chain_last_step(), reports()},
    tap:is({Wide1, Wide2},
           {{{error, badarg}, 1, {0, 0, 0, 0}},
            {{error, {memory_leak,
                      <<"memory leak detected in function chain_wide/1: "
                        "16 bytes in 1 block">>,
                      #{function => <<"chain_wide/1">>, bytes => 16,
                        blocks => 1}}}, 1, {1, 16, 0, 0}}},
           "a next step with BEAMALLOC_NIF_CHAIN_MAX_ARGS + 1 arguments: "
           "badarg, which ends the chain (its leak raised in its place)"),
    %% Many chains, none left behind.
    [{ok, {done, 3}} = run(fun() -> chain3(false) end) || _ <- lists:seq(1, 200)],
    tap:is(reports(), {0, 0, 0, 0}, "200 more clean chains: nothing reported").

await(Ref) ->
    receive {beamalloc_thread, Ref, R} -> nosites(R) after 10000 -> timeout end.

threads() ->
    reports(),
    Ref = thr(clean, lists:seq(1, 100)),
    tap:is({is_reference(Ref), await(Ref), reports()},
           {true, {ok, 5050}, {0, 0, 0, 0}},
           "thread, clean: {beamalloc_thread, Ref, {ok, 5050}}"),
    Ref2 = thr(leak, [1, 2, 3]),
    tap:is({await(Ref2), reports()},
           {{error, {memory_leak,
                     <<"memory leak detected in function thr_sum: "
                       "24 bytes in 1 block">>,
                     #{function => <<"thr_sum">>, bytes => 24, blocks => 1}}},
            {1, 24, 0, 0}},
           "thread leaking 24 B: {error, {memory_leak, _, #{bytes := 24, "
           "blocks := 1}}} sent, leak reported"),
    Ref3 = thr(double_free, [1]),
    case await(Ref3) of
        {error, {memory_error, _, #{kind := <<"double free">>,
                                    bad_calls := 1, bytes := 0}}} = E ->
            tap:is({E =/= x, reports()}, {true, {0, 0, 1, 0}},
                   "thread double-freeing: {error, {memory_error, _, "
                   "#{kind := <<\"double free\">>}}} sent");
        Other -> tap:is(Other, memory_error, "thread double-freeing")
    end,
    Refs = [{N, thr(clean, lists:seq(1, N))} || N <- lists:seq(1, 16)],
    tap:is([await(R) || {_, R} <- Refs],
           [{ok, N * (N + 1) div 2} || {N, _} <- Refs],
           "16 threads at once: each result to its own reference"),
    tap:is({run(fun thr_zeroed/0), reports()}, {{error, einval}, {0, 0, 0, 0}},
           "thread with a config never initialised (struct_size 0): "
           "einval, as the leak check raises, not enomem").

%% A resource's destructor runs once no term refers to it: drop it with
%% the process that held it, then wait for the cleanup's count.
in_proc(F) ->
    {Pid, Mon} = spawn_monitor(fun() -> exit({done, F()}) end),
    receive {'DOWN', Mon, process, Pid, {done, R}} -> R end.

wait_reports(N) ->
    wait_reports(N, 200).
wait_reports(_, 0) -> reports();
wait_reports(N, T) ->
    erlang:garbage_collect(),
    case reports() of
        {L, B, M, C} when C >= N ->
            %% The destructor's leak check follows its cleanup.
            timer:sleep(50),
            {L2, B2, M2, C2} = reports(),
            {L + L2, B + B2, M + M2, C + C2};
        {0, 0, 0, 0} -> timer:sleep(10), wait_reports(N, T - 1);
        R -> R
    end.

owned() ->
    reports(),
    Use = fun(Kind, Tidy) ->
              fun() ->
                  V = own_new(Kind, Tidy),
                  [own_push(V, I) || I <- lists:seq(1, 100)],
                  own_sum(V)
              end
          end,
    tap:is({in_proc(Use(gpa, true)), wait_reports(1)}, {5050, {0, 0, 0, 1}},
           "resource owning a GPA, cleaned up: destructor ran, no leak"),
    tap:is({in_proc(Use(gpa, false)), wait_reports(1)}, {5050, {1, 1024, 0, 1}},
           "resource owning a GPA, vector left: the destructor's leak check "
           "reports 1 block of 1024 B (128 x 8 B) through the report function"),
    tap:is({in_proc(Use(arena, false)), wait_reports(1)}, {5050, {0, 0, 0, 1}},
           "resource owning an arena: destructor ran, the arena goes whole"),
    V = own_new(gpa, true),
    own_push(V, 7),
    tap:is({own_sum(V), reports()}, {7, {0, 0, 0, 0}},
           "a live resource keeps its allocator"),
    tap:is({run(fun own_zeroed/0), reports()}, {{error, einval}, {0, 0, 0, 0}},
           "resource owning a GPA with a config never initialised "
           "(struct_size 0): NULL with errno EINVAL, not ENOMEM").

main() ->
    tap:plan(25),
    tap:diag("the leak reports below are captured, not printed"),
    stats(),
    chains(),
    threads(),
    owned(),
    tap:done().
