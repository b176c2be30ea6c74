#!/usr/bin/env python3
"""Record the exact errors Spark gives for streaming queries it rejects (flowgate's copy of
the shared oracle's rejections.py, with its own list: the stream-stream join shapes).

Each invalid query is described in the same declarative form as a case
(run_case.py interprets it); the script builds it over empty streaming file
sources, calls writeStream...start() (or a batch action) and records the
exception. Output: rejections.jsonl, one JSON object per query:

  {"name", "query" (PySpark snippet), "output_mode", "accepted" (true when Spark
   did NOT reject it: kept to document it), "stage" (where it failed:
   build | start | action), "exception" (Python class), "error_class",
   "sqlstate", "error" (message; the logical plan Spark appends after ';\\n'
   is cut because it contains per-run expression ids), "error_plan_cut" (bool)}

    /opt/oracle-venv/bin/python rejections.py [--output rejections.jsonl]
"""
import argparse
import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_case  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

EVENTS = {"events": {"kind": "stream", "schema": "ts TIMESTAMP, word STRING"}}
WM = {"op": "withWatermark", "column": "ts", "delay": "10 minutes"}
IMP = {"kind": "stream", "schema": "impressionAdId STRING, impressionTime TIMESTAMP"}
CLK = {"kind": "stream", "schema": "clickAdId STRING, clickTime TIMESTAMP"}
IMP_WM = dict(IMP, ops=[{"op": "withWatermark", "column": "impressionTime", "delay": "2 hours"}])
CLK_WM = dict(CLK, ops=[{"op": "withWatermark", "column": "clickTime", "delay": "3 hours"}])
RANGE = "clickAdId = impressionAdId AND clickTime >= impressionTime AND clickTime <= impressionTime + interval 1 hour"
ORDERS = {"kind": "stream", "schema": "order_id INT, product_id STRING"}
JOINED = {"kind": "stream", "schema": "impressionAdId STRING, impressionTime TIMESTAMP, clickAdId STRING, clickTime TIMESTAMP"}
PRODUCTS = {"kind": "static", "schema": "product_id STRING, name STRING", "file": "static/products.jsonl"}

