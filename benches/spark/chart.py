"""Draws benches' compare CSV (target/bench-compare.csv) as a PNG bar chart.

    python chart.py bench-compare.csv bench-compare.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
cases = list(dict.fromkeys(r["workload"] for r in rows))
systems = ["flowgate files", "spark files", "flowgate memory", "hand memory"]
colors = {"flowgate files": "#1f77b4", "spark files": "#ff7f0e", "flowgate memory": "#2ca02c", "hand memory": "#7f7f7f"}
fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(cases)), 5))
width = 0.8 / len(systems)
for k, system in enumerate(systems):
    xs, ys = [], []
    for i, case in enumerate(cases):
        for r in rows:
            if r["workload"] == case and r["system"] == system:
                xs.append(i + (k - (len(systems) - 1) / 2) * width)
                ys.append(float(r["events_per_s_per_core"]))
    if xs:
        ax.bar(xs, ys, width, label=system, color=colors[system])
ax.set_yscale("log")
ax.set_xticks(range(len(cases)))
ax.set_xticklabels(cases, rotation=20, ha="right")
ax.set_ylabel("input events / s / core (log)")
r0 = rows[0]
ax.set_title(f"flowgate vs hand-written Rust vs Spark: {r0['rows']} events, {r0['threads']} cores, median")
ax.legend()
ax.grid(axis="y", which="both", alpha=0.3)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
