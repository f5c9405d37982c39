%% beamalloc_logger - libbeamalloc's findings into Erlang's logger.
%%
%% A NIF sends each finding of its allocators here with
%% beamalloc_nif_logger_report() (<beamalloc/nif.h>, beamalloc_nif(3)):
%%     {beamalloc_report, #{kind := Kind, text := Text, ...}}
%% This process, registered as beamalloc_logger, logs each one: a leak as a
%% warning, anything else (a double free, an invalid free...) as an error,
%% with the report's text as the message and the rest of the map as the
%% metadata key beamalloc, and no domain: OTP's default handler logs only
%% events with no domain or the domain [otp] (its filter_default is stop),
%% so a domain of our own would hide every report from it.  So logger's
%% handlers, the default one included, and the log capture of common_test
%% and ExUnit, see them; a filter can pick them by the beamalloc key.
%%
%% Start it before the NIF reports, e.g. in your application's supervisor
%% (start_link/0) or a test's setup (start/0); copy it into your project.
-module(beamalloc_logger).
-export([start/0, start_link/0, stop/0, init/1]).

start() -> proc_lib:start(?MODULE, init, [self()]).

start_link() -> proc_lib:start_link(?MODULE, init, [self()]).

stop() ->
    case whereis(?MODULE) of
        undefined -> ok;
        Pid ->
            Ref = monitor(process, Pid),
            Pid ! stop,
            receive {'DOWN', Ref, process, Pid, _} -> ok end
    end.

init(Parent) ->
    try register(?MODULE, self()) of
        true ->
            proc_lib:init_ack(Parent, {ok, self()}),
            loop()
    catch error:badarg ->
        proc_lib:init_ack(Parent, {error, {already_started, whereis(?MODULE)}})
    end.

loop() ->
    receive
        {beamalloc_report, #{kind := Kind, text := Text} = Report} ->
            Level = case Kind of leak -> warning; _ -> error end,
            logger:log(Level, "~ts", [string:trim(Text, trailing)],
                       #{beamalloc => maps:remove(text, Report)}),
            loop();
        stop ->
            ok;
        _ ->
            loop()
    end.
