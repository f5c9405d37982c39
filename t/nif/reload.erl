%% reload.erl - chains and threads of <beamalloc/nif.h> across an upgrade
%% whose new version loads the same NIF library file, as a module's
%% on_load does when the library has not changed.  The two instances then
%% share the library and the header's static state: the new instance's
%% beamalloc_nif_init() took the chain type of the old one's chains
%% (badarg at their next step), and the old instance's
%% beamalloc_nif_fini() destroyed the threads' lock (badarg from
%% beamalloc_nif_thread_spawn() ever after).
-module(reload).
-export([main/0]).

upgrade() ->
    {ok, Bin} = file:read_file(code:which(reload_mod)),
    {module, reload_mod} = code:load_binary(reload_mod, code:which(reload_mod), Bin).

%% ERTS unloads an instance when its code is purged and its last resource
%% has gone: polled, bounded only so that a failure ends (60 s).
wait_unloads(Want, 0) -> element(1, reload_mod:counts()) >= Want;
wait_unloads(Want, N) ->
    case reload_mod:counts() of
        {U, _} when U >= Want -> true;
        _ -> erlang:garbage_collect(), timer:sleep(10), wait_unloads(Want, N - 1)
    end.

thr(T) ->
    try reload_mod:thr(T) of
        Ref -> receive {beamalloc_thread, Ref, R} -> R after 10000 -> timeout end
    catch error:E -> E
    end.

mapped(Name) ->
    {ok, Maps} = file:read_file("/proc/self/maps"),
    binary:match(Maps, Name) =/= nomatch.

main() ->
    tap:plan(6),
    {module, reload_mod} = code:ensure_loaded(reload_mod),
    Self = self(),
    spawn(fun() -> Self ! {chain, catch reload_mod:chain(300)} end),
    timer:sleep(100),
    upgrade(),
    tap:is(receive {chain, R} -> R after 10000 -> timeout end, done,
           "a chain whose dirty step spans an upgrade to the same file "
           "runs its last step"),
    tap:is(reload_mod:chain(0), done, "the new instance's chain runs"),
    true = code:soft_purge(reload_mod),
    tap:ok(wait_unloads(1, 6000), "the old code purged: its instance unloaded"),
    tap:is({thr(thread), reload_mod:chain(0)}, {{ok, thread}, done},
           "then the new instance's threads and chains run"),
    tap:is(element(2, reload_mod:counts()), 0, "no leak reported"),
    true = code:delete(reload_mod),
    true = code:soft_purge(reload_mod),
    tap:ok(wait_unmapped(6000), "the last instance unloaded: the library unmapped"),
    tap:done().

wait_unmapped(0) -> not mapped(<<"reload_nif.so">>);
wait_unmapped(N) ->
    case mapped(<<"reload_nif.so">>) of
        false -> true;
        true -> erlang:garbage_collect(), timer:sleep(10), wait_unmapped(N - 1)
    end.
