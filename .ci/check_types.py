"""What type checkers say of code written against microflow: mypy and pyright on
examples/ and on .ci/typing_cases.py, copied beside microflow.py into a scratch folder
as a project that vendors it would have them. Every assert_type in the cases must hold,
every line marked "# expect-error" must be reported by both checkers, and nothing else
may be (so the check fails if parameter types silently become Any); under mypy --strict
too, for the cases (the examples are written without annotations). Errors inside
microflow.py itself are not judged here: mypy reads it with --follow-imports=silent,
pyright reports on the files it is given.

    python .ci/check_types.py --python VENV/bin/python   # VENV has mypy and pyright

With ``--installed`` the cases and examples are checked without a copy of microflow.py
beside them: the checkers find the microflow installed in VENV (a wheel, which carries
py.typed), as a project that installs it with pip would have it; .ci/typing_installed.py
(Luigi's module paths, ``from microflow.util import requires``) is checked then too.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(ROOT, ".ci", "typing_cases.py")
INSTALLED_CASES = os.path.join(ROOT, ".ci", "typing_installed.py")
EXAMPLES = os.path.join(ROOT, "examples")


def expected_lines(cases):
    """``{(file name, line)}`` of the lines marked to be reported in ``cases``."""
    found = set()
    for path in cases:
        with open(path, encoding="utf-8") as f:
            found |= {(os.path.basename(path), number)
                      for number, line in enumerate(f, 1) if "# expect-error" in line}
    return found


def reported(checker, python, project, cases):
    """``{(file name, line)}`` of the errors ``checker`` reports on the ``cases`` and
    the examples in ``project``, and its whole output."""
    files = [os.path.basename(path) for path in cases]
    if checker.startswith("mypy"):
        strict = ["--strict"] if checker == "mypy --strict" else []
        command = [python, "-m", "mypy", "--no-incremental", "--follow-imports=silent",
                   *strict, *files, *([] if strict else ["examples"])]   # the examples
                                                                  # are not annotated
        pattern = r"^(?P<file>[^:\n]+):(?P<line>\d+): error:"
    else:
        command = [python, "-m", "pyright", "--pythonpath", python,
                   "--pythonversion", "3.9", *files, "examples"]
        pattern = r"^\s*(?P<file>/[^:\n]+):(?P<line>\d+):\d+ - error:"
    done = subprocess.run(command, cwd=project, capture_output=True, text=True)
    output = done.stdout + done.stderr
    errors = {(os.path.relpath(os.path.join(project, m["file"]), project), int(m["line"]))
              for m in re.finditer(pattern, output, re.M)}
    return errors, output


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="an interpreter with mypy and pyright installed")
    parser.add_argument("--installed", action="store_true",
                        help="check against the microflow installed for --python")
    options = parser.parse_args()
    python = options.python
    cases = [CASES, INSTALLED_CASES] if options.installed else [CASES]
    wanted = expected_lines(cases)
    failed = False
    with tempfile.TemporaryDirectory() as project:
        if not options.installed:
            shutil.copy(os.path.join(ROOT, "microflow.py"), project)
        for path in cases:
            shutil.copy(path, project)
        shutil.copytree(EXAMPLES, os.path.join(project, "examples"))
        for checker in ("mypy", "mypy --strict", "pyright"):
            errors, output = reported(checker, python, project, cases)
            missing, extra = sorted(wanted - errors), sorted(errors - wanted)
            where = " (installed)" if options.installed else ""
            print(f"== {checker}{where}: {len(errors & wanted)} of {len(wanted)} expected "
                  f"errors reported, {len(extra)} unexpected")
            for file, line in missing + extra:
                print(f"   {'not reported' if (file, line) in wanted else 'unexpected'}: "
                      f"{file}:{line}")
            if extra or missing:
                failed = True
                print(output)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
