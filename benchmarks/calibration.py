"""What post-hoc calibration adds to a run: seconds, against the run's own, and at the paper's shape.

Two measurements, printed as tables (``--json`` also keeps them in ``benchmarks/results/calibration.json``):

1. **Demo runs.** Real runs of the demo profile (``--only`` picks which; default: both models
   with the three strategies at noise 0.5, seed 0), each into a fresh folder, with timers around
   the two steps calibration adds to a round: predicting the held-out split
   (``_RoundRunner._held_out``), fitting and applying the three temperatures and writing their
   files (:func:`alvit.results.record_calibration`), and the two new measures (SmoothECE, the
   debiased L2 error). The share is their seconds over the run's.
2. **The paper's shape.** :func:`alvit.results.record_calibration` alone on a CIFAR-100 round of
   the paper's last round (1,100 held-out samples, 10,000 test samples, K = 100), with random
   logits: the CPU seconds calibration adds to a round whose training takes minutes on a GPU.

    python benchmarks/calibration.py
    python benchmarks/calibration.py --json --only strategy=random
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DEMO = Path(__file__).resolve().parent.parent / "configs" / "profiles" / "demo.yaml"


class Stopwatch:
    """Seconds spent inside the wrapped functions, summed."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def demo_runs(only: list[str]) -> list[dict]:
    """Each chosen demo configuration run afresh, with the seconds of its calibration steps."""
    from alvit import loop, results
    from alvit.profile import load_profile

    profile = load_profile(DEMO, only or ["noise.rate=0.5", "seed=0"])
    rows = []
    for cfg in profile.configs:
        held_out, fitting, measures = Stopwatch(), Stopwatch(), Stopwatch()
        original = (loop._RoundRunner._held_out, loop.record_calibration)
        measured = (results.smooth_ece_from, results.debiased_l2_ce_from)
        loop._RoundRunner._held_out = held_out.wrap(original[0])
        loop.record_calibration = fitting.wrap(original[1])
        results.smooth_ece_from, results.debiased_l2_ce_from = (measures.wrap(f) for f in measured)
        try:
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                loop.run_experiment(cfg, Path(folder) / cfg.run_id, progress=False)
                total = time.perf_counter() - start
        finally:
            loop._RoundRunner._held_out, loop.record_calibration = original
            results.smooth_ece_from, results.debiased_l2_ce_from = measured
        added = held_out.seconds + fitting.seconds + measures.seconds
        rows.append(
            {
                "run": cfg.run_id,
                "run_s": round(total, 3),
                "held_out_predict_s": round(held_out.seconds, 3),
                "fit_and_apply_s": round(fitting.seconds, 3),
                "measures_s": round(measures.seconds, 3),
                "share": round(added / total, 4),
            }
        )
    return rows


def paper_round(held_out: int = 1100, test: int = 10_000, classes: int = 100, repeats: int = 5) -> dict:
    """Seconds of :func:`record_calibration` on one CIFAR-100-sized round (median of ``repeats``)."""
    from alvit.calibration import HeldOut, transition_matrix
    from alvit.results import RunFolder, record_calibration

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, test)
    true = rng.integers(0, classes, held_out)
    given = np.where(rng.random(held_out) < 0.3, rng.integers(0, classes, held_out), true)
    split = HeldOut(
        index=np.arange(held_out),
        oracle_label=given,
        true_label=true,
        noisy_channel=np.arange(held_out) >= 100,
        logits=(rng.standard_normal((held_out, classes)) * 3).astype(np.float32),
    )
    test_logits = (rng.standard_normal((test, classes)) * 3).astype(np.float32)
    transition = transition_matrix("flip", 0.3, classes)
    times = []
    with tempfile.TemporaryDirectory() as folder:
        run = RunFolder(folder)
        run.predictions_dir.mkdir()
        for _ in range(repeats):
            start = time.perf_counter()
            record_calibration(run, 0, split, transition, test_logits, labels)
            times.append(time.perf_counter() - start)
    return {"held_out": held_out, "test": test, "classes": classes, "seconds": round(float(np.median(times)), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="demo configurations, e.g. strategy=random")
    parser.add_argument("--json", action="store_true", help="keep the figures in benchmarks/results/calibration.json")
    args = parser.parse_args(argv)
    runs = demo_runs(args.only)
    print(f"{'demo run':45} {'run s':>7} {'held-out s':>11} {'fit+apply s':>12} {'measures s':>11} {'share':>7}")
    for row in runs:
        print(
            f"{row['run']:45} {row['run_s']:7.2f} {row['held_out_predict_s']:11.3f} "
            f"{row['fit_and_apply_s']:12.3f} {row['measures_s']:11.3f} {row['share']:7.2%}"
        )
    added = sum(r["held_out_predict_s"] + r["fit_and_apply_s"] + r["measures_s"] for r in runs)
    share = added / sum(r["run_s"] for r in runs)
    print(f"calibration adds {share:.2%} to these demo runs' time (target: under 5%)")
    paper = paper_round()
    print(
        f"one CIFAR-100 round at the paper's last-round shape ({paper['held_out']} held out, {paper['test']} test, "
        f"K = {paper['classes']}): {paper['seconds']:.3f} s of calibration"
    )
    if args.json:
        (RESULTS / "calibration.json").write_text(
            json.dumps({"demo_runs": runs, "demo_share": round(share, 4), "paper_round": paper}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
