%% nifbench.erl - drives nifbench_nif inside a real BEAM: every workload
%% with every allocator, on a normal and on a dirty CPU scheduler,
%% interleaved and repeated; then erlang:memory(system) before, at the
%% peak and after a fresh instance holds 10,000 random blocks.
%%
%%   erl -noshell -pa DIR -eval 'nifbench:main(["5", "1.0", "OUTDIR"])'
-module(nifbench).
-export([main/1]).
-export([names/0, in_vm/0, run/3, run_dirty/3, hold/2, drop/0, destroy/0,
         lc_checked/1, lc_plain/1, leakcheck_cost/1, ho_make/2, ho_free/2,
         handoff/2, handoff_main/1]).
-on_load(init/0).

init() ->
    erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "nifbench_nif"), 0).

names() -> erlang:nif_error(not_loaded).
in_vm() -> erlang:nif_error(not_loaded).
run(_, _, _) -> erlang:nif_error(not_loaded).
run_dirty(_, _, _) -> erlang:nif_error(not_loaded).
hold(_, _) -> erlang:nif_error(not_loaded).
drop() -> erlang:nif_error(not_loaded).
destroy() -> erlang:nif_error(not_loaded).
lc_checked(_) -> erlang:nif_error(not_loaded).
lc_plain(_) -> erlang:nif_error(not_loaded).
ho_make(_, _) -> erlang:nif_error(not_loaded).
ho_free(_, _) -> erlang:nif_error(not_loaded).

-define(HOLD_BLOCKS, 10000).

main([RepsS, ScaleS, OutDir]) ->
    Reps = list_to_integer(RepsS),
    Scale = list_to_float(ScaleS),
    true = in_vm(),
    {Allocs, Wls} = names(),
    Cells = [{A, W, S} || W <- idx(Wls), A <- idx(Allocs),
                          S <- [normal, dirty]],
    %% One warm-up round, then Reps rounds, the allocator order rotated.
    _ = round(Cells, Scale, 0),
    Runs = lists:append([round(Cells, Scale, R) || R <- lists:seq(1, Reps)]),
    Res = summarize(Runs),
    Mem = [memory(A, Name) || {A, Name} <- idx(Allocs)],
    write_csv(OutDir, Allocs, Wls, Reps, Res, Mem),
    print(Allocs, Wls, Res, Mem),
    Ratios = ratios(Allocs, Wls, Res),
    Lc = leakcheck_cost(Reps),
    write_ratios(OutDir, Ratios ++ Lc),
    halt(0).

idx(L) -> lists:zip(lists:seq(0, length(L) - 1), L).

rotate(L, N) ->
    K = N rem length(L),
    {A, B} = lists:split(K, L),
    B ++ A.

round(Cells, Scale, R) ->
    lists:filtermap(
      fun({{A, _}, {W, _}, S}) ->
              Fun = case S of normal -> run; dirty -> run_dirty end,
              case ?MODULE:Fun(A, W, Scale) of
                  {Ns, Ops} -> {true, {{A, W, S}, Ns / Ops}};
                  _ -> false
              end
      end, rotate(Cells, R * 7)).

