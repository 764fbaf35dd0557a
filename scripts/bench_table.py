#!/usr/bin/env python3
"""Markdown table of `shaderlens bench --json` rows (the tables in BENCHMARKS.md).

    cargo run --release -- bench --json > rows.jsonl
    python3 scripts/bench_table.py rows.jsonl [more.jsonl ...]

With --vs VARIANT, adds a column: each row's speed over that variant's on the same op and shape
(rows of one run only, so that the ratio compares like with like).
"""

import json
import sys


def main():
    args = sys.argv[1:]
    baseline = None
    if "--vs" in args:
        i = args.index("--vs")
        baseline = args[i + 1]
        del args[i:i + 2]
    rows = [json.loads(line) for path in args for line in open(path) if line.strip()]
    base_ms = {(r["op"], tuple(r["shape"])): r["gpu_ms"] for r in rows if r["variant"] == baseline}
    head = "| op | shape | variant (choice) | GPU ms | rate | of peak | host f64 ms | host / GPU |"
    if baseline:
        head += f" speed vs {baseline} |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        rate = f"{r['gflops']:.2f} GFLOP/s" if r.get("gflops") is not None else f"{r['gbps']:.2f} GB/s"
        peak = "—" if r.get("peak_fraction") is None else f"{100 * r['peak_fraction']:.1f}%"
        shape = "×".join(str(d) for d in r["shape"])
        line = (f"| {r['op']} | {shape} | {r['variant']} ({r['choice']}) | {r['gpu_ms']:.2f} | {rate} | {peak} "
                f"| {r['host_ms']:.2f} ({r['host_reps']}×) | {r['speedup']:.2f}× |")
        if baseline:
            b = base_ms.get((r["op"], tuple(r["shape"])))
            line += f" {b / r['gpu_ms']:.2f}× |" if b else " — |"
        print(line)


if __name__ == "__main__":
    main()
