%% leakcheck.erl - <beamalloc/nif.h> inside a real BEAM: the per-NIF leak
%% check (Zigler's leak_check: true) and allocator-aware term decoding.
-module(leakcheck).
-export([main/0]).
-export([leaky_doubles/1, leaky_doubles_outline/1, optimized/0]).
-export([leaky_zeroed/1]).
-export([clean/1, leaky/1, leaky_sum/1, leaky_traced/1, bad_align/1, leaky_quiet/1, leaky_dirty/1, leaky_raise/0,
         clean_raise/0, double_free/0, leaky_chained/1, chained_reports/0,
         sum_ints/1, sum_ints_noclean/1, sum_ints_beam/1, sum_ints_oom/2,
         sum_doubles/1, bin_info/1, clean_dirty/0]).
-on_load(init/0).

init() -> erlang:load_nif(filename:join(os:getenv("NIF_DIR"), "leakcheck_nif"), 0).

clean(_) -> erlang:nif_error(not_loaded).
leaky(_) -> erlang:nif_error(not_loaded).
leaky_sum(_) -> erlang:nif_error(not_loaded).
leaky_doubles(_) -> erlang:nif_error(not_loaded).
leaky_doubles_outline(_) -> erlang:nif_error(not_loaded).
optimized() -> erlang:nif_error(not_loaded).
leaky_traced(_) -> erlang:nif_error(not_loaded).
leaky_zeroed(_) -> erlang:nif_error(not_loaded).
bad_align(_) -> erlang:nif_error(not_loaded).
leaky_quiet(_) -> erlang:nif_error(not_loaded).
leaky_dirty(_) -> erlang:nif_error(not_loaded).
leaky_raise() -> erlang:nif_error(not_loaded).
clean_raise() -> erlang:nif_error(not_loaded).
double_free() -> erlang:nif_error(not_loaded).
leaky_chained(_) -> erlang:nif_error(not_loaded).
chained_reports() -> erlang:nif_error(not_loaded).
sum_ints(_) -> erlang:nif_error(not_loaded).
sum_ints_noclean(_) -> erlang:nif_error(not_loaded).
sum_ints_beam(_) -> erlang:nif_error(not_loaded).
sum_ints_oom(_, _) -> erlang:nif_error(not_loaded).
sum_doubles(_) -> erlang:nif_error(not_loaded).
bin_info(_) -> erlang:nif_error(not_loaded).
clean_dirty() -> erlang:nif_error(not_loaded).

-define(DIRTY_CPU, 2).  % ERL_NIF_THR_DIRTY_CPU_SCHEDULER

run(F) ->
    try F() of R -> {ok, R}
    catch error:E -> {error, E}
    end.

%% The leak exception of F, checked field by field.
leak(F, Fn, Bytes, Blocks, Name) ->
    case run(F) of
        {error, {memory_leak, Msg, Info}} ->
            Want = iolist_to_binary(io_lib:format(
                     "memory leak detected in function ~s: ~b bytes in ~b block~s",
                     [Fn, Bytes, Blocks, case Blocks of 1 -> ""; _ -> "s" end])),
            tap:is({Msg, maps:with([function, bytes, blocks], Info)},
                   {Want, #{function => list_to_binary(Fn), bytes => Bytes,
                            blocks => Blocks}}, Name);
        Other ->
            tap:is(Other, {error, {memory_leak, '...'}}, Name)
    end.

