"""microflow: a single-file, dependency-free workflow library in the tradition of Luigi.

Write pipelines as classes; microflow works out what is missing and runs it::

    import microflow

    class Hello(microflow.Task):
        name = microflow.Parameter(default="world")

        def output(self):
            return microflow.LocalTarget(f"out/hello-{self.name}.txt")

        def run(self):
            with self.output().open("w") as f:      # written atomically
                f.write(f"hello {self.name}\\n")

    microflow.build([Hello(name="you")])

``import microflow as luigi`` runs ordinary Luigi-core pipelines unchanged: the class and
parameter names, task ids and summary categories are Luigi's.

Sections, in order:
    constants, exceptions, private helpers, configuration, parameters, date intervals,
    targets and formats, tasks (registry, task ids, dependency flattening), Luigi
    compatibility namespaces.

Data flow::

    Task --requires()--> Worker --add_task/get_work--> Scheduler (in-memory | HTTP)
                          |  ^
                 start()  v  | collect()
                         runner (inline | process pool)

To vendor: copy this one file into your project and keep this header.
License: Apache-2.0.
"""

import abc
import configparser
import contextlib
import datetime
import enum
import hashlib
import io
import itertools
import json
import logging
import operator
import os
import pathlib
import random
import re
import sys
import threading
import types
import warnings
from collections.abc import Mapping

__version__ = "0.1.0"

__all__ = (
    # configuration
    "get_config", "set_config", "reset_config", "config_override",
    # exceptions
    "MicroflowError", "ConfigError", "ParameterException", "MissingParameterException",
    "UnknownParameterException", "DuplicateParameterException", "ParameterParseError",
    "TaskClassException", "TaskClassNotFoundException", "TaskClassAmbigiousException",
    "TaskClassAmbiguousException", "UnconsumedParameterWarning",
    # parameters
    "ParameterVisibility", "Parameter", "OptionalParameter", "StrParameter",
    "OptionalStrParameter", "IntParameter", "OptionalIntParameter", "FloatParameter",
    "OptionalFloatParameter", "BoolParameter", "OptionalBoolParameter", "DateParameter",
    "MonthParameter", "YearParameter", "DateHourParameter", "DateMinuteParameter",
    "DateSecondParameter", "DateIntervalParameter", "TimeDeltaParameter", "TaskParameter",
    "EnumParameter", "EnumListParameter", "DictParameter", "OptionalDictParameter",
    "ListParameter", "OptionalListParameter", "TupleParameter", "OptionalTupleParameter",
    "NumericalParameter", "OptionalNumericalParameter", "ChoiceParameter",
    "OptionalChoiceParameter", "ChoiceListParameter", "PathParameter",
    "OptionalPathParameter", "FrozenOrderedDict", "DateInterval",
    # targets
    "Target", "FileSystem", "FileSystemTarget", "LocalFileSystem", "LocalTarget",
    "MockFileSystem", "MockTarget", "Format", "Text", "UTF8", "Nop", "Gzip", "Bzip2",
    # tasks
    "Event", "Register", "Task", "ExternalTask", "WrapperTask", "Config", "externalize",
    "namespace", "auto_namespace", "task_id_str", "flatten", "getpaths", "load_task",
    "requires", "inherits",
    # Luigi-style module namespaces
    "configuration", "date_interval", "event", "format", "mock", "parameter", "target",
    "task", "task_register", "util",
)


###########################################################################################
# Constants
###########################################################################################

#: The one logger microflow writes to.
LOGGER_NAME = "microflow"
_log = logging.getLogger(LOGGER_NAME)

# Task-id shape, as Luigi computes it: family, the first three parameters (by name),
# each cut to 16 characters, and the first ten hex digits of an md5 of all of them.
_TASK_ID_INCLUDE_PARAMS = 3
_TASK_ID_TRUNCATE_PARAMS = 16
_TASK_ID_TRUNCATE_HASH = 10
_TASK_ID_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_]")

# Marker for "this parameter has no value yet"; falsy checks must not be used on it.
_NO_VALUE = type("_NoValue", (), {"__repr__": lambda self: "<no value>"})()

# Luigi's magic namespace meaning "use the class's __module__".
_SAME_AS_PYTHON_MODULE = "_same_as_python_module"


###########################################################################################
# Exceptions
###########################################################################################

class MicroflowError(Exception):
    """Root of every error microflow raises on purpose."""


class ConfigError(MicroflowError, ValueError):
    """A configuration value is missing or malformed."""


class ParameterException(MicroflowError):
    """A parameter could not be resolved, parsed or validated (Luigi's name)."""


class MissingParameterException(ParameterException):
    """A required parameter got no value from the constructor, command line, config or default."""


class UnknownParameterException(ParameterException):
    """A task was given a parameter it does not declare, or too many positional arguments."""


class DuplicateParameterException(ParameterException):
    """A parameter was given both positionally and by keyword."""


class ParameterParseError(ParameterException, ValueError):
    """A string could not be parsed into a parameter value.

    It is also a ``ValueError``, so code written against Luigi's plain ``ValueError``
    still catches it.
    """


class TaskClassException(MicroflowError):
    """A task class could not be found or chosen by family name."""


class TaskClassNotFoundException(TaskClassException):
    """No registered task class has this family name."""


class TaskClassAmbigiousException(TaskClassException):
    """Two unrelated task classes share a family name (Luigi's spelling)."""


#: Correctly spelled alias of :class:`TaskClassAmbigiousException`.
TaskClassAmbiguousException = TaskClassAmbigiousException


class UnconsumedParameterWarning(UserWarning):
    """A ``[Family]`` config section holds an option the task does not declare."""


###########################################################################################
# Private helpers
###########################################################################################

def _deprecated(since, what, instead):
    """Warn once per call site that ``what`` is deprecated since ``since``."""
    warnings.warn(f"{what} is deprecated since microflow {since}; use {instead} instead",
                  DeprecationWarning, stacklevel=3)


def _edit_distance(a, b):
    """Levenshtein distance, for "did you mean" suggestions."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(current[j - 1] + 1, previous[j] + 1,
                               previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _suggestions(name, candidates, limit=3):
    """Return up to ``limit`` candidates close to ``name``, closest first."""
    scored = sorted((_edit_distance(name.lower(), c.lower()), c) for c in candidates)
    return [c for distance, c in scored if distance <= max(2, len(name) // 3)][:limit]


def _import_object(spec):
    """Import ``"package.module:attr"`` (or ``"package.module.attr"``) without eval."""
    import importlib
    module_name, _, attr = spec.partition(":")
    if not attr:
        module_name, _, attr = spec.rpartition(".")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


###########################################################################################
# Configuration
###########################################################################################

def _config_paths():
    """The files read, in order; a later file wins over an earlier one."""
    paths = ["/etc/luigi/luigi.cfg", "luigi.cfg", "microflow.cfg"]
    for variable in ("LUIGI_CONFIG_PATH", "MICROFLOW_CONFIG_PATH"):
        if os.environ.get(variable):
            paths.append(os.environ[variable])
    return paths


class _EnvInterpolation(configparser.BasicInterpolation):
    """``%(name)s`` interpolation plus ``${ENV_VAR}``; a missing variable is an error."""

    _ENV = re.compile(r"\$\{([^}]*)\}")

    def before_get(self, parser, section, option, value, defaults):
        value = super().before_get(parser, section, option, value, defaults)
        return self._ENV.sub(lambda m: self._lookup(m.group(1), section, option), value)

    @staticmethod
    def _lookup(name, section, option):
        if name not in os.environ:
            raise ConfigError(f"[{section}] {option}: environment variable '{name}' "
                              f"is not set")
        return os.environ[name]


class _ConfigParser(configparser.ConfigParser):
    """Luigi's cfg dialect: case-sensitive options, env interpolation, dash aliases."""

    def __init__(self):
        super().__init__(interpolation=_EnvInterpolation())
        self.optionxform = str

    def _resolve(self, section, option):
        """Return the option name actually present, accepting dash/underscore forms."""
        for candidate in (option, option.replace("-", "_"), option.replace("_", "-")):
            if self.has_option(section, candidate):
                return candidate
        return None

    def get(self, section, option, default=_NO_VALUE, **kwargs):
        """Return ``[section] option``; ``default`` (if given) when it is absent."""
        present = self._resolve(section, option) if self.has_section(section) else None
        if present is None:
            if default is _NO_VALUE:
                raise ConfigError(f"config has no option '{option}' in section [{section}]")
            return default
        return super().get(section, present, **kwargs)

    def _typed(self, section, option, default, convert, expected):
        value = self.get(section, option, _NO_VALUE if default is _NO_VALUE else None)
        if value is None:
            return default
        try:
            return convert(value)
        except ValueError:
            raise ConfigError(f"[{section}] {option}: expected {expected}, "
                              f"got {value!r}") from None

    def getint(self, section, option, default=_NO_VALUE, **kwargs):
        """Return ``[section] option`` as an int."""
        return self._typed(section, option, default, int, "an integer")

    def getfloat(self, section, option, default=_NO_VALUE, **kwargs):
        """Return ``[section] option`` as a float."""
        return self._typed(section, option, default, float, "a number")

    def getboolean(self, section, option, default=_NO_VALUE, **kwargs):
        """Return ``[section] option`` as a bool (true/false, yes/no, on/off, 1/0)."""
        return self._typed(section, option, default, _parse_config_bool, "true or false")

    def set(self, section, option, value=None):
        """Set ``[section] option`` to ``str(value)``, creating the section if needed."""
        if not self.has_section(section):
            self.add_section(section)
        super().set(section, option, None if value is None else str(value))


def _parse_config_bool(value):
    lowered = str(value).strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError(value)


class _ConfigState:
    """The process's configuration: read lazily from files, overridable in memory."""

    def __init__(self):
        self._lock = threading.Lock()
        self._parser = None
        self.generation = 0   # bumped on every change, so caches know to refresh

    def parser(self):
        parser = self._parser
        if parser is None:
            with self._lock:
                if self._parser is None:
                    parser = _ConfigParser()
                    parser.read(_config_paths(), encoding="utf-8")
                    self._parser = parser
                parser = self._parser
        return parser

    def reset(self):
        with self._lock:
            self._parser = None
            self.generation += 1


_CONFIG = _ConfigState()


