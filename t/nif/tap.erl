%% tap.erl - TAP output from Erlang test modules of the real-VM tests.
-module(tap).
-export([plan/1, ok/2, is/3, diag/1, done/0]).

plan(N) -> put(tap_run, 0), put(tap_failed, 0), io:format("1..~b~n", [N]).

ok(Cond, Name) ->
    N = get(tap_run) + 1,
    put(tap_run, N),
    case Cond of
        true -> io:format("ok ~b - ~s~n", [N, Name]);
        _ -> put(tap_failed, get(tap_failed) + 1),
             io:format("not ok ~b - ~s~n", [N, Name])
    end,
    Cond =:= true.

is(Got, Want, Name) ->
    case ok(Got =:= Want, Name) of
        true -> true;
        false -> diag(io_lib:format("got ~p, want ~p", [Got, Want])), false
    end.

diag(Text) -> io:format("# ~s~n", [Text]).

%% Exit status for the TAP driver: 0 only if everything passed.
done() ->
    case get(tap_failed) of
        0 -> erlang:halt(0);
        _ -> erlang:halt(1)
    end.
