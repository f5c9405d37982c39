%% reload_mod.erl - the module of t/nif/reload_nif.c, whose every version
%% loads the same file (t/nif/reload.erl).
-module(reload_mod).
-export([chain/1, thr/1, counts/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "reload_nif"), 0).

chain(_) -> erlang:nif_error(not_loaded).
thr(_) -> erlang:nif_error(not_loaded).
counts() -> erlang:nif_error(not_loaded).
