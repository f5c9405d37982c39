%% beamalloc_example.erl - the Erlang side of the example NIF.
%%
%%   erl -noshell -pa . -eval 'beamalloc_example:main(), halt().'
%%
%% prints what libbeamalloc does inside the VM, and halts with status 1 if
%% anything is not as expected.
-module(beamalloc_example).
-export([main/0]).
-export([hold/1, release/0, page_address/0, arena_sum/1, tidy/1, leaky/1,
         leak_report/0, stats/0]).
-on_load(init/0).

init() ->
    Dir = filename:dirname(code:which(?MODULE)),
    erlang:load_nif(filename:join(Dir, "beamalloc_example"), 0).

hold(_Bytes) -> erlang:nif_error(not_loaded).
release() -> erlang:nif_error(not_loaded).
page_address() -> erlang:nif_error(not_loaded).
arena_sum(_List) -> erlang:nif_error(not_loaded).
tidy(_Numbers) -> erlang:nif_error(not_loaded).
leaky(_Numbers) -> erlang:nif_error(not_loaded).
leak_report() -> erlang:nif_error(not_loaded).
stats() -> erlang:nif_error(not_loaded).

main() ->
    Checks = [tracked(), aligned(), arena(), leak_check(), report(), stats_map()],
    case lists:all(fun(C) -> C end, Checks) of
        true -> ok;
        false -> io:format("UNEXPECTED: see above~n"), erlang:halt(1)
    end.

%% 1. Memory from beamalloc_beam() is the VM's: erlang:memory(system) sees it.
tracked() ->
    Bytes = 4000000,
    erlang:garbage_collect(),
    timer:sleep(100),
    Before = erlang:memory(system),
    ok = hold(Bytes),
    Holding = erlang:memory(system),
    ok = release(),
    After = erlang:memory(system),
    io:format("VM-tracked memory: erlang:memory(system) ~b bytes before, ~b while "
              "the NIF holds ~b bytes (+~b), ~b after it frees them (~s~b)~n",
              [Before, Holding, Bytes, Holding - Before, After,
               sign(After - Before), After - Before]),
    Holding - Before >= Bytes andalso After - Before < Bytes.

sign(N) when N >= 0 -> "+";
sign(_) -> "".

%% 2. Any alignment through the wide allocator.
aligned() ->
    Addr = page_address(),
    io:format("4096-aligned block: address 16#~.16b, rem 4096 = ~b~n",
              [Addr, Addr rem 4096]),
    Addr rem 4096 =:= 0.

%% 3. A list decoded into an arena over the BEAM allocator.
arena() ->
    Sum = arena_sum(lists:seq(1, 1000)),
    Bad = try arena_sum([1, two, 3]) catch error:badarg -> badarg end,
    io:format("arena sum: arena_sum(lists:seq(1, 1000)) = ~b; "
              "arena_sum([1, two, 3]) raises ~p~n", [Sum, Bad]),
    Sum =:= 500500 andalso Bad =:= badarg.

%% 4. The per-NIF leak check: a fresh GPA per call, leaks raise.
leak_check() ->
    Tidy = tidy([1.5, 2.5, 3]),
    io:format("leak-checked NIF tidy([1.5, 2.5, 3]) = ~p (no leak)~n", [Tidy]),
    Leak = try leaky([1.5, 2.5, 3]) catch error:E -> E end,
    io:format("leak-checked NIF leaky([1.5, 2.5, 3]) raises~n    ~p~n", [Leak]),
    Tidy =:= 7.0 andalso
        element(1, Leak) =:= memory_leak andalso
        maps:with([function, bytes, blocks], element(3, Leak)) =:=
            #{function => <<"leaky/1">>, bytes => 24, blocks => 1}.

%% 5. A GPA's own leak report: what it prints for a live block.
report() ->
    {Leaks, Text} = leak_report(),
    io:format("GPA leak report (~b live block of 3; 2 were freed):~n~s", [Leaks, Text]),
    Leaks =:= 1 andalso byte_size(Text) > 0.

%% 6. A GPA's figures as a map (beamalloc_nif_make_stats), 1,000 x 64 B live.
stats_map() ->
    S = #{classes := Cs, large := Large} = stats(),
    [C64] = [C || C = #{size := 64} <- Cs],
    io:format("GPA stats map: ~w~n    class 64: ~w, large: ~w~n",
              [maps:without([classes, large], S), C64, Large]),
    maps:get(live_blocks, S) =:= 1000 andalso
        maps:with([live_blocks, live_bytes], C64) =:=
            #{live_blocks => 1000, live_bytes => 64000}.
