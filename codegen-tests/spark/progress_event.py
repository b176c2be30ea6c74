"""Records one real Spark progress event (`StreamingQuery.lastProgress`) as JSON, for the test
that compares its keys with flowgate's progress JSON (codegen-tests/tests/listener.rs).

A windowed count with a watermark over a JSON file source, so the event has every section a
stateful query reports: durationMs, eventTime (watermark), stateOperators, sources, sink.

Run: /opt/oracle-venv/bin/python codegen-tests/spark/progress_event.py > codegen-tests/tests/golden/spark_progress.json
(/opt/oracle-venv comes from ../shared/oracle/setup.sh: pyspark 4.3.0, Java 17.)
"""
import json
import os
import sys
import tempfile

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = (
    SparkSession.builder.master("local[2]")
    .config("spark.sql.shuffle.partitions", "2")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
work = tempfile.mkdtemp(prefix="flowgate-progress-")
src = os.path.join(work, "in")
os.makedirs(src)
with open(os.path.join(src, "a.json"), "w") as f:
    for i in range(10):
        f.write(json.dumps({"ts": f"2024-01-01T00:00:{i:02d}Z", "k": f"k{i % 3}"}) + "\n")
df = (
    spark.readStream.schema("ts TIMESTAMP, k STRING").json(src)
    .withWatermark("ts", "10 seconds")
    .groupBy(F.window("ts", "5 seconds"), "k")
    .count()
)
q = (
    df.writeStream.format("memory").queryName("progress_keys").outputMode("update")
    .option("checkpointLocation", os.path.join(work, "cp"))
    .trigger(availableNow=True)
    .start()
)
q.awaitTermination()
events = [p for p in q.recentProgress if p["numInputRows"] > 0]
last = events[-1]
# pyspark 4 gives a StreamingQueryProgress (its `json` is Spark's own text); older ones a dict.
last = json.loads(last.json) if hasattr(last, "json") else last
json.dump(last, sys.stdout, indent=2, sort_keys=True, default=str)
sys.stdout.write("\n")
spark.stop()
