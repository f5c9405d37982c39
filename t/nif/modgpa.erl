%% modgpa.erl - a GPA per NIF library in a real BEAM: opened at load, a
%% fresh one for the new instance at upgrade, leak-checked at unload (the
%% old instance's when it is purged).  The library writes the leaks its
%% unload finds to the file its load info names.
-module(modgpa).
-export([main/0]).

live(#{live_blocks := B, live_bytes := Y}) -> {B, Y}.

reports(Path) ->
    case file:read_file(Path) of
        {ok, B} -> B;
        {error, enoent} -> <<>>
    end.

%% ERTS calls unload when the old code is purged; allow it a moment.
wait_reports(Path, Want) -> wait_reports(Path, Want, 100).
wait_reports(Path, _, 0) -> reports(Path);
wait_reports(Path, Want, N) ->
    case reports(Path) of
        Want -> Want;
        _ -> timer:sleep(10), wait_reports(Path, Want, N - 1)
    end.

main() ->
    tap:plan(7),
    Dir = filename:dirname(code:which(modgpa)),
    Rep = filename:join(Dir, "reports.txt"),
    os:putenv("MODGPA_REPORTS", Rep),
    Src = filename:join(os:getenv("NIF_DIR"), "modgpa_nif.so"),
    V1 = filename:join(Dir, "modgpa_v1"),
    V2 = filename:join(Dir, "modgpa_v2"),
    {ok, _} = file:copy(Src, V1 ++ ".so"),
    {ok, _} = file:copy(Src, V2 ++ ".so"),
    os:putenv("MODGPA_SO", V1),
    {module, modgpa_mod} = code:ensure_loaded(modgpa_mod),
    ok = modgpa_mod:keep(24), ok = modgpa_mod:keep(100),
    {1, S1} = modgpa_mod:info(),
    tap:is(live(S1), {2, 124},
           "load: the library's GPA holds what its NIFs keep (124 B in 2 blocks)"),
    %% Upgrade: the module reloaded, its NIF library from the copy.
    os:putenv("MODGPA_SO", V2),
    {ok, Bin} = file:read_file(code:which(modgpa_mod)),
    {module, modgpa_mod} = code:load_binary(modgpa_mod, code:which(modgpa_mod), Bin),
    {I2, S2} = modgpa_mod:info(),
    tap:is({I2, live(S2), reports(Rep)}, {2, {0, 0}, <<>>},
           "upgrade: the new instance has a fresh GPA; the old one is not yet checked"),
    ok = modgpa_mod:keep(8),
    %% Purging the old code unloads the old instance: its leak check.
    true = code:soft_purge(modgpa_mod),
    Want1 = <<"instance 1 leak 24\ninstance 1 leak 100\ninstance 1 closed 2\n">>,
    Got1 = wait_reports(Rep, Want1),
    tap:is(lists:sort(binary:split(Got1, <<"\n">>, [global, trim])),
           lists:sort(binary:split(Want1, <<"\n">>, [global, trim])),
           "purge of the old code: its unload reports its 2 leaks (24 B, 100 B)"),
    {2, S3} = modgpa_mod:info(),
    tap:is(live(S3), {1, 8}, "the new instance's GPA is untouched by that"),
    %% Unloaded for good, after freeing: a clean check.
    ok = modgpa_mod:drop(),
    ok = file:delete(Rep),
    true = code:delete(modgpa_mod),
    true = code:soft_purge(modgpa_mod),
    timer:sleep(100),
    tap:is(reports(Rep), <<>>, "unload after freeing everything: no report"),
    %% Load again, leak, unload: reported.
    os:putenv("MODGPA_SO", V1),
    {module, modgpa_mod} = code:ensure_loaded(modgpa_mod),
    ok = modgpa_mod:keep(40),
    true = code:delete(modgpa_mod),
    true = code:soft_purge(modgpa_mod),
    Want6 = <<"instance 1 leak 40\ninstance 1 closed 1\n">>,
    tap:is(wait_reports(Rep, Want6), Want6,
           "load, leak 40 B, unload: the leak is reported at unload"),
    %% A leak check while the library lives, a block freed after it:
    %% the unload counts its own check's leaks, not that one's too.
    ok = file:delete(Rep),
    {module, modgpa_mod} = code:ensure_loaded(modgpa_mod),
    ok = modgpa_mod:keep(40),
    1 = modgpa_mod:check(),
    ok = modgpa_mod:drop(),
    ok = modgpa_mod:keep(16),
    ok = file:delete(Rep),
    true = code:delete(modgpa_mod),
    true = code:soft_purge(modgpa_mod),
    Want7 = <<"instance 1 leak 16\ninstance 1 closed 1\n">>,
    tap:is(wait_reports(Rep, Want7), Want7,
           "a leak check before: beamalloc_nif_module_close() returns "
           "its own check's 1 leak, not 2"),
    tap:done().