summarize(Runs) ->
    Groups = lists:foldl(fun({K, V}, M) ->
                                 maps:update_with(K, fun(L) -> [V | L] end,
                                                  [V], M)
                         end, #{}, Runs),
    maps:map(fun(_, L) -> {median(L), lists:min(L), length(L)} end, Groups).

median(L) ->
    S = lists:sort(L),
    N = length(S),
    case N rem 2 of
        1 -> lists:nth(N div 2 + 1, S);
        0 -> (lists:nth(N div 2, S) + lists:nth(N div 2 + 1, S)) / 2
    end.

system() ->
    erlang:garbage_collect(),
    erlang:memory(system).

memory(A, Name) ->
    Before = system(),
    case hold(A, ?HOLD_BLOCKS) of
        unavailable -> {Name, unavailable};
        Live ->
            Peak = system(),
            ok = drop(),
            AfterFree = system(),
            timer:sleep(1000),
            Idle = system(),
            ok = destroy(),
            After = system(),
            {Name, {Live, Before, Peak, AfterFree, Idle, After}}
    end.

fmt(F, A) -> lists:flatten(io_lib:format(F, A)).

write_csv(Dir, Allocs, Wls, Reps, Res, Mem) ->
    Rows = [fmt("~s,~s,~s,~b,~.2f,~.2f~n",
                [An, Wn, S, Reps, Med, Min])
            || {W, Wn} <- idx(Wls), {A, An} <- idx(Allocs),
               S <- [normal, dirty],
               {Med, Min, _} <- [maps:get({A, W, S}, Res, none)]],
    ok = file:write_file(filename:join(Dir, "nif.csv"),
                         ["allocator,workload,scheduler,reps,ns_median,"
                          "ns_min\n" | Rows]),
    MRows = [fmt("~s,~b,~b,~b,~b,~b,~b,~b,~.3f~n",
                 [N, ?HOLD_BLOCKS, Live, B, P, F, I, D, (P - B) / Live])
             || {N, {Live, B, P, F, I, D}} <- Mem],
    ok = file:write_file(filename:join(Dir, "nif_memory.csv"),
                         ["allocator,blocks,live_bytes,system_before,"
                          "system_peak,system_after_free,"
                          "system_after_1s_idle,"
                          "system_after_destroy,peak_delta_per_live\n"
                          | MRows]).

print(Allocs, Wls, Res, Mem) ->
    io:format("~nInside erl (~s, ERTS ~s): ns per operation, median (min)~n",
              [erlang:system_info(otp_release), erlang:system_info(version)]),
    io:format("~-10s ~-9s ~22s ~22s~n",
              ["workload", "allocator", "normal scheduler", "dirty CPU"]),
    [io:format("~-10s ~-9s ~22s ~22s~n",
               [Wn, An, cell(Res, {A, W, normal}), cell(Res, {A, W, dirty})])
     || {W, Wn} <- idx(Wls), {A, An} <- idx(Allocs)],
    io:format("~nerlang:memory(system) around ~b live blocks of 8..4096 B "
              "(bytes)~n", [?HOLD_BLOCKS]),
    io:format("~-9s ~10s ~12s ~12s ~12s ~12s ~13s~n",
              ["allocator", "live", "peak-before", "per live B",
               "after free", "1 s idle", "after destroy"]),
    [case M of
         unavailable -> io:format("~-9s unavailable~n", [N]);
         {Live, B, P, F, I, D} ->
             io:format("~-9s ~10b ~12b ~12.3f ~12b ~12b ~13b~n",
                       [N, Live, P - B, (P - B) / Live, F - B, I - B,
                        D - B])
     end || {N, M} <- Mem],
    ok.

cell(Res, K) ->
    case maps:get(K, Res, none) of
        none -> "-";
        {Med, Min, _} -> fmt("~.1f (~.1f)", [Med, Min])
    end.

%% enif/X: how many times faster X is than raw enif_alloc.
ratios(Allocs, Wls, Res) ->
    Pos = fun(Name, L) ->
                  hd([I || {I, N} <- idx(L), N =:= Name] ++ [-1])
          end,
    Want = [{enif, 'gpa-fast', pair64, 10.0}, {enif, 'gpa-fast', lifo1000, 0},
            {enif, 'gpa-fast', rand1k, 0}, {enif, 'gpa-safe', pair64, 0},
            {enif, arena, reset10k, 0}, {enif, beam, pair64, 0},
            {malloc, 'gpa-fast', pair64, 0}, {enif, 'gpa-fast', grow1m, 0}],
    io:format("~n~-34s ~8s ~8s ~8s~n", ["ratio (ns per op)", "normal",
                                         "dirty", "target"]),
    lists:filtermap(
      fun({Den, Num, W, Target}) ->
              D = Pos(Den, Allocs), N = Pos(Num, Allocs), Wi = Pos(W, Wls),
              case [maps:get({X, Wi, S}, Res, none)
                    || X <- [D, N], S <- [normal, dirty]] of
                  [{Dn, Dnm, _}, {Dd, Ddm, _}, {Nn, Nnm, _}, {Nd, Ndm, _}] ->
                      Name = fmt("~s/~s ~s", [Den, Num, W]),
                      {Rn, Rd} = {Dn / Nn, Dd / Nd},
                      {Mn, Md} = {Dnm / Nnm, Ddm / Ndm},
                      {Tgt, Met} =
                          case Target of
                              0 -> {"", ""};
                              T -> {fmt(">=~.1f", [T]),
                                    case Rn >= T of true -> "met";
                                        false -> "NOT MET" end}
                          end,
                      io:format("~-34s ~8.2f ~8.2f ~8s  ~s"
                                "   (minima: ~.2f ~.2f)~n",
                                [Name, Rn, Rd, Tgt, Met, Mn, Md]),
                      {true, fmt("nif,~s,~s,~.3f,~.3f,~.3f,~.3f,~s,~s~n",
                                 [fmt("~s/~s", [Den, Num]), W, Rn, Rd,
                                  Mn, Md, Tgt, Met])};
                  _ -> false
              end
      end, Want).

write_ratios(Dir, Rows) ->
    ok = file:write_file(filename:join(Dir, "nif_ratios.csv"),
                         ["kind,ratio,workload,normal,dirty,normal_min,"
                          "dirty_min,target,verdict\n"
                          | Rows]).

%% What BEAMALLOC_NIF_LEAK_CHECKED adds to a NIF call: 20,000 calls whose
%% body takes and frees 4 blocks of 64 B, leak-checked (a fresh GPA each
%% call) and not (the global GPA), interleaved; us per call, medians.
-define(LC_CALLS, 20000).

leakcheck_cost(Reps) ->
    Time = fun(F) ->
                   {Us, ok} = timer:tc(fun() -> lc_loop(F, ?LC_CALLS) end),
                   Us / ?LC_CALLS
           end,
    _ = [Time(F) || F <- [fun lc_checked/1, fun lc_plain/1]],
    Pairs = [{Time(fun lc_checked/1), Time(fun lc_plain/1)}
             || _ <- lists:seq(1, Reps)],
    C = median([X || {X, _} <- Pairs]),
    P = median([Y || {_, Y} <- Pairs]),
    Met = case C - P =< 1.0 of true -> "met"; false -> "NOT MET" end,
    io:format("~nleak-checked NIF call (4 x 64 B): ~.2f us; unchecked: "
              "~.2f us; the check adds ~.2f us (target <=1.0) ~s~n",
              [C, P, C - P, Met]),
    [fmt("nif,checked-plain us,leakcheck4,~.3f,,,,<=1.0,~s~n",
         [C - P, Met])].

lc_loop(_, 0) -> ok;
lc_loop(F, N) -> ok = F(4), lc_loop(F, N - 1).

%% Blocks handed between schedulers: with S schedulers online, S producer
%% processes each make batches of 256 blocks of 64 B (ho_make) and send
%% them to a consumer process of their own, which frees them (ho_free)
%% wherever it runs; 2S busy processes keep every scheduler busy, and the
%% VM's balancing puts producers and consumers on different ones.  At
%% most 4 batches in flight per pair.  Millions of blocks per second
%% (allocated and freed), medians of Reps interleaved runs, at 1
%% scheduler and at all of them.
-define(HO_BATCH, 256).

%% erl +S N:N ... -eval 'nifbench:handoff_main(["5", "1.0", "OUTDIR"])'
handoff_main([RepsS, ScaleS, OutDir]) ->
    true = in_vm(),
    Rows = handoff(list_to_integer(RepsS), list_to_float(ScaleS)),
    ok = file:write_file(filename:join(OutDir, "nif_handoff.csv"),
                         ["kind,ratio,workload,normal,dirty,normal_min,"
                          "dirty_min,target,verdict\n" | Rows]),
    halt(0).
-define(HO_WINDOW, 4).

handoff(Reps, Scale) ->
    {Allocs, _} = names(),
    Use = [{I, N} || {I, N} <- idx(Allocs),
                     lists:member(N, [enif, 'gpa-fast', 'gpa-safe'])],
    Batches = max(1, round(2000 * Scale)),
    Online = erlang:system_info(schedulers_online),
    Counts = lists:usort([1, Online]),
    Runs = [{S, N, ho_run(I, S, Batches)}
            || _ <- lists:seq(1, Reps), S <- Counts, {I, N} <- Use],
    _ = erlang:system_flag(schedulers_online, Online),
    Med = fun(S, N) -> median([R || {S1, N1, R} <- Runs, S1 =:= S,
                                    N1 =:= N]) end,
    io:format("~nBlocks handed between schedulers (64 B, batches of ~b): "
              "M blocks/s, median of ~b~n", [?HO_BATCH, Reps]),
    io:format("~-10s~s~n", ["allocator",
              lists:flatten([fmt(" ~14s", [fmt("~b scheduler(s)", [S])])
                             || S <- Counts])]),
    [io:format("~-10s~s~n", [N, lists:flatten(
                                   [fmt(" ~14.2f", [Med(S, N)])
                                    || S <- Counts])])
     || {_, N} <- Use],
    Top = lists:last(Counts),
    Rows = [{"enif/gpa-fast handoff", Med(Top, 'gpa-fast') / Med(Top, enif),
             5.0},
            {"enif/gpa-safe handoff", Med(Top, 'gpa-safe') / Med(Top, enif),
             5.0},
            {"gpa-fast 1->N scaling", Med(Top, 'gpa-fast') / Med(1, 'gpa-fast'),
             0},
            {"enif 1->N scaling", Med(Top, enif) / Med(1, enif), 0}],
    [begin
         {Tgt, Met} = case T of
                          0 -> {"", ""};
                          _ -> {fmt(">=~.1f", [T]),
                                case R >= T of true -> "met";
                                    false -> "NOT MET" end}
                      end,
         io:format("~-34s ~8.2f ~8s  ~s~n", [Name, R, Tgt, Met]),
         fmt("nif,~s,handoff,~.3f,,,,~s,~s~n", [Name, R, Tgt, Met])
     end || {Name, R, T} <- Rows].

%% One run: M blocks per second through S producer/consumer pairs.
ho_run(A, S, Batches) ->
    _ = erlang:system_flag(schedulers_online, S),
    Self = self(),
    T0 = erlang:monotonic_time(nanosecond),
    Pids = [spawn_link(fun() -> ho_producer(A, Batches, Self) end)
            || _ <- lists:seq(1, S)],
    [receive {done, P} -> ok end || P <- Pids],
    Ns = erlang:monotonic_time(nanosecond) - T0,
    S * Batches * ?HO_BATCH * 1000 / Ns.

ho_producer(A, Batches, Parent) ->
    Me = self(),
    C = spawn_link(fun() -> ho_consumer(A, Me) end),
    ho_send(A, C, Batches, 0),
    C ! stop,
    receive stopped -> ok end,
    Parent ! {done, Me}.

ho_send(_, _, 0, 0) -> ok;
ho_send(A, C, 0, InFlight) ->
    receive freed -> ho_send(A, C, 0, InFlight - 1) end;
ho_send(A, C, Left, InFlight) when InFlight >= ?HO_WINDOW ->
    receive freed -> ho_send(A, C, Left, InFlight - 1) end;
ho_send(A, C, Left, InFlight) ->
    C ! {blocks, ho_make(A, ?HO_BATCH)},
    ho_send(A, C, Left - 1, InFlight + 1).

ho_consumer(A, P) ->
    receive
        {blocks, Bin} -> ok = ho_free(A, Bin), P ! freed, ho_consumer(A, P);
        stop -> P ! stopped
    end.
