"""The build backend of pyproject.toml: flit_core's, with the wheel laid out as a
package, so that an installed microflow is found typed (PEP 561: only a package can
carry ``py.typed``). The one source file is the package's ``__init__.py`` unchanged;
``__main__.py`` keeps ``python -m microflow`` working. The sdist is flit_core's.
"""
import base64
import hashlib
import os
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


def _as_package(path):
    with zipfile.ZipFile(path) as wheel:
        entries = [(info, wheel.read(info)) for info in wheel.infolist()]
    files, record = [], None
    for info, data in entries:
        if info.filename.endswith(".dist-info/RECORD"):
            record = info.filename
        elif info.filename == "microflow.py":
            files += [("microflow/__init__.py", data), ("microflow/__main__.py", MAIN),
                      ("microflow/py.typed", b"")]
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
