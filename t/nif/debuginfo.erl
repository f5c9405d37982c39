%% debuginfo.erl - t/nif/leakcheck_nif.c built with debug information in
%% each form of $FORMS (a directory of $NIF_DIR each), loaded in turn as
%% the NIF of leakcheck (the one before purged, so unloaded): the leak
%% exception's sites name the body's lines, a decoder's call included.
-module(debuginfo).
-export([main/0]).

run(F) ->
    try F() of R -> {ok, R}
    catch error:E -> {error, E}
    end.

sites(F) ->
    case run(F) of
        {error, {memory_leak, _, #{sites := Sites}}} ->
            tap:diag(io_lib:format("sites: ~p", [Sites])),
            [{Fn, is_binary(File) andalso
                  lists:suffix("leakcheck_nif.c", binary_to_list(File)), L}
             || #{function := Fn, file := File, line := L} <- Sites];
        Other -> Other
    end.

form(Form, Top) ->
    os:putenv("NIF_DIR", filename:join(Top, Form)),
    code:purge(leakcheck),
    code:delete(leakcheck),
    code:purge(leakcheck),
    {module, leakcheck} = code:load_file(leakcheck),
    SiteN = list_to_integer(os:getenv("LEAK_SITE_N")),
    Site100 = list_to_integer(os:getenv("LEAK_SITE_100")),
    SiteList = list_to_integer(os:getenv("LEAK_SITE_LIST")),
    tap:is(sites(fun() -> leakcheck:leaky_sum(24) end),
           [{<<"leaky_body">>, true, Site100}, {<<"leaky_body">>, true, SiteN}],
           io_lib:format("~s: leaky_sum(24)'s sites are leakcheck_nif.c:~b and :~b",
                         [Form, Site100, SiteN])),
    tap:is(sites(fun() -> leakcheck:leaky_doubles([1.5]) end),
           [{<<"leaky_doubles_body">>, true, SiteList}],
           io_lib:format("~s: leaky_doubles([1.5])'s site is the decoder's call, "
                         "leakcheck_nif.c:~b, not <beamalloc/nif.h>", [Form, SiteList])).

%% A form whose tool is missing ($SKIP_FORMS): its tests skip.
skip(Form) ->
    [tap:ok(true, io_lib:format("~s: ~s # SKIP no dwz (install dwz)", [Form, T]))
     || T <- ["leaky_sum(24)'s sites", "leaky_doubles([1.5])'s site"]].

main() ->
    Forms = string:lexemes(os:getenv("FORMS"), " "),
    Skips = string:lexemes(os:getenv("SKIP_FORMS", ""), " "),
    tap:plan(2 * (length(Forms) + length(Skips))),
    Top = os:getenv("NIF_DIR"),
    [form(F, Top) || F <- Forms],
    [skip(F) || F <- Skips],
    tap:done().
