from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled","false").config("spark.sql.session.timeZone","UTC").getOrCreate()
qs = [
 "hash(cast(0 as int))", "hash(cast(1 as int))", "hash(cast(-1 as int))", "hash(cast(2147483647 as int))",
 "hash(cast(0 as bigint))", "hash(cast(1 as bigint))", "hash(cast(-1 as bigint))", "hash(cast(9223372036854775807 as bigint))",
 "hash(true)", "hash(false)", "hash('')", "hash('a')", "hash('abc')", "hash('abcd')", "hash('hello world')", "hash('héllo ✓')",
 "hash(cast(null as string))", "hash(cast(null as int))",
 "hash('a', cast(1 as bigint))", "hash(cast(null as string), cast(1 as bigint))", "hash(cast(1 as bigint), 'a')",
 "hash(timestamp'2024-01-01 12:00:00')", "hash(date'2024-01-01')", "hash(cast(1.5 as double))",
 "hash(named_struct('start', timestamp'2024-01-01 12:00:00', 'end', timestamp'2024-01-01 12:10:00'))",
]
for q in qs:
    r = spark.sql("select " + q + " as h").collect()[0]["h"]
    print(q, "=>", r)
