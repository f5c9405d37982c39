%% EUnit tests of beamalloc_buf: buffers live in the GPA until the
%% garbage collector drops them, and survive a code upgrade and the purge
%% of the old code.
-module(beamalloc_buf_tests).
-include_lib("eunit/include/eunit.hrl").

%% Run F in a fresh process and wait for it to exit, so every term it
%% made is garbage; then collect the test process too.
in_process(F) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({done, F()}) end),
    receive {'DOWN', Ref, process, Pid, {done, R}} -> R end.

live() ->
    erlang:garbage_collect(),
    #{live_blocks := B, live_bytes := N} = beamalloc_buf:stats(),
    {B, N}.

buffer_bytes_test() ->
    ?assertEqual(<<"xxxxx">>, in_process(fun() ->
        beamalloc_buf:to_binary(beamalloc_buf:new(5, $x))
    end)),
    ?assertError(badarg, beamalloc_buf:new(1, 256)),
    ?assertError(badarg, beamalloc_buf:to_binary(make_ref())).

freed_by_destructor_test() ->
    {B0, N0} = live(),
    Seen = in_process(fun() ->
        Bufs = [beamalloc_buf:new(1000, I) || I <- lists:seq(1, 10)],
        S = beamalloc_buf:stats(),
        _ = [beamalloc_buf:to_binary(X) || X <- Bufs],
        S
    end),
    %% While the process held them: 10 more blocks, 10,000 more bytes.
    ?assertMatch(#{live_blocks := B, live_bytes := N}
                   when B =:= B0 + 10 andalso N =:= N0 + 10000, Seen),
    %% Its heap is gone, so the destructors ran: back to where it was.
    ?assertEqual({B0, N0}, live()).

upgrade_keeps_gpa_test() ->
    Buf = beamalloc_buf:new(4096, 7),
    #{refs := R0, upgrades := U0, unloads := D0, live_blocks := L0} =
        beamalloc_buf:stats(),
    %% New code of the module: its on_load loads the same library, whose
    %% upgrade callback takes the old instance's state (one more ref).
    {module, beamalloc_buf} = code:load_file(beamalloc_buf),
    ?assertMatch(#{refs := R, upgrades := U, live_blocks := L0}
                   when R =:= R0 + 1 andalso U =:= U0 + 1,
                 beamalloc_buf:stats()),
    %% Purging the old code runs unload for it: one ref less, the GPA
    %% and the buffer made by the old code still alive.
    true = code:soft_purge(beamalloc_buf),
    ?assertMatch(#{refs := R0, unloads := D, live_blocks := L0}
                   when D =:= D0 + 1, beamalloc_buf:stats()),
    ?assertEqual(binary:copy(<<7>>, 4096), beamalloc_buf:to_binary(Buf)).
