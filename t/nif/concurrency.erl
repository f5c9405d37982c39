%% concurrency.erl - the global GPA shared at once by 1000 Erlang processes
%% on every normal scheduler, dirty CPU NIFs and enif_thread_create
%% threads; blocks also cross processes and schedulers.  Afterwards the
%% GPA holds nothing and erlang:memory(system) is back where it was.
-module(concurrency).
-export([main/0]).
-export([churn/2, churn_dirty/2, keep/1, drop/1, threads_start/3,
         threads_join/1, gpa_state/0, rendezvous/0,
         settled/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "conc_nif"), 0).

churn(_, _) -> erlang:nif_error(not_loaded).
churn_dirty(_, _) -> erlang:nif_error(not_loaded).
keep(_) -> erlang:nif_error(not_loaded).
drop(_) -> erlang:nif_error(not_loaded).
threads_start(_, _, _) -> erlang:nif_error(not_loaded).
threads_join(_) -> erlang:nif_error(not_loaded).
gpa_state() -> erlang:nif_error(not_loaded).
rendezvous() -> erlang:nif_error(not_loaded).
settled() -> erlang:nif_error(not_loaded).

-define(PROCS, 1000).
-define(MIN_ROUNDS, 5).
-define(NORMAL, 1).     % ERL_NIF_THR_NORMAL_SCHEDULER
-define(DIRTY_CPU, 2).  % ERL_NIF_THR_DIRTY_CPU_SCHEDULER
-define(UNDEFINED, 0).  % ERL_NIF_THR_UNDEFINED: not a scheduler thread

%% One of the 1000: hand a parcel of blocks to the next process, churn
%% (at least MIN_ROUNDS) until the rendezvous (conc_nif.c) is settled or
%% the dirty NIFs and the threads are done: so those waiting there always
%% find normal scheduler NIFs coming.  Free the parcel received from the
%% previous one.
worker(I, Parent, Seen, Stop) ->
    receive {go, Next} -> ok end,
    Next ! {parcel, keep(I)},
    Churned = churn_loop(I, Seen, Stop, 0, {0, [], [], 0}),
    Dropped = receive {parcel, P} -> drop(P) end,
    Parent ! {done, self(), Churned, Dropped}.

%% Churned: {Calls, ThreadTypes, Schedulers, Errors}.
churn_loop(I, Seen, Stop, K, {Calls, Types, Scheds, Errors} = Acc) ->
    case K >= ?MIN_ROUNDS andalso (atomics:get(Stop, 1) =:= 1 orelse settled()) of
        true -> Acc;
        false ->
            {Type, Sched, E} = churn(4, I * 1000003 + K),
            case Sched >= 1 andalso Sched =< maps:get(size, counters:info(Seen)) of
                true -> counters:add(Seen, Sched, 1);
                false -> ok
            end,
            churn_loop(I, Seen, Stop, K + 1,
                       {Calls + 1, add(Type, Types), add(Sched, Scheds), Errors + E})
    end.

add(X, Set) ->
    case lists:member(X, Set) of
        true -> Set;
        false -> [X | Set]
    end.

%% Until every normal scheduler has run a churn (or 20 s passed).
wait_seen(Seen, N, Tries) ->
    Counts = [counters:get(Seen, S) || S <- lists:seq(1, N)],
    case lists:all(fun(C) -> C > 0 end, Counts) orelse Tries =:= 0 of
        true -> Counts;
        false -> timer:sleep(5), wait_seen(Seen, N, Tries - 1)
    end.

