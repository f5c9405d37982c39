%% trace.erl - the GPA's traces in a real BEAM (trace_nif.c): on a normal
%% scheduler, a dirty CPU scheduler and a NIF thread, a leaked block's
%% trace names trace_level1, trace_level2, trace_chain; with 1 in 4
%% sampled, 10 of the 40 blocks are traced and 30 say "not sampled".
-module(trace).
-export([main/0, run/0, run_dirty/0, run_thread/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "trace_nif"), 0).

run() -> erlang:nif_error(not_loaded).
run_dirty() -> erlang:nif_error(not_loaded).
run_thread() -> erlang:nif_error(not_loaded).

main() ->
    tap:plan(9),
    lists:foreach(
      fun({Where, F}) ->
              {Names, All, Sampled} = F(),
              tap:is(Names, ["trace_level1", "trace_level2", "trace_chain"],
                     Where ++ ": the trace names the NIF's call chain"),
              tap:is(All, {40, 0}, Where ++ ": every block traced"),
              tap:is(Sampled, {10, 30},
                     Where ++ ": 1 in 4 traced, the others not sampled")
      end,
      [{"normal scheduler", fun run/0},
       {"dirty CPU scheduler", fun run_dirty/0},
       {"NIF thread", fun run_thread/0}]),
    tap:done().
