"""The build backend of pyproject.toml: flit_core's, with the wheel laid out as a
package, so that an installed microflow is found typed (PEP 561: only a package can
carry ``py.typed``). The one source file is the package's ``__init__.py`` unchanged;
``__main__.py`` keeps ``python -m microflow`` working. Luigi's module paths, which
microflow registers in sys.modules at import (``microflow.util``,
``microflow.tools.range``, ...), get a file each that re-exports their names from the
package: type checkers look for files, and find none inside one module. The files are
never run (the import of the package has already registered those modules). The sdist
is flit_core's.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

MAIN = b"""import sys

from microflow import main

sys.exit(main())
"""


def __getattr__(name):
    """Every other hook is flit_core's (imported when a frontend asks, so the tests can
    import this module without flit_core)."""
    from flit_core import buildapi
    return getattr(buildapi, name)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """flit_core's wheel, with ``microflow.py`` moved to ``microflow/__init__.py``
    beside a ``__main__.py`` and an empty ``py.typed``."""
    from flit_core import buildapi
    name = buildapi.build_wheel(wheel_directory, config_settings, metadata_directory)
    _as_package(os.path.join(wheel_directory, name))
    return name


# Run on the source being packed: each of Luigi's module paths microflow registers, as
# {"tools.range": [{name: microflow's name for it}, whether it has names computed on
# use]} (a class or function is found under whatever name microflow gives it; another
# value only under its own, since equal constants are not the same name).
PROBE = """
import json, sys, types
sys.path.insert(0, sys.argv[1])
import microflow
top, found = vars(microflow), {}
for dotted, module in sorted(sys.modules.items()):
    if not (dotted.startswith("microflow.") and isinstance(module, microflow._LuigiModule)):
        continue
    names, computed = {}, "__getattr__" in vars(module)
    for name, value in vars(module).items():
        if name.startswith("__") or name == "_replaced" or isinstance(value, types.ModuleType):
            continue
        same = [name] if top.get(name) is value else [
            other for other, there in top.items() if there is value and callable(value)]
        if same:
            names[name] = same[0]
        else:
            computed = True
    found[dotted.split(".", 1)[1]] = [names, computed]
print(json.dumps(found))
"""


def _module_files(source):
    """``[(path in the wheel, text)]``: a file for each of Luigi's module paths that
    ``source`` (microflow.py) registers, re-exporting its names."""
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "microflow.py"), "wb") as f:
            f.write(source)
        done = subprocess.run([sys.executable, "-c", PROBE, folder], capture_output=True,
                              text=True, check=True, cwd=folder)
    paths = json.loads(done.stdout)
    files = []
    for dotted, (names, computed) in sorted(paths.items()):
        parts = dotted.split(".")
        if any(other.startswith(dotted + ".") for other in paths):
            parts.append("__init__")
        lines = [f'"""microflow.{dotted}, for type checkers: microflow registers this '
                 f'module\nwhen it is imported, so this file is never run."""']
        if computed:
            lines.append("from typing import Any")
        lines += [f"from microflow import {there} as {name}"
                  for name, there in sorted(names.items())]
        if computed:
            lines += ["", "", "def __getattr__(name: str) -> Any:",
                      '    """What microflow computes on first use."""',
                      "    raise AttributeError(name)"]
        files.append(("microflow/" + "/".join(parts) + ".py",
                      ("\n".join(lines) + "\n").encode()))
    return files


def _as_package(path):
    with zipfile.ZipFile(path) as wheel:
        entries = [(info, wheel.read(info)) for info in wheel.infolist()]
    files, record = [], None
    for info, data in entries:
        if info.filename.endswith(".dist-info/RECORD"):
            record = info.filename
        elif info.filename == "microflow.py":
            files += [("microflow/__init__.py", data), ("microflow/__main__.py", MAIN),
                      ("microflow/py.typed", b""), *_module_files(data)]
        else:
            files.append((info.filename, data))
    lines = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files]
    files.append((record, ("\n".join(lines + [f"{record},,"]) + "\n").encode()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            wheel.writestr(info, data, zipfile.ZIP_DEFLATED)


def _digest(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
