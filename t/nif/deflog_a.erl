%% deflog_a.erl - the NIF that makes its logger the default (deflog_nif.c).
-module(deflog_a).
-export([setup/1]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "deflog_a_nif"), 0).

setup(_) -> erlang:nif_error(not_loaded).
