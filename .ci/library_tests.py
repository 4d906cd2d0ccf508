#!/usr/bin/env python3
"""Run a Luigi-based library's own test suite on the real Luigi and on microflow as `luigi`.

    python3 .ci/library_tests.py --suite GOKART_DIR --python VENV/bin/python [--modes luigi,shim,switch]

GOKART_DIR is a checkout of the library (its package and its `test/` folder); VENV is a virtualenv holding
the library's test dependencies and luigi==3.8.1 (the reference).  The suite runs once per mode, with
pytest from GOKART_DIR:

  luigi   the real Luigi 3.8.1 (the reference figure);
  shim    microflow as `luigi` through the shim package of ../shared/luigi_tests (run.py builds it);
  switch  microflow as `luigi` through microflow.install_as_luigi(), loaded as a pytest plugin, so no
          file of ours stands in for Luigi.

In the last two modes the real Luigi is refused: an audit hook stops any file of the installed Luigi from
being opened, so a figure can only come from microflow.  It prints, per mode, passed/failed/skipped, then
how many of the tests that pass on Luigi pass on microflow, leaving out the tests that need
`luigi.contrib` (S3, GCS: microflow does not provide it; such a test fails on microflow with an ImportError
naming luigi.contrib).  Standard library only.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)

GUARD = r'''
import os, sys
def _real_luigi_dir():
    import importlib.machinery
    paths = [p for p in sys.path if "microflow-as-luigi" not in p]
    spec = importlib.machinery.PathFinder.find_spec("luigi", paths)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.realpath(list(spec.submodule_search_locations)[0]) + os.sep
_REAL = _real_luigi_dir()
def _audit(event, args):
    if _REAL and event == "open" and args and isinstance(args[0], str) and \
            os.path.realpath(args[0]).startswith(_REAL):
        raise ImportError("the real Luigi was opened while testing microflow: " + args[0])
sys.addaudithook(_audit)
'''
SWITCH_PLUGIN = GUARD + "import microflow\nmicroflow.install_as_luigi()\n"


def outcomes(junit):
    """test id -> (outcome, message) from a JUnit XML file."""
    found = {}
    for case in ET.parse(junit).iter("testcase"):
        key = "%s::%s" % (case.get("classname"), case.get("name"))
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", (child.get("message") or "") + (child.text or "")[-2000:]
                break
            if child.tag == "skipped":
                outcome = "skipped"
        found[key] = (outcome, message)
    return found


def shim_dir(tmp, luigi_tests):
    """Build the shim package of ../shared/luigi_tests into tmp/shim (as run.py does)."""
    sys.path.insert(0, luigi_tests)
    import run as harness
    shim = os.path.join(tmp, "shim")
    os.makedirs(os.path.join(shim, "luigi"))
    shutil.copyfile(os.path.join(luigi_tests, "shim.py"), os.path.join(shim, "_microflow_shim.py"))
    harness.write(os.path.join(shim, "luigi", "__init__.py"), harness.SHIM_INIT)
    harness.write(os.path.join(shim, "luigi", "__main__.py"), harness.SHIM_MAIN)
    for name in harness.shim_submodules():
        harness.write(os.path.join(shim, "luigi", name + ".py"), harness.SHIM_SUB.format(name=name))
    return shim


def run_mode(mode, args, tmp):
    path = [args.suite]
    plugin = []
    if mode == "shim":
        path = [shim_dir(tmp, args.luigi_tests), args.project] + path
    elif mode == "switch":
        folder = os.path.join(tmp, "microflow-as-luigi")
        os.makedirs(folder)
        with open(os.path.join(folder, "_microflow_as_luigi.py"), "w") as f:
            f.write(SWITCH_PLUGIN)
        path = [folder, args.project] + path
        plugin = ["-p", "_microflow_as_luigi"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONDONTWRITEBYTECODE="1")
    env.pop("MICROFLOW_SHIM_ALLOW_REAL_LUIGI", None)
    junit = os.path.join(tmp, mode + ".xml")
    command = [args.python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml", junit,
               *plugin, *args.pytest_args.split(), args.tests]
    with open(os.path.join(tmp, mode + ".log"), "w") as log:
        subprocess.run(command, cwd=args.suite, env=env, stdout=log, stderr=subprocess.STDOUT,
                       timeout=args.timeout)
    if args.log_dir:
        shutil.copy(os.path.join(tmp, mode + ".log"), args.log_dir)
        shutil.copy(junit, args.log_dir)
    return outcomes(junit) if os.path.exists(junit) else {}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", required=True, help="checkout of the library (holds its tests)")
    p.add_argument("--tests", default="test", help="the folder of its tests (default: test)")
    p.add_argument("--python", required=True, help="interpreter with the suite's test dependencies")
    p.add_argument("--project", default=PROJECT, help="folder holding microflow.py")
    p.add_argument("--luigi-tests", default=os.path.join(os.path.dirname(PROJECT), "shared", "luigi_tests"))
    p.add_argument("--modes", default="luigi,shim,switch")
    p.add_argument("--pytest-args", default="-n 2", help="extra pytest arguments (default: -n 2)")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--log-dir", help="copy each mode's log and JUnit XML here")
    p.add_argument("-v", "--verbose", action="store_true", help="list each test that passes on Luigi only")
    p.add_argument("--require", type=float, metavar="PCT",
                   help="exit 1 when a microflow mode passes less than PCT %% of the tests that pass on Luigi "
                        "and do not need luigi.contrib")
    args = p.parse_args(argv)
    args.suite = os.path.abspath(args.suite)
    args.project = os.path.abspath(args.project)
    tmp = tempfile.mkdtemp(prefix="library-tests-")
    try:
        results = {mode: run_mode(mode, args, tmp) for mode in args.modes.split(",")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(results, args.verbose, args.require)


def needs_contrib(message):
    """Whether a failure is an import (or a patch) of luigi.contrib, which microflow
    does not provide: `No module named 'luigi.contrib...'`, or, with luigi being microflow
    itself, `module 'microflow' has no attribute 'contrib'`."""
    return "luigi.contrib" in message or "has no attribute 'contrib'" in message


def report(results, verbose, require=None):
    for mode, found in results.items():
        counts = {o: sum(1 for v in found.values() if v[0] == o) for o in ("passed", "failed", "skipped")}
        print("%-6s %d passed, %d failed, %d skipped" % (
            mode, counts["passed"], counts["failed"], counts["skipped"]))
    reference = results.get("luigi")
    if not reference:
        return 0
    status = 0
    passing = {k for k, v in reference.items() if v[0] == "passed"}
    for mode, found in results.items():
        if mode == "luigi":
            continue
        contrib = {k for k in passing if needs_contrib(found.get(k, ("", ""))[1])}
        wanted = passing - contrib
        ok = {k for k in wanted if found.get(k, ("",))[0] == "passed"}
        print("%s: %d of the %d tests that pass on Luigi and do not need luigi.contrib pass on microflow "
              "(%.1f %%; %d need luigi.contrib)" % (mode, len(ok), len(wanted),
                                                     100.0 * len(ok) / max(1, len(wanted)), len(contrib)))
        if verbose:
            for key in sorted(wanted - ok):
                print("    %s: %s" % (key, found.get(key, ("not run", ""))[1].strip().splitlines()[:1]))
        if require is not None and 100.0 * len(ok) < require * len(wanted):
            print("%s: below the required %g %%" % (mode, require))
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
