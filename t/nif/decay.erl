%% decay.erl - inside the VM, a GPA gives its free memory back by itself:
%% after 10,000 random blocks and 6 of 1 MiB (which the GPA keeps for the
%% next large block) are freed, erlang:memory(system) comes back
%% within 1 MiB of where it was, with no trim and no destroy.  Polled for
%% up to a minute: the test asserts that it happens, not how fast (that
%% is make bench's figure).  A GPA made with decay_ms = 0 keeps its
%% memory: that cannot change at any speed.
-module(decay).
-export([main/0, hold/2, drop/1, decay_ms/0]).
-on_load(init/0).

init() ->
    erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "decay_nif"), 0).

hold(_, _) -> erlang:nif_error(not_loaded).
drop(_) -> erlang:nif_error(not_loaded).
decay_ms() -> erlang:nif_error(not_loaded).

-define(MIB, 1048576).

system() -> erlang:memory(system).

%% Poll until memory(system) =< Want, for up to a minute: the last value.
wait_down(Want) -> wait_down(Want, 600).
wait_down(Want, 0) -> system() + 0 * Want;
wait_down(Want, N) ->
    case system() of
        S when S =< Want -> S;
        _ -> timer:sleep(100), wait_down(Want, N - 1)
    end.

main() ->
    tap:plan(6),
    tap:is(decay_ms(), 500, "in the VM, config_init gives decay_ms = 500"),
    [begin
         Before = system(),
         ok = hold(W, 10000),
         Peak = system(),
         ok = drop(W),
         After = wait_down(Before + ?MIB),
         tap:ok(Peak > Before + 10 * ?MIB,
                io_lib:format("~s: 10,000 blocks and 6 MiB raised "
                              "memory(system) by ~b bytes",
                              [W, Peak - Before])),
         tap:ok(After =< Before + ?MIB,
                io_lib:format("~s: freed, no trim: back to ~b bytes over "
                              "the start (at most 1 MiB)", [W, After - Before]))
     end || W <- [default, global]],
    Before = system(),
    ok = hold(nodecay, 10000),
    ok = drop(nodecay),
    timer:sleep(1500),
    Held = system() - Before,
    tap:ok(Held > 10 * ?MIB,
           io_lib:format("decay_ms = 0: the GPA still holds ~b bytes after "
                         "1.5 s (until trim or destroy)", [Held])),
    tap:done().
