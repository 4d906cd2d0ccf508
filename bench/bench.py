"""Benchmark microflow (and, with --vs-luigi, Luigi) on no-op task graphs.

    python bench/bench.py                          # wide, chain, layered at 1k/10k/100k
    python bench/bench.py --shapes wide --sizes 1000 5000 --vs-luigi /path/to/venv/bin/python

Prints one JSON line per measurement: tasks/s, µs per task, peak memory per task (peak
RSS of a fresh process, less its RSS before the graph was built), and the time of a
second build of the same, now complete, graph. Each measurement runs in its own process,
so runs do not share caches or memory. Ratios are against Luigi measured in the same run
on the same machine: shared machines are noisy, absolute figures are not comparable.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def make_tasks(lib, shape, n):
    """Build the no-op graph ``shape`` with ``n`` tasks; returns the root task and the
    bytearray of done flags (one byte per task, so the no-op costs next to no memory)."""
    done = bytearray(n)

    class Node(lib.Task):
        """A no-op: complete once it has run (a flag in memory, no files)."""

        i = lib.IntParameter()

        def complete(self):
            return done[self.i] == 1

        def requires(self):
            return node_requires(self.i)

        def run(self):
            done[self.i] = 1

    width = max(1, int(n ** 0.5))

    def node_requires(i):
        if shape == "wide":
            return [Node(j) for j in range(1, n)] if i == 0 else []
        if shape == "chain":
            return [Node(i + 1)] if i + 1 < n else []
        # layered: Node(0) needs the first row; rows of `width` tasks after it, each
        # task needing the task below it and that one's right-hand neighbour
        if i == 0:
            return [Node(j) for j in range(1, min(n, width + 1))]
        row, column = divmod(i - 1, width)
        below = [1 + (row + 1) * width + column,
                 1 + (row + 1) * width + (column + 1) % width]
        return [Node(j) for j in dict.fromkeys(below) if j < n]
    return Node(0), done


def child(impl, shape, n):
    """Run one measurement in this process and print it as JSON."""
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    if impl == "luigi":
        import logging
        import luigi as lib
        logging.disable(logging.CRITICAL)
        build = lambda tasks: lib.build(tasks, local_scheduler=True, workers=1)  # noqa
    else:
        sys.path.insert(0, os.path.join(HERE, ".."))
        import microflow as lib
        build = lambda tasks: lib.build(tasks, workers=1)  # noqa
    root, done = make_tasks(lib, shape, n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    ok = build([root])
    seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    build([root])
    second = time.perf_counter() - started
    done[0] = 0   # only the root incomplete: every other task is checked again
    started = time.perf_counter()
    build([root])
    recheck = time.perf_counter() - started
    print(json.dumps({
        "impl": impl, "shape": shape, "n": n, "ok": bool(ok), "seconds": round(seconds, 4),
        "tasks_per_s": round(n / seconds, 1), "us_per_task": round(seconds / n * 1e6, 2),
        "peak_kb_per_task": round((rss_after - rss_before) / n, 3),
        "second_run_us_per_task": round(second / n * 1e6, 3),
        "root_only_rerun_us_per_task": round(recheck / n * 1e6, 2),
    }))


def measure(python, impl, shape, n):
    done = subprocess.run([python, __file__, "--child", impl, shape, str(n)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{impl} {shape} {n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["wide", "chain", "layered"],
                        choices=["wide", "chain", "layered"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--vs-luigi", metavar="PYTHON",
                        help="also run each graph with Luigi in this interpreter")
    parser.add_argument("--luigi-max", type=int, default=5000,
                        help="largest size to give Luigi (it is quadratic)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        impl, shape, n = arguments.child
        return child(impl, shape, int(n))
    for shape in arguments.shapes:
        times = {}
        for n in arguments.sizes:
            mine = measure(sys.executable, "microflow", shape, n)
            times[n] = mine["seconds"]
            print(json.dumps(mine), flush=True)
            if arguments.vs_luigi and n <= arguments.luigi_max:
                theirs = measure(arguments.vs_luigi, "luigi", shape, n)
                print(json.dumps(theirs), flush=True)
                print(json.dumps({"ratio": "luigi/microflow", "shape": shape, "n": n,
                                  "speedup": round(theirs["seconds"] / mine["seconds"], 1)}),
                      flush=True)
        sizes = sorted(times)
        if len(sizes) > 1:
            print(json.dumps({"linearity": shape, "from": sizes[0], "to": sizes[-1],
                              "size_ratio": sizes[-1] / sizes[0],
                              "time_ratio": round(times[sizes[-1]] / times[sizes[0]], 2)}),
                  flush=True)


if __name__ == "__main__":
    main()
