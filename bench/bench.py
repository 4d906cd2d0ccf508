"""Benchmark microflow (and, with --vs-luigi, Luigi) on no-op task graphs.

    python bench/bench.py                          # wide, chain, layered at 1k/10k/100k
    python bench/bench.py --shapes wide --sizes 1000 5000 --vs-luigi /path/to/venv/bin/python
    python bench/bench.py --repeat 5                # the median of five runs per figure
    python bench/bench.py --vs-floor                # against a bare loop, as a baseline
    python bench/bench.py --shapes wide --sizes 10000 --workers 4
                          # 4 worker processes, against a bare multiprocessing.Pool(4)
                          # and one in-process worker measured in the same run
    python bench/bench.py --checks 1000             # complete() sleeping 10 ms:
                          # the walk sequential, then with 8 checking threads
    python bench/bench.py --shapes wide --sizes 1000 10000 --scheduler server \
        --vs-luigi /path/to/venv/bin/python --luigi-max 1000
                          # through a central scheduler: microflow's server, and luigid
    python bench/bench.py --shapes wide --sizes 10000 --clients 4 8 --repeat 5
                          # one, then 4 and 8 worker processes on one graph through one
                          # server: tasks per second in all, all starting once every
                          # process has walked the graph, then each after its own walk;
                          # 1, 4 and 8 take turns in each of 5 rounds, ratios per round
    python bench/bench.py --shapes wide --sizes 10000 --scheduler server --history
                          # the same with task history recorded (SQLite), and without
    python bench/bench.py --page 2000 10000
                          # the status page in headless Chromium: time to the task list
                          # and to the drawn graph, the scheduler lock time of each page
                          # call, and what the page's live polling costs a running build

Prints one JSON line per measurement: tasks/s, µs per task, peak memory per task (peak
RSS of a fresh process, less its RSS before the graph was built), and the time of a
second build of the same, now complete, graph. Each measurement runs in its own process,
so runs do not share caches or memory. Ratios are against Luigi measured in the same run
on the same machine: shared machines are noisy, absolute figures are not comparable.
"""
import argparse
import heapq
import json
import os
import resource
import struct
import subprocess
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))

try:   # the md5 microflow uses (the builtin module), so the baseline is not handicapped
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover
    from hashlib import md5 as _md5


def make_tasks(lib, shape, n, shared=False, done=None, stamps=None):
    """Build the no-op graph ``shape`` with ``n`` tasks; returns the root task and the
    done flags (one byte per task, so the no-op costs next to no memory): a bytearray,
    or with ``shared`` an anonymous shared mapping that forked worker processes write,
    or ``done`` given (a file's mapping that other worker processes share). With
    ``stamps`` (a mapping of n doubles), each run writes the time it ran."""
    if done is None and shared:
        import mmap
        done = mmap.mmap(-1, n)
    elif done is None:
        done = bytearray(n)

    class Node(lib.Task):
        """A no-op: complete once it has run (a flag in memory, no files)."""

        i = lib.IntParameter()

        def complete(self):
            return done[self.i] != 0

        def requires(self):
            return node_requires(self.i)

        def run(self):
            done[self.i] = client
            if stamps is not None:
                struct.pack_into("d", stamps, self.i * 8, time.time())

    width = max(1, int(n ** 0.5))
    client = 1 + int(os.environ.get("BENCH_CLIENT", "0"))   # which process ran it

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


class _FloorTask:
    """The least a task can be: one integer, an id built as Luigi builds it (family,
    value, md5 of the parameters as JSON), and one cached instance per value."""

    _instances = {}

    def __new__(cls, i):
        task = cls._instances.get((cls, i))
        if task is None:
            task = object.__new__(cls)
            task.i = i
            text = str(i)
            digest = _md5(('{"i":"%s"}' % text).encode()).hexdigest()[:10]
            task.task_id = f"{cls.__name__}_{text}_{digest}"
            cls._instances[(cls, i)] = task
        return task

    def __init__(self, i):
        pass


