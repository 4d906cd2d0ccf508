#!/usr/bin/env python3
"""Luigi's own examples, run by Luigi 3.8.1 and by microflow (--as-luigi): the execution
summaries must be the same, line by line.

    python3 .ci/luigi_examples.py --luigi-python VENV/bin/python --sdist LUIGI_SDIST_DIR

LUIGI_SDIST_DIR is Luigi 3.8.1's source distribution, unpacked (it holds examples/); VENV
holds luigi==3.8.1.  Each example below runs twice from that folder, as its docstring says
(`luigi --module examples.X Task ... --local-scheduler`): with `VENV/bin/python -m luigi`,
then with this project's `python -m microflow --as-luigi`, from the same empty state (the
examples write to fixed paths under /tmp and /var/tmp, which are removed before each run
and after the last).  The summary is the text between Luigi's two summary banners;
durations are masked.  The examples that need luigi.contrib (Spark, Hadoop, Kubernetes,
SSH, FTP, Elasticsearch) or build a random graph (foo_complex) are not run.  Exit 1 when a
summary differs (both are printed).  Standard library only.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
BANNER = "===== Luigi Execution Summary ====="

# (module, the command line after --module examples.<module>)
EXAMPLES = (
    ("hello_world", ["examples.HelloWorldTask"]),
    ("foo", ["examples.Foo", "--workers", "2"]),
    ("execution_summary_example", ["examples.EntryPoint"]),
    ("dynamic_requirements", ["Dynamic"]),
    ("wordcount", ["WordCount", "--date-interval", "2026-02"]),   # its input is missing
    ("per_task_retry_policy", ["examples.PerTaskRetryPolicy", "--worker-keep-alive",
                               "--scheduler-retry-delay", "2"]),
)
# Where the examples above write (fixed paths of theirs).
OUTPUTS = ("/tmp/bar", "/tmp/Config_*.txt", "/tmp/Data_*.txt", "/tmp/Dynamic_*.txt",
           "/tmp/_docs-*.ldj", "/var/tmp/text-count")


def clean():
    for pattern in OUTPUTS:
        for path in glob.glob(pattern):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def summary(output):
    """The text between the two banners, durations masked."""
    parts = output.split(BANNER)
    if len(parts) < 3:
        return None
    text = re.sub(r"\d+(\.\d+)? ?(ms|s|seconds|minutes)\b", "<duration>", parts[-2])
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def run(command, cwd, env):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    return done.returncode, done.stdout + done.stderr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--luigi-python", required=True, help="a Python with luigi==3.8.1")
    parser.add_argument("--sdist", required=True, help="Luigi's sdist, unpacked")
    parser.add_argument("--only", default="", help="comma-separated example modules")
    args = parser.parse_args(argv)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("LUIGI_CONFIG_PATH", None)
    ours = dict(env, PYTHONPATH=os.pathsep.join([PROJECT, os.path.abspath(args.sdist)]))
    failed = 0
    try:
        for module, task in EXAMPLES:
            if args.only and module not in args.only.split(","):
                continue
            line = ["--module", f"examples.{module}", *task, "--local-scheduler"]
            clean()
            code_luigi, luigi_out = run([args.luigi_python, "-m", "luigi", *line],
                                        args.sdist, env)
            clean()
            code_ours, ours_out = run([sys.executable, "-m", "microflow", "--as-luigi",
                                       "--no-lock", *line], args.sdist, ours)
            expected, got = summary(luigi_out), summary(ours_out)
            same = expected is not None and expected == got
            print(f"{module}: {'same summary' if same else 'SUMMARIES DIFFER'} "
                  f"({len(expected or [])} lines; exit codes: Luigi {code_luigi}, "
                  f"microflow {code_ours})")
            if not same:
                failed += 1
                print("--- Luigi 3.8.1\n" + "\n".join(expected or [luigi_out[-3000:]]))
                print("--- microflow\n" + "\n".join(got or [ours_out[-3000:]]))
    finally:
        clean()
    print(f"{len(EXAMPLES) - failed} of {len(EXAMPLES)} of Luigi's examples give the same "
          f"summary on microflow")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
