%% corrupt.erl - the GPA catches a NIF's overflows and writes after free
%% in a real BEAM, and the VM lives on (abort_on_error off); an overflow
%% of a guarded block faults, and the GPA's SIGSEGV handler names the
%% block before the VM dies of it (in an erl of its own).
-module(corrupt).
-export([main/0, crash/0]).
-export([overflow/3, write_after_free/1, guard_overflow/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "corrupt_nif"), 0).

overflow(_, _, _) -> erlang:nif_error(not_loaded).
write_after_free(_) -> erlang:nif_error(not_loaded).
guard_overflow() -> erlang:nif_error(not_loaded).

crash() -> io:format("~p~n", [guard_overflow()]), halt(0).

main() ->
    tap:plan(6),
    tap:diag("the first report of each kind below is printed on purpose"),
    tap:is(overflow(1000, 24, 1), 1000,
           "canary: a NIF's 1-byte overflow of a 24 B block, 1000 of 1000"),
    tap:is(overflow(1000, 48, 16), 1000,
           "canary: a 16-byte overflow of a 48 B block, 1000 of 1000"),
    tap:is(write_after_free(1000), 1000,
           "junk + quarantine: a write to a freed 48 B block, 1000 of 1000"),
    tap:is(lists:sum(lists:seq(1, 100)), 5050,
           "the VM goes on after the reports"),
    %% An erl of its own for the fault.
    Dir = filename:dirname(code:which(?MODULE)),
    Out = os:cmd(os:getenv("ERL") ++ " -noshell -pa " ++ Dir ++
                 " -eval 'corrupt:crash()' 2>&1; echo \"exit=$?\""),
    Block = case re:run(Out, "block (0x[0-9a-f]+)",
                        [{capture, all_but_first, list}]) of
                {match, [B]} -> B;
                nomatch -> "none"
            end,
    Named = string:find(Out, "overflow past block " ++ Block ++ " of 24 bytes")
        =/= nomatch,
    tap:ok(Named, "guard: the fault in a NIF names the block (" ++ Block ++
           "), its size"),
    tap:ok(string:find(Out, "exit=0") =:= nomatch andalso
           string:find(Out, "survived") =:= nomatch,
           "guard: and the signal goes on to kill that VM"),
    case Named of
        true -> ok;
        false -> tap:diag(Out)
    end,
    tap:done().
