%% unload.erl - load a NIF that uses libbeamalloc, use it, purge it (ERTS
%% dlcloses it, and libbeamalloc.so goes with it), load and use it again,
%% three times; a thread that used the library exits while it is unloaded;
%% the VM then halts normally.  A hook left pointing into unmapped code
%% would crash the VM, and the test with it.
-module(unload).
-export([main/0]).

mapped(Name) ->
    {ok, Maps} = file:read_file("/proc/self/maps"),
    binary:match(Maps, Name) =/= nomatch.

%% ERTS unloads a purged NIF library right away, but allow it a moment.
wait_unmapped(Name, 0) -> not mapped(Name);
wait_unmapped(Name, N) ->
    case mapped(Name) of
        false -> true;
        true -> timer:sleep(10), wait_unmapped(Name, N - 1)
    end.

purge() ->
    true = code:delete(unload_mod),
    code:purge(unload_mod),
    {wait_unmapped(<<"unload_nif.so">>, 100),
     wait_unmapped(<<"libbeamalloc.so">>, 100)}.

use(Round) ->
    tap:is({unload_mod:use(), unload_mod:use_dirty(), unload_mod:use_thread(),
            unload_mod:sum([1, 2, 3]), unload_mod:gpa_live()},
           {ok, ok, ok, 6, {0, 0}},
           io_lib:format("load ~b: GPA, wide and arena on a normal scheduler, "
                         "a dirty one and a thread; a leak-checked NIF; GPA empty",
                         [Round])).

main() ->
    tap:plan(10),
    {module, keeper} = code:ensure_loaded(keeper),
    tap:is({mapped(<<"libbeamalloc.so">>), code:ensure_loaded(unload_mod),
            mapped(<<"libbeamalloc.so">>)},
           {false, {module, unload_mod}, true},
           "libbeamalloc.so is mapped with the NIF, not before"),
    use(1),
    ok = keeper:start(unload_mod:work_addr()),
    tap:is(keeper:wait_ran(), ok,
           "a keeper thread (not linked to the library) used the GPA through the NIF"),
    tap:is(purge(), {true, true},
           "purged: unload_nif.so and libbeamalloc.so are unmapped"),
    tap:is(keeper:stop(), ok,
           "the keeper thread exited after the library was unmapped: no exit hook left"),
    lists:foreach(
      fun(Round) ->
              tap:is(code:load_file(unload_mod), {module, unload_mod},
                     io_lib:format("load ~b: the NIF loads again", [Round])),
              use(Round),
              {true, true} = purge()
      end, [2, 3]),
    tap:ok(not mapped(<<"libbeamalloc.so">>),
           "unmapped at the end; now erlang:halt(), which must not crash"),
    tap:done().
