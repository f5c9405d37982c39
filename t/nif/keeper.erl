%% keeper.erl - a thread that outlives libbeamalloc (t/nif/keeper_nif.c).
-module(keeper).
-export([start/1, wait_ran/0, stop/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "keeper_nif"), 0).

start(_) -> erlang:nif_error(not_loaded).
wait_ran() -> erlang:nif_error(not_loaded).
stop() -> erlang:nif_error(not_loaded).
