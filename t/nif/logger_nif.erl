%% logger_nif.erl - the NIF of t/nif/logging.erl.
-module(logger_nif).
-export([setup/1, leak/0, double_free/0, dirty_double_free/0, checked_leak/0,
         dirty_checked_leak/0, dirty_checked_leak_killed/1,
         leak_on_thread/0, wide_bad_free/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "logger_nif"), 0).

setup(_) -> erlang:nif_error(not_loaded).
leak() -> erlang:nif_error(not_loaded).
double_free() -> erlang:nif_error(not_loaded).
dirty_double_free() -> erlang:nif_error(not_loaded).
checked_leak() -> erlang:nif_error(not_loaded).
dirty_checked_leak() -> erlang:nif_error(not_loaded).
dirty_checked_leak_killed(_) -> erlang:nif_error(not_loaded).
leak_on_thread() -> erlang:nif_error(not_loaded).
wide_bad_free() -> erlang:nif_error(not_loaded).
