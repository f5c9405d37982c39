%% unload_mod.erl - the NIF module that unload.erl loads, purges and loads
%% again (t/nif/unload_nif.c).
-module(unload_mod).
-export([use/0, use_dirty/0, use_thread/0, sum/1, work_addr/0, gpa_live/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "unload_nif"), 0).

use() -> erlang:nif_error(not_loaded).
use_dirty() -> erlang:nif_error(not_loaded).
use_thread() -> erlang:nif_error(not_loaded).
sum(_) -> erlang:nif_error(not_loaded).
work_addr() -> erlang:nif_error(not_loaded).
gpa_live() -> erlang:nif_error(not_loaded).
