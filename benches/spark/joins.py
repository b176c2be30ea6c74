"""Nexmark's stream-stream joins in Apache Spark Structured Streaming (local mode), over the
persons and auctions JSON files flowgate reads (`flowgate-benches joins-spark`): one file per
source per micro-batch (maxFilesPerTrigger 1), trigger available-now, the memory sink.

    python joins.py --query q3|q8 --persons DIR --auctions DIR --runs N --threads T
    python joins.py --query q4|q5|q7 --auctions DIR --bids DIR --runs N --threads T

q4, q5 and q7 (`benches/src/nexmark_joins.rs`) read auctions and bids; their results are small, so
the last line also carries them as `"result"`: one tab-separated line per row (timestamps as
µs since the epoch, doubles with 4 decimals), sorted, for flowgate's to be compared with.

Each run is a fresh query with its own checkpoint; its time is from start() to the end of
awaitTermination(), the JVM and session up before. A first run over empty directories gives
Spark's fixed cost per query. The last line of stdout is one JSON object:
{"elapsed_s": [...], "empty_s": S, "rows": N}.
"""

import argparse
import json
import os
import shutil
import tempfile
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

PERSON = ("id BIGINT, name STRING, email_address STRING, credit_card STRING, city STRING, "
          "state STRING, date_time TIMESTAMP, extra STRING")
AUCTION = ("id BIGINT, item_name STRING, description STRING, initial_bid BIGINT, reserve BIGINT, "
           "date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, extra STRING")
BID = "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, date_time TIMESTAMP, extra STRING"


def read(spark, schema, path):
    return (spark.readStream.schema(schema).option("maxFilesPerTrigger", 1)
            .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").json(path))


def q3(spark, persons, auctions):
    a = read(spark, AUCTION, auctions).where("category = 10")
    p = read(spark, PERSON, persons).where("state IN ('OR', 'ID', 'CA')")
    return a.alias("A").join(p.alias("P"), a.seller == p.id).selectExpr("P.name", "P.city", "P.state", "A.id")


def q8(spark, persons, auctions):
    p = (read(spark, PERSON, persons).withWatermark("date_time", "10 seconds")
         .selectExpr("id", "name", "window(date_time, '10 seconds') AS pw"))
    a = (read(spark, AUCTION, auctions).withWatermark("date_time", "10 seconds")
         .selectExpr("seller", "window(date_time, '10 seconds') AS aw"))
    return p.join(a, (p.id == a.seller) & (p.pw == a.aw)).selectExpr("id", "name", "pw.start AS starttime")


def q4(spark, auctions, bids):
    """Average closing price per category, per 10-second window of the auctions' start: the
    highest bid between an auction's start and its expiry (bounded by start + 1 second too, so
    the join can evict), then the average per category (chained aggregations, append mode)."""
    a = read(spark, AUCTION, auctions).withWatermark("date_time", "1 second")
    b = (read(spark, BID, bids).selectExpr("auction", "price", "date_time AS bid_time")
         .withWatermark("bid_time", "1 second"))
    j = a.join(b, F.expr("id = auction AND bid_time >= date_time AND bid_time <= date_time + INTERVAL 1 SECOND "
                         "AND bid_time <= expires"))
    m = j.groupBy(F.window("date_time", "10 seconds"), "id", "category").agg(F.max("price").alias("final_price"))
    return (m.groupBy(F.window(F.window_time("window"), "10 seconds"), "category")
            .agg(F.avg("final_price").alias("avg_final"))
            .selectExpr("unix_micros(window.start) AS s", "unix_micros(window.end) AS e", "category", "avg_final"))


def q5(spark, auctions, bids):
    """Hot items' aggregation: bids per auction in 10-second windows sliding by 2 seconds, then
    the largest count per window (named by its last 2 seconds)."""
    b = read(spark, BID, bids).withWatermark("date_time", "1 second")
    c = b.groupBy(F.window("date_time", "10 seconds", "2 seconds"), "auction").agg(F.count("*").alias("num"))
    return (c.groupBy(F.window(F.window_time("window"), "2 seconds")).agg(F.max("num").alias("maxn"))
            .selectExpr("unix_micros(window.start) AS s", "unix_micros(window.end) AS e", "maxn"))


def q7(spark, bids, bids_again):
    """Highest bid: the bids at the highest price of each 10-second window, as Nexmark writes
    it (the windowed maximum joined back with the bids on the window and the price). The bids
    side keeps one event-time column (MULTIPLE_EVENT_TIME_COLUMNS): its window; its time is
    carried as microseconds."""
    m = (read(spark, BID, bids).withWatermark("date_time", "1 second")
         .groupBy(F.window("date_time", "10 seconds")).agg(F.max("price").alias("maxprice")))
    b = (read(spark, BID, bids_again).withWatermark("date_time", "1 second")
         .selectExpr("auction", "price", "bidder", "unix_micros(date_time) AS t", "window(date_time, '10 seconds') AS bw"))
    return m.join(b, (m.window == b.bw) & (m.maxprice == b.price)).selectExpr("auction", "price", "bidder", "t")


def row_text(r):
    return "\t".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--query", required=True, choices=["q3", "q4", "q5", "q7", "q8"])
    ap.add_argument("--persons")
    ap.add_argument("--auctions", required=True)
    ap.add_argument("--bids")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    spark = (SparkSession.builder.master(f"local[{args.threads}]").appName(f"flowgate-bench-join-{args.query}")
             .config("spark.driver.memory", "8g")
             .config("spark.sql.shuffle.partitions", str(args.threads))
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    query = {"q3": q3, "q4": q4, "q5": q5, "q7": q7, "q8": q8}[args.query]
    # q3 and q8 join persons with auctions; q4 and q5 read auctions and bids; q7 reads the bids
    # twice.
    first, second = {"q4": (args.auctions, args.bids), "q5": (args.auctions, args.bids),
                     "q7": (args.bids, args.bids)}.get(args.query, (args.persons, args.auctions))

    def run(name, one, two):
        ckpt = tempfile.mkdtemp(prefix="flowgate-spark-join-")
        q = (query(spark, one, two).writeStream.format("memory").queryName(name)
             .outputMode("append").option("checkpointLocation", ckpt).trigger(availableNow=True))
        start = time.perf_counter()
        s = q.start()
        s.awaitTermination()
        took = time.perf_counter() - start
        shutil.rmtree(ckpt, ignore_errors=True)
        if s.exception() is not None:
            raise SystemExit(f"spark query failed: {s.exception()}")
        return took

    empty = tempfile.mkdtemp(prefix="flowgate-empty-")
    os.makedirs(os.path.join(empty, "p"))
    os.makedirs(os.path.join(empty, "a"))
    empty_s = run("empty", os.path.join(empty, "p"), os.path.join(empty, "a"))
    shutil.rmtree(empty, ignore_errors=True)
    times = []
    result = None
    for r in range(args.runs):
        times.append(run(f"out_{r}", first, second))
        rows = spark.table(f"out_{r}").count()
        if args.query in ("q4", "q5", "q7"):
            result = sorted(row_text(x) for x in spark.table(f"out_{r}").collect())
        if r + 1 < args.runs:
            spark.catalog.dropTempView(f"out_{r}")
    print(json.dumps({"elapsed_s": times, "empty_s": empty_s, "rows": rows, "result": result}))


if __name__ == "__main__":
    main()
