"""`make bench`: the executor and static-serving benchmarks, then the targets of issue 12 as ratios
of figures measured in this same run (printed, never asserted)."""
import os

import exec_bench
import fairness_bench
import static_bench

TARGETS = [  # (figure, how it is computed, target, True when lower is better)
    ("WAT: HTTP c=1 p50 minus the in-process floor p50 (ms)",
     lambda e, s: e["wat"]["c1_p50"] - e["wat"]["floor_p50"], 0.3, True),
    ("WAT: c=8 req/s with 2 workers / single-process floor req/s",
     lambda e, s: e["wat"]["c8_rps"] / e["wat"]["floor_rps"], 1.2, False),
    ("SDK: HTTP c=1 p50 / floor p50",
     lambda e, s: e["sdk"]["c1_p50"] / e["sdk"]["floor_p50"], 1.3, True),
    ("SDK: c=8 req/s with 2 workers / floor req/s",
     lambda e, s: e["sdk"]["c8_rps"] / e["sdk"]["floor_rps"], 1.6, False),
    ("/ext-ui 1 KiB req/s / hello-world WSGI on the same Gunicorn settings",
     lambda e, s: s["small"] / s["hello"], 0.75, False),
    ("/ext-ui 1 KiB req/s / WhiteNoise on the same Gunicorn settings",
     lambda e, s: s["small"] / s["small_whitenoise"], 1.5, False),
]


def targets(executor: dict, static: dict) -> str:
    lines = ["| figure | measured | target | met |", "|---|---|---|---|"]
    for label, figure, target, lower in TARGETS:
        value = figure(executor, static)
        met = value <= target if lower else value >= target
        lines.append(f"| {label} | {value:.2f} | {'≤' if lower else '≥'} {target} | {'yes' if met else 'no'} |")
    return "\n".join(lines)


def load() -> str:
    return "{:.1f}".format(os.getloadavg()[0])


if __name__ == "__main__":
    started = load()
    print("## Executor\n")
    executor = exec_bench.main()
    print("\n## Static UI\n")
    static = static_bench.main()
    print("\n## Fairness between tenants\n")
    fairness_bench.main()
    print("\n## Targets\n")
    print(targets(executor, static))
    print(f"\nMachine load (1-minute average, {os.cpu_count()} CPUs): {started} at the start, {load()} at the end. "
          "Other work on the machine takes CPU from the multi-process figures first.")
