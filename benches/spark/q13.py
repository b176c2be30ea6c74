"""Nexmark q13, the bounded side input join, for run.py: each bid with the side table's row
whose key is the bid's auction modulo 10 000 (Flink's Nexmark:
SELECT B.auction, B.bidder, B.price, B.dateTime, S.value FROM bid B JOIN side_input FOR
SYSTEM_TIME AS OF B.p_time AS S ON mod(B.auction, 10000) = S.key).

The side table is the JSON-lines file flowgate's benchmark writes beside the bids
(`<format>/side_input/`, see benches/src/q13.rs), read with spark.read: a static DataFrame
joined to the stream (a stream-static inner join).
"""

import os

SIDE_SCHEMA = "key BIGINT, value STRING"
SIDE_KEYS = 10000


def q13(spark, src):
    from run import bids

    b = bids(src)
    side_dir = os.path.join(os.path.dirname(os.path.normpath(src.path)), "side_input")
    side = spark.read.schema(SIDE_SCHEMA).json(side_dir)
    out = b.join(side, (b["auction"] % SIDE_KEYS) == side["key"]).select(
        b["auction"], b["bidder"], b["price"], b["date_time"], side["value"]
    )
    return out, "append"