def _floor_build(roots):
    """The least a Luigi-shaped engine must do, as a baseline: walk from the roots
    calling complete() once per task and requires() on the incomplete ones, count each
    task's unfinished dependencies, run what is ready in insertion order (checking its
    dependencies once more, as check_unfulfilled_deps does) and release what waited on
    it. No scheduler protocol, no priorities, resources, events or summary."""
    seen, pending, order, stack = set(), {}, [], list(roots)
    while stack:
        task = stack.pop()
        if task.task_id in seen:
            continue
        seen.add(task.task_id)
        if not task.complete():
            pending[task.task_id] = deps = task.requires()
            order.append(task)
            stack.extend(deps)
    blockers, dependents = {}, {}
    for task in order:
        waiting = [dep for dep in pending[task.task_id] if dep.task_id in pending]
        blockers[task.task_id] = len(waiting)
        for dep in waiting:
            dependents.setdefault(dep.task_id, []).append(task)
    position = {task.task_id: index for index, task in enumerate(order)}
    ready = [(position[t.task_id], t.task_id, t) for t in order if not blockers[t.task_id]]
    heapq.heapify(ready)
    while ready:
        _, task_id, task = heapq.heappop(ready)
        if not all(dep.complete() for dep in pending[task_id]):
            return False
        task.run()
        for waiter in dependents.get(task_id, ()):
            blockers[waiter.task_id] -= 1
            if not blockers[waiter.task_id]:
                heapq.heappush(ready, (position[waiter.task_id], waiter.task_id, waiter))
    return True


_FLOOR = types.SimpleNamespace(Task=_FloorTask, IntParameter=lambda: None,
                               build=_floor_build)


def _noop(i):
    return i


def pool_floor(workers, n):
    """The least a process pool can cost per task: a bare multiprocessing.Pool
    (started inside the timing, as microflow's pool is) mapping n no-op calls, one
    call per message (chunksize 1), with fork as microflow uses."""
    import multiprocessing
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_noop, range(n), chunksize=1):
            pass
    seconds = time.perf_counter() - started
    print(json.dumps({"impl": "pool_floor", "workers": workers, "n": n,
                      "seconds": round(seconds, 4),
                      "us_per_task": round(seconds / n * 1e6, 2)}))


def child(impl, shape, n, workers=1, url=""):
    """Run one measurement in this process and print it as JSON (through the central
    scheduler at ``url`` when one is given)."""
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    if impl == "pool_floor":
        return pool_floor(workers, n)
    where = {"scheduler_url": url} if url else {"local_scheduler": True}
    import logging
    logging.disable(logging.CRITICAL)   # measure the engines, not their log lines
    if impl == "luigi":
        import luigi as lib
        build = lambda tasks: lib.build(tasks, workers=workers, **where)  # noqa
    elif impl == "floor":
        lib, build = _FLOOR, _floor_build
    else:
        sys.path.insert(0, os.path.join(HERE, ".."))
        import microflow as lib
        build = lambda tasks: lib.build(tasks, workers=workers, **where)  # noqa
    root, done = make_tasks(lib, shape, n, shared=workers > 1)
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
        "impl": impl, "shape": shape, "n": n, "workers": workers, "ok": bool(ok),
        "seconds": round(seconds, 4),
        "tasks_per_s": round(n / seconds, 1), "us_per_task": round(seconds / n * 1e6, 2),
        "peak_kb_per_task": round((rss_after - rss_before) / n, 3),
        "second_run_us_per_task": round(second / n * 1e6, 3),
        "root_only_rerun_us_per_task": round(recheck / n * 1e6, 2),
    }))


