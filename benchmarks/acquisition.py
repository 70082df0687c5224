"""Cost of acquisition alone: seconds and peak memory to score a pool, from cached predictions.

No model runs: the inputs are random arrays shaped like a ViT-B/16's outputs on a CIFAR pool
(probabilities [N, K], 10 MC passes [10, N, K], features [N, 768], CLS attention [N, 12, 197],
a labeled set of 10,000 for coreset and a clean initial set of 1,000 for GCI-ViTAL). Each
(strategy, K) runs in a fresh process; peak memory is the largest resident-set growth during
``select`` above the resident set before it (imports and inputs included there), sampled
every 5 ms.

    python benchmarks/acquisition.py                     # N=50,000, K in {10, 100}, k=1,000
    python benchmarks/acquisition.py --pool 5000 --query 100 --strategies entropy badge
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import threading
import time

import numpy as np


def _inputs(n: int, k: int, d: int, heads: int, tokens: int, labeled: int, reference: int, passes: int):
    from alvit.strategies import PoolView

    rng = np.random.default_rng(0)

    def softmax(shape):
        x = rng.standard_normal(shape, dtype=np.float32)
        x = np.exp(x - x.max(-1, keepdims=True))
        return x / x.sum(-1, keepdims=True)

    return PoolView(
        probs=softmax((n, k)),
        mc_probs=softmax((passes, n, k)),
        features=rng.standard_normal((n, d), dtype=np.float32),
        attention=softmax((n, heads, tokens)),
        labeled_features=rng.standard_normal((labeled, d), dtype=np.float32),
        reference_attention=softmax((reference, heads, tokens)),
        reference_labels=rng.integers(0, k, reference),
    )


def _measure(name: str, args: dict, k: int, queue: mp.Queue) -> None:
    import psutil

    from alvit.strategies import create_strategy

    view = _inputs(
        args["pool"], k, args["dim"], args["heads"], args["tokens"], args["labeled"], args["reference"], args["passes"]
    )
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    start = time.perf_counter()
    selection = create_strategy(name).select(view, args["query"], np.random.default_rng(0))
    seconds = time.perf_counter() - start
    done.set()
    watcher.join()
    peak[0] = max(peak[0], process.memory_info().rss)
    queue.put(
        {
            "strategy": name,
            "K": k,
            "N": args["pool"],
            "query": args["query"],
            "seconds": round(seconds, 3),
            "peak_extra_MiB": round((peak[0] - baseline) / 2**20, 1),
            "rss_before_MiB": round(baseline / 2**20, 1),
            "picked": len(selection.indices),
        }
    )


def main() -> None:
    from alvit.strategies import STRATEGIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--query", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=197)
    parser.add_argument("--labeled", type=int, default=10_000)
    parser.add_argument("--reference", type=int, default=1_000)
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    settings = vars(args)
    rows = []
    context = mp.get_context("spawn")
    print(f"{'strategy':<18}{'K':>5}{'seconds':>10}{'peak extra MiB':>16}{'RSS before MiB':>16}")
    for k in args.classes:
        for name in args.strategies:
            queue = context.Queue()
            worker = context.Process(target=_measure, args=(name, settings, k, queue))
            worker.start()
            row = queue.get()
            worker.join()
            rows.append(row)
            print(
                f"{name:<18}{k:>5}{row['seconds']:>10.2f}{row['peak_extra_MiB']:>16.1f}{row['rss_before_MiB']:>16.1f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
