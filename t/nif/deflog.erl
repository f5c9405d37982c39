%% deflog.erl - two NIF libraries linked with libbeamalloc.so share its
%% process-wide default report: A makes its logger the default, B's
%% findings go there; A purged (its unload calls beamalloc_nif_fini()),
%% B's next finding must not call into A's unmapped code.
-module(deflog).
-export([main/0]).

report() ->
    receive {beamalloc_report, #{kind := K}} -> K after 5000 -> timeout end.

main() ->
    tap:plan(4),
    register(deflog_sink, self()),
    tap:is(deflog_a:setup(deflog_sink), ok, "A's logger is the default report"),
    ok = deflog_b:bad_free(),
    tap:is(report(), invalid_free, "B's invalid free reaches A's logger"),
    true = code:delete(deflog_a),
    code:purge(deflog_a),
    tap:is({erlang:module_loaded(deflog_a), erlang:module_loaded(deflog_b)},
           {false, true}, "A purged, B still loaded"),
    timer:sleep(100),
    ok = deflog_b:bad_free(),
    Next = receive {beamalloc_report, _} -> logged after 200 -> none end,
    tap:is(Next, none, "B's next invalid free: the VM lives on, the "
           "report on standard error"),
    tap:done().
