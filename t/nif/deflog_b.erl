%% deflog_b.erl - the NIF whose findings go through the default (deflog_nif.c).
-module(deflog_b).
-export([bad_free/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "deflog_b_nif"), 0).

bad_free() -> erlang:nif_error(not_loaded).
