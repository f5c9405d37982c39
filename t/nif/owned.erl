%% owned.erl - objects of a type from beamalloc_nif_owned_type(), each with
%% its own GPA or arena and a cleanup function, outlive an upgrade of their
%% NIF library to another file and the purge of the old code.  Each
%% instance has a type of its own: ERTS keeps the old library mapped while
%% its objects live and runs its destructor (its cleanup, its allocator)
%% when they go.  A takeover of the type crashed the VM there: the new
%% library's destructor called the old library's cleanup, unmapped.
-module(owned).
-export([main/0]).

mapped(Name) ->
    {ok, Maps} = file:read_file("/proc/self/maps"),
    binary:match(Maps, Name) =/= nomatch.

wait_unmapped(Name, 0) -> not mapped(Name);
wait_unmapped(Name, N) ->
    case mapped(Name) of
        false -> true;
        true -> erlang:garbage_collect(), timer:sleep(10), wait_unmapped(Name, N - 1)
    end.

%% A process holding the objects until told to drop them.
holder(Objs) ->
    receive
        {sums, From} -> From ! {sums, [owned_mod:sum(O) || O <- Objs]}, holder(Objs);
        {objs, From} -> From ! {objs, Objs}, holder(Objs);
        drop -> ok
    end.

main() ->
    tap:plan(6),
    Dir = filename:dirname(code:which(owned)),
    Src = filename:join(os:getenv("NIF_DIR"), "owned_nif.so"),
    V1 = filename:join(Dir, "owned_v1"),
    V2 = filename:join(Dir, "owned_v2"),
    {ok, _} = file:copy(Src, V1 ++ ".so"),
    {ok, _} = file:copy(Src, V2 ++ ".so"),
    os:putenv("OWNED_SO", V1),
    {module, owned_mod} = code:ensure_loaded(owned_mod),
    Self = self(),
    H = spawn(fun() ->
                      Objs = [owned_mod:new(lists:seq(1, 1000), gpa),
                              owned_mod:new(lists:seq(1, 100), arena)],
                      Self ! made, holder(Objs)
              end),
    receive made -> ok end,
    H ! {sums, self()},
    tap:is(receive {sums, S1} -> S1 after 10000 -> timeout end, [500500, 5050],
           "version 1: two objects, a GPA's and an arena's, held by a process"),
    %% Upgrade to another file, then purge the old code.
    os:putenv("OWNED_SO", V2),
    {ok, Bin} = file:read_file(code:which(owned_mod)),
    {module, owned_mod} = code:load_binary(owned_mod, code:which(owned_mod), Bin),
    N = owned_mod:new([1, 2, 3], gpa),
    tap:is(owned_mod:sum(N), 6, "version 2: its own objects work"),
    true = code:soft_purge(owned_mod),
    tap:ok(mapped(<<"owned_v1.so">>),
           "old code purged: its library stays mapped while its objects live"),
    %% Asked from a process of its own, which drops its copies as it ends.
    spawn(fun() -> H ! {objs, self()},
                   receive {objs, Os} ->
                           Self ! {old_sum, case catch owned_mod:sum(hd(Os)) of
                                                {'EXIT', {badarg, _}} -> badarg;
                                                Other -> Other
                                            end}
                   end
          end),
    tap:is(receive {old_sum, R} -> R after 10000 -> timeout end, badarg,
           "the new instance does not take the old objects (another type): badarg"),
    %% The objects go: the old library's destructor runs, then it is unmapped.
    H ! drop,
    tap:ok(wait_unmapped(<<"owned_v1.so">>, 500),
           "the old objects released: destructors ran (the VM lives), the old library unmapped"),
    tap:is(owned_mod:sum(N), 6, "version 2's object is untouched"),
    tap:done().