%% The leak exception's sites: [{Bytes, Line}] expected, in order, each in
%% leaky_body of leakcheck_nif.c.
sites(F, Want, Fmt) ->
    Name = io_lib:format(Fmt, [L || {_, L} <- Want]),
    case run(F) of
        {error, {memory_leak, _, #{sites := Sites}}} ->
            Got = [{B, L} || #{bytes := B, line := L, blocks := 1,
                               function := <<"leaky_body">>, file := File} <- Sites,
                             lists:suffix("leakcheck_nif.c", binary_to_list(File))],
            tap:is(Got, Want, Name),
            tap:diag(io_lib:format("sites: ~p", [Sites]));
        Other ->
            tap:is(Other, {error, {memory_leak, '...', #{sites => '...'}}}, Name)
    end.

%% ---- careless input ----------------------------------------------------
%% Random terms (a fixed seed) fed to the decoding NIFs, each answer
%% checked against an Erlang reference: a proper list of integers in the
%% int64 range sums (wrapping), a proper list of such integers and floats
%% sums as floats in order (badarg past the largest float, which
%% enif_make_double refuses), a binary is copied; anything else is badarg.
%% Each NIF is leak-checked, so a decoder that lost its array on a bad
%% element would raise memory_leak instead.
-define(I64_MIN, -(1 bsl 63)).
-define(I64_MAX, (1 bsl 63) - 1).

careless(N) ->
    _ = rand:seed(exsss, {16#bea, 16#a110c, 2026}),
    Terms = [rterm(3) || _ <- lists:seq(1, N)],
    Bad = fun(F, Ref) -> [{T, Got, Want} || T <- Terms,
                                            Got <- [run(fun() -> F(T) end)],
                                            Want <- [Ref(T)], not same(Got, Want)] end,
    {Terms, Bad}.

same({ok, X}, {ok, Y}) when is_float(X), is_float(Y) -> X =:= Y;
same({ok, X}, any_float) -> is_float(X);
same(X, X) -> true;
same(_, _) -> false.

int64(X) -> is_integer(X) andalso X >= ?I64_MIN andalso X =< ?I64_MAX.

wrap64(X) ->
    Y = X band ((1 bsl 64) - 1),
    if Y > ?I64_MAX -> Y - (1 bsl 64); true -> Y end.

ref_ints(L) ->
    case is_list(L) andalso proper(L) andalso lists:all(fun int64/1, L) of
        true -> {ok, wrap64(lists:sum(L))};
        false -> {error, badarg}
    end.

ref_doubles(L) ->
    Num = fun(X) -> is_float(X) orelse int64(X) end,
    case is_list(L) andalso proper(L) andalso lists:all(Num, L) of
        false -> {error, badarg};
        true ->
            %% Past 2^53 an integer rounds on its way to a double; the
            %% NIF's rounding is C's, so only "a float" is asked then.
            Exact = lists:all(fun(X) -> is_float(X) orelse abs(X) =< 1 bsl 53 end, L),
            try lists:foldl(fun(X, A) -> A + float(X) end, 0.0, L) of
                S when Exact -> {ok, S};
                _ -> any_float
            catch error:badarith -> {error, badarg}
            end
    end.

ref_bin(B) when is_binary(B) ->
    {ok, {byte_size(B), lists:sum(binary_to_list(B)),
          list_to_binary(lists:reverse(binary_to_list(B)))}};
ref_bin(_) -> {error, badarg}.

proper([]) -> true;
proper([_ | T]) -> proper(T);
proper(_) -> false.

pick(L) -> lists:nth(rand:uniform(length(L)), L).

rint() ->
    case rand:uniform(6) of
        1 -> pick([0, 1, -1, ?I64_MAX, ?I64_MIN, ?I64_MAX + 1, ?I64_MIN - 1,
                   1 bsl 64, -(1 bsl 64), 1 bsl 53, (1 bsl 53) + 1]);
        2 -> rand:uniform(1 bsl 62) - (1 bsl 61);
        3 -> rand:uniform(1 bsl 200);           % a bignum
        _ -> rand:uniform(2001) - 1001
    end.

rfloat() ->
    case rand:uniform(4) of
        1 -> pick([0.0, -0.0, 1.0e308, -1.0e308, 5.0e-324, 1.5]);
        _ -> (rand:uniform() - 0.5) * 1.0e6
    end.

rbin() ->
    Big = binary:copy(<<7, 8, 9>>, 40),
    case rand:uniform(5) of
        1 -> <<>>;
        2 -> rbytes(rand:uniform(100));
        3 -> binary:part(Big, rand:uniform(50), rand:uniform(50));  % a sub-binary
        4 -> binary:copy(<<1>>, 70000 + rand:uniform(100));           % refc
        _ -> <<1:(rand:uniform(7))>>                                   % a bitstring
    end.

rbytes(N) -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, N)]).

rleaf() ->
    case rand:uniform(9) of
        1 -> rint(); 2 -> rint(); 3 -> rfloat(); 4 -> rbin();
        5 -> pick([foo, [], {}, #{}, "", true]);
        6 -> self();
        7 -> make_ref();
        8 -> fun() -> ok end;
        _ -> rfloat()
    end.

rlist(Gen, Max) -> [Gen() || _ <- lists:seq(1, rand:uniform(Max + 1) - 1)].

rterm(0) -> rleaf();
rterm(D) ->
    case rand:uniform(10) of
        1 -> rlist(fun rint/0, 20);
        2 -> rlist(fun() -> pick([rint(), rfloat()]) end, 20);
        3 -> rlist(fun() -> rand:uniform(1000) end, 5000);         % long, valid
        4 -> rlist(fun rint/0, 5) ++ pick([foo, 1.5, 3, <<>>]);    % improper
        5 -> rlist(fun rint/0, 30) ++ [rleaf()] ++ rlist(fun rint/0, 30);
        6 -> rlist(fun() -> rterm(D - 1) end, 4);
        7 -> list_to_tuple(rlist(fun() -> rterm(D - 1) end, 3));
        8 -> rbin();
        9 -> #{rleaf() => rterm(D - 1)};
        _ -> rleaf()
    end.

main() ->
    tap:plan(42),
    %% The leak check itself.
    tap:is(run(fun() -> clean(100) end), {ok, ok},
           "clean(100): a clean NIF returns, no exception"),
    tap:diag("====== the following leak reports are expected: ===== START"),
    leak(fun() -> leaky(24) end, "leaky/1", 124, 2,
         "leaky(24): {memory_leak, \"memory leak detected in function leaky/1: "
         "124 bytes in 2 blocks\", #{...}}"),
    tap:diag("==================================================== END"),
    leak(fun() -> leaky_dirty(1000) end, "leaky_dirty/1", 1100, 2,
         "a leaking dirty CPU NIF raises the same"),
    tap:is(run(fun clean_dirty/0), {ok, ?DIRTY_CPU},
           "a clean NIF on a dirty CPU scheduler returns, no exception"),
    leak(fun leaky_raise/0, "leaky_raise/0", 16, 1,
         "a NIF that leaks and raises badarg: the leak exception replaces badarg"),
    tap:is(run(fun clean_raise/0), {error, badarg},
           "a clean NIF that raises badarg: badarg passes through"),
    case run(fun double_free/0) of
        {error, {memory_error, DMsg, DInfo}} ->
            tap:ok(binary:match(DMsg, <<"double free detected in function double_free/0">>)
                   =/= nomatch,
                   io_lib:format("double_free(): ~s", [DMsg])),
            tap:is(maps:with([kind, bad_calls, blocks], DInfo),
                   #{kind => <<"double free">>, bad_calls => 1, blocks => 0},
                   "double_free(): #{kind => <<\"double free\">>, bad_calls => 1}");
        DOther ->
            tap:is(DOther, {error, {memory_error, '...'}}, "double_free(): memory_error"),
            tap:ok(false, "double_free(): info")
    end,
    leak(fun() -> leaky_chained(10) end, "leakcheck:leaky_chained/1", 110, 2,
         "a leak check with its own report callback names the function given"),
    tap:is(chained_reports(), 2, "the caller's report callback saw both leaks"),

    %% The Erlang name, whatever the C function is called; the sites.
    leak(fun() -> leaky_sum(24) end, "leaky_sum/1", 124, 2,
         "BEAMALLOC_NIF_LEAK_CHECKED(nif_leaky_sum, ...): the exception names leaky_sum/1"),
    SiteN = list_to_integer(os:getenv("LEAK_SITE_N")),
    Site100 = list_to_integer(os:getenv("LEAK_SITE_100")),
    sites(fun() -> leaky_sum(24) end, [{100, Site100}, {24, SiteN}],
          "leaky_sum(24): sites, by bytes: leakcheck_nif.c:~b (100 B), :~b (24 B)"),
    tap:is(run(fun() -> leaky_zeroed(1000) end), {error, einval},
           "BEAMALLOC_NIF_LEAK_CHECKED_WITH a config never initialised (struct_size 0): einval, not a leak gone unraised"),
    leak(fun() -> leaky_traced(1000) end, "leaky_traced/1", 1100, 2,
         "BEAMALLOC_NIF_LEAK_CHECKED_WITH (a config with traces): leaky_traced/1"),
    sites(fun() -> leaky_traced(1000) end, [{1000, SiteN}, {100, Site100}],
          "leaky_traced(1000), 8-frame traces: sites leakcheck_nif.c:~b (1000 B), :~b (100 B)"),
    %% A leak of what a decoder of <beamalloc/nif.h> allocated, inlined
    %% into the body: the site is the body's call, in the author's file.
    SiteList = list_to_integer(os:getenv("LEAK_SITE_LIST")),
    ListName = io_lib:format("leaky_doubles([1.5]): the site is the decoder's "
                             "call, leakcheck_nif.c:~b in leaky_doubles_body, "
                             "not <beamalloc/nif.h>", [SiteList]),
    case {optimized(), run(fun() -> leaky_doubles([1.5]) end)} of
        {false, _} ->
            tap:ok(true, [ListName, " # SKIP built without optimization: the decoder is not inlined"]);
        {true, {error, {memory_leak, _, #{sites := [#{function := LF, file := LFile,
                                                     line := LLine}] = LSites}}}} ->
            tap:is({LF, lists:suffix("leakcheck_nif.c", binary_to_list(LFile)), LLine},
                   {<<"leaky_doubles_body">>, true, SiteList}, ListName),
            tap:diag(io_lib:format("sites: ~p", [LSites]));
        {true, LOther} ->
            tap:is(LOther, {error, {memory_leak, '...', #{sites => ['...']}}}, ListName)
    end,
    %% The decoder not inlined (as at -O0), traces on: the trace's first
    %% frame is the decoder's, in <beamalloc/nif.h>; the site is its caller.
    SiteOut = list_to_integer(os:getenv("LEAK_SITE_OUTLINE")),
    OutName = io_lib:format("leaky_doubles_outline([1.5]), the decoder not inlined, "
                            "8-frame traces: the site is its caller, leakcheck_nif.c:~b",
                            [SiteOut]),
    case run(fun() -> leaky_doubles_outline([1.5]) end) of
        {error, {memory_leak, _, #{sites := [#{function := OF, file := OFile,
                                               line := OLine}] = OSites}}} ->
            tap:is({OF, lists:suffix("leakcheck_nif.c", binary_to_list(OFile)), OLine},
                   {<<"leaky_doubles_outline_body">>, true, SiteOut}, OutName),
            tap:diag(io_lib:format("sites: ~p", [OSites]));
        OOther ->
            tap:is(OOther, {error, {memory_leak, '...', #{sites => ['...']}}}, OutName)
    end,
    tap:is({run(fun() -> bad_align(3) end), run(fun() -> bad_align(64) end)},
           {{error, einval}, {ok, ok}},
           "an alignment the allocator refuses (3): einval, not badarg; 64: ok"),

    %% Decoding with the allocator handed to the NIF.
    tap:is(run(fun() -> sum_ints([1, 2, 3]) end), {ok, 6},
           "sum_ints([1,2,3]) == 6, decoded into the NIF's GPA, no leak"),
    tap:is(run(fun() -> sum_ints([]) end), {ok, 0}, "sum_ints([]) == 0"),
    tap:is(run(fun() -> sum_ints([-(1 bsl 63), (1 bsl 63) - 1, 1]) end), {ok, 0},
           "sum_ints: the full int64 range"),
    tap:is(run(fun() -> sum_ints([1, 2, foo, 4]) end), {error, badarg},
           "sum_ints([1,2,foo,4]): badarg, and no leak (the array was freed)"),
    tap:is(run(fun() -> sum_ints([1, 1 bsl 64]) end), {error, badarg},
           "sum_ints([1, 1 bsl 64]): badarg, no leak"),
    tap:is(run(fun() -> sum_ints([1 | 2]) end), {error, badarg},
           "sum_ints([1|2]): badarg (improper list)"),
    tap:is(run(fun() -> sum_ints(<<1, 2>>) end), {error, badarg},
           "sum_ints(<<1,2>>): badarg (not a list)"),
    leak(fun() -> sum_ints_noclean([1, 2, 3]) end, "sum_ints_noclean/1", 24, 1,
         "decoded and not freed: a 24-byte leak"),
    tap:is(run(fun() -> sum_doubles([1.5, 2.5, 3]) end), {ok, 7.0},
           "sum_doubles([1.5, 2.5, 3]) == 7.0"),
    tap:is(run(fun() -> sum_doubles([1.5, "x"]) end), {error, badarg},
           "sum_doubles([1.5, \"x\"]): badarg, no leak"),
    tap:is(run(fun() -> bin_info(<<1, 2, 3>>) end), {ok, {3, 6, <<3, 2, 1>>}},
           "bin_info(<<1,2,3>>): a copy of the binary, freed"),
    Big = binary:copy(<<7>>, 100000),
    tap:is(run(fun() -> bin_info(Big) end), {ok, {100000, 700000, Big}},
           "bin_info of a 100000-byte (refc) binary"),
    tap:is(run(fun() -> bin_info(<<>>) end), {ok, {0, 0, <<>>}},
           "bin_info(<<>>): the zero-length pointer, no leak"),
    tap:is({run(fun() -> bin_info("abc") end), run(fun() -> bin_info(<<1:3>>) end)},
           {{error, badarg}, {error, badarg}},
           "bin_info of a string or a bitstring: badarg"),
    tap:is({run(fun() -> sum_ints_beam([4, 5, 6]) end),
            run(fun() -> sum_ints_beam([4, x]) end)},
           {{ok, 15}, {error, badarg}},
           "decoding over beamalloc_beam(): 15, and badarg on [4, x]"),
    tap:is({run(fun() -> sum_ints_oom([1, 2, 3], 0) end),
            run(fun() -> sum_ints_oom([1, 2, 3], 1) end)},
           {{error, enomem}, {ok, 6}},
           "out of memory while decoding: enomem, nothing leaked"),

    %% Leaked blocks go back to the VM when the per-call GPA is destroyed.
    erlang:garbage_collect(),
    timer:sleep(50),
    Before = erlang:memory(system),
    Leaks = [run(fun() -> leaky_quiet(1000000) end) || _ <- lists:seq(1, 20)],
    Grown = erlang:memory(system) - Before,
    tap:ok(lists:all(fun({error, {memory_leak, _, #{bytes := 1000100}}}) -> true;
                        (_) -> false end, Leaks),
           "20 x leaky_quiet(1000000): 20 leak exceptions"),
    tap:ok(Grown < 1 bsl 20,
           io_lib:format("... and memory(system) grew by ~b < 1 MiB: the leaks "
                         "went back to the VM", [Grown])),
    Clean = [run(fun() -> clean(N) end) || N <- lists:seq(1, 2000)],
    tap:ok(lists:all(fun(R) -> R =:= {ok, ok} end, Clean),
           "2000 clean calls of sizes 1..2000: no exception"),
    %% Clean calls keep their GPA (beamalloc_gpa_checkin): the next leak
    %% on it is still found, and the kept GPAs do not pile up memory.
    tap:is(case run(fun() -> leaky_quiet(1000000) end) of
               {error, {memory_leak, _, #{bytes := B}}} -> B;
               Other2 -> Other2
           end, 1000100, "a leak after clean calls on a kept GPA: raised, 1000100 bytes"),
    _ = [run(fun() -> clean(N) end) || N <- lists:seq(1, 2000)],
    erlang:garbage_collect(),
    Before2 = erlang:memory(system),
    Clean2 = [run(fun() -> clean(N rem 2000 + 1) end) || N <- lists:seq(1, 10000)],
    Grown2 = erlang:memory(system) - Before2,
    tap:ok(lists:all(fun(R) -> R =:= {ok, ok} end, Clean2) andalso Grown2 < 1 bsl 20,
           io_lib:format("10000 more clean calls: no exception, memory(system) "
                         "grew by ~b < 1 MiB (a kept GPA holds its slabs, no more)", [Grown2])),

    %% Careless input, 3000 random terms for each decoder.
    {Terms, Bad} = careless(3000),
    Valid = fun(Ref) -> length([T || T <- Terms, Ref(T) =/= {error, badarg}]) end,
    BadInts = Bad(fun sum_ints/1, fun ref_ints/1),
    tap:is(lists:sublist(BadInts, 3), [],
           io_lib:format("sum_ints on 3000 random terms (~b valid lists): each "
                         "answer the reference's, no leak", [Valid(fun ref_ints/1)])),
    BadDoubles = Bad(fun sum_doubles/1, fun ref_doubles/1),
    tap:is(lists:sublist(BadDoubles, 3), [],
           io_lib:format("sum_doubles on the same terms (~b valid): each answer "
                         "the reference's (badarg past the largest float), no leak",
                         [Valid(fun ref_doubles/1)])),
    BadBins = Bad(fun bin_info/1, fun ref_bin/1),
    tap:is(lists:sublist(BadBins, 3), [],
           io_lib:format("bin_info on the same terms (~b binaries; sub-binaries, "
                         "refc binaries, bitstrings among the rest): each answer "
                         "the reference's", [Valid(fun ref_bin/1)])),
    tap:done().