main() ->
    tap:plan(15),
    N = erlang:system_info(schedulers_online),
    D = erlang:system_info(dirty_cpu_schedulers_online),
    tap:diag(io_lib:format("~b normal schedulers, ~b dirty CPU schedulers", [N, D])),
    %% High priority: the poll for "every scheduler seen" must not wait
    %% behind the 1000 workers.
    process_flag(priority, high),
    Seen = counters:new(N, [write_concurrency]),
    Stop = atomics:new(1, []),
    Self = self(),
    erlang:garbage_collect(),
    timer:sleep(100),
    Before = erlang:memory(system),

    %% All at once: threads, dirty NIFs, 1000 processes.
    Crew = threads_start(4, 3000, 17),
    Dirty = [spawn_link(fun() ->
                 Self ! {dirty, [churn_dirty(150, S * 7919 + K) || K <- lists:seq(1, 10)]}
             end) || S <- lists:seq(1, 2 * D)],
    Procs = [spawn_link(fun() -> worker(I, Self, Seen, Stop) end)
             || I <- lists:seq(1, ?PROCS)],
    [P ! {go, Next} || {P, Next} <- lists:zip(Procs, tl(Procs) ++ [hd(Procs)])],
    Counts = wait_seen(Seen, N, 4000),
    %% The workers go on until all three kinds of caller have met at the
    %% rendezvous (or a waiter there gave up, or the others are done).
    DirtyRes = lists:append([receive {dirty, R} -> R end || _ <- Dirty]),
    Threads = threads_join(Crew),
    atomics:put(Stop, 1, 1),
    Done = [receive {done, P, R, Dr} -> {R, Dr} end || P <- Procs],

    %% Normal schedulers.
    Churns = [R || {R, _} <- Done],
    Calls = lists:sum([C || {C, _, _, _} <- Churns]),
    tap:is(length(Done), ?PROCS, "1000 processes finished"),
    tap:ok(Calls >= ?PROCS * ?MIN_ROUNDS,
           io_lib:format("~b churn NIF calls (4 rounds x 16 blocks each)",
                         [Calls])),
    tap:is(lists:usort(lists:append([T || {_, T, _, _} <- Churns])), [?NORMAL],
           "every churn ran on a normal scheduler (enif_thread_type)"),
    tap:is(lists:sum([E || {_, _, _, E} <- Churns]), 0,
           "no block was misaligned or overwritten"),
    tap:is(lists:usort(lists:append([S || {_, _, S, _} <- Churns])), lists:seq(1, N),
           io_lib:format("the NIFs ran on all ~b normal schedulers (thread names "
                         "\"K_scheduler\"; calls per scheduler ~w)", [N, Counts])),

    %% Blocks freed by another process, on another scheduler.
    Drops = [Dr || {_, Dr} <- Done],
    tap:is(lists:sum([E || {E, _} <- Drops]), 0,
           "1000 parcels of 16 blocks freed by the next process, contents intact"),
    Cross = length([x || {_, true} <- Drops]),
    tap:ok(N =:= 1 orelse Cross > 0,
           io_lib:format("~b parcels were freed on another scheduler than "
                         "the one that allocated them", [Cross])),

    %% Dirty CPU schedulers.
    tap:is(lists:usort([T || {T, _, _} <- DirtyRes]), [?DIRTY_CPU],
           io_lib:format("~b dirty churn calls, all on dirty CPU schedulers ~w",
                         [length(DirtyRes), lists:usort([S || {_, S, _} <- DirtyRes])])),
    tap:is(lists:sum([E || {_, _, E} <- DirtyRes]), 0,
           "dirty NIFs: no block misaligned or overwritten"),

    %% enif_thread_create threads.
    tap:is([{T, C} || {T, C, _} <- Threads], lists:duplicate(4, {?UNDEFINED, 300}),
           "4 enif_thread_create threads ran 300 churn calls each"),
    tap:is(lists:sum([E || {_, _, E} <- Threads]), 0,
           "threads: no block misaligned or overwritten"),

    %% The rendezvous (conc_nif.c): each kind waited there holding blocks
    %% until all three were in, up to 60 s.
    Meeting = rendezvous(),
    tap:ok(element(1, Meeting) =:= met,
           "normal schedulers, dirty schedulers and threads were in the GPA at the same time"),
    case Meeting of
        {met, {Nn, Nd, Nt}} ->
            tap:diag(io_lib:format("at the rendezvous, holding blocks at once: ~b normal "
                                   "scheduler NIF(s), ~b dirty NIF(s), ~b thread(s)",
                                   [Nn, Nd, Nt]));
        {timeout, Missing, Arrived} ->
            tap:diag(io_lib:format("the rendezvous timed out after 60 s; never arrived "
                                   "while the others waited: ~w (ever arrived: ~w)",
                                   [Missing, Arrived]));
        {not_met, Never, Arrived} ->
            tap:diag(io_lib:format("nobody waited at the rendezvous; never arrived: ~w "
                                   "(arrived: ~w)", [Never, Arrived]))
    end,

    %% Afterwards: nothing live, memory back.
    {LiveBlocks, LiveBytes, Leaks, Backing, Peak} = gpa_state(),
    tap:is({LiveBlocks, LiveBytes, Leaks}, {0, 0, 0},
           "the global GPA: 0 live blocks, 0 live bytes, 0 leaks detected"),
    tap:diag(io_lib:format("global GPA: peak ~b bytes live, ~b bytes still held "
                           "from its backing allocator", [Peak, Backing])),
    erlang:garbage_collect(),
    timer:sleep(200),
    After = erlang:memory(system),
    tap:ok(abs(After - Before) =< 1 bsl 20,
           io_lib:format("memory(system) ~b -> ~b (~b): back within 1 MiB",
                         [Before, After, After - Before])),
    tap:ok(lists:all(fun(P) -> not is_process_alive(P) end, Procs ++ Dirty),
           "all processes exited"),
    tap:done().