def get_config():
    """Return the configuration parser, reading the config files on first use.

    Files are read in this order, later ones winning: ``/etc/luigi/luigi.cfg``,
    ``./luigi.cfg``, ``./microflow.cfg``, then ``$LUIGI_CONFIG_PATH`` and
    ``$MICROFLOW_CONFIG_PATH``. ``get(section, option, default)`` accepts a default
    and both the ``dash-form`` and ``underscore_form`` of an option.
    """
    return _CONFIG.parser()


def set_config(section, option, value):
    """Set one configuration value in memory (no file is touched)."""
    get_config().set(section, option, value)
    _CONFIG.generation += 1


def reset_config():
    """Forget in-memory changes; the files are read again on next use."""
    _CONFIG.reset()


@contextlib.contextmanager
def config_override(values):
    """Apply ``{section: {option: value}}`` for the duration of a ``with`` block.

    Meant for tests: the previous configuration is restored on exit.
    """
    parser = get_config()
    saved = {s: dict(parser.items(s, raw=True)) for s in parser.sections()}
    try:
        for section, options in values.items():
            for option, value in options.items():
                set_config(section, option, value)
        yield parser
    finally:
        for section in parser.sections():
            parser.remove_section(section)
        for section, options in saved.items():
            parser.add_section(section)
            for option, value in options.items():
                configparser.ConfigParser.set(parser, section, option, value)
        _CONFIG.generation += 1


###########################################################################################
# Parameters
###########################################################################################

class ParameterVisibility(enum.IntEnum):
    """Who may see a parameter: PUBLIC everywhere, HIDDEN not in task ids or the
    scheduler's display, PRIVATE never sent to the scheduler at all."""

    PUBLIC = 0
    HIDDEN = 1
    PRIVATE = 2

    @classmethod
    def has_value(cls, value):
        """True if ``value`` is one of the visibility levels."""
        return any(value == member.value for member in cls)

    def serialize(self):
        """The integer sent over the wire."""
        return self.value


class FrozenOrderedDict(Mapping):
    """An immutable, hashable, ordered mapping: the value of a DictParameter."""

    __slots__ = ("_data", "_hash")

    def __init__(self, *args, **kwargs):
        self._data = dict(*args, **kwargs)
        self._hash = None

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return repr(self._data)

    def __hash__(self):
        if self._hash is None:
            self._hash = 0
            for item in self._data.items():
                self._hash ^= hash(item)
        return self._hash

    def get_wrapped(self):
        """The underlying plain dict (do not mutate it)."""
        return self._data


