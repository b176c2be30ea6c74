"""Runs one benchmark query in Apache Spark Structured Streaming (local mode) over the same
files flowgate reads, with trigger available-now, and reports the time of each run.

    python run.py --query NAME --format json|parquet --input DIR [--output DIR] --runs N --threads T
                  [--max-files N] [--sink noop|memory] [--empty-runs K] [--checkpoint-root DIR]

--format json reads JSON lines (plain text lines for word_count), --format parquet reads
Parquet with the same schema (spark.readStream.schema(schema).parquet(dir)); the query text is
the same for both.

Each timed run is a fresh streaming query with its own checkpoint (offset and commit logs,
state; under --checkpoint-root, on the same disk as flowgate's) writing to --sink: `noop`
(default: Spark's `noop` format, which consumes every row and keeps nothing, the counterpart
of flowgate's sink that touches every value and drops the batch) or `memory` (every row
collected into the driver). The time is from start() to the end of awaitTermination() (the JVM
and the session are up before the first run).

With --output, a first, untimed run writes the result through the memory sink, as
tab-separated text under --output (timestamps as microseconds since the epoch, null as \\N),
for the caller to compare with flowgate's; it also warms the JIT before the timed runs.

--empty-runs K then runs the same query K times over an empty directory (same schema): Spark's
fixed cost per query (planning, starting the query and its first trigger, stopping), reported
separately. The last line of stdout is one JSON object: {"elapsed_s": [...], "empty_s": [...],
"rows": N, "peak_rss_kb": K} where K is the JVM's peak resident set (VmHWM) and N the rows of
the verification run (0 without --output).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType, StructType

TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"
BID_SCHEMA = (
    "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, date_time TIMESTAMP, extra STRING"
)


class Input:
    """The streaming input of a query: a directory of files in one format."""

    def __init__(self, spark, path, max_files, fmt):
        self.spark, self.path, self.max_files, self.fmt = spark, path, max_files, fmt

    def _reader(self):
        reader = self.spark.readStream
        if self.max_files:
            reader = reader.option("maxFilesPerTrigger", self.max_files)
        return reader

    def table(self, schema):
        """Rows of `schema` (a DDL string) from JSON lines or Parquet."""
        if self.fmt == "parquet":
            return self._reader().schema(schema).parquet(self.path)
        reader = self._reader().schema(schema).option("timestampFormat", TS_FORMAT).option("mode", "FAILFAST")
        return reader.json(self.path)

    def lines(self):
        """Rows of one string column `value`: text lines, or Parquet with that column."""
        if self.fmt == "parquet":
            return self._reader().schema("value STRING").parquet(self.path)
        return self._reader().text(self.path)


def bids(src):
    return src.table(BID_SCHEMA)


def euros():
    return F.lit(0.908).cast("double")


def q_word_count(spark, src):
    lines = src.lines()
    words = lines.select(F.explode(F.split(F.col("value"), " ")).alias("word"))
    return words.groupBy("word").agg(F.count(F.lit(1)).alias("count")), "complete"


def q_windowed_count(spark, src):
    events = src.table("ts TIMESTAMP, key BIGINT")
    out = (
        events.withWatermark("ts", "10 seconds")
        .groupBy(F.window("ts", "1 minute"), "key")
        .agg(F.count(F.lit(1)).alias("count"))
        .select(F.col("window.start"), F.col("window.end"), "key", "count")
    )
    return out, "append"


def q0(spark, src):
    return bids(src), "append"


def q1(spark, src):
    b = bids(src)
    return b.select("auction", "bidder", (euros() * F.col("price")).alias("price"), "date_time"), "append"


def q2(spark, src):
    b = bids(src)
    return b.where(F.col("auction") % 123 == 0).select("auction", "price"), "append"


def q14(spark, src):
    b = bids(src).withColumn("euros", euros() * F.col("price"))
    hour = F.hour("date_time")
    out = b.where((F.col("euros") > 1000000.0) & (F.col("euros") < 50000000.0)).select(
        "auction",
        "bidder",
        F.col("euros").alias("price"),
        F.when(hour.between(8, 18), "dayTime")
        .when((hour <= 6) | (hour >= 20), "nightTime")
        .otherwise("otherTime")
        .alias("bid_time_type"),
        "date_time",
        "extra",
        (F.length("extra") - F.length(F.regexp_replace("extra", "c", ""))).cast("bigint").alias("c_counts"),
    )
    return out, "append"


def q22(spark, src):
    b = bids(src)
    parts = F.split(F.col("url"), "/")
    return (
        b.select(
            "auction",
            "bidder",
            "price",
            "channel",
            F.get(parts, 3).alias("dir1"),
            F.get(parts, 4).alias("dir2"),
            F.get(parts, 5).alias("dir3"),
        ),
        "append",
    )


def q11(spark, src):
    b = bids(src)
    out = (
        b.withWatermark("date_time", "4 seconds")
        .groupBy(F.session_window("date_time", "10 seconds"), "bidder")
        .agg(F.count(F.lit(1)).alias("bid_count"))
        .select(
            "bidder",
            "bid_count",
            F.col("session_window.start").alias("starttime"),
            F.col("session_window.end").alias("endtime"),
        )
    )
    return out, "append"


def q17(spark, src):
    bids(src).createOrReplaceTempView("bids")
    out = spark.sql(
        """
        SELECT auction, date_format(date_time, 'yyyy-MM-dd') AS day, count(*) AS total_bids,
               count_if(price < 10000) AS rank1_bids,
               count_if(price >= 10000 AND price < 1000000) AS rank2_bids,
               count_if(price >= 1000000) AS rank3_bids,
               min(price) AS min_price, max(price) AS max_price, avg(price) AS avg_price,
               sum(price) AS sum_price
        FROM bids GROUP BY auction, date_format(date_time, 'yyyy-MM-dd')
        """
    )
    return out, "complete"


def q21(spark, src):
    bids(src).createOrReplaceTempView("bids")
    out = spark.sql(
        """
        SELECT auction, bidder, price, channel,
               CASE WHEN lower(channel) = 'apple' THEN '0'
                    WHEN lower(channel) = 'google' THEN '1'
                    WHEN lower(channel) = 'facebook' THEN '2'
                    WHEN lower(channel) = 'baidu' THEN '3'
                    ELSE regexp_extract(url, '(&|^)channel_id=([^&]*)', 2) END AS channel_id
        FROM bids
        WHERE lower(channel) IN ('apple', 'google', 'facebook', 'baidu')
           OR url RLIKE '(&|^)channel_id=([^&]*)'
        """
    )
    return out, "append"


from q13 import q13  # noqa: E402 (the bounded side input join, in its own file)

QUERIES = {
    "word_count": q_word_count,
    "windowed_count": q_windowed_count,
    "nexmark_q0": q0,
    "nexmark_q1": q1,
    "nexmark_q2": q2,
    "nexmark_q11": q11,
    "nexmark_q13": q13,
    "nexmark_q14": q14,
    "nexmark_q17": q17,
    "nexmark_q21": q21,
    "nexmark_q22": q22,
}


def flat(df):
    """The result with window structs flattened and timestamps as epoch microseconds."""
    cols = []
    for field in df.schema.fields:
        if isinstance(field.dataType, StructType):
            for sub in field.dataType.fields:
                c = F.col(f"`{field.name}`.`{sub.name}`")
                cols.append(F.unix_micros(c) if isinstance(sub.dataType, TimestampType) else c)
        elif isinstance(field.dataType, TimestampType):
            cols.append(F.unix_micros(F.col(f"`{field.name}`")).alias(field.name))
        else:
            cols.append(F.col(f"`{field.name}`"))
    return df.select(*cols)


def peak_rss_kb(spark):
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_query(spark, args, path, sink, name):
    """One streaming query over `path` to `sink`, started and awaited; returns its seconds."""
    checkpoint = tempfile.mkdtemp(prefix="spark-ckpt-", dir=args.checkpoint_root)
    df, mode = QUERIES[args.query](spark, Input(spark, path, args.max_files, args.format))
    writer = df.writeStream.format(sink).outputMode(mode).option("checkpointLocation", checkpoint)
    if sink == "memory":
        writer = writer.queryName(name)
    writer = writer.trigger(availableNow=True)
    start = time.perf_counter()
    q = writer.start()
    q.awaitTermination()
    elapsed = time.perf_counter() - start
    if q.exception() is not None:
        print(f"spark query failed: {q.exception()}", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--query", required=True, choices=sorted(QUERIES))
    ap.add_argument("--format", default="json", choices=["json", "parquet"])
    ap.add_argument("--input", required=True)
    ap.add_argument("--output")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--max-files", type=int, default=0)
    ap.add_argument("--memory", default="12g")
    ap.add_argument("--sink", default="noop", choices=["noop", "memory"])
    ap.add_argument("--empty-runs", type=int, default=0)
    ap.add_argument("--checkpoint-root", default=None)
    args = ap.parse_args()
    if args.checkpoint_root:
        os.makedirs(args.checkpoint_root, exist_ok=True)

    spark = (
        SparkSession.builder.master(f"local[{args.threads}]")
        .appName(f"flowgate-bench-{args.query}-{args.format}")
        .config("spark.driver.memory", args.memory)
        .config("spark.sql.shuffle.partitions", str(args.threads))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.streaming.stateStore.providerClass",
                "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    rows = 0
    if args.output:
        secs = run_query(spark, args, args.input, "memory", "verify")
        print(f"  spark {args.query} verification run (memory sink, untimed): {secs:.2f} s", file=sys.stderr)
        result = flat(spark.table("verify"))
        rows = result.count()
        shutil.rmtree(args.output, ignore_errors=True)
        (
            result.write.option("sep", "\t")
            .option("nullValue", "\\N")
            .option("emptyValue", "")
            .option("quote", "\u0000")
            .option("escapeQuotes", "false")
            .csv(args.output)
        )
        spark.catalog.dropTempView("verify")
    times = []
    for run in range(args.runs):
        times.append(run_query(spark, args, args.input, args.sink, f"out_{run}"))
        print(f"  spark {args.query} run {run + 1} ({args.sink} sink): {times[-1]:.2f} s", file=sys.stderr)
        if args.sink == "memory":
            spark.catalog.dropTempView(f"out_{run}")
    empty_times = []
    if args.empty_runs:
        empty_root = tempfile.mkdtemp(prefix="spark-empty-input-", dir=args.checkpoint_root)
        # The empty stream directory has the real one's name, and a side table read beside the
        # stream (q13's `side_input`, see q13.py) is linked beside it: the fixed cost includes
        # reading it, as every real run does.
        input_dir = os.path.normpath(args.input)
        empty = os.path.join(empty_root, os.path.basename(input_dir))
        os.mkdir(empty)
        side = os.path.join(os.path.dirname(input_dir), "side_input")
        if os.path.isdir(side):
            os.symlink(side, os.path.join(empty_root, "side_input"))
        for run in range(args.empty_runs):
            empty_times.append(run_query(spark, args, empty, args.sink, f"empty_{run}"))
            if args.sink == "memory":
                spark.catalog.dropTempView(f"empty_{run}")
        shutil.rmtree(empty_root, ignore_errors=True)
        print(f"  spark {args.query} over an empty input: {', '.join(f'{t:.2f}' for t in empty_times)} s", file=sys.stderr)
    print(json.dumps({"elapsed_s": times, "empty_s": empty_times, "rows": rows, "peak_rss_kb": peak_rss_kb(spark)}))
    spark.stop()


if __name__ == "__main__":
    main()
