%% owned_mod.erl - the module of t/nif/owned_nif.c; its NIF library is the
%% file $OWNED_SO (a copy for each version, see t/nif/owned.erl).
-module(owned_mod).
-export([new/2, sum/1]).
-on_load(init/0).

init() -> erlang:load_nif(os:getenv("OWNED_SO"), 0).

new(_, _) -> erlang:nif_error(not_loaded).
sum(_) -> erlang:nif_error(not_loaded).
