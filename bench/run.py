"""`make bench`: the executor and static-serving benchmarks, one after the other."""
import exec_bench
import fairness_bench
import static_bench

if __name__ == "__main__":
    print("## Executor\n")
    exec_bench.main()
    print("\n## Static UI\n")
    static_bench.main()
    print("\n## Fairness between tenants\n")
    fairness_bench.main()
