"""Draws benches' compare CSV (target/bench-compare.csv) as a PNG bar chart.

    python chart.py bench-compare.csv bench-compare.png

One bar per case and series; the file systems are one series per format (the word count's
text lines count as the JSON-lines series).
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SERIES = [
    ("flowgate files (json/text)", "#1f77b4"),
    ("spark files (json/text)", "#ff7f0e"),
    ("flowgate files (parquet)", "#aec7e8"),
    ("spark files (parquet)", "#ffbb78"),
    ("flowgate memory", "#2ca02c"),
    ("hand memory", "#7f7f7f"),
]


def series(row):
    base = row["system"].split(" (")[0]
    fmt = row.get("format", "")
    if not fmt:
        return base
    return f"{base} ({'parquet' if fmt == 'parquet' else 'json/text'})"


rows = list(csv.DictReader(open(sys.argv[1])))
cases = list(dict.fromkeys(r["workload"] for r in rows))
present = [(s, c) for s, c in SERIES if any(series(r) == s for r in rows)]
fig, ax = plt.subplots(figsize=(max(8, 1.9 * len(cases)), 5))
width = 0.8 / max(1, len(present))
for k, (name, color) in enumerate(present):
    xs, ys = [], []
    for i, case in enumerate(cases):
        for r in rows:
            if r["workload"] == case and series(r) == name:
                xs.append(i + (k - (len(present) - 1) / 2) * width)
                ys.append(float(r["events_per_s_per_core"]))
    if xs:
        ax.bar(xs, ys, width, label=name, color=color)
ax.set_yscale("log")
ax.set_xticks(range(len(cases)))
ax.set_xticklabels(cases, rotation=20, ha="right")
ax.set_ylabel("input events / s / core (log)")
r0 = rows[0]
ax.set_title(f"flowgate vs hand-written Rust vs Spark: {r0['rows']} events, {r0['threads']} cores, median")
ax.legend(fontsize="small")
ax.grid(axis="y", which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