def client_child(shape, n, url, folder, together):
    """One of several worker processes on one graph through the server at ``url``: the
    done flags and run times in files of ``folder`` that all of them map. ``together``:
    it runs only once every process has walked the graph (a file each in ``folder``)."""
    import logging
    import mmap
    sys.path.insert(0, os.path.join(HERE, ".."))
    import microflow as lib
    logging.disable(logging.CRITICAL)

    class AfterEveryWalk(lib.WorkerSchedulerFactory):
        def create_worker(self, scheduler, worker_processes=1, assistant=False):
            worker = super().create_worker(scheduler, worker_processes, assistant)
            run = worker.run

            def run_after_every_walk():
                open(os.path.join(folder, "walked-" + os.environ["BENCH_CLIENT"]),
                     "w").close()
                while sum(name.startswith("walked-") for name in os.listdir(folder)) \
                        < int(os.environ["BENCH_CLIENTS"]):
                    time.sleep(0.001)
                return run()
            worker.run = run_after_every_walk
            return worker

    with open(os.path.join(folder, "done"), "r+b") as flags, \
            open(os.path.join(folder, "stamps"), "r+b") as times:
        done, stamps = mmap.mmap(flags.fileno(), n), mmap.mmap(times.fileno(), n * 8)
        root, _ = make_tasks(lib, shape, n, done=done, stamps=stamps)
        factory = AfterEveryWalk() if together == "together" else None
        if not lib.build([root], scheduler_url=url, no_lock=True,
                         worker_scheduler_factory=factory):
            raise SystemExit("the build failed")