INVALID = [
    # flowgate's extension of the shared list: which stream-stream join shapes Spark 4 accepts.
    ("ss_left_outer_update_mode", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "left_outer"}], "update"),
    ("ss_full_outer_update_mode", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "full_outer"}], "update"),
    ("ss_left_semi_update_mode", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "left_semi"}], "update"),
    ("ss_left_outer_no_left_watermark", {"impressions": IMP, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "left_outer"}], "append"),
    ("ss_left_anti", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "left_anti"}], "append"),
    ("ss_inner_then_count_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "groupBy", "keys": ["window(impressionTime, '1 hour')"], "aggs": ["count(*) AS n"]}], "append"),
    ("ss_inner_then_count_update", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "groupBy", "keys": ["impressionAdId"], "aggs": ["count(*) AS n"]}], "update"),
    # Stateful operators after stateful operators (Spark's checkStreamingQueryGlobalWatermarkLimit).
    ("ss_left_outer_then_count_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "left_outer"},
      {"op": "groupBy", "keys": ["window(impressionTime, '1 hour')"], "aggs": ["count(*) AS n"]}], "append"),
    ("ss_inner_then_count_complete", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "groupBy", "keys": ["impressionAdId"], "aggs": ["count(*) AS n"]}], "complete"),
    ("ss_inner_then_count_append_no_window", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "groupBy", "keys": ["impressionAdId"], "aggs": ["count(*) AS n"]}], "append"),
    ("chained_window_aggs_append", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "groupBy", "keys": ["window(window.end, '1 hour')"], "aggs": ["sum(n) AS total"]}], "append"),
    ("chained_window_time_aggs_append", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "groupBy", "keys": ["window(window_time(window), '1 hour')"], "aggs": ["sum(n) AS total"]}], "append"),
    ("chained_window_aggs_update", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "groupBy", "keys": ["window(window.end, '1 hour')"], "aggs": ["sum(n) AS total"]}], "update"),
    ("chained_aggs_second_not_windowed_append", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "groupBy", "keys": ["word"], "aggs": ["sum(n) AS total"]}], "append"),
    ("dedup_after_count_update", EVENTS,
     [{"op": "groupBy", "keys": ["word"], "aggs": ["count(*) AS n"]},
      {"op": "dropDuplicates", "columns": ["n"]}], "update"),
    ("dedup_after_window_count_append", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "dropDuplicates", "columns": ["word"]}], "append"),
    ("dedup_window_after_window_count_update", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "dropDuplicates", "columns": ["window", "n"]}], "update"),
    ("dedup_window_after_window_count_append", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "dropDuplicates", "columns": ["window", "n"]}], "append"),
    # Operators after a stream-stream join, and a join after an aggregation.
    ("ss_inner_then_dedup_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "dropDuplicates", "columns": ["impressionAdId"]}], "append"),
    ("ss_inner_then_dedup_event_time_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "dropDuplicates", "columns": ["impressionAdId", "impressionTime"]}], "append"),
    ("ss_left_outer_then_dedup_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "left_outer"},
      {"op": "dropDuplicates", "columns": ["impressionAdId"]}], "append"),
    ("ss_inner_then_dedup_within_watermark_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "dropDuplicatesWithinWatermark", "columns": ["impressionAdId"]}], "append"),
    ("ss_inner_then_limit_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "limit", "n": 3}], "append"),
    ("ss_inner_then_order_by_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "orderBy", "exprs": ["impressionAdId"]}], "append"),
    ("ss_inner_then_union_append", {"impressions": IMP_WM, "clicks": CLK_WM, "joined": JOINED},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "union", "with": "joined"}], "append"),
    ("window_count_then_ss_join_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "groupBy", "keys": ["window(impressionTime, '1 hour')", "impressionAdId"], "aggs": ["count(*) AS n"]},
      {"op": "join", "with": "clicks", "on": "clickAdId = impressionAdId AND clickTime >= window.start AND clickTime <= window.end", "how": "inner"}], "append"),
    ("count_then_ss_join_update", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "groupBy", "keys": ["impressionAdId"], "aggs": ["count(*) AS n"]},
      {"op": "join", "with": "clicks", "on": "clickAdId = impressionAdId", "how": "inner"}], "update"),
    ("count_then_static_join_complete", {"orders": ORDERS, "products": PRODUCTS},
     [{"op": "groupBy", "keys": ["product_id"], "aggs": ["count(*) AS n"]},
      {"op": "join", "with": "products", "using": ["product_id"], "how": "inner"}], "complete"),
    ("count_then_static_join_update", {"orders": ORDERS, "products": PRODUCTS},
     [{"op": "groupBy", "keys": ["product_id"], "aggs": ["count(*) AS n"]},
      {"op": "join", "with": "products", "using": ["product_id"], "how": "inner"}], "update"),
    ("count_then_static_left_outer_join_update", {"orders": ORDERS, "products": PRODUCTS},
     [{"op": "groupBy", "keys": ["product_id"], "aggs": ["count(*) AS n"]},
      {"op": "join", "with": "products", "using": ["product_id"], "how": "left_outer"}], "update"),
    ("window_count_then_static_join_append", {"events": EVENTS["events"], "products": dict(PRODUCTS, schema="word STRING, name STRING")},
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "join", "with": "products", "using": ["word"], "how": "inner"}], "append"),
    # Session windows with other operators.
    ("session_count_then_window_sum_append", EVENTS,
     [WM, {"op": "groupBy", "keys": ["session_window(ts, '5 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "groupBy", "keys": ["window(window_time(session_window), '1 hour')"], "aggs": ["sum(n) AS total"]}], "append"),
    ("session_count_then_count_append", EVENTS,
     [WM, {"op": "groupBy", "keys": ["session_window(ts, '5 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "groupBy", "keys": ["word"], "aggs": ["count(*) AS sessions"]}], "append"),
    ("union_then_session_count_append", {"events": EVENTS["events"], "more": EVENTS["events"]},
     [{"op": "union", "with": "more"}, WM,
      {"op": "groupBy", "keys": ["session_window(ts, '5 minutes')", "word"], "aggs": ["count(*) AS n"]}], "append", "events"),
    ("session_count_sorted_complete", EVENTS,
     [{"op": "groupBy", "keys": ["session_window(ts, '5 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "orderBy", "exprs": ["n DESC"]}], "complete"),
    ("session_count_limit_complete", EVENTS,
     [{"op": "groupBy", "keys": ["session_window(ts, '5 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "limit", "n": 2}], "complete"),
    ("window_count_limit_append", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "limit", "n": 2}], "append"),
    ("window_count_limit_update", EVENTS,
     [WM, {"op": "groupBy", "keys": ["window(ts, '10 minutes')", "word"], "aggs": ["count(*) AS n"]},
      {"op": "limit", "n": 2}], "update"),
]
# Operators after arbitrary stateful processing (flowgate's group-state list: --only gs_,tws_
# --output ../group_state_rejections.jsonl).
GS_EVENTS = {"events": {"kind": "stream", "schema": "user STRING, ts TIMESTAMP, clicks LONG, action STRING"}}
GS_WM = {"op": "withWatermark", "column": "ts", "delay": "10 seconds"}
GS_UPDATE = {"op": "applyInPandasWithState", "keys": ["user"], "function": "running_totals",
             "output_schema": "user STRING, events LONG, clicks LONG, active BOOLEAN",
             "state_schema": "events LONG, clicks LONG", "output_mode": "update", "timeout": "NoTimeout"}
GS_APPEND = {"op": "applyInPandasWithState", "keys": ["user"], "function": "session_alerts",
             "output_schema": "user STRING, kind STRING, clicks LONG, events LONG",
             "state_schema": "events LONG, clicks LONG, last LONG", "output_mode": "append",
             "timeout": "EventTimeTimeout"}
TWS_CONF_EVENTS = {"events": {"kind": "stream", "schema": "user STRING, ts TIMESTAMP, page STRING, clicks LONG, action STRING"}}
TWS_APPEND = {"op": "transformWithStateInPandas", "keys": ["user"], "processor": "QuietAlerts",
              "output_schema": "user STRING, events LONG, fired_at TIMESTAMP", "output_mode": "Append",
              "time_mode": "EventTime"}
TWS_UPDATE = dict(TWS_APPEND, output_mode="Update")
COUNT_BY_USER = {"op": "groupBy", "keys": ["user"], "aggs": ["count(*) AS n"]}
DEDUP_USER = {"op": "dropDuplicates", "columns": ["user"]}
# GS_APPEND with an event-time column in its output (the function is never called: the
# streams are empty).
GS_APPEND_AT = dict(GS_APPEND, output_schema="user STRING, kind STRING, clicks LONG, events LONG, at TIMESTAMP")
INVALID += [
    ("gs_update_then_count_update", GS_EVENTS, [GS_UPDATE, COUNT_BY_USER], "update"),
    ("gs_update_then_count_complete", GS_EVENTS, [GS_UPDATE, COUNT_BY_USER], "complete"),
    ("gs_append_then_count_update", GS_EVENTS, [GS_WM, GS_APPEND, COUNT_BY_USER], "update"),
    ("gs_append_then_count_complete", GS_EVENTS, [GS_WM, GS_APPEND, COUNT_BY_USER], "complete"),
    ("gs_append_then_count_append", GS_EVENTS, [GS_WM, GS_APPEND, COUNT_BY_USER], "append"),
    ("gs_update_then_dedup_update", GS_EVENTS, [GS_UPDATE, {"op": "dropDuplicates", "columns": ["user"]}], "update"),
    ("gs_append_then_gs_append", GS_EVENTS, [GS_WM, GS_APPEND, dict(GS_APPEND, function="session_alerts")], "append"),
    ("tws_update_then_count_update", TWS_CONF_EVENTS, [GS_WM, TWS_UPDATE, COUNT_BY_USER], "update"),
    ("tws_append_then_count_update", TWS_CONF_EVENTS, [GS_WM, TWS_APPEND, COUNT_BY_USER], "update"),
    ("tws_append_then_window_count_append", TWS_CONF_EVENTS,
     [GS_WM, TWS_APPEND, {"op": "groupBy", "keys": ["window(fired_at, '10 seconds')"], "aggs": ["count(*) AS n"]}], "append"),
    ("tws_append_then_watermark_window_count_append", TWS_CONF_EVENTS,
     [GS_WM, TWS_APPEND, {"op": "withWatermark", "column": "fired_at", "delay": "0 seconds"},
      {"op": "groupBy", "keys": ["window(fired_at, '10 seconds')"], "aggs": ["count(*) AS n"]}], "append"),
    # Which operators may follow: dedups, stateless operators, and aggregations over a
    # watermarked output column.
    ("gs_update_then_dedup_append", GS_EVENTS, [GS_UPDATE, DEDUP_USER], "append"),
    ("gs_update_then_filter_update", GS_EVENTS, [GS_UPDATE, {"op": "where", "expr": "events > 1"}], "update"),
    ("gs_append_then_dedup_append", GS_EVENTS, [GS_WM, GS_APPEND, DEDUP_USER], "append"),
    ("gs_append_then_dedup_update", GS_EVENTS, [GS_WM, GS_APPEND, DEDUP_USER], "update"),
    ("gs_append_then_watermark_window_count_append", GS_EVENTS,
     [GS_WM, GS_APPEND_AT, {"op": "withWatermark", "column": "at", "delay": "0 seconds"},
      {"op": "groupBy", "keys": ["window(at, '10 seconds')"], "aggs": ["count(*) AS n"]}], "append"),
    ("gs_append_then_watermark_window_count_update", GS_EVENTS,
     [GS_WM, GS_APPEND_AT, {"op": "withWatermark", "column": "at", "delay": "0 seconds"},
      {"op": "groupBy", "keys": ["window(at, '10 seconds')"], "aggs": ["count(*) AS n"]}], "update"),
    ("gs_append_nowm_then_watermark_window_count_append", GS_EVENTS,
     [dict(GS_APPEND_AT, timeout="NoTimeout"), {"op": "withWatermark", "column": "at", "delay": "0 seconds"},
      {"op": "groupBy", "keys": ["window(at, '10 seconds')"], "aggs": ["count(*) AS n"]}], "append"),
    ("gs_append_nowm_then_count_update", GS_EVENTS, [dict(GS_APPEND, timeout="NoTimeout"), COUNT_BY_USER], "update"),
    ("gs_append_nowm_then_count_complete", GS_EVENTS, [dict(GS_APPEND, timeout="NoTimeout"), COUNT_BY_USER], "complete"),
    ("gs_append_wm_notimeout_then_count_update", GS_EVENTS,
     [GS_WM, dict(GS_APPEND, timeout="NoTimeout"), COUNT_BY_USER], "update"),
    ("gs_append_wm_notimeout_then_dedup_append", GS_EVENTS,
     [GS_WM, dict(GS_APPEND, timeout="NoTimeout"), DEDUP_USER], "append"),
    ("gs_append_then_select_count_complete", GS_EVENTS,
     [dict(GS_APPEND, timeout="NoTimeout"), {"op": "where", "expr": "clicks > 1"},
      {"op": "groupBy", "keys": ["kind"], "aggs": ["count(*) AS n", "sum(clicks) AS clicks"]}], "complete"),
    ("gs_update_then_limit_update", GS_EVENTS, [GS_UPDATE, {"op": "limit", "n": 2}], "update"),
    ("tws_update_then_dedup_update", TWS_CONF_EVENTS, [GS_WM, TWS_UPDATE, DEDUP_USER], "update"),
    ("tws_append_then_dedup_append", TWS_CONF_EVENTS, [GS_WM, TWS_APPEND, DEDUP_USER], "append"),
    ("tws_append_then_count_complete", TWS_CONF_EVENTS, [GS_WM, TWS_APPEND, COUNT_BY_USER], "complete"),
    ("tws_update_then_count_complete", TWS_CONF_EVENTS, [GS_WM, TWS_UPDATE, COUNT_BY_USER], "complete"),
    ("tws_append_then_count_append", TWS_CONF_EVENTS, [GS_WM, TWS_APPEND, COUNT_BY_USER], "append"),
    ("tws_append_then_watermark_window_count_update", TWS_CONF_EVENTS,
     [GS_WM, TWS_APPEND, {"op": "withWatermark", "column": "fired_at", "delay": "0 seconds"},
      {"op": "groupBy", "keys": ["window(fired_at, '10 seconds')"], "aggs": ["count(*) AS n"]}], "update"),
    ("tws_nowm_append_then_count_update", TWS_CONF_EVENTS, [dict(TWS_APPEND, time_mode="None"), COUNT_BY_USER], "update"),
]
# A stream-static join after group state.
INVALID += [
    ("gs_update_then_static_join_update", dict(GS_EVENTS, products=PRODUCTS),
     [GS_UPDATE, {"op": "join", "with": "products", "on": "user = product_id", "how": "left_outer"}], "update"),
]
INVALID += [
    ("gs_append_then_limit_append", GS_EVENTS, [dict(GS_APPEND, timeout="NoTimeout"), {"op": "limit", "n": 2}], "append"),
    ("gs_append_then_dedup_within_watermark_append", GS_EVENTS,
     [dict(GS_APPEND_AT, timeout="NoTimeout"), {"op": "withWatermark", "column": "at", "delay": "0 seconds"},
      {"op": "dropDuplicatesWithinWatermark", "columns": ["user"]}], "append"),
]
# Group state after a stream-stream join.
JOIN_GS = {"op": "applyInPandasWithState", "keys": ["impressionAdId"], "function": "running_totals",
           "output_schema": "impressionAdId STRING, events LONG", "state_schema": "events LONG",
           "output_mode": "append", "timeout": "NoTimeout"}
INVALID += [
    ("ss_inner_then_gs_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"}, JOIN_GS], "append"),
    ("ss_inner_then_gs_update", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"}, dict(JOIN_GS, output_mode="update")], "update"),
    ("ss_left_outer_then_gs_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "left_outer"}, JOIN_GS], "append"),
    ("ss_inner_then_tws_append", {"impressions": IMP_WM, "clicks": CLK_WM},
     [{"op": "join", "with": "clicks", "on": RANGE, "how": "inner"},
      {"op": "transformWithStateInPandas", "keys": ["impressionAdId"], "processor": "QuietAlerts",
       "output_schema": "user STRING, events LONG, fired_at TIMESTAMP", "output_mode": "Append", "time_mode": "None"}], "append"),
]
# Batch actions on a streaming DataFrame (not via writeStream)
ACTIONS = [
    ("batch_action_count_on_stream", EVENTS, [], "count"),
]


def message_of(e):
    msg = None
    for attr in ("getMessage",):
        if hasattr(e, attr):
            try:
                msg = getattr(e, attr)()
            except Exception:
                msg = None
    if not msg:
        msg = str(e)
    return msg


def record_error(e):
    msg = message_of(e)
    cut = False
    # Spark appends the (analyzed) logical plan after ';\n'; it contains per-run expression ids.
    if ";\n" in msg:
        msg = msg.split(";\n", 1)[0]
        cut = True
    cond = None
    for attr in ("getCondition", "getErrorClass"):
        if hasattr(e, attr):
            try:
                cond = getattr(e, attr)()
                break
            except Exception:
                pass
    state = None
    if hasattr(e, "getSqlState"):
        try:
            state = e.getSqlState()
        except Exception:
            pass
    return {
        "exception": type(e).__name__,
        "error_class": cond,
        "sqlstate": state,
        "error": msg,
        "error_plan_cut": cut,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", default=os.path.join(HERE, "..", "join_rejections.jsonl"))
    ap.add_argument("--work", default=os.path.join(run_case.DEFAULT_WORK, "_rejections"))
    ap.add_argument("--only", default="", help="comma-separated name prefixes to run (all by default)")
    args = ap.parse_args()
    spark = run_case.get_spark("oracle-rejections")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(os.path.join(args.work, "static"))
    with open(os.path.join(args.work, "static", "products.jsonl"), "w") as f:
        f.write('{"product_id": "p1", "name": "apple"}\n')
    out = []
    specs = [(n, s, ops, mode, (rest[0] if rest else None), None) for (n, s, ops, mode, *rest) in INVALID]
    specs += [(n, s, ops, None, None, action) for (n, s, ops, action) in ACTIONS]
    only = [p for p in args.only.split(",") if p]
    for name, sources, ops, mode, from_, action in specs:
        if only and not any(name.startswith(p) for p in only):
            continue
        from_ = from_ or next(iter(sources))
        case = {"name": name, "sources": sources, "query": {"from": from_, "ops": ops}, "output_mode": mode or "append"}
        query_text = run_case.render_pyspark(case)
        query_text = query_text.replace(".foreachBatch(capture_rows)", '.format("noop")')
        if action:
            query_text = query_text.split("\nquery = ")[0] + "\nresult.%s()" % action
        staging = {}
        for sname, s in sources.items():
            if s.get("kind", "stream") == "stream":
                staging[sname] = os.path.join(args.work, name, sname)
                os.makedirs(staging[sname], exist_ok=True)
        rec = {"name": name, "query": query_text, "output_mode": mode}
        stage = "build"
        q = None
        try:
            df = run_case.build_query_df(spark, case, args.work, staging)
            if action:
                stage = "action"
                getattr(df, action)()
            else:
                stage = "start"
                q = (df.writeStream.outputMode(mode).format("noop")
                     .option("checkpointLocation", os.path.join(args.work, name, "_ckpt")).start())
                q.processAllAvailable()
            rec.update({"accepted": True, "stage": None, "exception": None, "error_class": None,
                        "sqlstate": None, "error": None, "error_plan_cut": False})
        except Exception as e:  # noqa: BLE001
            rec["accepted"] = False
            rec["stage"] = stage
            rec.update(record_error(e))
        finally:
            if q is not None:
                q.stop()
        out.append(rec)
        print("%-65s %s" % (name, (rec.get("error_class") or rec.get("error") or "ACCEPTED")[:100]), flush=True)
    with open(args.output, "w") as f:
        for rec in out:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    spark.stop()


if __name__ == "__main__":
    main()
