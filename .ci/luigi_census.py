#!/usr/bin/env python3
"""Luigi's namespace census: how much of what Luigi 3.8.1's core defines microflow answers.

    python3 .ci/luigi_census.py --luigi-python VENV/bin/python [--require-public 90] [-v]

VENV holds luigi==3.8.1 (the reference; nothing of it is imported here: its source files
are parsed, and VENV's interpreter says which of the names exist at run time).  Every
module of Luigi's core (the package without `contrib`) is parsed,
and each name it defines itself is listed: its classes, functions and assigned constants at
module level (inside a module-level if/try too), not what it imports; and for each class it
defines, the names its body defines (methods, class attributes, nested classes).  Each is
then looked up in microflow's `luigi` view (a fresh interpreter that runs this project's
microflow.install_as_luigi(), then imports `luigi.<module>` and reads the name).

It prints the figures (module-level names and class attributes, in all and public: no
leading underscore, on the name and on its class), and with -v the names left out on
purpose, each with its reason (the LEFT_OUT table below, which the README repeats: one
entry per name, or per module or class with a `*`).  It exits 1 when a public figure falls
below --require-public percent, when a public name is missing that LEFT_OUT does not
explain, or when a private name that libraries built on Luigi are seen to use
(USED_PRIVATE) is missing.  Standard library only.
"""
import argparse
import ast
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)

# Private names that libraries built on Luigi read or patch (gokart, luigi-tools, b2luigi
# and public code that does `from luigi.<module> import _...`): each must be answered.
USED_PRIVATE = (
    # gokart
    "luigi.interface._WorkerSchedulerFactory", "luigi.interface._run",
    "luigi.execution_summary._summary_dict", "luigi.execution_summary._root_task",
    "luigi.execution_summary._ORDERED_STATUSES", "luigi.task._task_wraps",
    "luigi.setup_logging.InterfaceLogging._configured",
    "luigi.task_register.Register._reg", "luigi.task_register.Register._get_reg",
    "luigi.task_register.Register._set_reg",
    "luigi.configuration.cfg_parser.LuigiConfigParser._instance",
    "luigi.configuration.cfg_parser.LuigiConfigParser._config_paths",
    # luigi-tools, b2luigi (and law's luigi.interface._schedule_and_run)
    "luigi.parameter._no_value", "luigi.interface._schedule_and_run",
    "luigi.worker.Worker._create_task_process", "luigi.worker.Worker._scheduler",
    "luigi.worker.Worker._config", "luigi.worker.Worker._task_result_queue",
    "luigi.local_target.LocalTarget._trailing_slash", "luigi.worker._get_retry_policy_dict",
    # public code found importing them (the search tool's code corpus)
    "luigi.execution_summary._summary_wrap", "luigi.execution_summary._tasks_status",
    "luigi.execution_summary._create_one_line_summary",
    "luigi.execution_summary._group_tasks_by_name_and_status",
    "luigi.parameter._DictParamEncoder",
    # Luigi's own test helpers (../shared/luigi_tests)
    "luigi.cmdline_parser.CmdlineParser._instance",
    "luigi.task_register.Register.clear_instance_cache",
)

# What microflow leaves out, on purpose, each with its reason (the README's list).
# A key is a dotted name; a trailing ".*" covers a module's or class's every name.
LEFT_OUT = {
    "luigi.server.*": "luigid's tornado handlers, app and CORS settings: microflow's server "
                      "is http.server (SchedulerServer); luigi.server.run is answered",
    "luigi.db_task_history.*": "Luigi's SQLAlchemy models: microflow's history writes Luigi's "
                               "tables with sqlite3 (task_history(), [task_history] "
                               "db_connection)",
    "luigi.mypy.*": "Luigi's mypy plugin: microflow's parameters are typed for checkers "
                    "without a plugin",
    "luigi.process.daemonize": "microflow does not daemonize (luigid --background is "
                               "refused): run the server under a process supervisor",
    "luigi.warning_message": "the text of the DeprecationWarning Luigi gives when [core] "
                             "autoload_range is unset; microflow always offers the ranges",
    "luigi.worker.Worker.set_worker_processes": "microflow's worker does not act on the "
                                                "scheduler's rpc messages yet",
    "luigi.worker.Worker.dispatch_scheduler_message": "microflow's worker does not act on "
                                                      "the scheduler's rpc messages yet",
    "luigi.worker.Worker.handle_interrupt": "SIGUSR1 (stop asking for work) is handled by "
                                            "microflow's command line, not by the Worker",
}


