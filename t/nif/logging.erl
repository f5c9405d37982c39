%% logging.erl - findings into Erlang's logger: a NIF's GPA reports through
%% beamalloc_nif_logger_report() to examples/beamalloc_logger.erl, which
%% logs them; a logger handler here (as common_test's and ExUnit's log
%% capture are) receives each event.
-module(logging).
-export([main/0, log/2]).

%% The handler: every event to the test process.
log(Event, #{config := #{to := Pid, tag := Tag}}) -> Pid ! {Tag, Event};
log(Event, #{config := #{to := Pid}}) -> Pid ! {logged, Event}.

%% The next beamalloc event, or timeout.
event() ->
    receive
        {logged, #{level := L, msg := {Fmt, Args}, meta := #{beamalloc := _} = M}} ->
            {L, iolist_to_binary(io_lib:format(Fmt, Args)), maps:get(beamalloc, M)};
        {logged, _} -> event()
    after 10000 -> timeout
    end.

has(Text, Part) -> binary:match(Text, Part) =/= nomatch.

main() ->
    tap:plan(14),
    Line = list_to_binary(os:getenv("LOGGER_LEAK_LINE")),
    ok = logger:add_handler(beamalloc_test, ?MODULE, #{config => #{to => self()}}),
    %% A second handler filtering as OTP's default one does (the handler
    %% that prints to the console unless an application replaces it): a
    %% report with a domain of its own was dropped there.
    {ok, #{filters := DFilters, filter_default := DDefault}} =
        logger:get_handler_config(default),
    ok = logger:add_handler(beamalloc_default, ?MODULE,
                            #{config => #{to => self(), tag => default_logged},
                              filters => DFilters, filter_default => DDefault}),
    {ok, _} = beamalloc_logger:start(),
    tap:is(logger_nif:setup(beamalloc_logger), ok,
           "setup(beamalloc_logger): findings go to the registered name"),
    ok = logger_nif:leak(),
    case event() of
        {warning, T1, M1} ->
            tap:ok(has(T1, <<"beamalloc: leak: 40 bytes at ">>),
                   "a leak in a NIF call: logged as a warning, the report's text"),
            tap:ok(has(T1, <<"logger_nif.c:", Line/binary, ")">>),
                   io_lib:format("... whose frame names logger_nif.c:~s", [Line])),
            tap:is(maps:with([kind, size, align], M1),
                   #{kind => leak, size => 40, align => 8},
                   "... metadata beamalloc => #{kind => leak, size => 40, align => 8}"),
            tap:diag(io_lib:format("logged: ~ts", [T1])),
            tap:ok(receive {default_logged, #{meta := #{beamalloc := #{kind := leak}}}} -> true
                   after 5000 -> false end,
                   "... and passed by the filters of OTP's default handler (it prints it)");
        E1 ->
            tap:is(E1, {warning, '...'}, "a leak in a NIF call is logged"),
            tap:ok(false, "... text"), tap:ok(false, "... metadata"),
            tap:ok(false, "... default handler")
    end,
    ok = logger_nif:leak_on_thread(),
    tap:is(case event() of {warning, _, #{kind := K2}} -> K2; E2 -> E2 end, leak,
           "a leak on a thread the VM did not make: logged too"),
    ok = logger_nif:double_free(),
    tap:is(case event() of {error, T3, #{kind := K3}} -> {K3, has(T3, <<"double free">>)};
                           E3 -> E3 end,
           {double_free, true}, "a double free: logged as an error"),
    %% On a dirty scheduler, to the registered name: a NULL env there
    %% crashed the VM in enif_whereis_pid().
    ok = logger_nif:dirty_double_free(),
    tap:is(case event() of {error, _, #{kind := K6}} -> K6; E6 -> E6 end, double_free,
           "a double free on a dirty scheduler: logged (the VM lives)"),
    {'EXIT', {{memory_leak, _, _}, _}} = (catch logger_nif:checked_leak()),
    tap:is(case event() of {warning, _, #{kind := K7, size := S7}} -> {K7, S7}; E7 -> E7 end,
           {leak, 24}, "a leak-checked NIF's leak: raised and logged"),
    {'EXIT', {{memory_leak, _, _}, _}} = (catch logger_nif:dirty_checked_leak()),
    tap:is(case event() of {warning, _, #{kind := K8, size := S8}} -> {K8, S8}; E8 -> E8 end,
           {leak, 24}, "the same on a dirty scheduler: raised and logged"),
    %% The same with the caller killed during the call: on a dirty
    %% scheduler enif_send() and enif_whereis_pid() refuse an exiting
    %% process's env, and the report went to stderr instead.
    Self = self(),
    P9 = spawn(fun() -> logger_nif:dirty_checked_leak_killed(Self) end),
    M9 = monitor(process, P9),
    receive in_call -> exit(P9, kill) end,
    receive {'DOWN', M9, process, P9, _} -> ok end,
    tap:is(case event() of {warning, _, #{kind := K9, size := S9}} -> {K9, S9}; E9 -> E9 end,
           {leak, 32}, "... its caller killed meanwhile: logged all the same"),
    ok = logger_nif:wide_bad_free(),
    tap:is(case event() of {error, _, #{kind := K4, address := _}} -> K4; E4 -> E4 end,
           invalid_free,
           "installed as the process-wide default: the wide allocator's bad free"),
    %% Straight to a pid: the message itself.
    ok = logger_nif:setup(self()),
    ok = logger_nif:leak(),
    tap:is(receive {beamalloc_report, #{kind := K5, size := S5}} -> {K5, S5}
           after 10000 -> timeout end, {leak, 40},
           "setup(self()): {beamalloc_report, #{kind => leak, size => 40, ...}}"),
    %% Nobody registered: the report goes to stderr, nothing breaks.
    beamalloc_logger:stop(),
    ok = logger_nif:setup(beamalloc_logger),
    tap:is(logger_nif:leak(), ok, "with no process by that name: stderr, no crash"),
    logger:remove_handler(beamalloc_test),
    logger:remove_handler(beamalloc_default),
    tap:done().
