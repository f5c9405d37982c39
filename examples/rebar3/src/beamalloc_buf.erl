%% beamalloc_buf - buffers whose bytes come from libbeamalloc's general
%% purpose allocator, one per loaded NIF library (c_src/beamalloc_buf_nif.c
%% explains its load/upgrade/unload pattern).  A buffer is a NIF resource:
%% its bytes go back to the GPA when the garbage collector drops it.
-module(beamalloc_buf).
-export([new/2, to_binary/1, stats/0]).
-on_load(init/0).

init() ->
    Nif = filename:join(code:priv_dir(beamalloc_buf), "beamalloc_buf_nif"),
    erlang:load_nif(Nif, 0).

%% new(Size, Byte): a buffer of Size bytes, each Byte.
new(_Size, _Byte) -> erlang:nif_error(not_loaded).
%% to_binary(Buf): a copy of the buffer's bytes.
to_binary(_Buf) -> erlang:nif_error(not_loaded).
%% stats(): the GPA's live_blocks and live_bytes; buffers, refs (module
%% instances + buffers), upgrades and unloads of the shared state.
stats() -> erlang:nif_error(not_loaded).