def clients_rate(shape, n, clients, together):
    """Tasks per second that ``clients`` worker processes run in all on one ``n``-task
    graph through one microflow server, from the first task run to the last. Each
    process walks the whole graph first, as Luigi's workers do: ``together``, they all
    start running once all have walked (the rate the server hands tasks out at while
    all ask); else each as soon as its own walk ends, beside the others' walks."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder, \
            central_scheduler(sys.executable, "microflow") as url:
        for name, size in (("done", n), ("stamps", n * 8)):
            with open(os.path.join(folder, name), "wb") as f:
                f.truncate(size)
        mode = "together" if together else "as-walked"
        command = [sys.executable, __file__, "--client", shape, str(n), url, folder, mode]
        processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ, BENCH_CLIENT=str(number),
                                               BENCH_CLIENTS=str(clients)))
                     for number in range(clients)]
        for process in processes:
            _, err = process.communicate()
            if process.returncode:
                raise SystemExit(f"a client of {clients} failed:\n{err}")
        with open(os.path.join(folder, "stamps"), "rb") as f:
            stamps = struct.unpack(f"{n}d", f.read())
        with open(os.path.join(folder, "done"), "rb") as f:
            who = f.read()
    ran = [stamp for stamp in stamps if stamp]
    seconds = max(ran) - min(ran)
    return {"shape": shape, "n": n, "clients": clients, "start": mode, "ran": len(ran),
            "ran_by": len({number for stamp, number in zip(stamps, who) if stamp}),
            "run_seconds": round(seconds, 4), "tasks_per_s": round(len(ran) / seconds, 1)}


def clients_bench(shapes, sizes, counts, repeat):
    """One worker process, then each of ``counts``, on one graph through one server:
    started together (after every walk), then as each walk ends. The counts take turns
    within each of ``repeat`` rounds, and each round's ratios are to that round's one
    process, so a change in the machine's load between rounds moves both sides of a
    ratio (the median of the rounds' tasks/s and of their ratios are printed)."""
    import statistics
    for together in (True, False):
        for shape in shapes:
            for n in sizes:
                order = [1] + [c for c in counts if c != 1]
                rounds = [{clients: clients_rate(shape, n, clients, together)
                           for clients in order} for _ in range(repeat)]
                for clients in order:
                    runs = sorted((r[clients] for r in rounds), key=lambda r: r["tasks_per_s"])
                    run = runs[len(runs) // 2]
                    ratios = [r[clients]["tasks_per_s"] / r[1]["tasks_per_s"] for r in rounds]
                    run["vs_one_process"] = round(statistics.median(ratios), 2)
                    run["vs_one_process_each_round"] = [round(x, 2) for x in ratios]
                    print(json.dumps(run), flush=True)


def measure(python, impl, shape, n, workers=1, scheduler="local"):
    if scheduler == "server":   # a fresh central scheduler for each measurement
        with central_scheduler(python, impl) as url:
            return measure_with(python, impl, shape, n, workers, url)
    return measure_with(python, impl, shape, n, workers, "")


def central_scheduler(python, impl, config=None):
    """A context manager: start microflow's server (or, for Luigi, luigid) on a free
    port of 127.0.0.1, yield its URL, stop it. ``config``: a config file for it."""
    import contextlib
    import socket
    import urllib.request

    @contextlib.contextmanager
    def running():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if impl == "luigi":
            command = [os.path.join(os.path.dirname(python), "luigid"), "--port", str(port),
                       "--address", "127.0.0.1"]
        else:
            command = [python, "-m", "microflow", "--server", "--port", str(port)]
        env = dict(os.environ, MICROFLOW_CONFIG_PATH=config) if config else None
        server = subprocess.Popen(command, cwd=os.path.join(HERE, ".."), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):   # until it answers
                try:
                    urllib.request.urlopen(url + "/api/ping?data=%7B%22worker%22%3A%22b%22%7D",
                                           timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait()
    return running()


def measure_with(python, impl, shape, n, workers, url):
    done = subprocess.run([python, __file__, "--child", impl, shape, str(n), str(workers),
                           url], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{impl} {shape} {n} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_median(python, impl, shape, n, repeat, workers=1, scheduler="local"):
    """The median of ``repeat`` measurements (by time), with the fastest and slowest
    times beside it: one run on a shared machine can be off by a fifth either way."""
    runs = sorted((measure(python, impl, shape, n, workers, scheduler)
                   for _ in range(repeat)),
                  key=lambda run: run["seconds"])
    median = dict(runs[len(runs) // 2])
    if repeat > 1:
        median.update(repeats=repeat, seconds_min=runs[0]["seconds"],
                      seconds_max=runs[-1]["seconds"])
    return median


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["wide", "chain", "layered"],
                        choices=["wide", "chain", "layered"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--vs-luigi", metavar="PYTHON",
                        help="also run each graph with Luigi in this interpreter")
    parser.add_argument("--luigi-max", type=int, default=5000,
                        help="largest size to give Luigi (it is quadratic)")
    parser.add_argument("--vs-floor", action="store_true",
                        help="also run each graph on a bare loop doing the least any "
                             "engine must (a baseline), and print microflow/floor")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure microflow this many times and report the median")
    parser.add_argument("--workers", type=int, default=1,
                        help="run microflow (and Luigi) with this many worker processes, "
                             "and measure a bare multiprocessing.Pool and one in-process "
                             "worker beside it")
    parser.add_argument("--checks", type=int, metavar="N",
                        help="only time the walk of N tasks whose complete() sleeps "
                             "10 ms, sequential and with --check-workers threads")
    parser.add_argument("--check-workers", type=int, default=8)
    parser.add_argument("--scheduler", choices=["local", "server"], default="local",
                        help="server: through a central scheduler started for each run "
                             "(microflow's server; luigid for --vs-luigi)")
    parser.add_argument("--history", action="store_true",
                        help="with --scheduler server: each run with task history on and "
                             "off, and the ratio")
    parser.add_argument("--page", nargs="+", type=int, metavar="N",
                        help="only time the status page at N tasks (needs chromium)")
    parser.add_argument("--clients", type=int, nargs="+", metavar="N",
                        help="only run N worker processes (and one) on one graph through "
                             "one microflow server: tasks per second in all")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        impl, shape, n, workers, url = arguments.child
        return child(impl, shape, int(n), int(workers), url)
    if arguments.client:
        shape, n, url, folder, together = arguments.client
        return client_child(shape, int(n), url, folder, together)
    if arguments.clients:
        return clients_bench(arguments.shapes, arguments.sizes, arguments.clients,
                             arguments.repeat)
    if arguments.page:
        return page_bench(arguments.page, arguments.repeat)
    if arguments.history:
        return history_cost(arguments.shapes, arguments.sizes, max(3, arguments.repeat))
    if arguments.checks:
        return parallel_checks(arguments.checks, arguments.check_workers)
    for shape in arguments.shapes:
        times = {}
        for n in arguments.sizes:
            mine = measure_median(sys.executable, "microflow", shape, n, arguments.repeat,
                                  arguments.workers, arguments.scheduler)
            mine["scheduler"] = arguments.scheduler
            times[n] = mine["seconds"]
            print(json.dumps(mine), flush=True)
            if arguments.workers > 1:
                compare_pool(mine, shape, n, arguments.workers, arguments.repeat)
            if arguments.scheduler == "server":   # the same graph in one process
                local = measure_median(sys.executable, "microflow", shape, n,
                                       arguments.repeat, arguments.workers)
                print(json.dumps(local), flush=True)
                print(json.dumps({"ratio": "through the server / in-process", "shape": shape,
                                  "n": n, "cost": round(mine["seconds"] / local["seconds"],
                                                        2)}), flush=True)
            if arguments.vs_floor:
                floor = measure_median(sys.executable, "floor", shape, n, arguments.repeat)
                print(json.dumps(floor), flush=True)
                print(json.dumps({"ratio": "microflow/floor", "shape": shape, "n": n,
                                  "cost": round(mine["seconds"] / floor["seconds"], 2)}),
                      flush=True)
            if arguments.vs_luigi and n <= arguments.luigi_max:
                theirs = measure(arguments.vs_luigi, "luigi", shape, n, arguments.workers,
                                 arguments.scheduler)
                theirs["scheduler"] = arguments.scheduler
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


def compare_pool(mine, shape, n, workers, repeat):
    """Beside a run with worker processes: the bare pool and one in-process worker."""
    floor = measure_median(sys.executable, "pool_floor", shape, n, repeat, workers)
    print(json.dumps(floor), flush=True)
    inline = measure_median(sys.executable, "microflow", shape, n, repeat, 1)
    print(json.dumps(inline), flush=True)
    print(json.dumps({"ratio": f"microflow {workers} workers / pool floor", "shape": shape,
                      "n": n, "cost": round(mine["seconds"] / floor["seconds"], 2)}),
          flush=True)
    print(json.dumps({"ratio": f"microflow {workers} workers / 1 in-process worker",
                      "shape": shape, "n": n,
                      "cost": round(mine["seconds"] / inline["seconds"], 2)}), flush=True)


def parallel_checks(n, threads, latency=0.01):
    """The walk (Worker.add: complete() once per task, nothing run) of a wide graph of
    ``n`` tasks whose complete() sleeps ``latency`` seconds, as a network check would:
    sequential, then with ``threads`` checking threads."""
    sys.path.insert(0, os.path.join(HERE, ".."))
    import microflow as lib

    class Slow(lib.Task):
        i = lib.IntParameter()

        def complete(self):
            time.sleep(latency)
            return False

        def requires(self):
            return [Slow(j) for j in range(1, n)] if self.i == 0 else []
    times = {}
    for workers in (0, threads):
        with lib.Worker(check_workers=workers) as worker:
            started = time.perf_counter()
            worker.add(Slow(0))
            times[workers] = time.perf_counter() - started
        print(json.dumps({"walk": "parallel checks", "n": n, "check_workers": workers,
                          "complete_latency_s": latency, "seconds": round(times[workers], 3)}),
              flush=True)
    print(json.dumps({"ratio": "sequential / parallel checks", "n": n,
                      "speedup": round(times[0] / times[threads], 2)}), flush=True)



def history_cost(shapes, sizes, repeat):
    """Builds through a central scheduler with task history on and off, alternately;
    the ratio of the medians."""
    import statistics
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        config = os.path.join(folder, "history.cfg")
        with open(config, "w") as f:
            f.write(f"[scheduler]\nrecord_task_history = true\n[task_history]\n"
                    f"db_connection = sqlite:///{folder}/history.db\n")
        for shape in shapes:
            for n in sizes:
                times = {"off": [], "on": []}
                for _ in range(repeat):
                    for kind in times:
                        with central_scheduler(sys.executable, "microflow",
                                               config if kind == "on" else None) as url:
                            run = measure_with(sys.executable, "microflow", shape, n, 1, url)
                        times[kind].append(run["seconds"])
                off, on = (statistics.median(times[k]) for k in ("off", "on"))
                print(json.dumps({"history": shape, "n": n, "seconds_off": off,
                                  "seconds_on": on, "cost": round(on / off, 3)}), flush=True)


def _page_graph(scheduler, n):
    """``n`` tasks in 20 layers, each needing two of the layer below, under one root;
    the lower half DONE, one in a hundred FAILED, the rest PENDING."""
    layers = 20
    width = max(1, (n - 1) // layers)
    ids = [[f"Layer{layer}_{i}" for i in range(width)] for layer in range(layers)]
    for layer, row in enumerate(ids):
        for i, task_id in enumerate(row):
            deps = [ids[layer - 1][i], ids[layer - 1][(i + 1) % width]] if layer else []
            status = "DONE" if layer < layers // 2 else "FAILED" if i % 100 == 7 \
                else "PENDING"
            scheduler.add_task(worker="bench", task_id=task_id, status=status, deps=deps,
                               family=f"Layer{layer}", params={"i": str(i)})
    scheduler.add_task(worker="bench", task_id="Root", family="Root", deps=ids[-1])
    return "Root"


def page_bench(sizes, repeat):
    """The status page in headless Chromium (the test suite's DevTools client)."""
    import statistics
    import tempfile
    sys.path.insert(0, os.path.join(HERE, ".."))
    import microflow as mf
    import test_microflow as tests
    binary = tests.find_chromium()
    if not binary:
        raise SystemExit("--page needs chromium (Debian's package)")
    with tempfile.TemporaryDirectory() as profile:
        browser = tests.DevTools(binary, profile)
        try:
            for n in sizes:
                _page_at(mf, browser, n, max(3, repeat), statistics.median)
            _polling_cost(browser, max(sizes), max(3, repeat), statistics.median)
        finally:
            browser.close()


def _page_at(mf, browser, n, repeat, median):
    lock = {}   # method -> longest time a page call held the scheduler

    def called(method, seconds):
        lock[method] = max(lock.get(method, 0.0), seconds)
    with mf.SchedulerServer(port=0) as server:
        server.metrics.called = called
        root = _page_graph(server.scheduler, n)
        lock.clear()   # the page's calls only

        def load(fragment, mark):
            browser.open("about:blank")
            browser.open(f"{server.url}/{fragment}")
            return browser.wait_for(f"performance.getEntriesByName('{mark}').length && "
                                    f"performance.getEntriesByName('{mark}')[0].startTime",
                                    120)
        list_ms = median([load("", "list-ready") for _ in range(repeat)])
        graph_ms = median([load(f"#tab=graph&taskId={root}", "graph-drawn")
                           for _ in range(repeat)])
        nodes = browser.evaluate("document.querySelectorAll('#graph g.node').length")
    print(json.dumps({"page": "task list ready", "n": n, "ms": round(list_ms)}), flush=True)
    print(json.dumps({"page": "graph drawn", "n": n, "ms": round(graph_ms),
                      "nodes_drawn": nodes}), flush=True)
    print(json.dumps({"page": "longest scheduler lock per call", "n": n,
                      "ms": {method: round(seconds * 1000, 1)
                             for method, seconds in sorted(lock.items())}}), flush=True)


def _polling_cost(browser, n, repeat, median):
    """A build of ``n`` no-op tasks through a central scheduler, with the page open on
    it (polling while the tab is visible) and without; the ratio of the medians."""
    times = {"closed": [], "open": []}
    for _ in range(repeat):
        for kind in times:
            with central_scheduler(sys.executable, "microflow") as url:
                browser.open(url + "/" if kind == "open" else "about:blank")
                times[kind].append(measure_with(sys.executable, "microflow", "wide", n, 1,
                                                url)["seconds"])
    closed, opened = median(times["closed"]), median(times["open"])
    print(json.dumps({"page": "live polling during a build", "n": n,
                      "seconds_without": closed, "seconds_with": opened,
                      "cost": round(opened / closed, 3)}), flush=True)



if __name__ == "__main__":
    main()
