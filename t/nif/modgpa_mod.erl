%% modgpa_mod.erl - the module of t/nif/modgpa_nif.c; its NIF library is
%% the file $MODGPA_SO (a copy for each version, see t/nif/modgpa.erl),
%% told to write its reports to $MODGPA_REPORTS.
-module(modgpa_mod).
-export([keep/1, drop/0, info/0, check/0]).
-on_load(init/0).

init() -> erlang:load_nif(os:getenv("MODGPA_SO"), os:getenv("MODGPA_REPORTS")).

keep(_) -> erlang:nif_error(not_loaded).
drop() -> erlang:nif_error(not_loaded).
info() -> erlang:nif_error(not_loaded).
check() -> erlang:nif_error(not_loaded).