def _freeze(value):
    """Turn mappings into FrozenOrderedDicts and lists into tuples, recursively."""
    if isinstance(value, Mapping):
        return FrozenOrderedDict((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _unfreeze(value):
    """The inverse of :func:`_freeze`: plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _unfreeze(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_unfreeze(v) for v in value]
    return value


class _FrozenJSONEncoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, FrozenOrderedDict):
            return o.get_wrapped()
        return super().default(o)


# Values given on the command line, keyed by (task family, parameter name). The CLI
# fills it for the duration of one run; everything else only reads it.
_cmdline_values = {}


class Parameter:
    """A task parameter: a descriptor that parses, normalizes and serializes one value.

    Where a value comes from, first hit wins: the constructor argument, the command line
    (``--Family-param`` or, for the root task, ``--param``), the config option
    ``[Family] param``, then ``default``. Raises MissingParameterException when none
    gives one.
    """

    _counter = 0          # declaration order, shared by every parameter ever created
    _expected = "a string"  # what parse() accepts, for error messages

    def __init__(self, default=_NO_VALUE, is_global=False, significant=True,
                 description=None, config_path=None, positional=True,
                 always_in_help=False, batch_method=None,
                 visibility=ParameterVisibility.PUBLIC):
        if is_global:
            warnings.warn("is_global is removed; assuming positional=False",
                          DeprecationWarning, stacklevel=2)
            positional = False
        if config_path is not None and not {"section", "name"} <= set(config_path):
            raise ParameterException("config_path must be a dict with 'section' and 'name'")
        self._default = default
        self._batch_method = batch_method
        self.significant = significant
        self.positional = positional
        self.description = description
        self.always_in_help = always_in_help
        self.visibility = (ParameterVisibility(visibility)
                           if ParameterVisibility.has_value(visibility)
                           else ParameterVisibility.PUBLIC)
        self._config_path = config_path
        self._attribute_name = None
        self._counter = Parameter._counter
        Parameter._counter += 1

    # -- descriptor protocol: the value lives in the instance's __dict__ ---------------

    def __set_name__(self, owner, name):
        self._attribute_name = name

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return instance.__dict__[self._attribute_name]

    def __set__(self, instance, value):
        instance.__dict__[self._attribute_name] = value

    # -- conversions a subclass overrides ----------------------------------------------

    def parse(self, x):
        """Turn a string (from the command line, config or scheduler) into a value."""
        return x

    def serialize(self, x):
        """Turn a value into the string that parse() reads back."""
        return str(x)

    def normalize(self, x):
        """Canonicalize a value from any source (e.g. make it hashable, clamp it)."""
        return x

    def next_in_enumeration(self, value):
        """The next value in order, or None; the summary uses it to print ranges."""
        return None

    # -- value resolution ---------------------------------------------------------------

    def _parse_for(self, task_name, param_name, raw, source):
        """parse() with an error that names the task, parameter, value and source."""
        try:
            return self.parse(raw)
        except (ValueError, TypeError, ParameterException) as exc:
            raise ParameterParseError(
                f"{task_name}: parameter '{param_name}' expects {self._expected}, "
                f"got {raw!r} ({source}): {exc}") from None

    def _value_from_sources(self, task_name, param_name):
        """The first value found on the command line, in config, or the default."""
        raw = _cmdline_values.get((task_name, param_name))
        if raw:   # Luigi treats an empty command-line string as "not given"
            return self._parse_for(task_name, param_name, raw, "command line")
        parser = get_config()
        if parser.has_section(task_name):
            raw = parser.get(task_name, param_name, None)
            if raw is not None:
                return self._parse_for(task_name, param_name, raw, f"config [{task_name}]")
        if self._config_path:
            section, name = self._config_path["section"], self._config_path["name"]
            raw = parser.get(section, name, None)
            if raw is not None:
                warnings.warn(f"config [{section}] {name} is deprecated; use "
                              f"[{task_name}] {param_name}", DeprecationWarning)
                return self._parse_for(task_name, param_name, raw, f"config [{section}]")
        return self._default

    def has_task_value(self, task_name, param_name):
        """True if a value for this parameter exists outside the constructor."""
        return self._value_from_sources(task_name, param_name) is not _NO_VALUE

    def task_value(self, task_name, param_name):
        """The normalized value from the command line, config or default.

        Raises MissingParameterException if there is none.
        """
        value = self._value_from_sources(task_name, param_name)
        if value is _NO_VALUE:
            raise MissingParameterException(
                f"{task_name}: requires the '{param_name}' parameter to be set")
        return self.normalize(value)

    def _is_batchable(self):
        return self._batch_method is not None

    def _parse_list(self, xs):
        """Combine several scheduler strings into one value with ``batch_method``."""
        if not self._is_batchable():
            raise NotImplementedError("No batch method found")
        if not xs:
            raise ValueError("Empty parameter list passed to parse_list")
        return self._batch_method(map(self.parse, xs))

    def _warn_on_wrong_param_type(self, param_name, param_value):
        if type(self) is Parameter and not isinstance(param_value, str):
            warnings.warn(f'Parameter "{param_name}" with value "{param_value}" '
                          f'is not of type string.')

    def _type_name(self):
        """A short type name for --help output."""
        return type(self).__name__.replace("Parameter", "").lower() or "str"


class _OptionalMixin:
    """Makes a parameter optional: default None, and '' and None map to each other."""

    expected_type = type(None)

    def __init__(self, default=None, **kwargs):
        super().__init__(default=default, **kwargs)

    def serialize(self, x):
        return "" if x is None else super().serialize(x)

    def parse(self, x):
        if not isinstance(x, str):
            return x
        return super().parse(x) if x else None

    def normalize(self, x):
        return None if x is None else super().normalize(x)

    def next_in_enumeration(self, value):
        return None

    def _warn_on_wrong_param_type(self, param_name, param_value):
        if param_value is not None and not isinstance(param_value, self.expected_type):
            warnings.warn(f'{type(self).__name__} "{param_name}" with value '
                          f'"{param_value}" is not of the expected type or None.')


class OptionalParameter(_OptionalMixin, Parameter):
    """A string parameter that defaults to None; '' on the command line means None."""

    expected_type = str


class StrParameter(Parameter):
    """A parameter whose value is ``str(x)``."""

    def parse(self, x):
        return str(x)


class OptionalStrParameter(_OptionalMixin, StrParameter):
    """A StrParameter that defaults to None."""

    expected_type = str


class IntParameter(Parameter):
    """An integer parameter; consecutive values print as ranges in the summary."""

    _expected = "an integer"

    def parse(self, x):
        return int(x)

    def next_in_enumeration(self, value):
        return value + 1


class OptionalIntParameter(_OptionalMixin, IntParameter):
    """An IntParameter that defaults to None."""

    expected_type = int


class FloatParameter(Parameter):
    """A float parameter."""

    _expected = "a number"

    def parse(self, x):
        return float(x)


class OptionalFloatParameter(_OptionalMixin, FloatParameter):
    """A FloatParameter that defaults to None."""

    expected_type = float


class BoolParameter(Parameter):
    """A boolean parameter, False unless given.

    With IMPLICIT parsing (the default) ``--flag`` on the command line means True; with
    EXPLICIT parsing the command line takes ``--flag true|false``.
    """

    IMPLICIT_PARSING = "implicit"
    EXPLICIT_PARSING = "explicit"
    parsing = IMPLICIT_PARSING
    _expected = "true or false"

    def __init__(self, default=_NO_VALUE, parsing=None, **kwargs):
        self.parsing = type(self).parsing if parsing is None else parsing
        if self.parsing not in (self.IMPLICIT_PARSING, self.EXPLICIT_PARSING):
            raise ParameterException(f"unknown parsing value '{self.parsing}'")
        super().__init__(default=default, **kwargs)
        if self._default is _NO_VALUE:
            self._default = False

    def parse(self, x):
        lowered = str(x).lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise ValueError(f"cannot interpret '{x}' as boolean")

    def normalize(self, x):
        try:
            return self.parse(x)
        except ValueError:
            return None


class OptionalBoolParameter(_OptionalMixin, BoolParameter):
    """A BoolParameter that defaults to None."""

    expected_type = bool


_UNIX_EPOCH = datetime.datetime(1970, 1, 1)


class _DateParameterBase(Parameter):
    """A date parameter written with ``date_format``, clamped to every ``interval``-th
    value counted from ``start``."""

    date_format = "%Y-%m-%d"

    def __init__(self, default=_NO_VALUE, interval=1, start=None, **kwargs):
        super().__init__(default=default, **kwargs)
        self.interval = interval
        self.start = start if start is not None else _UNIX_EPOCH.date()

    @property
    def _expected(self):
        return "a date " + self.date_format.replace("%Y", "YYYY").replace(
            "%m", "MM").replace("%d", "DD")

    def parse(self, s):
        return datetime.datetime.strptime(s, self.date_format).date()

    def serialize(self, dt):
        return str(dt) if dt is None else dt.strftime(self.date_format)


class DateParameter(_DateParameterBase):
    """A ``datetime.date`` written ``YYYY-MM-DD``."""

    def next_in_enumeration(self, value):
        return value + datetime.timedelta(days=self.interval)

    def normalize(self, x):
        if x is None:
            return None
        if isinstance(x, datetime.datetime):
            x = x.date()
        return x - datetime.timedelta(days=(x - self.start).days % self.interval)


def _add_months(date, months):
    index = date.month - 1 + months
    return datetime.date(date.year + index // 12, index % 12 + 1, 1)


class MonthParameter(DateParameter):
    """A date rounded down to the first of its month, written ``YYYY-MM``."""

    date_format = "%Y-%m"

    def next_in_enumeration(self, value):
        return _add_months(value, self.interval)

    def normalize(self, x):
        if x is None:
            return None
        if isinstance(x, DateInterval):
            x = x.date_a
        months = (x.year - self.start.year) * 12 + (x.month - self.start.month)
        return _add_months(self.start, months - months % self.interval)


class YearParameter(DateParameter):
    """A date rounded down to the first of its year, written ``YYYY``."""

    date_format = "%Y"

    def next_in_enumeration(self, value):
        return value.replace(year=value.year + self.interval)

    def normalize(self, x):
        if x is None:
            return None
        if isinstance(x, DateInterval):
            x = x.date_a
        return datetime.date(x.year - (x.year - self.start.year) % self.interval, 1, 1)


class _DatetimeParameterBase(Parameter):
    """A ``datetime`` written with ``date_format``, without microseconds, clamped to
    every ``interval`` units of ``_timedelta`` from ``start`` (default: the epoch)."""

    date_format = "%Y-%m-%dT%H"
    _timedelta = datetime.timedelta(hours=1)

    def __init__(self, default=_NO_VALUE, interval=1, start=None, **kwargs):
        super().__init__(default=default, **kwargs)
        self.interval = interval
        self.start = start if start is not None else _UNIX_EPOCH

    @property
    def _expected(self):
        return "a time " + self.date_format.replace("%Y", "YYYY").replace(
            "%m", "MM").replace("%d", "DD").replace("%H", "HH").replace(
            "%M", "MM").replace("%S", "SS")

    def parse(self, s):
        return datetime.datetime.strptime(s, self.date_format)

    def serialize(self, dt):
        return str(dt) if dt is None else dt.strftime(self.date_format)

    def normalize(self, dt):
        if dt is None:
            return None
        if not isinstance(dt, datetime.datetime):
            dt = datetime.datetime.combine(dt, datetime.time.min)
        dt = dt.replace(microsecond=0)
        elapsed = (dt - self.start).total_seconds()
        granularity = (self._timedelta * self.interval).total_seconds()
        return dt - datetime.timedelta(seconds=elapsed % granularity)

    def next_in_enumeration(self, value):
        return value + self._timedelta * self.interval


class DateHourParameter(_DatetimeParameterBase):
    """A datetime to the hour, written ``YYYY-MM-DDTHH``."""


class DateMinuteParameter(_DatetimeParameterBase):
    """A datetime to the minute, written ``YYYY-MM-DDTHHMM`` (``THHhMM`` is deprecated)."""

    date_format = "%Y-%m-%dT%H%M"
    _timedelta = datetime.timedelta(minutes=1)

    def parse(self, x):
        try:
            value = datetime.datetime.strptime(x, "%Y-%m-%dT%HH%M")
        except ValueError:
            return super().parse(x)
        warnings.warn('Using "H" between hours and minutes is deprecated, omit it instead.',
                      DeprecationWarning, stacklevel=2)
        return value


class DateSecondParameter(_DatetimeParameterBase):
    """A datetime to the second, written ``YYYY-MM-DDTHHMMSS``."""

    date_format = "%Y-%m-%dT%H%M%S"
    _timedelta = datetime.timedelta(seconds=1)


class DateIntervalParameter(Parameter):
    """A DateInterval: ``2015``, ``2015-05``, ``2015-W35``, ``2015-11-04`` or
    ``2015-11-04-2015-12-04``."""

    _expected = "a date interval (YYYY, YYYY-MM, YYYY-Www, YYYY-MM-DD or two dates)"

    def parse(self, x):
        for interval_class in (_Year, _Month, _Week, _Date, _Custom):
            interval = interval_class.parse(x)
            if interval:
                return interval
        raise ValueError("Invalid date interval - could not be parsed")


class TimeDeltaParameter(Parameter):
    """A ``datetime.timedelta``: seconds (``90``), ISO 8601 (``P1DT2H``, ``P3W``) or text
    (``1 week 2 days``); serialized as ``"W w D d H h M m S s"``."""

    _expected = "a time delta (seconds, ISO 8601 like P1DT2H, or '1 week 2 days')"
    _UNITS = ("weeks", "days", "hours", "minutes", "seconds")
    _ISO = re.compile(r"P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?"
                      r"(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?)")
    # Each unit may be written by its initial, its singular or its plural.
    _TEXT = re.compile("".join(
        rf"(?:(?P<{unit}>\d+) ?{unit[0]}(?:{unit[1:-1]})?s? ?)?" for unit in _UNITS))

    def parse(self, x):
        try:
            return datetime.timedelta(seconds=float(x))
        except ValueError:
            pass
        for pattern in (self._ISO, self._TEXT):
            match = pattern.match(x)
            if match and any(match.groups()):
                return datetime.timedelta(**{unit: int(match.group(unit) or 0)
                                             for unit in self._UNITS})
        raise ParameterParseError(f"Invalid time delta - could not parse {x}")

    def serialize(self, x):
        weeks, days = divmod(x.days, 7)
        hours, rest = divmod(x.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{weeks} w {days} d {hours} h {minutes} m {seconds} s"


class TaskParameter(Parameter):
    """A task class, written as its family name."""

    _expected = "a task family name"

    def parse(self, x):
        return Register.get_task_cls(x)

    def serialize(self, x):
        return x.get_task_family()


class EnumParameter(Parameter):
    """A member of ``enum``, written by its name."""

    def __init__(self, default=_NO_VALUE, *, enum=None, **kwargs):
        if enum is None:
            raise ParameterException("An enum class must be specified.")
        self._enum = enum
        super().__init__(default=default, **kwargs)

    @property
    def _expected(self):
        return "one of " + ", ".join(self._enum.__members__)

    def parse(self, x):
        try:
            return self._enum[x]
        except KeyError:
            raise ValueError("Invalid enum value - could not be parsed") from None

    def serialize(self, x):
        return x.name


class EnumListParameter(Parameter):
    """A tuple of ``enum`` members, written as comma-separated names."""

    def __init__(self, default=_NO_VALUE, *, enum=None, **kwargs):
        if enum is None:
            raise ParameterException("An enum class must be specified.")
        self._enum = enum
        super().__init__(default=default, **kwargs)

    @property
    def _expected(self):
        return "comma-separated names from " + ", ".join(self._enum.__members__)

    def parse(self, x):
        values = x.split(",") if x else []
        for index, name in enumerate(values):
            if name not in self._enum.__members__:
                raise ValueError(f'Invalid enum value "{name}" index {index} - '
                                 f'could not be parsed')
        return tuple(self._enum[name] for name in values)

    def serialize(self, x):
        return ",".join(member.name for member in x)


def _validate_schema(schema, value):
    """Validate against a JSON schema when the optional ``jsonschema`` is installed."""
    if schema is None:
        return value
    plain = _unfreeze(value)
    if hasattr(schema, "validate"):
        schema.validate(plain)
        return plain
    try:
        import jsonschema
    except ImportError:
        warnings.warn("jsonschema is not installed: the parameter's schema is not checked")
        return value
    jsonschema.validate(instance=plain, schema=schema)
    return value


class DictParameter(Parameter):
    """A JSON object, held as a hashable FrozenOrderedDict."""

    _expected = "a JSON object"

    def __init__(self, default=_NO_VALUE, *, schema=None, **kwargs):
        self.schema = schema
        super().__init__(default=default, **kwargs)

    def normalize(self, x):
        return _freeze(_validate_schema(self.schema, x))

    def parse(self, x):
        if not isinstance(x, str):
            return x
        return json.loads(x, object_pairs_hook=FrozenOrderedDict)

    def serialize(self, x):
        return json.dumps(x, cls=_FrozenJSONEncoder)


class OptionalDictParameter(_OptionalMixin, DictParameter):
    """A DictParameter that defaults to None."""

    expected_type = FrozenOrderedDict


class ListParameter(Parameter):
    """A JSON list, held as a (recursively frozen) tuple."""

    _expected = "a JSON list"

    def __init__(self, default=_NO_VALUE, *, schema=None, **kwargs):
        self.schema = schema
        super().__init__(default=default, **kwargs)

    def normalize(self, x):
        return _freeze(_validate_schema(self.schema, x))

    def parse(self, x):
        value = json.loads(x, object_pairs_hook=FrozenOrderedDict)
        return None if value is None else list(value)

    def serialize(self, x):
        return json.dumps(x, cls=_FrozenJSONEncoder)


class OptionalListParameter(_OptionalMixin, ListParameter):
    """A ListParameter that defaults to None."""

    expected_type = tuple


class TupleParameter(ListParameter):
    """A tuple of tuples, written as JSON (``[[1, 2], [3]]``) or a Python literal."""

    _expected = "a JSON list of lists or a Python tuple literal"

    def parse(self, x):
        import ast
        try:
            return tuple(v if isinstance(v, str) else tuple(v)
                         for v in json.loads(x, object_pairs_hook=FrozenOrderedDict))
        except (ValueError, TypeError):
            result = ast.literal_eval(x)
            if isinstance(result, str):
                raise ValueError("Parsed result cannot be a string") from None
            return tuple(result)


class OptionalTupleParameter(_OptionalMixin, TupleParameter):
    """A TupleParameter that defaults to None."""

    expected_type = tuple


class NumericalParameter(Parameter):
    """A number of ``var_type`` checked against ``[min_value, max_value)``.

    ``left_op`` and ``right_op`` (``operator.le``/``lt``) choose closed or open ends.
    """

    def __init__(self, default=_NO_VALUE, *, var_type=None, min_value=None,
                 max_value=None, left_op=operator.le, right_op=operator.lt, **kwargs):
        for name, value in (("var_type", var_type), ("min_value", min_value),
                            ("max_value", max_value)):
            if value is None:
                raise ParameterException(f"{name} must be specified")
        self._var_type, self._min_value, self._max_value = var_type, min_value, max_value
        self._left_op, self._right_op = left_op, right_op
        self._permitted_range = "{} in {}{}, {}{}".format(
            var_type.__name__, "[" if left_op == operator.le else "(", min_value,
            max_value, ")" if right_op == operator.lt else "]")
        super().__init__(default=default, **kwargs)
        prefix = self.description + " " if self.description else ""
        self.description = prefix + "permitted values: " + self._permitted_range

    @property
    def _expected(self):
        return self._permitted_range

    def parse(self, x):
        value = self._var_type(x)
        if self._left_op(self._min_value, value) and self._right_op(value, self._max_value):
            return value
        raise ValueError(f"{x} is not in the set of {self._permitted_range}")


class OptionalNumericalParameter(_OptionalMixin, NumericalParameter):
    """A NumericalParameter that defaults to None."""

    def __init__(self, default=_NO_VALUE, **kwargs):
        NumericalParameter.__init__(self, default=default, **kwargs)
        self.expected_type = self._var_type


class ChoiceParameter(Parameter):
    """One value out of ``choices`` (converted with ``var_type``)."""

    def __init__(self, default=_NO_VALUE, *, choices=None, var_type=str, **kwargs):
        if choices is None:
            raise ParameterException("A choices iterable must be specified")
        self._choices = set(choices)
        self._var_type = var_type
        wrong = [c for c in self._choices if type(c) is not var_type]
        if wrong:
            raise ParameterException(f"choices {wrong!r} are not of type {var_type.__name__}")
        super().__init__(default=default, **kwargs)
        prefix = self.description + " " if self.description else ""
        self.description = prefix + "Choices: {" + ", ".join(map(str, self._choices)) + "}"

    @property
    def _expected(self):
        return "one of " + ", ".join(sorted(map(str, self._choices)))

    def parse(self, x):
        return self.normalize(self._var_type(x))

    def normalize(self, x):
        if x in self._choices:
            return x
        raise ValueError(f"{x} is not a valid choice from {self._choices}")


class ChoiceListParameter(ChoiceParameter):
    """A tuple of values out of ``choices``, written comma-separated."""

    def __init__(self, default=_NO_VALUE, var_type=str, choices=None, **kwargs):
        super().__init__(default=default, var_type=var_type, choices=choices, **kwargs)

    def parse(self, x):
        return self.normalize(map(self._var_type, x.split(",") if x else []))

    def normalize(self, x):
        return tuple(ChoiceParameter.normalize(self, v) for v in x)

    def serialize(self, x):
        return ",".join(x)


class OptionalChoiceParameter(_OptionalMixin, ChoiceParameter):
    """A ChoiceParameter that defaults to None."""

    def __init__(self, default=_NO_VALUE, var_type=str, choices=None, **kwargs):
        ChoiceParameter.__init__(self, default=default, var_type=var_type,
                                 choices=choices, **kwargs)
        self.expected_type = self._var_type


class PathParameter(Parameter):
    """A ``pathlib.Path``; ``absolute=True`` resolves it, ``exists=True`` requires it."""

    _expected = "a path"

    def __init__(self, default=_NO_VALUE, *, absolute=False, exists=False, **kwargs):
        super().__init__(default=default, **kwargs)
        self.absolute = absolute
        self.exists = exists

    def normalize(self, x):
        path = pathlib.Path(x)
        if self.absolute:
            path = path.absolute()
        if self.exists and not path.exists():
            raise ValueError(f"The path {path} does not exist.")
        return path


class OptionalPathParameter(OptionalParameter, PathParameter):
    """A PathParameter that defaults to None."""

    expected_type = (str, pathlib.Path)


###########################################################################################
# Date intervals (the values of DateIntervalParameter)
###########################################################################################

class DateInterval:
    """The half-open range of dates ``[date_a, date_b)``; iterating yields each date."""

    def __init__(self, date_a, date_b):
        self.date_a = date_a
        self.date_b = date_b

    def dates(self):
        """Every date in the interval, as a list."""
        count = (self.date_b - self.date_a).days
        return [self.date_a + datetime.timedelta(days) for days in range(count)]

    def hours(self):
        """Every hour in the interval, as datetimes."""
        for date in self.dates():
            for hour in range(24):
                yield datetime.datetime.combine(date, datetime.time(hour))

    def to_string(self):
        """The interval in the form parse() reads."""
        raise NotImplementedError

    @classmethod
    def from_date(cls, d):
        """The interval of this kind containing date ``d``."""
        raise NotImplementedError

    @classmethod
    def parse(cls, s):
        """The interval written as ``s``, or None if ``s`` is not of this kind."""
        raise NotImplementedError

    def prev(self):
        """The interval of the same kind just before this one."""
        return self.from_date(self.date_a - datetime.timedelta(1))

    def next(self):
        """The interval of the same kind just after this one."""
        return self.from_date(self.date_b)

    def __str__(self):
        return self.to_string()

    __repr__ = __str__

    def __contains__(self, date):
        return self.date_a <= date < self.date_b

    def __iter__(self):
        return iter(self.dates())

    def __hash__(self):
        return hash(repr(self))

    def _key(self, other):
        if not isinstance(self, type(other)):
            raise TypeError("Date interval type mismatch")
        return (self.date_a, self.date_b), (other.date_a, other.date_b)

    def __eq__(self, other):
        if not isinstance(other, DateInterval):
            return False
        mine, theirs = self._key(other)
        return mine == theirs

    def __ne__(self, other):
        return not self == other

    def __lt__(self, other):
        mine, theirs = self._key(other)
        return mine < theirs

    def __le__(self, other):
        mine, theirs = self._key(other)
        return mine <= theirs

    def __gt__(self, other):
        mine, theirs = self._key(other)
        return mine > theirs

    def __ge__(self, other):
        mine, theirs = self._key(other)
        return mine >= theirs


class _Date(DateInterval):
    """One day, written ``YYYY-MM-DD``."""

    def __init__(self, y, m, d):
        day = datetime.date(y, m, d)
        super().__init__(day, day + datetime.timedelta(1))

    def to_string(self):
        return self.date_a.strftime("%Y-%m-%d")

    @classmethod
    def from_date(cls, d):
        return cls(d.year, d.month, d.day)

    @classmethod
    def parse(cls, s):
        if re.match(r"\d{4}-\d\d-\d\d$", s):
            return cls(*map(int, s.split("-")))
        return None


class _Week(DateInterval):
    """An ISO week, Monday to Sunday, written ``YYYY-Www``."""

    def __init__(self, y, w):
        try:
            monday = datetime.date.fromisocalendar(y, w, 1)
        except ValueError:
            raise ValueError("Invalid week") from None
        super().__init__(monday, monday + datetime.timedelta(7))

    def to_string(self):
        return "%d-W%02d" % self.date_a.isocalendar()[:2]

    @classmethod
    def from_date(cls, d):
        return cls(*d.isocalendar()[:2])

    @classmethod
    def parse(cls, s):
        if re.match(r"\d{4}-W\d\d$", s):
            return cls(*map(int, s.split("-W")))
        return None


class _Month(DateInterval):
    """A calendar month, written ``YYYY-MM``."""

    def __init__(self, y, m):
        first = datetime.date(y, m, 1)
        super().__init__(first, _add_months(first, 1))

    def to_string(self):
        return self.date_a.strftime("%Y-%m")

    @classmethod
    def from_date(cls, d):
        return cls(d.year, d.month)

    @classmethod
    def parse(cls, s):
        if re.match(r"\d{4}-\d\d$", s):
            return cls(*map(int, s.split("-")))
        return None


class _Year(DateInterval):
    """A calendar year, written ``YYYY``."""

    def __init__(self, y):
        super().__init__(datetime.date(y, 1, 1), datetime.date(y + 1, 1, 1))

    def to_string(self):
        return self.date_a.strftime("%Y")

    @classmethod
    def from_date(cls, d):
        return cls(d.year)

    @classmethod
    def parse(cls, s):
        return cls(int(s)) if re.match(r"\d{4}$", s) else None


class _Custom(DateInterval):
    """Any range of days, written ``YYYY-MM-DD-YYYY-MM-DD`` (end exclusive)."""

    def to_string(self):
        return "-".join(d.strftime("%Y-%m-%d") for d in (self.date_a, self.date_b))

    @classmethod
    def parse(cls, s):
        if re.match(r"\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d$", s):
            numbers = list(map(int, s.split("-")))
            return cls(datetime.date(*numbers[:3]), datetime.date(*numbers[3:]))
        return None


# Give the intervals Luigi's class names (they are reached as microflow.date_interval.X).
for _interval_class, _interval_name in ((_Date, "Date"), (_Week, "Week"), (_Month, "Month"),
                                        (_Year, "Year"), (_Custom, "Custom")):
    _interval_class.__name__ = _interval_class.__qualname__ = _interval_name
del _interval_class, _interval_name


###########################################################################################
# Targets and formats
###########################################################################################

class Format:
    """How bytes on disk become what ``Target.open()`` returns.

    A format wraps a binary file object for reading or writing. Formats chain with
    ``>>``: ``Gzip >> UTF8`` reads gzip-compressed bytes and decodes them as UTF-8.
    """

    binary = True   # does open() hand out bytes (True) or str (False)?

    def wrap_reader(self, raw):
        """Wrap the binary file ``raw`` for reading."""
        return raw

    def wrap_writer(self, raw):
        """Wrap the binary file ``raw`` for writing."""
        return raw

    def __rshift__(self, other):
        return _ChainFormat(self, other)


class _TextFormat(Format):
    """Text in ``encoding`` (the locale's when None) with universal newlines."""

    binary = False

    def __init__(self, encoding=None, newline=None):
        self.encoding = encoding
        self.newline = newline

    def wrap_reader(self, raw):
        return io.TextIOWrapper(raw, encoding=self.encoding, newline=self.newline)

    def wrap_writer(self, raw):
        return io.TextIOWrapper(raw, encoding=self.encoding, newline=self.newline)


class _CompressedFormat(Format):
    """Compressed bytes through the stdlib ``gzip`` or ``bz2`` module (no subprocess)."""

    def __init__(self, module_name):
        self.module_name = module_name

    def _file_class(self):
        import importlib
        module = importlib.import_module(self.module_name)
        return module.GzipFile if self.module_name == "gzip" else module.BZ2File

    def wrap_reader(self, raw):
        return _ClosingStack(self._file_class()(fileobj=raw, mode="rb")
                             if self.module_name == "gzip"
                             else self._file_class()(raw, mode="rb"), raw)

    def wrap_writer(self, raw):
        return _ClosingStack(self._file_class()(fileobj=raw, mode="wb")
                             if self.module_name == "gzip"
                             else self._file_class()(raw, mode="wb"), raw)


class _ChainFormat(Format):
    """``first >> second``: ``first`` sits next to the bytes, ``second`` on top."""

    def __init__(self, first, second):
        self.first, self.second = first, second
        self.binary = second.binary

    def wrap_reader(self, raw):
        return self.second.wrap_reader(self.first.wrap_reader(raw))

    def wrap_writer(self, raw):
        return self.second.wrap_writer(self.first.wrap_writer(raw))


class _ClosingStack(io.BufferedIOBase):
    """A gzip/bz2 file that also closes the file it sits on (they do not by themselves)."""

    def __init__(self, top, below):
        super().__init__()
        self._top, self._below = top, below

    def readable(self):
        return self._top.readable()

    def writable(self):
        return self._top.writable()

    def read(self, size=-1):
        return self._top.read(size)

    def read1(self, size=-1):
        return self._top.read1(size)

    def readinto(self, buffer):
        return self._top.readinto(buffer)

    def write(self, data):
        return self._top.write(data)

    def flush(self):
        if not self._top.closed:
            self._top.flush()

    def close(self):
        if not self.closed:
            try:
                self._top.close()
            finally:
                self._below.close()
                super().close()


#: Text in the locale's encoding (the default format).
Text = _TextFormat()
#: Text in UTF-8.
UTF8 = _TextFormat("utf-8")
#: Text in the locale's encoding, keeping the platform's line endings on write.
SysNewLine = _TextFormat(newline="")
#: Raw bytes.
Nop = Format()
#: gzip-compressed bytes (chain with ``>> UTF8`` for text).
Gzip = _CompressedFormat("gzip")
#: bzip2-compressed bytes (chain with ``>> UTF8`` for text).
Bzip2 = _CompressedFormat("bz2")


class _AtomicWriteFile:
    """What ``open("w")`` returns: writes go to a temporary, published on close.

    Closing publishes the data (``os.replace`` for files). Leaving a ``with`` block by an
    exception discards it instead, so a reader never sees half a file.
    """

    def __init__(self, stream, raw, publish, discard):
        self._stream, self._raw = stream, raw
        self._publish, self._discard = publish, discard
        self._finished = False

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __iter__(self):
        return iter(self._stream)

    def write(self, data):
        """Write ``data`` to the pending file."""
        return self._stream.write(data)

    def close(self):
        """Flush and publish the data."""
        if self._finished:
            return
        self._finished = True
        self._close_streams()
        self._publish()

    def abort(self):
        """Throw the data away; nothing is published."""
        if self._finished:
            return
        self._finished = True
        with contextlib.suppress(Exception):
            self._close_streams()
        self._discard()

    def _close_streams(self):
        try:
            self._stream.close()
        finally:
            self._raw.close()

    @property
    def closed(self):
        return self._finished

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        # Never publish from the garbage collector: data not closed is data not meant.
        if not getattr(self, "_finished", True):
            self.abort()


class Target(abc.ABC):
    """Something a task produces; ``exists()`` says whether it has been produced."""

    @abc.abstractmethod
    def exists(self):
        """True if the target exists."""


class FileSystem(abc.ABC):
    """Operations on a file system that targets live on."""

    @abc.abstractmethod
    def exists(self, path):
        """True if ``path`` exists."""

    @abc.abstractmethod
    def remove(self, path, recursive=True, skip_trash=True):
        """Remove ``path`` (a folder with everything in it when ``recursive``)."""

    def mkdir(self, path, parents=True, raise_if_exists=False):
        """Create folder ``path``."""
        raise NotImplementedError(f"{type(self).__name__} cannot make folders")

    def isdir(self, path):
        """True if ``path`` is a folder."""
        raise NotImplementedError(f"{type(self).__name__} cannot tell folders")

    def listdir(self, path):
        """The paths below ``path``."""
        raise NotImplementedError(f"{type(self).__name__} cannot list folders")

    def move(self, path, dest):
        """Move ``path`` to ``dest``."""
        raise NotImplementedError(f"{type(self).__name__} cannot move files")

    def rename_dont_move(self, path, dest):
        """Rename ``path`` to ``dest``, refusing to overwrite an existing ``dest``."""
        if self.exists(dest):
            raise FileExistsError(f"Destination exists: {dest}")
        self.move(path, dest)


class LocalFileSystem(FileSystem):
    """The local disk."""

    def exists(self, path):
        return os.path.exists(path)

    def remove(self, path, recursive=True, skip_trash=True):
        if recursive and os.path.isdir(path):
            import shutil
            shutil.rmtree(path)
        else:
            os.remove(path)

    def mkdir(self, path, parents=True, raise_if_exists=False):
        if raise_if_exists and os.path.exists(path):
            raise FileExistsError(f"Path exists: {path}")
        if parents:
            os.makedirs(path, exist_ok=True)
        elif not os.path.isdir(path):
            os.mkdir(path)

    def isdir(self, path):
        return os.path.isdir(path)

    def listdir(self, path):
        for folder, _, files in os.walk(path):
            for name in files:
                yield os.path.join(folder, name)

    def move(self, path, dest):
        """Move atomically with ``os.replace``; across devices, copy then replace."""
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        try:
            os.replace(path, dest)
        except OSError:
            import shutil
            staging = f"{dest}-microflow-tmp-{random.randrange(10**10):010d}"
            shutil.copy2(path, staging)
            os.replace(staging, dest)
            os.remove(path)

    rename = move


class FileSystemTarget(Target):
    """A target at ``path`` on some FileSystem (``fs``)."""

    def __init__(self, path):
        self.path = str(path)

    @property
    @abc.abstractmethod
    def fs(self):
        """The FileSystem this target lives on."""

    @abc.abstractmethod
    def open(self, mode="r"):
        """Open the target for reading (``"r"``) or atomic writing (``"w"``)."""

    def exists(self):
        if any(char in self.path for char in "*?["):
            warnings.warn(f"Using wildcards in path {self.path} might lead to processing "
                          f"of an incomplete dataset; override exists() to suppress "
                          f"the warning.")
        return self.fs.exists(self.path)

    def remove(self):
        """Remove the target."""
        self.fs.remove(self.path)

    @contextlib.contextmanager
    def temporary_path(self):
        """Yield a temporary path to write to; it becomes ``path`` if the block succeeds.

        The parent folder is created. After an exception nothing is moved and the
        temporary is removed.
        """
        slash = "/" if self.path.endswith("/") else ""
        temporary = f"{self.path.rstrip('/')}-microflow-tmp-{random.randrange(10**10):010d}"
        parent = os.path.dirname(temporary)
        if parent:
            with contextlib.suppress(NotImplementedError):
                self.fs.mkdir(parent, parents=True, raise_if_exists=False)
        try:
            yield temporary + slash
        except BaseException:
            if self.fs.exists(temporary):
                self.fs.remove(temporary)
            raise
        self.fs.rename_dont_move(temporary, self.path)

    def __repr__(self):
        return f"{type(self).__name__}({self.path!r})"


class LocalTarget(FileSystemTarget):
    """A file on the local disk, written atomically.

    ``open("w")`` writes to ``<path>-microflow-tmp-<random>`` in the same folder and
    ``os.replace``s it onto ``path`` on close; an exception inside ``with`` publishes
    nothing and leaves no temporary. Parent folders are created. ``format`` decides
    what ``open`` hands out (default: text); a ``"b"`` in the mode with no format means
    bytes. ``is_tmp=True`` picks a fresh temporary path, removed when the target dies.
    """

    fs = LocalFileSystem()

    def __init__(self, path=None, format=None, is_tmp=False):
        if path is None:
            if not is_tmp:
                raise ValueError("LocalTarget needs a path, or is_tmp=True")
            import tempfile
            path = os.path.join(tempfile.gettempdir(),
                                f"microflow-tmp-{random.randrange(10**10):010d}")
        super().__init__(path)
        self.format = format
        self.is_tmp = is_tmp

    def _format_for(self, mode):
        if self.format is not None:
            return self.format
        return Nop if "b" in mode else Text

    def open(self, mode="r"):
        """Open for reading (``"r"``, ``"rb"``) or atomic writing (``"w"``, ``"wb"``)."""
        kind = mode.replace("b", "").replace("t", "")
        if kind == "r":
            return self._format_for(mode).wrap_reader(io.open(self.path, "rb"))
        if kind != "w":
            raise ValueError(f"LocalTarget({self.path!r}).open: unsupported mode {mode!r}; "
                             f"use 'r', 'w', 'rb' or 'wb'")
        return self._open_atomic(self._format_for(mode))

    def _open_atomic(self, file_format):
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        temporary = f"{self.path}-microflow-tmp-{random.randrange(10**9):09d}"
        raw = io.open(temporary, "wb")

        def discard():
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)
        try:
            stream = file_format.wrap_writer(raw)
        except BaseException:
            raw.close()
            discard()
            raise
        final = self.path   # not self: the open file must not keep the target alive
        return _AtomicWriteFile(stream, raw, lambda: os.replace(temporary, final), discard)

    def makedirs(self):
        """Create the folder that will hold this target."""
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)

    def move(self, new_path, raise_if_exists=False):
        """Move the file to ``new_path``."""
        if raise_if_exists and os.path.exists(new_path):
            raise FileExistsError(f"Destination exists: {new_path}")
        self.fs.move(self.path, new_path)

    def move_dir(self, new_path):
        """Move the folder to ``new_path``."""
        self.move(new_path)

    def copy(self, new_path, raise_if_exists=False):
        """Copy the file to ``new_path``."""
        import shutil
        if raise_if_exists and os.path.exists(new_path):
            raise FileExistsError(f"Destination exists: {new_path}")
        os.makedirs(os.path.dirname(os.path.abspath(new_path)), exist_ok=True)
        shutil.copy(self.path, new_path)

    def __del__(self):
        if getattr(self, "is_tmp", False) and os.path.exists(self.path):
            with contextlib.suppress(OSError):
                self.fs.remove(self.path)


class _KeptBytesIO(io.BytesIO):
    """A BytesIO whose content survives close(), for MockTarget writes."""

    def close(self):
        if not self.closed:
            self.kept = self.getvalue()
        super().close()


class MockFileSystem(FileSystem):
    """An in-memory file system shared by every MockTarget in the process."""

    _data = {}
    _lock = threading.Lock()

    def exists(self, path):
        return path in self._data

    def remove(self, path, recursive=True, skip_trash=True):
        with self._lock:
            prefix = path.rstrip("/") + "/"
            for key in [k for k in self._data if k == path or (recursive and
                                                                k.startswith(prefix))]:
                del self._data[key]

    def mkdir(self, path, parents=True, raise_if_exists=False):
        """Folders are implicit in a mock file system."""

    def isdir(self, path):
        prefix = path.rstrip("/") + "/"
        return any(k.startswith(prefix) for k in self._data)

    def listdir(self, path):
        prefix = path.rstrip("/") + "/"
        return [k for k in self._data if k.startswith(prefix)]

    def move(self, path, dest):
        with self._lock:
            self._data[dest] = self._data.pop(path)

    def get_all_data(self):
        """The dict of path to bytes behind every MockTarget."""
        return self._data

    def get_data(self, path):
        """The bytes stored at ``path``."""
        return self._data[path]

    def clear(self):
        """Forget every file."""
        with self._lock:
            self._data.clear()


class MockTarget(FileSystemTarget):
    """An in-memory target for unit tests; writes are published on close, like files."""

    fs = MockFileSystem()

    def __init__(self, fn, is_tmp=None, mirror_on_stderr=False, format=None):
        super().__init__(fn)
        self.format = format
        self._mirror_on_stderr = mirror_on_stderr

    def _format_for(self, mode):
        if self.format is not None:
            return self.format
        return Nop if "b" in mode else UTF8

    def open(self, mode="r"):
        """Open for reading (``"r"``, ``"rb"``) or writing (``"w"``, ``"wb"``)."""
        kind = mode.replace("b", "").replace("t", "")
        if kind == "r":
            if self.path not in self.fs._data:
                raise FileNotFoundError(f"MockTarget {self.path!r} does not exist")
            return self._format_for(mode).wrap_reader(io.BytesIO(self.fs._data[self.path]))
        if kind != "w":
            raise ValueError(f"MockTarget({self.path!r}).open: unsupported mode {mode!r}")
        raw = _KeptBytesIO()

        def publish():
            with self.fs._lock:
                self.fs._data[self.path] = raw.kept
            if self._mirror_on_stderr:
                sys.stderr.write(raw.kept.decode("utf-8", "replace"))
        return _AtomicWriteFile(self._format_for(mode).wrap_writer(raw), raw, publish,
                                lambda: None)

    def move(self, new_path, raise_if_exists=False):
        """Move the data to ``new_path``."""
        if raise_if_exists and self.fs.exists(new_path):
            raise FileExistsError(f"Destination exists: {new_path}")
        self.fs.move(self.path, new_path)


###########################################################################################
# Tasks: registry, task ids, dependency flattening
###########################################################################################

class Event:
    """Names of the events a task class can register handlers for.

    Register with ``@MyTask.event_handler(Event.SUCCESS)``; a handler that raises is
    logged and never breaks the run.
    """

    DEPENDENCY_DISCOVERED = "event.core.dependency.discovered"  # (task, dependency)
    DEPENDENCY_MISSING = "event.core.dependency.missing"        # (task)
    DEPENDENCY_PRESENT = "event.core.dependency.present"        # (task)
    BROKEN_TASK = "event.core.task.broken"                      # (task, exception)
    START = "event.core.start"                                  # (task)
    PROGRESS = "event.core.progress"                            # user-defined
    FAILURE = "event.core.failure"                              # (task, exception)
    SUCCESS = "event.core.success"                              # (task)
    PROCESSING_TIME = "event.core.processing_time"              # (task, seconds)
    TIMEOUT = "event.core.timeout"                              # (task, message)
    PROCESS_FAILURE = "event.core.process_failure"              # (task, message)


def task_id_str(task_family, params):
    """The task id Luigi computes for ``task_family`` and ``{name: serialized value}``.

    ``Family_<first three values by name, 16 chars each>_<md5 prefix>``, where every
    character outside ``[A-Za-z0-9_]`` in the middle part becomes ``_``.
    """
    canonical = json.dumps(params, separators=(",", ":"), sort_keys=True)
    digest = hashlib.md5(canonical.encode("utf-8")).hexdigest()
    summary = "_".join(params[name][:_TASK_ID_TRUNCATE_PARAMS]
                       for name in sorted(params)[:_TASK_ID_INCLUDE_PARAMS])
    summary = _TASK_ID_INVALID_CHAR.sub("_", summary)
    return f"{task_family}_{summary}_{digest[:_TASK_ID_TRUNCATE_HASH]}"


class _Registry:
    """Every task class, the namespaces in force, and the instance cache.

    One small object rather than scattered globals, so a test can reset it whole.
    """

    AMBIGUOUS = object()

    def __init__(self):
        self.classes = []
        self.namespaces = {}          # module prefix -> namespace
        self.instance_cache = {}      # (class, parameter values) -> task; None: disabled
        self.generation = 0           # bumped when a class gains or loses a Parameter
        self._by_family = None        # family -> class, rebuilt when classes change

    def add(self, cls):
        self.classes.append(cls)
        self._by_family = None

    def namespace_for(self, module_name):
        """The namespace registered for the most specific prefix of ``module_name``."""
        parts = module_name.split(".")
        for end in range(len(parts), 0, -1):
            entry = self.namespaces.get(".".join(parts[:end]))
            if entry:
                return entry
        return self.namespaces.get("", "") or ""

    def by_family(self):
        """Map family name to class; unrelated classes sharing a name are AMBIGUOUS."""
        if self._by_family is None:
            table = {}
            for cls in self.classes:
                if not cls._visible_in_registry:
                    continue
                family = cls.get_task_family()
                known = table.get(family)
                if known is not None and (known is self.AMBIGUOUS
                                          or not issubclass(cls, known)):
                    table[family] = self.AMBIGUOUS
                else:
                    table[family] = cls
            self._by_family = table
        return self._by_family

    def get(self, name):
        """The task class called ``name``: a family, ``module:Class`` or ``module.Family``.

        Raises TaskClassNotFoundException (with suggestions) or
        TaskClassAmbigiousException.
        """
        if ":" in name:
            return self._import_class(name)
        found = self.by_family().get(name)
        if found is None and "." in name:
            found = self._import_family(name)
        if found is None:
            raise TaskClassNotFoundException(self._missing_message(name))
        if found is self.AMBIGUOUS:
            raise TaskClassAmbigiousException(
                f"Task {name!r} is ambiguous: several unrelated classes have that family; "
                f"give a namespace or load it as module:Class")
        return found

    def _import_class(self, spec):
        try:
            cls = _import_object(spec)
        except (ImportError, AttributeError) as exc:
            raise TaskClassNotFoundException(f"No task {spec!r}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TaskClassNotFoundException(f"{spec!r} is not a Task subclass")
        return cls

    def _import_family(self, name):
        """Try ``pkg.mod.Family``: import ``pkg.mod`` and look again."""
        import importlib
        module_name, _, attr = name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return None
        self._by_family = None
        found = self.by_family().get(name) or self.by_family().get(attr)
        candidate = getattr(module, attr, None)
        if found is None and isinstance(candidate, type) and issubclass(candidate, Task):
            found = candidate
        return found

    def _missing_message(self, name):
        close = _suggestions(name, [f for f, c in self.by_family().items()
                                    if c is not self.AMBIGUOUS])
        if close:
            return f"No task {name}. Did you mean: {', '.join(close)}?"
        return f"No task {name}. Candidates are: {','.join(sorted(self.by_family()))}"


_REGISTRY = _Registry()


class Register(abc.ABCMeta):
    """The metaclass of every Task: registers the class and caches instances.

    ``T(1) is T(n=1)``: instances with the same parameter values are the same object
    (values that cannot be hashed bypass the cache).
    """

    AMBIGUOUS_CLASS = _Registry.AMBIGUOUS

    def __new__(mcs, classname, bases, classdict, **kwargs):
        cls = super().__new__(mcs, classname, bases, classdict, **kwargs)
        cls._namespace_at_class_time = _REGISTRY.namespace_for(cls.__module__)
        _REGISTRY.add(cls)
        return cls

    def __setattr__(cls, name, value):
        # get_params() is cached per class; a Parameter added later (as @inherits does)
        # must invalidate every cached list.
        if isinstance(value, Parameter) or isinstance(getattr(cls, name, None), Parameter):
            _REGISTRY.generation += 1
            if hasattr(value, "__set_name__"):
                value.__set_name__(cls, name)
        if name in ("task_namespace", "_visible_in_registry"):
            _REGISTRY.generation += 1
            _REGISTRY._by_family = None
        super().__setattr__(name, value)

    def __call__(cls, *args, **kwargs):
        params = cls.get_params()
        values = cls.get_param_values(params, args, kwargs)
        cache = _REGISTRY.instance_cache
        if cache is None:
            return cls._instantiate(values, args, kwargs)
        key = (cls, tuple(values))
        try:
            task = cache.get(key)
        except TypeError:   # an unhashable value: no caching for this one
            return cls._instantiate(values, args, kwargs)
        if task is None:
            task = cache[key] = cls._instantiate(values, args, kwargs)
        return task

    def _instantiate(cls, values, args, kwargs):
        if cls.__init__ is Task.__init__:
            # Fast path: the values are resolved already, don't resolve them twice.
            task = cls.__new__(cls)
            task._set_param_values(values)
            return task
        return super().__call__(*args, **kwargs)

    @property
    def task_family(cls):
        """The family name: ``ClassName`` or ``namespace.ClassName``."""
        return cls.get_task_family()

    # -- Luigi's class-level registry API --------------------------------------------

    @classmethod
    def clear_instance_cache(mcs):
        """Forget every cached task instance."""
        _REGISTRY.instance_cache = {}

    @classmethod
    def disable_instance_cache(mcs):
        """Stop caching task instances (every call builds a new one)."""
        _REGISTRY.instance_cache = None

    @classmethod
    def get_task_cls(mcs, name):
        """The task class for a family name, ``module:Class`` or ``module.Family``."""
        return _REGISTRY.get(name)

    @classmethod
    def task_names(mcs):
        """Every registered family name, sorted."""
        return sorted(_REGISTRY.by_family())

    @classmethod
    def tasks_str(mcs):
        """The registered family names, comma-separated."""
        return ",".join(mcs.task_names())

    @classmethod
    def _get_reg(mcs):
        return dict(_REGISTRY.by_family())

    @classmethod
    def _set_reg(mcs, reg):
        _REGISTRY.classes = [c for c in reg.values() if c is not _REGISTRY.AMBIGUOUS]
        _REGISTRY._by_family = None

    @classmethod
    def get_all_params(mcs):
        """Yield ``(family, is_without_section, param_name, param)`` for every task."""
        for family, cls in _REGISTRY.by_family().items():
            if cls is _REGISTRY.AMBIGUOUS:
                continue
            for name, param in cls.get_params():
                yield family, not cls.use_cmdline_section, name, param


def namespace(namespace=None, scope=""):
    """Put task classes defined from now on (in modules under ``scope``) in ``namespace``.

    A class's own ``task_namespace`` attribute wins over this.
    """
    _REGISTRY.namespaces[scope] = namespace or ""


def auto_namespace(scope=""):
    """Like :func:`namespace`, with each class's ``__module__`` as its namespace."""
    namespace(namespace=_SAME_AS_PYTHON_MODULE, scope=scope)


def flatten(struct):
    """A flat list of the items in nested dicts (values), lists, tuples and iterables.

    Strings are atoms and ``None`` is ``[]``: ``flatten({"a": [1, (2,)]}) == [1, 2]``.
    """
    if struct is None:
        return []
    if isinstance(struct, dict):
        struct = struct.values()
    elif isinstance(struct, str):
        return [struct]
    try:
        iterator = iter(struct)
    except TypeError:
        return [struct]
    flat = []
    for item in iterator:
        flat.extend(flatten(item))
    return flat


def getpaths(struct):
    """Replace every Task in a nested dict/list/tuple with its ``output()``."""
    if isinstance(struct, Task):
        return struct.output()
    if isinstance(struct, dict):
        return type(struct)((key, getpaths(value)) for key, value in struct.items())
    if isinstance(struct, (list, tuple)):
        return type(struct)(getpaths(item) for item in struct)
    try:
        return [getpaths(item) for item in struct]
    except TypeError:
        raise TypeError(f"Cannot map {struct} to Task/dict/list") from None


_NOT_USER_SPECIFIED = "__not_user_specified"


class Task(metaclass=Register):
    """A unit of work: override ``requires()``, ``output()`` and ``run()``.

    Declare Parameters as class attributes; each distinct set of values is a distinct
    task, identified by ``task_id``. The class attributes ``priority``, ``resources``,
    ``worker_timeout``, ``retry_count``, ``disabled`` and ``accepts_messages`` guide the
    scheduler.
    """

    _event_callbacks = {}

    #: Higher runs first; dependencies inherit the priority of what needs them.
    priority = 0
    #: A disabled task is never run.
    disabled = False
    #: Resources held while running, e.g. ``{"db": 1}``; capacities come from [resources].
    resources = {}
    #: Seconds after which run() is stopped (None: the [worker] timeout).
    worker_timeout = None
    #: How many tasks may run together as a batch.
    max_batch_size = float("inf")
    #: May the scheduler send messages to the running task?
    accepts_messages = False
    #: Namespace of this class and its subclasses (unset: from namespace()).
    task_namespace = _NOT_USER_SPECIFIED
    _visible_in_registry = True
    _namespace_at_class_time = ""
    # Set by the worker while run() executes; None outside it.
    set_tracking_url = None
    set_status_message = None
    set_progress_percentage = None

    # -- retry policy and ownership (properties, so subclasses may compute them) -------

    @property
    def retry_count(self):
        """Failures allowed inside ``disable_window`` before the task is disabled."""
        return None

    @property
    def disable_hard_timeout(self):
        """Seconds after the first failure after which the task is disabled."""
        return None

    @property
    def disable_window(self):
        """Seconds over which failures are counted against ``retry_count``."""
        return None

    @property
    def owner_email(self):
        """Address(es) told about this task's failures, besides the configured ones."""
        return None

    def _owner_list(self):
        owners = self.owner_email
        if owners is None:
            return []
        return owners.split(",") if isinstance(owners, str) else list(owners)

    @property
    def use_cmdline_section(self):
        """False for Config classes whose flags take no ``--Family-`` prefix."""
        return True

    @property
    def batchable(self):
        """True when a parameter has a ``batch_method``."""
        return bool(self.batch_param_names())

    @property
    def task_module(self):
        """The module to import to get this class."""
        return type(self).__module__

    # -- names ---------------------------------------------------------------------------

    @classmethod
    def get_task_namespace(cls):
        """The namespace: ``task_namespace`` if set, else the one from namespace()."""
        if cls.task_namespace != _NOT_USER_SPECIFIED:
            return cls.task_namespace
        if cls._namespace_at_class_time == _SAME_AS_PYTHON_MODULE:
            return cls.__module__
        return cls._namespace_at_class_time

    @classmethod
    def get_task_family(cls):
        """``ClassName``, or ``namespace.ClassName`` when there is a namespace."""
        space = cls.get_task_namespace()
        return f"{space}.{cls.__name__}" if space else cls.__name__

    @property
    def task_family(self):
        """This task's family name."""
        return type(self).get_task_family()

    # -- parameters ------------------------------------------------------------------------

    @classmethod
    def get_params(cls):
        """Every ``(name, Parameter)`` of the class, in declaration order."""
        cached = cls.__dict__.get("_params_cache")
        if cached is not None and cached[0] == _REGISTRY.generation:
            return cached[1]
        params = [(name, value) for name in dir(cls)
                  for value in (getattr(cls, name, None),) if isinstance(value, Parameter)]
        params.sort(key=lambda pair: pair[1]._counter)
        type.__setattr__(cls, "_params_cache", (_REGISTRY.generation, params))
        return params

    @classmethod
    def get_param_names(cls, include_significant=False):
        """Names of the significant parameters (all of them with include_significant)."""
        return [name for name, p in cls.get_params() if include_significant or p.significant]

    @classmethod
    def batch_param_names(cls):
        """Names of the parameters that have a ``batch_method``."""
        return [name for name, p in cls.get_params() if p._is_batchable()]

    @classmethod
    def get_param_values(cls, params, args, kwargs):
        """Resolve every parameter: positional, keyword, command line, config, default.

        Returns a list of ``(name, normalized value)`` in declaration order. Raises
        UnknownParameterException, DuplicateParameterException,
        MissingParameterException or ParameterParseError naming the task.
        """
        family = cls.get_task_family()
        result = {}
        positional = [pair for pair in params if pair[1].positional]
        if len(args) > len(positional):
            raise UnknownParameterException(
                f"{cls._call_text(args, kwargs)}: takes at most {len(positional)} "
                f"positional parameters ({len(args)} given)")
        for (name, param), value in zip(positional, args):
            result[name] = cls._normalize(family, name, param, value)
        declared = dict(params)
        for name, value in kwargs.items():
            if name in result:
                raise DuplicateParameterException(
                    f"{cls._call_text(args, kwargs)}: parameter {name} was already set "
                    f"as a positional parameter")
            if name not in declared:
                raise UnknownParameterException(cls._unknown_text(name, args, kwargs))
            result[name] = cls._normalize(family, name, declared[name], value)
        for name, param in params:
            if name not in result:
                result[name] = cls._value_outside_constructor(family, name, param,
                                                              args, kwargs)
        cls._warn_unconsumed_config(family, declared)
        return [(name, _list_to_tuple(result[name])) for name, _ in params]

    @classmethod
    def _normalize(cls, family, name, param, value):
        try:
            return param.normalize(value)
        except (ValueError, TypeError) as exc:
            raise ParameterParseError(f"{family}: parameter '{name}' expects "
                                      f"{param._expected}, got {value!r}: {exc}") from None

    @classmethod
    def _value_outside_constructor(cls, family, name, param, args, kwargs):
        value = param._value_from_sources(family, name)
        if value is _NO_VALUE:
            raise MissingParameterException(
                f"{cls._call_text(args, kwargs)}: requires the '{name}' parameter to be "
                f"set ({param._expected}); pass {name}=..., --{family}-"
                f"{name.replace('_', '-')} on the command line, or [{family}] {name} "
                f"in config")
        return cls._normalize(family, name, param, value)

    @classmethod
    def _call_text(cls, args, kwargs):
        return f"{cls.get_task_family()}[args={args}, kwargs={kwargs}]"

    @classmethod
    def _unknown_text(cls, name, args, kwargs):
        known = [n for n, _ in cls.get_params()]
        close = _suggestions(name, known)
        hint = f"; did you mean {' or '.join(close)}?" if close else (
            f"; it takes {', '.join(known)}" if known else "; it takes no parameters")
        return f"{cls._call_text(args, kwargs)}: unknown parameter {name}{hint}"

    @classmethod
    def _warn_unconsumed_config(cls, family, declared):
        parser = get_config()
        if not parser.has_section(family):
            return
        seen = cls.__dict__.get("_unconsumed_seen")
        if seen is None or seen[0] != _CONFIG.generation:
            seen = (_CONFIG.generation, set())
            type.__setattr__(cls, "_unconsumed_seen", seen)
        ignore = getattr(cls, "ignore_unconsumed", set())
        for key in parser.options(family):
            key = key.replace("-", "_")
            if key not in declared and key not in ignore and key not in seen[1]:
                seen[1].add(key)
                warnings.warn(f"The configuration contains the parameter '{key}' with "
                              f"value '{parser.get(family, key, raw=True)}' that is not "
                              f"consumed by the task '{family}'.",
                              UnconsumedParameterWarning)

    def __init__(self, *args, **kwargs):
        self._set_param_values(self.get_param_values(self.get_params(), args, kwargs))

    def _set_param_values(self, values):
        params = dict(self.get_params())
        self.__dict__.update(values)
        self.param_kwargs = dict(values)
        for name, value in values:
            params[name]._warn_on_wrong_param_type(name, value)
        self.task_id = task_id_str(self.get_task_family(),
                                   self.to_str_params(only_significant=True,
                                                      only_public=True))
        self._hash = hash(self.task_id)

    def initialized(self):
        """True once the constructor has run."""
        return "task_id" in self.__dict__

    @classmethod
    def from_str_params(cls, params_str):
        """Build a task from ``{name: string}``; a list value is parsed as a batch."""
        family = cls.get_task_family()
        kwargs = {}
        for name, param in cls.get_params():
            if name in params_str:
                raw = params_str[name]
                if isinstance(raw, list):
                    kwargs[name] = param._parse_list(raw)
                else:
                    kwargs[name] = param._parse_for(family, name, raw, "string parameters")
        return cls(**kwargs)

    def to_str_params(self, only_significant=False, only_public=False):
        """``{name: serialized value}``; PRIVATE parameters are always left out."""
        params = dict(self.get_params())
        result = {}
        for name, value in self.param_kwargs.items():
            param = params[name]
            if param.visibility == ParameterVisibility.PRIVATE:
                continue
            if only_significant and not param.significant:
                continue
            if only_public and param.visibility != ParameterVisibility.PUBLIC:
                continue
            result[name] = param.serialize(value)
        return result

    def _get_param_visibilities(self):
        return {name: param.visibility.serialize() for name, param in self.get_params()
                if param.visibility != ParameterVisibility.PRIVATE}

    def clone(self, cls=None, **kwargs):
        """A task of ``cls`` (default: this class) with every same-named parameter
        copied from this one, ``kwargs`` overriding."""
        cls = type(self) if cls is None else cls
        values = {}
        for name, _ in cls.get_params():
            if name in kwargs:
                values[name] = kwargs[name]
            elif name in self.param_kwargs:
                values[name] = self.param_kwargs[name]
        return cls(**values)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return type(self) is type(other) and self.task_id == other.task_id

    def __repr__(self):
        params = dict(self.get_params())
        shown = ", ".join(f"{name}={params[name].serialize(value)}"
                          for name, value in self.param_kwargs.items()
                          if params[name].significant)
        return f"{self.get_task_family()}({shown})"

    # -- events ----------------------------------------------------------------------------

    @classmethod
    def event_handler(cls, event):
        """Decorator registering a callback for ``event`` on this class (and subclasses)."""
        def register(callback):
            cls._event_callbacks.setdefault(cls, {}).setdefault(event, set()).add(callback)
            return callback
        return register

    @classmethod
    def remove_event_handler(cls, event, callback):
        """Unregister a callback added with :meth:`event_handler`."""
        cls._event_callbacks[cls][event].remove(callback)

    def trigger_event(self, event, *args, **kwargs):
        """Call every handler for ``event`` registered on a class this task is an
        instance of; a handler that raises is logged, never propagated."""
        for event_class, callbacks in list(self._event_callbacks.items()):
            if not isinstance(self, event_class):
                continue
            for callback in list(callbacks.get(event, ())):
                try:
                    callback(*args, **kwargs)
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    _log.exception("Error in event callback for %r", event)

    # -- the user's part ---------------------------------------------------------------

    def requires(self):
        """The tasks this one needs: a Task, or a list/dict/tuple of them."""
        return []

    def output(self):
        """The Target(s) this task produces."""
        return []

    def run(self):
        """Do the work. May ``yield`` tasks to add dependencies while running."""

    def complete(self):
        """True when every output exists. A task with no outputs is never complete."""
        outputs = flatten(self.output())
        if not outputs:
            warnings.warn(f"Task {self!r} without outputs has no custom complete() method",
                          stacklevel=2)
            return False
        return all(output.exists() for output in outputs)

    def input(self):
        """The outputs of ``requires()``, in the same structure."""
        return getpaths(self.requires())

    def deps(self):
        """The direct dependencies as a flat list (used by the worker)."""
        return flatten(self._requires())

    def _requires(self):
        return flatten(self.requires())

    def process_resources(self):
        """The resources to hold while running (``resources`` by default)."""
        return self.resources

    def on_failure(self, exception):
        """What to report when run() raises; default: the traceback."""
        import traceback
        return "Runtime error:\n" + traceback.format_exc()

    def on_success(self):
        """What to report when run() succeeds; default: nothing."""
        return None

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        """Those of ``parameter_tuples`` whose tasks are complete (for range tools)."""
        raise NotImplementedError(f"{cls.get_task_family()} has no bulk_complete")


def _list_to_tuple(value):
    return tuple(value) if isinstance(value, (list, set)) else value


class ExternalTask(Task):
    """Data made outside microflow: never run, only checked with ``complete()``."""

    run = None


class WrapperTask(Task):
    """A task that only groups others: complete when all its requirements are."""

    def complete(self):
        return all(required.complete() for required in self.deps())


class Config(Task):
    """A bag of parameters read from the command line or a ``[ClassName]`` section."""


def externalize(taskclass_or_taskobject):
    """An external copy of a task class or instance: same family and id, no run()."""
    import copy
    if isinstance(taskclass_or_taskobject, Task):
        copied = copy.copy(taskclass_or_taskobject)
        copied.run = None
        return copied
    cls = taskclass_or_taskobject
    copied = Register(cls.__name__, (cls,), {"run": None, "__module__": cls.__module__,
                                             "__doc__": cls.__doc__,
                                             "_visible_in_registry": False})
    copied._namespace_at_class_time = cls._namespace_at_class_time
    copied.__qualname__ = cls.__qualname__
    return copied


def load_task(module, task_name, params_str):
    """Import ``module`` (if given) and build ``task_name`` from string parameters."""
    if module is not None:
        __import__(module)
    return Register.get_task_cls(task_name).from_str_params(params_str)


def inherits(*tasks_to_inherit, **kw_tasks_to_inherit):
    """Class decorator: copy the parameters of the given tasks onto the class.

    Adds ``clone_parent()`` (the first task, built with this task's values) and
    ``clone_parents()`` (all of them, a dict when given by keyword). Raises TypeError if
    no task, or both positional and keyword tasks, are given.
    """
    if not tasks_to_inherit and not kw_tasks_to_inherit:
        raise TypeError("tasks_to_inherit or kw_tasks_to_inherit must contain at least "
                        "one task")
    if tasks_to_inherit and kw_tasks_to_inherit:
        raise TypeError("Only one of tasks_to_inherit or kw_tasks_to_inherit may be present")

    def decorate(task_class):
        for parent in tasks_to_inherit or kw_tasks_to_inherit.values():
            for name, param in parent.get_params():
                if not hasattr(task_class, name):
                    setattr(task_class, name, param)
        if tasks_to_inherit:
            task_class.clone_parent = lambda self, **kw: self.clone(tasks_to_inherit[0], **kw)
            task_class.clone_parents = lambda self, **kw: [self.clone(parent, **kw)
                                                           for parent in tasks_to_inherit]
        else:
            task_class.clone_parents = lambda self, **kw: {
                key: self.clone(parent, **kw) for key, parent in kw_tasks_to_inherit.items()}
        return task_class
    return decorate


def requires(*tasks_to_require, **kw_tasks_to_require):
    """Class decorator: :func:`inherits` the tasks and require them from ``requires()``.

    One task gives ``requires() -> clone_parent()``; several give a list, keywords a dict.
    """
    inherit = inherits(*tasks_to_require, **kw_tasks_to_require)

    def decorate(task_class):
        task_class = inherit(task_class)
        if len(tasks_to_require) == 1:
            task_class.requires = lambda self: self.clone_parent()
        else:
            task_class.requires = lambda self: self.clone_parents()
        return task_class
    return decorate


def common_params(task_instance, task_cls):
    """The parameter values of ``task_instance`` that ``task_cls`` also declares."""
    if not isinstance(task_cls, Register):
        raise TypeError("task_cls must be an uninstantiated Task")
    names = set(dict(task_cls.get_params())) & set(task_instance.param_kwargs)
    return {name: task_instance.param_kwargs[name] for name in names}


###########################################################################################
# Luigi compatibility namespaces: luigi.util.requires, luigi.format.Gzip, ...
###########################################################################################

def _namespace(name, **members):
    space = types.SimpleNamespace(**members)
    space.__name__ = f"{__name__}.{name}"
    return space


configuration = _namespace("configuration", get_config=get_config,
                           LuigiConfigParser=_ConfigParser)
date_interval = _namespace("date_interval", DateInterval=DateInterval, Date=_Date,
                           Week=_Week, Month=_Month, Year=_Year, Custom=_Custom)
event = _namespace("event", Event=Event)
# Named like Luigi's module; microflow itself never calls the builtin format().
format = _namespace("format", Format=Format, Text=Text, UTF8=UTF8, Nop=Nop, Gzip=Gzip,
                    Bzip2=Bzip2, SysNewLine=SysNewLine, TextFormat=_TextFormat)
mock = _namespace("mock", MockTarget=MockTarget, MockFileSystem=MockFileSystem)
parameter = _namespace("parameter", **{name: value for name, value in globals().items()
                                       if name.endswith(("Parameter", "Exception"))
                                       and isinstance(value, type)},
                       ParameterVisibility=ParameterVisibility)
target = _namespace("target", Target=Target, FileSystem=FileSystem,
                    FileSystemTarget=FileSystemTarget)
task = _namespace("task", Task=Task, ExternalTask=ExternalTask, WrapperTask=WrapperTask,
                  Config=Config, flatten=flatten, getpaths=getpaths,
                  externalize=externalize, namespace=namespace,
                  auto_namespace=auto_namespace, task_id_str=task_id_str)
task_register = _namespace("task_register", Register=Register, load_task=load_task,
                           TaskClassException=TaskClassException,
                           TaskClassNotFoundException=TaskClassNotFoundException,
                           TaskClassAmbigiousException=TaskClassAmbigiousException)
util = _namespace("util", requires=requires, inherits=inherits,
                  common_params=common_params)
