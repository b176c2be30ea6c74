"""Nexmark's stream-stream joins in Apache Spark Structured Streaming (local mode), over the
persons and auctions JSON files flowgate reads (`flowgate-benches joins-spark`): one file per
source per micro-batch (maxFilesPerTrigger 1), trigger available-now, the memory sink.

    python joins.py --query q3|q8 --persons DIR --auctions DIR --runs N --threads T

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

PERSON = ("id BIGINT, name STRING, email_address STRING, credit_card STRING, city STRING, "
          "state STRING, date_time TIMESTAMP, extra STRING")
AUCTION = ("id BIGINT, item_name STRING, description STRING, initial_bid BIGINT, reserve BIGINT, "
           "date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, extra STRING")


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--query", required=True, choices=["q3", "q8"])
    ap.add_argument("--persons", required=True)
    ap.add_argument("--auctions", required=True)
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
    query = {"q3": q3, "q8": q8}[args.query]

    def run(name, persons, auctions):
        ckpt = tempfile.mkdtemp(prefix="flowgate-spark-join-")
        q = (query(spark, persons, auctions).writeStream.format("memory").queryName(name)
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
    times = []
    for r in range(args.runs):
        times.append(run(f"out_{r}", args.persons, args.auctions))
        rows = spark.table(f"out_{r}").count()
        if r + 1 < args.runs:
            spark.catalog.dropTempView(f"out_{r}")
    print(json.dumps({"elapsed_s": times, "empty_s": empty_s, "rows": rows}))


if __name__ == "__main__":
    main()