def luigi_package(python):
    """The directory of the Luigi package that `python` imports (read, never imported here)."""
    code = "import importlib.util as u; print(u.find_spec('luigi').submodule_search_locations[0])"
    return subprocess.run([python, "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def module_files(package):
    """(dotted module name, path) of every module of Luigi's core: no contrib, no __main__."""
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d not in ("contrib", "__pycache__", "static",
                                                       "templates"))
        for name in sorted(files):
            if not name.endswith(".py") or name in ("__main__.py", "__version__.py"):
                continue
            rel = os.path.relpath(os.path.join(root, name), os.path.dirname(package))
            dotted = rel[:-3].replace(os.sep, ".")
            yield (dotted[: -len(".__init__")] if dotted.endswith(".__init__") else dotted,
                   os.path.join(root, name))


def _assigned(node):
    """Names a module- or class-level statement binds by definition (not by import)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else (
        [node.target] if isinstance(node, ast.AnnAssign) else [])
    names = []
    for target in targets:
        for leaf in ast.walk(target):
            if isinstance(leaf, ast.Name):
                names.append(leaf.id)
    return names


def _statements(body):
    """A body's statements, with those of its if/try/with blocks (conditional definitions)."""
    for node in body:
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                yield from _statements(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _statements(handler.body)
        else:
            yield node


def census(package):
    """{"module.name": kind}, kind "module" or "class", of everything Luigi defines."""
    names = {}
    for dotted, path in module_files(package):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in _statements(tree.body):
            for name in _assigned(node):
                if name in ("__all__", "logger", "__version__"):
                    continue   # bookkeeping, not an interface
                names[f"{dotted}.{name}"] = "module"
            if isinstance(node, ast.ClassDef):
                for member in _statements(node.body):
                    for name in _assigned(member):
                        names[f"{dotted}.{node.name}.{name}"] = "class"
    return names


FIND = r'''
import importlib, json, sys
if sys.argv[1]:   # a project: its microflow stands as luigi
    sys.path.insert(0, sys.argv[1])
    import microflow
    microflow.install_as_luigi()
found = {}
for key, kind in json.load(sys.stdin).items():
    parts = key.split(".")
    cut = len(parts) - (2 if kind == "class" else 1)
    try:
        obj = importlib.import_module(".".join(parts[:cut]))
    except Exception:
        found[key] = "unimportable"
        continue
    try:
        for part in parts[cut:]:
            obj = getattr(obj, part)
        found[key] = "there"
    except Exception:
        found[key] = "missing"
print(json.dumps(found))
'''


def find(python, project, names):
    """{"name": "there", "missing" or "unimportable"}: each of ``names`` looked up in
    ``python``'s ``luigi`` (microflow's, from ``project``, when given)."""
    done = subprocess.run([python, "-c", FIND, project], input=json.dumps(names),
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def existing(python, names):
    """The names that exist on the real Luigi (in `python`'s interpreter): a TypedDict's
    keys or a class body's bare annotations are parsed, but nobody can read them; a
    module that needs what is not installed keeps what was parsed."""
    return {key: names[key] for key, where in find(python, "", names).items()
            if where != "missing"}


def lookup(names):
    """{"name": answered} in microflow's `luigi` view, from a fresh interpreter."""
    return {key: where == "there" for key, where in find(sys.executable, PROJECT,
                                                          names).items()}


def left_out_reason(key):
    """The README's reason for leaving `key` out, or None."""
    parts = key.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in LEFT_OUT or prefix + ".*" in LEFT_OUT:
            return LEFT_OUT.get(prefix) or LEFT_OUT[prefix + ".*"]
    return None


def is_public(key, kind):
    """No leading underscore on the name, nor on its class (dunders are not public)."""
    parts = key.split(".")
    return not any(p.startswith("_") for p in (parts[-2:] if kind == "class" else parts[-1:]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--luigi-python", required=True, help="a Python with luigi==3.8.1")
    parser.add_argument("--require-public", type=float, default=0.0,
                        help="fail below this percent of public names, in each figure")
    parser.add_argument("-v", "--verbose", action="store_true", help="list the left-out names too")
    args = parser.parse_args(argv)
    names = existing(args.luigi_python, census(luigi_package(args.luigi_python)))
    found = lookup(names)
    failed = False
    for kind, label in (("module", "module-level names"), ("class", "class attributes")):
        keys = [k for k, v in names.items() if v == kind]
        public = [k for k in keys if is_public(k, kind)]
        share = 100.0 * sum(found[k] for k in public) / len(public)
        print(f"{label}: {sum(found[k] for k in keys)} of {len(keys)} answered; public: "
              f"{sum(found[k] for k in public)} of {len(public)} ({share:.1f} %)")
        failed |= share < args.require_public
    missing = sorted(k for k, ok in found.items() if not ok)
    unexplained = [k for k in missing if left_out_reason(k) is None and is_public(k, names[k])]
    print(f"public names missing and not in the README's list of what is left out "
          f"({len(unexplained)}):")
    for key in unexplained:
        print(f"  FAIL: {key}")
    failed |= bool(unexplained)
    if args.verbose:
        print("left out on purpose:")
        for key in missing:
            if left_out_reason(key):
                print(f"  {key}: {left_out_reason(key)}")
    # Looked up as written (an instance attribute of Luigi's, such as Worker._scheduler,
    # is no class attribute there: the census has no entry for it).
    seen = lookup({key: "class" if key.split(".")[-2][:1].isupper() else "module"
                   for key in USED_PRIVATE})
    used = [key for key in USED_PRIVATE if not seen[key]]
    for key in used:
        print(f"FAIL: {key}, used by libraries built on Luigi, is not answered")
    if failed:
        print(f"FAIL: below {args.require_public} % of the public names")
    return 1 if failed or used else 0


if __name__ == "__main__":
    sys.exit(main())
