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

Sections, in order, each under a banner of its own (a test keeps this list true):
    Constants
    Exceptions
    Private helpers
    Configuration
    Parameters
    Parameters: dates, times, intervals, tasks, enums, collections, choices, paths
    Date intervals (the values of DateIntervalParameter)
    Targets and formats
    Targets: atomic files, the local and the mock file systems
    Tasks: registry, task ids, dependency flattening
    Tasks: the Task class, and inherits, requires, copies, delegates
    Backfill ranges: RangeDaily, RangeHourly, RangeByMinutes, RangeMonthly (Luigi's tools)
    Error e-mails: Luigi's [email], [smtp] and [batch_email] settings and message format
    Scheduler records: its options, and what it knows of each task, worker and resource
    Scheduler core: a pure state machine
    Scheduler: batches
    Scheduler: the calls workers make
    Scheduler: read-only views (the visualiser's API)
    Scheduler: what changed since a version (the status page's live view)
    Scheduler: administration
    Scheduler: task history in SQLite (Luigi's tables, without SQLAlchemy)
    Scheduler: durable state (snapshot, restore, the state file)
    Scheduler: e-mails
    Scheduler: the last layer
    Worker: running one task (its outcome, dynamic dependencies)
    Worker: runners, and both sides of the process pool
    Worker: the run's record, the session, retries and the graph walk
    Worker: the run loop
    Remote scheduler: a pure dispatch and the HTTP server
    Remote scheduler: the client, over a small HTTP/1.1 exchange of its own
    Seeing a run: Prometheus metrics and the status page, served by SchedulerServer
    Run summary, build() and exit codes
    Planning: what a build would do (--dry-run), and the dependency tree (--tree)
    Triggering: pid locks, and builds --every interval or on a --cron schedule
    Command line: python -m microflow [--module pkg.mod] Task [--param value] ..., parsed
    Command line: logging, run(), main(), luigid
    Luigi's worker and scheduler helpers, for libraries that bring a worker of their own
    Luigi's process, lock, rpc fetchers, and tools (deps, deps_tree, luigi_grep)
    Luigi's module paths: microflow.util, microflow.tools.range, ..., and install_as_luigi()
    The status page's HTML (the largest constant, kept last)

Data flow::

    Task --requires()--> Worker --add_task/get_work--> Scheduler (in-memory)
                          |  ^                   or RemoteScheduler --HTTP--> SchedulerServer
                 start()  v  | collect()                                      -> Scheduler
                         runner (inline | process pool | threads | executor)

To vendor: copy this one file into your project and keep this header.
License: Apache-2.0.
"""

from __future__ import annotations

import abc
import bisect
import collections
import configparser
import contextlib
import datetime
import enum
import heapq
import io
import itertools
import json
import operator
import os
import re
import sys
import threading
import time
import types
import warnings
from collections.abc import Mapping

# What type checkers (mypy, pyright) read, and run time never imports: typing costs
# more to import than a fifth of this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import http.server
    import logging
    import pathlib
    from collections.abc import Callable, Container, Iterable, Iterator, Sequence
    from typing import (IO, Any, Generic as _Generic, Literal, Optional, Protocol, TypeVar,
                        overload)

    # What a parameter's value is (a TypeVar default: pyright asks 3.13 of it, mypy not).
    _T = TypeVar("_T", default=str)   # pyright: ignore[reportGeneralTypeIssues]
    _E = TypeVar("_E", bound=enum.Enum)
    _P = TypeVar("_P", bound="Parameter[Any]")
    _S = TypeVar("_S")
    _K = TypeVar("_K", bound="Task")
    _D = TypeVar("_D", bound=datetime.date)
    _F = TypeVar("_F", bound=Callable[..., Any])
    # A listener of the scheduler's transition hook: (event, record, old, new).
    _Listener = Callable[[str, Any, Any, Any], None]

    class _SchedulerAPI(Protocol):
        """What a worker calls on a scheduler, by Luigi's names: the in-memory
        Scheduler, RemoteScheduler, or a library's own object (checkers only)."""
        @property
        def add_task(self) -> Callable[..., Any]: ...
        @property
        def add_worker(self) -> Callable[..., Any]: ...
        @property
        def get_work(self) -> Callable[..., Any]: ...
        @property
        def count_pending(self) -> Callable[..., Any]: ...
        @property
        def add_task_batcher(self) -> Callable[..., Any]: ...
        @property
        def announce_scheduling_failure(self) -> Callable[..., Any]: ...

    class _Abortable(Protocol):
        """A file object that can also throw away what it would publish."""
        @property
        def closed(self) -> bool: ...
        def close(self) -> None: ...
        def abort(self) -> None: ...
else:
    class _Generic:
        """At run time, ``Parameter[int]`` is a types.GenericAlias (as Luigi's
        generic parameters are subscriptable); checkers read typing.Generic."""

        __slots__ = ()
        __class_getitem__ = classmethod(types.GenericAlias)

    _T = _E = None

    def overload(function):   # typing's, which is not imported: the last definition wins
        return function

__version__ = "0.1.0"
#: The Luigi release whose behaviour microflow follows (what ``luigi`` reports as its
#: version after install_as_luigi(), when no real Luigi is installed).
LUIGI_VERSION = "3.8.1"

__all__ = (
    # configuration
    "get_config", "set_config", "reset_config", "config_override", "BaseParser",
    "EnvironmentInterpolation", "CombinedInterpolation", "InterpolationMissingEnvvarError",
    # exceptions
    "MicroflowError", "ConfigError", "ParameterException", "MissingParameterException",
    "UnknownParameterException", "DuplicateParameterException", "ParameterParseError",
    "TaskClassException", "TaskClassNotFoundException", "TaskClassAmbigiousException",
    "TaskClassAmbiguousException", "UnconsumedParameterWarning",
    "OptionalParameterTypeWarning", "SchedulerError", "SchedulerUnavailable", "CycleError",
    "UsageError", "FileSystemException", "FileAlreadyExists", "MissingParentDirectory",
    "NotADirectory",
    # task states
    "PENDING", "RUNNING", "DONE", "FAILED", "DISABLED", "UNKNOWN",
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
    "OptionalPathParameter", "OptionalDateParameter", "FrozenOrderedDict", "DateInterval",
    # targets
    "Target", "FileSystem", "FileSystemTarget", "LocalFileSystem", "LocalTarget",
    "MockFileSystem", "MockTarget", "AtomicLocalFile", "atomic_file", "Format", "Text",
    "UTF8", "Nop", "Gzip", "Bzip2",
    # tasks
    "Event", "Register", "Task", "ExternalTask", "WrapperTask", "Config", "externalize",
    "namespace", "auto_namespace", "task_id_str", "flatten", "flatten_output", "getpaths",
    "load_task",
    "requires", "inherits",
    # scheduling and running
    "Scheduler", "Worker", "DynamicRequirements", "build", "run", "main", "exit_code",
    "SchedulerServer", "RemoteScheduler", "serve",
    "RunResult", "LuigiRunResult", "LuigiStatusCode", "StatusCode",
    # Luigi-style module namespaces
    "LUIGI_VERSION", "configuration", "date_interval", "mock", "parameter", "task_register",
    "util", "cmdline_parser", "CmdlineParser", "cmdline",
    "retcodes", "rpc", "copies", "delegates", "execution_summary", "interface",
    "WorkerSchedulerFactory", "task_status", "tools", "freezing",
    "local_target", "notifications", "batch_notifier", "setup_logging",
    "install_as_luigi", "add_config_path", "PidLockAlreadyTakenExit",
    # Luigi's worker and scheduler helpers (for libraries with a worker of their own)
    "TaskException", "AsyncCompletionException", "TracebackWrapper", "check_complete",
    "check_complete_cached", "SingleProcessPool", "DequeQueue", "TaskStatusReporter",
    "SchedulerMessage", "rpc_message_callback", "KeepAliveThread", "GetWorkResponse",
    "RetryPolicy", "WORKER_STATE_ACTIVE", "WORKER_STATE_DISABLED", "TaskProcess",
    "ContextManagedTaskProcess",
    # Luigi's scheduler records and helpers, metrics, history, locks, pid files, fetchers
    "STATUS_TO_UPSTREAM_MAP", "UPSTREAM_SEVERITY_ORDER", "UPSTREAM_SEVERITY_KEY",
    "RPC_METHODS", "rpc_method", "OrderedSet", "SimpleTaskState",
    "MetricsCollector", "NoMetricsCollector", "MetricsCollectors", "TaskHistory",
    "NopHistory", "StoredTask", "fork_lock", "getpcmd", "get_info", "acquire_for",
    "check_pid", "write_pid", "get_log_format", "get_spool_handler", "URLLibFetcher",
    "RequestsFetcher", "metrics", "task_history", "get_task_requires",
    "dfs_paths", "upstream", "find_deps", "find_deps_cli", "get_task_output_description",
    "bcolors", "print_tree", "LuigiGrep", "SafeExtractor", "safe_extractor",
    # more task states, and the upstream states of the visualiser
    "BATCH_RUNNING", "SUSPENDED", "UPSTREAM_RUNNING", "UPSTREAM_MISSING_INPUT",
    "UPSTREAM_FAILED", "UPSTREAM_DISABLED",
    # logging
    "LOGGER_NAME", "LUIGI_LOGGER_NAME", "InterfaceLogging", "DaemonLogging",
    # formats, ranges, helpers
    "RangeEvent", "most_common", "infer_bulk_complete_from_fs", "previous",
    "get_previous_completed", "BulkCompleteNotImplementedError", "MixinNaiveBulkComplete",
    "TASK_ID_INCLUDE_PARAMS", "TASK_ID_TRUNCATE_PARAMS", "TASK_ID_TRUNCATE_HASH",
    "BaseLogging", "ExplQueue",
    "ChainFormat", "NopFormat", "WrappedFormat", "TextFormat", "NewlineFormat",
    "MixedUnicodeBytesFormat", "GzipFormat", "Bzip2Format", "BaseWrapper", "FileWrapper",
    "TextWrapper", "NewlineWrapper", "MixedUnicodeBytesWrapper", "InputPipeProcessWrapper",
    "OutputPipeProcessWrapper", "MixedUnicodeBytes", "get_default_format", "SysNewLine",
    "RangeBase", "RangeDailyBase", "RangeDaily", "RangeHourlyBase",
    "RangeHourly", "RangeByMinutesBase", "RangeByMinutes", "RangeMonthly", "common_params",
    # e-mails
    "email", "smtp", "batch_email", "BatchNotifier", "send_email", "send_error_email",
    "wrap_traceback", "format_task_error", "send_email_smtp", "send_email_ses",
    "send_email_sns", "send_email_sendgrid", "sendgrid", "generate_email",
    "TestNotificationsTask",
    # runs: options, summary, planning, triggering, the central scheduler's commands
    "core", "retcode", "summary", "dry_run", "dependency_tree", "PlannedTask", "every",
    "cron", "run_server", "luigid",
)


###########################################################################################
# Constants
###########################################################################################

#: The one logger microflow writes to. Its parent is Luigi's "luigi-interface" logger, so
#: a logging configuration written for Luigi (its level, its handlers) applies to it.
LOGGER_NAME = "microflow"
LUIGI_LOGGER_NAME = "luigi-interface"


def _logger() -> logging.Logger:
    """The "microflow" logger, made a child of "luigi-interface" on first use."""
    import argparse
    import logging
    logger = logging.getLogger(LOGGER_NAME)
    if logger.parent is logging.root:
        logger.parent = logging.getLogger(LUIGI_LOGGER_NAME)
    return logger


class _Logger:
    """The "microflow" logger, fetched on first use: importing logging would be a third
    of the cost of importing microflow, and most imports never log."""

    _logger: logging.Logger | None = None

    def __getattr__(self, name: str) -> Any:
        if _Logger._logger is None:
            _Logger._logger = _logger()
        return getattr(_Logger._logger, name)


_log = _Logger()

# Task-id shape, as Luigi computes it: family, the first three parameters (by name),
# each cut to 16 characters, and the first ten hex digits of an md5 of all of them.
TASK_ID_INCLUDE_PARAMS = _TASK_ID_INCLUDE_PARAMS = 3
TASK_ID_TRUNCATE_PARAMS = _TASK_ID_TRUNCATE_PARAMS = 16
TASK_ID_TRUNCATE_HASH = _TASK_ID_TRUNCATE_HASH = 10
_TASK_ID_INVALID_CHAR = r"[^A-Za-z0-9_]"

class _NoValueType:
    """The type of the marker for "this parameter has no value yet" (Luigi's name); one
    instance only, so libraries built on Luigi may test ``default is _no_value``."""

    _instance = None

    def __new__(cls) -> _NoValueType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no_value>"


# Falsy checks must not be used on it: ``is _NO_VALUE`` only.
_NO_VALUE = _no_value = _NoValueType()

# Luigi's magic namespace meaning "use the class's __module__".
_SAME_AS_PYTHON_MODULE = "_same_as_python_module"

# Task states. Strings equal to their names, so they cross JSON and logs unchanged.
PENDING = "PENDING"
RUNNING = "RUNNING"
DONE = "DONE"
FAILED = "FAILED"
DISABLED = "DISABLED"
UNKNOWN = "UNKNOWN"          # a dependency nobody has added yet, or a scheduling error
BATCH_RUNNING = "BATCH_RUNNING"
SUSPENDED = "SUSPENDED"      # sent by old clients; means PENDING
_STATUSES = (PENDING, RUNNING, DONE, FAILED, DISABLED, UNKNOWN)   # what a task can be in

# What a task's dependencies look like from above, most severe last (task_list filter).
UPSTREAM_RUNNING = "UPSTREAM_RUNNING"
UPSTREAM_MISSING_INPUT = "UPSTREAM_MISSING_INPUT"
UPSTREAM_FAILED = "UPSTREAM_FAILED"
UPSTREAM_DISABLED = "UPSTREAM_DISABLED"
UPSTREAM_SEVERITY_ORDER = ("", UPSTREAM_RUNNING, UPSTREAM_MISSING_INPUT, UPSTREAM_FAILED,
                           UPSTREAM_DISABLED)
UPSTREAM_SEVERITY_KEY = UPSTREAM_SEVERITY_ORDER.index
STATUS_TO_UPSTREAM_MAP = {FAILED: UPSTREAM_FAILED, RUNNING: UPSTREAM_RUNNING,
                          BATCH_RUNNING: UPSTREAM_RUNNING, PENDING: UPSTREAM_MISSING_INPUT,
                          DISABLED: UPSTREAM_DISABLED}

# [worker] options that shape the run loop, and their defaults (Luigi's).
_WORKER_DEFAULTS = {
    "keep_alive": False, "wait_interval": 1.0, "max_reschedules": 1,
    "check_unfulfilled_deps": True, "check_complete_on_run": False,
    "retry_external_tasks": False, "count_uniques": False, "count_last_scheduled": False,
    "max_keep_alive_idle_duration": 0.0, "task_limit": 0, "timeout": 0.0,
    "force_multiprocessing": False, "mode": "processes", "start_method": "",
    "process_per_task": False, "ping_interval": 1.0, "send_failure_email": True,
    # Luigi's 5 s jitter slows every kept-alive wait; microflow adds none unless asked.
    "wait_jitter": 0.0,
    # Accepted for Luigi's configs; nothing to do: microflow installs no signal handler
    # in build(), and checks complete() once per task and run anyway.
    "no_install_shutdown_handler": False, "cache_task_completion": False,
    # The id a worker gives the scheduler ("": made of its host, pid, ...); a context
    # manager (dotted name) each task runs in, in Luigi's ContextManagedTaskProcess.
    "id": "", "task_process_context": "",
}

# What each [worker] option does, for --help-all's --worker-* flags.
_WORKER_HELP = {
    "keep_alive": "keep asking for work while other workers' tasks may unblock ours",
    "wait_interval": "seconds between asks for work when there is none yet",
    "max_reschedules": "times a task whose dependencies failed is handed out again",
    "check_unfulfilled_deps": "check a task's dependencies are complete before running it",
    "check_complete_on_run": "fail a task whose complete() is false after run()",
    "retry_external_tasks": "ask again about external tasks that were missing",
    "count_uniques": "keep alive only while tasks only this worker can run are pending",
    "count_last_scheduled": "keep alive only while tasks it last scheduled are pending",
    "max_keep_alive_idle_duration": "seconds a kept-alive worker may wait idle (0: no "
                                    "limit)",
    "task_limit": "at most this many tasks added by the walk (0: no limit)",
    "timeout": "seconds a task may run before it is killed (0: no limit)",
    "force_multiprocessing": "run tasks in child processes even with one worker",
    "mode": "processes or threads", "start_method": "fork, forkserver or spawn",
    "process_per_task": "a new child process for each task",
    "ping_interval": "seconds between pings to a central scheduler",
    "send_failure_email": "e-mail a task's failure ([email])",
    "wait_jitter": "up to this many seconds added to each wait",
    "no_install_shutdown_handler": "accepted for Luigi's configs",
    "cache_task_completion": "accepted for Luigi's configs",
    "id": "the id given to the scheduler (default: host, pid, ...)",
    "task_process_context": "a context manager (dotted name) each task runs in",
}

# The Task properties a task may override to set its own retry policy.
_RETRY_POLICY_NAMES = ("retry_count", "disable_hard_timeout", "disable_window")

# [scheduler] options and their defaults (Luigi's).
_SCHEDULER_DEFAULTS = {
    "retry_delay": 900.0, "remove_delay": 600.0, "worker_disconnect_delay": 60.0,
    "disable_window": 3600.0, "retry_count": 999999999, "disable_hard_timeout": 999999999.0,
    "disable_persist": 86400.0, "max_shown_tasks": 100000, "max_graph_nodes": 100000,
    "prune_on_get_work": False, "pause_enabled": True, "send_messages": True,
    "stable_done_cooldown_secs": 10.0, "record_task_history": False, "batch_emails": False,
    # The server's state file ("": none; --state-path); who is told of each task's
    # transitions: "default"/"none" nobody, "custom" the MetricsCollector class named
    # by metrics_custom_import (Luigi's; its datadog and prometheus need packages).
    "state_path": "", "metrics_collector": "default", "metrics_custom_import": "",
}
# Options read elsewhere than _typed_options (the rest of a typo check's known names).
_OTHER_KNOWN_OPTIONS: dict[str, set[str]] = {}


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


class FileSystemException(MicroflowError, OSError):
    """A file system operation could not be done (Luigi's name); also an OSError."""


class FileAlreadyExists(FileSystemException, FileExistsError):
    """The path exists and the operation was told not to replace it."""


class MissingParentDirectory(FileSystemException, FileNotFoundError):
    """The folder a path would go in does not exist (and ``parents=False``)."""


class NotADirectory(FileSystemException, NotADirectoryError):
    """A folder was expected at a path that holds a file."""


class SchedulerError(MicroflowError, ValueError):
    """A scheduler method was called wrongly, e.g. about a task it does not know."""


class SchedulerUnavailable(MicroflowError):
    """The central scheduler did not answer (after the client's retries)."""


class UsageError(MicroflowError, ValueError):
    """Bad command-line input (an unknown task or flag, a module that will not import):
    ``python -m microflow`` prints it and exits 2; run() raises it."""


class PidLockAlreadyTakenExit(SystemExit):
    """The command already runs elsewhere under its pid lock (Luigi's name); its code
    is ``[retcode] already_running``."""


class CycleError(MicroflowError, ValueError):
    """The dependency graph has a cycle; ``args[1]`` lists the tasks in it."""


class UnconsumedParameterWarning(UserWarning):
    """A ``[Family]`` config section holds an option the task does not declare."""


class OptionalParameterTypeWarning(UserWarning):
    """An Optional*Parameter got a value that is neither None nor of its type."""


###########################################################################################
# Private helpers
###########################################################################################

def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, for "did you mean" suggestions."""
    above = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(current[j - 1] + 1, above[j] + 1,
                               above[j - 1] + (char_a != char_b)))
        above = current
    return above[-1]


def _suggestions(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Return up to ``limit`` candidates close to ``name``, closest first."""
    scored = sorted((_edit_distance(name.lower(), c.lower()), c) for c in candidates)
    # Never a candidate that shares nothing with the name ("b" is no typo of "a").
    return [c for distance, c in scored
            if distance <= max(2, len(name) // 3) and distance < len(name)][:limit]


def _temporary_name(path: str, digits: int = 10) -> str:
    """``<path>-luigi-tmp-<digits>``: where a file is written before it is published,
    named as Luigi names its own (so cleanup scripts written for Luigi find them)."""
    return f"{path}-luigi-tmp-{_random_digits(digits)}"


def _random_digits(count: int) -> str:
    """``count`` random decimal digits, for temporary names (no ``random`` import)."""
    return str(int.from_bytes(os.urandom(8), "big") % 10 ** count).zfill(count)


def _optional_package(name: str, needed_by: str) -> Any:
    """Import ``name``, a package only some integrations use (microflow needs none);
    ImportError saying what needs it when it is not installed."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{needed_by} needs the {name.split('.')[0]!r} package, which "
                          f"is not installed") from exc


def _import_object(spec: str) -> Any:
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

def _config_files() -> list[str]:
    """The files read, in order; a later file wins over an earlier one. A path ending
    in ``.toml`` is read as TOML."""
    paths = ["/etc/luigi/luigi.cfg", "/etc/luigi/luigi.toml", "luigi.cfg", "luigi.toml",
             "microflow.cfg"]
    for variable in ("LUIGI_CONFIG_PATH", "MICROFLOW_CONFIG_PATH"):
        if os.environ.get(variable):
            paths.append(os.environ[variable])
    return paths + _ConfigParser._config_paths


class InterpolationMissingEnvvarError(ConfigError, configparser.InterpolationError):
    """``${NAME}`` in a value names an environment variable that is not set."""

    def __init__(self, option: str, section: str, value: str, envvar: str) -> None:
        message = f"[{section}] {option}: environment variable '{envvar}' is not set"
        configparser.InterpolationError.__init__(self, option, section, message)


class EnvironmentInterpolation(configparser.Interpolation):
    """``${ENV_VAR}`` in values, from the environment; a missing one is an error."""

    _ENV = r"\$\{([^}]*)\}"   # compiled on first use (by re's cache), not at import

    def before_get(self, parser: Any, section: Any, option: str, value: str,
                   defaults: Any) -> str:
        def lookup(match: re.Match[str]) -> str:
            if match.group(1) not in os.environ:
                raise InterpolationMissingEnvvarError(option, section, value, match.group(1))
            return os.environ[match.group(1)]
        return re.sub(self._ENV, lookup, value)


class CombinedInterpolation(configparser.Interpolation):
    """Each of ``interpolations`` in turn (Luigi's: ``%(name)s``, then ``${ENV}``)."""

    def __init__(self, interpolations: Sequence[configparser.Interpolation]) -> None:
        self._interpolations = list(interpolations)

    def _each(self, hook: str, parser: Any, section: Any, option: str, value: str,
              *defaults: Any) -> str:
        for interpolation in self._interpolations:
            value = getattr(interpolation, hook)(parser, section, option, value, *defaults)
        return value

    def before_get(self, parser: Any, section: Any, option: str, value: str,
                   defaults: Any) -> str:
        return self._each("before_get", parser, section, option, value, defaults)

    def before_read(self, parser: Any, section: Any, option: str, value: str) -> str:
        return self._each("before_read", parser, section, option, value)

    def before_set(self, parser: Any, section: Any, option: str, value: str) -> str:
        return self._each("before_set", parser, section, option, value)

    def before_write(self, parser: Any, section: Any, option: str, value: str) -> str:
        return self._each("before_write", parser, section, option, value)


class BaseParser:
    """Luigi's base of configuration parsers: one instance in use, and the files
    added to what it reads."""

    _instance: Any = None   # the parser in use; see _ConfigState
    _config_paths: list[str] = []  # files added with add_config_path(), read after the others

    @classmethod
    def instance(cls, *args: Any, **kwargs: Any) -> Any:
        """The configuration in use, read on first call (Luigi's
        ``LuigiConfigParser.instance()``)."""
        return get_config()

    @classmethod
    def add_config_path(cls, path: str) -> None:
        """Read ``path`` over the configuration in force, and on every later reload."""
        cls._config_paths = cls._config_paths + [path]
        cls.reload()

    @classmethod
    def reload(cls) -> list[str]:
        """Read every configuration file again over the values in force."""
        done: list[str] = get_config().read(_config_files(), encoding="utf-8")
        return done   # read() tells the tasks' cached values they are stale


class _ConfigParser(BaseParser, configparser.ConfigParser):
    """Luigi's cfg dialect: case-sensitive options, env interpolation, dash aliases;
    ``.toml`` files read as TOML (one parser for both, named as each of Luigi's)."""

    _instance: _ConfigParser | None = None   # the parser in use; see _ConfigState
    NO_DEFAULT = _NO_VALUE
    enabled = True   # cfg files are always read
    optionxform = str   # type: ignore[assignment]  # case-sensitive options, as Luigi's

    def __init__(self) -> None:
        super().__init__(interpolation=CombinedInterpolation([
            configparser.BasicInterpolation(), EnvironmentInterpolation()]))

    @property
    def data(self) -> dict[str, dict[str, str]]:
        """The configuration as ``{section: {option: value}}`` (LuigiTomlParser's)."""
        return {name: dict(self.items(name, raw=True)) for name in self.sections()}

    def getintdict(self, section: str) -> dict[str, int]:
        """``[section]`` as ``{option: int}`` ({} when there is no such section)."""
        if not self.has_section(section):
            return {}
        return {option: self.getint(section, option) for option in self.options(section)}

    def _resolve(self, section: str, option: str) -> str | None:
        """Return the option name actually present: the underscore form, else the dash
        form, with Luigi's DeprecationWarning."""
        underscored, dashed = option.replace("-", "_"), option.replace("_", "-")
        if self.has_option(section, underscored):
            return underscored
        if self.has_option(section, dashed):
            warnings.warn(f"Configuration [{section}] {dashed} (with dashes) should be "
                          f"avoided. Please use underscores: {underscored}.",
                          DeprecationWarning, stacklevel=4)
            return dashed
        return None

    def get(self, section: str, option: str,   # type: ignore[override]  # Luigi's get()
            default: Any = _NO_VALUE, **kwargs: Any) -> Any:
        """Return ``[section] option``; ``default`` (or ConfigParser's ``fallback``), if
        given, when it is absent."""
        if "fallback" in kwargs:
            fallback = kwargs.pop("fallback")
            default = fallback if default is _NO_VALUE else default
        present = self._resolve(section, option) if self.has_section(section) else None
        if present is None:
            if default is _NO_VALUE:
                raise ConfigError(f"config has no option '{option}' in section [{section}]")
            return default
        return super().get(section, present, **kwargs)

    def _typed(self, section: str, option: str, default: Any, convert: Callable[[Any], Any],
               expected: str, keywords: Mapping[str, Any]) -> Any:
        if default is _NO_VALUE:   # ConfigParser's spelling of it
            default = keywords.get("fallback", _NO_VALUE)
        value = self.get(section, option, _NO_VALUE if default is _NO_VALUE else None)
        if value is None:
            return default
        try:
            return convert(value)
        except ValueError:
            raise ConfigError(f"[{section}] {option}: expected {expected}, "
                              f"got {value!r}") from None

    def getint(self, section: Any, option: str, default: Any = _NO_VALUE, **kwargs: Any) -> Any:
        """Return ``[section] option`` as an int."""
        return self._typed(section, option, default, int, "an integer", kwargs)

    def getfloat(self, section: Any, option: str, default: Any = _NO_VALUE, **kwargs: Any) -> Any:
        """Return ``[section] option`` as a float."""
        return self._typed(section, option, default, float, "a number", kwargs)

    def getboolean(self, section: Any, option: str, default: Any = _NO_VALUE,
                   **kwargs: Any) -> Any:
        """Return ``[section] option`` as a bool (true/false, yes/no, on/off, 1/0)."""
        return self._typed(section, option, default, _parse_config_bool, "true or false",
                           kwargs)

    def set(self, section: Any, option: str, value: Any = None) -> None:
        """Set ``[section] option`` to ``str(value)``, creating the section if needed."""
        if not self.has_section(section):
            self.add_section(section)
        super().set(section, option, None if value is None else str(value))
        _CONFIG.generation += 1   # a [Family] option may have appeared: check again

    # Whatever changes the options makes the tasks' cached [Family] values stale: each
    # way ConfigParser offers (reading, removing, clear()) says so, as set() does.
    def read_file(self, f: Iterable[str], source: str | None = None) -> None:
        super().read_file(f, source)
        _CONFIG.generation += 1

    def remove_option(self, section: Any, option: str) -> bool:
        removed = super().remove_option(section, option)
        _CONFIG.generation += 1
        return removed

    def remove_section(self, section: Any) -> bool:
        removed = super().remove_section(section)
        _CONFIG.generation += 1
        return removed

    def read(self, filenames: Any,   # type: ignore[override, unused-ignore]  # any paths
             encoding: str | None = "utf-8") -> list[str]:
        """Read the files that exist: ``.toml`` ones as TOML, the others as cfg.
        Returns the paths read. Raises ConfigError for a TOML file on a Python
        without tomllib (before 3.11)."""
        if isinstance(filenames, (str, os.PathLike)):
            filenames = [filenames]
        done = []
        for path in filenames:
            if str(path).endswith(".toml"):
                if os.path.isfile(path):
                    self._read_toml(path)
                    done.append(path)
            else:
                done.extend(super().read(path, encoding=encoding))
        _CONFIG.generation += 1
        return done

    def _read_toml(self, path: str) -> None:
        """Each table a section; values as the strings a cfg file would hold (lists
        and tables as JSON, dates in ISO form), so parameters parse them alike."""
        if sys.version_info < (3, 11):   # tomllib came with 3.11
            raise ConfigError(f"{path}: TOML configuration needs Python 3.11 or newer "
                              f"(tomllib); this is {sys.version.split()[0]}. Write it "
                              f"as luigi.cfg instead")
        else:   # (a branch, so a checker of 3.9 code reads no tomllib)
            import tomllib
            with open(path, "rb") as f:
                try:
                    tables = tomllib.load(f)
                except tomllib.TOMLDecodeError as exc:
                    raise ConfigError(f"{path}: not valid TOML: {exc}") from None
            for section, table in tables.items():
                if not isinstance(table, dict):
                    raise ConfigError(f"{path}: {section!r} is not a table ([section])")
                for option, value in table.items():
                    self.set(section, option, _toml_text(value).replace("%", "%%"))


def _toml_text(value: Any) -> str:
    """A TOML value as cfg text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _warn_unconsumed(section: str, known: Iterable[str]) -> None:
    """Warn, in Luigi's words, about each option of ``[section]`` not in ``known``:
    a typo there would otherwise silently do nothing."""
    parser = get_config()
    if not parser.has_section(section):
        return
    for key in parser.options(section):
        name = key.replace("-", "_")
        if name not in known:
            close = _suggestions(name, sorted(known))
            # Luigi warns of this in luigi.task: a patch of luigi.parameter.warnings
            # must not see it, one of luigi.task.warnings must.
            _task_module.warnings.warn(
                f"The configuration contains the parameter '{name}' with value "
                f"'{parser.get(section, key, raw=True)}' that is not consumed by the task "
                f"'{section}'." + (f" Did you mean {' or '.join(close)}?" if close else ""),
                UnconsumedParameterWarning, stacklevel=3)


def _parse_config_bool(value: Any) -> bool:
    lowered = str(value).strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError(value)


class _ConfigState:
    """The process's configuration: read lazily from files, overridable in memory.

    The parser itself lives in ``_ConfigParser._instance``, where Luigi keeps it, so
    test helpers written for Luigi that swap in a fresh parser for one test are obeyed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: _ConfigParser | None = None
        self.generation = 0   # bumped on every change, so caches know to refresh

    def parser(self) -> _ConfigParser:
        parser = _ConfigParser._instance
        if parser is None:
            with self._lock:
                if _ConfigParser._instance is None:
                    parser = _ConfigParser()
                    try:
                        parser.read(_config_files(), encoding="utf-8")
                    except configparser.Error as exc:
                        raise ConfigError("cannot read the configuration: "
                                          + " ".join(str(exc).split())) from None
                    _ConfigParser._instance = parser
                else:
                    parser = _ConfigParser._instance
        if parser is not self._seen:    # read afresh or swapped in from outside
            self._seen = parser
            self.generation += 1
        return parser

    def reset(self) -> None:
        with self._lock:
            _ConfigParser._instance = None
            self.generation += 1


_CONFIG = _ConfigState()


def get_config() -> _ConfigParser:
    """Return the configuration parser, reading the config files on first use.

    Files are read in this order, later ones winning: ``/etc/luigi/luigi.cfg`` and
    ``.toml``, ``./luigi.cfg`` and ``.toml``, ``./microflow.cfg``, then
    ``$LUIGI_CONFIG_PATH`` and ``$MICROFLOW_CONFIG_PATH`` (TOML when named ``.toml``,
    Python 3.11 or newer). ``get(section, option, default)`` accepts a default
    and both the ``dash-form`` and ``underscore_form`` of an option.
    """
    return _CONFIG.parser()


def set_config(section: str, option: str, value: Any) -> None:
    """Set one configuration value in memory (no file is touched)."""
    get_config().set(section, option, value)


def reset_config() -> None:
    """Forget in-memory changes; the files are read again on next use."""
    _CONFIG.reset()


@contextlib.contextmanager
def config_override(values: Mapping[str, Mapping[str, Any]]) -> Iterator[_ConfigParser]:
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
    def has_value(cls, value: Any) -> bool:
        """True if ``value`` is one of the visibility levels."""
        return any(value == member.value for member in cls)

    def serialize(self) -> int:
        """The integer sent over the wire."""
        return self.value


class FrozenOrderedDict(Mapping["Any", "Any"]):
    """An immutable, hashable, ordered mapping: the value of a DictParameter."""

    __slots__ = ("_data", "_hash")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._data = dict(*args, **kwargs)
        self._hash: int | None = None

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            value = 0
            for item in self._data.items():
                value ^= hash(item)
            self._hash = value
        return self._hash

    def get_wrapped(self) -> dict[Any, Any]:
        """The underlying plain dict (do not mutate it)."""
        return self._data


def _freeze(value: Any) -> Any:
    """Turn mappings into FrozenOrderedDicts and lists into tuples, recursively."""
    if isinstance(value, Mapping):
        return FrozenOrderedDict((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _unfreeze(value: Any) -> Any:
    """The inverse of :func:`_freeze`: plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _unfreeze(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_unfreeze(v) for v in value]
    return value


class _FrozenJSONEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, FrozenOrderedDict):
            return o.get_wrapped()
        return super().default(o)


class Parameter(_Generic[_T]):
    """A task parameter, declared as a class attribute: it parses, normalizes and
    serializes one value, which each task then holds as a plain attribute (as in Luigi).

    Where a value comes from, first hit wins: the constructor argument, the command line
    (``--Family-param`` or, for the root task, ``--param``), the config option
    ``[Family] param``, then ``default``. Raises MissingParameterException when none
    gives one.
    """

    _counter = 0          # declaration order, shared by every parameter ever created

    _expected = "a string"   # what parse() accepts, for error messages

    def _expected_text(self) -> str:
        """What parse() accepts, in words (a subclass may say it from its settings)."""
        return self._expected

    if TYPE_CHECKING:   # on a task, the value; on its class, the parameter
        @overload
        def __get__(self: _P, instance: None, owner: Any) -> _P: ...
        @overload
        def __get__(self, instance: object, owner: Any) -> _T: ...
        def __get__(self, instance: object, owner: Any) -> Any: ...

    def __init__(self, default: Any = _NO_VALUE, is_global: Any = False,
                 significant: Any = True, description: Any = None, config_path: Any = None,
                 positional: Any = True, always_in_help: Any = False,
                 batch_method: Any = None,
                 visibility: Any = ParameterVisibility.PUBLIC) -> None:
        if is_global:
            warnings.warn("is_global support is removed. Assuming positional=False",
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
        self._attribute_name: str | None = None
        self._counter = Parameter._counter
        Parameter._counter += 1

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute_name = name

    # -- conversions a subclass overrides ----------------------------------------------

    def parse(self, x: Any) -> Any:
        """Turn a string (from the command line, config or scheduler) into a value."""
        return x

    def serialize(self, x: Any) -> str:
        """Turn a value into the string that parse() reads back."""
        return str(x)

    def normalize(self, x: Any) -> Any:
        """Canonicalize a value from any source (e.g. make it hashable, clamp it)."""
        return x

    def next_in_enumeration(self, value: Any) -> Any:
        """The next value in order, or None; the summary uses it to print ranges."""
        return None

    # -- value resolution ---------------------------------------------------------------

    def _parse_for(self, task_name: str, param_name: str, raw: Any, source: str) -> Any:
        """parse() with an error that names the task, parameter, value and source."""
        try:
            return self.parse(raw)
        except (ValueError, TypeError, ParameterException) as exc:
            error = ParameterParseError(
                f"{task_name}: parameter '{param_name}' expects {self._expected_text()}, "
                f"got {raw!r} ({source}): {exc}")
            error.source = source   # type: ignore[attr-defined]  # which message fits
            raise error from None

    def _value_from_sources(self, task_name: str, param_name: str) -> Any:
        """The first value found on the command line, in config, or the default."""
        parsed = CmdlineParser.get_instance()   # asked each time: Luigi's tests patch it
        raw = parsed._raw_value(task_name, param_name) if parsed is not None else None
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
                warnings.warn(f"The use of the configuration [{section}] {name} is "
                              f"deprecated. Please use [{task_name}] {param_name}",
                              DeprecationWarning)
                return self._parse_for(task_name, param_name, raw, f"config [{section}]")
        return self._default

    def has_task_value(self, task_name: str, param_name: str) -> bool:
        """True if a value for this parameter exists outside the constructor."""
        return self._value_from_sources(task_name, param_name) is not _NO_VALUE

    def task_value(self, task_name: str, param_name: str) -> Any:
        """The normalized value from the command line, config or default.

        Raises MissingParameterException if there is none.
        """
        value = self._value_from_sources(task_name, param_name)
        if value is _NO_VALUE:
            raise MissingParameterException(
                f"{task_name}: requires the '{param_name}' parameter to be set")
        return self.normalize(value)

    def _is_batchable(self) -> bool:
        return self._batch_method is not None

    def _parse_list(self, xs: Iterable[Any]) -> Any:
        """Combine several scheduler strings into one value with ``batch_method``."""
        if not self._is_batchable():
            raise NotImplementedError("No batch method found")
        if not xs:
            raise ValueError("Empty parameter list passed to parse_list")
        return self._batch_method(map(self.parse, xs))

    @classmethod
    def _parser_kwargs(cls, param_name: str, task_name: str | None = None) -> dict[str, Any]:
        """The argparse keywords of this parameter's flag (Luigi's hook: a subclass may
        return ``action="store_true"`` or ``nargs="?"`` with a ``const``)."""
        return {"action": "store",
                "dest": f"{task_name}_{param_name}" if task_name else param_name}

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        if type(self) is Parameter and not isinstance(param_value, str):
            warnings.warn(f'Parameter "{param_name}" with value "{param_value}" '
                          f'is not of type string.')


class _OptionalMixin(Parameter[_T]):
    """Makes a parameter optional: default None, and '' and None map to each other."""

    expected_type: Any = type(None)

    if TYPE_CHECKING:   # the value may be None
        @overload   # type: ignore[override]
        def __get__(self: _S, instance: None, owner: Any) -> _S: ...
        @overload
        def __get__(self, instance: object, owner: Any) -> Optional[_T]: ...
        def __get__(   # pyright: ignore[reportIncompatibleMethodOverride]  # or None
                self, instance: object, owner: Any) -> Any: ...

    def __init__(self, default: Any = None, **kwargs: Any) -> None:
        super().__init__(default=default, **kwargs)

    def serialize(self, x: Any) -> str:
        return "" if x is None else super().serialize(x)

    def parse(self, x: Any) -> Any:
        if not isinstance(x, str):
            return x
        return super().parse(x) if x else None

    def normalize(self, x: Any) -> Any:
        return None if x is None else super().normalize(x)

    def next_in_enumeration(self, value: Any) -> Any:
        return None

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        if param_value is not None and not isinstance(param_value, self.expected_type):
            expected = self.expected_type
            wanted = (f'type "{expected.__name__}"' if isinstance(expected, type) else
                      "any type in [" + ", ".join(f'"{kind.__name__}"' for kind in expected)
                      + "]")
            warnings.warn(f'{type(self).__name__} "{param_name}" with value '
                          f'"{param_value}" is not of {wanted} or None.',
                          OptionalParameterTypeWarning)


class OptionalParameter(_OptionalMixin[str], Parameter[str]):
    """A string parameter that defaults to None; '' on the command line means None."""

    expected_type = str


class StrParameter(Parameter[str]):
    """A parameter whose value is ``str(x)``."""

    def parse(self, x: Any) -> str:
        return str(x)


class OptionalStrParameter(_OptionalMixin[str], StrParameter):
    """A StrParameter that defaults to None."""

    expected_type = str


class IntParameter(Parameter[int]):
    """An integer parameter; consecutive values print as ranges in the summary."""

    _expected = "an integer"

    def parse(self, x: Any) -> int:
        return int(x)

    def next_in_enumeration(self, value: int) -> int:
        return value + 1


class OptionalIntParameter(_OptionalMixin[int], IntParameter):
    """An IntParameter that defaults to None."""

    expected_type = int


class FloatParameter(Parameter[float]):
    """A float parameter."""

    _expected = "a number"

    def parse(self, x: Any) -> float:
        return float(x)


class OptionalFloatParameter(_OptionalMixin[float], FloatParameter):
    """A FloatParameter that defaults to None."""

    expected_type = float


class BoolParameter(Parameter[bool]):
    """A boolean parameter, False unless given.

    With IMPLICIT parsing (the default) ``--flag`` on the command line means True; with
    EXPLICIT parsing the command line takes ``--flag true|false``.
    """

    IMPLICIT_PARSING = "implicit"
    EXPLICIT_PARSING = "explicit"
    parsing = IMPLICIT_PARSING
    _expected = "true or false"

    def __init__(self, default: Any = _NO_VALUE, parsing: Any = None,
                 **kwargs: Any) -> None:
        self.parsing = type(self).parsing if parsing is None else parsing
        if self.parsing not in (self.IMPLICIT_PARSING, self.EXPLICIT_PARSING):
            raise ParameterException(f"unknown parsing value '{self.parsing}'")
        super().__init__(default=default, **kwargs)
        if self._default is _NO_VALUE:
            self._default = False

    def parse(self, x: Any) -> bool:
        lowered = str(x).lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise ValueError(f"cannot interpret '{x}' as boolean")

    def normalize(self, x: Any) -> Any:
        try:
            return self.parse(x)
        except ValueError:
            return None

    def _parser_kwargs(self, *args: Any,   # type: ignore[override]  # per instance
                       **kwargs: Any) -> dict[str, Any]:
        keywords = super()._parser_kwargs(*args, **kwargs)
        if self.parsing == self.IMPLICIT_PARSING:
            keywords["action"] = "store_true"
        else:
            keywords.update(nargs="?", const=True)
        return keywords


class OptionalBoolParameter(_OptionalMixin[bool], BoolParameter):
    """A BoolParameter that defaults to None."""

    expected_type = bool


_UNIX_EPOCH = datetime.datetime(1970, 1, 1)


###########################################################################################
# Parameters: dates, times, intervals, tasks, enums, collections, choices, paths
###########################################################################################

def _format_hint(date_format: str) -> str:
    """``%Y-%m-%dT%H`` as a person reads it: ``YYYY-MM-DDTHH``."""
    for code, shown in (("%Y", "YYYY"), ("%m", "MM"), ("%d", "DD"), ("%H", "HH"),
                        ("%M", "MM"), ("%S", "SS")):
        date_format = date_format.replace(code, shown)
    return date_format


class _DateParameterBase(Parameter[datetime.date]):
    """A date parameter written with ``date_format``, clamped to every ``interval``-th
    value counted from ``start``."""

    date_format = "%Y-%m-%d"

    def __init__(self, default: Any = _NO_VALUE, interval: Any = 1, start: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(default=default, **kwargs)
        self.interval = interval
        self.start = start if start is not None else _UNIX_EPOCH.date()

    def _expected_text(self) -> str:
        return "a date " + _format_hint(self.date_format)

    def parse(self, x: str) -> datetime.date:
        return datetime.datetime.strptime(x, self.date_format).date()

    def serialize(self, x: Any) -> str:
        return str(x) if x is None else x.strftime(self.date_format)


class DateParameter(_DateParameterBase):
    """A ``datetime.date`` written ``YYYY-MM-DD``."""

    def next_in_enumeration(self, value: datetime.date) -> datetime.date:
        return value + datetime.timedelta(days=self.interval)

    def normalize(self, x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, datetime.datetime):
            x = x.date()
        return x - datetime.timedelta(days=(x - self.start).days % self.interval)


def _add_months(first: _D, months: int) -> _D:
    """``first`` (a date or datetime on the first of a month) moved by ``months``, of
    the same type."""
    index = first.year * 12 + first.month - 1 + months
    return first.replace(year=index // 12, month=index % 12 + 1, day=1)


class OptionalDateParameter(_OptionalMixin[datetime.date], DateParameter):
    """A DateParameter that defaults to None; '' on the command line means None."""

    expected_type = datetime.date


class MonthParameter(DateParameter):
    """A date rounded down to the first of its month, written ``YYYY-MM``."""

    date_format = "%Y-%m"

    def next_in_enumeration(self, value: datetime.date) -> datetime.date:
        return _add_months(value, self.interval)

    def normalize(self, x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, DateInterval):
            x = x.date_a
        months = (x.year - self.start.year) * 12 + (x.month - self.start.month)
        return _add_months(self.start, months - months % self.interval)


class YearParameter(DateParameter):
    """A date rounded down to the first of its year, written ``YYYY``."""

    date_format = "%Y"

    def next_in_enumeration(self, value: datetime.date) -> datetime.date:
        return value.replace(year=value.year + self.interval)

    def normalize(self, x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, DateInterval):
            x = x.date_a
        return datetime.date(x.year - (x.year - self.start.year) % self.interval, 1, 1)


class _DatetimeParameterBase(Parameter[datetime.datetime]):
    """A ``datetime`` written with ``date_format``, without microseconds, clamped to
    every ``interval`` units of ``_timedelta`` from ``start`` (default: the epoch)."""

    date_format = "%Y-%m-%dT%H"
    _timedelta = datetime.timedelta(hours=1)

    def __init__(self, default: Any = _NO_VALUE, interval: Any = 1, start: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(default=default, **kwargs)
        self.interval: int = interval
        self.start = start if start is not None else _UNIX_EPOCH

    def _expected_text(self) -> str:
        return "a time " + _format_hint(self.date_format)

    def parse(self, x: str) -> datetime.datetime:
        return datetime.datetime.strptime(x, self.date_format)

    def serialize(self, x: Any) -> str:
        return str(x) if x is None else x.strftime(self.date_format)

    def normalize(self, x: Any) -> Any:
        if x is None:
            return None
        if not isinstance(x, datetime.datetime):
            x = datetime.datetime.combine(x, datetime.time.min)
        x = x.replace(microsecond=0)
        elapsed = (x - self.start).total_seconds()
        granularity = (self._timedelta * self.interval).total_seconds()
        return x - datetime.timedelta(seconds=elapsed % granularity)

    def next_in_enumeration(self, value: datetime.datetime) -> datetime.datetime:
        return value + self._timedelta * self.interval


class DateHourParameter(_DatetimeParameterBase):
    """A datetime to the hour, written ``YYYY-MM-DDTHH``."""


class DateMinuteParameter(_DatetimeParameterBase):
    """A datetime to the minute, written ``YYYY-MM-DDTHHMM`` (``THHhMM`` is deprecated)."""

    date_format = "%Y-%m-%dT%H%M"
    deprecated_date_format = "%Y-%m-%dT%HH%M"
    _timedelta = datetime.timedelta(minutes=1)

    def parse(self, x: str) -> datetime.datetime:
        try:
            value = datetime.datetime.strptime(x, self.deprecated_date_format)
        except ValueError:
            return super().parse(x)
        warnings.warn('Using "H" between hours and minutes is deprecated, omit it instead.',
                      DeprecationWarning, stacklevel=2)
        return value


class DateSecondParameter(_DatetimeParameterBase):
    """A datetime to the second, written ``YYYY-MM-DDTHHMMSS``."""

    date_format = "%Y-%m-%dT%H%M%S"
    _timedelta = datetime.timedelta(seconds=1)


class DateIntervalParameter(Parameter["DateInterval"]):
    """A DateInterval: ``2015``, ``2015-05``, ``2015-W35``, ``2015-11-04`` or
    ``2015-11-04-2015-12-04``."""

    _expected = "a date interval (YYYY, YYYY-MM, YYYY-Www, YYYY-MM-DD or two dates)"

    def parse(self, x: str) -> DateInterval:
        for interval_class in (_Year, _Month, _Week, _Date, _Custom):
            interval = interval_class.parse(x)
            if interval:
                return interval
        raise ValueError("Invalid date interval - could not be parsed")


class TimeDeltaParameter(Parameter[datetime.timedelta]):
    """A ``datetime.timedelta``: seconds (``90``), ISO 8601 (``P1DT2H``, ``P3W``) or text
    (``1 week 2 days``); serialized as ``"W w D d H h M m S s"``."""

    _expected = "a time delta (seconds, ISO 8601 like P1DT2H, or '1 week 2 days')"

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        if not isinstance(param_value, datetime.timedelta):
            warnings.warn(f'Parameter "{param_name}" with value "{param_value}" is not of '
                          f'type timedelta.')
    _UNITS = ("weeks", "days", "hours", "minutes", "seconds")
    _ISO = (r"P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?"
            r"(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?)")
    # Each unit may be written by its initial, its singular or its plural.
    _TEXT = "".join(rf"(?:(?P<{unit}>\d+) ?{unit[0]}(?:{unit[1:-1]})?s? ?)?"
                    for unit in _UNITS)

    def parse(self, x: Any) -> datetime.timedelta:
        try:
            return datetime.timedelta(seconds=float(x))
        except ValueError:
            pass
        for pattern in (self._ISO, self._TEXT):   # compiled on first use, by re's cache
            match = re.match(pattern, x)
            if match and any(match.groups()):
                return datetime.timedelta(**{unit: int(match.group(unit) or 0)
                                             for unit in self._UNITS})
        raise ParameterParseError(f"Invalid time delta - could not parse {x}")

    def serialize(self, x: datetime.timedelta) -> str:
        weeks, days = divmod(x.days, 7)
        hours, rest = divmod(x.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{weeks} w {days} d {hours} h {minutes} m {seconds} s"


class TaskParameter(Parameter["type[Task]"]):
    """A task class, written as its family name."""

    _expected = "a task family name"

    def parse(self, x: str) -> type[Task]:
        return Register.get_task_cls(x)

    def serialize(self, x: type[Task]) -> str:
        return x.get_task_family()


class EnumParameter(Parameter[_E]):
    """A member of ``enum``, written by its name."""

    if TYPE_CHECKING:   # the value is a member of the enum given
        _enum: type[_E]

        def __init__(self, default: Any = ..., *, enum: type[_E], **kwargs: Any) -> None: ...
    else:
        def __init__(self, default=_NO_VALUE, *, enum=None, **kwargs) -> None:
            if enum is None:
                raise ParameterException("An enum class must be specified.")
            self._enum = enum
            super().__init__(default=default, **kwargs)

    def _expected_text(self) -> str:
        return "one of " + ", ".join(self._enum.__members__)

    def parse(self, x: str) -> Any:
        try:
            return self._enum[x]
        except KeyError:
            raise ValueError("Invalid enum value - could not be parsed") from None

    def serialize(self, x: enum.Enum) -> str:
        return x.name


class EnumListParameter(Parameter["tuple[Any, ...]"]):
    """A tuple of ``enum`` members, written as comma-separated names."""

    def __init__(self, default: Any = _NO_VALUE, *, enum: Any = None,
                 **kwargs: Any) -> None:
        if enum is None:
            raise ParameterException("An enum class must be specified.")
        self._enum = enum
        super().__init__(default=default, **kwargs)

    def _expected_text(self) -> str:
        return "comma-separated names from " + ", ".join(self._enum.__members__)

    def parse(self, x: str) -> tuple[Any, ...]:
        values = x.split(",") if x else []
        for index, name in enumerate(values):
            if name not in self._enum.__members__:
                raise ValueError(f'Invalid enum value "{name}" index {index} - '
                                 f'could not be parsed')
        return tuple(self._enum[name] for name in values)

    def serialize(self, x: Iterable[Any]) -> str:
        return ",".join(member.name for member in x)


def _validate_schema(schema: Any, value: Any) -> Any:
    """Check ``value`` with ``schema``, a validator object (anything with a
    ``validate(instance)`` method, as _schema_validator makes); None checks nothing."""
    if schema is None:
        return value
    plain = _unfreeze(value)
    schema.validate(plain)
    return plain


def _schema_validator(schema: Any) -> Any:
    """What checks a Dict/ListParameter's ``schema``: a validator object as given; a
    plain JSON schema through the jsonschema package when it is installed, as Luigi
    does (microflow itself needs none); else nothing, with a warning that says so."""
    if schema is None or hasattr(schema, "validate"):
        return schema
    try:
        import jsonschema   # type: ignore[import-untyped, unused-ignore]  # optional
    except ImportError:
        warnings.warn("The 'jsonschema' package is not installed so the parameter can not "
                      "be validated even though a schema is given.", stacklevel=3)
        return None
    validators = jsonschema.validators   # pyright: ignore[reportAttributeAccessIssue]
    return validators.validator_for(schema)(schema)


class DictParameter(Parameter["Mapping[Any, Any]"]):
    """A JSON object, held as a hashable FrozenOrderedDict."""

    _expected = "a JSON object"

    def __init__(self, default: Any = _NO_VALUE, *, schema: Any = None,
                 **kwargs: Any) -> None:
        self.schema = _schema_validator(schema)
        super().__init__(default=default, **kwargs)

    def normalize(self, x: Any) -> Any:
        return _freeze(_validate_schema(self.schema, x))

    def parse(self, x: Any) -> Any:
        if not isinstance(x, str):
            return x
        return json.loads(x, object_pairs_hook=FrozenOrderedDict)

    def serialize(self, x: Any) -> str:
        return json.dumps(x, cls=_FrozenJSONEncoder)


class OptionalDictParameter(_OptionalMixin["Mapping[Any, Any]"], DictParameter):
    """A DictParameter that defaults to None."""

    expected_type = FrozenOrderedDict


class ListParameter(Parameter["tuple[Any, ...]"]):
    """A JSON list, held as a (recursively frozen) tuple."""

    _expected = "a JSON list"

    def __init__(self, default: Any = _NO_VALUE, *, schema: Any = None,
                 **kwargs: Any) -> None:
        self.schema = _schema_validator(schema)
        super().__init__(default=default, **kwargs)

    def normalize(self, x: Any) -> Any:
        return _freeze(_validate_schema(self.schema, x))

    def parse(self, x: Any) -> Any:
        value = json.loads(x, object_pairs_hook=FrozenOrderedDict)
        return None if value is None else list(value)

    def serialize(self, x: Any) -> str:
        return json.dumps(x, cls=_FrozenJSONEncoder)


class OptionalListParameter(_OptionalMixin["tuple[Any, ...]"], ListParameter):
    """A ListParameter that defaults to None."""

    expected_type = tuple


class TupleParameter(ListParameter):
    """A tuple of tuples, written as JSON (``[[1, 2], [3]]``) or a Python literal."""

    _expected = "a JSON list of lists or a Python tuple literal"

    def parse(self, x: Any) -> Any:
        import ast
        try:
            return tuple(v if isinstance(v, str) else tuple(v)
                         for v in json.loads(x, object_pairs_hook=FrozenOrderedDict))
        except (ValueError, TypeError):
            result = ast.literal_eval(x)
            if isinstance(result, str):
                raise ValueError("Parsed result cannot be a string") from None
            return tuple(result)


class OptionalTupleParameter(_OptionalMixin["tuple[Any, ...]"], TupleParameter):
    """A TupleParameter that defaults to None."""

    expected_type = tuple


class NumericalParameter(Parameter["Any"]):
    """A number of ``var_type`` checked against ``[min_value, max_value)``.

    ``left_op`` and ``right_op`` (``operator.le``/``lt``) choose closed or open ends.
    """

    def __init__(self, default: Any = _NO_VALUE, *, var_type: Any = None,
                 min_value: Any = None, max_value: Any = None, left_op: Any = operator.le,
                 right_op: Any = operator.lt, **kwargs: Any) -> None:
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

    def _expected_text(self) -> str:
        return self._permitted_range

    def parse(self, x: Any) -> Any:
        value = self._var_type(x)
        if self._left_op(self._min_value, value) and self._right_op(value, self._max_value):
            return value
        raise ValueError(f"{x} is not in the set of {self._permitted_range}")


class OptionalNumericalParameter(_OptionalMixin["Any"], NumericalParameter):
    """A NumericalParameter that defaults to None."""

    def __init__(self, default: Any = _NO_VALUE, **kwargs: Any) -> None:
        NumericalParameter.__init__(self, default=default, **kwargs)
        self.expected_type = self._var_type


class ChoiceParameter(Parameter[_T]):
    """One value out of ``choices`` (converted with ``var_type``)."""

    def __init__(self, default: Any = _NO_VALUE, *, choices: Iterable[_T] | None = None,
                 var_type: Any = str, **kwargs: Any) -> None:
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

    def _expected_text(self) -> str:
        return "one of " + ", ".join(sorted(map(str, self._choices)))

    def parse(self, x: Any) -> Any:
        return self.normalize(self._var_type(x))

    def normalize(self, x: Any) -> Any:
        if x in self._choices:
            return x
        raise ValueError(f"{x} is not a valid choice from {self._choices}")


class ChoiceListParameter(ChoiceParameter["tuple[Any, ...]"]):
    """A tuple of values out of ``choices``, written comma-separated."""

    def __init__(self, default: Any = _NO_VALUE, var_type: Any = str, choices: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(default=default, var_type=var_type, choices=choices, **kwargs)

    def parse(self, x: str) -> Any:
        return self.normalize(map(self._var_type, x.split(",") if x else []))

    def normalize(self, x: Iterable[Any]) -> tuple[Any, ...]:
        return tuple(super(ChoiceListParameter, self).normalize(v) for v in x)

    def serialize(self, x: Iterable[str]) -> str:
        return ",".join(x)


class OptionalChoiceParameter(_OptionalMixin["Any"], ChoiceParameter["Any"]):
    """A ChoiceParameter that defaults to None."""

    def __init__(self, default: Any = _NO_VALUE, var_type: Any = str, choices: Any = None,
                 **kwargs: Any) -> None:
        ChoiceParameter.__init__(self, default=default, var_type=var_type,
                                 choices=choices, **kwargs)
        self.expected_type = self._var_type


class PathParameter(Parameter["pathlib.Path"]):
    """A ``pathlib.Path``; ``absolute=True`` resolves it, ``exists=True`` requires it."""

    _expected = "a path"

    def __init__(self, default: Any = _NO_VALUE, *, absolute: Any = False,
                 exists: Any = False, **kwargs: Any) -> None:
        super().__init__(default=default, **kwargs)
        self.absolute = absolute
        self.exists = exists

    def normalize(self, x: Any) -> Any:
        import pathlib
        path = pathlib.Path(x)
        if self.absolute:
            path = path.absolute()
        if self.exists and not path.exists():
            raise ValueError(f"The path {path} does not exist.")
        return path


class OptionalPathParameter(   # pyright: ignore[reportGeneralTypeIssues]  # Luigi's bases
        OptionalParameter, PathParameter):
    """A PathParameter that defaults to None."""

    expected_type: Any = (str, os.PathLike)

    if TYPE_CHECKING:   # a path or None (OptionalParameter's would say a str)
        @overload    # type: ignore[override]
        def __get__(self: _P, instance: None, owner: Any) -> _P: ...
        @overload
        def __get__(self, instance: object, owner: Any) -> Optional[pathlib.Path]: ...
        def __get__(   # pyright: ignore[reportIncompatibleMethodOverride]  # or None
                self, instance: object, owner: Any) -> Any: ...


###########################################################################################
# Date intervals (the values of DateIntervalParameter)
###########################################################################################

class DateInterval:
    """The half-open range of dates ``[date_a, date_b)``; iterating yields each date."""

    def __init__(self, date_a: datetime.date, date_b: datetime.date) -> None:
        self.date_a = date_a
        self.date_b = date_b

    def dates(self) -> list[datetime.date]:
        """Every date in the interval, as a list."""
        count = (self.date_b - self.date_a).days
        return [self.date_a + datetime.timedelta(days) for days in range(count)]

    def hours(self) -> Iterator[datetime.datetime]:
        """Every hour in the interval, as datetimes."""
        for date in self.dates():
            for hour in range(24):
                yield datetime.datetime.combine(date, datetime.time(hour))

    def to_string(self) -> str:
        """The interval in the form parse() reads."""
        raise NotImplementedError

    @classmethod
    def from_date(cls, d: datetime.date) -> DateInterval:
        """The interval of this kind containing date ``d``."""
        raise NotImplementedError

    @classmethod
    def parse(cls, s: str) -> DateInterval | None:
        """The interval written as ``s``, or None if ``s`` is not of this kind."""
        raise NotImplementedError

    def prev(self) -> DateInterval:
        """The interval of the same kind just before this one."""
        return self.from_date(self.date_a - datetime.timedelta(1))

    def next(self) -> DateInterval:
        """The interval of the same kind just after this one."""
        return self.from_date(self.date_b)

    def __str__(self) -> str:
        return self.to_string()

    __repr__ = __str__

    def __contains__(self, date: datetime.date) -> bool:
        return self.date_a <= date < self.date_b

    def __iter__(self) -> Iterator[datetime.date]:
        return iter(self.dates())

    def __hash__(self) -> int:
        return hash(repr(self))

    def _key(self, other: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        if not isinstance(self, type(other)):
            raise TypeError("Date interval type mismatch")
        return (self.date_a, self.date_b), (other.date_a, other.date_b)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DateInterval):
            return False
        mine, theirs = self._key(other)
        return mine == theirs

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __lt__(self, other: DateInterval) -> bool:
        mine, theirs = self._key(other)
        return mine < theirs

    def __le__(self, other: DateInterval) -> bool:
        mine, theirs = self._key(other)
        return mine <= theirs

    def __gt__(self, other: DateInterval) -> bool:
        mine, theirs = self._key(other)
        return mine > theirs

    def __ge__(self, other: DateInterval) -> bool:
        mine, theirs = self._key(other)
        return mine >= theirs


class _Date(DateInterval):
    """One day, written ``YYYY-MM-DD``."""

    def __init__(self, y: int, m: int, d: int) -> None:
        day = datetime.date(y, m, d)
        super().__init__(day, day + datetime.timedelta(1))

    def to_string(self) -> str:
        return self.date_a.strftime("%Y-%m-%d")

    @classmethod
    def from_date(cls, d: datetime.date) -> _Date:
        return cls(d.year, d.month, d.day)

    @classmethod
    def parse(cls, s: str) -> _Date | None:
        if re.match(r"\d{4}-\d\d-\d\d$", s):
            return cls(*map(int, s.split("-")))
        return None


class _Week(DateInterval):
    """An ISO week, Monday to Sunday, written ``YYYY-Www``."""

    def __init__(self, y: int, w: int) -> None:
        try:
            monday = datetime.date.fromisocalendar(y, w, 1)
        except ValueError:
            raise ValueError("Invalid week") from None
        super().__init__(monday, monday + datetime.timedelta(7))

    def to_string(self) -> str:
        return "%d-W%02d" % self.date_a.isocalendar()[:2]

    @classmethod
    def from_date(cls, d: datetime.date) -> _Week:
        return cls(*d.isocalendar()[:2])

    @classmethod
    def parse(cls, s: str) -> _Week | None:
        if re.match(r"\d{4}-W\d\d$", s):
            return cls(*map(int, s.split("-W")))
        return None


class _Month(DateInterval):
    """A calendar month, written ``YYYY-MM``."""

    def __init__(self, y: int, m: int) -> None:
        first = datetime.date(y, m, 1)
        super().__init__(first, _add_months(first, 1))

    def to_string(self) -> str:
        return self.date_a.strftime("%Y-%m")

    @classmethod
    def from_date(cls, d: datetime.date) -> _Month:
        return cls(d.year, d.month)

    @classmethod
    def parse(cls, s: str) -> _Month | None:
        if re.match(r"\d{4}-\d\d$", s):
            return cls(*map(int, s.split("-")))
        return None


class _Year(DateInterval):
    """A calendar year, written ``YYYY``."""

    def __init__(self, y: int) -> None:
        super().__init__(datetime.date(y, 1, 1), datetime.date(y + 1, 1, 1))

    def to_string(self) -> str:
        return self.date_a.strftime("%Y")

    @classmethod
    def from_date(cls, d: datetime.date) -> _Year:
        return cls(d.year)

    @classmethod
    def parse(cls, s: str) -> _Year | None:
        return cls(int(s)) if re.match(r"\d{4}$", s) else None


class _Custom(DateInterval):
    """Any range of days, written ``YYYY-MM-DD-YYYY-MM-DD`` (end exclusive)."""

    def to_string(self) -> str:
        return "-".join(d.strftime("%Y-%m-%d") for d in (self.date_a, self.date_b))

    @classmethod
    def parse(cls, s: str) -> _Custom | None:
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
    """How bytes on disk become what ``Target.open()`` returns (Luigi's interface).

    ``pipe_reader(input_pipe)`` wraps a binary file object for reading,
    ``pipe_writer(output_pipe)`` one for writing. ``input`` is what the format's file
    takes ("unicode" or "bytes") and ``output`` what it passes on below. Formats chain
    with ``>>``, the one you read and write first: ``UTF8 >> Gzip`` is UTF-8 text,
    gzip-compressed on disk.
    """

    name = None     # set on the named formats (UTF8, Gzip, ...), for messages

    @property
    def binary(self) -> bool:
        """Whether open() hands out bytes (not str)."""
        return getattr(self, "input", "bytes") != "unicode"

    def pipe_reader(self, input_pipe: Any) -> Any:
        """Wrap the binary file ``input_pipe`` for reading."""
        raise NotImplementedError(f"{type(self).__name__} has no pipe_reader")

    def pipe_writer(self, output_pipe: Any) -> Any:
        """Wrap the binary file ``output_pipe`` for writing."""
        raise NotImplementedError(f"{type(self).__name__} has no pipe_writer")

    def __repr__(self) -> str:
        return self.name or type(self).__name__

    def __rshift__(self, other: Format) -> Format:
        """``self`` on top of ``other``. Raises TypeError when ``other`` hands out text,
        which nothing can be put on top of (Luigi's rule)."""
        return ChainFormat(self, other)


class ChainFormat(Format):
    """``ChainFormat(a, b, ...)``: ``a`` on top (what open() hands out), the last next to
    the bytes on disk; each must take what the one above passes on."""

    def __init__(self, *args: Format, check_consistency: bool = True) -> None:
        self.args = args
        for end, attribute in ((args[0], "input"), (args[-1], "output")):
            if hasattr(end, attribute):
                setattr(self, attribute, getattr(end, attribute))
        for above, below in zip(args, args[1:]) if check_consistency else ():
            passes, takes = getattr(above, "output", None), getattr(below, "input", None)
            if passes and takes and passes != takes:
                raise TypeError(f"The format chaining is not valid: {below!r} expects "
                                f"{takes}, but {above!r} provides {passes} (put the text "
                                f"format first, e.g. UTF8 >> Gzip)")

    def pipe_reader(self, input_pipe: Any) -> Any:
        for part in reversed(self.args):
            input_pipe = part.pipe_reader(input_pipe)
        return input_pipe

    def pipe_writer(self, output_pipe: Any) -> Any:
        for part in reversed(self.args):
            output_pipe = part.pipe_writer(output_pipe)
        return output_pipe


class NopFormat(Format):
    """Raw bytes, as they are on disk."""

    def pipe_reader(self, input_pipe: Any) -> Any:
        return input_pipe

    def pipe_writer(self, output_pipe: Any) -> Any:
        return output_pipe


class WrappedFormat(Format):
    """A format whose file is ``wrapper_cls(pipe, *args, **kwargs)``."""

    wrapper_cls: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def pipe_reader(self, input_pipe: Any) -> Any:
        return self.wrapper_cls(input_pipe, *self.args, **self.kwargs)

    def pipe_writer(self, output_pipe: Any) -> Any:
        return self.wrapper_cls(output_pipe, *self.args, **self.kwargs)


def _abort(stream: Any) -> None:
    """Throw away what ``stream`` would publish on close (an atomic file's abort()), or
    just close it when it publishes nothing."""
    getattr(stream, "abort", stream.close)()


class _Aborting:
    """For the file objects open() hands out: leaving a ``with`` block by an exception,
    or being dropped unclosed, aborts (publishes nothing) instead of closing."""

    def __exit__(self: _Abortable, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: types.TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self: _Abortable) -> None:
        # Never publish from the garbage collector: data not closed is data not meant.
        if not self.closed:
            with contextlib.suppress(Exception):
                self.abort()


class TextWrapper(_Aborting, io.TextIOWrapper):
    """Text over a target's bytes: a real ``io.TextIOWrapper``, so libraries that test
    for ``io.TextIOBase`` write text to it; bytes written to it are a TypeError."""

    def abort(self) -> None:
        """Throw the data away: nothing is published."""
        _abort(self.buffer)


class TextFormat(WrappedFormat):
    """Text in ``encoding`` (the locale's when None) with universal newlines."""

    input, output, wrapper_cls = "unicode", "bytes", TextWrapper


class BaseWrapper:
    """A file object around ``stream`` that hands every other call to it."""

    def __init__(self, stream: Any, *args: Any, **kwargs: Any) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        if name == "_stream":   # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __enter__(self) -> Any:
        self._stream.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stream.__exit__(*exc_info)

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._stream
        finally:
            self.close()


class FileWrapper(BaseWrapper):
    """A file object that hands every call to ``file_object``; ``with`` gives the
    wrapper itself (so what was added to it stays reachable)."""

    def __init__(self, file_object: Any) -> None:
        super().__init__(file_object)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self._stream.__exit__(*exc_info)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._stream)


class NewlineWrapper(BaseWrapper):
    """Bytes whose line endings become ``newline`` (None: "\\n" when read, the
    platform's when written; "": left as they are)."""

    def __init__(self, stream: Any, newline: str | None = None) -> None:
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"NewlineWrapper: newline must be None, '', '\\n', '\\r' or "
                             f"'\\r\\n', got {newline!r}")
        super().__init__(stream)
        self.newline = newline if newline is None else newline.encode("ascii")

    def _convert(self, data: bytes, written: bool) -> bytes:
        if self.newline == b"" and not written:
            return data
        ending = self.newline or (os.linesep.encode("ascii") if written else b"\n")
        return re.sub(b"\r\n|\r|\n", ending, data)

    def read(self, n: int = -1) -> bytes:
        return self._convert(self._stream.read(n), written=False)

    def write(self, b: bytes) -> Any:
        return self._stream.write(self._convert(b, written=True))

    def writelines(self, lines: Iterable[bytes]) -> None:
        self._stream.writelines(self._convert(line, written=True) for line in lines)


class MixedUnicodeBytesWrapper(BaseWrapper):
    """Bytes that also takes str (encoded in ``encoding``, with Luigi's warning)."""

    def __init__(self, stream: Any, encoding: str | None = None) -> None:
        super().__init__(stream)
        if encoding is None:
            import locale
            encoding = locale.getpreferredencoding()
        self.encoding = encoding

    def _convert(self, data: Any) -> bytes:
        if isinstance(data, str):
            warnings.warn("Writing unicode to byte stream", stacklevel=3)
            return data.encode(self.encoding)
        return bytes(data)

    def write(self, b: Any) -> Any:
        return self._stream.write(self._convert(b))

    def writelines(self, lines: Iterable[Any]) -> None:
        self._stream.writelines(self._convert(line) for line in lines)


class NewlineFormat(WrappedFormat):
    """Bytes with one kind of line ending (NewlineWrapper)."""

    input, output, wrapper_cls = "bytes", "bytes", NewlineWrapper


class MixedUnicodeBytesFormat(WrappedFormat):
    """Bytes that also takes str (MixedUnicodeBytesWrapper)."""

    output, wrapper_cls = "bytes", MixedUnicodeBytesWrapper


class GzipFormat(Format):
    """gzip-compressed bytes through the stdlib ``gzip`` module (Luigi pipes through a
    ``gzip`` process); ``compression_level`` 1 to 9 (None: 9)."""

    input = output = "bytes"

    def __init__(self, compression_level: int | None = None) -> None:
        self.compression_level = compression_level

    def pipe_reader(self, input_pipe: Any) -> Any:
        import gzip
        return _ClosingStack(gzip.GzipFile(fileobj=input_pipe, mode="rb"), input_pipe)

    def pipe_writer(self, output_pipe: Any) -> Any:
        import gzip
        level = 9 if self.compression_level is None else int(self.compression_level)
        return _ClosingStack(gzip.GzipFile(fileobj=output_pipe, mode="wb",
                                           compresslevel=level), output_pipe)


class Bzip2Format(Format):
    """bzip2-compressed bytes through the stdlib ``bz2`` module."""

    input = output = "bytes"

    def pipe_reader(self, input_pipe: Any) -> Any:
        import bz2
        return _ClosingStack(bz2.BZ2File(input_pipe, mode="rb"), input_pipe)

    def pipe_writer(self, output_pipe: Any) -> Any:
        import bz2
        return _ClosingStack(bz2.BZ2File(output_pipe, mode="wb"), output_pipe)


class InputPipeProcessWrapper:
    """What ``command`` prints when fed ``input_pipe`` (a file, or nothing), read as a
    binary file; close() raises RuntimeError naming the command when it failed."""

    def __init__(self, command: Sequence[str], input_pipe: Any = None) -> None:
        import subprocess
        import tempfile
        self._command, self._input_pipe, self._spool = list(command), input_pipe, None
        stdin: Any = subprocess.DEVNULL if input_pipe is None else None
        if input_pipe is not None:
            try:
                input_pipe.fileno()
                stdin = input_pipe
            except (AttributeError, OSError, io.UnsupportedOperation):   # no descriptor
                self._spool = tempfile.TemporaryFile()
                import shutil
                shutil.copyfileobj(input_pipe, self._spool)
                self._spool.seek(0)
                stdin = self._spool
        self._process: Any = self.create_subprocess(self._command, stdin)

    def create_subprocess(self, command: Sequence[str], stdin: Any = None) -> Any:
        """Start ``command`` with its output to read (SIGPIPE as by default)."""
        import subprocess
        return subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE,
                                restore_signals=True)

    def close(self) -> None:
        """Wait for the command; RuntimeError if it failed (not when we stopped reading
        early and it got SIGPIPE)."""
        process = self._process
        process.stdout.close()
        code = process.wait()
        for pipe in (self._spool, self._input_pipe):
            if pipe is not None:
                pipe.close()
        import signal
        if code not in (0, -signal.SIGPIPE):
            raise RuntimeError(f"Error reading from pipe: {' '.join(self._command)} exited "
                               f"with {code}")

    def __getattr__(self, name: str) -> Any:
        if name == "_process":
            raise AttributeError(name)
        return getattr(self._process.stdout, name)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._process.stdout
        self.close()

    def __enter__(self) -> InputPipeProcessWrapper:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


class OutputPipeProcessWrapper:
    """A binary file whose bytes go through ``command`` into ``output_pipe`` (a
    target's atomic file): close() publishes only when the command succeeded;
    abort() stops it and publishes nothing."""

    WRITES_BEFORE_FLUSH = 10000

    def __init__(self, command: Sequence[str], output_pipe: Any = None) -> None:
        import subprocess
        self._command, self._output_pipe, self._writes = list(command), output_pipe, 0
        self._process: Any = subprocess.Popen(command, stdin=subprocess.PIPE,
                                              stdout=output_pipe or subprocess.DEVNULL)
        self.closed = False

    def write(self, *args: Any, **kwargs: Any) -> Any:
        self._writes += 1
        written = self._process.stdin.write(*args, **kwargs)
        if self._writes % self.WRITES_BEFORE_FLUSH == 0:
            self._process.stdin.flush()
        return written

    def writeLine(self, line: bytes) -> None:
        """Write ``line`` and a newline."""
        self.write(line + b"\n")

    def close(self) -> None:
        """Finish the command; publish ``output_pipe`` if it succeeded, else abort it
        and raise RuntimeError naming the command."""
        if self.closed:
            return
        self.closed = True
        self._process.stdin.close()
        code = self._process.wait()
        if code != 0:
            if self._output_pipe is not None:
                _abort(self._output_pipe)
            raise RuntimeError(f"Error when executing command {' '.join(self._command)}: "
                               f"exit code {code}")
        if self._output_pipe is not None:
            self._output_pipe.close()

    def abort(self) -> None:
        """Stop the command; nothing is published."""
        if not self.closed:
            self.closed = True
            self._process.kill()
            with contextlib.suppress(OSError):
                self._process.stdin.close()
            self._process.wait()
            if self._output_pipe is not None:
                _abort(self._output_pipe)

    def __enter__(self) -> OutputPipeProcessWrapper:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.close() if exc_type is None else self.abort()

    def __del__(self) -> None:   # dropped unclosed: data not closed is data not meant
        with contextlib.suppress(Exception):
            self.abort()

    def __getattr__(self, name: str) -> Any:
        if name == "_process":
            raise AttributeError(name)
        return getattr(self._process.stdin, name)

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class _ClosingStack(_Aborting, io.BufferedIOBase):
    """A gzip/bz2 file that also closes the file it sits on (they do not by themselves)."""

    def __init__(self, top: io.BufferedIOBase, below: io.IOBase) -> None:
        super().__init__()
        self._top, self._below = top, below

    def readable(self) -> bool:
        return self._top.readable()

    def writable(self) -> bool:
        return self._top.writable()

    def read(self, size: int | None = -1) -> bytes:
        return self._top.read(size)

    def read1(self, size: int = -1) -> bytes:
        return self._top.read1(size)

    def readinto(self, buffer: Any) -> int:
        return self._top.readinto(buffer)

    def write(self, data: Any) -> int:
        return self._top.write(data)

    def flush(self) -> None:
        if not self._top.closed:
            self._top.flush()

    def close(self) -> None:
        if not self.closed:
            try:
                self._top.close()
            finally:
                self._below.close()
                super().close()

    def abort(self) -> None:
        """Throw the data away: nothing is published."""
        if not self.closed:
            with contextlib.suppress(Exception):
                self._top.close()
            _abort(self._below)
            super().close()


#: Text in the locale's encoding (the default format).
Text = TextFormat()
#: Text in UTF-8.
UTF8 = TextFormat(encoding="utf-8")
#: Bytes with the platform's line endings when written, "\\n" when read.
SysNewLine = NewlineFormat()
#: Raw bytes.
Nop = NopFormat()
#: gzip-compressed bytes (``UTF8 >> Gzip`` for text).
Gzip = GzipFormat()
#: bzip2-compressed bytes (``UTF8 >> Bzip2`` for text).
Bzip2 = Bzip2Format()
#: Bytes that also takes str.
MixedUnicodeBytes = MixedUnicodeBytesFormat()
for _name in ("Text", "UTF8", "SysNewLine", "Nop", "Gzip", "Bzip2", "MixedUnicodeBytes"):
    globals()[_name].name = _name   # for messages


###########################################################################################
# Targets: atomic files, the local and the mock file systems
###########################################################################################

def get_default_format() -> Format:
    """The format of a target that names none (Luigi's): text."""
    return Text
del _name


class _AtomicFile(_Aborting, io.BufferedWriter):
    """The bytes of ``open("w")``: a real ``io.BufferedWriter`` onto a temporary (``raw``),
    published on close. abort(), an exception leaving the ``with`` block, or the
    garbage collector finding it open throw the data away instead, so a reader never
    sees half a file."""

    def __init__(self, raw: Any, publish: Callable[[], None], discard: Callable[[], None]) -> None:
        super().__init__(raw)
        self._publish, self._discard = publish, discard

    def close(self) -> None:
        """Flush and publish the data (nothing is published if the flush fails)."""
        if self.closed:
            return
        try:
            super().close()
        except BaseException:
            self._discard()
            raise
        self._publish()

    def abort(self) -> None:
        """Throw the data away: nothing is published."""
        if self.closed:
            return
        with contextlib.suppress(Exception):
            self.raw.close()   # unflushed bytes are dropped with it
        with contextlib.suppress(Exception):
            super().close()
        self._discard()


class AtomicLocalFile(_AtomicFile):
    """Luigi's base of atomic local files: written at ``tmp_path`` (from
    ``generate_tmp_path(path)``), then ``move_to_final_destination()`` on close; an
    exception leaving ``with``, or an abort, removes the temporary instead."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._tmp_path = self.generate_tmp_path(path)
        super().__init__(io.FileIO(self._tmp_path, "w"), self.move_to_final_destination,
                         self._remove_tmp)

    @property
    def tmp_path(self) -> str:
        """Where the data is written until it is published."""
        return self._tmp_path

    def generate_tmp_path(self, path: str) -> str:
        """A fresh temporary path for ``path`` (Luigi's default: in the temp folder)."""
        import tempfile
        return os.path.join(tempfile.gettempdir(), f"luigi-s3-tmp-{_random_digits(9)}")

    def move_to_final_destination(self) -> None:
        """Publish ``tmp_path`` at ``path``; each kind of file says how."""
        raise NotImplementedError(f"{type(self).__name__}.move_to_final_destination")

    def _remove_tmp(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._tmp_path)


class atomic_file(AtomicLocalFile):
    """A local file written beside ``path`` (``<path>-luigi-tmp-<digits>``) and moved
    onto it with os.replace on close (Luigi's luigi.local_target.atomic_file)."""

    def move_to_final_destination(self) -> None:
        os.replace(self.tmp_path, self.path)

    def generate_tmp_path(self, path: str) -> str:
        return _temporary_name(path, 9)


class _MemoryFile(io.RawIOBase):
    """The raw bytes under a MockTarget's atomic file; ``kept`` once closed."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self.kept = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.kept = b"".join(self._chunks)
        super().close()


class Target(abc.ABC):
    """Something a task produces; ``exists()`` says whether it has been produced."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """True if the target exists."""


class FileSystem(abc.ABC):
    """Operations on a file system that targets live on."""

    @abc.abstractmethod
    def exists(self, path: str) -> bool:
        """True if ``path`` exists."""

    @abc.abstractmethod
    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        """Remove ``path`` (a folder with everything in it when ``recursive``)."""

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Create folder ``path``."""
        raise NotImplementedError(f"{type(self).__name__} cannot make folders")

    def isdir(self, path: str) -> bool:
        """True if ``path`` is a folder."""
        raise NotImplementedError(f"{type(self).__name__} cannot tell folders")

    def listdir(self, path: str) -> Iterable[str]:
        """The paths below ``path``."""
        raise NotImplementedError(f"{type(self).__name__} cannot list folders")

    def move(self, path: str, dest: str) -> None:
        """Move ``path`` to ``dest``."""
        raise NotImplementedError(f"{type(self).__name__} cannot move files")

    def rename(self, path: str, dest: str) -> None:
        """Luigi's other name for move()."""
        self.move(path, dest)

    def copy(self, path: str, dest: str, raise_if_exists: bool = False) -> None:
        """Copy file ``path`` to ``dest``."""
        raise NotImplementedError(f"{type(self).__name__} cannot copy files")

    def rename_dont_move(self, path: str, dest: str) -> None:
        """Rename ``path`` to ``dest``, refusing to overwrite an existing ``dest``."""
        if self.exists(dest):
            raise FileAlreadyExists(f"Destination exists: {dest}")
        self.move(path, dest)


class LocalFileSystem(FileSystem):
    """The local disk."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        if recursive and os.path.isdir(path):
            import shutil
            shutil.rmtree(path)
        else:
            os.remove(path)

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        if os.path.exists(path):
            if raise_if_exists:
                raise FileAlreadyExists(f"Path exists: {path}")
            if not os.path.isdir(path):
                raise NotADirectory(f"Not a folder: {path}")
            return
        if parents:
            os.makedirs(path, exist_ok=True)
        elif not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise MissingParentDirectory(f"No folder to create {path} in (parents=False)")
        else:
            os.mkdir(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> Iterator[str]:
        for folder, _, files in os.walk(path):
            for name in files:
                yield os.path.join(folder, name)

    def copy(   # pyright: ignore[reportIncompatibleMethodOverride]  # Luigi's names
            self, old_path: str, new_path: str, raise_if_exists: bool = False) -> None:
        """Copy a file, creating the destination's folders; publishes atomically."""
        import shutil
        if raise_if_exists and os.path.exists(new_path):
            raise FileAlreadyExists(f"Destination exists: {new_path}")
        os.makedirs(os.path.dirname(os.path.abspath(new_path)), exist_ok=True)
        staging = _temporary_name(new_path)
        shutil.copy2(old_path, staging)
        os.replace(staging, new_path)

    def move(self, path: str, dest: str) -> None:
        """Move atomically with ``os.replace``; across devices, copy then replace."""
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        try:
            os.replace(path, dest)
        except OSError:   # another device: copy (atomically), then remove
            self.copy(path, dest)
            os.remove(path)

    rename = move


class FileSystemTarget(Target):
    """A target at ``path`` on some FileSystem (``fs``)."""

    def __init__(self, path: Any) -> None:
        self.path = str(path)

    @property
    @abc.abstractmethod
    def fs(self) -> FileSystem:
        """The FileSystem this target lives on."""

    @abc.abstractmethod
    def open(self, mode: str = "r") -> Any:   # text or bytes, as the mode says
        """Open the target for reading (``"r"``) or atomic writing (``"w"``)."""

    def exists(self) -> bool:
        if any(char in self.path for char in "*?["):
            warnings.warn(f"Using wildcards in path {self.path} might lead to processing "
                          f"of an incomplete dataset; override exists() to suppress "
                          f"the warning.")
        return self.fs.exists(self.path)

    def remove(self) -> None:
        """Remove the target."""
        self.fs.remove(self.path)

    #: What open() hands out when no format is given and the mode has no "b".
    _default_text_format = Text
    format: Format | None = None   # set by a subclass's constructor

    def _format_for(self, mode: str) -> Format:
        if self.format is not None:
            return self.format
        return Nop if "b" in mode else self._default_text_format

    def _touchz(self) -> None:
        """Create the target empty (Luigi's helper)."""
        with self.open("w"):
            pass

    def _trailing_slash(self) -> str:
        """The path's trailing separator ("/" or "\\"), or "" (Luigi's helper)."""
        return self.path[-1] if self.path[-1:] in ("/", "\\") else ""

    def _mode_kind(self, mode: str) -> str:
        """"r" or "w" for ``mode`` ("b" and "t" only choose the default format)."""
        if not isinstance(mode, str):
            raise TypeError(f"{type(self).__name__}({self.path!r}).open: mode must be a "
                            f"string such as 'r' or 'w', got {mode!r}")
        kind = mode.replace("b", "").replace("t", "")
        if kind not in ("r", "w"):
            raise ValueError(f"{type(self).__name__}({self.path!r}).open: unsupported mode "
                             f"{mode!r}; use 'r', 'w', 'rb' or 'wb'")
        return kind

    @contextlib.contextmanager
    def temporary_path(self) -> Iterator[str]:
        """Yield a temporary path to write to; it becomes ``path`` if the block succeeds.

        The parent folder is created. After an exception nothing is moved and the
        temporary is removed.
        """
        slashless = self.path.rstrip("/").rstrip("\\")
        temporary = _temporary_name(slashless)
        parent = os.path.dirname(slashless)
        if parent:
            with contextlib.suppress(NotImplementedError):
                self.fs.mkdir(parent, parents=True, raise_if_exists=False)
        try:   # a folder's temporary keeps its trailing separator, as Luigi's does
            yield temporary + self.path[len(slashless):]
        except BaseException:
            if self.fs.exists(temporary):
                self.fs.remove(temporary)
            raise
        self.fs.rename_dont_move(temporary + self.path[len(slashless):], self.path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


class LocalTarget(FileSystemTarget):
    """A file on the local disk, written atomically.

    ``open("w")`` writes to ``<path>-luigi-tmp-<random>`` in the same folder and
    ``os.replace``s it onto ``path`` on close; an exception inside ``with`` publishes
    nothing and leaves no temporary. Parent folders are created. ``format`` decides
    what ``open`` hands out (default: text); a ``"b"`` in the mode with no format means
    bytes. ``is_tmp=True`` picks a fresh temporary path, removed when the target dies.
    """

    fs: LocalFileSystem = (   # pyright: ignore[reportIncompatibleMethodOverride]
        LocalFileSystem())   # a class attribute for the abstract property, as in Luigi

    def __init__(self, path: Any = None, format: Any = None, is_tmp: Any = False) -> None:
        if path is None:
            if not is_tmp:
                raise ValueError("LocalTarget needs a path, or is_tmp=True")
            import tempfile
            path = _temporary_name(os.path.join(tempfile.gettempdir(), "microflow"))
        super().__init__(path)
        self.format = format
        self.is_tmp = is_tmp

    @overload   # text or bytes, as the mode says (with the default formats)
    def open(self, mode: Literal["r", "w"] = "r") -> IO[str]: ...
    @overload
    def open(self, mode: Literal["rb", "wb"]) -> IO[bytes]: ...
    @overload
    def open(self, mode: str = "r") -> Any: ...

    def open(self, mode: str = "r") -> Any:
        """Open for reading (``"r"``, ``"rb"``) or atomic writing (``"w"``, ``"wb"``)."""
        if self._mode_kind(mode) == "r":
            return self._format_for(mode).pipe_reader(io.open(self.path, "rb"))
        return self._open_atomic(self._format_for(mode))

    def _open_atomic(self, file_format: Format) -> Any:
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        atomic = atomic_file(self.path)   # holds the path, not self (kept alive otherwise)
        try:
            return file_format.pipe_writer(atomic)
        except BaseException:
            atomic.abort()
            raise

    @property
    def fn(self) -> str:
        """The path (Luigi's deprecated name for it; DeprecationWarning)."""
        warnings.warn("Use LocalTarget.path to reference filename", DeprecationWarning,
                      stacklevel=2)
        return self.path

    def makedirs(self) -> None:
        """Create the folder that will hold this target."""
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)

    def move(self, new_path: str, raise_if_exists: bool = False) -> None:
        """Move the file to ``new_path``."""
        if raise_if_exists and os.path.exists(new_path):
            raise FileAlreadyExists(f"Destination exists: {new_path}")
        self.fs.move(self.path, new_path)

    def move_dir(self, new_path: str) -> None:
        """Move the folder to ``new_path``."""
        self.move(new_path)

    def copy(self, new_path: str, raise_if_exists: bool = False) -> None:
        """Copy the file to ``new_path`` (published atomically)."""
        self.fs.copy(self.path, new_path, raise_if_exists)

    def __del__(self) -> None:
        if getattr(self, "is_tmp", False) and os.path.exists(self.path):
            with contextlib.suppress(OSError):
                self.fs.remove(self.path)


class MockFileSystem(FileSystem):
    """An in-memory file system shared by every MockTarget of a build: what a task
    writes in a worker process reaches the parent and the other worker processes too
    (as Luigi shares it between processes), through the task processes' hook for
    shared stores (_SHARED_STORES)."""

    _data: dict[str, bytes] = {}
    _lock = threading.Lock()
    # In a worker process: path -> bytes (None: removed), changed since last taken.
    _changes: dict[str, bytes | None] | None = None

    @classmethod
    def _store(cls, path: str, data: bytes | None) -> None:
        """Write (None: remove) one file; the caller holds the lock."""
        if data is None:
            cls._data.pop(path, None)
        else:
            cls._data[path] = data

    @classmethod
    def _set(cls, path: str, data: bytes | None) -> None:
        with cls._lock:
            cls._store(path, data)
            if cls._changes is not None:
                cls._changes[path] = data

    # What a shared store offers task processes (see _SHARED_STORES).
    @classmethod
    def _start_recording(cls) -> None:
        """In a task process: keep what this process changes, to be taken."""
        cls._changes = {}

    @classmethod
    def _take_changes(cls) -> dict[str, bytes | None] | None:
        """What this process changed since the last call (None: nothing)."""
        changes, cls._changes = cls._changes, {}
        return changes or None

    @classmethod
    def _apply(cls, changes: dict[str, bytes | None]) -> None:
        """Apply another process's changes (a dict) without recording them."""
        if changes:
            with cls._lock:
                for path, data in changes.items():
                    cls._store(path, data)

    @classmethod
    def _snapshot(cls) -> dict[str, bytes | None]:
        """Everything, as changes: what a spawned process starts from."""
        with cls._lock:
            return dict(cls._data)

    def exists(self, path: str) -> bool:
        return path in self._data

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        prefix = path.rstrip("/") + "/" if path.rstrip("/") else ""   # "": everything
        for key in [k for k in self._data if k == path or (recursive and
                                                            k.startswith(prefix))]:
            self._set(key, None)

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Folders are implicit in a mock file system."""

    def isdir(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(k.startswith(prefix) for k in self._data)

    def listdir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return [k for k in self._data if k.startswith(prefix)]

    def move(self, path: str, dest: str) -> None:
        data = self._data[path]
        self._set(path, None)
        self._set(dest, data)

    def copy(self, path: str, dest: str, raise_if_exists: bool = False) -> None:
        """Copy ``path``'s bytes to ``dest``."""
        if raise_if_exists and dest in self._data:
            raise FileAlreadyExists(f"Destination exists: {dest}")
        self._set(dest, self._data[path])

    def get_all_data(self) -> dict[str, bytes]:
        """The dict of path to bytes behind every MockTarget."""
        return self._data

    def get_data(self, path: str) -> bytes:
        """The bytes stored at ``path``."""
        return self._data[path]

    def clear(self) -> None:
        """Forget every file."""
        for key in list(self._data):
            self._set(key, None)


class MockTarget(FileSystemTarget):
    """An in-memory target for unit tests; writes are published on close, like files."""

    fs: MockFileSystem = (   # pyright: ignore[reportIncompatibleMethodOverride]
        MockFileSystem())   # a class attribute for the abstract property, as in Luigi

    def __init__(self, fn: Any, is_tmp: Any = None, mirror_on_stderr: Any = False,
                 format: Any = None) -> None:
        super().__init__(fn)
        self.format = format
        self._mirror_on_stderr = mirror_on_stderr

    _default_text_format = UTF8

    @overload   # text or bytes, as the mode says (with the default formats)
    def open(self, mode: Literal["r", "w"] = "r") -> IO[str]: ...
    @overload
    def open(self, mode: Literal["rb", "wb"]) -> IO[bytes]: ...
    @overload
    def open(self, mode: str = "r") -> Any: ...

    def open(self, mode: str = "r") -> Any:
        """Open for reading (``"r"``, ``"rb"``) or writing (``"w"``, ``"wb"``)."""
        if self._mode_kind(mode) == "r":
            if self.path not in self.fs._data:
                raise FileNotFoundError(f"MockTarget {self.path!r} does not exist")
            return self._format_for(mode).pipe_reader(io.BytesIO(self.fs._data[self.path]))
        raw = _MemoryFile()

        def publish() -> None:
            self.fs._set(self.path, raw.kept)
            if self._mirror_on_stderr:
                sys.stderr.write(raw.kept.decode("utf-8", "replace"))
        return self._format_for(mode).pipe_writer(_AtomicFile(raw, publish, lambda: None))

    def move(self, new_path: str, raise_if_exists: bool = False) -> None:
        """Move the data to ``new_path``."""
        if raise_if_exists and self.fs.exists(new_path):
            raise FileAlreadyExists(f"Destination exists: {new_path}")
        self.fs.move(self.path, new_path)

    def rename(self, *args: Any, **kwargs: Any) -> None:
        """move() (Luigi's other name for it)."""
        self.move(*args, **kwargs)


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


def task_id_str(task_family: str, params: Mapping[str, Any]) -> str:
    """The task id Luigi computes for ``task_family`` and ``{name: serialized value}``.

    ``Family_<first three values by name, 16 chars each>_<md5 prefix>``, where every
    character outside ``[A-Za-z0-9_]`` in the middle part becomes ``_``.
    """
    names = sorted(params)
    return _task_id(task_family, [_json_string(name) + ":" for name in names],
                    [params[name] for name in names])


def _task_id(task_family: str, keys: Sequence[str], values: Sequence[Any]) -> str:
    """task_id_str() with the names already sorted and JSON-encoded (``'"name":'``)."""
    # The same bytes as json.dumps(params, separators=(",", ":"), sort_keys=True), built
    # directly with C-level helpers: this runs once per task, and json.dumps alone
    # would cost more than all the rest of creating a task.
    try:
        if len(values) == 1:   # the common case, without the list and the join
            canonical = "{" + keys[0] + _encode_json_str(values[0]) + "}"
        else:
            canonical = "{" + ",".join(map(operator.add, keys, map(_encode_json_str,
                                                                   values))) + "}"
    except TypeError:   # a serialize() that returned something other than a str
        canonical = "{" + ",".join(map(operator.add, keys, map(_json_string, values))) + "}"
    digest = _md5(canonical.encode("utf-8")).hexdigest()
    if len(values) == 1:
        shown = values[0][:_TASK_ID_TRUNCATE_PARAMS]
    else:
        shown = "_".join([value[:_TASK_ID_TRUNCATE_PARAMS]
                            for value in values[:_TASK_ID_INCLUDE_PARAMS]])
    if not (shown.isascii() and shown.replace("_", "a").isalnum()):
        shown = re.sub(_TASK_ID_INVALID_CHAR, "_", shown)
    return f"{task_family}_{shown}_{digest[:_TASK_ID_TRUNCATE_HASH]}"


_encode_json_str = json.encoder.encode_basestring_ascii


try:   # the builtin module is several times faster to call than hashlib's OpenSSL one
    from _md5 import md5 as _md5   # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - Pythons built without it
    def _md5(data: bytes) -> Any:
        import hashlib
        return hashlib.md5(data, usedforsecurity=False)


def _json_string(value: Any) -> str:
    if isinstance(value, str):
        return json.encoder.encode_basestring_ascii(value)
    return json.dumps(value)


class _ClassInfo:
    """What instantiating a task class needs, computed once per class (and again
    when a Parameter is added to a class later, as @inherits does)."""

    __slots__ = ("generation", "params", "by_name", "positional", "family", "id_names",
                 "id_keys", "visible", "visible_names", "visibilities", "serializers",
                 "type_checked", "names", "positional_names", "normalizers",
                 "config_generation", "own_retry_policy", "module", "plain_resources",
                 "plain_owners", "batch_names", "reported_family")

    def __init__(self, cls: type[Task], generation: int) -> None:
        params = [(name, value) for name in dir(cls)
                  for value in (getattr(cls, name, None),) if isinstance(value, Parameter)]
        params.sort(key=lambda pair: pair[1]._counter)
        self.generation = generation
        self.params = params
        self.by_name = dict(params)
        self.positional = [pair for pair in params if pair[1].positional]
        self.family = cls.get_task_family()
        self.visible_names = [name for name, p in params
                              if p.visibility != ParameterVisibility.PRIVATE]
        self.visible = [(name, p) for name, p in params
                        if p.visibility != ParameterVisibility.PRIVATE]
        self.visibilities = {name: p.visibility.serialize() for name, p in self.visible}
        # The builtin str where serialize() is Parameter's own: a C call, not a frame.
        self.serializers = [(name, str if type(p).serialize is Parameter.serialize
                             else p.serialize) for name, p in self.visible]
        # The task id hashes the significant public values sorted by name: fix that
        # order, and each name's JSON prefix, once per class.
        self.id_names = sorted(name for name, p in params
                               if p.significant and p.visibility == ParameterVisibility.PUBLIC)
        self.id_keys = [_json_string(name) + ":" for name in self.id_names]
        # Luigi's base check applies to plain Parameters only; any class of its own
        # (Optional*, TimeDelta, a library's) is asked too.
        self.type_checked = [(name, p) for name, p in params if type(p) is Parameter
                             or type(p)._warn_on_wrong_param_type
                             is not Parameter._warn_on_wrong_param_type]
        self.names = tuple(name for name, _ in params)
        self.positional_names = tuple(name for name, _ in self.positional)
        # None where normalize() is Parameter's own (the identity): no call needed.
        self.normalizers = [None if type(p).normalize is Parameter.normalize
                            else p.normalize for _, p in params]
        self.config_generation: int | None = None   # when [Family] was last checked
        self.own_retry_policy = any(getattr(cls, name) is not getattr(Task, name, None)
                                    for name in _RETRY_POLICY_NAMES)
        # What the worker reports of every task of the class, when the class keeps
        # Task's own definitions (so they need not be asked of each task).
        self.module = cls.__module__ if cls.task_module is Task.task_module else None
        self.plain_resources = cls.process_resources is Task.process_resources
        self.plain_owners = cls.owner_email is Task.owner_email
        self.batch_names = [name for name, p in params if p._is_batchable()]
        # What the scheduler is told: a class attribute task_family = "..." (Luigi
        # reports task.task_family, which such an attribute overrides; the id keeps
        # the class's own family).
        override = next((c.__dict__["task_family"] for c in cls.__mro__
                         if "task_family" in c.__dict__), None)
        self.reported_family = override if isinstance(override, str) else self.family

    def given_values(self, args: Sequence[Any], kwargs: dict[str, Any]) -> list[Any] | None:
        """The normalized values, in declaration order, when the call itself gives every
        parameter (the common case, and the one to make fast); None when a value must
        come from elsewhere, or an error must be explained (get_param_values does both)."""
        count = len(self.names)
        if kwargs:
            if len(args) + len(kwargs) != count or len(args) > len(self.positional_names):
                return None
            given = dict(zip(self.positional_names, args))
            given.update(kwargs)
            if len(given) != count:
                return None        # a name given twice
            try:
                args = [given[name] for name in self.names]
            except KeyError:       # an unknown name
                return None
        elif len(args) != count or count != len(self.positional_names):
            return None
        values = []
        try:
            for normalize, value in zip(self.normalizers, args):
                if normalize is not None:
                    value = normalize(value)
                values.append(tuple(value) if type(value) in (list, set) else value)
        except (ValueError, TypeError):
            return None
        return values


class _Registry:
    """Every task class, the namespaces in force, and the instance cache.

    One small object rather than scattered globals, so a test can reset it whole.
    """

    AMBIGUOUS = object()

    def __init__(self) -> None:
        self.classes: list[Any] = []
        self.namespaces: dict[str, str] = {}   # module prefix -> namespace
        # class -> {parameter values: task}; None: disabled
        self.instance_cache: dict[Any, dict[Any, Any]] | None = {}
        self.generation = 0           # bumped when a class gains or loses a Parameter
        self.class_infos: dict[Any, _ClassInfo] = {}   # class -> its _ClassInfo
        self._by_family: dict[str, Any] | None = None  # family -> class (or AMBIGUOUS)

    def add(self, cls: Any) -> None:
        self.classes.append(cls)
        self._by_family = None

    def namespace_for(self, module_name: str) -> str:
        """The namespace registered for the most specific prefix of ``module_name``."""
        parts = module_name.split(".")
        for end in range(len(parts), 0, -1):
            entry = self.namespaces.get(".".join(parts[:end]))
            if entry:
                return entry
        return self.namespaces.get("", "") or ""

    def by_family(self) -> dict[str, Any]:
        """Map family name to class; unrelated classes sharing a name are AMBIGUOUS."""
        if self._by_family is None:
            table: dict[str, Any] = {}
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

    def get(self, name: str) -> type[Task]:
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
        task_class: type[Task] = found
        return task_class

    def _import_class(self, spec: str) -> type[Task]:
        try:
            cls = _import_object(spec)
        except (ImportError, AttributeError) as exc:
            raise TaskClassNotFoundException(f"No task {spec!r}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TaskClassNotFoundException(f"{spec!r} is not a Task subclass")
        return cls

    def _import_family(self, name: str) -> type[Task] | None:
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

    def _missing_message(self, name: str) -> str:
        families = {f: c for f, c in self.by_family().items() if c is not self.AMBIGUOUS}
        close = _suggestions(name, list(families))
        if close:
            return f"No task {name}. Did you mean: {', '.join(close)}?"
        yours = sorted(f for f, c in families.items() if c.__module__ != __name__)
        if not yours:   # only microflow's own classes: the module was not imported
            return (f"No task {name}: no task module is loaded; name the module that "
                    f"defines it: --module pkg.mod {name}, or pkg.mod:{name}")
        return f"No task {name}. Candidates are: {','.join(yours)}"


_REGISTRY = _Registry()


_second = operator.itemgetter(1)


class _RegisterType(type):
    """Register's own type, for ``Register._reg``: Luigi's list of every task class,
    which libraries built on Luigi read and assign to prune the registry."""

    @property
    def _reg(cls) -> Any:
        return _REGISTRY.classes

    @_reg.setter
    def _reg(cls, classes: Any) -> None:
        _REGISTRY.classes = list(classes)
        _REGISTRY._by_family = None


class Register(abc.ABCMeta, metaclass=_RegisterType):
    """The metaclass of every Task: registers the class and caches instances.

    ``T(1) is T(n=1)``: instances with the same parameter values are the same object
    (values that cannot be hashed bypass the cache).
    """

    AMBIGUOUS_CLASS = _Registry.AMBIGUOUS

    # Plain class checks: ABCMeta's virtual-subclass machinery is slow, and nobody
    # registers virtual task subclasses. isinstance(x, Task) runs per task, many times.
    __instancecheck__ = type.__instancecheck__
    __subclasscheck__ = type.__subclasscheck__

    def __new__(mcs, classname: str, bases: tuple[type, ...], classdict: dict[str, Any],
                **kwargs: Any) -> Register:
        cls = super().__new__(mcs, classname, bases, classdict, **kwargs)
        cls._namespace_at_class_time = _REGISTRY.namespace_for(cls.__module__)
        _REGISTRY.add(cls)
        return cls

    def __setattr__(cls, name: str, value: Any) -> None:
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

    def _create(cls: Any, *args: Any, **kwargs: Any) -> Any:
        """``cls(...)``: an instance, from the cache when its values were seen before."""
        info = _REGISTRY.class_infos.get(cls)
        if info is None or info.generation != _REGISTRY.generation:
            info = cls._info()
        values = None
        if info.config_generation == _CONFIG.generation:   # else: check [Family] first
            values = info.given_values(args, kwargs)
        if values is None:
            values = list(map(_second, cls.get_param_values(info.params, args, kwargs)))
        caches = _REGISTRY.instance_cache
        if caches is None:
            return cls._instantiate(info, values, args, kwargs)
        cache = caches.get(cls)
        if cache is None:
            cache = caches[cls] = {}
        # The values in declaration order identify an instance of the class: the value
        # itself when there is one, else a tuple (one object fewer per task to keep
        # and for the garbage collector to visit).
        key = values[0] if len(values) == 1 else tuple(values)
        try:
            task = cache.get(key)
        except TypeError:   # an unhashable value: no caching for this one
            return cls._instantiate(info, values, args, kwargs)
        if task is None:
            task = cache[key] = cls._instantiate(info, values, args, kwargs)
        return task

    if TYPE_CHECKING:   # checkers see an instance of the class called
        def __call__(cls: type[_S], *args: Any, **kwargs: Any) -> _S: ...
    else:
        __call__ = _create

    def _instantiate(cls: Any, info: _ClassInfo, values: list[Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        if cls.__init__ is Task.__init__:
            # Fast path: the values are resolved already, don't resolve them twice.
            task = cls.__new__(cls)
            task._set_values(info, values)
            return task
        return super().__call__(*args, **kwargs)

    @property
    def task_family(cls: Any) -> str:
        """The family name: ``ClassName`` or ``namespace.ClassName``."""
        family: str = cls.get_task_family()
        return family

    # -- Luigi's class-level registry API --------------------------------------------

    @classmethod
    def clear_instance_cache(mcs) -> None:
        """Forget every cached task instance."""
        _REGISTRY.instance_cache = {}

    @classmethod
    def disable_instance_cache(mcs) -> None:
        """Stop caching task instances (every call builds a new one)."""
        _REGISTRY.instance_cache = None

    @classmethod
    def get_task_cls(mcs, name: str) -> type[Task]:
        """The task class for a family name, ``module:Class`` or ``module.Family``."""
        return _REGISTRY.get(name)

    @classmethod
    def task_names(mcs) -> list[str]:
        """Every registered family name, sorted."""
        return sorted(_REGISTRY.by_family())

    @classmethod
    def tasks_str(mcs) -> str:
        """The registered family names, comma-separated."""
        return ",".join(mcs.task_names())

    @classmethod
    def _get_reg(mcs) -> dict[str, Any]:
        return dict(_REGISTRY.by_family())

    @classmethod
    def _set_reg(mcs, reg: Mapping[str, Any]) -> None:
        _REGISTRY.classes = [c for c in reg.values() if c is not _REGISTRY.AMBIGUOUS]
        _REGISTRY._by_family = None

    @classmethod
    def get_all_params(mcs) -> Iterator[tuple[str, bool, str, Parameter[Any]]]:
        """Yield ``(family, is_without_section, param_name, param)`` for every task."""
        for family, cls in _REGISTRY.by_family().items():
            if cls is _REGISTRY.AMBIGUOUS:
                continue
            for name, param in cls.get_params():
                yield family, not cls.use_cmdline_section, name, param


def namespace(namespace: str | None = None, scope: str = "") -> None:
    """Put task classes defined from now on (in modules under ``scope``) in ``namespace``.

    A class's own ``task_namespace`` attribute wins over this.
    """
    _REGISTRY.namespaces[scope] = namespace or ""


def auto_namespace(scope: str = "") -> None:
    """Like :func:`namespace`, with each class's ``__module__`` as its namespace."""
    namespace(namespace=_SAME_AS_PYTHON_MODULE, scope=scope)


def flatten(struct: Any) -> list[Any]:
    """A flat list of the items in nested dicts (values), lists, tuples and iterables.

    Strings are atoms and ``None`` is ``[]``: ``flatten({"a": [1, (2,)]}) == [1, 2]``.
    """
    if struct is None:
        return []
    if type(struct) is list:   # the common case: already a flat list of tasks
        tasks = [item for item in struct if isinstance(item, Task)]
        if len(tasks) == len(struct):
            return tasks
    elif isinstance(struct, (Task, str, Target)):   # atoms, without a try/except
        return [struct]
    if isinstance(struct, dict):
        struct = struct.values()
    try:
        iterator = iter(struct)
    except TypeError:
        return [struct]
    flat = []
    for item in iterator:
        if isinstance(item, (Task, Target)):
            flat.append(item)
        else:
            flat.extend(flatten(item))
    return flat


def flatten_output(task: Task) -> list[Any]:
    """The output targets of ``task``, looking through tasks without outputs (wrapper
    tasks) to what they require, each task once, breadth-first."""
    found, queue, seen = [], [task], set()
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        if flatten(current.output()):
            found.append(current)
        else:
            queue.extend(flatten(current.requires()))
    return flatten([each.output() for each in found])


def getpaths(struct: Any) -> Any:
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


###########################################################################################
# Tasks: the Task class, and inherits, requires, copies, delegates
###########################################################################################

class Task(metaclass=Register):
    """A unit of work: override ``requires()``, ``output()`` and ``run()``.

    Declare Parameters as class attributes; each distinct set of values is a distinct
    task, identified by ``task_id``. The class attributes ``priority``, ``resources``,
    ``worker_timeout``, ``retry_count``, ``disabled`` and ``accepts_messages`` guide the
    scheduler.
    """

    _event_callbacks: dict[Any, Any] = {}

    #: Higher runs first; dependencies inherit the priority of what needs them.
    priority = 0
    #: A disabled task is never run.
    disabled = False
    #: Resources held while running, e.g. ``{"db": 1}``; capacities come from [resources].
    resources: dict[str, int] = {}
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
    _repr_text = None   # set on the instance by the first repr()

    # -- retry policy and ownership (properties, so subclasses may compute them) -------

    @property
    def retry_count(self) -> int | None:
        """Failures allowed inside ``disable_window`` before the task is disabled."""
        return None

    @property
    def disable_hard_timeout(self) -> int | None:
        """Seconds after the first failure after which the task is disabled."""
        return None

    @property
    def disable_window(self) -> int | None:
        """Seconds over which failures are counted against ``retry_count``."""
        return None

    @property
    def owner_email(self) -> Any:
        """Address(es) told about this task's failures, besides the configured ones."""
        return None

    def _owner_list(self) -> list[str]:
        owners = self.owner_email
        if owners is None:
            return []
        return owners.split(",") if isinstance(owners, str) else list(owners)

    @property
    def use_cmdline_section(self) -> bool:
        """False for Config classes whose flags take no ``--Family-`` prefix."""
        return True

    @property
    def batchable(self) -> bool:
        """True when a parameter has a ``batch_method``."""
        return bool(self.batch_param_names())

    @property
    def task_module(self) -> str:
        """The module to import to get this class."""
        return type(self).__module__

    # -- names ---------------------------------------------------------------------------

    @classmethod
    def get_task_namespace(cls) -> str:
        """The namespace: ``task_namespace`` if set, else the one from namespace()."""
        if cls.task_namespace != _NOT_USER_SPECIFIED:
            return cls.task_namespace
        if cls._namespace_at_class_time == _SAME_AS_PYTHON_MODULE:
            return cls.__module__
        return cls._namespace_at_class_time

    @classmethod
    def get_task_family(cls) -> str:
        """``ClassName``, or ``namespace.ClassName`` when there is a namespace."""
        space = cls.get_task_namespace()
        return f"{space}.{cls.__name__}" if space else cls.__name__

    @property
    def task_family(self) -> str:
        """This task's family name."""
        return type(self).get_task_family()

    @property
    def disable_window_seconds(self) -> int | None:
        """Luigi's old name for ``disable_window``."""
        return self.disable_window

    @contextlib.contextmanager
    def no_unpicklable_properties(self) -> Iterator[None]:
        """Take away, for the block, the callbacks a worker sets on a running task
        (they hold the worker's queue), so the task can be pickled."""
        names = ("set_tracking_url", "set_status_message", "set_progress_percentage")
        attributes = vars(self)
        saved = {name: attributes.pop(name) for name in names if name in attributes}
        try:
            yield
        finally:
            attributes.update(saved)

    # -- parameters ------------------------------------------------------------------------

    @classmethod
    def _info(cls) -> _ClassInfo:
        """What instantiating and reporting this class needs, computed once per class
        (and again after a Parameter is added to any class)."""
        info = _REGISTRY.class_infos.get(cls)
        if info is None or info.generation != _REGISTRY.generation:
            info = _REGISTRY.class_infos[cls] = _ClassInfo(cls, _REGISTRY.generation)
        return info

    @classmethod
    def get_params(cls) -> list[tuple[str, Parameter[Any]]]:
        """Every ``(name, Parameter)`` of the class, in declaration order."""
        return list(cls._info().params)

    @classmethod
    def get_param_names(cls, include_significant: bool = False) -> list[str]:
        """Names of the significant parameters (all of them with include_significant)."""
        return [name for name, p in cls.get_params() if include_significant or p.significant]

    @classmethod
    def batch_param_names(cls) -> list[str]:
        """Names of the parameters that have a ``batch_method``."""
        return [name for name, p in cls.get_params() if p._is_batchable()]

    @classmethod
    def get_param_values(cls, params: Sequence[tuple[str, Parameter[Any]]], args: Sequence[Any],
                         kwargs: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """Resolve every parameter: positional, keyword, command line, config, default.

        Returns a list of ``(name, normalized value)`` in declaration order. Raises
        UnknownParameterException, DuplicateParameterException,
        MissingParameterException or ParameterParseError naming the task.
        """
        info = cls._info()
        if params is not info.params and [n for n, _ in params] != [n for n, _ in info.params]:
            info = _ClassInfo.__new__(_ClassInfo)   # a caller-chosen subset (Luigi allows)
            info.params, info.by_name = list(params), dict(params)
            info.positional = [pair for pair in params if pair[1].positional]
            info.family, info.config_generation = cls.get_task_family(), _CONFIG.generation
        family = info.family
        result = {}
        if args:
            if len(args) > len(info.positional):
                raise UnknownParameterException(
                    f"{cls._call_text(args, kwargs)}: takes at most {len(info.positional)} "
                    f"positional parameters ({len(args)} given)")
            for (name, param), value in zip(info.positional, args):
                try:
                    result[name] = param.normalize(value)
                except (ValueError, TypeError) as exc:
                    raise cls._normalize_error(family, name, param, value, exc) from None
        for name, value in kwargs.items():
            named = info.by_name.get(name)
            if named is None:
                raise UnknownParameterException(cls._unknown_text(name, args, kwargs))
            if name in result:
                raise DuplicateParameterException(
                    f"{cls._call_text(args, kwargs)}: parameter {name} was already set "
                    f"as a positional parameter")
            try:
                result[name] = named.normalize(value)
            except (ValueError, TypeError) as exc:
                raise cls._normalize_error(family, name, named, value, exc) from None
        if len(result) < len(info.params):
            for name, param in info.params:
                if name not in result:
                    result[name] = cls._value_outside_constructor(family, name, param,
                                                                  args, kwargs)
        if info.config_generation != _CONFIG.generation:
            info.config_generation = _CONFIG.generation
            cls._warn_unconsumed_config(family, info.by_name)
        values = []
        for name, _ in info.params:
            value = result[name]
            values.append((name, tuple(value) if type(value) in (list, set) else value))
        return values

    @classmethod
    def _normalize(cls, family: str, name: str, param: Parameter[Any], value: Any) -> Any:
        try:
            return param.normalize(value)
        except (ValueError, TypeError) as exc:
            raise cls._normalize_error(family, name, param, value, exc) from None

    @staticmethod
    def _normalize_error(family: str, name: str, param: Parameter[Any], value: Any,
                         exc: Exception) -> ParameterParseError:
        expected = param._expected_text()
        if isinstance(value, str):   # a string in Python code, where a value belongs
            try:
                parsed = param.parse(value)
            except Exception:   # not even its text: the general message below
                parsed = value
            if parsed is not value and not isinstance(parsed, str):
                return ParameterParseError(
                    f"{family}: parameter '{name}' expects {expected}, got the string "
                    f"{value!r}: pass {parsed!r} (strings are parsed only from the command "
                    f"line and config)")
        return ParameterParseError(f"{family}: parameter '{name}' expects {expected}, "
                                   f"got {value!r}: {exc}")

    @classmethod
    def _value_outside_constructor(cls, family: str, name: str, param: Parameter[Any], args: Any,
                                   kwargs: Any) -> Any:
        try:
            value = param._value_from_sources(family, name)
        except ParameterParseError as exc:   # Luigi's words first, then which and why
            given = "value of '%s' given on the command line (%s)" % (
                name, _global_flag(family, name)) \
                if getattr(exc, "source", "") == "command line" else \
                f"default value of '{name}'"
            raise ParameterParseError(f"{cls._call_text(args, kwargs)}: Error when parsing "
                                      f"the {given}: {exc}") from None
        if value is _NO_VALUE:
            raise MissingParameterException(
                f"{cls._call_text(args, kwargs)}: requires the '{name}' parameter to be "
                f"set ({param._expected_text()}); pass {name}=..., {_global_flag(family, name)}"
                f" on the command line, or [{family}] {name} "
                f"in config")
        return cls._normalize(family, name, param, value)

    @classmethod
    def _call_text(cls, args: Any, kwargs: Any) -> str:
        return f"{cls.get_task_family()}[args={args}, kwargs={kwargs}]"

    @classmethod
    def _unknown_text(cls, name: str, args: Any, kwargs: Any) -> str:
        known = [n for n, _ in cls.get_params()]
        close = _suggestions(name, known)
        hint = f"; did you mean {' or '.join(close)}?" if close else (
            f"; it takes {', '.join(known)}" if known else "; it takes no parameters")
        return f"{cls._call_text(args, kwargs)}: unknown parameter {name}{hint}"

    @classmethod
    def _warn_unconsumed_config(cls, family: str, declared: Iterable[str]) -> None:
        """Warn about options in ``[Family]`` the task does not declare (a typo there
        silently does nothing otherwise)."""
        _warn_unconsumed(family, set(declared) | set(getattr(cls, "ignore_unconsumed", ())))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        info = self._info()
        values = self.get_param_values(info.params, args, kwargs)
        self._set_values(info, list(map(_second, values)))

    def _set_values(self, info: _ClassInfo, values: Sequence[Any]) -> None:
        """Store the resolved ``values`` (in declaration order) and derive the id."""
        # Attribute stores, not writes through self.__dict__: CPython then keeps the
        # attributes inline in the object, without a dict per task to allocate and for
        # the garbage collector to visit.
        self.param_kwargs = kwargs = dict(zip(info.names, values))
        # Each value also as a plain instance attribute, as Luigi sets them: reading
        # self.param is then a lookup, not a call (run() and requires() read them often).
        for name, value in kwargs.items():
            setattr(self, name, value)
        for name, param in info.type_checked:
            param._warn_on_wrong_param_type(name, kwargs[name])
        # Serialized once: the task id, the scheduler and the summary all need it.
        # (Plain loops: in Python 3.11 each comprehension is a call of its own.)
        serialized = {}
        for name, serialize in info.serializers:
            serialized[name] = serialize(kwargs[name])
        self._serialized = serialized
        id_values = []
        for name in info.id_names:
            id_values.append(serialized[name])
        self.task_id = task_id = _task_id(info.family, info.id_keys, id_values)
        self._hash = hash(task_id)

    def initialized(self) -> bool:
        """True once the constructor has run."""
        return hasattr(self, "task_id")

    @classmethod
    def from_str_params(cls: Any, params_str: Mapping[str, Any]) -> Any:
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

    def to_str_params(self, only_significant: bool = False,
                      only_public: bool = False) -> dict[str, str]:
        """``{name: serialized value}``; PRIVATE parameters are always left out."""
        if not (only_significant or only_public):
            return dict(self._serialized)
        info = self._info()
        if only_significant and only_public:
            return {name: self._serialized[name] for name in info.id_names}
        return {name: self._serialized[name] for name in info.visible_names
                if (not only_significant or info.by_name[name].significant)
                and (not only_public or info.by_name[name].visibility ==
                     ParameterVisibility.PUBLIC)}

    def _get_param_visibilities(self) -> dict[str, int]:
        return dict(self._info().visibilities)

    @overload   # a task of this class, or of the class given
    def clone(self: _K, cls: None = None, **kwargs: Any) -> _K: ...
    @overload
    def clone(self, cls: type[_K], **kwargs: Any) -> _K: ...

    def clone(self, cls: type[Task] | None = None, **kwargs: Any) -> Any:
        """A task of ``cls`` (default: this class) with every same-named parameter
        copied from this one, ``kwargs`` overriding."""
        cls = type(self) if cls is None else cls
        values = {}
        for name, _ in cls.get_params():
            if name in kwargs:
                values[name] = kwargs[name]
            elif hasattr(self, name):   # a parameter, or any attribute of that name
                values[name] = getattr(self, name)
        return cls(**values)

    @property
    def param_args(self) -> tuple[Any, ...]:
        """The parameter values in declaration order (Luigi's ``param_args``)."""
        return tuple(self.param_kwargs.values())

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        return self.task_id == other.task_id   # pyright: ignore[reportAttributeAccessIssue]

    def __repr__(self) -> str:
        text = self._repr_text
        if text is None:   # computed once: logs and the summary ask for it often
            info, serialized = self._info(), self._serialized
            text = "{}({})".format(info.family, ", ".join(
                f"{name}={serialized[name] if name in serialized else param.serialize(value)}"
                for name, param in info.params if param.significant
                for value in (self.param_kwargs[name],)))
            self._repr_text = text
        return text

    # -- events ----------------------------------------------------------------------------

    @classmethod
    def event_handler(cls, event: str) -> Callable[[_F], _F]:
        """Decorator registering a callback for ``event`` on this class (and subclasses)."""
        def register(callback: _F) -> _F:
            cls._event_callbacks.setdefault(cls, {}).setdefault(event, set()).add(callback)
            return callback
        return register

    @classmethod
    def remove_event_handler(cls, event: str, callback: Callable[..., Any]) -> None:
        """Unregister a callback added with :meth:`event_handler`."""
        cls._event_callbacks[cls][event].remove(callback)

    def trigger_event(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Call every handler for ``event`` registered on a class this task is an
        instance of; a handler that raises is logged, never propagated."""
        if not self._event_callbacks:
            return
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

    # -- reporting from inside run() -------------------------------------------------------

    def set_status_message(self, message: str) -> None:
        """Show ``message`` as this task's status in the scheduler (during run())."""
        self._report_to_scheduler("set_task_status_message", message)

    def set_progress_percentage(self, percentage: float) -> None:
        """Show this task's progress, 0-100, in the scheduler (during run())."""
        self._report_to_scheduler("set_task_progress_percentage", percentage)

    def set_tracking_url(self, url: str) -> None:
        """Link this task to ``url`` (e.g. a job page) in the scheduler (during run())."""
        self._report_to_scheduler("tracking_url", url)

    def decrease_running_resources(self, decrease_resources: dict[str, int]) -> None:
        """Give back part of the resources held, e.g. ``{"db": 1}`` (during run())."""
        self._report_to_scheduler("decrease_running_task_resources", decrease_resources)

    def _report_to_scheduler(self, method: str, value: Any) -> None:
        report = _ACTIVE_REPORTERS.get(self.task_id)
        if report is None:
            _log.warning("%r: %s outside run() is ignored", self, method)
        else:
            report(method, self.task_id, value)

    # -- the user's part ---------------------------------------------------------------

    # Overridden with any annotation a pipeline likes (-> LocalTarget, -> list[Daily]).
    def requires(self) -> Any:
        """The tasks this one needs: a Task, or a list/dict/tuple of them."""
        return []

    def output(self) -> Any:
        """The Target(s) this task produces."""
        return []

    def run(self) -> Any:
        """Do the work. May ``yield`` tasks to add dependencies while running."""

    def complete(self) -> bool:
        """True when every output exists. A task with no outputs is never complete."""
        outputs = flatten(self.output())
        if not outputs:
            warnings.warn(f"Task {self!r} without outputs has no custom complete() method",
                          stacklevel=2)
            return False
        return all(output.exists() for output in outputs)

    def input(self) -> Any:
        """The outputs of ``requires()``, in the same structure."""
        return getpaths(self.requires())

    def deps(self) -> list[Task]:
        """The direct dependencies as a flat list (used by the worker)."""
        if type(self)._requires is Task._requires:   # already flat: skip a second pass
            return flatten(self.requires())
        return flatten(self._requires())

    def _requires(self) -> list[Task]:
        return flatten(self.requires())

    def process_resources(self) -> dict[str, int]:
        """The resources to hold while running (``resources`` by default)."""
        return self.resources

    def on_failure(self, exception: BaseException) -> str | None:
        """What to report when run() raises; default: the traceback."""
        import traceback
        return "Runtime error:\n" + traceback.format_exc()

    def on_success(self) -> str | None:
        """What to report when run() succeeds; default: nothing."""
        return None

    @classmethod
    def bulk_complete(cls, parameter_tuples: Any) -> Any:
        """Those of ``parameter_tuples`` whose tasks are complete (for range tools)."""
        raise BulkCompleteNotImplementedError(f"{cls.get_task_family()} has no "
                                              f"bulk_complete")


class BulkCompleteNotImplementedError(NotImplementedError):
    """A task class gives no bulk_complete (range tools then check one by one)."""


class MixinNaiveBulkComplete:
    """A bulk_complete that calls complete() on each, for a family whose check is cheap
    (range tools then ask once instead of per task)."""

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[Any]) -> list[Any]:
        """Those of ``parameter_tuples`` (values, tuples or dicts) whose task is
        complete."""
        done = []
        for values in parameter_tuples:
            if isinstance(values, dict):
                task = cls(**values)
            elif isinstance(values, tuple):
                task = cls(*values)
            else:
                task = cls(values)   # type: ignore[call-arg]  # a Task class with it
            if task.complete():   # type: ignore[attr-defined]
                done.append(values)
        return done


class ExternalTask(Task):
    """Data made outside microflow: never run, only checked with ``complete()``."""

    run = None   # type: ignore[assignment]  # nothing to run (Luigi's way of saying so)


class WrapperTask(Task):
    """A task that only groups others: complete when all its requirements are."""

    def complete(self) -> bool:
        return all(required.complete() for required in self.deps())


class Config(Task):
    """A bag of parameters read from the command line or a ``[ClassName]`` section."""


def externalize(taskclass_or_taskobject: _S) -> _S:
    """An external copy of a task class or instance: same family and id, no run()."""
    import copy
    if isinstance(taskclass_or_taskobject, Task):
        task = copy.copy(taskclass_or_taskobject)
        task.run = None   # type: ignore[assignment, method-assign]  # nothing to run
        return task
    cls: Any = taskclass_or_taskobject
    copied: Any = Register(cls.__name__, (cls,), {"run": None, "__module__": cls.__module__,
                                             "__doc__": cls.__doc__,
                                             "_visible_in_registry": False})
    copied._namespace_at_class_time = cls._namespace_at_class_time
    copied.__qualname__ = cls.__qualname__
    result: _S = copied
    return result


def load_task(module: str | None, task_name: str, params_str: Mapping[str, Any]) -> Task:
    """Import ``module`` (if given) and build ``task_name`` from string parameters."""
    if module is not None:
        __import__(module)
    task: Task = Register.get_task_cls(task_name).from_str_params(params_str)
    return task


def inherits(*tasks_to_inherit: Any, **kw_tasks_to_inherit: Any) -> Callable[[_S], _S]:
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

    def decorate(task_class: Any) -> Any:
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


def requires(*tasks_to_require: Any, **kw_tasks_to_require: Any) -> Callable[[_S], _S]:
    """Class decorator: :func:`inherits` the tasks and require them from ``requires()``.

    One task gives ``requires() -> clone_parent()``; several give a list, keywords a dict.
    """
    inherit = inherits(*tasks_to_require, **kw_tasks_to_require)

    def decorate(task_class: Any) -> Any:
        task_class = inherit(task_class)
        if len(tasks_to_require) == 1:
            task_class.requires = lambda self: self.clone_parent()
        else:
            task_class.requires = lambda self: self.clone_parents()
        return task_class
    return decorate


def copies(task_to_copy: type[Task]) -> Callable[[_S], _S]:
    """Class decorator: :func:`requires` ``task_to_copy`` and give the class a run()
    that copies that task's output into its own, line by line (written atomically)."""
    require = requires(task_to_copy)

    def decorate(task_class: Any) -> Any:
        task_class = require(task_class)

        def run(self: Task) -> None:
            with self.input().open("r") as source, self.output().open("w") as copy:
                for line in source:
                    copy.write(line)
        task_class.run = run
        return task_class
    return decorate


def delegates(task_class: Any) -> Any:
    """Class decorator for a task whose ``subtasks()`` it uses as helpers: their run()
    happens inside its own, before it, and what they require it requires; the
    scheduler never sees them. Raises AttributeError if the class has no subtasks()."""
    if not hasattr(task_class, "subtasks"):
        raise AttributeError(f"{task_class.__name__} needs to implement the method "
                             f"\"subtasks\" to be used with @delegates")
    own_run = task_class.run

    def deps(self: Any) -> list[Task]:
        helpers = flatten(self.subtasks())
        return flatten(self.requires()) + flatten([helper.deps() for helper in helpers])

    def run(self: Any) -> Any:
        for helper in flatten(self.subtasks()):
            helper.run()
        return own_run(self)
    task_class.deps, task_class.run = deps, run
    return task_class


def common_params(task_instance: Task, task_cls: type[Task]) -> dict[str, Any]:
    """The parameter values of ``task_instance`` that ``task_cls`` also declares."""
    if not isinstance(task_cls, Register):
        raise TypeError("task_cls must be an uninstantiated Task")
    names = set(dict(task_cls.get_params())) & set(task_instance.param_kwargs)
    return {name: task_instance.param_kwargs[name] for name in names}


###########################################################################################
# Backfill ranges: RangeDaily, RangeHourly, RangeByMinutes, RangeMonthly (Luigi's tools)
###########################################################################################

class _UncheckedParameter(Parameter):
    """A string Parameter that may be None without a warning."""

    def _warn_on_wrong_param_type(self, param_name: str, param_value: Any) -> None:
        """None is a value here."""


class RangeEvent(Event):
    """The events a range task triggers on itself, with the family and a number, each
    time it works out what is missing: how many are complete, which fraction, and how
    many steps the earliest missing one lies behind the end of the window."""

    COMPLETE_COUNT = "event.tools.range.complete.count"
    COMPLETE_FRACTION = "event.tools.range.complete.fraction"
    DELAY = "event.tools.range.delay"


def most_common(items: Iterable[Any]) -> tuple[Any, int]:
    """``(the most frequent item, how often it occurs)``."""
    [(element, count)] = collections.Counter(items).most_common(1)
    return element, count


def infer_bulk_complete_from_fs(datetimes: Sequence[datetime.datetime],
                                datetime_to_task: Callable[[datetime.datetime], Task],
                                datetime_to_re: Any = None) -> list[datetime.datetime]:
    """Those of ``datetimes`` whose task's outputs all exist, found by listing each
    folder that holds outputs once (instead of one exists() per output), for tasks
    whose outputs are FileSystemTargets; ``datetime_to_re`` is accepted as Luigi's."""
    listed: dict[tuple[int, str], set[str]] = {}   # (file system, folder) -> its paths

    def exists(target: Any) -> bool:
        path = target.path.rstrip("/")
        folder = os.path.dirname(path)
        key = (id(target.fs), folder)
        if key not in listed:
            listed[key] = set(target.fs.listdir(folder)) if target.fs.isdir(folder) \
                else set()
        return path in listed[key]
    outputs = {dt: flatten(datetime_to_task(dt).output()) for dt in datetimes}
    return [dt for dt, targets in outputs.items()
            if targets and all(exists(target) for target in targets)]


class RangeBase(WrapperTask):
    """Requires the missing instances of task family ``of`` over a window of time:
    ``start`` (inclusive) to ``stop`` (exclusive), clipped to a window around ``now``
    (``days_back``/``days_forward`` and the like), at most ``task_limit`` of them, the
    earliest first (the latest with ``reverse``). Subclasses say what a step is."""

    of = TaskParameter(description="the task family to fill in; it takes the time as "
                                   "its first positional parameter (or param_name)")
    of_params = DictParameter(default={}, description="its other parameters")
    reverse = BoolParameter(default=False, description="latest first (start may be "
                                                       "left out)")
    task_limit = IntParameter(default=50, description="at most this many per run")
    # Plain parameters defaulting to None, as Luigi's: the id says "None" for them.
    now = IntParameter(default=None, description="seconds since the epoch to take as now "
                                                 "(tests)")
    param_name = _UncheckedParameter(default=None, description="the parameter of `of` "
                                                               "that takes the time")
    # Declared again by each subclass, with its type: the window.
    start: Any = Parameter(description="first point in time (inclusive)")
    stop: Any = Parameter(description="last point in time (exclusive)")

    @property
    def of_cls(self) -> type[Task]:
        """``of`` as a class (Luigi's older name; a family name given as a string is
        looked up, with Luigi's warning)."""
        if isinstance(self.of, str):
            warnings.warn('When using Range programatically, dont pass "of" param as '
                          'string!')
            return Register.get_task_cls(self.of)
        return self.of

    def datetime_to_parameters(self, dt: datetime.datetime) -> dict[str, Any]:
        """The family's parameters for a point in time: ``of_params`` and the time."""
        return dict(self.of_params, **{self._param_name: self.datetime_to_parameter(dt)})

    def parameters_to_datetime(self, p: Mapping[str, Any]) -> Any:
        """The point in time of a family's parameters."""
        return self.parameter_to_datetime(p[self._param_name])

    def _emit_metrics(self, window: list[datetime.datetime],
                      missing: list[datetime.datetime]) -> None:
        """RangeEvent's DELAY, COMPLETE_COUNT and COMPLETE_FRACTION, on this task."""
        family, complete = self.of_cls.get_task_family(), len(window) - len(missing)
        delay = len(window) - window.index(missing[0]) if missing else 0
        self.trigger_event(RangeEvent.DELAY, family, delay)
        self.trigger_event(RangeEvent.COMPLETE_COUNT, family, complete)
        self.trigger_event(RangeEvent.COMPLETE_FRACTION, family,
                           complete / len(window) if window else 1.0)

    def finite_datetimes(self, finite_start: datetime.datetime,
                         finite_stop: datetime.datetime) -> list[datetime.datetime]:
        """The points in time, one per step, in [finite_start, finite_stop)."""
        raise NotImplementedError

    def requires(self) -> list[Task]:
        """The missing instances in the window, at most ``task_limit``."""
        if getattr(self, "_required", None) is None:
            window = self._window()
            missing = sorted(self._missing_datetimes(window))
            self._emit_metrics(window, missing)
            chosen = missing[-self.task_limit:][::-1] if self.reverse \
                else missing[:self.task_limit]
            self._required = [self._instantiate_task_cls(self.datetime_to_parameter(d))
                              for d in chosen]
        return self._required

    def _window(self) -> list[datetime.datetime]:
        """Every point in time from start to stop, clipped around now."""
        if self.start is None and self.stop is None:
            raise ParameterException(f"{self!r}: at least one of start and stop is needed")
        if self.start is None and not self.reverse:
            raise ParameterException(f"{self!r}: without start, reverse must be set")
        if self.start is not None and self.stop is not None and self.start > self.stop:
            raise ParameterException(f"{self!r}: start is after stop")
        stamp = time.time() if self.now is None else self.now
        now = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).replace(
            tzinfo=None)
        start, stop = self.moving_start(now), self.moving_stop(now)
        if self.start is not None:
            start = max(self.parameter_to_datetime(self.start), start)
        if self.stop is not None:
            stop = min(self.parameter_to_datetime(self.stop), stop)
        return self.finite_datetimes(start, stop) if start <= stop else []

    def _missing_datetimes(self, datetimes: list[datetime.datetime]) -> list[datetime.datetime]:
        return self.missing_datetimes(datetimes) if datetimes else []

    def missing_datetimes(self,
                          finite_datetimes: list[datetime.datetime]) -> list[datetime.datetime]:
        """Those of ``finite_datetimes`` whose task is not complete: one complete()
        each, in threads when ``[core] parallel_scheduling`` is on."""
        tasks = [self._instantiate_task_cls(self.datetime_to_parameter(d))
                 for d in finite_datetimes]
        env = core()
        if env.parallel_scheduling and len(tasks) > 1:
            import concurrent.futures
            with concurrent.futures.ThreadPoolExecutor(
                    env.parallel_scheduling_processes or 8, "microflow-range") as pool:
                done = list(pool.map(lambda task: task.complete(), tasks))
        else:
            done = [task.complete() for task in tasks]
        return [d for d, complete in zip(finite_datetimes, done) if not complete]

    # The back/forward window's unit: days_back, hours_forward, ... (subclasses).
    _unit = "days"

    def moving_start(self, now: datetime.datetime) -> datetime.datetime:
        """The earliest time the window reaches: ``now`` less ``<unit>_back``."""
        back = getattr(self, self._unit + "_back")
        return now - datetime.timedelta(**{self._unit: back})

    def moving_stop(self, now: datetime.datetime) -> datetime.datetime:
        """The latest: ``now`` plus ``<unit>_forward``."""
        forward = getattr(self, self._unit + "_forward")
        return now + datetime.timedelta(**{self._unit: forward})

    def datetime_to_parameter(self, dt: datetime.datetime) -> Any:
        """The family's parameter value for a point in time (a datetime by default)."""
        return dt

    def parameter_to_datetime(self, p: Any) -> Any:
        """The point in time of a parameter value."""
        return p

    def _instantiate_task_cls(self, param: Any) -> Task:
        return self.of(**dict(self.of_params, **{self._param_name: param}))

    @property
    def _param_name(self) -> str:
        if self.param_name is not None:
            return self.param_name
        return next(name for name, param in self.of.get_params() if param.positional)

    @staticmethod
    def _between(aligned: datetime.datetime, step: datetime.timedelta, start: datetime.datetime,
                 stop: datetime.datetime) -> list[datetime.datetime]:
        """The points ``aligned + n * step`` in [start, stop)."""
        points = (aligned + step * i for i in itertools.count())
        return [t for t in itertools.takewhile(lambda t: t < stop, points) if t >= start]


if TYPE_CHECKING:
    _RangeMixin = RangeBase
else:
    _RangeMixin = object


class _BulkRange(_RangeMixin):
    """Mixin: ask the family's bulk_complete classmethod (Luigi's hook) which are done,
    all at once; families without one are checked one by one."""

    def missing_datetimes(self,
                          finite_datetimes: list[datetime.datetime]) -> list[datetime.datetime]:
        import functools
        bulk = self.of.bulk_complete.__func__   # type: ignore[attr-defined]
        if bulk is Task.bulk_complete.__func__:   # type: ignore[attr-defined]  # none given
            return super().missing_datetimes(finite_datetimes)
        try:   # called as Luigi calls it: cls is the family with of_params filled in
            done = bulk(functools.partial(self.of, **self.of_params),
                        [self.datetime_to_parameter(d) for d in finite_datetimes])
        except NotImplementedError:
            return super().missing_datetimes(finite_datetimes)
        return sorted(set(finite_datetimes) - {self.parameter_to_datetime(p) for p in done})


class RangeDailyBase(RangeBase):
    """Daily instances of ``of`` (a DateParameter), one complete() each."""

    start = DateParameter(default=None, description="first day (inclusive)")
    stop = DateParameter(default=None, description="last day (exclusive)")
    days_back = IntParameter(default=100, description="days before now to look back")
    days_forward = IntParameter(default=0, description="days after now to look ahead")

    def datetime_to_parameter(self, dt: datetime.datetime) -> Any:
        return dt.date()

    def parameter_to_datetime(self, p: Any) -> datetime.datetime:
        return datetime.datetime(p.year, p.month, p.day)

    def finite_datetimes(self, finite_start: datetime.datetime,
                         finite_stop: datetime.datetime) -> list[datetime.datetime]:
        """Midnights from ``finite_start``'s day to before ``finite_stop``."""
        day = datetime.datetime(finite_start.year, finite_start.month, finite_start.day)
        return self._between(day, datetime.timedelta(days=1), finite_start, finite_stop)


class RangeHourlyBase(RangeBase):
    """Hourly instances of ``of`` (a DateHourParameter), one complete() each."""

    start = DateHourParameter(default=None, description="first hour (inclusive)")
    stop = DateHourParameter(default=None, description="last hour (exclusive)")
    hours_back = IntParameter(default=100 * 24, description="hours before now")
    hours_forward = IntParameter(default=0, description="hours after now")
    _unit = "hours"

    def finite_datetimes(self, finite_start: datetime.datetime,
                         finite_stop: datetime.datetime) -> list[datetime.datetime]:
        """Whole hours in [finite_start, finite_stop)."""
        hour = finite_start.replace(minute=0, second=0, microsecond=0)
        return self._between(hour, datetime.timedelta(hours=1), finite_start, finite_stop)


class RangeByMinutesBase(RangeBase):
    """Instances of ``of`` (a DateMinuteParameter) every ``minutes_interval`` minutes."""

    start = DateMinuteParameter(default=None, description="first minute (inclusive)")
    stop = DateMinuteParameter(default=None, description="last minute (exclusive)")
    minutes_back = IntParameter(default=60 * 24, description="minutes before now")
    minutes_forward = IntParameter(default=0, description="minutes after now")
    minutes_interval = IntParameter(default=1, description="minutes between instances; "
                                                           "it must divide 60")
    _unit = "minutes"

    def finite_datetimes(self, finite_start: datetime.datetime,
                         finite_stop: datetime.datetime) -> list[datetime.datetime]:
        """Every ``minutes_interval`` minutes in [finite_start, finite_stop), on the
        interval's marks (:00, :05, ... for 5)."""
        interval = self.minutes_interval
        if not 0 < interval < 60 or 60 % interval:
            raise ParameterException(f"{self!r}: minutes_interval must divide 60, got "
                                     f"{interval}")
        mark = finite_start.replace(minute=finite_start.minute // interval * interval,
                                    second=0, microsecond=0)
        return self._between(mark, datetime.timedelta(minutes=interval), finite_start,
                             finite_stop)


class RangeMonthly(_BulkRange, RangeBase):
    """Monthly instances of ``of`` (a MonthParameter)."""

    start = MonthParameter(default=None, description="first month (inclusive)")
    stop = MonthParameter(default=None, description="last month (exclusive)")
    months_back = IntParameter(default=13, description="months before now")
    months_forward = IntParameter(default=0, description="months after now")

    def datetime_to_parameter(self, dt: datetime.datetime) -> Any:
        return datetime.date(dt.year, dt.month, 1)

    def parameter_to_datetime(self, p: Any) -> datetime.datetime:
        return datetime.datetime(p.year, p.month, 1)

    def moving_start(self, now: datetime.datetime) -> datetime.datetime:
        return _add_months(datetime.datetime(now.year, now.month, 1), -self.months_back)

    def moving_stop(self, now: datetime.datetime) -> datetime.datetime:
        return _add_months(datetime.datetime(now.year, now.month, 1), self.months_forward)

    def finite_datetimes(self, finite_start: datetime.datetime,
                         finite_stop: datetime.datetime) -> list[datetime.datetime]:
        """Firsts of the month in [finite_start, the month of finite_stop)."""
        first = datetime.datetime(finite_start.year, finite_start.month, 1)
        stop = datetime.datetime(finite_stop.year, finite_stop.month, 1)
        months = itertools.takewhile(lambda t: t < stop,
                                     (_add_months(first, i) for i in itertools.count()))
        return [t for t in months if t >= finite_start]


class RangeDaily(_BulkRange, RangeDailyBase):
    """RangeDailyBase asking ``of.bulk_complete`` when the family has one."""


class RangeHourly(_BulkRange, RangeHourlyBase):
    """RangeHourlyBase asking ``of.bulk_complete`` when the family has one."""


class RangeByMinutes(_BulkRange, RangeByMinutesBase):
    """RangeByMinutesBase asking ``of.bulk_complete`` when the family has one."""


###########################################################################################
# Error e-mails: Luigi's [email], [smtp] and [batch_email] settings and message format
###########################################################################################

class email(Config):
    """The ``[email]`` settings: who gets error e-mails, from whom, in what format."""

    force_send = BoolParameter(default=False, description="send even from a terminal")
    format = ChoiceParameter(default="plain", choices=("plain", "html", "none"),
                             config_path=dict(section="core", name="email-type"),
                             description="plain, html or none (no e-mails)")
    method = ChoiceParameter(default="smtp", choices=("smtp", "sendgrid", "ses", "sns"),
                             config_path=dict(section="email", name="type"),
                             description="how to send; only smtp needs no other package")
    prefix = Parameter(default="", config_path=dict(section="core", name="email-prefix"),
                       description="put before every subject")
    receiver = Parameter(default="", config_path=dict(section="core", name="error-email"),
                         description="where error e-mails go (comma-separated)")
    traceback_max_length = IntParameter(default=5000, description="longest traceback sent")
    sender = Parameter(default="", config_path=dict(section="core", name="email-sender"),
                       description="the From address (default luigi-client@HOST)")


class smtp(Config):
    """The ``[smtp]`` server error e-mails go through."""

    host = Parameter(default="localhost", config_path=dict(section="core", name="smtp_host"))
    port = IntParameter(default=0, config_path=dict(section="core", name="smtp_port"))
    local_hostname = OptionalParameter(default=None, config_path=dict(
        section="core", name="smtp_local_hostname"))
    no_tls = BoolParameter(default=False, config_path=dict(section="core",
                                                           name="smtp_without_tls"))
    ssl = BoolParameter(default=False, config_path=dict(section="core", name="smtp_ssl"))
    username = OptionalParameter(default=None, config_path=dict(section="core",
                                                                name="smtp_login"))
    password = OptionalParameter(default=None, config_path=dict(section="core",
                                                                name="smtp_password"))
    timeout = FloatParameter(default=10.0, config_path=dict(section="core",
                                                            name="smtp_timeout"))


def _email_disabled_reason() -> str | None:
    """Why no e-mail goes out now, or None: format none, or a terminal without
    ``force_send`` (someone is watching)."""
    if email().format == "none":
        return "email format is 'none'"
    if not email().force_send and sys.stdout.isatty():
        return "running from a tty"
    return None


def send_email(subject: str, message: str, sender: str, recipients: Iterable[str],
               image_png: str | None = None) -> None:
    """Send ``message`` to ``recipients`` (each may hold comma-separated addresses) by
    ``[email] method``, unless e-mail is disabled or there is nobody to send to. A
    server that cannot be reached is logged, never raised: a failed notification must
    not fail the run."""
    if email().prefix:
        subject = f"{email().prefix} {subject}"
    recipients = [address.strip() for entry in recipients or () if entry
                  for address in entry.split(",") if address.strip()]
    if not recipients:
        return
    reason = _email_disabled_reason()
    if reason:
        _log.info("Not sending email to %r because %s", recipients, reason)
        return
    method = email().method
    send = _EMAIL_METHODS[method]
    _log.info("Sending email to %r", recipients)
    try:
        send(sender, subject, message, recipients, image_png)
    except ImportError as exc:   # sendgrid, ses, sns: a package microflow does not bring
        _log.error("Not sending email to %r: %s", recipients, exc)
    except Exception as exc:   # a failed notification must not fail the run
        _log.error("Not able to send email to %r with [email] method = %s: %r",
                   recipients, method, exc)


def send_email_smtp(sender: str, subject: str, message: str, recipients: list[str],
                    image_png: str | None) -> None:
    """Send through the ``[smtp]`` server (STARTTLS when offered, login when set); a
    server that cannot be reached is logged."""
    import smtplib
    import socket
    settings = smtp()
    options: dict[str, Any] = dict(host=settings.host, port=settings.port,
                                   local_hostname=settings.local_hostname)
    if settings.timeout:
        options["timeout"] = settings.timeout
    try:
        connection = (smtplib.SMTP_SSL if settings.ssl else smtplib.SMTP)(**options)
        try:
            connection.ehlo_or_helo_if_needed()
            if connection.has_extn("starttls") and not settings.no_tls:
                connection.starttls()
            if settings.username and settings.password:
                connection.login(settings.username, settings.password)
            connection.sendmail(sender, recipients, generate_email(
                sender, subject, message, recipients, image_png).as_string())
        finally:
            with contextlib.suppress(Exception):
                connection.quit()
    except (socket.error, smtplib.SMTPException) as exc:
        _log.error("Not able to send email through %s:%s: %s", settings.host,
                   settings.port, exc)


def send_email_ses(sender: str, subject: str, message: str, recipients: list[str],
                   image_png: str | None) -> None:
    """Send through Amazon SES with boto3 (its credentials and region as boto3 finds
    them); ImportError without boto3."""
    boto3 = _optional_package("boto3", "[email] method = ses")
    raw = generate_email(sender, subject, message, recipients, image_png).as_string()
    reply = boto3.client("ses").send_raw_email(Source=sender, Destinations=recipients,
                                               RawMessage={"Data": raw})
    _log.debug("Message sent to SES: %s", reply)


def send_email_sns(sender: str, subject: str, message: str, recipients: list[str],
                   image_png: str | None) -> None:
    """Publish to each recipient, an Amazon SNS topic ARN, with boto3 (subjects cut
    to SNS's 100 characters; no image); ImportError without boto3."""
    client = _optional_package("boto3", "[email] method = sns").client("sns")
    for topic in recipients:
        reply = client.publish(TopicArn=topic, Subject=subject[:100], Message=message)
        _log.debug("Message sent to SNS topic %s: %s", topic, reply)


class sendgrid(Config):
    """The ``[email]`` option of the SendGrid method (Luigi's spelling of it)."""

    apikey = Parameter(config_path=dict(section="email", name="SENGRID_API_KEY"),
                       description="API key for SendGrid login")


def send_email_sendgrid(sender: str, subject: str, message: str, recipients: list[str],
                        image_png: str | None) -> None:
    """Send through SendGrid with its package and ``[email] SENGRID_API_KEY``;
    ImportError without the package."""
    sendgrid_package = _optional_package("sendgrid", "[email] method = sendgrid")
    mail = _optional_package("sendgrid.helpers.mail", "[email] method = sendgrid")
    letter = mail.Mail(from_email=sender, to_emails=recipients, subject=subject)
    letter.add_content(message, "text/html" if email().format == "html" else "text/plain")
    if image_png:
        letter.add_attachment(image_png)
    sendgrid_package.SendGridAPIClient(sendgrid().apikey).send(letter)


def generate_email(sender: str, subject: str, message: str, recipients: list[str],
                   image_png: str | None) -> Any:
    """The MIME message sent: ``message`` in ``[email] format``, the PNG at
    ``image_png`` attached."""
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    root = MIMEMultipart("related")
    root.attach(MIMEText(message, email().format, "utf-8"))
    if image_png:
        from email.mime.image import MIMEImage
        with open(image_png, "rb") as f:
            root.attach(MIMEImage(f.read(), "png"))
    root["Subject"], root["From"], root["To"] = subject, sender, ",".join(recipients)
    return root


def _email_sender() -> str:
    return email().sender or _default_client_email()


def _default_client_email() -> str:
    """``luigi-client@HOST``: the sender when ``[email] sender`` names none."""
    import socket
    return f"luigi-client@{socket.gethostname()}"


# How each ``[email] method`` sends.
_EMAIL_METHODS = {"smtp": send_email_smtp, "ses": send_email_ses, "sns": send_email_sns,
                  "sendgrid": send_email_sendgrid}


class TestNotificationsTask(Task):
    """A task that fails, to check that error e-mails arrive:
    ``python -m microflow notifications.TestNotificationsTask`` (Luigi's).
    ``raise_in_complete``: fail in complete() instead of run()."""

    task_namespace = "notifications"
    raise_in_complete = BoolParameter(default=False, description="If true, fail in "
                                      "complete() instead of run()")

    def run(self) -> None:
        raise ValueError("Testing notifications triggering")

    def complete(self) -> bool:
        if self.raise_in_complete:
            raise ValueError("Testing notifications triggering")
        return False


def send_error_email(subject: str, message: str, additional_recipients: Any = None) -> None:
    """Send an error e-mail to ``[email] receiver`` and ``additional_recipients`` (an
    address or a list: a task's ``owner_email``)."""
    recipients = [email().receiver] if email().receiver else []
    if isinstance(additional_recipients, str):
        recipients.append(additional_recipients)
    elif additional_recipients:
        recipients.extend(additional_recipients)
    send_email(subject, message, _email_sender(), recipients)


def wrap_traceback(traceback: str) -> str:
    """A traceback as the e-mail format shows it."""
    if email().format == "html":
        import html
        return f"<pre>{html.escape(str(traceback))}</pre>"
    return traceback


def format_task_error(headline: str, task: Task, command: Any,
                      formatted_exception: str | None = None) -> str:
    """The body of an error e-mail about ``task``: the headline, its name and
    parameters, the command line and the traceback (cut at ``traceback_max_length``)."""
    limit = email().traceback_max_length
    if formatted_exception and len(formatted_exception) > limit:
        formatted_exception = (formatted_exception[:limit] + "...Traceback exceeds max "
                               "length and has been truncated.")
    traceback = wrap_traceback(formatted_exception) if formatted_exception else ""
    params = task.to_str_params()
    if email().format == "html":
        import html
        rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                         for k, v in params.items())
        return (f"<html>\n<body>\n<h2>{html.escape(headline)}</h2>\n<table>\n<thead>\n"
                f"<tr><th>name</th><td>{task.get_task_family()}</td></tr>\n</thead>\n"
                f"<tbody>\n{rows}\n</tbody>\n</table>\n<h2>Command line</h2>\n"
                f"<pre>\n{html.escape(command)}\n</pre>\n<h2>Traceback</h2>\n"
                f"{traceback}\n</body>\n</html>\n")
    width = max([0] + [len(name) for name in params])
    lines = "\n".join(f"  {name:{width}}: {value}" for name, value in params.items())
    return (f"{headline}\n\nName: {task.get_task_family()}\n\nParameters:\n{lines}\n\n"
            f"Command line:\n  {command}\n\n{traceback}\n")


class batch_email(Config):
    """The ``[batch_email]`` settings of a scheduler with ``batch_emails``."""

    email_interval = IntParameter(default=60, config_path=dict(
        section="batch-notifier", name="email-interval-minutes"),
        description="minutes between e-mails")
    batch_mode = ChoiceParameter(default="unbatched_params", choices=(
        "family", "all", "unbatched_params"), description="what one line groups")
    error_lines = IntParameter(default=20, description="lines of each error shown (0: all)")
    error_messages = IntParameter(default=1, description="errors shown per group")
    group_by_error_messages = BoolParameter(default=True, description="one group per "
                                                                      "error message")


def _counted(template: str, number: int) -> str:
    """``"3 failures"``, ``"1 failure"``, or "" for none."""
    return template.format(number, "" if number == 1 else "s") if number else ""


class ExplQueue(collections.OrderedDict):   # type: ignore[type-arg]
    """The latest ``num_items`` distinct errors, each with when it was last seen,
    oldest first (Luigi's)."""

    def __init__(self, num_items: int) -> None:
        super().__init__()
        self.num_items = num_items

    def enqueue(self, item: Any) -> None:
        """Note ``item`` as the latest; the oldest goes past ``num_items``."""
        self.pop(item, None)
        self[item] = datetime.datetime.now()
        while len(self) > self.num_items:
            self.popitem(last=False)


class BatchNotifier:
    """Collects the scheduler's failures, disables and scheduling failures and sends
    each owner (and ``[email] receiver``) one e-mail per ``email_interval`` minutes,
    in Luigi's format."""

    def __init__(self, **kwargs: Any) -> None:
        self._config = batch_email(**kwargs)
        self._format = email().format
        self._default_owners = {a for a in email().receiver.split(",") if a}
        self._clear()

    def _clear(self) -> None:
        import collections
        self._next_send = time.time() + 60 * self._config.email_interval
        # owner -> key -> [failures, disables, scheduling failures]; and recent errors
        self._counts: dict[str | None, dict[str, list[int]]] = collections.defaultdict(dict)
        self._errors: dict[str | None, dict[str, ExplQueue]] = collections.defaultdict(dict)

    def _key(self, task_name: str, family: str, unbatched_args: Mapping[str, Any]) -> str:
        mode = self._config.batch_mode
        if mode == "all":
            return task_name
        if mode == "family":
            return family
        shown = ", ".join(f"{k}={v}" for k, v in unbatched_args.items())
        return f"{family}({shown})"

    def _add(self, task_name: str, family: str, unbatched_args: Mapping[str, Any],
             owners: Any, column: int, expl: Any = None) -> None:
        key = self._key(task_name, family, unbatched_args)
        for owner in self._default_owners | set(owners or ()):
            self._counts[owner].setdefault(key, [0, 0, 0])[column] += 1
            if expl is not None:   # the latest error_messages distinct errors
                self._errors[owner].setdefault(
                    key, ExplQueue(self._config.error_messages)).enqueue(expl)

    def add_failure(self, task_name: str, family: str, unbatched_args: Mapping[str, Any],
                    expl: Any, owners: Any) -> None:
        """A task failed with ``expl``."""
        self._add(task_name, family, unbatched_args, owners, 0, expl)

    def add_disable(self, task_name: str, family: str, unbatched_args: Mapping[str, Any],
                    owners: Any) -> None:
        """A task was disabled for failing too often."""
        self._add(task_name, family, unbatched_args, owners, 1)

    def add_scheduling_fail(self, task_name: str, family: str, unbatched_args: Mapping[str, Any],
                            expl: Any, owners: Any) -> None:
        """A worker could not schedule a task: its complete() or requires() raised."""
        self._add(task_name, family, unbatched_args, owners, 2, expl)

    def update(self) -> None:
        """Send when the interval has passed."""
        if time.time() >= self._next_send:
            self.send_email()

    def send_email(self) -> None:
        """Send each owner what was collected for them, and start over."""
        try:
            for owner, counts in self._counts.items():
                self._send(owner, counts, self._errors[owner])
        finally:
            self._clear()

    def _send(self, owner: Any, counts: dict[str, list[int]],
              errors: Mapping[str, Mapping[Any, Any]]) -> None:
        totals = self._counts_text([sum(row[i] for row in counts.values())
                                    for i in range(3)])
        if not totals:
            return
        prefix = "" if owner in self._default_owners else "Your tasks have "
        subject = (f"Luigi: {prefix}{totals} in the last {self._config.email_interval} "
                   f"minutes")
        send_email(subject, self._body(counts, errors), _email_sender(), (owner,))

    def _body(self, counts: dict[str, list[int]],
              errors: Mapping[str, Mapping[Any, Any]]) -> str:
        groups: dict[Any, list[str]] = {}   # the errors' text -> the keys that had it
        for key in counts:
            text = self._errors_text(errors.get(key, {}))
            group = text if self._config.group_by_error_messages else (key, text)
            groups.setdefault(group, []).append(key)

        def rank(key: str) -> tuple[int, int, str]:
            failures, disables, scheduling = counts[key]
            return -(failures + scheduling), -disables, key
        html = self._format == "html"
        parts = []
        for group, keys in sorted(groups.items(), key=lambda item: (
                sum(rank(k)[0] for k in item[1]), sum(rank(k)[1] for k in item[1]),
                min(item[1]))):
            lines = [f"{key} ({self._counts_text(counts[key])})"
                     for key in sorted(keys, key=rank)]
            parts.append(("<li>" + "\n<br>".join(lines)) if html
                         else "- " + "\n  ".join(lines))
            parts.append(group if isinstance(group, str) else group[1])
        body = "\n".join(filter(None, parts)).rstrip()
        return f"<ul>\n{body}\n</ul>" if html else body

    @staticmethod
    def _counts_text(row: list[int]) -> str:
        return ", ".join(filter(None, (_counted("{} failure{}", row[0]),
                                       _counted("{} disable{}", row[1]),
                                       _counted("{} scheduling failure{}", row[2]))))

    def _errors_text(self, errors: Iterable[Any]) -> str:
        shown = []
        for expl in errors:
            lines = str(expl).rstrip().split("\n")
            if self._config.error_lines:
                lines = lines[-self._config.error_lines:]
            shown.append(f"<pre>{chr(10).join(lines)}</pre>" if self._format == "html"
                         else "\n" + "\n".join("      " + line for line in lines))
        if shown and self._format != "html":
            shown.append("")
        return "\n".join(shown)


###########################################################################################
# Scheduler records: its options, and what it knows of each task, worker and resource
###########################################################################################

def _wall_clock() -> float:
    """time.time(), looked up at each call, so a test that replaces time.time (as
    Luigi's own tests do) moves the scheduler's clock too."""
    return time.time()


def _typed_options(section: str, defaults: Mapping[str, Any],
                   overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``[section]`` options typed like their ``defaults``: ``overrides`` win, then
    ``--section-option`` on the command line, then the config file.

    Raises ConfigError for an override that is not one of the options, and
    ParameterParseError for a value of the wrong type.
    """
    unknown = set(overrides or {}) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown {section} option(s): {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(defaults))}")
    return dict(_OPTION_CLASSES[section](**(overrides or {})).param_kwargs)


class _ConfigBoolParameter(BoolParameter):
    """A BoolParameter that also takes the config file's yes/no, on/off and 1/0."""

    def parse(self, x: Any) -> bool:
        return _parse_config_bool(x)


def _options_class(section: str, defaults: Mapping[str, Any], doc: str) -> type[Config]:
    """A Config class for ``[section]`` with a parameter per option of ``defaults``,
    typed like its default (Luigi's ``luigi.worker.worker`` and
    ``luigi.scheduler.scheduler``)."""
    kinds = {bool: _ConfigBoolParameter, int: IntParameter, float: FloatParameter,
             str: Parameter}
    described = _WORKER_HELP if section == "worker" else {}
    members = {name: kinds[type(default)](default=default,
                                           description=described.get(name))
               for name, default in defaults.items()}
    members.update(__module__=__name__, __doc__=doc,
                   ignore_unconsumed=_OTHER_KNOWN_OPTIONS.get(section, set()))
    options_class: Any = Register(section, (Config,), members)
    return options_class   # type: ignore[no-any-return]


# Luigi's luigi.worker.worker and luigi.scheduler.scheduler (microflow.worker.worker, ...).
_OPTION_CLASSES = {
    "worker": _options_class("worker", _WORKER_DEFAULTS, "The [worker] options: "
                             "``worker().keep_alive``; ``--worker-keep-alive`` on the "
                             "command line."),
    "scheduler": _options_class("scheduler", _SCHEDULER_DEFAULTS, "The [scheduler] "
                                "options: ``scheduler().retry_delay``; "
                                "``--scheduler-retry-delay``."),
}


def _resource_capacities() -> dict[str, int]:
    """The [resources] section as ``{name: int}``."""
    parser = get_config()
    if not parser.has_section("resources"):
        return {}
    return {name: parser.getint("resources", name) for name in parser.options("resources")}


_NO_TASKS = ()
_NO_OWNERS = ()     # shared; the scheduler copies owners it keeps
_PLAIN = (PENDING, RUNNING, DONE)   # reported statuses no failure rule applies to
_COUNTED = (PENDING, FAILED)   # the statuses a worker's "pending" counts include
_NO_DEPS = ()   # deps are a tuple while small, a set beyond (see _with)
_NO_VALUES: dict[str, Any] = {}   # shared; never mutated (see _TaskState)
_SMALL = 8   # up to this many members a tuple; beyond, a set


def _with(members: Any, item: str) -> Any:
    """``members`` plus ``item``: a tuple while small (most tasks have one dependent),
    a set beyond, so a task many others need still adds in O(1)."""
    if isinstance(members, set):
        members.add(item)
        return members
    if item in members:
        return members
    if len(members) < _SMALL:
        return members + (item,)
    return set(members) | {item}


def _without(members: Any, item: str) -> Any:
    """``members`` less ``item`` (see :func:`_with`)."""
    if isinstance(members, set):
        members.discard(item)
        return members
    return tuple(m for m in members if m != item)


class _TaskState:
    """The scheduler's record of one task (not a Task: that is the user's class).

    What every task carries lives in slots. What few tasks ever get (a failure history,
    a status message, a removal time, ...) reads from the class defaults below until
    it is set, so a graph of 100,000 tasks does not pay for those fields 100,000 times.
    """

    __slots__ = (
        "id", "status", "deps", "dependents", "blockers", "priority", "seq", "family",
        "module", "params", "param_visibilities", "resources", "resources_running",
        "stakeholders", "workers", "worker_running", "time_running", "start_time",
        "updated", "expl", "tracking_url", "retry_policy", "accepts_messages", "batchable",
        "__dict__")

    status_message: str | None = None
    progress_percentage: float | None = None
    failures: Any = ()           # failure times inside the disable window
    first_failure: float | None = None
    disabled_at: float | None = None   # set when the scheduler (not a worker) disabled it
    retry_at: float | None = None
    remove_at: float | None = None
    owners: Any = ()
    messages: dict[str, Any] | None = None   # scheduler message id -> response, when used
    batch_id: str | None = None  # the batch it runs in or runs, while it does
    pretty: tuple[Any, str, str] | None = None   # (params, family, display name), once shown
    runnable = False             # some worker could run it (so an assistant may)

    def __init__(self, task_id: str, seq: int, now: float, retry_policy: dict[str, Any]) -> None:
        self.id = task_id
        self.status = UNKNOWN
        # Shared empty tuples, grown by _with(): a graph of 100,000 tasks would otherwise
        # allocate 200,000 sets for the collector to track.
        self.deps: Any = _NO_DEPS
        self.dependents: Any = _NO_TASKS
        self.blockers = 0            # how many deps are not DONE; ready when 0
        self.priority: float = 0
        self.seq = seq               # insertion order breaks priority ties
        self.family = ""
        self.module: str | None = None
        # Shared empty dicts until a worker reports real ones; the scheduler never
        # mutates these (it replaces them), so sharing is safe and saves memory.
        self.params: Any = _NO_VALUES
        self.param_visibilities: Any = _NO_VALUES
        self.resources: Any = _NO_VALUES
        self.resources_running: dict[str, int] | None = None
        # Tuples, not sets: nearly always one worker, and a set costs four times the
        # memory of a 1-tuple. Order matters for ``workers`` (the last to add it).
        self.stakeholders: Any = ()  # workers that want this task done
        self.workers: Any = ()       # workers that may run it, in the order they came
        self.worker_running: str | None = None
        self.time_running: float | None = None
        self.start_time = now
        self.updated = now
        self.expl: str | None = None
        self.tracking_url: str | None = None
        self.retry_policy = retry_policy
        self.accepts_messages = False
        self.batchable: bool | None = False

    def forget_failures(self) -> None:
        """Clear the failure history (a retry succeeded, or a person forgave it)."""
        if self.first_failure is None and self.disabled_at is None:
            return   # nothing to forget (and no per-task field to write)
        self.failures = ()
        self.first_failure = None
        self.disabled_at = None

    # Luigi's methods of its record (luigi.scheduler.Task), on the retry policy's terms.
    DEFAULT_PRIORITY = 0

    def add_failure(self) -> None:
        """Count a failure now (the wall clock, as Luigi's)."""
        now = time.time()
        if self.first_failure is None:
            self.first_failure = now
        self.failures = list(self.failures) + [now]

    def num_failures(self) -> int:
        """The failures within the retry policy's disable window."""
        window_start = time.time() - self.retry_policy["disable_window"]
        self.failures = [t for t in self.failures if t >= window_start]
        return len(self.failures)

    def has_excessive_failures(self) -> bool:
        """Whether the retry policy says to disable it: too many failures in the window,
        or failing for longer than disable_hard_timeout."""
        policy = self.retry_policy
        if self.first_failure is not None and \
                time.time() >= self.first_failure + policy["disable_hard_timeout"]:
            return True
        return bool(self.num_failures() >= policy["retry_count"])

    def clear_failures(self) -> None:
        """Forget the failures counted (not the first failure's time)."""
        self.failures = ()

    def is_batchable(self) -> bool:
        """Whether it may run in a batch."""
        return bool(self.batchable)

    def set_params(self, params: Mapping[str, Any] | None) -> None:
        """Its parameters (None: none)."""
        self.params = dict(params or {})

    @property
    def pretty_id(self) -> str:
        """``Family(param=value, ...)`` with its public parameters."""
        shown = ", ".join(f"{name}={value}" for name, value in self.params.items()
                          if self.param_visibilities.get(name, 0) == 0)
        return f"{self.family}({shown})"


class _Offers:
    """Offers of tasks that can run now, ``(-priority, seq, task_id)``, best first: a
    queue kept in order for those that arrive in the order they are taken (the usual
    case), and a heap for the rest. A worker skips, one at a time, the offers that
    other workers took first; from the queue that costs a popleft, not a heap's sift."""

    __slots__ = ("in_order", "heap")

    def __init__(self) -> None:
        self.in_order: collections.deque[tuple[float, int, str]] = collections.deque()
        self.heap: list[tuple[float, int, str]] = []

    def __bool__(self) -> bool:
        return bool(self.in_order) or bool(self.heap)

    def __iter__(self) -> Iterator[tuple[float, int, str]]:
        return itertools.chain(self.in_order, self.heap)

    def push(self, offer: tuple[float, int, str]) -> None:
        if not self.in_order or offer >= self.in_order[-1]:
            self.in_order.append(offer)
        else:
            heapq.heappush(self.heap, offer)

    def first(self) -> tuple[float, int, str]:
        """The best offer (there is one)."""
        in_order, heap = self.in_order, self.heap
        return in_order[0] if in_order and (not heap or in_order[0] <= heap[0]) else heap[0]

    def pop(self) -> tuple[float, int, str]:
        """Take the best offer (there is one)."""
        in_order, heap = self.in_order, self.heap
        return in_order.popleft() if in_order and (not heap or in_order[0] <= heap[0]) \
            else heapq.heappop(heap)

    def taking(self) -> Iterator[tuple[float, int, str]]:
        """The offers best first, each taken as it is yielded (stop at any one: the rest
        stay). A worker skipping what others took costs a resumption per offer, not
        two method calls."""
        in_order, heap, heappop = self.in_order, self.heap, heapq.heappop
        while True:
            if heap and (not in_order or heap[0] < in_order[0]):
                yield heappop(heap)
            elif in_order:
                yield in_order.popleft()
            else:
                return


def _handed_out(task: _TaskState) -> dict[str, Any]:
    """What a get_work reply says of a task it hands out (Luigi's keys): enough for a
    worker that did not walk it to load it by name."""
    return {"task_id": task.id, "task_family": task.family, "task_module": task.module,
            "task_params": task.params}


class _WorkerState:
    """The scheduler's record of one worker process."""

    __slots__ = ("id", "alone", "info", "started", "last_active", "last_get_work", "ready",
                 "running", "stake", "n_pending", "n_unique", "n_last", "enabled",
                 "assistant", "messages")

    def __init__(self, worker_id: str, now: float) -> None:
        self.id = worker_id
        # (id,): the workers and stakeholders of nearly every task; one shared tuple
        # rather than one per task (tuples are immutable, so sharing is safe).
        self.alone = (worker_id,)
        self.info: dict[str, Any] = {}
        self.started = now       # when the scheduler first heard of it (Luigi's)
        self.last_active = now
        self.last_get_work: float | None = None
        self.ready = _Offers()   # of the tasks it may run now
        self.running: set[str] = set()   # ids of tasks running on it
        self.stake: set[str] = set()     # ids of tasks it is a stakeholder of
        self.n_pending = 0       # its runnable PENDING/FAILED tasks ...
        self.n_unique = 0        # ... of which no other worker can run
        self.n_last = 0          # ... of which it was the last to add
        self.enabled = True
        self.assistant = False
        self.messages: list[dict[str, Any]] = []   # rpc_messages for the next ping

    @property
    def state(self) -> str:
        """``active`` or ``disabled``."""
        return "active" if self.enabled else "disabled"

    # Luigi's methods of its record (luigi.scheduler.Worker).
    def add_info(self, info: Mapping[str, Any]) -> None:
        """Note what the worker says of itself (host, pid, ...)."""
        self.info.update(info)

    def update(self, worker_reference: Any = None, get_work: bool = False) -> None:
        """It was heard from now (the wall clock, as Luigi's)."""
        self.last_active = time.time()
        if get_work:
            self.last_get_work = self.last_active

    def prune(self, config: Any) -> bool:
        """Whether it has been silent past ``config.worker_disconnect_delay``."""
        delay = config["worker_disconnect_delay"] if isinstance(config, Mapping) \
            else config.worker_disconnect_delay
        return bool(self.last_active + delay < time.time())

    def get_tasks(self, state: Any, *statuses: str) -> Iterator[Any]:
        """The tasks of ``state`` (a SimpleTaskState) it may run, in ``statuses``."""
        return (task for task in state.get_active_tasks_by_status(*statuses)
                if self.id in task.workers)

    def is_trivial_worker(self, state: Any) -> bool:
        """Whether it runs nothing that needs resources (an assistant never is)."""
        if self.assistant:
            return False
        return all(not task.resources for task in self.get_tasks(state, PENDING))

    def add_rpc_message(self, name: str, **kwargs: Any) -> None:
        """Queue a message for its next ping."""
        self.messages.append({"name": name, "kwargs": kwargs})

    def fetch_rpc_messages(self) -> list[dict[str, Any]]:
        """The queued messages, taken."""
        messages, self.messages = self.messages, []
        return messages


class _ResourcePool:
    """The scheduler's resources (``[resources]``): each one's capacity, the units
    RUNNING tasks hold, and the tasks waiting for one, best first. A part the
    scheduler owns and calls by name; it knows nothing of the scheduler."""

    def __init__(self, capacity: Mapping[str, int]) -> None:
        self.capacity = dict(capacity)
        self.used: dict[str, int] = {}                 # resource -> units held
        self._parked: dict[str, list[Any]] = {}        # resource -> heap of waiting tasks

    def capacity_of(self, resource: str) -> int:
        return self.capacity.get(resource, 1)   # Luigi: an undeclared resource is 1

    def names(self) -> list[str]:
        """Every resource with a capacity or in use, sorted."""
        return sorted(set(self.capacity) | set(self.used))

    def missing(self, task: _TaskState) -> str | None:
        """The first resource ``task`` cannot get now, or None if all fit."""
        resource: str
        for resource, amount in (task.resources or {}).items():
            if self.used.get(resource, 0) + amount > self.capacity_of(resource):
                return resource
        return None

    def park(self, resource: str, task: _TaskState, worker_id: str) -> None:
        """``task``, offered to ``worker_id``, waits for ``resource``."""
        heapq.heappush(self._parked.setdefault(resource, []),
                       (-task.priority, task.seq, task.id, worker_id))

    def unpark(self, resource: str, tasks: Mapping[str, _TaskState]
               ) -> list[tuple[_TaskState, str]]:
        """The waiting tasks to offer again now, with the worker each was offered to:
        as many as could now fit in ``resource``."""
        waiting = self._parked.get(resource)
        free = self.capacity_of(resource) - self.used.get(resource, 0)
        ready = []
        while waiting and free > 0:
            _, _, task_id, worker_id = heapq.heappop(waiting)
            task = tasks.get(task_id)
            if task is not None:
                free -= task.resources.get(resource, 1)
                ready.append((task, worker_id))
        return ready

    def take(self, held: Mapping[str, int]) -> None:
        """A task starts holding ``held``."""
        for resource, amount in held.items():
            self.used[resource] = self.used.get(resource, 0) + amount

    def give_back(self, resource: str, amount: int) -> None:
        self.used[resource] = self.used.get(resource, 0) - amount


###########################################################################################
# Scheduler core: a pure state machine
###########################################################################################

class _SchedulerCore:
    """The scheduler's core: task and worker records, the one place a status changes
    (announced to listeners: see subscribe()), dependencies, priorities, Luigi's
    status rules and liveness; its resources are a part it owns (_ResourcePool). Each
    section below builds on the one before it and never calls one after it: batches,
    the calls workers make, the views, the change feed, administration, history,
    durable state, e-mails; Scheduler is the last."""

    def __init__(self, clock: Callable[[], float] | None = None,
                 resources: Mapping[str, int] | None = None, **options: Any) -> None:
        self._clock = clock or _wall_clock
        self.options = _typed_options("scheduler", _SCHEDULER_DEFAULTS, options)
        self._pool = _ResourcePool(_resource_capacities() if resources is None else resources)
        self._tasks: dict[str, _TaskState] = {}
        self._workers: dict[str, _WorkerState] = {}
        self._running: set[str] = set()      # ids of RUNNING tasks (few; iterated often)
        self._disabled: set[str] = set()     # ids of DISABLED tasks (few, if any)
        self._timers: list[tuple[float, int, str, str]] = []   # heap of (due, seq, kind, key)
        self._seq = itertools.count()
        self._paused = False
        self._policies: dict[Any, dict[str, Any]] = {}   # overrides -> merged policy
        self._default_policy = self._retry_policy(None)
        self._listeners: dict[str, tuple[_Listener, ...]] = {}   # see subscribe()
        self._assistants: set[str] = set()   # workers that run any runnable task
        self._assistant_ready = _Offers()   # their offers, while they exist

    # -- the transition hook --------------------------------------------------------------

    EVENTS = ("status", "task", "removed", "worker", "disabled", "reported")

    def subscribe(self, listener: _Listener, events: Iterable[str] = EVENTS[:5]) -> _Listener:
        """Call ``listener(event, record, old, new)`` after each change of the kinds in
        ``events``, in the call that made it (under the server's lock), so what
        observes the scheduler (the journal, e-mails, history, metrics, a status page)
        plugs in here instead of into the transitions. Events: ``"status"`` (a task's
        status went from ``old`` to ``new``; a task made with a status, from UNKNOWN),
        ``"task"`` (a task was added or reported; ``old`` and ``new`` are its status),
        ``"removed"`` (a task was forgotten), ``"disabled"`` (the scheduler disabled a
        task for its failures, besides its "status" event), ``"worker"`` (a worker
        arrived: ``new`` is "active"; or was removed: ``new`` is None), ``"reported"``
        (a worker reported ``old`` as the task's status: ``new`` is ``(the worker's
        record, the explanation, the owners)`` it sent; heard only when named, as the
        failure e-mails do). ``record`` is the
        task's or worker's record (``record.id``): read it, never change it. A listener
        that raises breaks the call: keep them small. Returns ``listener``."""
        for event in events:
            if event not in self.EVENTS:
                raise ValueError(f"subscribe: unknown event {event!r}; known: "
                                 f"{', '.join(self.EVENTS)}")
            self._listeners[event] = self._listeners.get(event, ()) + (listener,)
        return listener

    def _announce(self, event: str, record: Any, old: Any = None, new: Any = None) -> None:
        for listener in self._listeners.get(event, ()):
            listener(event, record, old, new)

    # -- reading the clock and the records --------------------------------------------

    def _task(self, task_id: str, method: str) -> _TaskState:
        task = self._tasks.get(task_id)
        if task is None:
            raise SchedulerError(f"{method}: task {task_id!r} was not added")
        return task

    def _worker(self, worker_id: str, now: float | None = None) -> _WorkerState:
        """The worker record, created on first sight; marks it as alive now."""
        worker = self._workers.get(worker_id)
        if worker is None:
            return self._new_worker(worker_id, now)
        now = self._clock() if now is None else now
        if now < worker.last_active:   # the wall clock stepped back: watch from now
            self._timer(now + self.options["worker_disconnect_delay"], "worker", worker_id)
        worker.last_active = now
        return worker

    def _new_worker(self, worker_id: str, now: float | None) -> _WorkerState:
        """Record a worker seen for the first time, and watch it for liveness."""
        if worker_id is None:
            raise SchedulerError("a worker id is required")
        now = self._clock() if now is None else now
        worker = self._workers[worker_id] = _WorkerState(worker_id, now)
        self._timer(now + self.options["worker_disconnect_delay"], "worker", worker_id)
        if "worker" in self._listeners:
            self._announce("worker", worker, None, "active")
        return worker

    def _timer(self, due: float, kind: str, key: str) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), kind, key))

    def _retry_policy(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """The config's retry policy with a task's non-None values over it; shared
        between tasks with the same values (they are never mutated)."""
        overrides = overrides or {}
        key = (overrides.get("retry_count"), overrides.get("disable_hard_timeout"),
               overrides.get("disable_window"))
        policy = self._policies.get(key)
        if policy is None:
            policy = {name: self.options[name] if value is None else value
                      for name, value in zip(("retry_count", "disable_hard_timeout",
                                              "disable_window"), key)}
            self._policies[key] = policy
        return policy

    def _get_or_create(self, task_id: str, status: str = UNKNOWN,
                       now: float | None = None) -> _TaskState:
        task = self._tasks.get(task_id)
        if task is None:
            now = self._clock() if now is None else now
            task = _TaskState(task_id, next(self._seq), now, self._default_policy)
            self._tasks[task_id] = task
            task.status = status
            if status != UNKNOWN and "status" in self._listeners:   # born with a status:
                self._announce("status", task, UNKNOWN, status)     # said as a change
        return task

    # -- the one place a status changes ---------------------------------------------------

    def _set_status(self, task: _TaskState, status: str, now: float | None = None) -> None:
        """Move ``task`` to ``status``, keeping every index and counter in step."""
        old = task.status
        if old == status:
            return
        if task.workers and old in _COUNTED:
            self._account(task, -1)
        task.status = status
        task.updated = self._clock() if now is None else now
        if old == RUNNING:
            self._running.discard(task.id)
            self._release(task)
            if not task.stakeholders and task.remove_at is None:   # an assistant ran it
                self._remove_later(task, task.updated)
        elif status == RUNNING:
            self._running.add(task.id)
        if old == DISABLED:
            self._disabled.discard(task.id)
        elif status == DISABLED:
            self._disabled.add(task.id)
        if task.dependents and (old == DONE or status == DONE):
            self._update_dependents(task, -1 if status == DONE else 1)
        if task.workers and status in _COUNTED:
            self._account(task, +1)
            if status == PENDING:
                self._push_ready(task)
        if "status" in self._listeners:
            self._announce("status", task, old, status)

    def _update_dependents(self, task: _TaskState, change: int) -> None:
        for dependent_id in task.dependents:
            dependent = self._tasks.get(dependent_id)
            if dependent is not None:
                dependent.blockers += change
                if dependent.blockers == 0:
                    self._push_ready(dependent)

    def _account(self, task: _TaskState, sign: int) -> None:
        """Add (+1) or remove (-1) ``task`` from its workers' pending counters."""
        if task.status not in _COUNTED or not task.workers:
            return
        if len(task.workers) == 1:   # the usual case: it counts once, in all three
            worker = self._workers.get(task.workers[0])
            if worker is not None:
                worker.n_pending += sign
                worker.n_unique += sign
                worker.n_last += sign
            return
        for worker_id in task.workers:   # pending for each; unique for none
            worker = self._workers.get(worker_id)
            if worker is not None:
                worker.n_pending += sign
        last = self._workers.get(task.workers[-1])
        if last is not None:
            last.n_last += sign

    def _push_ready(self, task: _TaskState, worker_ids: Iterable[str] | None = None) -> None:
        """Offer a task that can run now to its workers (stale offers are skipped later)."""
        if task.status != PENDING or task.blockers:
            return
        entry = (-task.priority, task.seq, task.id)
        for worker_id in task.workers if worker_ids is None else worker_ids:
            worker = self._workers.get(worker_id)
            if worker is not None:
                worker.ready.push(entry)
        if worker_ids is None and self._assistants and task.runnable:
            self._assistant_ready.push(entry)

    def _unpark(self, resource: str) -> None:
        """Offer again the tasks that waited for ``resource``, as many as now fit."""
        for task, worker_id in self._pool.unpark(resource, self._tasks):
            self._push_ready(task, (worker_id,))

    def _release(self, task: _TaskState) -> None:
        """``task`` left RUNNING: its worker and its resources are free."""
        held = task.resources_running
        task.resources_running = None
        worker = self._workers.get(task.worker_running)   # type: ignore[arg-type]
        if worker is not None:
            worker.running.discard(task.id)
        task.worker_running = None
        for resource, amount in (held or {}).items():
            self._pool.give_back(resource, amount)
            self._unpark(resource)

    # -- dependencies, workers, priorities -----------------------------------------------

    def _set_deps(self, task: _TaskState, dep_ids: Iterable[str], replace: bool,
                  now: float | None = None) -> Sequence[str]:
        """Replace (or extend) the dependencies; returns the ids that are new, in the
        order given (new ids get their insertion number in that order)."""
        unique = dict.fromkeys(dep_ids)   # in the order given, each once
        if replace:
            if not unique and not task.deps:
                return ()
            # A tuple while small, as _with() keeps them: a one-element set costs four
            # times the memory, and most tasks need one or two others.
            wanted = tuple(unique) if len(unique) < _SMALL else set(unique)
            for gone in [dep_id for dep_id in task.deps if dep_id not in wanted]:
                dep = self._tasks.get(gone)
                if dep is not None:
                    dep.dependents = _without(dep.dependents, task.id)
                    task.blockers -= dep.status != DONE
            old = task.deps
            task.deps = wanted
        else:
            old = task.deps
            merged = dict.fromkeys(old)
            merged.update(unique)
            task.deps = tuple(merged) if len(merged) < _SMALL else set(merged)
        added = [dep_id for dep_id in unique if dep_id not in old]
        tasks = self._tasks
        only_this = (task.id,)   # shared by the deps it is the only dependent of
        for dep_id in added:
            dep = tasks.get(dep_id) or self._get_or_create(dep_id, now=now)
            dep.dependents = _with(dep.dependents, task.id) if dep.dependents else only_this
            task.blockers += dep.status != DONE
        if task.blockers == 0:
            self._push_ready(task)
        return added

    def _add_runnable_worker(self, task: _TaskState, worker: _WorkerState) -> None:
        if worker.id in task.workers:
            return
        if not task.runnable:
            task.runnable = True
            if self._assistants and task.status == PENDING and not task.blockers:
                self._assistant_ready.push((-task.priority, task.seq, task.id))
        counted = task.status in _COUNTED
        if counted and task.workers:
            self._account(task, -1)
        task.workers = task.workers + (worker.id,) if task.workers else worker.alone
        if counted:
            self._account(task, +1)
        self._push_ready(task, worker.alone)

    def _add_stakeholder(self, task: _TaskState, worker: _WorkerState,
                         added_deps: Iterable[str]) -> None:
        """``worker`` wants ``task`` and, so, its dependencies (all of them when it is
        new to the task, else just the ``added_deps``)."""
        if task.remove_at is not None:
            task.remove_at = None
        if worker.id not in task.stakeholders:
            task.stakeholders = (_with(task.stakeholders, worker.id) if task.stakeholders
                                 else worker.alone)
            worker.stake.add(task.id)
            added_deps = task.deps
        tasks = self._tasks
        for dep_id in added_deps:
            dep = tasks.get(dep_id)
            if dep is not None and worker.id not in dep.stakeholders:
                dep.stakeholders = (_with(dep.stakeholders, worker.id) if dep.stakeholders
                                    else worker.alone)
                worker.stake.add(dep_id)
                if dep.remove_at is not None:
                    dep.remove_at = None

    def _raise_priority(self, task: _TaskState, priority: float) -> None:
        """Raise ``task`` to ``priority`` and its dependencies, transitively, to the
        task's priority: what a high-priority task needs must not wait behind others."""
        priority = max(priority, task.priority)
        if priority > task.priority:
            task.priority = priority
            self._push_ready(task)
        stack = [task]
        while stack:
            for dep_id in stack.pop().deps:
                dep = self._tasks.get(dep_id)
                if dep is not None and dep.priority < priority:
                    dep.priority = priority
                    self._push_ready(dep)
                    stack.append(dep)

    # -- status rules (Luigi's) -------------------------------------------------------------

    def _apply_status(self, task: _TaskState, status: str, now: float) -> None:
        """Apply a reported status with Luigi's rules for failures and disabling."""
        if status in _PLAIN and task.status != DISABLED:   # no rule applies
            if status == DONE and task.first_failure is not None:
                task.forget_failures()
            self._set_status(task, status, now)
            return
        if status == SUSPENDED:
            status = PENDING
        if task.status == DISABLED:
            if status == DONE:
                task.forget_failures()
            elif task.disabled_at is not None and status != DISABLED:
                return   # a worker cannot lift a scheduler-imposed disable
        disabled_here = False   # by the retry policy, now
        if status == FAILED and task.status != DISABLED:
            if self._record_failure(task, now):
                status = DISABLED
                task.disabled_at = now
                self._timer(now + self.options["disable_persist"], "enable", task.id)
                disabled_here = True
        elif status == DISABLED:
            task.disabled_at = None
        if status == FAILED:
            task.retry_at = due = now + self.options["retry_delay"]
            self._timer(due, "retry", task.id)
        if status == DONE and task.first_failure is not None:
            task.forget_failures()
        old = task.status
        self._set_status(task, status, now)
        if disabled_here and "disabled" in self._listeners:
            self._announce("disabled", task, old, DISABLED)

    def _record_failure(self, task: _TaskState, now: float) -> bool:
        """Count a failure; True when the retry policy says the task must be disabled."""
        policy = task.retry_policy
        if task.first_failure is None:
            task.first_failure = now
        window_start = now - policy["disable_window"]
        task.failures = [t for t in task.failures if t >= window_start] + [now]
        disable: bool = (len(task.failures) >= policy["retry_count"]
                         or now >= task.first_failure + policy["disable_hard_timeout"])
        return disable

    def _upstream_status(self, task_id: str, memo: dict[str, str]) -> str:
        """The most severe status among a task's unfinished dependencies, by a
        post-order walk with a memo; iterative, so deep chains are fine."""
        stack, visiting = [(task_id, False)], set()
        while stack:
            current_id, expanded = stack.pop()
            if current_id in memo:
                continue
            task = self._tasks.get(current_id)
            if task is None or task.status == DONE:
                memo[current_id] = ""
            elif task.status != PENDING or not task.deps:
                memo[current_id] = STATUS_TO_UPSTREAM_MAP.get(task.status, "")
            elif expanded:
                visiting.discard(current_id)
                memo[current_id] = max((memo.get(d, UPSTREAM_MISSING_INPUT) for d in task.deps),
                                       key=UPSTREAM_SEVERITY_KEY)
            elif current_id not in visiting:   # a dependency cycle stops here
                visiting.add(current_id)
                stack.append((current_id, True))
                stack.extend((d, False) for d in task.deps if d not in memo)
        return memo[task_id]

    def _drop_runner(self, task: _TaskState, worker_id: str) -> None:
        """``worker_id`` may no longer run ``task``."""
        if worker_id in task.workers:
            self._account(task, -1)
            task.workers = tuple(w for w in task.workers if w != worker_id)
            self._account(task, +1)

    # -- liveness, retries and removal ---------------------------------------------------

    def prune(self, **kwargs: Any) -> None:
        """Apply what is due: dead workers, retries, re-enables and removals.

        Each due item is one timer popped from a heap, so the cost follows the number of
        things that happened, never the number of tasks.
        """
        self._prune(self._clock())

    def _prune(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, key = heapq.heappop(self._timers)
            getattr(self, "_due_" + kind)(key, now)
        return None

    def _due_worker(self, worker_id: str, now: float) -> None:
        worker = self._workers.get(worker_id)
        if worker is None:
            return
        deadline = worker.last_active + self.options["worker_disconnect_delay"]
        if deadline > now:
            self._timer(deadline, "worker", worker_id)
        else:
            self._remove_worker(worker, now)

    def _remove_worker(self, worker: _WorkerState, now: float) -> None:
        _log.info("worker %s timed out and is removed", worker.id)
        del self._workers[worker.id]
        if "worker" in self._listeners:
            self._announce("worker", worker, "active" if worker.enabled else "disabled")
        self._assistants.discard(worker.id)
        for task_id in worker.stake | worker.running:   # an assistant's are not its stake
            task = self._tasks.get(task_id)
            if task is None:
                continue
            task.stakeholders = _without(task.stakeholders, worker.id)
            self._drop_runner(task, worker.id)
            if task.status == RUNNING and task.worker_running == worker.id:
                task.expl = json.dumps(f"worker {worker.id} stopped responding")
                self._apply_status(task, FAILED, now)
            if not task.stakeholders and task.remove_at is None and task.status != RUNNING:
                self._remove_later(task, now)

    def _remove_later(self, task: _TaskState, now: float) -> None:
        """Forget ``task``, which nobody wants any more, after ``remove_delay``."""
        task.remove_at = due = now + self.options["remove_delay"]
        self._timer(due, "remove", task.id)

    def _due_retry(self, task_id: str, now: float) -> None:
        task = self._tasks.get(task_id)
        if task is not None and task.status == FAILED and task.retry_at is not None \
                and task.retry_at <= now:
            task.retry_at = None
            self._set_status(task, PENDING, now)

    def _due_enable(self, task_id: str, now: float) -> None:
        task = self._tasks.get(task_id)
        if task is not None and task.status == DISABLED and task.disabled_at is not None \
                and task.disabled_at + self.options["disable_persist"] <= now:
            task.forget_failures()
            self._apply_status(task, FAILED, now)

    def _due_remove(self, task_id: str, now: float) -> None:
        task = self._tasks.get(task_id)
        if task is None or task.stakeholders or task.remove_at is None \
                or task.remove_at > now:
            return
        self._delete(task)

    def _due_drop(self, task_id: str, now: float) -> None:
        """A failed batch runner goes (Luigi's way): its members carry the failure,
        and a retry forms a new batch."""
        task = self._tasks.get(task_id)
        if task is not None and task.status == FAILED:
            self._delete(task)

    def _delete(self, task: _TaskState) -> None:
        task_id = task.id
        self._account(task, -1)
        if task.status == RUNNING:
            self._release(task)
        self._running.discard(task_id)
        self._disabled.discard(task_id)
        for dep_id in task.deps:
            dep = self._tasks.get(dep_id)
            if dep is not None:
                dep.dependents = _without(dep.dependents, task_id)
        del self._tasks[task_id]
        if "removed" in self._listeners:
            self._announce("removed", task, task.status, None)


###########################################################################################
# Scheduler: batches
###########################################################################################

class _SchedulerBatches(_SchedulerCore):
    """Scheduler: batches, several tasks of one family run as one (Luigi's
    batch_method)."""

    def __init__(self, clock: Callable[[], float] | None = None,
                 resources: Mapping[str, int] | None = None, **options: Any) -> None:
        super().__init__(clock, resources, **options)
        # (worker, family) -> (batched names, max size)
        self._batchers: dict[tuple[Any, str], tuple[Any, float]] = {}
        self._batches: dict[str, list[Any]] = {}   # batch id -> [worker, members, runner]

    def _apply_status(self, task: _TaskState, status: str, now: float) -> None:
        """The runner of a batch ending: its members take its status first."""
        if task.batch_id is not None and task.status == RUNNING and status != RUNNING:
            self._end_batch(task, status, now)
        super()._apply_status(task, status, now)

    def _remove_worker(self, worker: _WorkerState, now: float) -> None:
        """A worker gone: the batches it was handed and never started fail too."""
        super()._remove_worker(worker, now)
        for batch_id, entry in list(self._batches.items()):
            if entry[0] == worker.id:
                self._settle_batch(batch_id, FAILED, now,
                                   json.dumps(f"worker {worker.id} stopped responding"))

    def add_task_batcher(self, worker: str, task_family: str, batched_args: Iterable[str],
                         max_batch_size: float = float("inf"), **kwargs: Any) -> None:
        """``worker`` runs ``task_family`` tasks in batches: tasks whose other
        parameters are equal are handed out together (up to ``max_batch_size``), their
        ``batched_args`` values as lists for the worker's batch_method to combine."""
        self._worker(worker)
        self._batchers[worker, task_family] = (list(batched_args), max_batch_size)

    def _batch_with(self, worker: _WorkerState, best: _TaskState) -> list[_TaskState] | None:
        """``best`` and the tasks to run with it, in rank order (it needs a batcher for
        its family and a batchable task; the others must be runnable now by this
        worker, with the same family, unbatched parameters and resources); None when
        there is no second one. Costs a pass over the worker's offers, only then."""
        names, limit = self._batchers.get((worker.id, best.family), ((), 1))
        if not names or not best.batchable or limit <= 1 or best.status != PENDING \
                or not all(name in best.params for name in names):
            return None
        fixed = [(key, value) for key, value in best.params.items() if key not in names]
        batch, seen = [best], {best.id}
        offers = itertools.chain(worker.ready, self._assistant_ready) if worker.assistant \
            else worker.ready
        for _, _, task_id in sorted(offers):
            task = self._tasks.get(task_id)
            if len(batch) >= limit:
                break
            if (task is not None and task_id not in seen and task.status == PENDING
                    and not task.blockers and task.family == best.family and task.batchable
                    and (worker.id in task.workers or worker.assistant and task.runnable)
                    and task.resources == best.resources
                    and all(task.params.get(key) == value for key, value in fixed)):
                batch.append(task)
                seen.add(task_id)
        return batch if len(batch) > 1 else None

    def _start_batch(self, batch: list[_TaskState], worker: _WorkerState,
                     now: float) -> dict[str, Any]:
        """Mark ``batch`` BATCH_RUNNING on ``worker``; get_work's reply fields: its
        combined parameters and a batch id (the worker adds the combined task as
        RUNNING with that id, and the members take its outcome)."""
        import hashlib
        ids = [task.id for task in batch]
        batch_id = hashlib.md5("|".join(ids).encode("utf-8")).hexdigest()
        names = self._batchers[worker.id, batch[0].family][0]
        for task in batch:
            self._set_status(task, BATCH_RUNNING, now)
            task.batch_id, task.worker_running, task.time_running = batch_id, worker.id, now
            task.resources_running = dict(task.resources)
        self._batches[batch_id] = [worker.id, ids, None]
        params = dict(batch[0].params)
        params.update({name: [task.params[name] for task in batch] for name in names})
        return {"task_id": None, "task_family": batch[0].family,
                "task_module": batch[0].module, "task_params": params, "batch_id": batch_id,
                "batch_task_ids": ids}

    def _batch_members(self, batch_id: str | None) -> list[_TaskState]:
        """The tasks of batch ``batch_id`` still waiting on its runner."""
        entry = self._batches.get(batch_id)   # type: ignore[arg-type]
        tasks = (self._tasks.get(task_id) for task_id in (entry[1] if entry else ()))
        return [task for task in tasks if task is not None and
                task.status == BATCH_RUNNING and task.batch_id == batch_id]

    def _run_batch(self, task: _TaskState, batch_id: str, worker: _WorkerState,
                   now: float) -> None:
        """``task`` (the combined task, or for a batch_method like max one of the
        members) is what ``worker`` runs for ``batch_id``: RUNNING, holding the
        members' resources."""
        entry = self._batches.get(batch_id)
        if entry is None or task.status == RUNNING:
            return
        members = self._batch_members(batch_id)
        entry[2] = task.id
        task.batch_id = batch_id
        self._set_status(task, RUNNING, now)
        task.worker_running, task.time_running = worker.id, now
        worker.running.add(task.id)
        # What the batch was given when handed out (a member's resources may have
        # been changed by a report since), as Luigi copies it.
        first = members[0] if members else task
        task.resources_running = dict(first.resources_running or first.resources)
        self._pool.take(task.resources_running)

    def _end_batch(self, runner: _TaskState, status: str, now: float) -> None:
        """The runner of a batch left RUNNING: its members take the same status."""
        batch_id, runner.batch_id = runner.batch_id, None
        if status == FAILED and not runner.batchable:   # a combined task, not a member
            self._timer(now, "drop", runner.id)
        self._settle_batch(batch_id, status, now, runner.expl)

    def _settle_batch(self, batch_id: str | None, status: str, now: float,
                      expl: Any = _NO_VALUE) -> None:
        """The members of batch ``batch_id`` still waiting take ``status`` (and
        ``expl``, when given); the batch is forgotten."""
        for member in self._batch_members(batch_id):
            member.batch_id = member.worker_running = member.resources_running = None
            if expl is not _NO_VALUE:
                member.expl = expl
            self._apply_status(member, status, now)
        self._batches.pop(batch_id, None)   # type: ignore[arg-type]

    def _reset_orphaned_batches(self, worker: _WorkerState, now: float) -> None:
        """Batches handed to ``worker`` that it never started (it asks for work again
        without running them): their members are PENDING again."""
        for batch_id, (worker_id, _, runner_id) in list(self._batches.items()):
            runner = self._tasks.get(runner_id)
            if worker_id == worker.id and (runner is None or runner.status != RUNNING):
                self._settle_batch(batch_id, PENDING, now)

    def _unbatched(self, worker_id: str | None, family: str,
                   params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``params`` without the ones ``worker_id`` batches for ``family``."""
        names = self._batchers.get((worker_id, family), ((), 1))[0]
        return {k: v for k, v in params.items() if k not in names} if names else params

###########################################################################################
# Scheduler: the calls workers make
###########################################################################################

class _SchedulerCalls(_SchedulerBatches):
    """Scheduler: what workers call: add a task, ask for work, count what is pending,
    and report on a running task (message, progress, resources)."""

    def add_task(self, task_id: Any = None, status: str = PENDING, runnable: bool = True,
                 deps: Any = None, new_deps: Any = None, expl: str | None = None,
                 resources: Any = None, priority: float = 0, family: str = "",
                 module: str | None = None, params: Any = None, param_visibilities: Any = None,
                 accepts_messages: bool = False, assistant: bool = False,
                 tracking_url: str | None = None, worker: Any = None,
                 batchable: bool | None = None, batch_id: str | None = None,
                 retry_policy_dict: Mapping[str, Any] | None = None,
                 owners: Iterable[str] | None = None, **kwargs: Any) -> None:
        """Add or update a task: its status, dependencies, workers and priority.

        ``deps`` replaces the dependency set, ``new_deps`` adds to it. A RUNNING task's
        status changes only when its own worker reports DONE/FAILED/RUNNING, or with
        ``new_deps``. Returns None, as Luigi's does.
        """
        now = self._clock()
        reporter = self._worker(worker, now)
        task = self._task_to_add(task_id, status, reporter, now)
        if task is None:
            return None
        self._update_details(task, family, module, params, param_visibilities,
                             accepts_messages, tracking_url, batchable, expl, owners)
        if batch_id is not None and status == RUNNING:
            self._run_batch(task, batch_id, reporter, now)
        if task.batch_id is not None and (expl is not None or tracking_url is not None):
            for member in self._batch_members(task.batch_id):
                member.expl = task.expl
                member.tracking_url = task.tracking_url
        if status == RUNNING and task.worker_running is None:
            task.worker_running = reporter.id
            task.time_running = now
        if retry_policy_dict is not None:
            task.retry_policy = self._retry_policy(retry_policy_dict)
        if resources is not None and resources != task.resources:
            task.resources = resources   # the caller's dict; never mutated here
            self._push_ready(task)       # it may fit now where it waited before
        added: Sequence[str] = ()
        if deps or (deps is not None and task.deps):   # [] for a task with none: no change
            added = self._set_deps(task, deps, True, now)
        if new_deps:
            added = self._set_deps(task, new_deps, False, now)
        self._reported_status(task, status, reporter, new_deps, now)
        if "reported" in self._listeners:
            self._announce("reported", task, status, (reporter, expl, owners))
        if added or reporter.id not in task.stakeholders:
            if reporter.enabled and not assistant:
                self._add_stakeholder(task, reporter, added)
        if priority > task.priority or (added and task.priority):
            self._raise_priority(task, priority)
        if runnable and status != FAILED and reporter.enabled:
            self._add_runnable_worker(task, reporter)
        if "task" in self._listeners:
            self._announce("task", task, task.status, task.status)
        return None

    def _task_to_add(self, task_id: str, status: str, reporter: _WorkerState, now: float
                     ) -> _TaskState | None:
        """The task add_task updates, made if new; None when the report is ignored: a
        disabled worker's, or a stale "pending" for a task just done."""
        task = self._tasks.get(task_id)
        if task is None:
            if task_id is None:
                raise SchedulerError("add_task: task_id is required")
            return self._get_or_create(task_id, PENDING, now) if reporter.enabled else None
        if not reporter.enabled and task.status != RUNNING:
            return None
        if task.status == DONE and status == PENDING and (
                now - task.updated < self.options["stable_done_cooldown_secs"]):
            return None   # just done: a second worker's stale "pending" is ignored
        return task

    def _reported_status(self, task: _TaskState, status: str, reporter: _WorkerState,
                         new_deps: Iterable[str] | None, now: float) -> None:
        """Apply the status a worker reported, if it may change the task: a RUNNING
        task's only by its own worker (DONE/FAILED/RUNNING), or with new deps. (A
        worker's DISABLED makes a scheduler-imposed disable a lasting one.)"""
        if status != task.status or status == FAILED or (
                status == DISABLED and task.disabled_at is not None):
            owned = task.status not in (RUNNING, BATCH_RUNNING) or (
                status in (DONE, FAILED, RUNNING) and task.worker_running == reporter.id)
            if owned or new_deps:
                self._apply_status(task, status, now)

    def _update_details(self, task: _TaskState, family: str, module: str | None, params: Any,
                        param_visibilities: Any, accepts_messages: bool, tracking_url: Any,
                        batchable: Any, expl: Any, owners: Any) -> None:
        if family or module or params or param_visibilities:   # else: a result report
            task.family = task.family or family
            task.module = task.module or module
            task.param_visibilities = (task.param_visibilities or param_visibilities
                                       or _NO_VALUES)
            task.params = task.params or params or _NO_VALUES   # never mutated here
            if owners:
                task.owners = list(owners)
        if accepts_messages is not None:
            task.accepts_messages = accepts_messages
        if tracking_url is not None or task.status != RUNNING:
            task.tracking_url = tracking_url
        if batchable is not None:
            task.batchable = batchable
        if expl is not None:
            task.expl = expl

    def add_worker(self, worker: str, info: Any = None, **kwargs: Any) -> None:
        """Register a worker; ``info`` is a list of [key, value] pairs or a dict."""
        record = self._worker(worker)
        record.info.update(dict(info or {}))
        if record.info.get("assistant") and not record.assistant:
            self._add_assistant(record)
        return None

    def ping(self, worker: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Keep ``worker`` alive; returns ``{"rpc_messages": [...]}`` queued for it."""
        return {"rpc_messages": self._worker(worker).fetch_rpc_messages()}

    def count_pending(self, worker: str) -> dict[str, Any]:
        """This worker's runnable PENDING/FAILED task counts and what runs elsewhere.

        Tasks stuck behind a DISABLED task are not counted (as in Luigi), so a
        keep-alive worker does not wait for what cannot run.
        """
        return self._counts_reply(self._worker(worker), idle=True)

    def _counts_reply(self, worker: _WorkerState, idle: bool) -> dict[str, Any]:
        """The counts every count_pending/get_work reply carries. A worker given work
        gets the running counters; an idle one, deciding whether to wait, the recount
        and the tasks others are running (both bounded, and only then)."""
        pending, unique, last = (self._pending_counts(worker) if idle else
                                 (worker.n_pending, worker.n_unique, worker.n_last))
        return {"n_pending_tasks": pending, "n_unique_pending": unique,
                "n_pending_last_scheduled": last,
                "worker_state": "active" if worker.enabled else "disabled",
                "running_tasks": self._running_elsewhere(worker) if idle else []}

    def _pending_counts(self, worker: _WorkerState) -> tuple[int, int, float | None]:
        """(pending, unique, last scheduled) for ``worker``: the running counters, or,
        while some task is DISABLED, a recount without the tasks stuck behind it."""
        if not (worker.n_pending and self._disabled):
            return worker.n_pending, worker.n_unique, worker.n_last
        memo: dict[str, str] = {}
        pending, unique, last = 0, 0, 0
        for task_id in worker.stake:
            task = self._tasks.get(task_id)
            if task is None or task.status not in _COUNTED or worker.id not in task.workers \
                    or self._upstream_status(task_id, memo) == UPSTREAM_DISABLED:
                continue
            pending += 1
            unique += len(task.workers) == 1
            last += task.workers[-1] == worker.id
        return pending, unique, last

    def _running_elsewhere(self, worker: _WorkerState) -> list[dict[str, Any]]:
        """Tasks this worker wants that another worker is running (bounded by the
        number of running tasks, not by the size of the graph)."""
        running = []
        for task_id in self._running:
            task = self._tasks[task_id]
            if worker.id in task.stakeholders:
                other = self._workers.get(task.worker_running)   # type: ignore[arg-type]
                entry = {"task_id": task_id, "worker": task.worker_running}
                entry.update(other.info if other is not None else {})
                running.append(entry)
        return running

    def get_work(self, worker: Any = None, host: str | None = None, assistant: bool = False,
                 current_tasks: Iterable[str] | None = None, prefetch: int = 0,
                 **kwargs: Any) -> dict[str, Any]:
        """Hand ``worker`` the best task it may run now, and mark it RUNNING.

        Best means: every dependency DONE, resources available, highest priority, then
        earliest added. The reply always has the same keys; ``task_id`` is None when
        there is nothing to do. ``prefetch`` (microflow's client, for quick tasks): up
        to that many more, claimed for it too, under ``prefetched``.
        """
        now = self._clock()
        if self._timers and self._timers[0][0] <= now and self.options["prune_on_get_work"]:
            self._prune(now)
        record = self._worker(worker, now)
        record.last_get_work = now
        if assistant and not record.assistant:
            self._add_assistant(record)
        task = None
        if record.enabled and not self._paused:
            if record.running and current_tasks is not None:
                task = self._reclaim(record, current_tasks)
            if self._batches and current_tasks is not None:
                self._reset_orphaned_batches(record, now)
            if task is None:
                task = self._pick(record)
            batch = self._batch_with(record, task) if self._batchers and task else None
            if batch:
                started = self._start_batch(batch, record, now)
                reply = self._counts_reply(record, idle=False)   # counted once started
                reply.update(started)
                return reply
        # Counted before the task is claimed, as Luigi counts: it is still pending.
        reply = self._counts_reply(record, idle=task is None)
        if task is None:
            reply["task_id"] = None
            return reply
        if task.status != RUNNING:
            self._claim(task, record, now)
        reply.update(_handed_out(task))
        if prefetch and not self._batchers:
            reply["prefetched"] = self._hand_out_more(
                record, min(int(prefetch), self._fair_share(record, now)), now)
        return reply

    def _fair_share(self, worker: _WorkerState, now: float) -> int:
        """How many more tasks ``worker`` may be handed ahead: its pending tasks shared
        by the workers asking now (guided self-scheduling), so that near the end of a
        graph the last quick tasks spread over every worker instead of queueing behind
        one of them while the others have stopped."""
        # asking now: a get_work within the last second (a worker running a long task,
        # or gone, does not share in what is left)
        asking = sum(1 for other in self._workers.values() if other.enabled and
                     other.last_get_work is not None and now - other.last_get_work < 1.0)
        return worker.n_pending // max(1, asking)

    def _hand_out_more(self, worker: _WorkerState, count: int,
                       now: float) -> list[dict[str, Any]]:
        """Up to ``count`` more tasks that can run now, claimed for ``worker`` as the
        first was: one request then carries several, and no other worker gets them."""
        more: list[dict[str, Any]] = []
        while len(more) < count:
            task = self._pick(worker)
            if task is None:
                break
            self._claim(task, worker, now)
            more.append(_handed_out(task))
        return more

    def release_tasks(self, worker: Any = None, task_ids: Iterable[str] = ()) -> None:
        """Take back tasks handed to ``worker`` in advance that it will not start (its
        run stopped first): PENDING again, for any worker."""
        now = self._clock()
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            if task is not None and task.status == RUNNING and task.worker_running == worker:
                self._set_status(task, PENDING, now)

    def _reclaim(self, worker: _WorkerState,
                 current_tasks: Iterable[str]) -> _TaskState | None:
        """A task we think runs on this worker but that it no longer lists: hand it out
        again (the worker restarted or lost it)."""
        lost = worker.running - set(current_tasks)
        return self._tasks[min(lost)] if lost else None

    def _add_assistant(self, worker: _WorkerState) -> None:
        """From now on ``worker`` may run any runnable task: offer it every one that can
        run now (once; later ones are offered as they become ready)."""
        worker.assistant = True
        if not self._assistants:
            self._assistant_ready = _Offers()
            for offer in sorted((-t.priority, t.seq, t.id) for t in self._tasks.values()
                                if t.runnable and t.status == PENDING and not t.blockers):
                self._assistant_ready.push(offer)
        self._assistants.add(worker.id)

    def _pick(self, worker: _WorkerState) -> _TaskState | None:
        """Take the best valid offer of the worker's; park resource-blocked ones."""
        if worker.assistant:
            return self._pick_as_assistant(worker)
        tasks = self._tasks
        for negative_priority, _, task_id in worker.ready.taking():
            task = tasks.get(task_id)
            if (task is None or task.status != PENDING or task.blockers
                    or worker.id not in task.workers
                    or -negative_priority != task.priority):
                continue   # a stale offer; the current one is elsewhere in the heap
            if task.resources and self._parked(task, worker):
                continue
            return task
        return None

    def _pick_as_assistant(self, worker: _WorkerState) -> _TaskState | None:
        """The best runnable task, from its own offers and every runnable one."""
        mine, all_runnable = worker.ready, self._assistant_ready
        while mine or all_runnable:
            offers = mine if mine and (not all_runnable or   # its own, when as good
                                       mine.first()[0] <= all_runnable.first()[0]) \
                else all_runnable
            negative_priority, _, task_id = offers.pop()
            task = self._tasks.get(task_id)
            if (task is None or task.status != PENDING or task.blockers or not task.runnable
                    or -negative_priority != task.priority):
                continue
            if task.resources and self._parked(task, worker):
                continue
            return task
        return None

    def _parked(self, task: _TaskState, worker: _WorkerState) -> bool:
        """Park ``task`` until the resources it lacks now are given back (True), or
        say it fits (False)."""
        missing = self._pool.missing(task)
        if missing is None:
            return False
        self._pool.park(missing, task, worker.id)
        return True

    def _claim(self, task: _TaskState, worker: _WorkerState, now: float) -> None:
        task.worker_running = worker.id   # before the change is announced: listeners
        task.time_running = now           # (history: the host) read them
        self._set_status(task, RUNNING, now)
        if task.status_message is not None or task.progress_percentage is not None:
            task.status_message = task.progress_percentage = None
        worker.running.add(task.id)
        if task.resources:
            task.resources_running = dict(task.resources)
            self._pool.take(task.resources_running)
        else:
            task.resources_running = _NO_VALUES   # shared and never mutated: it is empty

    # -- messages, progress and resources of running tasks -----------------------------

    def _show(self, task_id: str, method: str, field: str, value: Any) -> None:
        """Set what a running task shows (on its batch's members too), announced."""
        for task in self._with_batch(self._task(task_id, method)):
            setattr(task, field, value)
            if "task" in self._listeners:
                self._announce("task", task, task.status, task.status)

    def set_task_status_message(self, task_id: str, status_message: str | None) -> None:
        """Set the message a running task shows."""
        self._show(task_id, "set_task_status_message", "status_message", status_message)

    def get_task_status_message(self, task_id: str) -> dict[str, Any]:
        """``{"taskId", "statusMessage"}``."""
        task = self._task(task_id, "get_task_status_message")
        return {"taskId": task_id, "statusMessage": task.status_message}

    def set_task_progress_percentage(self, task_id: str,
                                     progress_percentage: float | None) -> None:
        """Set a running task's progress (0-100)."""
        self._show(task_id, "set_task_progress_percentage", "progress_percentage",
                   progress_percentage)

    def get_task_progress_percentage(self, task_id: str) -> dict[str, Any]:
        """``{"taskId", "progressPercentage"}``."""
        task = self._task(task_id, "get_task_progress_percentage")
        return {"taskId": task_id, "progressPercentage": task.progress_percentage}

    def decrease_running_task_resources(self, task_id: str,
                                        decrease_resources: Mapping[str, int] | None) -> None:
        """Give back part of the resources a running task holds."""
        task = self._task(task_id, "decrease_running_task_resources")
        if task.status != RUNNING or not task.resources_running:
            return None
        for resource, amount in (decrease_resources or {}).items():
            held = task.resources_running.get(resource, 0)
            amount = max(0, min(amount, held))
            task.resources_running[resource] = held - amount
            self._pool.give_back(resource, amount)
            self._unpark(resource)
        for member in self._with_batch(task)[1:]:   # they show what their runner holds
            member.resources_running = dict(task.resources_running)
        return None

    def _with_batch(self, task: _TaskState) -> list[_TaskState]:
        """``task`` and, when it runs a batch, the batch's members."""
        if task.batch_id is None:
            return [task]
        return [task] + self._batch_members(task.batch_id)

    def get_running_task_resources(self, task_id: str) -> dict[str, Any]:
        """``{"taskId", "resources"}``: what a running task holds now."""
        task = self._task(task_id, "get_running_task_resources")
        held = task.resources_running
        return {"taskId": task_id, "resources": None if held is None else dict(held)}


###########################################################################################
# Scheduler: read-only views (the visualiser's API)
###########################################################################################

class _SchedulerViews(_SchedulerCalls):
    """Scheduler: read-only views of the graph, the workers and the resources (the
    visualiser's API, and tools)."""

    @staticmethod
    def _public_params(task: _TaskState) -> dict[str, Any]:
        return {name: value for name, value in task.params.items()
                if task.param_visibilities.get(name, 0) == ParameterVisibility.PUBLIC}

    def _pretty_id(self, task: _TaskState) -> str:
        """``Family(name=value, ...)`` of the public parameters: what users see and
        search. Kept with the record until its parameters are replaced (the page reads
        every task's)."""
        made = task.pretty
        if made is not None and made[0] is task.params and made[1] is task.family:
            return made[2]
        shown = ", ".join(f"{name}={value}" for name, value in
                          self._public_params(task).items())
        task.pretty = (task.params, task.family, f"{task.family}({shown})")
        return task.pretty[2]

    # A task as the status page lists it: these fields, in this order.
    _BRIEF_FIELDS = ("status", "display_name", "name", "status_message",
                     "progress_percentage", "time_running", "last_updated", "tracking_url",
                     "worker_running", "re_enable_able")

    def _brief(self, task: _TaskState) -> list[Any]:
        return [task.status, self._pretty_id(task), task.family, task.status_message,
                task.progress_percentage, task.time_running, task.updated,
                task.tracking_url, task.worker_running,
                task.status == DISABLED and task.disabled_at is not None]

    def _serialize_task(self, task: _TaskState, include_deps: bool = True) -> dict[str, Any]:
        public = self._public_params(task)
        record = {
            "display_name": self._pretty_id(task), "status": task.status,
            "workers": list(task.workers), "worker_running": task.worker_running,
            "time_running": task.time_running, "start_time": task.start_time,
            "last_updated": task.updated, "params": public, "name": task.family,
            "priority": task.priority, "resources": dict(task.resources),
            "resources_running": (None if task.resources_running is None
                                  else dict(task.resources_running)),
            "tracking_url": task.tracking_url,
            "status_message": task.status_message,
            "progress_percentage": task.progress_percentage,
            "re_enable_able": task.status == DISABLED and task.disabled_at is not None,
            "accepts_messages": task.accepts_messages,
        }
        if include_deps:
            record["deps"] = sorted(task.deps)
        return record

    def graph(self, **kwargs: Any) -> dict[str, Any]:
        """Every task, as ``{task_id: serialized task}``."""
        self.prune()
        return {task_id: self._serialize_task(task) for task_id, task in self._tasks.items()}

    def task_list(self, status: str = "", upstream_status: str = "", limit: bool = True,
                  search: str | None = None, max_shown_tasks: int | None = None,
                  **kwargs: Any) -> dict[str, Any]:
        """Tasks with ``status`` (all when empty), optionally filtered by upstream status
        and a search string. Too many gives ``{"num_tasks": n}`` when ``limit``."""
        limit_to = max_shown_tasks or self.options["max_shown_tasks"]
        ids = [i for i, t in self._tasks.items() if t.status == status] if status \
            else self._tasks
        if limit and not search and len(ids) > limit_to:   # too many, before any work
            return {"num_tasks": -1 if upstream_status else len(ids)}
        self.prune()
        ids = [i for i, t in self._tasks.items() if t.status == status] if status \
            else self._tasks
        if search:   # every term, in any case, in the name and public parameters
            terms = search.casefold().split()
            ids = [i for i in ids if all(
                term in self._pretty_id(self._tasks[i]).casefold() for term in terms)]
        memo: dict[str, str] = {}
        result = {}
        for task_id in ids:
            if upstream_status and self._upstream_status(task_id, memo) != upstream_status:
                continue
            result[task_id] = self._serialize_task(self._tasks[task_id], include_deps=False)
        if limit and len(result) > limit_to:
            return {"num_tasks": len(result)}
        return result

    def _reach(self, task_id: str, include_done: bool,
               neighbours: Callable[[_TaskState], Iterable[str]],
               order: Callable[[Iterable[str]], list[str]] = sorted
               ) -> list[tuple[str, _TaskState | None, list[str]]]:
        """Breadth first from ``task_id`` along ``neighbours`` (Luigi's traversal):
        ``[(task id, its record or None, its neighbours)]``, DONE ones left out, and
        not followed, unless ``include_done``; an id nobody added has no record; at most
        ``max_graph_nodes`` of them; [] for a task the scheduler does not know.
        ``order`` puts each task's neighbours in order (Luigi's: sorted)."""
        if task_id not in self._tasks:
            return []
        found, seen, queue = [], {task_id}, [task_id]
        for current_id in queue:   # the list grows as the walk goes: breadth first
            task = self._tasks.get(current_id)
            deps: list[str] = []
            if task is None or not task.family:
                task = None
            else:
                deps = order(dep for dep in neighbours(task) if include_done or
                             getattr(self._tasks.get(dep), "status", None) != DONE)
                for dep in deps:
                    if dep not in seen:
                        seen.add(dep)
                        queue.append(dep)
            found.append((current_id, task, deps))
            if len(found) >= self.options["max_graph_nodes"]:
                break
        return found

    def _walk(self, task_id: str, include_done: bool,
              neighbours: Callable[[_TaskState], Iterable[str]]) -> dict[str, Any]:
        """_reach() in Luigi's reply: each task serialized, its neighbours as ``deps``,
        an UNKNOWN placeholder for an id nobody added."""
        result = {}
        for current_id, task, deps in self._reach(task_id, include_done, neighbours):
            if task is None:
                family = current_id.split("_", 1)[0] if "_" in current_id else UNKNOWN
                record = {"deps": [], "status": UNKNOWN, "workers": [],
                          "start_time": UNKNOWN, "params": {"task_id": current_id},
                          "name": family, "display_name": current_id, "priority": 0}
            else:
                record = self._serialize_task(task, include_deps=False)
                record["deps"] = deps
            if current_id != task_id:
                del record["display_name"]
            result[current_id] = record
        return result

    def dep_graph(self, task_id: str, include_done: bool = True, **kwargs: Any) -> dict[str, Any]:
        """The task and everything it depends on, breadth first."""
        self.prune()
        return self._walk(task_id, include_done, lambda task: task.deps)

    def inverse_dep_graph(self, task_id: str, include_done: bool = True,
                          **kwargs: Any) -> dict[str, Any]:
        """The task and everything that depends on it, breadth first."""
        self.prune()
        return self._walk(task_id, include_done, lambda task: task.dependents)

    def task_graph(self, task_id: str, include_done: bool = True) -> dict[str, Any]:
        """The status page's graph of a task, both ways at once: ``{"up": what it
        needs, "down": what needs it}``, each ``{task_id: [status, family, display
        name, neighbours]}`` (a few fields: a graph of 10,000 tasks is read whole)."""
        self.prune()

        def brief(found: Iterable[tuple[str, _TaskState | None, list[str]]]) -> dict[str, Any]:
            return {task_id: [UNKNOWN, task_id.split("_", 1)[0], task_id, []]
                    if task is None else
                    [task.status, task.family, self._pretty_id(task), deps]
                    for task_id, task, deps in found}
        return {"up": brief(self._reach(task_id, include_done, lambda task: task.deps,
                                        list)),   # the page lays them out itself
                "down": brief(self._reach(task_id, include_done,
                                          lambda task: task.dependents, list))}

    def task_search(self, task_str: str, **kwargs: Any) -> dict[str, Any]:
        """Tasks whose id contains ``task_str``, as ``{status: {task_id: task}}``."""
        self.prune()
        found: dict[str, Any] = {}
        for task_id, task in self._tasks.items():
            if task_str in task_id:
                found.setdefault(task.status, {})[task_id] = self._serialize_task(task)
        return found

    def fetch_error(self, task_id: str, **kwargs: Any) -> dict[str, Any]:
        """The explanation a failed task reported, with its identity (an empty error
        for a task the scheduler does not know, as Luigi replies)."""
        task = self._tasks.get(task_id)
        if task is None:
            return {"taskId": task_id, "error": ""}
        return {"taskId": task_id, "error": task.expl,
                "displayName": self._serialize_task(task)["display_name"],
                "taskParams": task.params, "taskModule": task.module,
                "taskFamily": task.family}

    def worker_list(self, include_running: bool = True, **kwargs: Any) -> list[dict[str, Any]]:
        """Every live worker with its counts (and running tasks)."""
        self.prune()
        workers = []
        for worker in sorted(self._workers.values(), key=lambda w: w.last_active,
                             reverse=True):
            first = self._tasks.get(worker.info.get("first_task"))   # type: ignore[arg-type]
            record = {"name": worker.id, "last_active": worker.last_active,
                      "started": worker.started, "state": worker.state,
                      "first_task_display_name": self._pretty_id(first) if first else "",
                      "num_unread_rpc_messages": len(worker.messages),
                      "num_pending": worker.n_pending, "num_uniques": worker.n_unique,
                      "num_running": len(worker.running), "info": dict(worker.info)}
            record.update(worker.info)
            if include_running:
                record["running"] = {i: self._serialize_task(self._tasks[i])
                                     for i in sorted(worker.running)}
            workers.append(record)
        return workers

    def resource_list(self) -> list[dict[str, Any]]:
        """Luigi's listing: ``[{"name", "num_total", "num_used", "num_consumer",
        "running": {task_id: serialized task}}]`` for each resource with a capacity or
        in use."""
        self.prune()
        consumers: dict[str, Any] = {}
        for task_id in self._running:
            task = self._tasks[task_id]
            for resource in task.resources_running or ():
                consumers.setdefault(resource, {})[task_id] = \
                    self._serialize_task(task, include_deps=False)
        pool = self._pool
        return [{"name": name, "num_total": pool.capacity_of(name),
                 "num_used": pool.used.get(name, 0),
                 "num_consumer": len(consumers.get(name, {})),
                 "running": consumers.get(name, {})} for name in pool.names()]


###########################################################################################
# Scheduler: what changed since a version (the status page's live view)
###########################################################################################

class _ChangeFeed:
    """A listener numbering the scheduler's changes: each change gets the next version,
    and each task remembers the version of its last change, in order of change, so
    "what changed since version v" costs what changed, not the size of the graph."""

    def __init__(self, scheduler: _SchedulerCore) -> None:
        self.version = 1
        self.workers_version = 1
        self._changed: dict[str, int] = {}   # task id -> version of its last change
        self._removed: dict[str, int] = {}   # task id -> version it was forgotten at
        scheduler.subscribe(self._heard)

    def _heard(self, event: str, record: Any, old: Any, new: Any) -> None:
        self.version += 1
        if event == "worker":
            self.workers_version = self.version
            return
        changed = self._removed if event == "removed" else self._changed
        (self._changed if event == "removed" else self._removed).pop(record.id, None)
        changed.pop(record.id, None)   # re-inserted last: the dict stays in order
        changed[record.id] = self.version

    def since(self, version: int) -> tuple[list[str], list[str]]:
        """``(ids of tasks changed after version, ids removed after it)``."""
        def newer(versions: dict[str, int]) -> list[str]:
            found = []
            for task_id, changed_at in reversed(versions.items()):
                if changed_at <= version:
                    break
                found.append(task_id)
            return found
        return newer(self._changed), newer(self._removed)


class _SchedulerFeed(_SchedulerViews):
    """Scheduler: ``changes(since)``, the status page's one read of the task list."""

    def __init__(self, clock: Callable[[], float] | None = None,
                 resources: Mapping[str, int] | None = None, **options: Any) -> None:
        super().__init__(clock, resources, **options)
        self._feed: _ChangeFeed | None = None   # made on the first call: no page, no cost

    def changes(self, since: int = 0) -> dict[str, Any]:
        """The tasks changed since version ``since`` (from an earlier reply), each as a
        list of ``fields``: ``{"version", "time", "fields", "tasks": {task_id: [...]},
        "removed": [ids], "workers": bool (the workers changed), "reload": bool}``.
        With ``reload`` (the first call, or when most tasks changed) ``tasks`` holds
        every task: replace the list with it."""
        feed = self._feed
        if feed is None:
            feed = self._feed = _ChangeFeed(self)
        reply: dict[str, Any] = {"version": feed.version, "time": self._clock(),
                 "fields": self._BRIEF_FIELDS, "tasks": {}, "removed": [],
                 "workers": feed.workers_version > since, "reload": since <= 0}
        if since >= feed.version:
            return reply
        changed: Sequence[str] | dict[str, _TaskState]
        changed, removed = ([], []) if since <= 0 else feed.since(since)
        if since <= 0 or len(changed) > len(self._tasks) // 2:
            self.prune()
            reply["reload"] = True
            changed, removed = self._tasks, []
        brief, tasks = self._brief, self._tasks
        reply["tasks"] = {task_id: brief(tasks[task_id]) for task_id in changed}
        reply["removed"] = removed
        return reply


###########################################################################################
# Scheduler: administration
###########################################################################################

class _SchedulerAdmin(_SchedulerFeed):
    """Scheduler: what an administrator does (re-enable, forgive, mark as done,
    disable a worker, pause, resources, messages to tasks)."""

    def re_enable_task(self, task_id: str) -> dict[str, Any]:
        """Lift a disable; the task becomes FAILED and is retried after retry_delay."""
        task = self._task(task_id, "re_enable_task")
        if task.status == DISABLED:
            task.forget_failures()
            self._apply_status(task, FAILED, self._clock())
        return self._serialize_task(task)

    def forgive_failures(self, task_id: str) -> dict[str, Any]:
        """Turn a FAILED task PENDING now, without waiting for retry_delay;
        ``{"task_id", "status"}`` (None for a task the scheduler does not know), as
        Luigi replies."""
        task = self._tasks.get(task_id)
        if task is None:
            return {"task_id": task_id, "status": None}
        if task.status == FAILED:
            task.forget_failures()
            self._set_status(task, PENDING)
        return {"task_id": task_id, "status": task.status}

    def mark_as_done(self, task_id: str) -> dict[str, Any]:
        """Declare a task DONE without (or while) running it; ``{"task_id", "status"}``
        (status None for a task the scheduler does not know), as Luigi replies."""
        task = self._tasks.get(task_id)
        if task is None:
            return {"task_id": task_id, "status": None}
        if task.status in (PENDING, RUNNING, FAILED, DISABLED, UNKNOWN):
            self._apply_status(task, DONE, self._clock())
        return {"task_id": task_id, "status": task.status}

    def disable_worker(self, worker: str) -> None:
        """Stop giving ``worker`` work: it may no longer run any task (it still
        reports on what it runs)."""
        record = self._worker(worker)
        record.enabled = False
        for task_id in record.stake:
            task = self._tasks.get(task_id)
            if task is not None:
                self._drop_runner(task, record.id)

    def set_worker_processes(self, worker: str, n: int) -> None:
        """Ask ``worker`` (through its next ping) to use ``n`` processes."""
        self._worker(worker).add_rpc_message("set_worker_processes", n=n)

    def send_scheduler_message(self, worker: str, task: str, content: str) -> dict[str, Any]:
        """Queue ``content`` for a running task; returns ``{"message_id"}``."""
        import uuid
        message_id = str(uuid.uuid4())
        record = self._task(task, "send_scheduler_message")
        record.messages = record.messages or {}
        record.messages[message_id] = None
        self._worker(worker).add_rpc_message("dispatch_scheduler_message", task_id=task,
                                             message_id=message_id, content=content)
        return {"message_id": message_id}

    def add_scheduler_message_response(self, task_id: str, message_id: str, response: Any) -> None:
        """Store a task's answer to a scheduler message."""
        record = self._task(task_id, "add_scheduler_message_response")
        record.messages = record.messages or {}
        record.messages[message_id] = response

    def get_scheduler_message_response(self, task_id: str, message_id: str) -> dict[str, Any]:
        """``{"response": ...}``: the answer, or None while there is none."""
        task = self._task(task_id, "get_scheduler_message_response")
        return {"response": (task.messages or {}).get(message_id)}

    def pause(self) -> None:
        """Hand out no work until unpause()."""
        if self.options["pause_enabled"]:
            self._paused = True

    def unpause(self) -> None:
        """Hand out work again."""
        self._paused = False

    def is_paused(self) -> dict[str, bool]:
        """``{"paused": bool}``."""
        return {"paused": self._paused}

    def is_pause_enabled(self) -> dict[str, bool]:
        """``{"enabled": bool}``."""
        return {"enabled": self.options["pause_enabled"]}

    def update_resource(self, resource: str, amount: Any) -> bool:
        """Set a resource's capacity; returns False if ``amount`` is not a whole number
        of units >= 0."""
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            return False
        self._pool.capacity[resource] = amount
        self._unpark(resource)
        return True

    def update_resources(self, **resources: Any) -> None:
        """Set several capacities at once."""
        for resource, amount in resources.items():
            self.update_resource(resource, amount)
        return None


###########################################################################################
# Scheduler: task history in SQLite (Luigi's tables, without SQLAlchemy)
###########################################################################################

# Luigi's layout (db_task_history.py), so queries written for its history work here.
_HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (id INTEGER PRIMARY KEY, task_id VARCHAR(200),
    name VARCHAR(128), host VARCHAR(128));
CREATE INDEX IF NOT EXISTS ix_tasks_task_id ON tasks (task_id);
CREATE INDEX IF NOT EXISTS ix_tasks_name ON tasks (name);
CREATE TABLE IF NOT EXISTS task_parameters (task_id INTEGER NOT NULL REFERENCES tasks (id),
    name VARCHAR(128) NOT NULL, value TEXT, PRIMARY KEY (task_id, name));
CREATE TABLE IF NOT EXISTS task_events (id INTEGER PRIMARY KEY,
    task_id INTEGER REFERENCES tasks (id), event_name VARCHAR(20), ts TIMESTAMP NOT NULL);
CREATE INDEX IF NOT EXISTS ix_task_events_task_id ON task_events (task_id);
CREATE INDEX IF NOT EXISTS ix_task_events_ts ON task_events (ts);
"""
# The statuses Luigi records: scheduled, started (with the host), finished.
_HISTORY_EVENTS = frozenset((PENDING, RUNNING, DONE, FAILED))


def _history_path(url: str) -> str:
    """The file of ``[task_history] db_connection`` (``sqlite:///path``)."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"[task_history] db_connection: microflow records history in "
                          f"SQLite only (sqlite:///path), got {url!r}")
    return url[len("sqlite:///"):] or ":memory:"


class _TaskHistory:
    """Records every task's events in SQLite. A listener on the scheduler's transitions
    queues each event (no disk in the call that made it); a thread of its own writes
    what is queued in one transaction every ``interval`` seconds, or sooner when much
    is waiting. WAL mode, so readers (the page) never wait for the writer. A run of a
    task is one row of ``tasks`` from when the scheduler first hears of it until it
    forgets it, as in Luigi."""

    def __init__(self, scheduler: _SchedulerCore, path: str, interval: float = 0.5) -> None:
        import sqlite3
        self.path = path
        self._scheduler = scheduler
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_HISTORY_SCHEMA)
        last = self._db.execute("SELECT max(id) FROM tasks").fetchone()[0] or 0
        self._keys = itertools.count(last + 1)   # the one writer numbers the rows
        self._runs: dict[str, int] = {}          # task id -> its row in tasks
        self._queue: collections.deque[Any] = collections.deque()   # rows to write
        self._write_lock = threading.Lock()
        self._wake, self._stop = threading.Event(), False
        self._thread = threading.Thread(target=self._write_loop, args=(interval,),
                                        name="microflow-history", daemon=True)
        self._thread.start()
        scheduler.subscribe(self._heard, ("status", "removed"))

    def _heard(self, event: str, task: _TaskState, old: Any, new: Any) -> None:
        """Queue one event, as it is: the writer thread makes the rows."""
        if event == "removed":
            self._runs.pop(task.id, None)
            return
        if new not in _HISTORY_EVENTS:
            return
        host = None
        if new == RUNNING and task.worker_running:
            worker = self._scheduler._workers.get(task.worker_running)
            host = worker.info.get("host") if worker is not None else None
        key = self._runs.get(task.id)
        first = key is None   # a new row of tasks: its family and parameters are read
        if first:             # when written (a task is born PENDING before they are set)
            key = self._runs[task.id] = next(self._keys)
        self._queue.append((key, new, self._scheduler._clock(), host,
                            task if first else None))
        if len(self._queue) > 20000:
            self._wake.set()

    def flush(self) -> None:
        """Write what is queued, now, in one transaction."""
        with self._write_lock:
            queue, batch = self._queue, []
            while queue:
                batch.append(queue.popleft())
            if not batch:
                return
            # The record's params: a dict the scheduler replaces, never changes.
            tasks = [(key, made.id, made.family, host)
                     for key, _, _, host, made in batch if made]
            params = [(key, name, str(value)) for key, _, _, _, made in batch if made
                      for name, value in made.params.items()]
            hosts = [(host, key) for key, _, _, host, made in batch if host and not made]
            stamp = datetime.datetime.fromtimestamp   # SQLAlchemy's form of a TIMESTAMP
            events = [(key, status, stamp(at).isoformat(" ", "microseconds"))
                      for key, status, at, _, _ in batch]
            db = self._db
            db.execute("BEGIN")
            try:
                db.executemany("INSERT INTO tasks (id, task_id, name, host) "
                               "VALUES (?, ?, ?, ?)", tasks)
                db.executemany("INSERT OR REPLACE INTO task_parameters (task_id, name, "
                               "value) VALUES (?, ?, ?)", params)
                db.executemany("UPDATE tasks SET host = ? WHERE id = ?", hosts)
                db.executemany("INSERT INTO task_events (task_id, event_name, ts) "
                               "VALUES (?, ?, ?)", events)
            finally:
                db.execute("COMMIT")

    def _write_loop(self, interval: float) -> None:
        while not self._stop:
            self._wake.wait(interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:   # a full disk, say: the scheduler goes on without it
                _log.exception("task history: writing to %s failed", self.path)

    def close(self) -> None:
        """Write what is left and close the file."""
        self._stop = True
        self._wake.set()
        self._thread.join()
        self.flush()
        self._db.close()

    def runs(self, family: str | None = None, task_id: str | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
        """The latest ``limit`` runs of a family or of one task, newest first, each
        ``{"id", "task_id", "name", "host", "params", "events": [[status, ts], ...]}``
        (events oldest first)."""
        import sqlite3
        where, value = ("task_id", task_id) if task_id is not None else ("name", family)
        with contextlib.closing(sqlite3.connect(self.path)) as db:   # WAL: no waiting
            rows = db.execute(f"SELECT id, task_id, name, host FROM tasks WHERE {where} = ?"
                              f" ORDER BY id DESC LIMIT ?", (value, int(limit))).fetchall()
            runs = []
            for key, run_task_id, name, host in rows:
                params = dict(db.execute("SELECT name, value FROM task_parameters WHERE "
                                         "task_id = ?", (key,)))
                events = [list(event) for event in db.execute(
                    "SELECT event_name, ts FROM task_events WHERE task_id = ? ORDER BY id",
                    (key,))]
                runs.append({"id": key, "task_id": run_task_id, "name": name,
                             "host": host, "params": params, "events": events})
        return runs


class _SchedulerHistory(_SchedulerAdmin):
    """Scheduler: task history, when ``record_task_history`` is on, in the SQLite file
    of ``[task_history] db_connection`` (Luigi's settings)."""

    def __init__(self, clock: Callable[[], float] | None = None,
                 resources: Mapping[str, int] | None = None, **options: Any) -> None:
        super().__init__(clock, resources, **options)
        self._history: _TaskHistory | None = None
        if self.options["record_task_history"]:
            url = get_config().get("task_history", "db_connection", None)
            if not url:   # as Luigi: no file made where nobody asked for one
                raise ConfigError("[scheduler] record_task_history is on, and "
                                  "[task_history] db_connection (sqlite:///path) is not set")
            self._history = _TaskHistory(self, _history_path(url))

    def has_task_history(self) -> bool:
        """Whether task history is recorded."""
        return self._history is not None

    def task_history(self, family: str | None = None, task_id: str | None = None,
                     limit: int = 50) -> list[dict[str, Any]]:
        """The latest runs of a task family or of one task, from the history (what is
        recorded within the last half second may not be there yet); [] without one."""
        if self._history is None or (family is None and task_id is None):
            return []
        return self._history.runs(family, task_id, limit)


###########################################################################################
# Scheduler: durable state (snapshot, restore, the state file)
###########################################################################################

# What snapshot() keeps of a task: id and status first, then the rest restore() sets.
_RECORD_FIELDS = (
    "id", "status", "deps", "stakeholders", "workers", "priority", "family", "module",
    "params", "param_visibilities", "resources", "worker_running", "time_running",
    "start_time", "updated", "expl", "tracking_url", "retry_policy", "accepts_messages",
    "batchable", "failures", "first_failure", "disabled_at", "retry_at", "remove_at",
    "owners", "status_message", "progress_percentage",
)
_STATE_VERSION = 1


class _SchedulerState(_SchedulerHistory):
    """Scheduler: durable state, what a restart must not lose (the server journals
    it in a _StateFile)."""

    def snapshot(self) -> dict[str, Any]:
        """Every task's durable record, JSON-ready: ``{"version": 1, "tasks": [...]}``.
        Workers are not kept: after a restart they come back with their next call."""
        return {"version": _STATE_VERSION,
                "tasks": [self.task_record(task_id) for task_id in self._tasks]}

    def task_record(self, task_id: str) -> dict[str, Any]:
        """One task's durable record (``{"id": ..., "removed": True}`` once removed)."""
        task = self._tasks.get(task_id)
        if task is None:
            return {"id": task_id, "removed": True}
        record = {name: getattr(task, name) for name in _RECORD_FIELDS}
        for name in ("deps", "stakeholders", "workers", "failures", "owners"):
            record[name] = list(record[name])
        return record

    def restore(self, records: Sequence[dict[str, Any]]) -> int:
        """Rebuild tasks from ``task_record()``s (later records of an id win) in this
        scheduler, which must be empty. Their workers get a fresh
        ``worker_disconnect_delay`` to come back. Raises SchedulerError if not empty."""
        if self._tasks:
            raise SchedulerError("restore: the scheduler already has tasks")
        latest: dict[str, dict[str, Any]] = {}
        for record in records:
            latest.pop(record["id"], None)   # keep the order of the last record
            latest[record["id"]] = record
        records = [record for record in latest.values() if not record.get("removed")]
        now = self._clock()
        for record in records:
            task = self._get_or_create(record["id"], now=record["start_time"])
            for name in _RECORD_FIELDS[2:]:
                if name not in ("deps", "stakeholders", "workers", "retry_policy"):
                    setattr(task, name, record[name])
            task.retry_policy = self._retry_policy(record["retry_policy"])
        for record in records:
            self._restore_links(self._tasks[record["id"]], record, now)
        return len(records)

    def _restore_links(self, task: _TaskState, record: dict[str, Any], now: float) -> None:
        """Dependencies, workers, status and timers of a restored task."""
        updated = task.updated
        self._set_deps(task, record["deps"], True, now)
        for worker_id in record["stakeholders"]:
            self._add_stakeholder(task, self._worker(worker_id, now), ())
        for worker_id in record["workers"]:
            self._add_runnable_worker(task, self._worker(worker_id, now))
        running_on = task.worker_running
        self._set_status(task, record["status"], now)
        if record["status"] == RUNNING and running_on is not None:
            self._claim(task, self._worker(running_on, now),
                        task.time_running)   # type: ignore[arg-type]  # set when RUNNING
        task.updated = updated
        if task.retry_at is not None:
            self._timer(task.retry_at, "retry", task.id)
        if task.disabled_at is not None:
            self._timer(task.disabled_at + self.options["disable_persist"], "enable",
                        task.id)
        if task.remove_at is not None:
            self._timer(task.remove_at, "remove", task.id)


class _StateFile:
    """The server's durable state: a snapshot (JSON, versioned, replaced atomically)
    and a journal beside it (``PATH.journal``), one JSON line per call that changed
    tasks, holding their new records, flushed and fsynced before the call returns.

    Loading applies the journal's records over the snapshot's; a damaged line (a torn
    write at a crash) is reported and skipped. Every ``compact_every`` lines the
    journal is folded into a new snapshot. Sequence numbers make a crash between
    writing the snapshot and emptying the journal harmless.
    """

    def __init__(self, path: str, compact_every: int = 10000) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            import errno
            raise OSError(errno.ENOENT, f"state path {path}: the folder {folder} does not "
                                        f"exist (create it, or give another path)")
        self.path, self.journal_path = path, path + ".journal"
        self.compact_every = compact_every
        self._seq = self._lines = 0
        self._journal: io.TextIOWrapper | None = None

    def load(self) -> list[dict[str, Any]]:
        """The task records to restore, oldest first."""
        records, first_seq = [], 0
        try:
            with open(self.path, encoding="utf-8") as f:
                snapshot = json.load(f)
            if snapshot.get("version") != _STATE_VERSION:
                raise ValueError(f"version {snapshot.get('version')!r}, expected "
                                 f"{_STATE_VERSION}")
            records, first_seq = snapshot["tasks"], snapshot["seq"]
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            _log.error("state snapshot %s is unreadable (%s); starting from the journal",
                       self.path, exc)
        self._seq = first_seq
        for number, line in enumerate(self._journal_lines(), 1):
            try:
                entry = json.loads(line)
                seq, tasks = entry["seq"], entry["tasks"]
            except (ValueError, KeyError, TypeError):
                _log.warning("state journal %s line %d is damaged (a write cut short by a "
                             "crash?); skipped", self.journal_path, number)
                continue
            if seq > first_seq:
                records.extend(tasks)
                self._seq = max(self._seq, seq)
        return records

    def _journal_lines(self) -> list[str]:
        try:
            with open(self.journal_path, encoding="utf-8", errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Journal ``records`` durably (written, flushed and fsynced)."""
        if self._journal is None:
            self._journal = open(self.journal_path, "a", encoding="utf-8")
        self._seq += 1
        self._journal.write(json.dumps({"seq": self._seq, "tasks": records}) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._lines += 1

    def due(self) -> bool:
        """True when the journal should be folded into a snapshot."""
        return self._lines >= self.compact_every

    def compact(self, snapshot: dict[str, Any]) -> None:
        """Write ``snapshot`` atomically (temporary file, fsync, rename), then empty
        the journal."""
        snapshot = dict(snapshot, seq=self._seq)
        folder = os.path.dirname(os.path.abspath(self.path))
        temporary = _temporary_name(self.path)
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(snapshot, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        _fsync_folder(folder)
        if self._journal is not None:
            self._journal.close()
        self._journal = open(self.journal_path, "w", encoding="utf-8")
        os.fsync(self._journal.fileno())
        self._lines = 0

    def close(self) -> None:
        """Close the journal file."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the platform allows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


###########################################################################################
# Scheduler: e-mails
###########################################################################################

class _SchedulerEmails(_SchedulerState):
    """Scheduler: the e-mails it sends (Luigi's): a task disabled for its failures, and
    failures in batches with ``[scheduler] batch_emails``. Listeners: they hear of a
    disable or a failure through subscribe(), and no transition waits on SMTP."""

    def __init__(self, clock: Callable[[], float] | None = None,
                 resources: Mapping[str, int] | None = None, **options: Any) -> None:
        super().__init__(clock, resources, **options)
        # Failures e-mailed in batches, when asked (BatchNotifier looked up now, so a
        # test may replace it).
        self._email_batcher = BatchNotifier() if self.options["batch_emails"] else None
        self.subscribe(self._email_disable, ["disabled"])
        if self._email_batcher is not None:
            self.subscribe(self._batch_failure_email, ["reported"])

    def _email_disable(self, event: str, task: _TaskState, old: Any, new: Any) -> None:
        """Listener: e-mail a task the scheduler disabled for its failures (unless
        failures go out in batches), from a thread of its own: the transition that
        disabled it returns at once, SMTP or not (the thread is not a daemon: a run
        that ends now still sends it)."""
        if self._email_batcher is not None:
            return
        policy = task.retry_policy
        threading.Thread(target=notifications.send_error_email, name="microflow-email", args=(
            f"Luigi Scheduler: DISABLED {task.id} due to excessive failures",
            f"{task.id} failed {policy['retry_count']} times in the last "
            f"{policy['disable_window']} seconds, so it is being disabled for "
            f"{self.options['disable_persist']} seconds")).start()

    def _batch_failure_email(self, event: str, task: _TaskState, status: Any,
                             report: Any) -> None:
        """Listener: a reported failure joins the next batch of e-mails."""
        worker, expl, owners = report
        if status != FAILED:
            return
        try:
            reason = json.loads(expl) if expl is not None else None
        except ValueError:
            reason = expl   # not JSON, as a hand-written client may send it
        params = self._unbatched(worker.id, task.family, task.params)
        name = self._pretty_id(task)
        batcher = self._email_batcher
        if batcher is None:
            return
        batcher.add_failure(name, task.family, params, reason, owners)
        if task.status == DISABLED:
            batcher.add_disable(name, task.family, params, owners)

    def prune(self, **kwargs: Any) -> None:
        """Apply what is due, then send the batch of e-mails if it is time."""
        super().prune()
        if self._email_batcher is not None:
            self._email_batcher.update()

    def announce_scheduling_failure(self, task_name: Any = None, family: Any = None,
                                    params: Mapping[str, Any] | None = None,
                                    expl: str | None = None, owners: Iterable[str] | None = None,
                                    worker: Any = None, **kwargs: Any) -> None:
        """A worker could not schedule a task (complete() or requires() raised)."""
        if worker is not None:
            self._worker(worker)
        _log.debug("scheduling failure of %s: %s", task_name, expl)
        if self._email_batcher is not None:
            self._email_batcher.add_scheduling_fail(
                task_name, family, self._unbatched(worker, family, params or {}), expl,
                owners)
        return None

    def dump(self) -> None:
        """Luigi's shutdown hook: send the e-mails collected so far."""
        if self._email_batcher is not None:
            self._email_batcher.send_email()


###########################################################################################
# Scheduler: the last layer
###########################################################################################

class Scheduler(_SchedulerEmails):
    """The in-memory scheduler: which task runs next, on which worker.

    A pure state machine with Luigi's RPC method names, arguments and reply shapes, so
    the HTTP server is a thin adapter over it. Nothing here sleeps, opens sockets or
    reads the wall clock except through ``clock``.

    Costs are amortized O(log n) per call: each task keeps a count of its unfinished
    dependencies, and each worker a heap of the tasks it may run now, so ``get_work``
    never sorts or scans every task (Luigi's does, which makes it quadratic).

    ``options`` override the ``[scheduler]`` config section; ``resources`` the
    ``[resources]`` section. Raises SchedulerError when asked about an unknown task.
    ``subscribe(listener)`` hears every change (the journal, e-mails, the change feed,
    task history and metrics plug in there). It is the last of a stack of layers, one
    section each above, each using only the ones below it: the core (with the
    resources it owns), batches, the calls workers make, the views, the change feed,
    administration, history, durable state, e-mails.
    """

    def __init__(self, clock: Callable[[], float] | None = None,
                 resources: Mapping[str, int] | None = None,
                 task_history_impl: TaskHistory | None = None, **options: Any) -> None:
        super().__init__(clock, resources, **options)
        self._collector = MetricsCollectors.get(self.options["metrics_collector"],
                                                self.options["metrics_custom_import"])
        if not isinstance(self._collector, NoMetricsCollector):
            self.subscribe(self._tell_collector, ("status", "disabled"))
        self._history_impl = task_history_impl
        if task_history_impl is not None:
            self.subscribe(self._tell_history, ("status",))
        self._simple_state: SimpleTaskState | None = None

    @property
    def _state(self) -> SimpleTaskState:
        """Luigi's view of the records (``scheduler._state``)."""
        if self._simple_state is None:
            self._simple_state = SimpleTaskState(self)
        return self._simple_state

    def _tell_collector(self, event: str, task: _TaskState, old: Any, new: Any) -> None:
        """Listener: the metrics collector hears of starts, ends and disables."""
        collector = self._collector
        if event == "disabled":
            collector.handle_task_disabled(task, types.SimpleNamespace(**self.options))
        elif new == RUNNING:
            collector.handle_task_started(task)
        elif new == DONE:
            collector.handle_task_done(task)
        elif new == FAILED:
            collector.handle_task_failed(task)

    def _tell_history(self, event: str, task: _TaskState, old: Any, new: Any) -> None:
        """Listener: a TaskHistory given as ``task_history_impl`` hears as Luigi's."""
        history = self._history_impl
        assert history is not None
        if new == PENDING:
            history.task_scheduled(task)
        elif new == RUNNING:
            worker = self._workers.get(task.worker_running or "")
            history.task_started(task, worker.info.get("host") if worker else None)
        elif new in (DONE, FAILED):
            history.task_finished(task, new == DONE)

    def update_metrics_task_started(self, task: _TaskState) -> None:
        """Tell the metrics collector that ``task`` started."""
        self._collector.handle_task_started(task)

    def report_task_statistics(self, task_id: str, statistics: Any) -> None:
        """A running task's statistics, for the metrics collector."""
        task = self._tasks.get(task_id)
        if task is not None:
            self._collector.handle_task_statistics(task, statistics)

    def resources(self) -> dict[str, dict[str, int]]:
        """``{resource: {"total": capacity, "used": held}}`` (Luigi's)."""
        pool = self._pool
        return {name: {"total": pool.capacity_of(name), "used": pool.used.get(name, 0)}
                for name in pool.names()}

    def load(self) -> None:
        """Restore the state kept at ``[scheduler] state_path`` (nothing there: none)."""
        path = self.options["state_path"]
        if path:
            state = _StateFile(path)
            self.restore(state.load())
            state.close()

    def dump(self) -> None:
        """Keep the state at ``[scheduler] state_path``, if set; send the e-mails
        collected so far."""
        path = self.options["state_path"]
        if path:
            state = _StateFile(path)
            state.load()   # continues its sequence numbers
            state.compact(self.snapshot())
            state.close()
        super().dump()

    def close(self) -> None:
        """Finish writing the task history, if any (the server calls this on stop)."""
        if self._history is not None:
            self._history.close()
            self._history = None


# The remote surface, named once: the HTTP server serves exactly these methods.
_RPC_METHODS = (
    "add_task", "add_worker", "ping", "count_pending", "get_work",
    "announce_scheduling_failure", "set_task_status_message", "get_task_status_message",
    "set_task_progress_percentage", "get_task_progress_percentage",
    "decrease_running_task_resources", "get_running_task_resources", "prune", "graph",
    "task_list", "dep_graph", "inverse_dep_graph", "task_search", "fetch_error",
    "worker_list", "resource_list", "re_enable_task", "forgive_failures", "mark_as_done",
    "disable_worker", "set_worker_processes", "send_scheduler_message",
    "add_scheduler_message_response", "get_scheduler_message_response", "pause",
    "unpause", "is_paused", "is_pause_enabled", "has_task_history", "update_resource",
    "update_resources", "add_task_batcher", "changes", "task_graph", "task_history",
    "report_task_statistics", "release_tasks",
)
# The remote methods that only read (a token may leave them open).
_READ_METHODS = frozenset((
    "count_pending", "get_task_status_message", "get_task_progress_percentage",
    "get_running_task_resources", "graph", "task_list", "dep_graph", "inverse_dep_graph",
    "task_search", "fetch_error", "worker_list", "resource_list",
    "get_scheduler_message_response", "is_paused", "is_pause_enabled", "has_task_history",
    "changes", "task_graph", "task_history",
))


###########################################################################################
# Worker: running one task (its outcome, dynamic dependencies)
###########################################################################################

class DynamicRequirements:
    """What ``run()`` may yield: ``requirements`` (tasks in any structure), optionally
    with ``custom_complete(complete_fn)`` deciding whether they are all complete."""

    def __init__(self, requirements: Any,
                 custom_complete: Callable[..., bool] | None = None) -> None:
        self.requirements = requirements
        self.custom_complete = custom_complete
        self._flat: list[Task] | None = None

    @property
    def flat_requirements(self) -> list[Task]:
        """The requirements as one list."""
        if self._flat is None:
            self._flat = flatten(self.requirements)
        return self._flat

    @property
    def paths(self) -> Any:
        """The outputs of the requirements, in their structure."""
        return getpaths(self.requirements)

    def complete(self, complete_fn: Callable[[Task], bool] | None = None) -> bool:
        """True when every requirement is complete."""
        complete_fn = complete_fn or (lambda task: task.complete())
        if self.custom_complete:
            return self.custom_complete(complete_fn)
        return all(complete_fn(task) for task in self.flat_requirements)


class _Outcome:
    """What running one task came to; small and picklable, so it can cross processes.

    ``new_deps`` holds the tasks a ``run()`` generator yielded that are not complete
    yet; ``missing`` the ids of dependencies found incomplete just before running.
    """

    __slots__ = ("task_id", "status", "explanation", "traceback_text", "new_deps",
                 "missing")

    def __init__(self, task_id: str, status: str, explanation: str | None = None,
                 traceback_text: str | None = None, new_deps: Sequence[Any] = (),
                 missing: Sequence[str] = ()) -> None:
        self.task_id = task_id
        self.status = status
        self.explanation = explanation
        self.traceback_text = traceback_text
        self.new_deps = new_deps     # sequences, read and never changed
        self.missing = missing

    def __reduce__(self) -> tuple[Any, ...]:   # pickled as a constructor call: cheapest
        return _Outcome, tuple(getattr(self, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return f"_Outcome({self.task_id!r}, {self.status!r})"


def _run_method(task: Task) -> Callable[[], Any] | None:
    """The task's bound run(), or None for a task with nothing to run (``run = None``:
    on the class for ExternalTask, on the instance after externalize())."""
    method = getattr(task, "run", None)
    return None if method is NotImplemented else method


def _is_external(task: Task) -> bool:
    """True for a task with nothing to run."""
    return _run_method(task) is None


# task id -> how its run() reports to the scheduler, while run() executes. Keyed by id
# rather than stored on the task, so the task object is left as it was.
_ACTIVE_REPORTERS: dict[Any, Any] = {}


def _execute_task(task: Task, check_unfulfilled_deps: bool = True,
                  check_complete_on_run: bool = False,
                  report: Callable[[str, str, Any], None] | None = None,
                  deps: Sequence[Task] | None = None) -> _Outcome:
    """Run one task: check its dependencies, run() it, check its output.

    ``deps``, when the caller already has them from walking the graph, saves calling
    requires() again. Never raises (except KeyboardInterrupt/SystemExit): a failure
    becomes a FAILED outcome with the traceback as text, so it can cross a process
    boundary.
    """
    missing = []
    try:
        run_method = _run_method(task)
        # An external task is checked by its own complete(), whatever its inputs.
        if check_unfulfilled_deps and run_method is not None:
            deps = task.deps() if deps is None else deps
            if deps:
                missing = [dep.task_id for dep in deps if not dep.complete()]
            if missing:
                raise RuntimeError(f"Unfulfilled dependencies at run time: "
                                   f"{', '.join(missing)}")
        events = bool(task._event_callbacks)   # skip three calls per task when none
        started = 0.0
        if events:
            task.trigger_event(Event.START, task)
            started = time.time()
        if run_method is None:   # external: it is done when its data is there
            if not task.complete():
                return _Outcome(task.task_id, FAILED, "Task is an external data dependency "
                                "and data does not exist (yet?).")
        else:
            if report is not None:
                _ACTIVE_REPORTERS[task.task_id] = report
            try:
                result = run_method()
                new_deps = _run_generator(result) if result is not None else None
            finally:
                if report is not None:
                    _ACTIVE_REPORTERS.pop(task.task_id, None)
            if new_deps:
                return _Outcome(task.task_id, PENDING, new_deps=new_deps)
            if check_complete_on_run and not task.complete():
                raise RuntimeError(f"{task!r} ran but complete() is still False; "
                                   f"did run() write every output?")
        if events:
            task.trigger_event(Event.PROCESSING_TIME, task, time.time() - started)
        explanation = task.on_success()
        if events:
            task.trigger_event(Event.SUCCESS, task)
        return _Outcome(task.task_id, DONE, explanation)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        return _failed_outcome(task, exc, missing)


def _failed_outcome(task: Task, exc: BaseException, missing: Sequence[str]) -> _Outcome:
    import traceback
    traceback_text = traceback.format_exc()
    task.trigger_event(Event.FAILURE, task, exc)
    try:
        explanation = task.on_failure(exc)
    except Exception:  # a broken on_failure must not hide the original error
        explanation = "Runtime error:\n" + traceback_text
    return _Outcome(task.task_id, FAILED, explanation, traceback_text, missing=missing)


def _run_generator(result: Any) -> list[Task]:
    """If run() returned a generator, feed it the outputs of what it yields.

    Returns the yielded tasks that are not complete yet (the task is then re-run from
    the start once they are done, as in Luigi), or [] when run() finished.
    """
    if not _is_generator(result):
        return []
    try:
        yielded = next(result)
        while True:
            requirements = (yielded if isinstance(yielded, DynamicRequirements)
                            else DynamicRequirements(yielded))
            if not requirements.complete():
                return [t for t in requirements.flat_requirements if not t.complete()] \
                    or requirements.flat_requirements
            yielded = result.send(requirements.paths)
    except StopIteration:
        return []


def _is_generator(value: Any) -> bool:
    return hasattr(value, "send") and hasattr(value, "__next__")


###########################################################################################
# Worker: runners, and both sides of the process pool
###########################################################################################

class _Runner:
    """What the worker asks of every runner: ``start(task)`` (its pid, when it has
    one), ``collect(timeout)`` the outcomes of tasks that ended (waiting up to
    ``timeout`` seconds for one; None: until one does), ``close()`` when the run ends.
    It runs ``processes`` tasks at once; a ``synchronous`` runner's start() finishes
    the task (its outcome is collected at once); ``check(tasks)``, before the first
    start, refuses the tasks it cannot run."""

    processes = 1
    synchronous = False

    def check(self, tasks: Iterable[Task]) -> None:
        """Refuse, before anything runs, what this runner cannot run (here: nothing)."""

    def start(self, task: Task) -> int | None:
        raise NotImplementedError

    def collect(self, timeout: float | None = None) -> list[_Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the runner holds (here: nothing)."""


class _InlineRunner(_Runner):
    """Runs each task synchronously in this process, in the order started."""

    synchronous = True

    def __init__(self, execute: Callable[[Task], _Outcome]) -> None:
        self._execute = execute
        self._done: list[_Outcome] = []

    def start(self, task: Task) -> None:
        """Run ``task`` now; its outcome waits for collect()."""
        self._done.append(self._execute(task))
        return None

    def collect(self, timeout: float | None = None) -> list[_Outcome]:
        """Every outcome since the last call."""
        done, self._done = self._done, []
        return done


def _task_ref(task: Task) -> tuple[Any, ...]:
    """How another process finds ``task``: its id (a forked child looks it up in the
    table it inherited), and its module, family and string parameters to rebuild it
    where the id is unknown (a task found after the fork, or a spawned child)."""
    info = task._info()
    return (task.task_id, info.module or task.task_module, info.family, task._serialized)


def _task_from_ref(ref: Any, known: Mapping[str, Task]) -> Task:
    """The task ``ref`` (a Task, a task id, or a _task_ref tuple) names: from
    ``known`` (id -> Task) if there, else rebuilt."""
    if isinstance(ref, Task):
        return ref
    if isinstance(ref, str):
        return known[ref]
    task = known.get(ref[0])
    return task if task is not None else load_task(ref[1], ref[2], ref[3])


def _portable(outcome: _Outcome) -> _Outcome:
    """``outcome`` with its dynamic dependencies as refs, so it pickles even when their
    classes were defined inside a function."""
    if outcome.new_deps:
        outcome.new_deps = [_task_ref(task) for task in outcome.new_deps]
    return outcome


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # Pass the signal on to the processes the task started (our process group), then
    # unwind the task like an exception would (temporary files are discarded), quietly:
    # SystemExit prints no traceback.
    import signal
    signal.signal(signum, signal.SIG_IGN)
    if hasattr(os, "killpg") and os.getpgid(0) == os.getpid():   # our own group only
        with contextlib.suppress(OSError):
            os.killpg(os.getpid(), signum)
    raise SystemExit(128 + signum)


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGTERM this process when its parent dies, even by SIGKILL, so a task
    never goes on running for a worker the scheduler has declared dead."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))   # PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:   # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def _child_main(conn: Any, known: Mapping[str, Task], options: tuple[bool, bool], one_task: bool,
                inherited: Sequence[Any] = (), parent_pid: int | None = None) -> None:
    """A pool process: run each task the parent sends until it sends None.

    The process leads a process group of its own, so a timeout or an interrupt stops
    the task and everything it started with one signal, and the terminal's Ctrl-C
    reaches the parent alone (which then stops the children in order).
    """
    import pickle
    import signal
    for other in inherited:   # the parent's ends of the pipes: held here, they would
        other.close()         # keep this and other children from seeing the parent go
    if hasattr(os, "setpgid"):
        os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A fork server's child dies with the server, which ends with the worker.
    _die_with_parent(os.getppid() if parent_pid is None else parent_pid)
    for store in _SHARED_STORES:
        store._start_recording()

    def send(message: Any) -> None:   # plain pickles: nothing needs multiprocessing's reducers
        conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def report(method: str, task_id: str, value: Any) -> None:   # the parent forwards it
        send(("report", method, task_id, value))
    while True:
        message = pickle.loads(conn.recv_bytes())
        if message is None:
            return
        if message[0] == "shared":   # what other processes wrote, before the task
            _apply_shared(message[1])
            continue
        ref = message[1]
        try:
            task = _task_from_ref(ref, known)
        except Exception as exc:
            outcome = _Outcome(ref if isinstance(ref, str) else ref[0], FAILED,
                               f"{ref!r} could not be rebuilt in the worker process: "
                               f"{exc!r}")
        else:
            outcome = _portable(_execute_task(task, *options, report))
        shared = _take_shared()
        if shared:
            send(("shared", shared))
        try:
            send(("outcome", outcome))
        except Exception as exc:   # the outcome itself cannot travel: say so instead
            send(("outcome", _Outcome(outcome.task_id, FAILED, f"the result of "
                  f"{outcome.task_id} could not be sent back from its process: {exc!r}")))
        if one_task:
            return


# The hook for in-memory stores that task processes share (MockFileSystem's files): a
# store offers _start_recording(), _take_changes() (None: nothing), _apply(changes) and
# _snapshot(). What a child changes goes to the parent in a message of its own after
# the task; the parent applies it and passes it on to each other child before its next
# task. The transport itself carries tasks, reports and outcomes only.
_SHARED_STORES = [MockFileSystem]


def _take_shared() -> list[Any] | None:
    """This process's changes to each shared store, or None when there are none."""
    changes = [store._take_changes() for store in _SHARED_STORES]
    return changes if any(changes) else None


def _apply_shared(changes: Sequence[Any]) -> None:
    for store, part in zip(_SHARED_STORES, changes):
        store._apply(part)


def _default_start_method(tasks: Iterable[Task] = ()) -> str:
    """How the pool starts its processes, unless ``[worker] start_method`` says: fork
    where the platform has it and this process runs no other thread (children inherit
    the task objects and classes, wherever they were defined). Beside another thread (a
    --status-port page, task history's writer, the caller's own) a fork can copy a lock
    that thread held and hang the child on it forever: then forkserver, where that is
    safe (see _forkserver_unsafe); otherwise fork, and a WARNING says why. spawn where
    there is no fork. Chosen here because Python 3.14 changed the default on Linux."""
    import multiprocessing
    methods = multiprocessing.get_all_start_methods()
    if "fork" not in methods:
        return "spawn"
    if threading.active_count() == 1 or "forkserver" not in methods:
        return "fork"
    others = ", ".join(thread.name for thread in threading.enumerate()
                       if thread is not threading.current_thread())
    unsafe = _forkserver_unsafe(tasks)
    if unsafe is None:
        _log.info("other threads run in this process (%s): worker processes start from "
                  "a fork server", others)
        return "forkserver"
    _log.warning("other threads run in this process (%s), and %s: worker processes are "
                 "forked beside them (set [worker] start_method = forkserver where task "
                 "classes live in modules and the script guards its build with if "
                 "__name__ == '__main__')", others, unsafe)
    return "fork"


def _forkserver_unsafe(tasks: Iterable[Task]) -> str | None:
    """Why a fork server cannot start this pool's processes, or None: its children
    import the main module again (see _main_runs_again), and rebuild each task from
    its class's module."""
    why = _main_runs_again()
    if why is not None:
        return why
    unbuildable = _unbuildable(tasks)
    if unbuildable is not None:
        return f"task class {unbuildable[0].__qualname__} cannot be rebuilt in a child " \
               f"process"
    main_module = sys.modules.get("__main__")
    if getattr(main_module, "__file__", None) is None and any(
            type(task).__module__ == "__main__" for task in tasks):
        return "a task class is defined in the main module, which has no file"
    return None


def _main_runs_again() -> str | None:
    """Why a fork server's child would run this build again, or None. multiprocessing
    runs the main module again in each child (as ``__mp_main__``, so that what it
    defines is found), except a package's ``__main__`` (``python -m unittest``) and a
    main without a file (``-c``); that is safe when the main thread is inside the
    script's ``if __name__ == "__main__":`` block, which the child skips."""
    main_module = sys.modules.get("__main__")
    name = getattr(getattr(main_module, "__spec__", None), "name", None) or ""
    path = getattr(main_module, "__file__", None)
    if name.endswith("__main__") or path is None:
        return None
    import ast
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    while frame is not None and not (frame.f_code.co_name == "<module>" and
                                     frame.f_globals is vars(main_module)):
        frame = frame.f_back
    try:
        with open(path, encoding="utf-8") as source:
            guards = [node for node in ast.parse(source.read()).body
                      if isinstance(node, ast.If) and ast.unparse(node.test) in (
                          "__name__ == '__main__'", "'__main__' == __name__")]
    except (OSError, SyntaxError, ValueError):
        guards = []
    if frame is not None and any(node.lineno <= frame.f_lineno <= (node.end_lineno or 0)
                                 for node in guards):
        return None
    return f"the main module ({path}) does not build under if __name__ == '__main__' " \
           f"(its children would run it again)"


def _unbuildable(tasks: Iterable[Task]) -> tuple[type, Exception] | None:
    """A task class a child process cannot rebuild from its module (only a fork can
    carry it), with why; None when every one can."""
    import pickle
    for cls in {type(task) for task in tasks}:
        try:
            pickle.dumps(cls)
        except Exception as exc:
            return cls, exc
    return None


def _check_rebuildable(tasks: Iterable[Task], method: str) -> None:
    """Under spawn or forkserver a child rebuilds each task from its class's module:
    refuse, before anything runs, a class that cannot be found that way."""
    unbuildable = _unbuildable(tasks)
    if unbuildable is not None:
        cls, exc = unbuildable
        raise ConfigError(
            f"[worker] start_method = {method}: task class {cls.__qualname__} (module "
            f"{cls.__module__}) cannot be rebuilt in a child process ({exc}); define "
            f"it at module level, or use start_method = fork")


def _death_message(task: Task, exitcode: int) -> str:
    """Why a pool process died, in words: the exit code, or the signal that killed it."""
    if exitcode is not None and exitcode < 0:
        import signal
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {"SIGKILL": " (out of memory?)", "SIGSEGV": " (a crash in native code)"}
        how = f"was killed by {name}{hint.get(name, '')}"
        how = f"died unexpectedly with exit code {exitcode}: it {how}"
    else:
        how = f"died unexpectedly with exit code {exitcode}"
    return f"Task process for {task!r} {how}"


def _timeout_message(task: Task, seconds: float | None) -> str:
    """Why a task past its time limit was stopped, in words."""
    limit = f"{seconds:g}" if isinstance(seconds, (int, float)) else "its"
    return f"{task!r} timed out after {limit} seconds and was terminated."


class _Readiness:
    """Waits until any of a set of pipes and process sentinels is ready: one poll()
    object kept across calls where the platform has it (a selector per wait costs
    more than a no-op task), multiprocessing.connection.wait elsewhere."""

    def __init__(self) -> None:
        import select
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._owners: dict[int, tuple[Any, Any]] = {}   # fd -> (the object, its owner)

    def add(self, fileobj: Any, owner: Any) -> None:
        """Watch ``fileobj`` (a Connection or a sentinel fd) for ``owner``."""
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        self._owners[fd] = (fileobj, owner)
        if self._poll is not None:
            import select
            self._poll.register(fd, select.POLLIN)   # not POLLOUT: a socket is writable

    def remove(self, fileobj: Any) -> None:
        """Stop watching ``fileobj``."""
        for fd, (watched, _) in list(self._owners.items()):
            if watched is fileobj:
                del self._owners[fd]
                if self._poll is not None:
                    self._poll.unregister(fd)

    def wait(self, timeout: float | None) -> list[tuple[Any, Any]]:
        """``[(object, owner), ...]`` ready within ``timeout`` seconds (None: no limit)."""
        if self._poll is None:
            import multiprocessing.connection
            ready = multiprocessing.connection.wait(
                [watched for watched, _ in self._owners.values()], timeout)
            return [(watched, owner) for watched, owner in self._owners.values()
                    if watched in ready]
        events = self._poll.poll(None if timeout is None else timeout * 1000.0)
        owners = self._owners
        return [owners[fd] for fd, _ in events if fd in owners]


class _Slot:
    """One pool process, its end of the pipe, and the task it is running (if any)."""

    __slots__ = ("process", "conn", "task", "deadline", "timeout", "shared_seen")

    def __init__(self, process: Any, conn: Any, shared_seen: int) -> None:
        self.process, self.conn, self.shared_seen = process, conn, shared_seen
        self.task: Task | None = None
        self.deadline: float | None = None
        self.timeout: float | None = None


# Seconds a stopped task's process group gets between SIGTERM and SIGKILL.
_TERMINATE_GRACE = 2.0


class _ProcessRunner(_Runner):
    """Runs tasks in a pool of child processes, started when first needed and reused.

    Each child has one pipe to the parent: one pickle per message, a task sent as its
    id (see _task_ref). The parent sleeps on the pipes and the process sentinels
    together, woken by a result, a death, or the nearest task deadline. A task over
    its timeout (``worker_timeout`` or ``[worker] timeout``) has its process group
    terminated, and the slot is refilled on demand; so is one whose process died.
    ``per_task`` gives each task a fresh process, as Luigi does.
    """

    def __init__(self, processes: int, forward: Callable[[str, tuple[Any, ...]], None],
                 known: Mapping[str, Task], options: tuple[bool, bool], timeout: float = 0.0,
                 start_method: str | None = None, per_task: bool = False,
                 late: Container[str] = ()) -> None:
        import multiprocessing
        import pickle
        self._method = start_method or _default_start_method(known.values())
        self._context: Any = multiprocessing.get_context(self._method)
        self._clock = time.monotonic
        self.processes = processes
        self._forward = forward
        self._known = known if self._method == "fork" else {}
        self._late = late    # ids of tasks found after the walk: sent whole, not by id
        self._options = options
        self._timeout = timeout
        self._per_task = per_task
        self._ready = _Readiness()
        self._dumps, self._loads = pickle.dumps, pickle.loads
        self._slots: list[_Slot] = []   # live ones
        self._idle: list[_Slot] = []    # live ones without a task
        # Changes to the shared stores made in children, in order: each slot is sent
        # what it has not seen before its next task. A spawned child starts with none.
        self._shared_log = [] if self._method == "fork" else \
            [[store._snapshot() for store in _SHARED_STORES]]

    def check(self, tasks: Iterable[Task]) -> None:
        """Refuse, before anything runs, tasks the chosen start method cannot carry."""
        if self._method != "fork":
            _check_rebuildable(tasks, self._method)

    def _spawn(self) -> _Slot:
        parent_end, child_end = self._context.Pipe()
        inherited = [parent_end] + [slot.conn for slot in self._slots] \
            if self._method == "fork" else []
        process = self._context.Process(
            target=_child_main, args=(child_end, self._known, self._options, self._per_task,
                                      inherited,
                                      None if self._method == "forkserver" else os.getpid()),
            name=f"microflow-worker-{len(self._slots)}", daemon=True)
        process.start()
        child_end.close()
        if hasattr(os, "setpgid"):   # also here: the group must exist before any kill
            with contextlib.suppress(OSError):
                os.setpgid(process.pid, process.pid)
        seen = len(self._shared_log) if self._method == "fork" else 0
        slot = _Slot(process, parent_end, seen)
        self._ready.add(parent_end, slot)
        self._ready.add(process.sentinel, slot)
        self._slots.append(slot)
        return slot

    def start(self, task: Task) -> int | None:
        """Send ``task`` to an idle process; returns the pid that runs it."""
        slot = self._idle.pop() if self._idle else self._spawn()
        slot.task = task
        slot.timeout = task.worker_timeout or self._timeout or None
        slot.deadline = self._clock() + slot.timeout if slot.timeout else None
        ref: Any = task.task_id
        if not self._known or ref in self._late:
            ref = _task_ref(task)
        try:
            self._send_shared(slot)
            slot.conn.send_bytes(self._dumps(("run", ref), -1))
        except OSError:   # the process died while idle: the task goes to a new one
            self._drop(slot)
            return self.start(task)
        pid: int | None = slot.process.pid
        return pid

    def _send_shared(self, slot: _Slot) -> None:
        """What other processes wrote to the shared stores since ``slot`` last heard."""
        log = self._shared_log
        if len(log) > slot.shared_seen:
            merged: list[dict[str, Any]] = [{} for _ in _SHARED_STORES]   # latest wins
            for changes in log[slot.shared_seen:]:
                for part, more in zip(merged, changes):
                    part.update(more or {})
            slot.conn.send_bytes(self._dumps(("shared", merged), -1))
            slot.shared_seen = len(log)

    def collect(self, timeout: float | None = None) -> list[_Outcome]:
        """Wait up to ``timeout`` seconds (None: until something happens) for outcomes."""
        until = None if timeout is None else self._clock() + timeout
        outcomes: list[_Outcome] = []
        while True:
            now = self._clock()
            deadlines = [slot.deadline for slot in self._slots if slot.deadline]
            if until is not None:
                deadlines.append(until)
            wait = max(0.0, min(deadlines) - now) if deadlines else None
            for fileobj, slot in self._ready.wait(wait):
                if slot not in self._slots:
                    continue   # dropped by an earlier event of this round
                if fileobj is slot.conn:
                    outcomes.extend(self._receive(slot) or ())
                else:
                    outcomes.extend(self._reap(slot))
            outcomes.extend(self._expire(self._clock()))
            if outcomes or (until is not None and self._clock() >= until):
                return outcomes

    def _receive(self, slot: _Slot) -> list[_Outcome] | None:
        """The next message on ``slot``'s pipe, as a list of 0 or 1 outcomes, or None
        when the pipe is closed. One per call: the poll says again when there is more
        (Connection.poll() would build a selector of its own on every call)."""
        try:
            message = self._loads(slot.conn.recv_bytes())
        except (EOFError, OSError):
            return None   # the process is gone; its sentinel reports it
        if message[0] == "report":
            self._forward(message[1], (message[2], message[3]))
            return []
        if message[0] == "shared":
            _apply_shared(message[1])
            self._shared_log.append(message[1])
            return []
        outcome = message[1]
        if slot.task is None or outcome.task_id != slot.task.task_id:
            return []
        self._free(slot)
        return [outcome]

    def _free(self, slot: _Slot) -> None:
        slot.task = slot.deadline = None
        if not self._per_task:
            self._idle.append(slot)

    def _reap(self, slot: _Slot) -> list[_Outcome]:
        """``slot``'s process exited: fail its task, if it still had one."""
        outcomes: list[_Outcome] = []
        while slot.task is not None and slot.conn.poll():   # what it said before it went
            received = self._receive(slot)
            if received is None:
                break
            outcomes.extend(received)
        task = slot.task
        self._drop(slot)
        if task is None:
            return outcomes
        message = _death_message(task, slot.process.exitcode)
        task.trigger_event(Event.PROCESS_FAILURE, task, message)
        return outcomes + [_Outcome(task.task_id, FAILED, message)]

    def _expire(self, now: float) -> list[_Outcome]:
        """Stop the tasks past their deadline, with everything they started."""
        outcomes: list[_Outcome] = []
        for slot in [s for s in self._slots if s.deadline and s.deadline <= now]:
            task, timeout = slot.task, slot.timeout
            assert task is not None and timeout is not None   # a deadline means both
            message = _timeout_message(task, timeout)
            self._stop(slot)
            self._drop(slot)
            task.trigger_event(Event.TIMEOUT, task, message)
            outcomes.append(_Outcome(task.task_id, FAILED, message))
        return outcomes

    def _drop(self, slot: _Slot) -> None:
        """Forget ``slot`` (its process has ended or been stopped)."""
        if slot.task is not None:
            slot.task = slot.deadline = None
        self._slots.remove(slot)
        if slot in self._idle:
            self._idle.remove(slot)
        self._ready.remove(slot.conn)
        self._ready.remove(slot.process.sentinel)
        slot.conn.close()
        slot.process.join(_TERMINATE_GRACE)

    @staticmethod
    def _stop(slot: _Slot) -> None:
        """SIGTERM to the slot's process group, SIGKILL to whatever is left after the
        grace period: the task's own children die with it."""
        import signal
        process = slot.process
        if not hasattr(os, "killpg"):
            process.terminate()
            process.join(_TERMINATE_GRACE)
            process.kill()
            return
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signum)
            if signum == signal.SIGTERM:
                process.join(_TERMINATE_GRACE)
        process.join()

    def close(self) -> None:
        """Stop every process: idle ones politely, busy ones (and their groups) by
        signal; nothing started by a task outlives the build."""
        for slot in list(self._slots):
            if slot.task is None:
                with contextlib.suppress(OSError):
                    slot.conn.send_bytes(self._dumps(None))
        for slot in list(self._slots):
            if slot.task is None:
                slot.process.join(_TERMINATE_GRACE)
            self._stop(slot)   # idle or not: a task may have left processes behind
            self._drop(slot)


class _ExecutorRunner(_Runner):
    """Runs tasks on a ``concurrent.futures.Executor``: a thread pool (``[worker] mode =
    threads``: nothing is pickled) or any executor the caller passes to build()
    (a ProcessPoolExecutor, or the executors Dask and Ray offer). Threads report to the
    scheduler as they go; elsewhere, reports travel back with the outcome. Timeouts
    cannot be enforced: a thread, or someone else's process, cannot be killed."""

    def __init__(self, executor: Any, processes: int,
                 forward: Callable[[str, tuple[Any, ...]], None], options: tuple[bool, bool],
                 threads: bool = False, own: bool = False) -> None:
        import collections
        self._executor, self._own = executor, own
        self.processes = processes
        self._forward = forward
        self._options = options
        self._threads = threads
        self._reports: collections.deque[Any] = collections.deque()   # from task threads
        self._futures: dict[Any, Task] = {}   # future -> task

    def start(self, task: Task) -> None:
        """Submit ``task``; returns None (the pid is the executor's business)."""
        if self._threads:
            future = self._executor.submit(_execute_task, task, *self._options,
                                           self._report_from_thread)
        else:
            future = self._executor.submit(_execute_collecting, task, self._options)
        self._futures[future] = task

    def _report_from_thread(self, method: str, task_id: str, value: Any) -> None:
        self._reports.append((method, (task_id, value)))

    def collect(self, timeout: float | None = None) -> list[_Outcome]:
        """Outcomes of the tasks that finished, waiting up to ``timeout`` for one."""
        import concurrent.futures
        done, _ = concurrent.futures.wait(list(self._futures), timeout,
                                          concurrent.futures.FIRST_COMPLETED)
        while self._reports:
            self._forward(*self._reports.popleft())
        outcomes: list[_Outcome] = []
        for future in done:
            task = self._futures.pop(future)
            try:
                outcome = future.result()
                if not self._threads:
                    outcome, reports = outcome
                    for method, value in reports:
                        self._forward(method, value)
            except Exception as exc:
                outcome = _Outcome(task.task_id, FAILED, f"{task!r} could not be run on "
                                   f"{type(self._executor).__name__}: {exc!r}")
            outcomes.append(outcome)
        return outcomes

    def close(self) -> None:
        """Wait for what runs (threads cannot be stopped); shut down our own pool."""
        if self._own:
            self._executor.shutdown(wait=True)


class _TaskProcessRunner(_Runner):
    """Runs each task through the worker's own ``_create_task_process(task)``, Luigi's
    hook through which libraries hand tasks to a batch system (LSF, HTCondor, Slurm),
    with Luigi's contract: the object is started (``start()``, or ``run()`` when its
    ``use_multiprocessing`` is false), polled (``is_alive()``, ``exitcode``), terminated
    past its ``timeout_time``, and its result read from the worker's
    ``_task_result_queue`` as ``(task_id, status, explanation, missing,
    new_requirements)``, each new requirement ``(module, family, str_params)``."""

    _POLL = 0.1   # seconds between looks at the processes while waiting for a result

    def __init__(self, create: Callable[[Task], Any], results: Any, processes: int) -> None:
        self._create, self._results = create, results
        self.processes = max(processes, 1)
        self._running: dict[str, tuple[Task, Any]] = {}   # task id -> (task, process)

    def start(self, task: Task) -> int | None:
        """Create the task's process object and start it; returns its pid, if any."""
        process = self._create(task)
        self._running[task.task_id] = (task, process)
        if getattr(process, "use_multiprocessing", True):
            process.start()
        else:
            process.run()
        return getattr(process, "pid", None)

    def collect(self, timeout: float | None = None) -> list[_Outcome]:
        """The outcomes of processes that ended or reported, looking at them every
        _POLL seconds until one does or ``timeout`` passes (None: until one does)."""
        import queue
        deadline = None if timeout is None else time.monotonic() + timeout
        outcomes: list[_Outcome] = []
        while True:
            outcomes += self._purge()
            with contextlib.suppress(queue.Empty):
                while True:
                    outcomes += self._read(self._results.get_nowait())
            left = self._POLL if deadline is None else deadline - time.monotonic()
            if outcomes or not self._running or left <= 0:
                return outcomes
            with contextlib.suppress(queue.Empty):
                outcomes += self._read(self._results.get(timeout=min(left, self._POLL)))

    def _read(self, result: Any) -> list[_Outcome]:
        task_id, status, explanation, missing, new_requirements = result
        if self._running.pop(task_id, None) is None:
            return []   # already failed here (died or timed out)
        new_deps = [(None,) + tuple(ref) for ref in new_requirements or ()]
        return [_Outcome(task_id, status, explanation, new_deps=new_deps,
                         missing=tuple(missing or ()))]

    def _purge(self) -> list[_Outcome]:
        """Fail the processes that died without a result or outlived their time."""
        ended = []
        for task_id, (task, process) in list(self._running.items()):
            timeout_time = getattr(process, "timeout_time", None)
            if not process.is_alive() and process.exitcode:
                message = _death_message(task, process.exitcode)
                task.trigger_event(Event.PROCESS_FAILURE, task, message)
            elif timeout_time is not None and time.time() > float(timeout_time) \
                    and process.is_alive():
                process.terminate()
                message = _timeout_message(task, getattr(process, "worker_timeout", None))
                task.trigger_event(Event.TIMEOUT, task, message)
            else:
                continue
            _log.info("%s", message)
            del self._running[task_id]
            ended.append(_Outcome(task_id, FAILED, message))
        return ended

    def close(self) -> None:
        """Terminate what still runs."""
        for _, process in self._running.values():
            with contextlib.suppress(Exception):
                if process.is_alive():
                    process.terminate()
        self._running.clear()


def _execute_collecting(task: Task, options: tuple[bool, bool]) -> tuple[_Outcome, list[Any]]:
    """_execute_task for another process: reports are kept and returned with the
    outcome, as ``(outcome, [(method, (task_id, value)), ...])``."""
    reports = []
    outcome = _execute_task(task, *options,
                            lambda method, task_id, value: reports.append(
                                (method, (task_id, value))))
    return _portable(outcome), reports


###########################################################################################
# Worker: the run's record, the session, retries and the graph walk
###########################################################################################

# What a worker remembers of each task it reported, as bits of one int per task.
_REPORTED_DONE, _REPORTED_PENDING, _REPORTED_FAILED, _REPORTED_UNKNOWN = 1, 2, 4, 8
_REPORTED_RUNNABLE = 16   # reported PENDING and runnable (not external)
# Reported PENDING and not runnable: external, or (as in Luigi's accounting) a task that
# yielded dependencies; a task may be both, and is then listed under both.
_REPORTED_NOT_RUNNABLE = 32
_REPORTED_BITS = {DONE: _REPORTED_DONE, PENDING: _REPORTED_PENDING,
                  FAILED: _REPORTED_FAILED, UNKNOWN: _REPORTED_UNKNOWN}


class _Locked:
    """An in-process scheduler that a status page's server shares with this process's
    worker: each call takes the server's lock, so the page never reads the scheduler
    half-way through a change."""

    def __init__(self, scheduler: Scheduler, lock: Any) -> None:
        self._scheduler, self._lock = scheduler, lock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._scheduler, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)
        return locked


class _RunRecord:
    """What one worker's run came to, as the summary reads it: the worker writes it,
    RunResult only reads it (so the summary does not reach into the worker)."""

    __slots__ = ("worker_id", "scheduled", "reported", "idle_replies", "errors", "walked",
                 "interrupted")

    def __init__(self, worker_id: str | None) -> None:
        self.worker_id = worker_id
        self.scheduled: dict[str, Task] = {}   # task id -> every task the worker saw
        self.reported: dict[str, int] = {}     # task id -> _REPORTED_* bits
        self.idle_replies: list[dict[str, Any]] = []   # get_work replies without a task
        self.errors: dict[str, str] = {}       # task id -> why it failed
        self.walked: dict[str, Sequence[Task]] = {}   # task id -> its deps as walked
        self.interrupted = False   # by Ctrl-C or SIGTERM: what never started says so

    def note(self, task: Task, status: str, runnable: bool | None) -> None:
        """Remember what ``task`` was reported as; the summary is built from this."""
        bits = _REPORTED_BITS.get(status, 0)
        if status == PENDING:
            bits |= _REPORTED_RUNNABLE if runnable else _REPORTED_NOT_RUNNABLE
        reported = self.reported
        reported[task.task_id] = reported.get(task.task_id, 0) | bits

    def tally(self) -> tuple[int, int, int]:
        """``(done, failed, runnable)``: how many tasks were reported as each so far."""
        done = failed = runnable = 0
        for bits in self.reported.values():
            if bits & _REPORTED_DONE:
                done += 1
            elif bits & _REPORTED_FAILED:
                failed += 1
            if bits & _REPORTED_RUNNABLE:
                runnable += 1
        return done, failed, runnable

    def settle_done_elsewhere(self) -> None:
        """With a shared scheduler, another worker may have run tasks this one wanted
        between two of its calls. Those found complete now count as complete ones,
        not as "not granted run permission" (Luigi's summary, and a false failure)."""
        waiting = _REPORTED_PENDING | _REPORTED_RUNNABLE   # pending, never run here
        for task_id, bits in self.reported.items():
            if bits == waiting:
                try:
                    if self.scheduled[task_id].complete():
                        self.reported[task_id] = _REPORTED_DONE
                except Exception:   # it stays pending: the summary says so
                    continue


def _worker_info(processes: int, assistant: bool) -> list[tuple[str, Any]]:
    """What a worker tells its scheduler about itself (Luigi's keys): its id is made of
    these, and the page shows them."""
    import getpass
    import socket
    try:
        user = getpass.getuser()
    except Exception:   # no user database entry (containers): not worth failing
        user = "unknown"
    info = [("salt", f"{_random_digits(9)}"), ("workers", processes),
            ("host", socket.gethostname()), ("username", user), ("pid", os.getpid())]
    return info + [("assistant", True)] if assistant else info


# Tasks handed out ahead (microflow's client and server): asked for while each task
# has taken under _QUICK_TASK seconds, four times more each request up to _MOST_AHEAD;
# reports held back, and tasks kept waiting behind a slow one, no longer than
# _HOLD_REPORTS seconds.
_QUICK_TASK, _MOST_AHEAD, _HOLD_REPORTS = 0.005, 127, 0.05


def _ahead_next(asked: int, seconds_per_task: float) -> int:
    """How many tasks to ask for ahead next time: more while tasks are quick (a round
    trip would cost more than the task), none as soon as one is not (a long task would
    keep the others from workers that are free)."""
    if seconds_per_task >= _QUICK_TASK:
        return 0
    return min(_MOST_AHEAD, asked * 4 + 1)


class _Session:
    """One worker's conversation with its scheduler: everything the worker says to it
    and asks of it goes through here, with the same methods whatever the scheduler is
    (the in-memory Scheduler, microflow's RemoteScheduler, or a library's own object
    with Luigi's methods). What differs between them is settled here, once: a remote
    scheduler is shared (another worker may run what this one wants), keeps its own
    retry delay, and microflow's client is pinged from a thread, holds reports back
    until flushed, and is handed quick tasks ahead, several a request."""

    def __init__(self, scheduler: _SchedulerAPI, worker_id: str,
                 info: list[tuple[str, Any]]) -> None:
        # Any here: the adapter asks what this scheduler has (pings, options) itself
        self.scheduler: Any = scheduler
        self.worker_id = worker_id
        self._info = info
        self.host = self._host = dict(info)["host"]
        self._assistant = dict(info).get("assistant", False)
        self.remote = not isinstance(scheduler, (Scheduler, _Locked))
        self._pinged = callable(getattr(scheduler, "start_pinging", None))
        self._heartbeat = None
        self.ping_every: float | None = None   # when the run loop pings, how often
        self._next_ping = 0.0
        self._ahead: collections.deque[dict[str, Any]] = collections.deque()
        self._ask_ahead = 0               # how many to ask for with the next get_work
        self._flushed_at = self._handed_at = 0.0
        self._handed = 0                  # tasks handed out by the last get_work
        self._ran = 0.0                   # seconds they have taken so far
        self._clock = time.monotonic

    def open(self, first_task: str | None, ping_interval: float, from_the_loop: bool) -> None:
        """Say this worker is here (and the first task it added); from now on a remote
        client pings, so the scheduler does not think it dead while tasks run: from a
        thread while a task runs in this one, else ``from_the_loop`` (ping_if_due()): a
        thread beside worker processes would make every fork of them unsafe."""
        # By name: positional arguments make the client import inspect (milliseconds).
        self.scheduler.add_worker(worker=self.worker_id,
                                  info=self._info + [("first_task", first_task)])
        if self._pinged and from_the_loop:
            self.ping_every, self._next_ping = ping_interval, time.monotonic() + ping_interval
        elif self._pinged:
            self._heartbeat = self.scheduler.start_pinging(self.worker_id, ping_interval)

    def ping_if_due(self) -> None:
        """Ping, when the run loop pings and the interval has passed."""
        if self.ping_every is not None and time.monotonic() >= self._next_ping:
            self._next_ping = time.monotonic() + self.ping_every
            try:
                self.scheduler.ping(worker=self.worker_id)
            except MicroflowError as exc:
                _log.warning("ping failed: %s", exc)

    def stop_pinging(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.set()

    def flush(self) -> None:
        """Send what microflow's client still holds back (the last reports of a run),
        and give back the tasks handed out ahead that this run will not start."""
        if self._pinged:
            try:
                self._give_back()
                self.scheduler.flush()
            except MicroflowError as exc:
                _log.error("the last reports did not reach the scheduler: %s", exc)

    @property
    def add_task(self) -> Callable[..., None]:
        """The scheduler's add_task, looked up at each use (a test or a library may
        replace it meanwhile) and called directly: a wrapper taking ``**report`` would
        pack every call's keywords into a dict, a cost the size of the scheduler's own
        work on a no-op task."""
        add_task: Callable[..., None] = self.scheduler.add_task
        return add_task

    def get_work(self, running: Iterable[str], processes: int) -> Any:
        """The scheduler's next task for this worker; with no processes (schedule only,
        others run), only how much is pending."""
        if not processes:
            return self.scheduler.count_pending(worker=self.worker_id)
        if not self._pinged:   # in memory (or a library's scheduler): one at a time
            return self.scheduler.get_work(worker=self.worker_id, host=self._host,
                                           assistant=self._assistant,
                                           current_tasks=list(running))
        return self._get_work_ahead(running)

    def _get_work_ahead(self, running: Iterable[str]) -> Any:
        """microflow's server: the next task already handed out ahead, else a get_work
        that asks for more ahead while tasks are quick (see _ahead_next). Quick is
        judged by the time between hand-outs, the tasks' own: not the round trips, which
        on a busy machine can take longer than the tasks and would stop the asking."""
        now = self._clock()
        took, self._handed_at = now - self._handed_at, now   # the last task handed
        if self._ahead and took >= _HOLD_REPORTS:
            self._give_back()   # the last task was slow: free the others for anyone
            self._ask_ahead = self._handed = 0
        self._ran += took
        if self._ahead:
            if now - self._flushed_at >= _HOLD_REPORTS:   # others may wait on them
                self._flushed_at = now
                self.scheduler.flush()
            return self._ahead.popleft()
        if self._handed:
            self._ask_ahead = _ahead_next(self._ask_ahead, self._ran / self._handed)
        self._ran, self._flushed_at = 0.0, now
        reply = self.scheduler.get_work(worker=self.worker_id, host=self._host,
                                        assistant=self._assistant,
                                        current_tasks=list(running),
                                        prefetch=self._ask_ahead)
        self._ahead.extend(reply.pop("prefetched", None) or ())
        self._handed = len(self._ahead) + (reply.get("task_id") is not None)
        self._handed_at = self._clock()
        return reply

    def _give_back(self) -> None:
        """Return the tasks handed out ahead that this worker has not started."""
        if self._ahead:
            ahead = [reply["task_id"] for reply in self._ahead]
            self._ahead.clear()
            self.scheduler.release_tasks(worker=self.worker_id, task_ids=ahead)

    def add_task_batcher(self, family: str, batched_args: list[str],
                         max_batch_size: float) -> None:
        self.scheduler.add_task_batcher(worker=self.worker_id, task_family=family,
                                        batched_args=batched_args,
                                        max_batch_size=max_batch_size)

    def announce_scheduling_failure(self, task: Task, text: str) -> None:
        self.scheduler.announce_scheduling_failure(
            task_name=str(task), family=task.get_task_family(),
            params=task.to_str_params(), expl=text, owners=task._owner_list(),
            worker=self.worker_id)

    def relay(self, method: str, args: tuple[Any, ...]) -> None:
        """Pass on what a running task reports (status message, progress, tracking URL,
        resources), from this process or a child."""
        if method == "tracking_url":
            task_id, url = args
            self.scheduler.add_task(task_id=task_id, worker=self.worker_id, status=RUNNING,
                                    tracking_url=url)
        else:
            getattr(self.scheduler, method)(*args)

    def retry_timing(self, wait_interval: float) -> tuple[float, float]:
        """``(seconds before a failed task may run again, seconds between polls for
        it)``: an in-memory scheduler's delay is known; a remote one keeps its own, so
        it is asked every ``wait_interval``."""
        if self.remote:
            return 0.0, wait_interval
        delay = self.scheduler.options["retry_delay"]
        return delay, min(delay, wait_interval)


class _Retries:
    """Retries of failed tasks within one run: how often each failed, and when each
    may run again. ``limit`` is ``[scheduler] retry_count`` when set (a task's own
    policy wins); ``delay`` and ``poll`` come from the session."""

    def __init__(self, limit: int | None, delay: float, poll: float, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self._limit, self._delay, self._poll = limit, delay, poll
        self._clock, self._sleep = clock, sleep
        self._attempts: dict[str, int] = {}   # task id -> failed runs
        self.due: dict[str, float] = {}       # task id -> when it may be retried

    def failed(self, task: Task) -> None:
        """Count a failure of ``task``; plan its retry while it has retries left."""
        limit = (_retry_policy_of(task) or {}).get("retry_count") or self._limit
        attempts = self._attempts[task.task_id] = self._attempts.get(task.task_id, 0) + 1
        if limit and attempts < limit:
            _log.info("%s failed %d of %d allowed times; retrying in %g s", task,
                      attempts, limit, self._delay)
            self.due[task.task_id] = self._clock() + self._delay
        else:
            self.due.pop(task.task_id, None)

    def wait(self, known: Mapping[str, Task], wait_interval: float) -> bool:
        """Sleep until a failed task may be retried; False when none can be any more
        (a scheduler that never hands it back is given up on after a minute)."""
        now = self._clock()
        for task_id, due in list(self.due.items()):
            if now > due + 60.0 + wait_interval:
                _log.warning("%s was not handed back for a retry; giving up on it",
                             known[task_id])
                del self.due[task_id]
        if not self.due:
            return False
        self._sleep(self._poll)
        return True


def _email_task_error(task: Task, text: str, host: str, subject: str, headline: str) -> None:
    """Luigi's error e-mail about ``task``, to ``[email] receiver`` and its owners."""
    import subprocess
    subject, headline = (part.format(task=task, host=host) for part in (subject, headline))
    send_error_email(subject, format_task_error(
        headline, task, subprocess.list2cmdline(sys.argv), text), task.owner_email)


class _GraphWalk:
    """Worker: the graph walk, a part the worker owns. ``add(task)`` reports every task
    of the graph to the scheduler through the worker's session (``complete()`` called
    once per task and build, in ``check_workers`` threads when given), with its
    dependencies, resources and retry policy, into the run's record; a task that
    cannot be checked or walked is a scheduling failure, said why."""

    def __init__(self, session: _Session, record: _RunRecord, options: dict[str, Any],
                 check_workers: int) -> None:
        self.session = session      # the worker's: it replaces it when its scheduler changes
        self.record = record
        self.options = options
        self.succeeded = True       # every task added so far could be scheduled
        self.first_task: str | None = None   # the id of the first task added
        self.timeouts_seen = False  # a task with worker_timeout was reported runnable
        self._scheduled = record.scheduled
        self._walked_deps = record.walked
        self._check_workers = check_workers
        self._checks: dict[str, Any] | None = None   # task id -> Future of complete()
        self._seen: dict[str, Task] | None = None    # tasks met by the add_all() under way
        self._batch_families: set[str] = set()      # families whose batcher was sent

    def add(self, task: Task) -> bool:
        """Report ``task`` and everything it needs that is not complete.

        Complete tasks are not expanded. Each call checks afresh, as Luigi's does: a
        task added again (after it failed, say) is checked and reported again.
        Returns False when a task could not be scheduled (complete() or requires()
        raised, or a dependency cycle).
        """
        if self.first_task is None:   # shown in the scheduler's worker list
            self.first_task = getattr(task, "task_id", None)
        seen = self._seen if self._seen is not None else {}
        return self.walk(task, seen)

    def add_all(self, tasks: Iterable[Task],
                add: Callable[[Task], bool] | None = None) -> bool:
        """``add`` (this add(), or the worker's, which a library may replace) for
        several tasks in one walk: what they share is checked once."""
        add = add or self.add
        self._seen = {}
        try:
            return all([add(task) for task in tasks])
        finally:
            self._seen = None

    def walk(self, task: Task, seen: dict[str, Task]) -> bool:
        """Check and report ``task`` and what it needs, skipping the tasks in ``seen``
        (a dict of those this walk has met, to which it adds)."""
        if not isinstance(task, Task):
            raise TypeError(f"Worker.add expects a Task instance, got {task!r}")
        ok = True
        path: list[Any] = []
        on_path: dict[str, int] = {}
        if task.task_id not in seen:
            ok &= self._enter(task, path, on_path, seen)
        while path:
            current, dependencies = path[-1]
            # Go through this task's dependencies until one must be expanded: leaves,
            # the most common kind, are checked without leaving this loop.
            for dep in dependencies:
                if dep.task_id in on_path:
                    ok = False
                    self._report_cycle([t for t, _ in path[on_path[dep.task_id]:]] + [dep])
                elif dep.task_id not in seen:
                    depth = len(path)
                    ok &= self._enter(dep, path, on_path, seen)
                    if len(path) > depth:
                        break   # descend into dep; come back to the rest later
            else:
                path.pop()
                del on_path[current.task_id]
        self.succeeded &= ok
        return ok

    def _enter(self, task: Task, path: list[Any], on_path: dict[str, int],
               seen: dict[str, Task]) -> bool:
        """Check one task and report it; push it on the path if it must be expanded."""
        seen[task.task_id] = self._scheduled[task.task_id] = task
        deps, ok = self._check(task)
        if deps:
            on_path[task.task_id] = len(path)
            path.append((task, iter(deps)))
            if self._check_workers:
                self._check_ahead(deps)
        return ok

    def _check_ahead(self, deps: Iterable[Task]) -> None:
        """Parallel completeness checks: start complete() of each dependency not yet
        seen in a thread, so the walk, still in order, finds the answers waiting.
        Each task is checked once, as in the sequential walk."""
        if self._checks is None:
            import concurrent.futures
            self._checks = {}
            self._check_pool = concurrent.futures.ThreadPoolExecutor(
                self._check_workers, "microflow-check")
        checks, scheduled = self._checks, self._scheduled
        for dep in deps:
            if dep.task_id not in scheduled and dep.task_id not in checks:
                checks[dep.task_id] = self._check_pool.submit(dep.complete)

    def stop_checks(self) -> None:
        if self._checks is not None:
            self._check_pool.shutdown(wait=True, cancel_futures=True)
            self._checks = None

    def _check(self, task: Task) -> tuple[list[Task], bool]:
        """complete() and deps() of one task, reported; returns (deps to walk, ok)."""
        try:
            check = self._checks.pop(task.task_id, None) if self._checks else None
            is_complete = task.complete() if check is None else check.result()
            if is_complete is not True and is_complete is not False \
                    and is_complete not in (True, False):   # a forgotten return, say
                raise TypeError(f"Return value of Task.complete() must be boolean (was "
                                f"{is_complete!r})")
        except Exception as exc:
            task.trigger_event(Event.DEPENDENCY_MISSING, task)
            self._scheduling_failure(task, exc, "complete()")
            return [], False
        if is_complete:
            task.trigger_event(Event.DEPENDENCY_PRESENT, task)
            self._report(task, DONE, runnable=False)
            return [], True
        if _is_external(task):
            task.trigger_event(Event.DEPENDENCY_MISSING, task)
            self._report(task, PENDING, runnable=self.options["retry_external_tasks"])
            return [], True
        limit = self.options["task_limit"]
        if limit and len(self._scheduled) > limit:
            _log.warning("%r and its dependencies will not run: [worker] task_limit of %d "
                         "exceeded", task, limit)
            self._report(task, UNKNOWN, runnable=False,
                         expl=f"task_limit of {limit} exceeded")
            return [], False
        try:
            deps = task.deps()
            for dep in deps:
                if not isinstance(dep, Task):
                    raise TypeError(f"{task!r} requires {dep!r}, which is not a Task")
        except Exception as exc:
            task.trigger_event(Event.BROKEN_TASK, task, exc)
            self._scheduling_failure(task, exc, "requires()")
            return [], False
        if task._event_callbacks:
            for dep in deps:
                task.trigger_event(Event.DEPENDENCY_DISCOVERED, task, dep)
        self._walked_deps[task.task_id] = deps or _NO_TASKS   # shared (): leaves are many
        if task.worker_timeout:
            self.timeouts_seen = True
        self._report(task, PENDING, runnable=True,
                     deps=[dep.task_id for dep in deps] if deps else [])
        return deps, True

    def _scheduling_failure(self, task: Task, exc: BaseException, where: str) -> None:
        import traceback
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        _log.error("%r could not be scheduled: %s raised\n%s", task, where, text.rstrip())
        if self.options["send_failure_email"]:
            _email_task_error(task, text, self.session.host,
                              "Luigi: {task} failed scheduling. Host: {host}",
                              "Will not run {task} or any dependencies due to error in "
                              f"{'deps()' if where == 'requires()' else where} method")
        self._fail_scheduling(task, text)

    def _fail_scheduling(self, task: Task, text: str) -> None:
        """Report ``task`` as not schedulable (UNKNOWN), saying why."""
        self.record.errors[task.task_id] = text
        self._report(task, UNKNOWN, runnable=False, expl=text)
        try:
            self.session.announce_scheduling_failure(task, text)
        except Exception:   # e-mailed even when failure e-mails are off: it is not the task
            import traceback
            _email_task_error(task, traceback.format_exc(), self.session.host,
                              "Luigi: Framework error while scheduling {task}. Host: {host}",
                              "Luigi framework error")
            raise

    def _report_cycle(self, cycle: Sequence[Task]) -> None:
        """Luigi leaves a cycle "not granted run permission"; microflow fails the tasks
        in it as a scheduling error, naming them."""
        message = "dependency cycle: " + " -> ".join(repr(task) for task in cycle)
        _log.error("%s", message)
        for task in cycle[:-1]:
            self._fail_scheduling(task, message)

    def _report(self, task: Task, status: str, runnable: bool, deps: Iterable[str] | None = None,
                expl: str | None = None) -> None:
        """Tell the scheduler about ``task`` while scheduling: everything it shows of it."""
        self.record.note(task, status, runnable)
        info = task._info()
        # At most 15 keywords: with more, CPython packs the call into a dict and the
        # call alone costs more than the scheduler's work (new_deps and batchable are
        # left at their defaults; scheduling never sets them).
        self.session.add_task(
            worker=self.session.worker_id, task_id=task.task_id, status=status,
            runnable=runnable,
            deps=deps, expl="null" if expl is None else json.dumps(expl),
            resources=task.resources if info.plain_resources else task.process_resources(),
            priority=task.priority, family=info.reported_family,
            module=info.module or task.task_module, params=task._serialized,
            param_visibilities=info.visibilities, accepts_messages=task.accepts_messages,
            owners=_NO_OWNERS if info.plain_owners else task._owner_list(),
            retry_policy_dict=_retry_policy_of(task))
        if info.batch_names and status == PENDING and task.batchable:
            self._report_batchable(task, info, runnable)

    def _report_batchable(self, task: Task, info: _ClassInfo, runnable: bool) -> None:
        """A task with ``batch_method`` parameters: its family's batcher (once), and the
        task marked batchable, so the scheduler may hand several out as one batch."""
        if info.reported_family not in self._batch_families:
            self._batch_families.add(info.reported_family)
            self.session.add_task_batcher(info.reported_family, info.batch_names,
                                          task.max_batch_size)
        self.session.add_task(worker=self.session.worker_id, task_id=task.task_id,
                              status=PENDING, runnable=runnable, batchable=True)

###########################################################################################
# Worker: the run loop
###########################################################################################

# Set by SIGUSR1 (another process's --take-lock): ask for no more work, finish what runs.
_STOP_ASKING = threading.Event()


class Worker:
    """Walks the graph from the requested tasks, then runs what the scheduler hands out.

    ``add(task)`` reports every task to the scheduler (calling ``complete()`` once per
    task and build, in ``check_workers`` threads when given); ``run()`` loops over
    ``step()``: ask for work, start it on the runner, report outcomes, until nothing is
    left. ``scheduler`` may be the in-memory Scheduler or a remote one with the same
    methods. The runner is chosen when the run starts, once the graph is known (see
    _make_runner), unless one is given; ``executor`` runs tasks on any
    ``concurrent.futures.Executor``. ``clock`` and ``sleep`` are injectable for tests.
    Raises ConfigError for an unknown ``[worker]`` option or mode.
    """

    def __init__(self, scheduler: _SchedulerAPI | None = None, runner: _Runner | None = None,
                 worker_id: str | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None, processes: int = 1,
                 executor: Any = None, check_workers: int = 0, worker_processes: int | None = None,
                 assistant: bool = False, progress: Callable[..., None] | None = None,
                 **options: Any) -> None:
        self.progress: Any = progress   # called as build() says, while tasks run
        # Luigi's name for it; 0 processes: schedule only, run nothing (others will)
        processes = processes if worker_processes is None else worker_processes
        self._assistant = bool(assistant)   # runs any runnable task the scheduler has
        self._clock = clock or time.time
        self._sleep = sleep or time.sleep
        self.options = _typed_options("worker", _WORKER_DEFAULTS, options)
        if self.options["mode"] not in ("processes", "threads"):
            raise ConfigError(f"[worker] mode must be processes or threads, got "
                              f"{self.options['mode']!r}")
        self._processes = processes if runner is None else runner.processes
        self._info = _worker_info(self._processes, self._assistant)
        self._id = worker_id or self.options["id"] or "Worker(" + ", ".join(
            f"{k}={v}" for k, v in self._info if k != "assistant") + ")"
        self._session = _Session(scheduler if scheduler is not None else Scheduler(),
                                 self._id, self._info)
        # the runner given, or one chosen when the run starts (the base runs nothing)
        self._runner: _Runner = runner if runner is not None else _Runner()
        self._choose_runner = runner is None
        self._executor = executor
        # What the summary reads, kept in a record of the run; the worker writes to
        # it through these names (the same dicts and list, not copies).
        self.record = _RunRecord(self._id)
        self._walk = _GraphWalk(self._session, self.record, self.options, check_workers)
        self._scheduled = self.record.scheduled
        self._reported = self.record.reported
        self._walked_deps = self.record.walked   # task id -> its deps, until run
        self.errors = self.record.errors
        self._running: dict[str, Task] = {}   # task id -> Task started on the runner
        self._results: Any = None   # Luigi's _task_result_queue, made when first asked for
        self._pids: dict[str, int | None] = {}   # task id -> pid running it
        self._started = False         # _start_running() done
        self._late_ids: set[str] = set()   # tasks found while running (dynamic, handed out)
        self._load_failures: set[str] = set()   # handed-out tasks that could not be loaded
        # combined task id -> the tasks it runs for
        self._batch_members: dict[str, list[Task]] = {}
        self._done_yields: dict[str, int] = {}   # task id -> times it yielded only done
        self._reschedules: dict[str, int] = {}
        self._idle_since: float | None = None
        self._retries: _Retries | None = None   # once running; None with keep_alive
        self._failed_ids: set[str] = set()   # failed and not (yet) recovered by a retry
        # the KeyboardInterrupt that stopped the run
        self.interrupted: BaseException | None = None
        self.run_succeeded = True     # set by run(): False if a failure was not recovered

    def add(self, task: Task) -> bool:
        """Report ``task`` and everything it needs that is not complete (see
        _GraphWalk.add); False when a task could not be scheduled."""
        return self._walk.add(task)

    def add_all(self, tasks: Iterable[Task]) -> bool:
        """add() for several tasks in one walk: what they share is checked once."""
        return self._walk.add_all(tasks, self.add)

    @property
    def add_succeeded(self) -> bool:
        """Whether every task added so far could be scheduled (Luigi's name)."""
        return self._walk.succeeded

    @add_succeeded.setter
    def add_succeeded(self, value: bool) -> None:
        self._walk.succeeded = value

    @property
    def _scheduler(self) -> Any:
        """The scheduler this worker talks to (Luigi's name; the session holds it).
        A subclass may assign another, as Luigi's may: the session then talks to it."""
        return self._session.scheduler

    @_scheduler.setter
    def _scheduler(self, scheduler: _SchedulerAPI) -> None:
        self._session = self._walk.session = _Session(scheduler, self._id, self._info)

    def _create_task_process(self, task: Task) -> ContextManagedTaskProcess:
        """Luigi's hook: the process object that runs ``task`` (a TaskProcess, in a
        child process when this worker runs more than one task at once). A subclass
        that overrides it (to hand some tasks to a batch system) is run through it,
        and may call ``super()._create_task_process(task)`` for the others."""
        import multiprocessing
        messages: Any = multiprocessing.Queue() if task.accepts_messages else None
        reporter = TaskStatusReporter(self._scheduler, task.task_id, self._id, messages)
        options = self.options
        return ContextManagedTaskProcess(
            options["task_process_context"] or None, task, self._id,
            self._task_result_queue, reporter, use_multiprocessing=self._processes > 1,
            worker_timeout=task.worker_timeout or options["timeout"],
            check_unfulfilled_deps=options["check_unfulfilled_deps"],
            check_complete_on_run=options["check_complete_on_run"])

    def _make_runner(self) -> _Runner:
        """Inline for one process without a timeout (no fork, no pickling); a thread
        pool or the given executor when asked; otherwise a pool of child processes."""
        options, processes = self.options, self._processes
        checks = (options["check_unfulfilled_deps"], options["check_complete_on_run"])
        if type(self)._create_task_process is not Worker._create_task_process or \
                options["task_process_context"]:
            # a subclass hands tasks to a batch system through Luigi's hook, or each task
            # runs in a context manager, in Luigi's process objects
            return _TaskProcessRunner(self._create_task_process, self._task_result_queue,
                                      processes)
        if self._executor is not None:
            return _ExecutorRunner(self._executor, processes, self._session.relay, checks)
        if options["mode"] == "threads":
            import concurrent.futures
            if options["timeout"] or self._walk.timeouts_seen:
                _log.warning("[worker] mode = threads cannot enforce timeouts: a thread "
                             "cannot be stopped")
            pool = concurrent.futures.ThreadPoolExecutor(processes, "microflow-task")
            return _ExecutorRunner(pool, processes, self._session.relay, checks,
                                   threads=True, own=True)
        if processes <= 1 and not (options["timeout"] or self._walk.timeouts_seen or
                                   options["force_multiprocessing"] or
                                   options["process_per_task"]):
            return _InlineRunner(self._execute_inline)
        return _ProcessRunner(processes, self._session.relay, self._scheduled, checks,
                              timeout=options["timeout"],
                              start_method=options["start_method"] or None,
                              per_task=options["process_per_task"], late=self._late_ids)

    def _execute_inline(self, task: Task) -> _Outcome:
        """Run ``task`` in this process, with the deps the walk found (so requires()
        is not called again) and its reports going straight to the scheduler."""
        deps = self._walked_deps.pop(task.task_id, None)
        return _execute_task(task, self.options["check_unfulfilled_deps"],
                             self.options["check_complete_on_run"], self._report_inline,
                             deps)

    def _report_inline(self, method: str, task_id: str, value: Any) -> None:
        self._session.relay(method, (task_id, value))

    @property
    def worker_id(self) -> str:
        """The id this worker gives the scheduler."""
        return self._id

    # What a subclass's _create_task_process (Luigi's hook) builds its process object
    # from, under Luigi's names.
    @property
    def _task_result_queue(self) -> Any:
        """Where a process object puts ``(task_id, status, explanation, missing,
        new_requirements)`` (a multiprocessing queue: it may be put from a child)."""
        if self._results is None:   # made on first use: most runs never need one
            import multiprocessing
            self._results = multiprocessing.Queue()
        return self._results

    @_task_result_queue.setter
    def _task_result_queue(self, queue: Any) -> None:
        self._results = queue

    @property
    def _config(self) -> Any:
        """The ``[worker]`` options as attributes (``self._config.timeout``); a
        subclass may assign an object with such attributes (Luigi's ``worker``
        config) over them."""
        return types.SimpleNamespace(**self.options)

    @_config.setter
    def _config(self, config: Any) -> None:
        self.options.update({name: getattr(config, name) for name in self.options
                             if hasattr(config, name)})

    @property
    def worker_processes(self) -> int:
        """How many tasks may run at once."""
        return self._processes

    @worker_processes.setter
    def worker_processes(self, processes: int) -> None:
        self._processes = int(processes)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._walk.stop_checks()
        self._runner.close()
        results = self._results
        if results is not None and hasattr(results, "join_thread"):
            # A result put here (a process object run in this process) started the
            # queue's feeder thread: end it, so no later fork happens beside it.
            results.close()
            results.join_thread()

    # -- running: the loop ----------------------------------------------------------------

    def run(self) -> bool:
        """Run until the scheduler has nothing more for this worker.

        Returns False if a task failed and no retry recovered it (True even when
        external data was missing, as in Luigi). Ctrl-C (KeyboardInterrupt) stops
        the running tasks and everything they started, fails them as interrupted and
        returns; ``interrupted`` then says so. Raises SchedulerUnavailable, after
        stopping the running tasks, when a remote scheduler stops answering.
        """
        self._start_running()
        self._load_failures.clear()   # each run says whether it could load what it got
        session = self._session
        session.open(self._walk.first_task, self.options["ping_interval"],
                     from_the_loop=not self._runner.synchronous)
        try:
            if self.progress is None:
                while self.step() != "stop":
                    pass
            else:
                self._run_with_progress()
        except KeyboardInterrupt as exc:
            self._interrupt(exc)
        except SchedulerUnavailable:
            _log.error("The scheduler is gone: stopping %d running task(s)",
                       len(self._running))
            self._runner.close()
            raise
        finally:
            session.stop_pinging()
        if session.remote:
            session.flush()
            if self.interrupted is None:
                self.record.settle_done_elsewhere()
        self.run_succeeded = not self._failed_ids and not self._load_failures
        return self.run_succeeded

    def _run_with_progress(self, interval: float = 0.2) -> None:
        """The run loop, telling ``progress`` (done, running, pending, failed, seconds)
        at most every ``interval`` seconds and once at the end."""
        done_before = self.record.tally()[0]
        started = due = time.monotonic()
        action = None
        while action != "stop":
            action = self.step()
            now = time.monotonic()
            if now >= due or action == "stop":
                due = now + interval
                done, failed, runnable = self.record.tally()
                done, running = done - done_before, len(self._running)
                self.progress(done, running, max(0, runnable - done - failed - running),
                              failed, now - started)

    def _start_running(self) -> None:
        """Between the walk and the first task: the runner, now that the graph is known."""
        self._started = True
        self._walk.stop_checks()
        if self._choose_runner:
            self._runner = self._make_runner()
        self._runner.check(self._scheduled.values())
        self._log_tasks = _log.isEnabledFor(20)   # INFO: a line per task start and end
        self._log_debug = _log.isEnabledFor(10)   # DEBUG: each scheduling decision too
        if self._log_debug:
            _log.debug("%s runs tasks on %s", self._id, type(self._runner).__name__)
        if not self.options["keep_alive"]:   # kept alive, it takes the retries the
            configured = get_config().get("scheduler", "retry_count", None)   # scheduler
            self._retries = _Retries(                                        # offers
                None if configured is None else int(configured),
                *self._session.retry_timing(self.options["wait_interval"]),
                self._clock, self._sleep)

    def step(self) -> str:
        """Do one thing and say what: "ran" a task inline, "started" one on a process,
        "collected" outcomes, "waiting" (slept: keep-alive or a retry) or "stop"."""
        if not self._started:
            self._start_running()
        if self._running and len(self._running) >= self._runner.processes:
            self._handle(self._collect(timeout=None))
            return "collected"
        if _STOP_ASKING.is_set():   # another run took the lock: finish, ask for nothing
            if not self._running:
                return "stop"
            self._handle(self._collect(timeout=None))
            return "collected"
        reply = self._session.get_work(self._running, self._processes)
        task_id = reply.get("task_id")
        if task_id is None and reply.get("batch_id") is not None:
            task_id = self._start_batch(reply)
        if self._log_debug:
            _log.debug("get_work: %s (%s pending, %s running here)", task_id or "nothing",
                       reply.get("n_pending_tasks"), len(self._running))
        if task_id is None:
            self.record.idle_replies.append(reply)
            if self._running:
                self._handle(self._collect(timeout=self.options["wait_interval"]))
                return "collected"
            if self._retries and self._retries.due and \
                    self._retries.wait(self._scheduled, self.options["wait_interval"]):
                return "waiting"
            if self._keep_alive(reply):
                self._sleep(self._idle_wait())
                return "waiting"
            return "stop"
        self._idle_since = None
        task = self._scheduled.get(task_id) or self._load_handed_out(reply)
        if task is None:
            return "collected"   # it could not be loaded; reported failed
        self._running[task_id] = task
        if self._runner.synchronous:   # the inline runner has the outcome at once
            if self._log_tasks:
                self._pids[task_id] = os.getpid()
                _log.info("[pid %s] Worker %s running   %s", os.getpid(), self._id, task)
            self._runner.start(task)
            self._handle(self._runner.collect(timeout=0))
            return "ran"
        pid = self._runner.start(task)
        if self._log_tasks:
            self._pids[task_id] = pid = pid or os.getpid()
            _log.info("[pid %s] Worker %s running   %s", pid, self._id, task)
        return "started"

    def _collect(self, timeout: float | None) -> list[_Outcome]:
        """The runner's outcomes, waiting up to ``timeout`` seconds (None: until one);
        when the session pings from this loop, a ping interval at a time."""
        interval = self._session.ping_every
        if interval is None:
            return self._runner.collect(timeout=timeout)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = interval if end is None else max(0.0, min(interval,
                                                             end - time.monotonic()))
            outcomes = self._runner.collect(timeout=left)
            self._session.ping_if_due()
            if outcomes or (end is not None and time.monotonic() >= end):
                return outcomes

    def _idle_wait(self) -> Any:
        """A kept-alive idle worker's sleep: ``wait_interval`` plus up to
        ``wait_jitter`` at random, so many workers do not poll in step."""
        jitter = self.options["wait_jitter"]
        if not jitter:
            return self.options["wait_interval"]
        import random
        return self.options["wait_interval"] + random.uniform(0, jitter)

    def _keep_alive(self, reply: dict[str, Any]) -> Any:
        if not self.options["keep_alive"] or reply.get("worker_state") == "disabled":
            return False
        if self._assistant:   # it serves the scheduler, as long as it lives
            return True
        if self.options["count_last_scheduled"]:
            return reply.get("n_pending_last_scheduled", 0) > 0
        if self.options["count_uniques"]:
            return reply.get("n_unique_pending", 0) > 0
        # Also stay while another worker runs a task this one wants (Luigi leaves
        # then, and the tasks that needed it are left "not granted run permission").
        if reply.get("n_pending_tasks", 0) == 0 and not reply.get("running_tasks"):
            return False
        limit = self.options["max_keep_alive_idle_duration"]
        now = self._clock()
        if self._idle_since is None:
            self._idle_since = now
        return not limit or now - self._idle_since < limit

    def _handle(self, outcomes: Iterable[_Outcome]) -> None:
        """Report each outcome; add dynamic dependencies; reschedule on missing deps."""
        for outcome in outcomes:
            task = self._running.pop(outcome.task_id)
            new_deps = self._add_yielded(task, outcome) if outcome.new_deps else []
            if outcome.status == FAILED:
                self._failed(task, outcome)
            else:
                if self._log_tasks:
                    _log.info("[pid %s] Worker %s %s %s",
                              self._pids.pop(task.task_id, "-"), self._id,
                              "done     " if outcome.status == DONE else "suspended", task)
                if outcome.status == DONE and self._failed_ids:
                    self._failed_ids.discard(task.task_id)
                    if self._retries:
                        self._retries.due.pop(task.task_id, None)
            self._report_result(task, outcome.status, new_deps or None, outcome.explanation)
            if outcome.missing:
                self._reschedule(task)

    def _add_yielded(self, task: Task, outcome: _Outcome) -> list[str]:
        """Add what run() yielded; returns their ids. A task that yields, twice in a
        row, only tasks already done here is failed rather than run for ever: its
        process does not see their outputs (data kept in one process's memory)."""
        known = len(self._scheduled)
        deps = [_task_from_ref(ref, self._scheduled) for ref in outcome.new_deps]
        for dep in deps:   # what this worker already walked is not walked again
            self._walk.walk(dep, self._scheduled)
        # The walk appended what it found: those are new to the pool's processes.
        self._late_ids.update(itertools.islice(reversed(self._scheduled),
                                               len(self._scheduled) - known))
        if all(self._reported.get(dep.task_id, 0) & _REPORTED_DONE for dep in deps):
            seen = self._done_yields[task.task_id] = self._done_yields.get(task.task_id, 0) + 1
            if seen > 1:
                names = ", ".join(map(repr, deps))
                outcome.status, outcome.explanation = FAILED, (
                    f"run() yielded {names} again although they are complete here: "
                    f"the process running {task!r} does not see their output (is it "
                    f"kept in one process's memory?)")
                return []
        return [dep.task_id for dep in deps]

    def _failed(self, task: Task, outcome: _Outcome) -> None:
        """Say why ``task`` failed, where the user looks, and plan its retry (if any)."""
        text = (outcome.traceback_text or outcome.explanation or "").rstrip()
        _log.error("[pid %s] Worker %s failed    %s\n%s", self._pids.pop(task.task_id, "-"),
                   self._id, task, text)
        self.errors[task.task_id] = text
        self._failed_ids.add(task.task_id)
        if self.options["send_failure_email"] and self.interrupted is None and not (
                task.run is None and self.options["retry_external_tasks"]):
            _email_task_error(task, text, self._session.host,
                              "Luigi: {task} FAILED. Host: {host}",
                              "A task failed when running. Most likely run() raised an "
                              "exception.")
        if self._retries is not None:
            self._retries.failed(task)

    def _interrupt(self, exc: BaseException) -> None:
        """Ctrl-C or SIGTERM: stop asking for work, stop the running tasks and every
        process they started, and report them failed as interrupted."""
        self.interrupted = exc
        self.record.interrupted = True
        _log.error("Interrupted: stopping %d running task(s)", len(self._running))
        self._runner.close()
        for task in list(self._running.values()):
            self._failed(task, _Outcome(task.task_id, FAILED, "interrupted while running"))
            self._report_result(task, FAILED, None, "interrupted while running")
        self._running.clear()
        if self._retries:
            self._retries.due.clear()

    def _reschedule(self, task: Task) -> None:
        count = self._reschedules.get(task.task_id, 0)
        if count < self.options["max_reschedules"]:
            self._reschedules[task.task_id] = count + 1
            del self._scheduled[task.task_id]
            self._walk.walk(task, {})   # afresh: a dependency done before may be gone now

    def _report_result(self, task: Task, status: str, new_deps: Sequence[str] | None,
                       expl: str | None) -> None:
        """Tell the scheduler what running ``task`` came to: only what changed."""
        members = self._batch_members.pop(task.task_id, None)
        if members is None or task in members:   # a combined task is not the user's
            self.record.note(task, status, None)
        for member in members or ():             # it ran for them
            self.record.note(member, status, None)
        self._session.add_task(worker=self._id, task_id=task.task_id, status=status,
                               runnable=None, new_deps=new_deps,
                               expl="null" if expl is None else json.dumps(expl),
                               # a failure's owners get the scheduler's batched e-mails
                               owners=task._owner_list() if status == FAILED else None)

    # -- tasks handed out that this worker did not walk: loaded by name --------------

    def _load_handed_out(self, reply: dict[str, Any]) -> Task | None:
        """A task this worker did not add (an assistant's, or a batch's): load it by
        family, module and parameters; None, the task reported failed and the reason
        e-mailed, when that cannot be done."""
        try:
            return self._task_for(reply)
        except Exception as exc:
            self._load_failed(exc, [reply["task_id"]])
            return None

    def _load_failed(self, exc: BaseException, task_ids: Iterable[str]) -> None:
        text = f"Cannot find task(s) sent by scheduler: {','.join(task_ids)}: {exc!r}"
        _log.error("%s", text)
        for task_id in task_ids:
            self.errors[task_id] = text
            self._load_failures.add(task_id)
            self._session.add_task(worker=self._id, task_id=task_id, status=FAILED,
                                   runnable=False, expl=json.dumps(text))
        send_error_email(f"Luigi: Cannot find task(s) sent by scheduler: "
                         f"{','.join(task_ids)}", wrap_traceback(text))

    def _start_batch(self, reply: dict[str, Any]) -> str | None:
        """A batch handed out: build the task that runs it (each batched parameter
        combined by its batch_method) and tell the scheduler it runs; the members take
        its outcome. Returns its id, or None, the members failed, if it cannot be built."""
        members = reply.get("batch_task_ids") or []
        try:
            task = self._task_for(reply)
        except Exception as exc:
            self._load_failed(exc, members)
            return None
        self._batch_members[task.task_id] = [self._scheduled[task_id] for task_id in members
                                             if task_id in self._scheduled]
        self._session.add_task(worker=self._id, task_id=task.task_id, status=RUNNING,
                               family=reply["task_family"], module=reply.get("task_module"),
                               params=task.to_str_params(), batch_id=reply["batch_id"])
        return task.task_id

    def _task_for(self, reply: dict[str, Any]) -> Task:
        """A task handed out that this worker did not add: load it by name."""
        task = load_task(reply.get("task_module"), reply["task_family"],
                         reply.get("task_params") or {})
        self._scheduled[task.task_id] = task
        self._late_ids.add(task.task_id)
        return task


def _retry_policy_dict(task: Task) -> dict[str, Any]:
    """The task's retry policy as Luigi's worker sends it (None: the scheduler's)."""
    return {name: getattr(task, name) for name in _RETRY_POLICY_NAMES}


def _retry_policy_of(task: Task) -> dict[str, Any] | None:
    """The task's retry policy overrides; None when its class overrides none of them
    (the scheduler then uses its own, as it would for a dict of Nones)."""
    if not _REGISTRY.class_infos[type(task)].own_retry_policy:   # _info() ran: current
        return None
    return _retry_policy_dict(task)


###########################################################################################
# Remote scheduler: a pure dispatch and the HTTP server
###########################################################################################

# Argument types checked before a call reaches the scheduler, so a malformed request
# is refused whole (400) instead of failing half-way through a state change.
_ARGUMENT_TYPES = {
    "task_id": (str,), "worker": (str,), "status": (str,), "host": (str, type(None)),
    "deps": (list, type(None)), "new_deps": (list, type(None)), "family": (str,),
    "module": (str, type(None)), "params": (dict, type(None)), "priority": (int, float),
    "resources": (dict, type(None)), "current_tasks": (list, type(None)),
    "expl": (str, type(None)), "runnable": (bool, type(None)), "owners": (list, type(None)),
    "retry_policy_dict": (dict, type(None)), "param_visibilities": (dict, type(None)),
    "assistant": (bool,), "batchable": (bool, type(None)), "accepts_messages": (bool,),
    "tracking_url": (str, type(None)), "batch_id": (str, type(None)),
    "info": (list, dict, type(None)), "status_message": (str, type(None)),
    "progress_percentage": (int, float, type(None)), "decrease_resources": (dict,),
    "task_family": (str,), "batched_args": (list,), "max_batch_size": (int, float),
    "search": (str, type(None)), "task_str": (str,), "upstream_status": (str,),
    "since": (int,), "limit": (bool, int), "include_done": (bool,), "prefetch": (int,),
    "task_ids": (list,),
}
_TASK_ID_LISTS = frozenset(("deps", "new_deps", "current_tasks", "task_ids"))
_SIGNATURES: dict[str, Any] = {}   # method -> inspect.Signature of the Scheduler method


def _argument_shape(method: str) -> tuple[frozenset[str], bool]:
    """``(its required parameters, whether it takes any name)`` of ``Scheduler.method``
    (computed once): a call with every required name, to a method taking ``**kwargs``,
    fits without binding its signature (a cost per call)."""
    shape = _SHAPES.get(method)
    if shape is None:
        parameters = list(_signature(method).parameters.values())[1:]
        shape = _SHAPES[method] = (
            frozenset(p.name for p in parameters if p.default is p.empty and p.kind in (
                p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)),
            any(p.kind is p.VAR_KEYWORD for p in parameters))
    return shape


_SHAPES: dict[str, tuple[frozenset[str], bool]] = {}


def _signature(method: str) -> Any:
    """The signature of ``Scheduler.method`` (computed once: it is not cheap)."""
    signature = _SIGNATURES.get(method)
    if signature is None:
        import inspect
        signature = _SIGNATURES[method] = inspect.signature(RPC_METHODS[method])
    return signature


def _check_arguments(method: str, params: Mapping[str, Any]) -> None:
    """Raise TypeError, naming the method and field, for arguments that cannot fit."""
    required, any_name = _argument_shape(method)
    if not any_name or not required <= params.keys():   # else every call fits
        try:
            _signature(method).bind(None, **params)
        except TypeError as exc:
            raise TypeError(f"bad arguments: {exc}") from None
    for name, value in params.items():
        expected = _ARGUMENT_TYPES.get(name)
        if expected is not None and not isinstance(value, expected):
            names = " or ".join("null" if kind is type(None) else kind.__name__
                                for kind in expected)
            raise TypeError(f"field {name!r} must be {names}, got {type(value).__name__}")
        if name in _TASK_ID_LISTS and value and \
                not all(isinstance(item, str) for item in value):
            raise TypeError(f"field {name!r} must be a list of task ids (strings)")


def _batch_calls(params: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """The ``[[method, arguments], ...]`` of a batch request, or None if malformed."""
    calls = params.get("calls") if isinstance(params, dict) else None
    if not isinstance(calls, list) or len(calls) > _MAX_BATCH or not all(
            isinstance(call, list) and len(call) == 2 and isinstance(call[0], str)
            for call in calls):
        return None
    return calls


def _dispatch(scheduler: Any, method: str, params: Any) -> tuple[int, Any]:
    """Serve one remote call: ``(http status, JSON-ready body)``. Pure: no sockets.

    Unknown methods get 404; arguments that are not a JSON object, do not fit the
    method or have the wrong types 400, as does a scheduler's refusal (a ValueError
    such as SchedulerError); anything else 500. The body is ``{"response": ...}`` on
    success (luigid's envelope), ``{"error": "..."}`` otherwise.
    """
    if method not in RPC_METHODS:   # microflow's, and those of @rpc_method()
        return 404, {"error": f"unknown method {method!r}"}
    if not isinstance(params, dict):
        return 400, {"error": f"{method}: the data field must hold a JSON object, got "
                              f"{type(params).__name__}"}
    try:
        _check_arguments(method, params)
        return 200, {"response": getattr(scheduler, method)(**params)}
    except (TypeError, ValueError) as exc:
        return 400, {"error": f"{method}: {exc}"}
    except Exception as exc:   # a bug of ours: say so, keep serving
        _log.exception("%s failed", method)
        return 500, {"error": f"{method}: internal error ({type(exc).__name__})"}


# Largest request body the server reads; a walked graph in one batch fits many times.
_MAX_REQUEST_BYTES = 16 << 20


class SchedulerServer:
    """A central scheduler over HTTP, speaking luigid's protocol (``/api/<method>``,
    a ``data`` field holding JSON, replies ``{"response": ...}``).

    Every call goes through one Scheduler, one at a time. Binds 127.0.0.1 unless told
    otherwise; port 0 picks a free port (see ``port`` and ``url``). With ``token``,
    every call that changes state needs it (``Authorization: Bearer TOKEN``, or as the
    password of HTTP basic auth, e.g. ``http://any:TOKEN@host:8082``); reads need it
    too with ``protect_reads``. Use as a context manager (served from a thread), or
    call serve_forever(). Raises OSError when the address cannot be bound.
    """

    def __init__(self, scheduler: Scheduler | None = None, address: str = "127.0.0.1",
                 port: int = 8082, token: str | None = None, protect_reads: bool = False,
                 state_path: str | None = None, allowed_hosts: Iterable[str] = ()) -> None:
        self._owns_scheduler = scheduler is None   # then closed on stop()
        self.scheduler = scheduler if scheduler is not None else \
            Scheduler(prune_on_get_work=True)
        self._state: _StateFile | None = None
        self._changed: set[str] = set()   # ids of the tasks the call under way changed
        if state_path:
            self._state = _StateFile(state_path)
            restored = self.scheduler.restore(self._state.load())
            self._state.compact(self.scheduler.snapshot())   # start from one clean file
            self.scheduler.subscribe(self._note_change)
            _log.info("state kept in %s: %d tasks restored", state_path, restored)
        self._token = token.encode() if token else None
        self._protect_reads = protect_reads
        self._given_hosts = {_host_name(name) for name in allowed_hosts}
        self._host_names = _served_names(address, self._given_hosts)
        self.metrics = _Metrics(self.scheduler)
        self._lock = threading.Lock()
        self._next_prune = time.monotonic() + 60   # luigid prunes once a minute
        self._workers_seen: set[str] = set()
        try:
            self._httpd = _ServingLoop(address, port, _request_handler(), self)
        except OSError as exc:
            import errno
            hint = (" (is a scheduler already running there? choose another --port)"
                    if exc.errno == errno.EADDRINUSE else "")
            reason = str(exc.strerror).partition(" (while attempting")[0]   # create_server's
            raise OSError(exc.errno, f"cannot serve on {address}:{port}: "
                                     f"{reason}{hint}") from None
        self.address, self.port = self._httpd.server_address[:2]
        if not _is_loopback(address) and token is None:
            _log.warning("the scheduler on %s:%s is reachable from other hosts and takes no "
                         "token: anyone who reaches it can change it (--token-file)%s",
                         address, self.port, "" if self._host_names else
                         "; any Host name is accepted (--allow-host NAME: only those)")
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL workers use, e.g. ``http://127.0.0.1:8082`` (``http://[::1]:8082``)."""
        return f"http://{_url_host(str(self.address))}:{self.port}"

    def call(self, method: str, params: Any, credentials: bytes | None = None) -> tuple[int, Any]:
        """One remote call, authorized by ``credentials`` (the token offered, bytes
        or None): ``(http status, body)``. ``batch`` (microflow's extension) takes
        ``{"calls": [[method, arguments], ...]}``, runs them in order and replies with
        ``[[status, body], ...]``, journaled once."""
        calls = _batch_calls(params) if method == "batch" else [[method, params]]
        if calls is None:
            return 400, {"error": "batch: expected {\"calls\": [[method, {...}], ...]}"}
        if not self.allowed(credentials, all(name in _READ_METHODS for name, _ in calls)):
            return 401, {"error": f"{method}: this scheduler needs a token"}
        with self._lock:
            replies = [self._timed(name, arguments) for name, arguments in calls]
            now = time.monotonic()
            if now >= self._next_prune and hasattr(self.scheduler, "prune"):
                self._next_prune = now + 60   # as luigid: what is due, batched e-mails
                self.scheduler.prune()
            if self._changed:
                self._journal()
        for (name, arguments), (status, _) in zip(calls, replies):
            if name == "add_worker" and status == 200:
                self._note_worker(arguments["worker"])
        return (200, {"response": replies}) if method == "batch" else replies[0]

    def _timed(self, method: str, arguments: Any) -> tuple[int, Any]:
        """One call, dispatched, its time under the lock counted for /metrics."""
        started = time.perf_counter()
        reply = _dispatch(self.scheduler, method, arguments)
        self.metrics.called(method, time.perf_counter() - started)
        return reply

    def allowed(self, credentials: bytes | None, reading: bool = True) -> bool:
        """Whether ``credentials`` may read (``reading``) or change the scheduler."""
        if self._token is None or (reading and not self._protect_reads):
            return True
        import hmac
        return credentials is not None and hmac.compare_digest(credentials, self._token)

    def refusal(self, headers: Mapping[str, str], verb: str,
                method: str | None = None) -> tuple[int, str] | None:
        """Why a request that a browser sends on another site's behalf is refused,
        ``(http status, reason)``, or None to serve it: a Host that is not a name of
        this server (DNS rebinding), an Origin not this server's, ``Sec-Fetch-Site``
        cross-site or same-site, or a GET by a browser of a remote ``method`` that
        changes state (an ``<img>`` on another page). Workers and curl send none of
        these headers: they pass."""
        host = (headers.get("Host") or "").strip()
        name = _host_name(host)
        if host and self._host_names is not None and name not in self._host_names:
            return 421, (f"Host {host!r} is not a name of this server (a server behind a "
                         f"proxy accepts it with --allow-host {name})")
        origin = headers.get("Origin")
        own = origin is not None and (origin.lower() == f"http://{host.lower()}" or
                                      _host_name(origin.partition("://")[2])
                                      in self._given_hosts)
        if origin is not None and not own:
            return 403, (f"cross-origin request refused: Origin {origin} is not this "
                         f"server's")
        site = (headers.get("Sec-Fetch-Site") or "").lower()
        if site in ("cross-site", "same-site") and not own:
            return 403, f"request from another site refused (Sec-Fetch-Site: {site})"
        if verb != "POST" and method is not None and method not in _READ_METHODS and \
                _from_browser(headers):
            return 405, f"{method} changes the scheduler: a browser must send it by POST"
        return None

    def metrics_text(self) -> str:
        """``/metrics``: Prometheus' text format."""
        with self._lock:
            return self.metrics.text()

    def _note_worker(self, worker: Any) -> None:
        if worker not in self._workers_seen:
            self._workers_seen.add(worker)
            _log.info("worker %s arrived", worker)


    def _note_change(self, event: str, record: Any, old: Any, new: Any) -> None:
        """Listener: remember which tasks the call under way changes, to journal."""
        if event != "worker":
            self._changed.add(record.id)

    def _journal(self) -> None:
        """Journal the records of the tasks the last call changed, before replying."""
        scheduler = self.scheduler
        records = [scheduler.task_record(task_id) for task_id in self._changed]
        self._changed.clear()
        state = self._state
        if state is None:
            return
        state.append(records)
        if state.due():
            state.compact(scheduler.snapshot())

    def serve_forever(self) -> None:
        """Serve until stop() (from another thread) or KeyboardInterrupt."""
        _log.info("microflow scheduler listening on %s", self.url)
        self._httpd.serve_forever(poll_interval=0.5)

    def start(self) -> SchedulerServer:
        """Serve from a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="microflow-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            if hasattr(self.scheduler, "dump"):   # e-mails collected and not yet sent
                self.scheduler.dump()
            if self._owns_scheduler:   # its task history, if any
                self.scheduler.close()
            if self._state is not None:
                self._state.compact(self.scheduler.snapshot())
                self._state.close()

    def __enter__(self) -> SchedulerServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _host_name(host: str) -> str:
    """The name in a Host header or an origin's authority, without its port:
    ``"localhost:8082"`` -> ``"localhost"``, ``"[::1]:8082"`` -> ``"[::1]"``."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    name, colon, port = host.rpartition(":")
    return name.rstrip(".") if colon and port.isdigit() and ":" not in name else host


def _url_host(host: str) -> str:
    """``host`` as a URL or a Host header writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def _is_loopback(address: str) -> bool:
    """Whether a server bound to ``address`` is reachable from this host only."""
    import ipaddress
    try:
        return address == "localhost" or ipaddress.ip_address(address).is_loopback
    except ValueError:   # a host name
        return False


def _served_names(address: str, given: set[str]) -> set[str] | None:
    """The Host names a server bound to ``address`` answers: loopback's names and the
    address for a loopback server, with the ``given`` ones; only those (and loopback's)
    for another address when names are given; None (any) when none are."""
    if not _is_loopback(address) and not given:
        return None
    return {"127.0.0.1", "localhost", "[::1]", _host_name(_url_host(address))} | given


def _from_browser(headers: Mapping[str, str]) -> bool:
    """Whether a request carries what browsers send (fetch metadata, an Origin or a
    Referer, a Mozilla user agent); workers, curl and Luigi's client send none."""
    return any(headers.get(name) for name in ("Sec-Fetch-Site", "Sec-Fetch-Mode", "Origin",
                                               "Referer")) or \
        (headers.get("User-Agent") or "").startswith("Mozilla/")


def serve(address: str = "127.0.0.1", port: int = 8082, token: str | None = None,
          scheduler: Scheduler | None = None, state_path: str | None = None,
          allowed_hosts: Iterable[str] = (), **scheduler_options: Any) -> None:
    """Run a central scheduler in this thread until interrupted (``python -m microflow
    --server`` calls this). For tests, use ``SchedulerServer(...)`` as a context
    manager instead."""
    if scheduler is None:
        scheduler = Scheduler(prune_on_get_work=True, **scheduler_options)
    server = SchedulerServer(scheduler, address, port, token, state_path=state_path,
                             allowed_hosts=allowed_hosts)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        _log.info("scheduler stopping")
    finally:
        server.stop()
        if hasattr(scheduler, "close"):   # its task history, if any
            scheduler.close()


if TYPE_CHECKING:
    _HandlerBase = http.server.BaseHTTPRequestHandler
else:
    _HandlerBase = object


class _Headers(dict):   # type: ignore[type-arg]
    """A request's headers by lower-case name (the server's fast parse_request)."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> Any:
        return super().get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class _HandlerMethods(_HandlerBase):
    """The HTTP handler's methods (mixed into http.server's handler on first use: that
    module is slow to import). It only parses the request, finds the credentials, and
    writes the JSON reply; SchedulerServer.call does the rest. It never touches a
    socket: the serving loop hands it a whole request and sends what it wrote."""

    protocol_version = "HTTP/1.1"   # keep-alive: one connection per worker
    server_version = f"microflow/{__version__}"
    raw_requestline: bytes          # read by http.server before parse_request()

    @classmethod
    def answer(cls, server: _ServingLoop, client: Any, request: bytes) -> tuple[bytes, bool]:
        """The reply to one whole ``request`` (head and body) from ``client`` (its
        address), and whether the connection is to close after it."""
        handler = cls.__new__(cls)   # not __init__: socketserver's reads from a socket
        handler.server = server   # type: ignore[assignment]  # (socketserver's type)
        handler.client_address = client
        handler.rfile, handler.wfile = io.BytesIO(request), io.BytesIO()
        handler.close_connection = True
        handler.handle_one_request()
        return handler.wfile.getvalue(), handler.close_connection

    def parse_request(self) -> bool:
        """http.server's, for a plain HTTP/1.x request line, without the email package
        (half the server's time on a small call): ``Name: value`` headers into a
        case-insensitive mapping, the first of a repeated name kept, as email's
        get() gives it; 431 past 100 headers or a line over 64 KB, 400 for a line that
        is not a header. Any other request line is the stdlib's to parse or refuse."""
        self.requestline = line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = line.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return bool(super().parse_request())
        self.command, self.path, self.request_version = words
        headers = _Headers()
        for _ in range(101):
            raw = self.rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, colon, value = raw.decode("iso-8859-1").partition(":")
            if len(raw) > 65536 or not colon or not name or name != name.strip():
                self.send_error(431 if len(raw) > 65536 else 400, "Bad header line")
                return False
            headers.setdefault(name.lower(), value.strip())
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers   # type: ignore[assignment]
        connection = headers.get("Connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive")
        return True   # (a client that waits for "100 Continue" has it from the loop)

    def do_POST(self) -> None:
        """Serve ``/api/<method>`` (GET and POST alike, as luigid does), the status
        page at ``/`` (Luigi's address of it redirects there) and ``/metrics``."""
        path, _, query = self.path.partition("?")
        server = self.server.microflow_server   # type: ignore[attr-defined]
        refused = server.refusal(self.headers, self.command,
                                 path[len("/api/"):] if path.startswith("/api/") else None)
        if refused is not None:   # before the body is read: the connection is closed
            self.close_connection = True
            _log.warning("refused %s %s from %s: %s", self.command, path,
                         self.address_string(), refused[1])
            return self._reply(refused[0], {"error": refused[1]})
        if path.startswith("/api/"):
            return self._api(server, path[len("/api/"):], query)
        if path in ("/static/visualiser/index.html", "/static/visualiser/"):
            self.send_response(302)   # the browser keeps the #fragment (Luigi's view)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if path == "/metrics":
            if not server.allowed(self._credentials()):
                return self._reply(401, {"error": "/metrics: this scheduler needs a token"})
            return self._send(200, server.metrics_text().encode(),
                              "text/plain; version=0.0.4; charset=utf-8")
        if path == "/favicon.ico":   # browsers ask; the page has none
            return self.do_HEAD()
        if path in ("/", "/index.html"):
            page, headers = _status_page()
            return self._send(200, page, "text/html; charset=utf-8", headers)
        self._reply(404, {"error": f"no page at {path}", "page": "/",
                          "api": "/api/<method>", "metrics": "/metrics"})

    do_GET = do_POST

    def _api(self, server: SchedulerServer, method: str, query: str) -> None:
        import urllib.parse
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return self._reply(400, {"error": "Content-Length is not a number"})
        if length > _MAX_REQUEST_BYTES or length < 0:
            self.close_connection = True
            return self._reply(413, {"error": f"request body over {_MAX_REQUEST_BYTES} "
                                              f"bytes"})
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        as_json = (self.headers.get("Content-Type") or "").startswith("application/json")
        fields = urllib.parse.parse_qs(query)
        if not as_json:   # luigid's form, data=<JSON>; microflow's client sends batches
            fields.update(urllib.parse.parse_qs(body))   # as JSON (no decoding twice)
        try:
            params = json.loads(body if as_json else fields.get("data", ["{}"])[-1])
        except ValueError as exc:
            return self._reply(400, {"error": f"the data field is not JSON: {exc}"})
        except RecursionError:   # nested past the parser's depth: refused, not crashed
            return self._reply(400, {"error": "the data field is nested too deeply"})
        self._reply(*server.call(method, params, self._credentials()))

    def do_HEAD(self) -> None:
        """Health checks: 204, no body."""
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _credentials(self) -> bytes | None:
        """The token offered: a bearer token, or the password of basic auth."""
        import base64
        kind, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if kind.lower() == "bearer":
            return value.strip().encode()
        if kind.lower() == "basic":
            try:
                return base64.b64decode(value.strip(), validate=True).partition(b":")[2]
            except ValueError:
                return None
        return None

    def _reply(self, status: int, body: Any) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="microflow"'} if status == 401 else {}
        self._send(status, json.dumps(body).encode(), "application/json; charset=UTF-8",
                   headers)

    def _send(self, status: int, data: bytes, content_type: str,
              headers: Mapping[str, str] | None = None) -> None:
        """Send ``data``, gzipped when the client accepts it and it is worth it: the
        status line, headers and body in one write (logged at DEBUG only)."""
        lines = [f"{self.protocol_version} {status} {self.responses[status][0]}",
                 f"Server: {self.version_string()}", f"Date: {self.date_time_string()}",
                 f"Content-Type: {content_type}", "Vary: Accept-Encoding"]
        if len(data) > 1400 and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            import gzip
            data = gzip.compress(data, 5)   # outside the scheduler's lock
            lines.append("Content-Encoding: gzip")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"Content-Length: {len(data)}")
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        if _log.isEnabledFor(10):
            self.log_request(status, len(data))

    def log_message(self, format: str, *args: Any) -> None:   # at DEBUG, not on stderr
        _log.debug("%s %s", self.address_string(), format % args)   # (the stdlib's names)


def _request_handler() -> type:
    """The HTTP handler class: _HandlerMethods on http.server's request handler."""
    import http.server
    return type("_Handler", (_HandlerMethods, http.server.BaseHTTPRequestHandler), {})


# The end of a request's head (a blank line), and the fields the serving loop reads
# before the handler does: how long the body is, and whether the client waits for 100.
_HEAD_END = re.compile(rb"\n\r?\n")
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*([0-9]{1,12})[ \t]*\r?\n", re.I)
_EXPECT_CONTINUE = re.compile(rb"\nexpect:[ \t]*100-continue[ \t]*\r?\n", re.I)
# The most a head may hold before the handler refuses it: 101 lines of 64 KB.
_MAX_HEAD_BYTES = 101 * 65537
# selectors' EVENT_READ and EVENT_WRITE (that module is imported when a server starts).
_READABLE, _WRITABLE = 1, 2


class _Connection:
    """A client's connection to the serving loop: the bytes it sent that are not yet
    answered, and the replies not yet sent."""

    __slots__ = ("sock", "address", "received", "unsent", "closing", "ended", "continued",
                 "events")

    def __init__(self, sock: Any, address: Any) -> None:
        self.sock, self.address = sock, address
        self.received, self.unsent = bytearray(), bytearray()
        self.closing = False     # to close once the replies are sent (no more requests)
        self.ended = False       # the client sent all it will (half-closed its end)
        self.continued = False   # "100 Continue" sent for the request being received
        self.events = _READABLE   # what the loop waits for: to read, or to write

    def take_request(self) -> bytes | None:
        """The next whole request received (head and body), or None until it is."""
        received = self.received
        end = _HEAD_END.search(received)
        if end is None:
            if len(received) <= _MAX_HEAD_BYTES:
                return None
            whole = len(received)   # the handler refuses it: a line or a head too long
        else:
            length = _CONTENT_LENGTH.search(received, 0, end.end())
            size = int(length.group(1)) if length else 0
            whole = end.end() + (size if size <= _MAX_REQUEST_BYTES else 0)   # else 413
            if len(received) < whole:
                if not self.continued and _EXPECT_CONTINUE.search(received, 0, end.end()):
                    self.unsent += b"HTTP/1.1 100 Continue\r\n\r\n"   # send the body now
                    self.continued = True
                return None
        request = bytes(received[:whole])
        del received[:whole]
        self.continued = False
        return request


class _ServingLoop:
    """SchedulerServer's HTTP server: one thread serves every connection from a
    selector, and answers each request where it arrived, once its head and body are in.
    A thread per connection (http.server's way) costs a hand-off per request (a thread
    woken, the interpreter's lock passed on), and with many workers on few cores the
    hand-offs cost more than the calls. Nothing here blocks: the scheduler's calls are
    quick, a slow client's bytes wait in its buffer, and a client is answered only as
    fast as its replies leave. The same surface as socketserver's: serve_forever,
    shutdown, server_close."""

    def __init__(self, address: str, port: int, handler: type,
                 microflow_server: SchedulerServer) -> None:
        import selectors
        import socket
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.socket = socket.create_server((address, port), family=family, backlog=128)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.microflow_server = microflow_server   # the handler's way to the scheduler
        self._handler: type[_HandlerMethods] = handler
        self._selector = selectors.DefaultSelector()
        self._wake, self._waker = socket.socketpair()   # shutdown() from another thread
        self._stopping = False
        self._stopped = threading.Event()

    def fileno(self) -> int:
        """The listening socket's (read each time: a test may wrap it in TLS)."""
        return int(self.socket.fileno())

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until shutdown() is called from another thread."""
        selector = self._selector
        self._stopped.clear()
        selector.register(self, _READABLE)
        selector.register(self._wake, _READABLE)
        try:
            while not self._stopping:
                for key, events in selector.select(poll_interval):
                    if key.data is not None:
                        self._receive(key.data, events)
                        self._serve(key.data)
                    elif key.fileobj is self:
                        self._accept()
                    else:
                        self._wake.recv(64)
        finally:
            selector.unregister(self)
            selector.unregister(self._wake)
            self._stopping = False
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever() and wait for it to return."""
        self._stopping = True
        self._waker.send(b"x")
        self._stopped.wait()

    def server_close(self) -> None:
        """Close every connection, and the listening socket."""
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                self._close(key.data)
        self._selector.close()
        for sock in (self.socket, self._wake, self._waker):
            sock.close()

    def _accept(self) -> None:
        import socket
        try:
            sock, address = self.socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:   # the client left at once, or failed a TLS handshake
            _log.debug("a connection was not accepted: %s", exc)
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # replies leave now
        self._selector.register(sock, _READABLE, _Connection(sock, address))

    def _receive(self, connection: _Connection, events: int) -> None:
        """Read what arrived; at the end of what the client sends, answer what it sent
        and close."""
        if not events & _READABLE:
            return
        try:   # at most 64 KB a call: a larger buffer is a fresh mmap (25 us, not 5)
            data = connection.sock.recv(65536)
            while getattr(connection.sock, "pending", int)():   # TLS: more decrypted
                data += connection.sock.recv(65536)
        except OSError as exc:
            if not _would_block(exc):   # reset by the client: nothing more to answer
                connection.closing = True
            return
        connection.received += data
        connection.ended = not data

    def _serve(self, connection: _Connection) -> None:
        """Answer the whole requests received, in order, each once the replies before it
        have left (a client that does not read its replies is not answered further:
        they would pile up here); then close, or wait to send the rest, or to read."""
        while not connection.closing and self._flush(connection):
            request = connection.take_request()
            if request is None:
                break
            self._answer(connection, request)
        self._flush(connection)
        connection.closing |= connection.ended
        if connection.closing and not connection.unsent:
            return self._close(connection)
        events = _WRITABLE if connection.unsent else _READABLE
        if events != connection.events:
            connection.events = events
            self._selector.modify(connection.sock, events, connection)

    def _answer(self, connection: _Connection, request: bytes) -> None:
        """One request through the handler; its reply joins the connection's unsent."""
        try:
            reply, connection.closing = self._handler.answer(self, connection.address,
                                                             request)
        except Exception:   # a defect: said, and this connection closed, the rest served
            _log.exception("the scheduler failed to answer %s", connection.address)
            reply, connection.closing = b"", True
        connection.unsent += reply

    def _flush(self, connection: _Connection) -> bool:
        """Send what the socket takes now; whether all has left."""
        unsent = connection.unsent
        if unsent:
            try:
                del unsent[:connection.sock.send(unsent)]
            except OSError as exc:
                if not _would_block(exc):   # the client is gone: nobody to send to
                    connection.closing = True
                    unsent.clear()
        return not unsent

    def _close(self, connection: _Connection) -> None:
        try:
            self._selector.unregister(connection.sock)
        except (KeyError, ValueError):
            pass
        connection.sock.close()


def _would_block(exc: OSError) -> bool:
    """Whether a non-blocking socket's error means "not now" (TLS's too)."""
    return isinstance(exc, (BlockingIOError, InterruptedError)) or \
        type(exc).__name__ in ("SSLWantReadError", "SSLWantWriteError")


###########################################################################################
# Remote scheduler: the client, over a small HTTP/1.1 exchange of its own
###########################################################################################

# Calls whose reply the worker never reads: the client may hold them back and send
# them with the next call that needs a reply (in one request, where batches exist).
_BUFFERED_METHODS = frozenset((
    "add_task", "add_worker", "announce_scheduling_failure", "set_task_status_message",
    "set_task_progress_percentage", "decrease_running_task_resources",
    "add_scheduler_message_response"))
_MAX_BATCH = 1000


def _remote_method(name: str) -> Callable[..., Any]:
    """A RemoteScheduler method: ``name`` called on the server, positional arguments
    named as Scheduler names them."""
    def call(self: RemoteScheduler, *args: Any, **kwargs: Any) -> Any:
        if args:
            bound = _signature(name).bind_partial(None, *args)
            kwargs.update(list(bound.arguments.items())[1:])
        return self._call(name, kwargs)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(Scheduler, name).__doc__
    return call


# The client's remote methods, one per name of _RPC_METHODS (the one list, which the
# server serves): a base class, so a subclass's override may call super().get_work().
if TYPE_CHECKING:   # the same methods as the scheduler's, as checkers see them
    _RemoteMethods = Scheduler
else:
    _RemoteMethods = type("_RemoteMethods", (), {name: _remote_method(name)
                                                 for name in _RPC_METHODS})


class RemoteScheduler(_RemoteMethods):
    """The client of a central scheduler (microflow's server or luigid): the same
    methods as Scheduler, over a kept-alive connection (one per thread).

    Reports whose reply nobody reads (add_task, status messages, ...) are held back
    and sent with the next call that needs a reply, in one ``batch`` request when
    the server offers it (``batch=False``: one request per call, as Luigi's client
    does); call flush() to send them at once. A call that cannot connect or times
    out is retried ``attempts`` times with a growing wait, then raises
    SchedulerUnavailable naming the URL and method; a refusal (HTTP 4xx) raises
    SchedulerError at once.
    """

    remote = True   # over a network: the worker polls it rather than reading its options

    def __init__(self, url: str = "http://localhost:8082", token: str | None = None,
                 connect_timeout: float = 10.0, timeout: float = 60.0, attempts: int = 3,
                 retry_wait: float = 1.0, sleep: Callable[[float], None] | None = None,
                 batch: bool = True) -> None:
        import urllib.parse
        parts = urllib.parse.urlsplit(url if "//" in url else "http://" + url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"scheduler URL {url!r}: expected http:// or https://")
        self._authority = f"{_url_host(str(parts.hostname))}:{parts.port or 8082}"   # Host:
        self.url = f"{parts.scheme}://{self._authority}{parts.path}"
        self._https = parts.scheme == "https"
        self._host: Any = parts.hostname   # as connect() takes it: an IPv6 one unbracketed
        self._port = parts.port or 8082
        self._prefix = parts.path.rstrip("/")
        token = token or parts.password
        self._headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeouts = (connect_timeout, timeout)
        self._attempts, self._retry_wait = max(1, attempts), retry_wait
        self._sleep = sleep or time.sleep
        self._local = threading.local()
        self._connections: list[Any] = []   # every thread's, for close()
        self._batching = None if batch else False   # None: not known yet
        self._buffer: list[list[Any]] = []
        self._buffer_lock = threading.Lock()

    def _connection(self) -> _Wire:
        connection: _Wire | None = getattr(self._local, "connection", None)
        if connection is not None and connection.closed:   # the server closed it
            self._drop_connection()
            connection = None
        if connection is None:
            connection = _Wire(self._host, self._port, self._https, self._timeouts)
            self._local.connection = connection
            with self._buffer_lock:
                self._connections.append(connection)
        return connection

    def _call(self, method: Any, params: Any) -> Any:
        """Call ``method``: a report whose reply nobody reads waits in the buffer; any
        other call takes the buffer with it, in one ``batch`` request where the server
        offers it (microflow's does, luigid does not)."""
        if method in _BUFFERED_METHODS and self._batching is not False:
            with self._buffer_lock:
                self._buffer.append([method, params])
                if len(self._buffer) < _MAX_BATCH:
                    return None
            method, params = None, None   # a full buffer: send it now
        with self._buffer_lock:
            calls, self._buffer = self._buffer, []
        if not calls:
            return self._request(method, params)
        if method is not None:
            calls.append([method, params])
        return self._send_batch(calls)

    def start_pinging(self, worker: str, interval: float) -> threading.Event:
        """Ping every ``interval`` seconds for ``worker`` from a thread, so a worker busy
        on a long task is not taken for dead; returns the Event that stops it."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    reply = self.ping(worker=worker) or {}
                except MicroflowError as exc:
                    _log.warning("ping failed: %s", exc)
                    continue
                for message in reply.get("rpc_messages") or ():   # not acted on yet
                    _log.warning("the scheduler sent %s; microflow's worker ignores it",
                                 message.get("name"))
        threading.Thread(target=beat, name="microflow-heartbeat", daemon=True).start()
        return stop

    def flush(self) -> None:
        """Send the buffered reports now."""
        self._call("is_paused", {}) if self._buffer else None

    def _send_batch(self, calls: list[list[Any]]) -> Any:
        """Send ``calls`` in one request (or one by one where batches are not offered);
        the last call's response. Raises SchedulerError for a refused call."""
        if self._batching is not False:
            label = f"{calls[-1][0]} (sent with {len(calls) - 1} reports before it)"
            try:
                replies = self._request("batch", {"calls": calls}, label)
                self._batching = True
            except SchedulerError as exc:
                if self._batching or "HTTP 404" not in str(exc):
                    raise
                self._batching = False   # luigid: no batches, then
            else:
                for (method, _), (status, body) in zip(calls, replies):
                    if status != 200:
                        raise SchedulerError(f"{self.url}/api/{method} (in a batch): HTTP "
                                             f"{status}: {body.get('error')}")
                return replies[-1][1].get("response") if replies else None
        response = None
        for method, params in calls:
            response = self._request(method, params)
        return response

    def _request(self, method: str, params: Any, label: str | None = None) -> Any:
        """POST ``params`` to ``/api/method``; the reply's ``response``. Errors name
        ``label`` (default: the method)."""
        if method == "batch":   # only microflow's server has it: the JSON as it is
            body = json.dumps(params, separators=(",", ":")).encode()
            headers = dict(self._headers, **{"Content-Type": "application/json"})
        else:                   # luigid's form: data=<JSON>
            body, headers = _form_data(params), self._headers
        head = (f"POST {self._prefix}/api/{method} HTTP/1.1\r\nHost: {self._authority}"
                "\r\n" + "".join(f"{name}: {value}\r\n" for name, value in
                                               headers.items()) +
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        problem: object = None
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._retry_wait * 2 ** (attempt - 1))
            try:
                status, data = self._connection().exchange(head + body)
            except (OSError, ValueError) as exc:
                self._drop_connection()   # a new connection next time
                problem = exc
                self._say_retry(label or method, attempt, problem)
                continue
            if status == 200:
                return json.loads(data)["response"]
            message = _error_text(data)
            if status == 401:
                why = ("the token given is not its token" if "Authorization" in
                       self._headers else "it needs a token")
                raise SchedulerError(f"the scheduler at {self.url} refused {method} (HTTP "
                                     f"401): {why} (MICROFLOW_SCHEDULER_TOKEN, or "
                                     f"http://any:TOKEN@host:port as the URL)")
            if status < 500:
                raise SchedulerError(f"{self.url}/api/{method}: HTTP {status}: {message}")
            problem = f"HTTP {status}: {message}"
            self._say_retry(label or method, attempt, problem)
        raise SchedulerUnavailable(f"the scheduler at {self.url} did not answer "
                                   f"{label or method} after {self._attempts} attempt(s): "
                                   f"{problem}")

    def _drop_connection(self) -> None:
        connection, self._local.connection = getattr(self._local, "connection", None), None
        if connection is not None:
            connection.close()
            with self._buffer_lock, contextlib.suppress(ValueError):
                self._connections.remove(connection)

    def _say_retry(self, method: str, attempt: int, problem: object) -> None:
        """Warn that a call failed and will be tried again (so a scheduler briefly
        away is seen at once, not only when the worker gives up)."""
        if attempt + 1 < self._attempts:
            _log.warning("the scheduler at %s did not answer %s (attempt %d of %d: %s); "
                         "trying again in %g s", self.url, method, attempt + 1,
                         self._attempts, problem, self._retry_wait * 2 ** attempt)

    def close(self) -> None:
        """Close the connections this client opened, from every thread."""
        with self._buffer_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local.connection = None


def _form_data(params: Any) -> bytes:
    """``data=<params as JSON>``, form-encoded as luigid reads it. json.dumps writes
    ASCII, so escaping the characters the form encoding gives a meaning (``%``, ``&``,
    ``+``, ``=``, space) is enough: urlencode() quotes byte by byte, in Python, and cost
    a fifth of a call through the server."""
    text = json.dumps(params, separators=(",", ":")).replace("%", "%25").replace(
        "&", "%26").replace("+", "%2B").replace("=", "%3D").replace(" ", "+")
    return b"data=" + text.encode("ascii")


class _Wire:
    """One kept-alive HTTP/1.1 connection of RemoteScheduler: a request out in one
    write, the reply read back (by Content-Length, chunked, or to the close), without
    http.client and the email package (more than half a small call's time on the
    client). A reply that is not HTTP raises ValueError; the socket's errors OSError."""

    def __init__(self, host: str, port: int, https: bool,
                 timeouts: tuple[float, float]) -> None:
        import socket
        sock = socket.create_connection((host, port), timeout=timeouts[0])
        if https:
            import ssl
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        sock.settimeout(timeouts[1])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._reader = sock, sock.makefile("rb")
        self.closed = False

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request``; ``(the reply's status, its body)``."""
        if self.closed:
            raise OSError("connection closed by the server")
        self._sock.sendall(request)
        reader = self._reader
        status_line = reader.readline(65537).split(None, 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP reply: {b' '.join(status_line)[:80]!r}")
        headers = {}
        while True:
            line = reader.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            body = reader.read(length)
            if len(body) < length:
                raise OSError(f"the reply ended after {len(body)} of {length} bytes")
        elif headers.get(b"transfer-encoding") == b"chunked":
            body = self._chunks()
        else:
            body, self.closed = reader.read(), True
        self.closed |= headers.get(b"connection") == b"close"
        return int(status_line[1]), body

    def _chunks(self) -> bytes:
        parts = []
        while True:
            size = int(self._reader.readline(65537).split(b";")[0], 16)
            parts.append(self._reader.read(size))
            self._reader.readline(65537)
            if not size:
                return b"".join(parts)

    def close(self) -> None:
        self.closed = True
        self._reader.close()
        self._sock.close()


def _error_text(data: bytes) -> str:
    """The ``error`` of a JSON error reply, or the start of whatever came back."""
    try:
        return str(json.loads(data)["error"])
    except (ValueError, KeyError, TypeError):
        return data[:200].decode("utf-8", "replace")


###########################################################################################
# Seeing a run: Prometheus metrics and the status page, served by SchedulerServer
###########################################################################################

class _Metrics:
    """What ``GET /metrics`` shows, in Prometheus' text format written by hand: task
    counts by status and workers alive (read at scrape time); tasks started, done,
    failed and disabled per family, under the names of Luigi's Prometheus collector
    (``luigi_task_*``), and their durations (a listener on the scheduler's
    transitions); the calls the server served and the time each held the scheduler."""

    _DURATION_BUCKETS = (0.1, 1.0, 10.0, 60.0, 600.0, 3600.0)
    _CALL_BUCKETS = (0.0001, 0.001, 0.01, 0.1, 1.0)
    _COUNTERS = {RUNNING: "luigi_task_started_total", DONE: "luigi_task_done_total",
                 FAILED: "luigi_task_failed_total", DISABLED: "luigi_task_disabled_total"}
    _HELP = {RUNNING: "tasks started", DONE: "tasks done", FAILED: "tasks failed",
             DISABLED: "tasks disabled"}

    def __init__(self, scheduler: _SchedulerCore) -> None:
        self._scheduler = scheduler
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._last_time: dict[str, float] = {}   # family -> seconds its last run took
        self._durations: dict[str, list[float]] = {}   # family -> histogram of run times
        self._calls: dict[str, list[float]] = {}       # method -> histogram of lock times
        if hasattr(scheduler, "subscribe"):    # a scheduler of one's own may not
            scheduler.subscribe(self._heard, ("status",))

    def _heard(self, event: str, task: _TaskState, old: Any, new: Any) -> None:
        metric = self._COUNTERS.get(new)
        if metric is None:
            return
        self._counts[metric, task.family] += 1
        if new != RUNNING and old == RUNNING and task.time_running is not None:
            took = max(0.0, self._scheduler._clock() - task.time_running)
            self._last_time[task.family] = took
            _observe(self._durations, task.family, took, self._DURATION_BUCKETS)

    def called(self, method: str, seconds: float) -> None:
        """Count one call the server served, and how long it held the scheduler."""
        _observe(self._calls, method, seconds, self._CALL_BUCKETS)

    def text(self) -> str:
        """Every metric, in Prometheus' text exposition format (version 0.0.4)."""
        out: list[str] = []
        tasks = getattr(self._scheduler, "_tasks", {})
        by_status = collections.Counter(task.status for task in tasks.values())
        _metric(out, "microflow_tasks", "gauge", "tasks the scheduler knows, by status",
                {(("status", status),): by_status.get(status, 0) for status in _STATUSES})
        _metric(out, "microflow_workers_alive", "gauge", "workers the scheduler knows",
                {(): len(getattr(self._scheduler, "_workers", ()))})
        for status, metric in self._COUNTERS.items():
            _metric(out, metric, "counter", self._HELP[status] + ", by family",
                    {(("family", family),): count for (name, family), count
                     in sorted(self._counts.items()) if name == metric})
        _metric(out, "luigi_task_execution_time_seconds", "gauge", "seconds the last "
                "run of each family took", {(("family", family),): seconds for family,
                                            seconds in sorted(self._last_time.items())})
        _histogram(out, "microflow_task_duration_seconds", "seconds tasks ran, by family",
                   "family", self._durations, self._DURATION_BUCKETS)
        _histogram(out, "microflow_scheduler_call_seconds", "calls served and the "
                   "seconds each held the scheduler, by method", "method", self._calls,
                   self._CALL_BUCKETS)
        return "\n".join(out) + "\n"


def _observe(histograms: dict[Any, list[float]], key: Any, value: float,
             buckets: Sequence[float]) -> None:
    """Add ``value`` to the histogram of ``key``: ``[count per bucket ..., +Inf, sum]``."""
    counts = histograms.get(key)
    if counts is None:
        counts = histograms[key] = [0] * (len(buckets) + 1) + [0.0]
    counts[bisect.bisect_left(buckets, value)] += 1
    counts[-1] += value


def _labels(pairs: Sequence[tuple[str, Any]]) -> str:
    """``{name="value",...}``, each value escaped as the format asks."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_label_value(value)}"' for name, value in pairs) + "}"


def _label_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _metric(out: list[str], name: str, kind: str, help_text: str,
            samples: Mapping[Any, Any]) -> None:
    out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    out += [f"{name}{_labels(pairs)} {value:g}" if isinstance(value, float)
            else f"{name}{_labels(pairs)} {value}" for pairs, value in samples.items()]


def _histogram(out: list[str], name: str, help_text: str, label: str,
               histograms: Mapping[Any, list[float]], buckets: tuple[float, ...]) -> None:
    out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for key, counts in sorted(histograms.items()):
        total = 0.0
        for bound, count in zip(buckets + (float("inf"),), counts):
            total += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f"{name}_bucket{_labels(((label, key), ('le', le)))} {total}")
        out.append(f"{name}_sum{_labels(((label, key),))} {counts[-1]:g}")
        out.append(f"{name}_count{_labels(((label, key),))} {total}")


def _status_page() -> tuple[bytes, dict[str, str]]:
    """The page's bytes and headers (made once). Its Content-Security-Policy lets only
    its own script run (by hash: no inline handler, nothing injected) and lets it talk
    only to this server."""
    global _PAGE
    if _PAGE is None:
        import base64
        import hashlib
        script = _PAGE_HTML.split("<script>", 1)[1].split("</script>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        _PAGE = _PAGE_HTML.encode(), {
            "Content-Security-Policy": f"default-src 'none'; script-src 'sha256-{digest}'; "
                                       f"style-src 'unsafe-inline'; connect-src 'self'; "
                                       f"img-src 'self'; base-uri 'none'; form-action "
                                       f"'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    return _PAGE


_PAGE: tuple[bytes, dict[str, str]] | None = None


###########################################################################################
# Run summary, build() and exit codes
###########################################################################################

class LuigiStatusCode(enum.Enum):
    """How a run went, as ``(smiley, reason)``; the summary's last line. Luigi's names."""

    SUCCESS = (":)", "there were no failed tasks or missing dependencies")
    SUCCESS_WITH_RETRY = (":)", "there were failed tasks but they all succeeded in a retry")
    FAILED = (":(", "there were failed tasks")
    FAILED_AND_SCHEDULING_FAILED = (":(", "there were failed tasks and tasks whose "
                                          "scheduling failed")
    SCHEDULING_FAILED = (":(", "there were tasks whose scheduling failed")
    NOT_RUN = (":|", "there were tasks that were not granted run permission by the "
                     "scheduler")
    MISSING_EXT = (":|", "there were missing external dependencies")


#: microflow's name for :class:`LuigiStatusCode`.
StatusCode = LuigiStatusCode

# Summary categories in print order, with their headings; the ones after
# "still_pending" are its sub-items.
_SUMMARY_HEADINGS = (
    ("already_done", "complete ones were encountered"),
    ("completed", "ran successfully"),
    ("failed", "failed"),
    ("scheduling_error", "failed scheduling"),
    ("still_pending", "were left pending, among these"),
    ("still_pending_ext", "were missing external dependencies"),
    ("run_by_other_worker", "were being run by another worker"),
    ("upstream_failure", "had failed dependencies"),
    ("upstream_missing_dependency", "had missing dependencies"),
    ("upstream_run_by_other_worker", "had dependencies that were being run by other worker"),
    ("upstream_scheduling_error", "had dependencies whose scheduling failed"),
    ("not_run", "was not granted run permission by the scheduler"),
)
_PENDING_SUBCATEGORIES = {name for name, _ in _SUMMARY_HEADINGS[5:]}

# Luigi's words, so the tools and people that look for them in logs find them.
_SUMMARY_BANNER = "===== Luigi Execution Summary ====="


def _partition(record: _RunRecord, others: Mapping[str, Any]) -> dict[str, set[str]]:
    """Sort the tasks a worker reported into the summary categories (sets of task ids),
    by what each was ever reported as (Luigi's rules, from its add_task history)."""
    names = ("completed", "already_done", "ever_failed", "failed", "scheduling_error",
             "still_pending_ext", "still_pending_not_ext", "upstream_failure",
             "upstream_missing_dependency", "upstream_run_by_other_worker",
             "upstream_scheduling_error", "not_run")
    sets: dict[str, set[str]] = {name: set() for name in names}
    for task_id, bits in record.reported.items():
        completed = bits & _REPORTED_DONE and bits & _REPORTED_PENDING
        if completed:
            sets["completed"].add(task_id)
        elif bits & _REPORTED_DONE:
            sets["already_done"].add(task_id)
        if bits & _REPORTED_FAILED:
            sets["ever_failed"].add(task_id)
            if not completed:
                sets["failed"].add(task_id)
        if bits & _REPORTED_UNKNOWN:
            sets["scheduling_error"].add(task_id)
        elif bits & _REPORTED_PENDING and not completed and not bits & _REPORTED_FAILED:
            if bits & _REPORTED_RUNNABLE:
                sets["still_pending_not_ext"].add(task_id)
            if bits & _REPORTED_NOT_RUNNABLE or not bits & _REPORTED_RUNNABLE:
                sets["still_pending_ext"].add(task_id)
    # Seen running elsewhere, but not if it ended complete here (taken over after the
    # other worker died, or found done): Luigi lists those twice.
    sets["run_by_other_worker"] = set().union(*others.values()) - sets["completed"] \
        - sets["already_done"]
    _classify_pending(sets, record.scheduled, record.walked)
    return sets


def _other_workers(record: _RunRecord) -> dict[str, set[str]]:
    """``{other worker id: {ids of tasks it was running that we wanted}}``."""
    others: dict[str, set[str]] = {}
    for reply in record.idle_replies:
        for running in reply.get("running_tasks") or ():
            task_id = running.get("task_id")
            if running.get("worker") != record.worker_id and task_id in record.scheduled:
                others.setdefault(running["worker"], set()).add(task_id)
    return others


def _classify_pending(sets: dict[str, set[str]], scheduled: Mapping[str, Task],
                      walked: Mapping[str, Sequence[Task]]) -> None:
    """Say why each runnable pending task did not run: post-order over dependencies
    (as walked: asking requires() again would make every dependency anew)."""
    pending = sets["still_pending_not_ext"]

    def deps_of(task_id: str) -> list[str]:
        deps = walked.get(task_id)
        return [dep.task_id for dep in (scheduled[task_id].deps() if deps is None
                                        else deps)]
    upstream_rules = (
        ("upstream_failure", ("ever_failed", "upstream_failure")),
        ("upstream_missing_dependency", ("still_pending_ext", "upstream_missing_dependency")),
        ("upstream_run_by_other_worker", ("run_by_other_worker",
                                          "upstream_run_by_other_worker")),
        ("upstream_scheduling_error", ("scheduling_error",)),
    )
    visited: set[str] = set()
    for root in pending:
        stack: list[tuple[str, list[str] | None]] = [(root, None)]
        while stack:
            task_id, deps = stack.pop()
            if deps is None:   # first met: its pending dependencies are classified first
                if task_id in visited:
                    continue
                visited.add(task_id)
                deps = deps_of(task_id)
                stack.append((task_id, deps))
                stack.extend((dep, None) for dep in deps
                             if dep in pending and dep not in visited)
                continue
            reasons = [name for name, sources in upstream_rules
                       if any(not sets[source].isdisjoint(deps) for source in sources)]
            for name in reasons:
                sets[name].add(task_id)
            if not reasons and task_id not in sets["run_by_other_worker"]:
                sets["not_run"].add(task_id)


def _status_of(sets: Mapping[str, set[str]]) -> LuigiStatusCode:
    if sets["ever_failed"]:
        if not sets["failed"]:
            return LuigiStatusCode.SUCCESS_WITH_RETRY
        if sets["scheduling_error"]:
            return LuigiStatusCode.FAILED_AND_SCHEDULING_FAILED
        return LuigiStatusCode.FAILED
    if sets["scheduling_error"]:
        return LuigiStatusCode.SCHEDULING_FAILED
    if sets["not_run"]:
        return LuigiStatusCode.NOT_RUN
    if sets["still_pending_ext"]:
        return LuigiStatusCode.MISSING_EXT
    return LuigiStatusCode.SUCCESS


def _summary_wrap(text: str) -> str:
    """``text`` between the summary's banners."""
    return f"\n{_SUMMARY_BANNER}\n\n{text}\n\n{_SUMMARY_BANNER}\n"


def _one_line_summary(status: LuigiStatusCode) -> str:
    return "This progress looks {} because {}".format(*status.value)


def _format_summary(sets: Mapping[str, set[str]], others: Mapping[str, Any],
                    record: _RunRecord) -> str:
    """The summary text between the banners, laid out as Luigi lays it out."""
    by_family = {name: _group_by_family(record.scheduled[i] for i in ids)
                 for name, ids in sets.items()}
    counted = ("already_done", "completed", "failed", "scheduling_error",
               "still_pending_ext", "still_pending_not_ext")
    total = sum(len(sets[name]) for name in counted)
    if total == 0:
        return "Did not schedule any tasks"
    lines = [f"Scheduled {total} tasks of which:\n"]
    for name, heading in _SUMMARY_HEADINGS:
        count = (len(sets["still_pending_ext"]) + len(sets["still_pending_not_ext"])
                 if name == "still_pending" else len(sets[name]))
        if not count:
            continue
        indent = "    " if name in _PENDING_SUBCATEGORIES else ""
        if name == "not_run" and record.interrupted:   # not the scheduler's doing
            heading = "were not started: the run was interrupted"
        lines.append(f"{indent}* {count} {heading}:\n")
        if name != "still_pending":
            lines.append(_family_lines(by_family[name], name in _PENDING_SUBCATEGORIES) + "\n")
    if others:
        lines.append(_other_workers_text(others))
    idle = sum(len(sets[name]) for name in counted if name not in ("completed", "failed"))
    if total == idle:
        lines.append(("" if others else "\n") + "Did not run any tasks")
    lines.append("\n" + ("This progress looks :( because the run was interrupted"
                         if record.interrupted else _one_line_summary(_status_of(sets))))
    return "".join(lines)


def _other_workers_text(others: Mapping[str, Any]) -> str:
    text = "\nThe other workers were:\n"
    for count, (worker_id, tasks) in enumerate(others.items()):
        if 3 < count < len(others) - 1:
            text += f"    and {len(others) - count} other workers"
            break
        text += f"    - {worker_id} ran {len(tasks)} tasks\n"
    return text + "\n"


def _group_by_family(tasks: Iterable[Task]) -> dict[str, list[Task]]:
    by_class: dict[Any, list[Task]] = {}
    for task in tasks:
        by_class.setdefault(type(task), []).append(task)
    groups: dict[str, list[Task]] = {}
    for cls, members in by_class.items():
        groups.setdefault(cls.get_task_family(), []).extend(members)
    return groups


# ``[execution_summary]``, Luigi's luigi.execution_summary.execution_summary (the module's
# name here is microflow.execution_summary).
_SummaryOptions: Any = Register("execution_summary", (Config,), dict(
    __module__=__name__, __doc__="``[execution_summary]``: how many tasks of a family "
    "the summary names.", summary_length=IntParameter(default=5, description="tasks "
                                                      "named per family (0: all)")))


def _summary_length() -> Any:
    return _SummaryOptions().summary_length


def _family_lines(groups: Mapping[str, list[Task]], extra_indent: bool) -> str:
    """One line per family: ``- <count> <Family(params)>``, ranges as ``a...b``."""
    limit = _summary_length()
    prefix = " " * (8 if extra_indent else 4)
    lines: list[str] = []
    for family in sorted(groups):
        if limit > 0 and len(lines) >= limit:
            lines.append(prefix + "...")
            break
        tasks = _sorted_by_text(groups[family])
        lines.append(f"{prefix}- {len(tasks)} {_family_text(family, tasks)}")
    return "\n".join(lines)


def _sorted_by_text(tasks: Sequence[Any]) -> list[Task]:
    """The tasks ordered by ``str(task)``, as Luigi orders them in the summary.

    For one class printed by Task.__repr__ with a single significant public parameter,
    every text is ``Family(name=<value>)``: ordering by ``<value>)`` is the same order
    without building a hundred thousand strings.
    """
    cls: Any = type(tasks[0])
    if cls.__repr__ is Task.__repr__ and cls.__str__ is object.__str__ and all(
            type(task) is cls for task in tasks):
        significant = [name for name, param in cls.get_params() if param.significant]
        if len(significant) == 1 and significant[0] in tasks[0]._serialized:
            name = significant[0]
            return sorted(tasks, key=lambda task: task._serialized[name] + ")")
    return sorted(tasks, key=str)


def _family_text(family: str, tasks: Sequence[Any]) -> str:
    params = tasks[0].get_params()
    names_length = sum(len(name) for name, _ in params)
    first_text = str(tasks[0])
    if not params:
        return f"{family}()"
    if names_length > 60 or len(first_text) > 200 or (
            len(tasks) == 2 and len(params) > 1 and (names_length > 40
                                                     or len(first_text) > 100)):
        return f"{family}(...)"
    if len(params) == 1:
        return _single_param_text(family, tasks, *params[0])
    ranged = _ranged_multi_param_text(family, tasks, params)
    if ranged is not None:
        return ranged
    if len(tasks) == 1:
        return first_text
    if len(tasks) == 2:
        return f"{first_text} and {tasks[1]}"
    return f"{first_text} ..."


def _single_param_text(family: str, tasks: Sequence[Task], name: str,
                       param: Parameter[Any]) -> str:
    values = _distinct(getattr(task, name) for task in tasks)
    first, last = _range_ends(values, param)
    if first is not None and len(values) > 3:
        shown = f"{param.serialize(first)}...{param.serialize(last)}"
    else:
        shown = ""
        for count, task in enumerate(tasks):
            if (len(shown) >= 30 and count > 2 and count != len(tasks) - 1) or len(shown) > 200:
                shown += "..."
                break
            shown += param.serialize(getattr(task, name))
            if count < len(tasks) - 1:
                shown += ","
    return f"{family}({name}={shown})"


def _ranged_multi_param_text(family: str, tasks: Sequence[Task],
                             params: Sequence[tuple[str, Parameter[Any]]]) -> str | None:
    varying = [(name, param) for name, param in params
               if len(_distinct(getattr(task, name) for task in tasks)) > 1]
    if len(varying) != 1:
        return None
    name, param = varying[0]
    values = _distinct(getattr(task, name) for task in tasks)
    first, last = _range_ends(values, param)
    if first is None or len(values) <= 2:
        return None
    shown = ", ".join(
        f"{n}={param.serialize(first)}...{param.serialize(last)}" if n == name
        else f"{n}={p.serialize(getattr(tasks[0], n))}" for n, p in params)
    return f"{family}({shown})"


def _distinct(values: Iterable[Any]) -> Any:
    """Distinct values in first-seen order: a dict (fast ``in``) when they hash, else a
    list (a user's parameter type may not hash)."""
    values = list(values)
    try:
        return dict.fromkeys(values)
    except TypeError:
        unique = []
        for value in values:
            if value not in unique:
                unique.append(value)
        return unique


def _range_ends(values: Sequence[Any], param: Parameter[Any]) -> tuple[Any, Any]:
    """(first, last) if ``values`` are consecutive under next_in_enumeration, else
    (None, None)."""
    try:
        following = {value: param.next_in_enumeration(value) for value in values}
        next_values = set(following.values())
    except Exception:   # values that do not enumerate, or do not hash
        return None, None
    starts = [value for value in values if value not in next_values]
    ends = [value for value in next_values if value not in following]
    if len(starts) == 1 and len(ends) == 1:
        for value, next_value in following.items():
            if next_value == ends[0]:
                return starts[0], value
    return None, None


class RunResult:
    """What a build came to: ``status`` (a LuigiStatusCode), ``summary_text``,
    ``one_line_summary``, ``scheduling_succeeded``, ``tasks``, a dict from summary
    category (``completed``, ``failed``, ``already_done``, ``still_pending_ext``, ...)
    to the list of Tasks in it, sorted by task id, and ``errors``, a dict from each
    Task that failed (or failed scheduling) to why: its traceback, or what happened to
    its process ("timed out after 5 seconds", "was killed by SIGKILL", ...)."""

    _tasks = None   # the ``tasks`` dict, once built
    exit_code: int | None = None   # a command line's exit code, which it sets

    def __init__(self, worker: Any, scheduling_succeeded: bool = True) -> None:
        record = self._record = _record_of(worker)
        others = _other_workers(record)
        sets = _partition(record, others)
        self.worker = worker
        self.status = _status_of(sets)
        self.one_line_summary = _one_line_summary(self.status)
        # Made whether or not it is logged, as Luigi makes it: what a task raises when
        # its parameters are read (luigi-tools' global parameters) surfaces here.
        self.summary_text = _summary_wrap(_format_summary(sets, others, record))
        self.scheduling_succeeded = scheduling_succeeded
        self._sets = sets

    @property
    def tasks(self) -> dict[str, list[Task]]:
        """``{category: [Task, ...]}``, each list sorted by task id (built when first
        asked for: build() without detailed_summary never needs it)."""
        if self._tasks is None:
            scheduled = self._record.scheduled
            self._tasks = {name: [scheduled[i] for i in sorted(ids)]
                           for name, ids in self._sets.items()}
        return self._tasks

    @property
    def errors(self) -> dict[Task, str]:
        """``{Task: text}`` for every failure of this run, the last one per task."""
        scheduled = self._record.scheduled
        return {scheduled[task_id]: text for task_id, text in self._record.errors.items()}

    def __repr__(self) -> str:
        return (f"RunResult(status={self.status!r}, "
                f"scheduling_succeeded={self.scheduling_succeeded!r})")


LuigiRunResult = RunResult


def _record_of(worker: Any) -> _RunRecord:
    """The run record of ``worker``: microflow's Worker keeps one; a worker built on
    Luigi's (a library's own, driven through a worker_scheduler_factory) keeps Luigi's
    add_task and get_work histories, which are read into one."""
    record = getattr(worker, "record", None)
    if isinstance(record, _RunRecord):
        return record
    record = _RunRecord(getattr(worker, "_id", None))
    for task, status, runnable in getattr(worker, "_add_task_history", ()):
        record.scheduled.setdefault(task.task_id, task)
        bits = _REPORTED_BITS.get(status, 0)
        if status == PENDING:
            bits |= _REPORTED_RUNNABLE if runnable else _REPORTED_NOT_RUNNABLE
        record.reported[task.task_id] = record.reported.get(task.task_id, 0) | bits
    record.idle_replies = [reply for reply in getattr(worker, "_get_work_response_history",
                                                      ()) if reply.get("task_id") is None]
    return record


def summary(worker: Any) -> str:
    """The execution summary of ``worker``'s run, as build() logs it (Luigi's
    ``luigi.execution_summary.summary``)."""
    return RunResult(worker).summary_text


def _summary_dict(worker: Any) -> dict[str, set[Task]]:
    """``{category: set of Tasks}`` of ``worker``'s run, with Luigi's category names
    (Luigi's ``luigi.execution_summary._summary_dict``, which its users read)."""
    record = _record_of(worker)
    others = _other_workers(record)
    return {name: {record.scheduled[task_id] for task_id in ids}
            for name, ids in _partition(record, others).items()}

# [retcode] defaults. Luigi's are all 0 (a failed run exits 0); microflow uses the values
# Luigi's documentation recommends, so a failure is never silent.
_RETCODE_DEFAULTS = {"already_running": 10, "missing_data": 20, "not_run": 25,
                     "task_failed": 30, "scheduling_error": 35, "unhandled_exception": 40}


retcode = _options_class("retcode", _RETCODE_DEFAULTS, "The exit codes of a run (Luigi's "
                         "[retcode]): ``--retcode-task-failed 3`` on the command line too.")


def _retcode(name: str) -> int:
    code: int = getattr(retcode(), name)
    return code


def exit_code(result: RunResult, root_tasks: Iterable[Task] = ()) -> int:
    """The process exit code for a RunResult: the highest ``[retcode]`` that applies.

    0 only when every requested task ended complete.
    """
    tasks = result.tasks
    conditions = {"missing_data": tasks["still_pending_ext"], "task_failed": tasks["failed"],
                  "already_running": tasks["run_by_other_worker"],
                  "scheduling_error": tasks["scheduling_error"], "not_run": tasks["not_run"]}
    hits = [name for name, hit in conditions.items() if hit]
    code = max([_retcode(name) for name in hits] or [0])
    finished = {task.task_id for task in tasks["completed"] + tasks["already_done"]}
    # A requested task left incomplete with nothing above to explain it is "not run";
    # when something does explain it, that condition's code stands, even if it is 0.
    if not hits and any(task.task_id not in finished for task in root_tasks):
        code = _retcode("not_run")
    return code


class core(Config):
    """The ``[core]`` options as one Config object (Luigi's ``luigi.interface.core``):
    ``core().workers`` is the command line's ``--workers``, else ``[core] workers``,
    else 1. build() takes each as a keyword; the lock options govern the command
    line's pid lock (build() takes none), and ``help``/``help_all`` the command line."""

    # Task's is a property, as Luigi's; a Config class sets a plain False.
    use_cmdline_section = False   # pyright: ignore
    # Read from [core] by the scheduler client and the log set-up, not parameters here.
    ignore_unconsumed = {"default_scheduler_url", "rpc_retry_attempts", "rpc_retry_wait",
                         "rpc_connect_timeout", "no_configure_logging"}
    local_scheduler = BoolParameter(default=False, description="use an in-process "
                                    "scheduler (microflow's default already)")
    scheduler_host = Parameter(default="localhost", config_path=dict(
        section="core", name="default-scheduler-host"),
        description="host of the central scheduler")
    scheduler_port = IntParameter(default=8082, config_path=dict(
        section="core", name="default-scheduler-port"),
        description="port of the central scheduler")
    scheduler_url = Parameter(default="", description="URL of the central scheduler")
    lock_size = IntParameter(default=1, description="how many runs of one command at once")
    no_lock = BoolParameter(default=False, description="take no pid lock")
    lock_pid_dir = Parameter(default="", description="where pid lock files go "
                                                      "(empty: the temporary directory)")
    take_lock = BoolParameter(default=False, description="take the lock from a running "
                                                         "process")
    workers = IntParameter(default=1, description="tasks run at once")
    logging_conf_file = Parameter(default="", description="a logging.config file")
    log_level = ChoiceParameter(default="INFO", choices=[
        "NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        description="log level when there is no logging_conf_file")
    module = Parameter(default="", description="a module to import first")
    parallel_scheduling = BoolParameter(default=False, description="check completeness "
                                                                   "in threads")
    parallel_scheduling_processes = IntParameter(default=0, description="threads for "
                                                 "parallel_scheduling (0: 8)")
    assistant = BoolParameter(default=False, description="run any task the scheduler has")
    status_port = OptionalIntParameter(default=None, description="serve the status page of "
                                       "a local build on 127.0.0.1:PORT while it runs")
    help = BoolParameter(default=False, description="show help")
    help_all = BoolParameter(default=False, description="show every flag")


_CORE_OPTIONS = {name for name, _ in core.get_params()}


def _build(tasks: Any, workers: Any = None, local_scheduler: bool = True,
           detailed_summary: bool = False, scheduler: Any = None,
           worker_options: Any = None, executor: Any = None, check_workers: int = 0,
           worker_scheduler_factory: Any = None, progress: Any = None,
           **core_options: Any) -> Any:
    """Run ``tasks`` and everything they need; return True if all went well (every
    failure, if any, recovered by a retry).

    ``workers`` defaults to ``[core] workers`` (1): more run tasks at once, in forked
    child processes (``[worker] mode = threads``: in threads), or on ``executor``, any
    ``concurrent.futures.Executor``. ``check_workers`` threads (or ``[core]
    parallel_scheduling``) call ``complete()`` concurrently while walking the graph.
    The summary is logged at INFO on the "microflow" logger. With
    ``detailed_summary=True`` returns a RunResult instead. ``scheduler`` takes any
    object with the Scheduler methods (default: a fresh in-memory one);
    ``worker_options`` overrides ``[worker]`` options; ``worker_scheduler_factory`` (a
    WorkerSchedulerFactory) makes the scheduler and worker instead. ``progress``, a
    callable, is given (done, running, pending, failed, seconds) about five times a
    second while tasks run (the command line's live status line). Safe to call from
    any thread: it installs no signal handlers and takes no pid lock. Raises TypeError
    for an unknown option, and KeyboardInterrupt, after logging the summary, when
    interrupted.
    """
    unknown = set(core_options) - _CORE_OPTIONS
    if unknown:
        name = sorted(unknown)[0]
        close = _suggestions(name, sorted(_CORE_OPTIONS | {
            "workers", "detailed_summary", "scheduler", "worker_options", "executor",
            "check_workers", "worker_scheduler_factory", "progress"}))
        raise TypeError(f"build() got an unknown option {name!r}"
                        + (f"; did you mean {' or '.join(close)}?" if close else ""))
    result = _schedule_and_run(list(tasks), worker_scheduler_factory, core_options,
                               workers=workers, local_scheduler=local_scheduler,
                               scheduler=scheduler, worker_options=worker_options,
                               executor=executor, check_workers=check_workers,
                               progress=progress)
    interrupted = getattr(result.worker, "interrupted", None)   # a factory's may lack it
    if interrupted is not None:
        raise interrupted   # after the summary, which says what ran
    return result if detailed_summary else result.scheduling_succeeded


if TYPE_CHECKING:   # what build() returns, as checkers see it: bool, or the RunResult
    @overload
    def build(tasks: Iterable[Task], workers: Any = None, local_scheduler: bool = True,
              detailed_summary: Literal[False] = False, scheduler: Any = None,
              worker_options: Any = None, executor: Any = None, check_workers: int = 0,
              worker_scheduler_factory: Any = None, progress: Any = None,
              **core_options: Any) -> bool: ...
    @overload
    def build(tasks: Iterable[Task], workers: Any = None, local_scheduler: bool = True, *,
              detailed_summary: Literal[True], scheduler: Any = None,
              worker_options: Any = None, executor: Any = None, check_workers: int = 0,
              worker_scheduler_factory: Any = None, progress: Any = None,
              **core_options: Any) -> RunResult: ...
    @overload
    def build(tasks: Iterable[Task], workers: Any = None, local_scheduler: bool = True,
              detailed_summary: bool = False, scheduler: Any = None,
              worker_options: Any = None, executor: Any = None, check_workers: int = 0,
              worker_scheduler_factory: Any = None, progress: Any = None,
              **core_options: Any) -> bool | RunResult: ...
    def build(*args: Any, **kwargs: Any) -> Any: ...
else:
    build = _build
    build.__name__ = build.__qualname__ = "build"


def _schedule_and_run(tasks: list[Task], worker_scheduler_factory: Any = None,
                      override_defaults: Mapping[str, Any] | None = None,
                      **build_options: Any) -> RunResult:
    """Luigi's ``luigi.interface._schedule_and_run``: every build, the command line's
    too, runs through this one function (looked up by name at each call), so a
    library that replaces it (``luigi.interface._schedule_and_run = wrapper``) sees
    each run. ``override_defaults``: ``[core]`` options; ``build_options``: build()'s
    own (workers, scheduler, executor, ...). Returns the RunResult, summary logged."""
    core_options = dict(override_defaults or {})
    options: dict[str, Any] = dict(workers=None, local_scheduler=True, scheduler=None,
                                   worker_options=None, executor=None, check_workers=0,
                                   progress=None)
    options.update(build_options)
    # Given here, else on the command line, else in [core]; and [core]'s typo check.
    env = core(**{name: value for name, value in core_options.items() if value is not None})
    workers = env.workers if options["workers"] is None else options["workers"]
    factory, scheduler = worker_scheduler_factory, options["scheduler"]
    worker_options = options["worker_options"] or {}
    made = scheduler is None   # then closed here (a client's connections)
    if made:
        scheduler = _scheduler_for(options["local_scheduler"], core_options, worker_options,
                                   factory)
    page = None
    try:
        with _logging(env.log_level.upper(), asked="log_level" in core_options):
            if env.status_port is not None:
                scheduler, page = _serve_status_page(scheduler, env.status_port)
            result = _run_build(tasks, workers, scheduler, worker_options, factory,
                                assistant=env.assistant, executor=options["executor"],
                                progress=options["progress"],
                                check_workers=_check_workers(options["check_workers"], env))
            _log.info("%s", result.summary_text)
    finally:
        if page is not None:
            page.stop()
        if made and hasattr(scheduler, "close"):
            scheduler.close()
    return result


def _port_number(value: Any, name: str = "port") -> int:
    """``value`` as a TCP port (0: any free one); UsageError naming ``name`` if it is
    not one."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 0 <= port <= 65535 or isinstance(value, (bool, float)):
        raise UsageError(f"{name} must be a port number from 0 to 65535, got {value!r}")
    return port


def _serve_status_page(scheduler: Any, port: int | None) -> tuple[Any, SchedulerServer | None]:
    """``(the scheduler the build uses, the server of its page)``: the status page of
    a local build, on 127.0.0.1:``port`` for as long as the build runs. A central
    scheduler has a page of its own: then nothing is started."""
    if not isinstance(scheduler, Scheduler):
        _log.warning("--status-port: this build uses a central scheduler; its page is "
                     "on that scheduler's address")
        return scheduler, None
    server = SchedulerServer(scheduler, "127.0.0.1",
                             _port_number(port, "status_port")).start()
    _log.info("status page of this build: %s/", server.url)
    return _Locked(scheduler, server._lock), server


def _check_workers(count: int, env: Any) -> int:
    """Threads for completeness checks: ``count``, or with ``parallel_scheduling``
    (Luigi's name), ``parallel_scheduling_processes`` or 8."""
    if count or not env.parallel_scheduling:
        return count
    return env.parallel_scheduling_processes or 8


# Seconds before a failed task is retried within a local build, unless [scheduler]
# retry_delay says otherwise. Luigi's 900 s suit a long-lived central scheduler, not a
# run someone waits for.
_LOCAL_RETRY_DELAY = 1.0


def _local_scheduler(worker_options: Mapping[str, Any]) -> Scheduler:
    """The in-memory scheduler a build uses when given none."""
    options: dict[str, Any] = {"prune_on_get_work": True}
    keep_alive = worker_options.get("keep_alive", get_config().getboolean(
        "worker", "keep_alive", False))
    if not keep_alive and get_config().get("scheduler", "retry_delay", None) is None:
        options["retry_delay"] = _LOCAL_RETRY_DELAY
    return Scheduler(**options)


class WorkerSchedulerFactory:
    """How build() makes its scheduler and its worker (Luigi's
    ``luigi.interface._WorkerSchedulerFactory``): subclass it and pass an instance as
    ``worker_scheduler_factory`` to build() or run() to use your own."""

    def create_local_scheduler(self) -> Scheduler:
        """A fresh in-memory scheduler, as build() makes one."""
        return _local_scheduler({})

    def create_remote_scheduler(self, url: str) -> RemoteScheduler:
        """A client of the central scheduler at ``url``."""
        return _remote_scheduler(url)

    def create_worker(self, scheduler: Any, worker_processes: int = 1,
                      assistant: bool = False) -> Worker:
        """The worker that walks the graph and runs the tasks."""
        return Worker(scheduler, processes=worker_processes, assistant=assistant)


def _scheduler_for(local_scheduler: bool | None, core_options: Any,
                   worker_options: Mapping[str, Any], factory: Any = None) -> Any:
    """The scheduler a build uses when given none: a central one when asked for by
    ``scheduler_url``, ``scheduler_host``/``scheduler_port`` or
    ``local_scheduler=False`` (then ``[core]`` and Luigi's defaults fill in,
    http://localhost:8082), else a fresh in-memory one; made by ``factory`` if given."""
    config = get_config()
    url = core_options.get("scheduler_url")
    host, port = core_options.get("scheduler_host"), core_options.get("scheduler_port")
    if local_scheduler and not (url or host or port):
        return factory.create_local_scheduler() if factory else \
            _local_scheduler(worker_options)
    if not url and not (host or port):
        url = config.get("core", "scheduler_url", None) or \
            config.get("core", "default-scheduler-url", None)
    if not url:
        host = host or config.get("core", "scheduler_host", None) or \
            config.get("core", "default-scheduler-host", "localhost")
        port = port or config.get("core", "scheduler_port", None) or \
            config.get("core", "default-scheduler-port", 8082)
        url = f"http://{host}:{port}"
    return factory.create_remote_scheduler(url) if factory else _remote_scheduler(url)


def _remote_scheduler(url: str) -> RemoteScheduler:
    """A client of ``url`` with the ``[core] rpc-*`` settings."""
    config = get_config()
    return RemoteScheduler(
        url, token=os.environ.get("MICROFLOW_SCHEDULER_TOKEN"),
        attempts=config.getint("core", "rpc-retry-attempts", 3),
        retry_wait=config.getfloat("core", "rpc-retry-wait", 1.0),
        connect_timeout=config.getfloat("core", "rpc-connect-timeout", 10.0))


def _worker_count(value: Any) -> int:
    """How many tasks run at once, checked in this one place for build() and
    ``--workers``: a whole number, 0 or more (0: schedule only, run nothing)."""
    count = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"workers must be a whole number >= 0 (0: schedule only), got "
                         f"{value!r}")
    return count


def _run_build(tasks: Sequence[Task], workers: int, scheduler: Any, worker_options: dict[str, Any],
               factory: Any = None, assistant: bool = False,
               progress: Callable[..., None] | None = None, **runner_options: Any) -> RunResult:
    workers = _worker_count(workers)
    worker = factory.create_worker(scheduler=scheduler, worker_processes=workers,
                                   assistant=assistant) \
        if factory else Worker(scheduler, processes=workers, assistant=assistant,
                               **runner_options, **worker_options)
    if progress is not None:
        worker.progress = progress
    with worker:
        # One walk for all the tasks; a factory's own kind of worker gets add() each.
        succeeded = worker.add_all(tasks) if isinstance(worker, Worker) else \
            all([worker.add(task) for task in tasks])
        succeeded &= worker.run()
    return RunResult(worker, succeeded)


###########################################################################################
# Planning: what a build would do (--dry-run), and the dependency tree (--tree)
###########################################################################################

PlannedTask = collections.namedtuple("PlannedTask", "task state reasons")
PlannedTask.__doc__ = ("One task of a dry run: ``state`` is 'would run', 'blocked', "
                       "'missing external', 'scheduling error' or 'complete'; "
                       "``reasons`` say why, in words.")


def dry_run(tasks: Iterable[Task]) -> list[PlannedTask]:
    """What a build of ``tasks`` would do, running nothing: the graph is walked as
    build() walks it (complete() once per task; a complete task is not expanded).
    Returns PlannedTasks, dependencies before the tasks that need them."""
    scheduler = Scheduler()
    with Worker(scheduler, worker_id="dry-run") as worker:
        worker.add_all(list(tasks))
    record = worker.record   # what the walk found; nothing ran
    states = {task_id: "complete" if info["status"] == DONE else
              "scheduling error" if info["status"] == UNKNOWN else
              "would run" if info["workers"] else "missing external"
              for task_id, info in scheduler.graph().items()}
    plan = []
    for task in _dependencies_first(tasks, record.walked):
        needs = [dep for dep in record.walked.get(task.task_id, ())
                 if states.get(dep.task_id) != "complete"]
        state = states.get(task.task_id, "complete")
        if state == "would run" and any(states.get(dep.task_id) in (
                "missing external", "scheduling error", "blocked") for dep in needs):
            state = states[task.task_id] = "blocked"
        plan.append(PlannedTask(task, state, _plan_reasons(task, state, needs, states,
                                                           record.errors)))
    return plan


def _dependencies_first(roots: Iterable[Task], walked: Mapping[str, Sequence[Task]]) -> list[Task]:
    """The tasks the walk met from ``roots`` (``walked``: id -> deps), each once, every
    task after its dependencies (an iterative depth-first walk)."""
    order, seen = [], set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            task, expanded = stack.pop()
            if expanded:
                order.append(task)
            elif task.task_id not in seen:
                seen.add(task.task_id)
                stack.append((task, True))
                stack.extend((dep, False) for dep in reversed(walked.get(task.task_id, ())))
    return order


def _plan_reasons(task: Task, state: str, needs: Sequence[Task], states: Mapping[str, str],
                  errors: Mapping[str, str]) -> list[str]:
    """Why a planned task is in ``state``, in words."""
    reasons = []
    if state in ("would run", "blocked", "missing external"):
        missing = [getattr(out, "path", repr(out)) for out in flatten(task.output())
                   if not out.exists()]
        label = "external data missing: " if state == "missing external" else \
            "output missing: "
        reasons.append(label + ", ".join(missing) if missing else "complete() is False")
    reasons += [f"needs {dep!r} ({states.get(dep.task_id)})" for dep in needs[:3]]
    if len(needs) > 3:
        reasons.append(f"and {len(needs) - 3} more")
    if state == "scheduling error":
        error = errors.get(task.task_id, "").strip()
        reasons.append(error.splitlines()[-1] if error else "could not be checked")
    return reasons


def _dry_run_text(plan: Sequence[PlannedTask]) -> tuple[str, int]:
    """The dry run as the command line prints it, and its exit code: 0 when nothing
    would run, 1 when something would, [retcode] missing_data or scheduling_error when
    that stands in the way."""
    lines = [f"{item.state:<17} {item.task!r}: {'; '.join(item.reasons)}"
             for item in plan if item.state != "complete"]
    counts = collections.Counter(item.state for item in plan)
    lines.append("dry run: " + ", ".join(f"{counts[state]} {state}" for state in (
        "would run", "blocked", "missing external", "scheduling error", "complete")
        if counts[state]))
    code = (_retcode("scheduling_error") if counts["scheduling error"] else
            _retcode("missing_data") if counts["missing external"] else
            1 if counts["would run"] else 0)
    return "\n".join(lines), code


def dependency_tree(task: Task, _seen: set[str] | None = None,
                    _states: dict[str, str] | None = None) -> dict[str, Any]:
    """``{"task", "state", "deps": [...], "repeated"}`` for ``task`` and everything it
    requires (complete ones too), state 'complete', 'pending' or 'missing external';
    a task met before is given once more with ``repeated`` True and no deps."""
    seen = set() if _seen is None else _seen
    states = {} if _states is None else _states
    if task.task_id not in states:
        states[task.task_id] = ("complete" if task.complete() else
                                "missing external" if _is_external(task) else "pending")
    node = {"task": task, "state": states[task.task_id], "deps": [],
            "repeated": task.task_id in seen}
    if not node["repeated"]:
        seen.add(task.task_id)
        node["deps"] = [dependency_tree(dep, seen, states) for dep in task.deps()]
    return node


def _tree_text(node: dict[str, Any], prefix: str = "", last: bool = True, top: bool = True) -> str:
    """A dependency tree as indented lines, a shared subtree drawn once."""
    branch = "" if top else ("└─ " if last else "├─ ")
    line = f"{prefix}{branch}{node['task']!r} [{node['state']}]"
    lines = [line + (" (shown above)" if node["repeated"] else "")]
    inner = prefix + ("" if top else ("   " if last else "│  "))
    for i, dep in enumerate(node["deps"]):
        lines.append(_tree_text(dep, inner, i == len(node["deps"]) - 1, False))
    return "\n".join(lines)


###########################################################################################
# Triggering: pid locks, and builds --every interval or on a --cron schedule
###########################################################################################

# The pid locks this process holds. A forked child (a task process) closes them, so the
# lock goes with this process alone: a flock belongs to whoever shares the open file.
_HELD_LOCKS: set[int] = set()
_AT_FORK = [False]   # whether the closing in forked children is registered (only once)


def _close_held_locks() -> None:
    for fd in list(_HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


@contextlib.contextmanager
def _pid_lock(key: str, pid_dir: str = "", size: int = 1,
              take: bool = False) -> Iterator[str | None]:
    """Hold one of ``size`` kernel locks (``fcntl.flock``) for ``key`` while the block
    runs; yields the lock file's path, or None when live processes hold them all.
    A process that dies, even by SIGKILL, lets go of its lock, so none is ever stale.
    With ``take`` the holders are sent SIGUSR1 (they stop asking for work and finish
    what they run) and one lock more is allowed, as Luigi's ``--take-lock`` does."""
    import fcntl
    import signal
    prefix = _lock_prefix(key, pid_dir)
    os.makedirs(os.path.dirname(prefix), mode=0o700, exist_ok=True)
    for slot in range(size + bool(take)):
        path = f"{prefix}.{slot}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:   # held by a live process
            if take and slot < size:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(os.pread(fd, 20, 0) or b"0"), signal.SIGUSR1)
            os.close(fd)
            continue
        if not _AT_FORK[0]:
            os.register_at_fork(after_in_child=_close_held_locks)
            _AT_FORK[0] = True
        _HELD_LOCKS.add(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield path
        finally:
            _HELD_LOCKS.discard(fd)
            os.close(fd)   # the kernel releases the lock
        return
    yield None


def _lock_prefix(key: str, pid_dir: str = "") -> str:
    """``<pid_dir>/<md5 of key>``: where ``key``'s lock files start (``pid_dir``
    defaults to ``$TMPDIR/luigi``, Luigi's)."""
    import hashlib
    if not pid_dir:
        import tempfile
        pid_dir = os.path.join(tempfile.gettempdir(), "luigi")
    return os.path.join(pid_dir, hashlib.md5(key.encode("utf-8")).hexdigest())


def _lock_holders(key: str, pid_dir: str = "") -> list[int]:
    """The pids written in ``key``'s lock files (for the message when they are held)."""
    import glob
    pids = []
    for path in glob.glob(_lock_prefix(key, pid_dir) + ".*.lock"):
        with contextlib.suppress(OSError, ValueError), open(path) as f:
            pids.append(int(f.read().strip()))
    return sorted(pids)


def _every_schedule(interval: Any) -> Callable[[float], float]:
    """``interval`` ("90", "90s", "5m", "2h", "1d") as a schedule: time -> next firing."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(interval))
    seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[
        match.group(2)] if match else 0
    if seconds <= 0:
        raise UsageError(f"--every {interval!r}: expected a positive interval such as 90s, "
                         f"5m, 2h or 1d")
    return lambda after: after + seconds


_CRON_NAMES = {name: number for number, name in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_CRON_NAMES.update({name: number for number, name in enumerate(
    "sun mon tue wed thu fri sat".split())})
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31),
                ("month", 1, 12), ("day of week", 0, 7))
_CRON_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                "@hourly": "0 * * * *"}


def _cron_number(word: str) -> int:
    """A cron value: a number or a month/day name."""
    return int(_CRON_NAMES.get(word, word))


def _cron_field(text: str, name: str, low: int, high: int) -> set[int]:
    """The set of values one cron field allows; UsageError naming the field."""
    values: set[int] = set()
    for item in text.lower().split(","):
        match = re.fullmatch(r"(\*|\w+)(?:-(\w+))?(?:/(\d+))?", item)
        try:
            start, end, step = match.groups()   # type: ignore[union-attr]  # None: said below
            first = low if start == "*" else _cron_number(start)
            last = _cron_number(end) if end else high if start == "*" or step else first
        except (AttributeError, ValueError):
            raise UsageError(f"cron {name} {item!r}: expected *, a number, a name, a range "
                             f"a-b, a step */n or a list of those") from None
        if not low <= first <= last <= high or step == "0":
            raise UsageError(f"cron {name} {item!r}: outside {low}-{high}")
        values.update(range(first, last + 1, int(step or 1)))
    return values


def _cron_schedule(expression: str) -> Callable[[float], float]:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week,
    with ranges, steps, lists, names and @daily-style macros) as a schedule: time ->
    the next firing, in local time. Raises UsageError for a bad expression."""
    fields = _CRON_MACROS.get(expression.strip(), expression).split()
    if len(fields) != 5:
        raise UsageError(f"--cron {expression!r}: expected 5 fields (minute hour "
                         f"day-of-month month day-of-week), got {len(fields)}")
    minutes, hours, days, months, weekdays = (
        _cron_field(text, *spec) for text, spec in zip(fields, _CRON_FIELDS))
    weekdays = {day % 7 for day in weekdays}            # 7 is Sunday too
    either = fields[2] != "*" and fields[4] != "*"      # cron: day of month OR week

    def day_matches(t: datetime.datetime) -> bool:
        by_month, by_week = t.day in days, (t.isoweekday() % 7) in weekdays
        return (by_month or by_week) if either else (by_month and by_week)

    def after(timestamp: float) -> float:
        t = datetime.datetime.fromtimestamp(timestamp).replace(second=0, microsecond=0)
        t += datetime.timedelta(minutes=1)
        limit = t.year + 5
        while t.year <= limit:
            if t.month not in months:
                t = (t.replace(day=1) + datetime.timedelta(days=32)).replace(
                    day=1, hour=0, minute=0)
            elif not day_matches(t):
                t = (t + datetime.timedelta(days=1)).replace(hour=0, minute=0)
            elif t.hour not in hours:
                t = (t + datetime.timedelta(hours=1)).replace(minute=0)
            elif t.minute not in minutes:
                t += datetime.timedelta(minutes=1)
            else:
                return t.timestamp()
        raise UsageError(f"--cron {expression!r} never fires")
    after(time.time())   # refuse, now, an expression that never fires
    return after


def _trigger(schedule: Callable[[float], float], build_once: Callable[[], int],
             clock: Callable[[], float] | None = None,
             sleep: Callable[[float], None] | None = None, max_runs: int | None = None,
             stop: threading.Event | None = None, at_once: bool = False) -> int:
    """Run ``build_once()`` (it returns an exit code) at each firing of ``schedule``
    (the first at once with ``at_once``), one build at a time: firings that pass while
    a build runs are skipped and logged. Ends after ``max_runs`` builds, or after the
    build under way once ``stop`` (an Event) is set. Returns the worst exit code."""
    clock = clock or time.time
    stop = stop or threading.Event()
    wait: Callable[[float], Any] = sleep or stop.wait   # wakes at once when stopped
    worst, runs, due = 0, 0, clock() if at_once else schedule(clock())
    announced = None
    while (max_runs is None or runs < max_runs) and not stop.is_set():
        now = clock()
        if now < due:
            if announced != due:   # said once a firing, so a cron job shows it is alive
                _log.info("next build at %s", time.strftime("%Y-%m-%d %H:%M:%S",
                                                            time.localtime(due)))
                announced = due
            wait(due - now)
            continue
        _log.info("build %d, due at %s", runs + 1, time.strftime("%H:%M:%S",
                                                                 time.localtime(due)))
        worst = max(worst, build_once())
        runs += 1
        due, skipped, finished = schedule(due), 0, clock()
        while due <= finished:
            due, skipped = schedule(due), skipped + 1
        if skipped:
            _log.warning("skipped %d firing(s) that came while the build ran", skipped)
    return worst


def every(interval: Any, tasks: Sequence[Task], max_runs: int | None = None,
          clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None,
          stop: threading.Event | None = None, **build_options: Any) -> int:
    """Build ``tasks`` every ``interval`` (seconds, or "90s", "5m", "2h", "1d") until
    ``max_runs`` builds or ``stop`` (a threading.Event) is set; returns the worst exit
    code. A firing while the previous build still runs is skipped, here and in any
    other process on this host building the same tasks (a lock file). ``clock`` and
    ``sleep`` may be a fake clock's, for tests."""
    return _trigger(_every_schedule(interval), _locked_build(tasks, build_options),
                    clock, sleep, max_runs, stop, at_once=True)


def cron(expression: str, tasks: Sequence[Task], max_runs: int | None = None,
         clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None,
         stop: threading.Event | None = None, **build_options: Any) -> int:
    """every() on a 5-field cron schedule ("*/15 9-17 * * mon-fri")."""
    return _trigger(_cron_schedule(expression), _locked_build(tasks, build_options),
                    clock, sleep, max_runs, stop)


def _locked_build(tasks: Sequence[Task], build_options: dict[str, Any]) -> Callable[[], int]:
    tasks = list(tasks)
    key = "build " + " ".join(sorted(task.task_id for task in tasks))

    def build_once() -> int:
        env = core()
        with _pid_lock(key, env.lock_pid_dir, env.lock_size) as held:
            if held is None:
                _log.warning("skipped: a build of the same tasks runs in process %s",
                             ", ".join(map(str, _lock_holders(key, env.lock_pid_dir))))
                return _retcode("already_running")
            return exit_code(build(tasks, detailed_summary=True, **build_options), tasks)
    return build_once


###########################################################################################
# Command line: python -m microflow [--module pkg.mod] Task [--param value] ..., parsed
###########################################################################################

def _argparse_type(check: Callable[[str], Any], text: str) -> Any:
    """``check(text)`` for argparse, its ValueError said as argparse says bad values."""
    import argparse
    try:
        return check(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _whole_number(text: str) -> int:
    """argparse type for a count of at least 1."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got "
                                         f"{text!r}")
    return value


# Options every command line takes; values are the argparse keywords.
_CLI_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--module", dict(action="append", default=[], metavar="MODULE",
                      help="import this module first (repeatable)")),
    ("--as-luigi", dict(action="store_true",
                        help="let the modules' `import luigi` give microflow "
                             "(install_as_luigi())")),
    ("--workers", dict(type=lambda text: _argparse_type(_worker_count, text), default=None,
                       metavar="N",
                       help="run N tasks at once in worker processes (default 1)")),
    ("--local-scheduler", dict(action="store_true",
                               help="accepted for Luigi compatibility; the in-process "
                                    "scheduler is the default")),
    ("--log-level", dict(default=None, metavar="LEVEL",
                         choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                         help="DEBUG, INFO (default), WARNING, ERROR or CRITICAL")),
    ("--detailed-summary", dict(action="store_true", help="accepted for Luigi "
                                                          "compatibility")),
    ("--no-lock", dict(action="store_true", help="run even if this command already runs "
                                                 "(the pid lock, --lock-size, --take-lock)")),
    ("--no-progress", dict(action="store_true", help="no live status line, even on a "
                                                     "terminal")),
    ("--dry-run", dict(action="store_true", help="run nothing: print what would run "
                                                 "and why, exit 1 if anything would")),
    ("--tree", dict(action="store_true", help="print the dependency tree with each "
                                              "task's state")),
    ("--every", dict(default=None, metavar="INTERVAL", help="build again every INTERVAL "
                                                           "(90s, 5m, 2h, 1d)")),
    ("--cron", dict(default=None, metavar="EXPR", help="build at each firing of a 5-field "
                                                       "cron expression")),
    ("--max-runs", dict(type=_whole_number, default=None, metavar="N",
                        help="with --every/--cron: stop after N builds")),
    ("--parallel-scheduling", dict(action="store_true", default=None,
                                   help="call complete() in threads while walking the "
                                        "graph (for slow checks: network, object stores)")),
    ("--parallel-scheduling-processes", dict(type=int, default=0, metavar="N",
                                             help="threads for --parallel-scheduling "
                                                  "(default 8)")),
    ("--status-port", dict(type=lambda text: _argparse_type(_port_number, text),
                           default=None, metavar="PORT",
                           help="serve the status page of this build on "
                                "http://127.0.0.1:PORT/ while it runs (0: any free port)")),
    ("--scheduler-url", dict(default=None, metavar="URL",
                             help="use the central scheduler at URL (a token may go in "
                                  "it: http://any:TOKEN@host:8082)")),
    ("--scheduler-host", dict(default=None, metavar="HOST",
                              help="use the central scheduler on HOST (port 8082)")),
    ("--scheduler-port", dict(type=int, default=None, metavar="PORT",
                              help="the central scheduler's port")),
    ("--server", dict(action="store_true",
                      help="run a central scheduler instead of a task (with --address, "
                           "--port, --token-file)")),
    ("--address", dict(default="127.0.0.1", metavar="ADDRESS",
                       help="--server: the address to bind (default 127.0.0.1)")),
    ("--allow-host", dict(action="append", default=None, metavar="NAME",
                          help="--server: a name browsers reach it by (as behind a proxy): "
                               "its Host and Origin are accepted; repeat for more")),
    ("--port", dict(type=lambda text: _argparse_type(_port_number, text), default=8082,
                    metavar="PORT",
                    help="--server: the port (default 8082; 0 picks a free one)")),
    ("--state-path", dict(default=None, metavar="FILE",
                          help="--server: keep the scheduler's state in FILE (and "
                               "FILE.journal), so a restart, even after kill -9, loses "
                               "no finished task")),
    ("--token-file", dict(default=None, metavar="FILE",
                          help="--server: require the token in FILE for calls that "
                               "change state")),
    ("--help", dict(action="store_true", help="show help (after a task: its parameters)")),
    ("--help-all", dict(action="store_true", help="show every flag, with every task's "
                                                  "--Family-param")),
    ("--version", dict(action="store_true", help="print microflow's version and exit")),
    ("--debug", dict(action="store_true", help="print full tracebacks for errors")),
)


def _base_parser() -> argparse.ArgumentParser:
    import argparse
    # As it was started: the console script pip installs, or python -m microflow.
    prog = "microflow" if os.path.basename(sys.argv[0]) == "microflow" else \
        "python -m microflow"
    parser = argparse.ArgumentParser(
        prog=prog, add_help=False, allow_abbrev=False, exit_on_error=False,
        usage=f"{prog} [--module pkg.mod] Task [--param value] "
              "[--Family-param value] [--workers N] [--log-level LEVEL] [--help]")
    parser.add_argument("task", nargs="?", help="task family, or module:Class")
    for flag, keywords in _CLI_OPTIONS:
        parser.add_argument(flag, **keywords)
    return parser


# The flags short help shows; --help-all shows them all.
_COMMON_FLAGS = ("--module", "--workers", "--log-level", "--dry-run", "--tree", "--every",
                 "--cron", "--scheduler-url", "--server", "--help-all")


def _short_help() -> str:
    """``--help`` without a task: what fits on one screen."""
    lines = [_base_parser().format_usage().rstrip(), "",
             "Runs Task and everything it needs, then prints a summary. Common flags:"]
    lines += [f"  {flag:<18}{keywords['help']}" for flag, keywords in _CLI_OPTIONS
              if flag in _COMMON_FLAGS]
    lines += ["", "Task --help lists a task's parameters."]
    return "\n".join(lines)


def _full_help(parser: argparse.ArgumentParser) -> str:
    """``--help-all``: every flag, then every task's ``--Family-param``."""
    lines = [parser.format_help().rstrip(), "", "task parameters, for any task:"]
    for family, cls in sorted(_REGISTRY.by_family().items()):
        if cls is not _REGISTRY.AMBIGUOUS:
            for name, param in cls.get_params():
                flag = f"  {_global_flag(family, name)} {_param_kind(param)}"
                if param.description and len(flag) >= 48:   # as argparse: below it
                    lines += [flag, " " * 48 + param.description]
                else:
                    lines.append(f"{flag:<48}{param.description or ''}".rstrip())
    return "\n".join(lines)


def _param_kind(param: Parameter[Any]) -> str:
    """``(IntParameter, default 1)``: a parameter's class and default, for help."""
    kind = next(c.__name__ for c in type(param).__mro__ if not c.__name__.startswith("_"))
    if param._default is _NO_VALUE:
        return f"({kind}, required)"
    default = "none" if param._default is None else param.serialize(param._default)
    return f"({kind}, default {default})"


def _add_param_flag(parser: argparse.ArgumentParser, flag: str, dest: str, param: Parameter[Any],
                    name: str, family: str | None) -> None:
    """One ``--flag`` for a parameter, shaped by its ``_parser_kwargs`` (Luigi's hook);
    values stay strings until the task parses them."""
    keywords = param._parser_kwargs(name, family)
    if keywords.get("action") == "store_true":
        parser.add_argument(flag, dest=dest, action="store_const", const="true",
                            default=None)
    elif keywords.get("nargs") == "?":
        const = keywords.get("const")
        parser.add_argument(flag, dest=dest, nargs="?", default=None,
                            const=str(const).lower() if isinstance(const, bool) else const)
    else:
        parser.add_argument(flag, dest=dest, default=None)


def _global_param_flags(parser: argparse.ArgumentParser) -> dict[str, tuple[str, str]]:
    """``--Family-param`` for every registered task, as Luigi has them, and a bare
    ``--param`` too for Config classes with ``use_cmdline_section = False``."""
    flags: dict[str, tuple[str, str]] = {}
    for family, cls in sorted(_REGISTRY.by_family().items()):
        if cls is _REGISTRY.AMBIGUOUS:
            continue
        for name, param in cls.get_params():
            dashed = name.replace("_", "-")
            dest = f"global::{family}::{name}"
            # Luigi's spelling, and microflow's earlier one (the family kept as is).
            spellings = dict.fromkeys([_global_flag(family, name), f"--{family}-{dashed}"])
            for flag in list(spellings) + (
                    [f"--{dashed}"] if cls.use_cmdline_section is False else []):
                with contextlib.suppress(Exception):   # a clash with a core flag: core wins
                    _add_param_flag(parser, flag, dest, param, name, family)
                    flags[dest] = (family, name)
    return flags


def _global_flag(family: str, name: str) -> str:
    """A parameter's flag for any task, as Luigi spells it: ``--Family-param``, every
    ``_`` a ``-`` (``tree_info.mode`` is ``--tree-info-mode``)."""
    return "--" + f"{family}_{name}".replace("_", "-")


def _expand_abbreviations(argv: Sequence[str], flags: Iterable[str]) -> list[str]:
    """Each ``--prefix`` (or ``--prefix=value``) that starts exactly one of ``flags``
    and is none of them, spelled out, as argparse and so Luigi allow. Expanded here,
    once, because microflow parses in several passes, and a prefix must be judged
    against every flag of the command line, not those of one pass."""
    expanded = []
    for arg in argv:
        flag, equals, value = arg.partition("=")
        if flag.startswith("--") and flag not in flags:
            matches = [known for known in flags if known.startswith(flag)]
            if len(matches) == 1:
                arg = matches[0] + equals + value
        expanded.append(arg)
    return expanded


def _import_modules(arguments: Any) -> None:
    """Import ``--module`` values and the module of a ``module:Task`` name (with
    ``--as-luigi``, after installing microflow as ``luigi``)."""
    import importlib
    if arguments.as_luigi:
        install_as_luigi()
    names = list(arguments.module)
    if arguments.task and ":" in arguments.task:
        names.append(arguments.task.partition(":")[0])
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            hint = ("; for code written for Luigi, add --as-luigi"
                    if exc.name == "luigi" else "")
            raise UsageError(f"cannot import module {name!r}: {exc}{hint}") from None
        except Exception:   # the module itself failed: show where, as Python would
            import traceback
            raise UsageError(f"importing module {name!r} failed:\n"
                             f"{traceback.format_exc().rstrip()}") from None


def _parse_command_line(argv: Sequence[str]) -> tuple[Any, dict[str, Any], dict[Any, Any], Any]:
    """Return (task class, root keyword strings, global values, options)."""
    import argparse
    try:
        return _parse_arguments(argv)
    except argparse.ArgumentError as exc:   # never argparse's own sys.exit()
        raise UsageError(str(exc)) from None


def _parse_arguments(argv: Sequence[str]) -> tuple[Any, dict[str, Any], dict[Any, Any], Any]:
    parser = _base_parser()
    first, _ = parser.parse_known_args(argv)
    _import_modules(first)
    global_flags = _global_param_flags(parser)
    arguments, _ = parser.parse_known_args(argv)
    if not arguments.task:
        return None, {}, {}, arguments
    task_class = _REGISTRY.get(arguments.task)   # TaskClassNotFoundException, named
    root_parser = _root_parser(task_class)
    argv = _expand_abbreviations(argv, [option for p in (parser, root_parser)
                                        for action in p._actions
                                        for option in action.option_strings])
    arguments, rest = parser.parse_known_args(argv)
    root_values, unknown = root_parser.parse_known_args(rest)
    if unknown and not arguments.help:
        raise UsageError(_unknown_flag_message(unknown[0], task_class, parser,
                                                root_parser))
    global_values = {global_flags[dest]: value for dest, value in vars(arguments).items()
                     if dest in global_flags and value is not None}
    root = {name: value for name, value in vars(root_values).items() if value is not None}
    return task_class, root, global_values, arguments


def _root_parser(task_class: type[Task]) -> argparse.ArgumentParser:
    import argparse
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for name, param in task_class.get_params():
        _add_param_flag(parser, f"--{name.replace('_', '-')}", name, param, name, None)
    return parser


def _unknown_flag_message(flag: str, task_class: type[Task],
                          *parsers: argparse.ArgumentParser) -> str:
    known = [option for parser in parsers for action in parser._actions
             for option in action.option_strings]
    close = _suggestions(flag.split("=")[0], known)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    if not flag.startswith("-"):
        return f"unexpected argument {flag!r} after task {task_class.get_task_family()}"
    return (f"unknown parameter {flag} for task {task_class.get_task_family()}{hint} "
            f"(see: python -m microflow {task_class.get_task_family()} --help)")


def _task_help(task_class: type[Task]) -> str:
    """The help text listing a task's parameters with types, defaults, descriptions."""
    family = task_class.get_task_family()
    lines = [f"usage: python -m microflow {family} [options]", ""]
    if task_class.__doc__:
        lines += [task_class.__doc__.strip().splitlines()[0], ""]
    lines.append(f"parameters of {family}:")
    for name, param in task_class.get_params():
        default = ("required" if param._default is _NO_VALUE
                   else f"default: {param.serialize(param._default)}"
                   if param._default is not None else "default: none")
        dashed = name.replace("_", "-")
        lines.append(f"  --{dashed} {type(param).__name__} ({default}); also "
                     f"{_global_flag(family, name)}")
        if param.description:
            lines.append(f"      {param.description}")
    if not task_class.get_params():
        lines.append("  (none)")
    lines += ["", "also: --workers N, --log-level LEVEL, --module MODULE, "
                  f"--{family}-<param> VALUE"]
    return "\n".join(lines)


class CmdlineParser:
    """A parsed command line (Luigi's ``luigi.cmdline_parser.CmdlineParser``).

    Inside ``with CmdlineParser.global_instance(["Task", "--x", "1",
    "--Other-y", "2"]) as parser:``, every task created sees the ``--Family-param``
    values, and ``parser.get_task_obj()`` builds the root task with its own flags.
    ``known_args`` holds the parsed options. Raises MicroflowError for a command line
    that names no task, or an unknown task or flag.
    """

    _instance = None

    def __init__(self, cmdline_args: Sequence[str]) -> None:
        try:
            task_class, root, global_values, options = _parse_command_line(
                list(cmdline_args))
        except UsageError as exc:   # as argparse, and so Luigi's parser, ends
            print(f"microflow: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        if task_class is None:
            raise UsageError("no task given on the command line")
        self._set_parts(task_class, root, global_values, options)

    @classmethod
    def _from_parts(cls, task_class: Any, root: dict[str, Any], global_values: dict[Any, Any],
                    options: Any) -> CmdlineParser:
        parsed = cls.__new__(cls)
        parsed._set_parts(task_class, root, global_values, options)
        return parsed

    def _set_parts(self, task_class: Any, root: dict[str, Any], global_values: dict[Any, Any],
                   options: Any) -> None:
        self._task_class, self._root, self._global_values = task_class, root, global_values
        self.known_args = options

    @classmethod
    def get_instance(cls) -> CmdlineParser | None:
        """The parser of the ``global_instance()`` block being run, or None."""
        return cls._instance

    @classmethod
    def global_instance(cls, cmdline_args: Sequence[str], allow_override: bool = False) -> Any:
        """A context manager: parse ``cmdline_args`` and make them the command line
        of the block. Raises MicroflowError if another is active and not
        ``allow_override``."""
        return cls._activate(cls(cmdline_args), allow_override)

    @classmethod
    @contextlib.contextmanager
    def _activate(cls, parsed: CmdlineParser, allow_override: bool) -> Iterator[CmdlineParser]:
        saved = cls._instance
        if saved is not None and not allow_override:
            raise MicroflowError("a command line is already being run (CmdlineParser."
                                 "global_instance); pass allow_override=True to nest one")
        cls._instance = parsed
        try:
            yield parsed
        finally:
            cls._instance = saved

    def _raw_value(self, task_name: str, param_name: str) -> str | None:
        """The ``--Family-param`` string for ``task_name``'s parameter, or None (a root
        task's own ``--param`` sets that task alone: get_task_obj() passes it)."""
        return self._global_values.get((task_name, param_name))

    def get_task_obj(self) -> Any:
        """The root task, built from its command-line flags."""
        family = self._task_class.get_task_family()
        params = dict(self._task_class.get_params())
        return self._task_class(**{name: params[name]._parse_for(family, name, raw,
                                                                  "command line")
                                   for name, raw in self._root.items()})


###########################################################################################
# Command line: logging, run(), main(), luigid
###########################################################################################

def _set_up_logging(level: Any, conf_file: str | None = None, asked: bool = False,
                    config: Any = None) -> Callable[[], None]:
    """The one place logging is set up (build(), the command line with its server and
    trigger loop, Luigi's InterfaceLogging), as Luigi does: nothing with ``[core]
    no_configure_logging``; else the ``logging.config`` file named (``conf_file`` or
    ``[core] logging_conf_file``), kept; else, when the application configured no
    handler (on the root, "luigi-interface" or "microflow" logger), microflow's records
    to stderr at ``level``; else, when a level was ``asked`` for, that level on the
    "microflow" logger. Returns the function that undoes it (a build's set-up lasts
    the build). Raises OSError naming a logging file that does not exist."""
    import argparse
    import logging
    config = config if config is not None else get_config()
    if config.getboolean("core", "no_configure_logging", False):
        return lambda: None
    path = conf_file or config.get("core", "logging_conf_file", None)
    if path:
        _logging_from_file(path)
        return lambda: None
    logger = _logger()
    saved = logger.level, logger.propagate
    handler = None
    if not any(logging.getLogger(name).handlers for name in ("", LUIGI_LOGGER_NAME,
                                                              LOGGER_NAME)):
        handler = _stderr_handler(logger)
        logger.propagate = False
    elif not asked:
        return lambda: None
    logger.setLevel(level)

    def undo() -> None:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    return undo


def _stderr_handler(logger: logging.Logger) -> logging.Handler:
    """A handler printing ``LEVEL: message`` to stderr, added to ``logger``."""
    import argparse
    import logging
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    return handler


@contextlib.contextmanager
def _logging(level: Any, conf_file: str | None = None, asked: bool = False) -> Iterator[None]:
    """_set_up_logging() for the duration of a block."""
    undo = _set_up_logging(level, conf_file, asked)
    try:
        yield
    finally:
        undo()


def _logging_from_file(path: str) -> None:
    """Configure logging from a ``logging.config`` file (``[core] logging_conf_file``,
    ``--logging-conf-file``). Raises OSError naming the file when it does not exist."""
    import logging.config
    if not os.path.exists(path):
        raise OSError(f"the logging configuration file {path!r} does not exist")
    logging.config.fileConfig(path, disable_existing_loggers=False)


class BaseLogging:
    """Logging set up once per process (Luigi's ``luigi.setup_logging``): nothing when
    ``[core] no_configure_logging`` is set; else from ``opts.logging_conf_file`` or ``[core]
    logging_conf_file`` (OSError if missing); else a stderr handler on the "microflow"
    logger at ``opts.log_level``. ``setup()`` returns True if it configured logging."""

    _configured = False
    config = None      # the configuration to read; None: get_config()

    @classmethod
    def setup(cls, opts: Any = None) -> bool:
        """Configure logging unless done already or disabled; see the class."""
        if cls._configured:
            return False
        cls._configured = True
        config = cls.config if cls.config is not None else get_config()
        if config.getboolean("core", "no_configure_logging", False):
            return False
        path = getattr(opts, "logging_conf_file", None) or \
            config.get("core", "logging_conf_file", None)
        if path:
            _logging_from_file(path)
            return True
        level = getattr(opts, "log_level", None) or config.get("core", "log_level", "INFO")
        cls._default(level.upper())
        return True

    @classmethod
    def _default(cls, level: Any) -> None:
        """A handler whatever else is configured, as Luigi's; for good."""
        _stderr_handler(_logger()).setLevel(level)
        _logger().setLevel(level)


class InterfaceLogging(BaseLogging):
    """The logging of a run (Luigi's ``InterfaceLogging``): see BaseLogging."""

    _configured = False


class DaemonLogging(InterfaceLogging):
    """The same for the central scheduler (Luigi's ``DaemonLogging``): the root logger,
    with time and process id, at INFO unless configured otherwise."""

    _configured = False

    @classmethod
    def _default(cls, level: Any) -> None:
        import logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s"
                            "[%(process)s] %(levelname)s: %(message)s")


def run(cmdline_args: Sequence[str] | None = None, main_task_cls: type[Task] | None = None,
        worker_scheduler_factory: Any = None, use_dynamic_argparse: Any = None,
        local_scheduler: bool = False, detailed_summary: bool = False) -> Any:
    """Parse a command line (``sys.argv[1:]`` by default) and build the task it names.

    ``main_task_cls`` puts that class's family in front of the arguments. Returns what
    build() returns. A bad command line is printed to stderr and ends in SystemExit
    (code 2), as argparse and so Luigi's run() do; an unknown task raises
    TaskClassNotFoundException; ``--help`` prints and exits 0.
    """
    if cmdline_args is not None and not isinstance(cmdline_args, (list, tuple)):
        raise TypeError(f"cmdline_args must be a list or tuple of command-line arguments, "
                        f"got {type(cmdline_args).__name__!r}: ['MyTask', '--param', 'value']")
    argv = list(sys.argv[1:] if cmdline_args is None else cmdline_args)
    if main_task_cls is not None:
        argv.insert(0, main_task_cls.get_task_family())
    try:
        outcome = _run_command_line(argv, worker_scheduler_factory)
    except UsageError as exc:
        print(f"microflow: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if isinstance(outcome, int):   # help or the version was printed, or no task given
        raise SystemExit(outcome)
    return outcome if detailed_summary else outcome.scheduling_succeeded


def _run_command_line(argv: Sequence[str], factory: Any = None, firing: bool = False) -> Any:
    """Parse, build, and return the RunResult (or an int exit code for help)."""
    task_class, root, global_values, options = _parse_command_line(argv)
    if options.version:
        print(f"microflow {__version__}")
        return 0
    if options.server:
        return _run_server(options)
    if options.help_all:
        print(_full_help(_base_parser()))
        return 0
    if task_class is None:
        if options.help:
            print(_short_help())
            return 0
        print(f"{_base_parser().format_usage().rstrip()}\nmicroflow: error: No task "
              f"specified", file=sys.stderr)
        return 2
    if options.help:
        print(_task_help(task_class))
        return 0
    parsed = CmdlineParser._from_parts(task_class, root, global_values, options)
    with CmdlineParser._activate(parsed, allow_override=False):
        task = parsed.get_task_obj()
        if options.dry_run:
            text, code = _dry_run_text(dry_run([task]))
            print(text)
            return code
        if options.tree:
            print(_tree_text(dependency_tree(task)))
            return 0
        env = core()
        # One lock per command, as Luigi's pid file (with or without the lock flags).
        key = "microflow " + " ".join(a for a in argv if a not in ("--take-lock",
                                                                   "--no-lock"))
        with (contextlib.nullcontext("unlocked") if options.no_lock or env.no_lock else
              _pid_lock(key, env.lock_pid_dir, env.lock_size, env.take_lock)) as held:
            if held is None:
                pids = ", ".join(map(str, _lock_holders(key, env.lock_pid_dir)))
                print(f"microflow: Pid(s) {pids} already running this command (--no-lock "
                      f"to run it anyway)", file=sys.stderr)
                raise PidLockAlreadyTakenExit(_retcode("already_running"))
            busy = _running_elsewhere(task, options) if firing else []
            if busy:
                _log.warning("skipped: %s is being built elsewhere (running now: %s)", task,
                             ", ".join(busy[:3]) + (" ..." if len(busy) > 3 else ""))
                return _retcode("already_running")
            return _build_command_line(task, options, factory)


def _running_elsewhere(task: Task, options: Any) -> list[str]:
    """With a central scheduler: the tasks of ``task``'s graph some worker runs now, so
    a --every/--cron firing on one host skips while another host builds the same."""
    if not (options.scheduler_url or options.scheduler_host or options.scheduler_port):
        return []
    url = options.scheduler_url or (f"http://{options.scheduler_host or 'localhost'}:"
                                    f"{options.scheduler_port or 8082}")
    client = _remote_scheduler(url)
    try:
        graph = client.dep_graph(task.task_id)
    finally:
        client.close()
    return sorted(task_id for task_id, info in graph.items() if info["status"] == RUNNING)


def _build_command_line(task: Task, options: Any, factory: Any) -> Any:
    """The build a command line asks for, and its exit code (worked out while the
    command line's --retcode-* flags are in force)."""
    terminal = not options.no_progress and sys.stderr.isatty()
    with (_ProgressLine(sys.stderr) if terminal else contextlib.nullcontext()) as line:
        result = build([task], workers=options.workers, detailed_summary=True,
                       parallel_scheduling=options.parallel_scheduling,
                       parallel_scheduling_processes=options.parallel_scheduling_processes,
                       scheduler_url=options.scheduler_url,
                       scheduler_host=options.scheduler_host,
                       scheduler_port=options.scheduler_port,
                       status_port=options.status_port,
                       worker_scheduler_factory=factory, progress=line)
    result.exit_code = exit_code(result, [task])
    return result


class _ProgressLine:
    """One live status line on a terminal: redrawn in place as the build goes, wiped
    before any log line is written (and so before the summary), and at the end."""

    def __init__(self, stream: Any) -> None:
        import logging
        self.stream, self.shown = stream, False
        self._filter = self._clear_for
        self._handlers = [h for h in logging.getLogger(LOGGER_NAME).handlers +
                          logging.getLogger().handlers
                          if getattr(h, "stream", None) is stream]

    def __enter__(self) -> _ProgressLine:
        for handler in self._handlers:
            handler.addFilter(self._filter)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.clear()
        for handler in self._handlers:
            handler.removeFilter(self._filter)

    def __call__(self, done: int, running: int, pending: int, failed: int, seconds: float) -> None:
        rate = done / seconds if seconds > 0 else 0.0
        self.stream.write(f"\r\x1b[K{done} done, {running} running, {pending} pending, "
                          f"{failed} failed | {rate:.1f} tasks/s | {seconds:.0f}s")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def _clear_for(self, record: Any) -> bool:
        """Logging filter: wipe the line before a record is written (and let it be)."""
        self.clear()
        return True


def _run_server(options: Any) -> int:
    """``--server``: serve a central scheduler until SIGINT/SIGTERM; exit code 0."""
    token = None
    if options.token_file:
        try:
            with open(options.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise UsageError(f"cannot read --token-file: {exc}") from None
        if not token:
            raise UsageError(f"--token-file {options.token_file} is empty")
    state_path = options.state_path or get_config().get("scheduler", "state_path", None)
    try:
        serve(options.address, options.port, token, state_path=state_path,   # until a signal
              allowed_hosts=options.allow_host or ())
    except OSError as exc:   # the port taken, the state's folder missing: said, exit 2
        raise UsageError(exc.strerror or str(exc)) from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: run a task, print the summary, return the exit code.

    0 when the task ended complete; otherwise the highest applicable ``[retcode]``
    (missing data 20, not run 25, failed 30, scheduling error 35, ...); 2 for bad input.
    """
    # The `microflow` console script imports --module from the current folder, as
    # `python -m microflow` does (its sys.path[0] is the script's folder otherwise).
    if not {"", os.curdir, os.getcwd()} & set(sys.path):
        sys.path.insert(0, os.getcwd())
    return _command_line(argv, interruptible=True)


def _command_line(argv: Sequence[str] | None, interruptible: bool) -> int:
    """main() and luigi_run(): the log level, logging to stderr, the run; for main()
    (``interruptible``) Ctrl-C and SIGTERM end in an exit code too."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        early, argv = _prescan(argv)
        trigger = _trigger_options(early)
        undo_logging = _set_up_logging(_log_level(early), early.get("--logging-conf-file"),
                                       asked=True)
    except (ConfigError, UsageError, OSError, ValueError, KeyError) as exc:
        print(f"microflow: error: {exc}", file=sys.stderr)
        return 2
    try:
        if trigger is not None:
            schedule, max_runs, at_once = trigger
            with _stop_on_signals() as stop:
                worst = _trigger(schedule, lambda: _fire_in_a_child(argv),
                                 max_runs=max_runs, stop=stop, at_once=at_once)
            signum = getattr(stop, "signum", None)   # stopped by Ctrl-C or SIGTERM
            return worst if signum is None else 128 + signum
        # A build of a --every/--cron loop (_fire_in_a_child) says so; its own children
        # are not told.
        firing = os.environ.pop(_FIRING, None) == "1"
        with _sigterm_as_interrupt() if interruptible else contextlib.nullcontext():
            return _guarded_main(argv, interruptible, firing=firing)
    finally:
        undo_logging()


_FIRING = "MICROFLOW_FIRING"   # set for the process of one build of a --every/--cron loop


def _fire_in_a_child(argv: Sequence[str]) -> int:
    """One build of a --every/--cron loop, in a process of its own as cron would start
    it: the task modules are imported afresh, so a default computed at import (today's
    date) is this firing's. In a session of its own: Ctrl-C at the terminal reaches the
    loop, which lets the build finish; a second one is passed on to it. Returns its
    exit code (128 + the signal that ended it)."""
    import signal
    import subprocess
    env = dict(os.environ, **{_FIRING: "1"},
               PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    child = subprocess.Popen([sys.executable, "-c", f"import sys, {__name__} as microflow; "
                              f"sys.exit(microflow.main())", *argv],
                             start_new_session=True, env=env)
    try:
        code = child.wait()
    except BaseException as exc:   # the loop's second signal: this build stops too
        child.send_signal(signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT)
        child.wait()
        raise
    return 128 - code if code < 0 else code


# Flags the command line needs before argparse and the task modules: how to log, and
# whether to build on a schedule (those three leave argv: each build of a --every/--cron
# loop sees the plain command line, so it shares the pid lock of the same command run
# from crontab).
_EARLY_FLAGS = ("--log-level", "--logging-conf-file", "--every", "--cron", "--max-runs")
_TRIGGER_FLAGS = ("--every", "--cron", "--max-runs")


def _prescan(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """The one pass over the command line before argparse: ``({flag: value} of
    _EARLY_FLAGS, given as ``--flag VALUE`` or ``--flag=VALUE``, the last winning;
    argv without the trigger flags)``. Raises UsageError for a flag without a value."""
    values: dict[str, str] = {}
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, equals, value = arg.partition("=")
        if flag not in _EARLY_FLAGS:
            rest.append(arg)
            continue
        given = value if equals else next(args, None)
        if given is None:
            raise UsageError(f"{flag} needs a value")
        values[flag] = given
        if flag not in _TRIGGER_FLAGS:
            rest.extend([arg] if equals else [arg, given])
    return values, rest


def _trigger_options(early: Mapping[str, str]
                     ) -> tuple[Callable[[float], float], int | None, bool] | None:
    """From the prescanned flags: (schedule, max runs, whether to build at once), or
    None without --every/--cron. Raises UsageError for a bad combination."""
    if "--every" in early and "--cron" in early:
        raise UsageError("give --every or --cron, not both")
    if "--every" in early or "--cron" in early:
        schedule = (_every_schedule(early["--every"]) if "--every" in early
                    else _cron_schedule(early["--cron"]))
        runs = early.get("--max-runs")
        if runs is not None and (not runs.isdigit() or int(runs) < 1):
            raise UsageError(f"--max-runs {runs!r}: expected a whole number of 1 or more")
        return schedule, None if runs is None else int(runs), "--every" in early
    if "--max-runs" in early:
        raise UsageError("--max-runs goes with --every or --cron")
    return None


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """For a --every/--cron loop: SIGTERM or SIGINT ends it after the build under way
    (a second one stops that build too, as Ctrl-C does)."""
    import signal
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        _log.warning("%s: stopping after the build under way",
                     signal.Signals(signum).name)
        stop.signum = signum   # type: ignore[attr-defined]  # the exit code says it
        stop.set()
    handlers_before = {sig: signal.signal(sig, request_stop)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in handlers_before.items():
            signal.signal(sig, handler)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, stopping a command-line run the way Ctrl-C does (exit code 143)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While main() runs in the main thread, SIGTERM stops the build as Ctrl-C does:
    running tasks and their processes are stopped, the summary printed. Only main()
    installs a handler; build() as a library never does."""
    import signal
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOP_ASKING.clear()
    handler_before = signal.signal(signal.SIGTERM, _raise_terminated)
    usr1 = signal.signal(signal.SIGUSR1, lambda signum, frame: _STOP_ASKING.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler_before)
        signal.signal(signal.SIGUSR1, usr1)


def _luigi_run(argv: Sequence[str] | None = None) -> None:
    """Luigi's ``luigi`` command (``luigi.cmdline.luigi_run``): run the command line,
    then exit (SystemExit) with its code; Ctrl-C propagates as KeyboardInterrupt."""
    sys.exit(_command_line(argv, interruptible=False))


def run_server(api_port: int = 8082, address: str | None = None, unix_socket: str | None = None,
               scheduler: Scheduler | None = None) -> None:
    """Luigi's ``luigi.server.run``: serve a central scheduler on ``address`` (microflow
    binds 127.0.0.1 when none is given; luigid binds every interface) until interrupted,
    with ``[scheduler]`` options and ``state_path``."""
    if unix_socket:
        raise UsageError("unix sockets are not offered; serve on a port (--port)")
    serve(address or "127.0.0.1", int(api_port), scheduler=scheduler,
          state_path=get_config().get("scheduler", "state_path", None))


def luigid(argv: Sequence[str] | None = None) -> None:
    """Luigi's ``luigid`` command (``luigi.cmdline.luigid``): the central scheduler, with
    luigid's flags (``--port``, ``--address``, ``--state-path``, ``--pidfile``) and its
    logging set-up (DaemonLogging). ``--background`` is refused: run it under a
    process supervisor (systemd, supervisord, a container) instead."""
    import argparse
    parser = argparse.ArgumentParser(prog="luigid", description="Central scheduler")
    for flag in ("--pidfile", "--logdir", "--state-path", "--address", "--unix-socket"):
        parser.add_argument(flag)
    parser.add_argument("--background", action="store_true")
    parser.add_argument("--port", default=8082, type=int)
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if options.background:
        raise UsageError("luigid --background: microflow does not daemonize; run it under "
                         "a process supervisor instead")
    if options.state_path:
        set_config("scheduler", "state_path", options.state_path)
    DaemonLogging.setup(options)
    if options.pidfile:
        with open(options.pidfile, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    _server_module.run(api_port=options.port, address=options.address,   # patchable
                       unix_socket=options.unix_socket)                 # as Luigi's


def _log_level(early: Mapping[str, str]) -> str:
    """The level asked for: ``--log-level`` (prescanned), else ``[core] log_level``."""
    level = early.get("--log-level") or get_config().get("core", "log_level", "INFO")
    level = level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise UsageError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR "
                          f"or CRITICAL")
    return level


def _guarded_main(argv: Sequence[str], interruptible: bool = True,
                  firing: bool = False) -> int:
    """Run the command line, turning every error into a message and an exit code
    (KeyboardInterrupt too, unless not ``interruptible``); ``firing``: as a build of a
    --every/--cron loop."""
    try:
        outcome = _run_command_line(argv, firing=firing)
        if isinstance(outcome, int):
            return outcome
        code: int = outcome.exit_code
        return code
    except PidLockAlreadyTakenExit as exc:
        return int(exc.code or 0)
    except (ParameterException, TaskClassException, UsageError, ConfigError) as exc:
        print(f"microflow: error: {exc}", file=sys.stderr)
        return 2
    except (SchedulerUnavailable, SchedulerError) as exc:   # away, or refused us
        print(f"microflow: error: {exc}", file=sys.stderr)
        return _retcode("unhandled_exception")
    except KeyboardInterrupt as exc:
        if not interruptible:
            raise
        terminated = isinstance(exc, _Terminated)
        print(f"microflow: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except Exception as exc:
        if "--debug" in argv:   # the traceback too; the exit code stays the same
            import traceback
            traceback.print_exc()
        else:
            print(f"microflow: unhandled error: {exc!r} (run with --debug for the "
                  f"traceback)", file=sys.stderr)
        return _retcode("unhandled_exception")


###########################################################################################
# Luigi's worker and scheduler helpers, for libraries that bring a worker of their own
###########################################################################################
# Libraries built on Luigi (gokart, ...) ship a copy of Luigi's Worker that imports these
# from luigi.worker and luigi.scheduler and talks to the scheduler through its RPC
# methods, which microflow's Scheduler and RemoteScheduler answer as Luigi's do.

#: A worker's state in get_work's reply (Luigi's luigi.scheduler names).
WORKER_STATE_ACTIVE = "active"
WORKER_STATE_DISABLED = "disabled"

#: A task's retry policy as Luigi's worker sends it (``retry_policy_dict``).
RetryPolicy = collections.namedtuple(   # type: ignore[misc]  # the names are a tuple
    "RetryPolicy", _RETRY_POLICY_NAMES)


class TaskException(MicroflowError):
    """A task that cannot be scheduled or run as declared (Luigi's worker raises it)."""


class AsyncCompletionException(Exception):
    """complete() raised while checked in a pool; ``trace`` is the formatted traceback."""

    def __init__(self, trace: str) -> None:
        super().__init__(trace)
        self.trace = trace


class TracebackWrapper:
    """A traceback string in a result queue, told apart from a plain value."""

    def __init__(self, trace: str) -> None:
        self.trace = trace


def check_complete_cached(task: Task, completion_cache: dict[str, bool] | None = None) -> bool:
    """``task.complete()``, remembered in ``completion_cache`` (a dict) once true."""
    if completion_cache is not None and completion_cache.get(task.task_id):
        return True
    is_complete = task.complete()
    if completion_cache is not None and is_complete:
        completion_cache[task.task_id] = is_complete
    return is_complete


def check_complete(task: Task, out_queue: Any,
                   completion_cache: dict[str, bool] | None = None) -> None:
    """Put ``(task, complete or TracebackWrapper)`` on ``out_queue``; never raises."""
    try:
        is_complete: object = check_complete_cached(task, completion_cache)
    except Exception:
        import traceback
        is_complete = TracebackWrapper(traceback.format_exc())
    out_queue.put((task, is_complete))


class SingleProcessPool:
    """multiprocessing.Pool's apply_async/close/join, run at once in this process."""

    def apply_async(self, function: Callable[..., Any], args: Sequence[Any]) -> Any:
        return function(*args)

    def close(self) -> None:
        """Nothing to close."""

    def join(self) -> None:
        """Nothing to wait for."""


class DequeQueue(collections.deque["Any"]):
    """A deque with Queue's put() and get() (LIFO, as Luigi's)."""

    def put(self, obj: Any, block: Any = None, timeout: Any = None) -> None:
        self.append(obj)

    def get(self, block: Any = None, timeout: Any = None) -> Any:
        import queue
        try:
            return self.pop()
        except IndexError:
            raise queue.Empty from None


class TaskStatusReporter:
    """What a running task tells the scheduler (``set_status_message`` and the rest),
    for one task id of one worker; picklable, so it can go to a task process."""

    def __init__(self, scheduler: Any, task_id: str, worker_id: str,
                 scheduler_messages: Any) -> None:
        self._scheduler, self._task_id, self._worker_id = scheduler, task_id, worker_id
        self.scheduler_messages = scheduler_messages

    def update_tracking_url(self, tracking_url: str) -> None:
        self._scheduler.add_task(task_id=self._task_id, worker=self._worker_id,
                                 status=RUNNING, tracking_url=tracking_url)

    def update_status_message(self, message: str) -> None:
        self._scheduler.set_task_status_message(self._task_id, message)

    def update_progress_percentage(self, percentage: float) -> None:
        self._scheduler.set_task_progress_percentage(self._task_id, percentage)

    def decrease_running_resources(self, decrease_resources: dict[str, int]) -> None:
        self._scheduler.decrease_running_task_resources(self._task_id, decrease_resources)

    def report_task_statistics(self, statistics: Any) -> None:
        """Tell the scheduler's metrics collector ``statistics`` (Luigi's hook)."""
        report = getattr(self._scheduler, "report_task_statistics", None)
        if report is not None:
            report(self._task_id, statistics)


class SchedulerMessage:
    """A message from the scheduler to a running task; ``respond()`` answers it."""

    def __init__(self, scheduler: Any, task_id: str, message_id: str, content: Any,
                 **payload: Any) -> None:
        self._scheduler, self._task_id, self._message_id = scheduler, task_id, message_id
        self.content, self.payload = content, payload

    def __str__(self) -> str:
        return str(self.content)

    def __eq__(self, other: object) -> bool:
        equal: bool = self.content == other
        return equal

    def respond(self, response: Any) -> None:
        self._scheduler.add_scheduler_message_response(self._task_id, self._message_id,
                                                       response)


def rpc_message_callback(fn: _F) -> _F:
    """Mark a worker method as a handler of the scheduler's rpc_messages."""
    fn.is_rpc_message_callback = True   # type: ignore[attr-defined]
    return fn


class KeepAliveThread(threading.Thread):
    """Pings the scheduler every ``ping_interval`` seconds for ``worker_id`` and hands
    each rpc message of the reply to ``rpc_message_callback``, until stop()."""

    def __init__(self, scheduler: Any, worker_id: str, ping_interval: float,
                 rpc_message_callback: Callable[..., Any]) -> None:   # Luigi's names
        super().__init__(name=f"keep-alive {worker_id}", daemon=True)
        self._should_stop = threading.Event()
        self._scheduler, self._worker_id = scheduler, worker_id
        self._ping_interval = ping_interval
        self._rpc_message_callback = rpc_message_callback

    def stop(self) -> None:
        """End the thread after the ping under way, if any."""
        self._should_stop.set()

    def run(self) -> None:
        while not self._should_stop.wait(self._ping_interval):
            try:
                reply = self._scheduler.ping(worker=self._worker_id)
            except Exception as exc:   # a lost ping is retried at the next interval
                _log.warning("Failed pinging scheduler: %s", exc)
                continue
            for message in (reply or {}).get("rpc_messages") or ():
                self._rpc_message_callback(message)


_REPORTER_METHODS = {"tracking_url": "update_tracking_url",
                     "set_task_status_message": "update_status_message",
                     "set_task_progress_percentage": "update_progress_percentage",
                     "decrease_running_task_resources": "decrease_running_resources"}


class TaskProcess:
    """Luigi's process object of one task: ``start()`` runs it in a child process
    (a multiprocessing.Process, made then: importing multiprocessing costs every
    import of microflow otherwise), ``run()`` (what a worker of one process calls) in
    this one; either way its result goes on ``result_queue`` as ``(task_id, status,
    explanation, missing, new_requirements)``, each new requirement ``(module, family,
    str_params)``. What the task reports while it runs (status message, progress,
    tracking URL, resources) goes to ``status_reporter`` (a TaskStatusReporter).
    ``timeout_time``: when a worker stops it (``worker_timeout`` seconds after it was
    made; None: never)."""

    #: The task's reporting methods, and the reporter's they stand for (Luigi's table).
    forward_reporter_attributes = {
        "update_tracking_url": "set_tracking_url",
        "update_status_message": "set_status_message",
        "update_progress_percentage": "set_progress_percentage",
        "decrease_running_resources": "decrease_running_resources",
        "scheduler_messages": "scheduler_messages"}

    def __init__(self, task: Task, worker_id: str, result_queue: Any, status_reporter: Any,
                 use_multiprocessing: bool = False, worker_timeout: float = 0,
                 check_unfulfilled_deps: bool = True, check_complete_on_run: bool = False,
                 task_completion_cache: Any = None) -> None:
        self._process: Any = None
        self.task, self.worker_id, self.result_queue = task, worker_id, result_queue
        self.status_reporter = status_reporter
        self.worker_timeout = task.worker_timeout if task.worker_timeout is not None \
            else worker_timeout
        self.timeout_time = time.time() + self.worker_timeout if self.worker_timeout \
            else None
        self.use_multiprocessing = use_multiprocessing or self.timeout_time is not None
        self.check_unfulfilled_deps = check_unfulfilled_deps
        self.check_complete_on_run = check_complete_on_run
        self.task_completion_cache = task_completion_cache

    def _report(self, method: str, task_id: str, value: Any) -> None:
        getattr(self.status_reporter, _REPORTER_METHODS[method])(value)

    def run(self) -> None:
        """Run the task here and put its result on the queue; never raises but for
        Ctrl-C."""
        task = self.task
        if self.use_multiprocessing:   # a child: its own random state, as Luigi's
            _log.info("[pid %s] Worker %s running   %s", os.getpid(), self.worker_id, task)
        outcome = _execute_task(task, self.check_unfulfilled_deps,
                                self.check_complete_on_run, self._report)
        # Luigi's: None for a task that finished, [] for a failure
        requirements = None if outcome.status == DONE else [
            (dep.task_module, dep.get_task_family(), dep.to_str_params())
            for dep in outcome.new_deps or ()]
        self.result_queue.put((task.task_id, outcome.status, outcome.explanation,
                               list(outcome.missing), requirements))

    def start(self) -> None:
        """Run the task in a child process."""
        import multiprocessing
        self._process = multiprocessing.Process(target=self.run, daemon=True,
                                                name=f"TaskProcess-{self.task.task_id}")
        self._process.start()

    @property
    def pid(self) -> int | None:
        """The child's pid (None before start())."""
        return None if self._process is None else self._process.pid

    @property
    def exitcode(self) -> int | None:
        """The child's exit code; None while it runs (or when run here)."""
        return None if self._process is None else self._process.exitcode

    def is_alive(self) -> bool:
        """Whether the child still runs."""
        return self._process is not None and bool(self._process.is_alive())

    def join(self, timeout: float | None = None) -> None:
        """Wait for the child to end."""
        if self._process is not None:
            self._process.join(timeout)

    def terminate(self) -> None:
        """Stop the child (SIGTERM)."""
        if self._process is not None:
            self._process.terminate()


class ContextManagedTaskProcess(TaskProcess):
    """A TaskProcess that runs its task inside ``context``, the dotted name of a
    context manager class made with the process (``[worker] task_process_context``)."""

    def __init__(self, context: str | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context = context

    def run(self) -> None:
        if not self.context:
            return super().run()
        with _import_object(self.context)(self):
            return super().run()


#: The scheduler's remote methods by name: what the server serves and the client calls.
RPC_METHODS: dict[str, Callable[..., Any]] = {
    name: getattr(Scheduler, name) for name in _RPC_METHODS}


def rpc_method(**request_args: Any) -> Callable[[_F], _F]:
    """Decorator: serve a method of a Scheduler subclass remotely, as Luigi's
    ``@rpc_method()``; the server then answers ``/api/<its name>`` with it."""
    def register(fn: _F) -> _F:
        RPC_METHODS[fn.__name__] = fn
        return fn
    return register


class OrderedSet(collections.abc.MutableSet):   # type: ignore[type-arg]
    """A set that keeps the order items were added in (Luigi's)."""

    def __init__(self, iterable: Iterable[Any] | None = None) -> None:
        self._items: dict[Any, None] = dict.fromkeys(iterable or ())

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __reversed__(self) -> Iterator[Any]:
        return iter(list(self._items)[::-1])

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._items)!r})"

    def add(self, value: Any) -> None:
        self._items[value] = None

    def discard(self, value: Any) -> None:
        self._items.pop(value, None)

    def peek(self, last: bool = True) -> Any:
        """The last item (the first with ``last=False``); KeyError when empty."""
        if not self._items:
            raise KeyError("set is empty")
        return next(reversed(self._items)) if last else next(iter(self._items))

    def pop(self, last: bool = True) -> Any:
        """Take the last item (the first with ``last=False``); KeyError when empty."""
        item = self.peek(last)
        del self._items[item]
        return item


class SimpleTaskState:
    """Luigi's view of a scheduler's records (``scheduler._state``): the tasks
    (luigi.scheduler.Task: microflow's _TaskState) and workers (luigi.scheduler.Worker:
    _WorkerState) of one Scheduler, read and changed through the scheduler's own
    transitions, so its indexes stay right."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    def get_state(self) -> tuple[dict[str, Any], dict[str, Any], dict[Any, Any]]:
        """``(tasks, workers, batchers)``, the live dicts."""
        s = self._scheduler
        return s._tasks, s._workers, s._batchers

    def set_state(self, state: Sequence[Any]) -> None:
        """Take the tasks of ``state`` (get_state() of another scheduler) into this
        empty one. Raises SchedulerError if it has tasks."""
        self._scheduler.restore([{name: getattr(task, name) for name in _RECORD_FIELDS}
                                 for task in state[0].values()])

    def dump(self) -> None:
        """Save the state to ``[scheduler] state_path``."""
        self._scheduler.dump()

    def load(self) -> None:
        """Load the state from ``[scheduler] state_path``."""
        self._scheduler.load()

    def get_active_tasks(self) -> Iterator[_TaskState]:
        return iter(list(self._scheduler._tasks.values()))

    def get_active_tasks_by_status(self, *statuses: str) -> Iterator[_TaskState]:
        return (task for task in self.get_active_tasks() if task.status in statuses)

    def get_active_task_count_for_status(self, status: str) -> int:
        return sum(1 for _ in self.get_active_tasks_by_status(status))

    def get_batch_running_tasks(self, batch_id: str) -> list[_TaskState]:
        return self._scheduler._batch_members(batch_id)

    def set_batcher(self, worker_id: str, family: str, batcher_args: Iterable[str],
                    max_batch_size: float) -> None:
        self._scheduler.add_task_batcher(worker_id, family, batcher_args, max_batch_size)

    def get_batcher(self, worker_id: str, family: str) -> tuple[Any, Any]:
        """``(batched args, max batch size)``, or ``(None, None)``."""
        return self._scheduler._batchers.get((worker_id, family), (None, None))

    def num_pending_tasks(self) -> int:
        """PENDING and RUNNING tasks (Luigi counts both)."""
        return sum(1 for _ in self.get_active_tasks_by_status(PENDING, RUNNING))

    def get_task(self, task_id: str, default: Any = None, setdefault: Any = None) -> Any:
        """The record of ``task_id``; with ``setdefault`` (a record, or True) made
        when missing (with setdefault's status)."""
        task = self._scheduler._tasks.get(task_id)
        if task is None and setdefault:
            task = self._scheduler._get_or_create(task_id, getattr(setdefault, "status",
                                                                   PENDING))
        return default if task is None else task

    def has_task(self, task_id: str) -> bool:
        return task_id in self._scheduler._tasks

    def re_enable(self, task: _TaskState, config: Any = None) -> None:
        """Lift a disable (the task becomes FAILED, retried later)."""
        self._scheduler.re_enable_task(task.id)

    def set_batch_running(self, task: _TaskState, batch_id: str, worker_id: str) -> None:
        s = self._scheduler
        s._run_batch(task, batch_id, s._worker(worker_id), s._clock())

    def set_status(self, task: _TaskState, new_status: str, config: Any = None) -> None:
        """Change the status by the scheduler's rules (failures counted, disables)."""
        self._scheduler._apply_status(task, new_status, self._scheduler._clock())

    def fail_dead_worker_task(self, task: _TaskState, config: Any = None,
                              assistants: Any = None) -> None:
        """FAILED, when it runs on a worker that is gone."""
        if task.status == RUNNING and task.worker_running not in self._scheduler._workers:
            task.expl = f"Worker {task.worker_running} died while running the task"
            self.set_status(task, FAILED)

    def update_status(self, task: _TaskState, config: Any = None) -> None:
        """Apply what is due (retries, re-enables, removals), as a prune does."""
        self._scheduler._prune(self._scheduler._clock())

    def may_prune(self, task: _TaskState) -> bool:
        """Whether its removal time has passed."""
        return task.remove_at is not None and self._scheduler._clock() >= task.remove_at

    def inactivate_tasks(self, delete_tasks: Iterable[str]) -> None:
        for task_id in list(delete_tasks):
            task = self._scheduler._tasks.get(task_id)
            if task is not None:
                self._scheduler._delete(task)

    def get_active_workers(self, last_active_lt: float | None = None,
                           last_get_work_gt: float | None = None) -> Iterator[_WorkerState]:
        for worker in list(self._scheduler._workers.values()):
            if last_active_lt is not None and worker.last_active >= last_active_lt:
                continue
            if last_get_work_gt is not None and (worker.last_get_work is None or
                                                 worker.last_get_work <= last_get_work_gt):
                continue
            yield worker

    def get_assistants(self, last_active_lt: float | None = None) -> Iterator[_WorkerState]:
        return (worker for worker in self.get_active_workers(last_active_lt)
                if worker.assistant)

    def get_worker_ids(self) -> list[str]:
        return list(self._scheduler._workers)

    def get_worker(self, worker_id: str) -> _WorkerState:
        """The record of ``worker_id`` (made when missing)."""
        return self._scheduler._worker(worker_id)

    def inactivate_workers(self, delete_workers: Iterable[str]) -> None:
        s = self._scheduler
        for worker_id in list(delete_workers):
            if worker_id in s._workers:
                s._remove_worker(s._workers[worker_id], s._clock())

    def disable_workers(self, worker_ids: Iterable[str]) -> None:
        for worker_id in worker_ids:
            self._scheduler.disable_worker(worker_id)

    def update_metrics(self, task: _TaskState, config: Any = None) -> None:
        """Tell the metrics collector of the task's status, as a transition does."""
        self._scheduler._tell_collector("status", task, None, task.status)


class MetricsCollector(abc.ABC):
    """What the scheduler tells of each task's transitions (``[scheduler]
    metrics_collector``): subclass it for ``custom``."""

    @abc.abstractmethod
    def handle_task_started(self, task: Any) -> None:
        """``task`` (the scheduler's record) started running."""

    @abc.abstractmethod
    def handle_task_failed(self, task: Any) -> None:
        """``task`` failed."""

    @abc.abstractmethod
    def handle_task_disabled(self, task: Any, config: Any) -> None:
        """``task`` was disabled for failing too often."""

    @abc.abstractmethod
    def handle_task_done(self, task: Any) -> None:
        """``task`` is done."""

    def handle_task_statistics(self, task: Any, statistics: Any) -> None:
        """A running task reported ``statistics`` (report_task_statistics)."""

    def generate_latest(self, registry: Any) -> Any:
        """The text of the collector's metrics page, if it has one."""
        return None

    def configure_http_handler(self, http_handler: Any) -> None:
        """Prepare the response of the metrics page."""


class NoMetricsCollector(MetricsCollector):
    """Tells nobody (the default)."""

    def handle_task_started(self, task: Any) -> None:
        pass

    def handle_task_failed(self, task: Any) -> None:
        pass

    def handle_task_disabled(self, task: Any, config: Any) -> None:
        pass

    def handle_task_done(self, task: Any) -> None:
        pass


class MetricsCollectors(enum.Enum):
    """The values of ``[scheduler] metrics_collector``. ``prometheus``: microflow's
    server serves Luigi's Prometheus metrics at /metrics itself (no collector, no
    package); ``datadog`` needs luigi.contrib, which microflow does not provide."""

    default = 1
    none = 1
    datadog = 2
    prometheus = 3
    custom = 4

    @classmethod
    def get(cls, which: Any, custom_import: str | None = None) -> MetricsCollector:
        """The collector ``which`` names (a member or its name); for ``custom``, an
        instance of the MetricsCollector subclass ``custom_import`` names."""
        member = cls[which] if isinstance(which, str) else which
        if member in (cls.default, cls.prometheus):
            return NoMetricsCollector()
        if member is cls.custom:
            collector_class = _import_object(custom_import or "")
            if not (isinstance(collector_class, type) and
                    issubclass(collector_class, MetricsCollector)):
                raise ValueError(f"Custom MetricsCollectors need to extend the "
                                 f"MetricsCollector class, got {custom_import!r}")
            collector: MetricsCollector = collector_class()
            return collector
        raise ValueError(f"MetricsCollectors value {which!r}: the datadog collector is "
                         f"in luigi.contrib, which microflow does not provide")


class TaskHistory(abc.ABC):
    """What a task history records of each task, told by the scheduler."""

    @abc.abstractmethod
    def task_scheduled(self, task: Any) -> None:
        """``task`` (the scheduler's record) was added, PENDING."""

    @abc.abstractmethod
    def task_finished(self, task: Any, successful: bool) -> None:
        """``task`` is DONE (``successful``) or FAILED."""

    @abc.abstractmethod
    def task_started(self, task: Any, worker_host: str | None) -> None:
        """``task`` started running on ``worker_host``."""


class NopHistory(TaskHistory):
    """Records nothing."""

    def task_scheduled(self, task: Any) -> None:
        pass

    def task_finished(self, task: Any, successful: bool) -> None:
        pass

    def task_started(self, task: Any, worker_host: str | None) -> None:
        pass


class StoredTask:
    """A task as a history stores it: its record, status and host."""

    def __init__(self, task: Any, status: str, host: str | None = None) -> None:
        self._task, self.status, self.host = task, status, host

    @property
    def task_family(self) -> str:
        return self._task.family   # type: ignore[no-any-return]

    @property
    def parameters(self) -> dict[str, Any]:
        return self._task.params   # type: ignore[no-any-return]


#: Held while a worker forks a task's process (Luigi's), so that two threads of one
#: worker never fork at once.
fork_lock = threading.Lock()


###########################################################################################
# Luigi's process, lock, rpc fetchers, and tools (deps, deps_tree, luigi_grep)
###########################################################################################

def getpcmd(pid: int) -> str:
    """The command line of process ``pid`` (``[PROCESS_WITH_PID=pid]`` when it cannot
    be read)."""
    try:
        with open(f"/proc/{pid}/cmdline", encoding="utf-8", errors="replace") as f:
            return f.read().replace("\0", " ").rstrip()
    except OSError:
        return f"[PROCESS_WITH_PID={pid}]"


def get_info(pid_dir: str, my_pid: int | None = None) -> tuple[int, str, str]:
    """``(pid, its command line, the lock file of that command in pid_dir)``."""
    my_pid = os.getpid() if my_pid is None else my_pid
    command = getpcmd(my_pid)
    return my_pid, command, _lock_prefix(command, pid_dir) + ".0.lock"


_ACQUIRED: list[Any] = []   # the locks acquire_for() took, held until the process ends


def acquire_for(pid_dir: str, num_available: int = 1, kill_signal: int | None = None) -> bool:
    """Whether this process may run: at most ``num_available`` processes of the same
    command line at once, counted by kernel locks in ``pid_dir`` (held until the
    process ends, however it ends). With ``kill_signal``, the holders are asked to
    finish (SIGUSR1) and one more is allowed, as Luigi's ``--take-lock``."""
    _, command, _ = get_info(pid_dir)
    lock = _pid_lock(command, pid_dir, int(num_available), take=kill_signal is not None)
    if lock.__enter__() is None:
        print(f"Pid(s) {set(_lock_holders(command, pid_dir))} already running")
        return False
    _ACQUIRED.append(lock)
    return True


def check_pid(pidfile: str | None) -> int:
    """The pid in ``pidfile`` if that process runs, else 0."""
    if pidfile and os.path.exists(pidfile):
        try:
            with open(pidfile, encoding="utf-8") as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return 0
    return 0


def write_pid(pidfile: str) -> None:
    """Write this process's pid to ``pidfile`` (its folder made)."""
    folder = os.path.dirname(pidfile)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(pidfile, "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))


def get_log_format() -> str:
    """The central scheduler's log line format."""
    return "%(asctime)s %(name)s[%(process)s] %(levelname)s: %(message)s"


def get_spool_handler(filename: str) -> Any:
    """A handler writing to ``filename``, a new file each day, a week kept."""
    import logging
    import logging.handlers
    handler = logging.handlers.TimedRotatingFileHandler(filename=filename, when="d",
                                                        encoding="utf8", backupCount=7)
    handler.setFormatter(logging.Formatter(get_log_format()))
    return handler


class URLLibFetcher:
    """Luigi's client transport on urllib: POSTs a form body, returns the reply's text
    (basic auth from the URL's user and password)."""

    @property
    def raises(self) -> tuple[type[BaseException], ...]:
        """The errors of a scheduler that cannot be reached."""
        import socket
        import urllib.error
        return urllib.error.URLError, socket.timeout

    def fetch(self, full_url: str, body: Mapping[str, Any] | None,
              timeout: float | None) -> str:
        import base64
        import urllib.parse
        import urllib.request
        url = urllib.parse.urlsplit(full_url)
        request = urllib.request.Request(url._replace(
            netloc=url.netloc.rpartition("@")[2]).geturl())
        if url.username:
            pair = f"{url.username}:{url.password or ''}".encode("utf-8")
            request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
        if body:
            request.data = urllib.parse.urlencode(body).encode("utf-8")
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.read().decode("utf-8")   # type: ignore[no-any-return]

    def close(self) -> None:
        """Nothing is kept open."""


class RequestsFetcher:
    """The same through a ``requests`` session (made again in a forked child, which
    must not share the parent's connections); ImportError without requests."""

    def __init__(self) -> None:
        requests = _optional_package("requests", "RequestsFetcher")
        self.raises = requests.exceptions.RequestException
        self.session, self.process_id = requests.Session(), os.getpid()

    def check_pid(self) -> None:
        """A new session in a new process."""
        if os.getpid() != self.process_id:
            requests = _optional_package("requests", "RequestsFetcher")
            self.session, self.process_id = requests.Session(), os.getpid()

    def fetch(self, full_url: str, body: Any, timeout: float | None) -> str:
        self.check_pid()
        reply = self.session.post(full_url, data=body, timeout=timeout)
        reply.raise_for_status()
        return reply.text   # type: ignore[no-any-return]

    def close(self) -> None:
        self.session.close()


# -- Luigi's tools: deps, deps_tree, luigi_grep; and the safe tar extractor ---------------

def get_task_requires(task: Task) -> set[Task]:
    """What ``task`` requires, as a set."""
    return set(flatten(task.requires()))


def dfs_paths(start_task: Task, goal_task_family: str | None,
              path: list[Task] | None = None) -> Iterator[Task]:
    """The tasks on every path from ``start_task`` down to a task of
    ``goal_task_family`` (None: every task below)."""
    path = [start_task] if path is None else path
    if goal_task_family is None or start_task.task_family == goal_task_family:
        yield from path
    for required in get_task_requires(start_task) - set(path):
        yield from dfs_paths(required, goal_task_family, path + [required])


class upstream(Config):
    """``--upstream-family``: the family the deps tool looks for paths to."""

    family = OptionalParameter(default=None)


def find_deps(task: Task, upstream_task_family: str | None) -> set[Task]:
    """Every task on a path from ``task`` to ``upstream_task_family``."""
    return set(dfs_paths(task, upstream_task_family))


def find_deps_cli() -> set[Task]:
    """find_deps() of the task on the command line (sys.argv)."""
    with CmdlineParser.global_instance(sys.argv[1:]) as parsed:
        return find_deps(parsed.get_task_obj(), upstream().family)


def get_task_output_description(task_output: Any) -> str:
    """``[FileSystem] path`` for a file target, else "to be determined"."""
    if isinstance(task_output, FileSystemTarget):
        return f"[FileSystem] {task_output.path}"
    return "to be determined"


def _deps_main() -> None:
    """Print each task on the paths the command line asks for, with its outputs."""
    for task in find_deps_cli():
        print(f"   TASK: {task}")
        for target in flatten(task.output()):
            print(f"                       : {get_task_output_description(target)}")


class bcolors:
    """The colours of print_tree()."""

    OKBLUE = "\033[94m"
    OKGREEN = "\033[92m"
    ENDC = "\033[0m"


def print_tree(task: Task, indent: str = "", last: bool = True) -> str:
    """The dependency tree of ``task``, each task with its significant parameters and
    whether it is complete, in Luigi's deps_tree layout."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Task .* without outputs has no custom complete")
        state = bcolors.OKGREEN + "COMPLETE" if task.complete() else \
            bcolors.OKBLUE + "PENDING"
    branch, indent = ("└─--", indent + "    ") if last else ("|---", indent + "|   ")
    text = (f"\n{indent[:-4]}{branch}[{type(task).__name__}-"
            f"{task.to_str_params(only_significant=True)} ({state}{bcolors.ENDC})]")
    children = flatten(task.requires())
    for number, child in enumerate(children, 1):
        text += print_tree(child, indent, number == len(children))
    return text


def _deps_tree_main() -> None:
    """Print the dependency tree of the task on the command line (sys.argv)."""
    with CmdlineParser.global_instance(sys.argv[1:]) as parsed:
        print(print_tree(parsed.get_task_obj()))


class LuigiGrep:
    """Search a central scheduler's graph (``/api/graph``) by task-name prefix or by
    status; each result ``{"name", "status", "deps_by_status": {status: [ids]}}``."""

    def __init__(self, host: str, port: Any) -> None:
        self._host, self._port = host, port

    @property
    def graph_url(self) -> str:
        return f"http://{self._host}:{self._port}/api/graph"

    def _fetch_json(self) -> dict[str, Any]:
        import urllib.request
        print("Fetching from url: " + self.graph_url)
        with urllib.request.urlopen(self.graph_url) as reply:
            return json.loads(reply.read().decode("utf-8"))   # type: ignore[no-any-return]

    @staticmethod
    def _build_results(jobs: Mapping[str, Any], job: str) -> dict[str, Any]:
        by_status: dict[str, list[str]] = collections.defaultdict(list)
        for dep in jobs[job]["deps"]:
            by_status[jobs[dep]["status"] if dep in jobs else UNKNOWN].append(dep)
        return {"name": job, "status": jobs[job]["status"], "deps_by_status": by_status}

    def prefix_search(self, job_name_prefix: str) -> Iterator[dict[str, Any]]:
        """The tasks whose id starts with ``job_name_prefix``."""
        jobs = self._fetch_json()["response"]
        return (self._build_results(jobs, job) for job in jobs
                if job.startswith(job_name_prefix))

    def status_search(self, status: str) -> Iterator[dict[str, Any]]:
        """The tasks in ``status`` (any case)."""
        jobs = self._fetch_json()["response"]
        return (self._build_results(jobs, job) for job in jobs
                if jobs[job]["status"].lower() == status.lower())


def _luigi_grep_main(argv: Sequence[str] | None = None) -> None:
    """``luigi-grep``: print the tasks found, with their dependencies by status."""
    import argparse
    parser = argparse.ArgumentParser("luigi-grep", description="search the tasks of a "
                                     "central scheduler through its JSON API")
    parser.add_argument("--scheduler-host", default="localhost")
    parser.add_argument("--scheduler-port", default="8082")
    parser.add_argument("--prefix", default=None, help="task ids starting with this")
    parser.add_argument("--status", default=None, help="tasks in this status")
    args = parser.parse_args(argv)
    grep = LuigiGrep(args.scheduler_host, args.scheduler_port)
    found = grep.prefix_search(args.prefix) if args.prefix else \
        grep.status_search(args.status) if args.status else iter(())
    for job in found:
        print(f"{job['name']}: {job['status']}, Dependencies:")
        for status, ids in job["deps_by_status"].items():
            print(f"  status={status}")
            for task_id in ids:
                print(f"    {task_id}")


class SafeExtractor:
    """Extract a tar file into ``path``, refusing (RuntimeError) an archive with a
    member that would land outside it."""

    def __init__(self, path: str = ".") -> None:
        self.path = path

    @staticmethod
    def _is_within_directory(directory: str, target: str) -> bool:
        directory, target = os.path.abspath(directory), os.path.abspath(target)
        return os.path.commonpath([directory, target]) == directory

    def safe_extract(self, tar_path: str, members: Any = None, *,
                     numeric_owner: bool = False) -> None:
        """Extract ``tar_path`` (its ``members`` only, when given)."""
        import tarfile
        with tarfile.open(tar_path, "r") as tar:
            for member in tar.getmembers():
                if not self._is_within_directory(self.path,
                                                 os.path.join(self.path, member.name)):
                    raise RuntimeError(f"Attempted Path Traversal in Tar File: "
                                       f"{member.name!r}")
            extra: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") \
                else {}
            tar.extractall(self.path, members, numeric_owner=numeric_owner, **extra)


#: get_work's reply as Luigi's worker unpacks it.
GetWorkResponse = collections.namedtuple("GetWorkResponse", (
    "task_id", "running_tasks", "n_pending_tasks", "n_unique_pending",
    "n_pending_last_scheduled", "worker_state"))


###########################################################################################
# Luigi's module paths: microflow.util, microflow.tools.range, ..., and install_as_luigi()
###########################################################################################

def _run(cmdline_args: Sequence[str] | None = None, main_task_cls: type[Task] | None = None,
         worker_scheduler_factory: Any = None, use_dynamic_argparse: Any = None,
         local_scheduler: bool = False, detailed_summary: bool = False) -> Any:
    """Luigi's ``luigi.interface._run``: run() returning the RunResult (with its
    ``worker``) always; PidLockAlreadyTakenExit when the command holds its lock
    elsewhere."""
    return run(cmdline_args, main_task_cls, worker_scheduler_factory,
               use_dynamic_argparse, local_scheduler, detailed_summary=True)


def _root_task(worker: Any) -> Task:
    """The first task ``worker`` was given: the root of its run."""
    return next(iter(_record_of(worker).scheduled.values()))


#: The summary categories in Luigi's order (luigi.execution_summary).
_ORDERED_STATUSES = ("already_done", "completed", "ever_failed", "failed",
                     "scheduling_error", "still_pending", "still_pending_ext",
                     "run_by_other_worker", "upstream_failure", "upstream_missing_dependency",
                     "upstream_run_by_other_worker", "upstream_scheduling_error", "not_run")


def add_config_path(path: str) -> bool:
    """Read one more configuration file (cfg, or TOML when named ``.toml``) over the
    configuration in force, and on every later reload; False, with Luigi's warning,
    when there is no such file."""
    if not os.path.isfile(path):
        warnings.warn(f"Config file does not exist: {path}")
        return False
    _ConfigParser.add_config_path(path)
    return True


def previous(task: Task) -> Task:
    """The same task one step earlier: its one date, hour, minute, second or interval
    parameter moved back one unit. NotImplementedError when it has none, or several."""
    moved = {}
    for name, param in task.get_params():
        value = getattr(task, name)
        if isinstance(param, DateIntervalParameter):
            moved[name] = value.prev()
        elif isinstance(param, (DateParameter, _DatetimeParameterBase)):
            step = getattr(param, "_timedelta", datetime.timedelta(days=1))
            moved[name] = value - step
    if not moved:
        raise NotImplementedError("No task parameter - can't determine previous task")
    if len(moved) > 1:
        raise NotImplementedError("Too many date-related task parameters - can't "
                                  "determine previous task")
    earlier: Task = task.clone(**moved)
    return earlier


def get_previous_completed(task: Task, max_steps: int = 10) -> Task | None:
    """The nearest earlier task (previous() up to ``max_steps`` times) that is
    complete, or None."""
    earlier = task
    for _ in range(max_steps):
        earlier = previous(earlier)
        _log.debug("Checking if %s is complete", earlier)
        if earlier.complete():
            return earlier
    return None


def _task_wraps(task_class: type[Task]) -> Any:
    """Give a wrapping task class the wrapped one's name, module and docstring, so its
    family (and pickling) stays that of ``task_class`` (Luigi's helper)."""
    import functools
    return functools.wraps(task_class, updated=())


_UNSET = object()


class _LuigiModule(types.ModuleType):
    """One of Luigi's module paths. What a library assigns or ``mock.patch``es on it
    (``luigi.interface._schedule_and_run``, ``luigi.worker.Worker``,
    ``luigi.parameter.warnings``) is also set where microflow's own code reads it, this
    module's globals, and put back as it was when the patch is undone; the Python
    modules Luigi's module imports (``luigi.parameter.operator``) are microflow's."""

    def __getattr__(self, name: str) -> Any:
        value = globals().get(name)
        if isinstance(value, types.ModuleType) and not isinstance(value, _LuigiModule):
            return value
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        here, there = self.__dict__.get(name, _UNSET), globals().get(name, _UNSET)
        shared = here is there or (here is _UNSET and isinstance(there, types.ModuleType))
        if there is not _UNSET and shared:
            self.__dict__.setdefault("_replaced", {}).setdefault(name, there)
            globals()[name] = value
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        original = self.__dict__.get("_replaced", {}).pop(name, _UNSET)
        if original is not _UNSET:   # a patch undone: microflow's own name back
            globals()[name] = original


def _module(name: str, doc: str, **members: Any) -> Any:
    """``microflow.<name>``, one of Luigi's module paths, as a real module registered in
    sys.modules, so ``import microflow.util`` and ``from microflow.tools.range import
    RangeDaily`` work as they read (the copy run as ``__main__`` registers none)."""
    module = _LuigiModule(f"{__name__}.{name}", doc)
    module.__dict__.update(members)
    if __name__ != "__main__":
        sys.modules[module.__name__] = module
    return module


def _parameter_names() -> dict[str, Any]:
    names: dict[str, Any] = {name: value for name, value in globals().items()
                             if isinstance(value, type)
                             and name.endswith(("Parameter", "Exception", "Warning"))}
    names.update(ParameterVisibility=ParameterVisibility, _no_value=_no_value,
                 _DictParamEncoder=_FrozenJSONEncoder,
                 _NoValueType=_NoValueType, OptionalParameterMixin=_OptionalMixin)
    return names


def _task_regex(name: str) -> Any:
    """luigi.task's ``TASK_ID_INVALID_CHAR_REGEX``, compiled on first use."""
    if name != "TASK_ID_INVALID_CHAR_REGEX":
        return _no_such(_task_module, name)
    _task_module.TASK_ID_INVALID_CHAR_REGEX = re.compile(_TASK_ID_INVALID_CHAR)
    return _task_module.TASK_ID_INVALID_CHAR_REGEX


def _scheduler_regex(name: str) -> Any:
    """luigi.scheduler's ``TASK_FAMILY_RE`` (the family at the start of a task id),
    compiled on first use."""
    if name != "TASK_FAMILY_RE":
        return _no_such(_scheduler_module, name)
    _scheduler_module.TASK_FAMILY_RE = re.compile(r"([^(_]+)[(_]")
    return _scheduler_module.TASK_FAMILY_RE


def _no_such(module: Any, name: str) -> Any:
    """The AttributeError of a module's ``__getattr__`` for a name it does not have."""
    raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")


# Luigi's type variables of luigi.parameter: name -> (bound, or None).
_PARAMETER_TYPEVARS = {"T": None, "TaskType": "Task", "ChoiceType": None,
                       "EnumParameterType": "enum.Enum", "NumericalType": None,
                       "ListT": "list", "DictT": "dict"}


def _config_path_type(name: str) -> Any:
    """``ConfigPath``, Luigi's TypedDict of a ``config_path``, and its type variables,
    made on first use (typing costs import time nobody else pays)."""
    import typing
    if name in _PARAMETER_TYPEVARS:
        bound = _PARAMETER_TYPEVARS[name]
        # Checkers want a TypeVar named by a literal; these are made by name, at run time.
        type_variable: Any = getattr(typing, "TypeVar")
        made = type_variable(name, bound=bound) if bound else type_variable(name)
        setattr(parameter, name, made)
        return made
    if name != "ConfigPath":
        raise AttributeError(f"module {parameter.__name__!r} has no attribute {name!r}")
    parameter.ConfigPath = typing.TypedDict(   # type: ignore[misc]  # made at run time
        "ConfigPath", {"section": str, "name": str})
    parameter.ConfigPath.__module__ = parameter.__name__
    return parameter.ConfigPath


configuration = _module("configuration", "Luigi's luigi.configuration.",
                        get_config=get_config, add_config_path=add_config_path,
                        LuigiConfigParser=_ConfigParser, LuigiTomlParser=_ConfigParser)
# One parser reads cfg and TOML files alike: Luigi's two classes are the one class here.
configuration.core = _module("configuration.core", "Luigi's luigi.configuration.core.",
                             get_config=get_config, add_config_path=add_config_path,
                             PARSERS={"cfg": _ConfigParser, "conf": _ConfigParser,
                                      "ini": _ConfigParser, "toml": _ConfigParser},
                             DEFAULT_PARSER="cfg")
configuration.base_parser = _module("configuration.base_parser",
                                    "Luigi's luigi.configuration.base_parser.",
                                    BaseParser=BaseParser)
configuration.cfg_parser = _module(
    "configuration.cfg_parser", "Luigi's luigi.configuration.cfg_parser.",
    LuigiConfigParser=_ConfigParser, EnvironmentInterpolation=EnvironmentInterpolation,
    CombinedInterpolation=CombinedInterpolation,
    InterpolationMissingEnvvarError=InterpolationMissingEnvvarError)
configuration.toml_parser = _module("configuration.toml_parser",
                                    "Luigi's luigi.configuration.toml_parser.",
                                    LuigiTomlParser=_ConfigParser,
                                    toml_enabled=sys.version_info >= (3, 11))
date_interval = _module("date_interval", "Luigi's luigi.date_interval.",
                        DateInterval=DateInterval, Date=_Date, Week=_Week, Month=_Month,
                        Year=_Year, Custom=_Custom)
_event_module = _module("event", "Luigi's luigi.event.", Event=Event)
_FORMAT_NAMES = (
    "Format", "ChainFormat", "NopFormat", "WrappedFormat", "TextFormat", "NewlineFormat",
    "MixedUnicodeBytesFormat", "GzipFormat", "Bzip2Format", "BaseWrapper", "FileWrapper",
    "TextWrapper", "NewlineWrapper", "MixedUnicodeBytesWrapper", "InputPipeProcessWrapper",
    "OutputPipeProcessWrapper", "Text", "UTF8", "SysNewLine", "Nop", "Gzip", "Bzip2",
    "MixedUnicodeBytes", "get_default_format")
_format_module = _module("format", "Luigi's luigi.format.",
                         **{name: globals()[name] for name in _FORMAT_NAMES})
freezing = _module("freezing", "Luigi's luigi.freezing.", FrozenOrderedDict=FrozenOrderedDict,
                   recursively_freeze=_freeze, recursively_unfreeze=_unfreeze)
mock = _module("mock", "Luigi's luigi.mock.", MockTarget=MockTarget,
               MockFileSystem=MockFileSystem)
execution_summary = _module("execution_summary", "Luigi's luigi.execution_summary.",
                            summary=summary, _summary_dict=_summary_dict,
                            _root_task=_root_task, _ORDERED_STATUSES=_ORDERED_STATUSES,
                            LuigiStatusCode=LuigiStatusCode, LuigiRunResult=RunResult,
                            execution_summary=_SummaryOptions,
                            _create_one_line_summary=_one_line_summary,
                            _summary_wrap=_summary_wrap, _tasks_status=_status_of,
                            _group_tasks_by_name_and_status=_group_by_family)
parameter = _module("parameter", "Luigi's luigi.parameter.", **_parameter_names(),
                    __getattr__=_config_path_type)
_target_module = _module("target", "Luigi's luigi.target.", Target=Target, FileSystem=FileSystem,
                         FileSystemTarget=FileSystemTarget,
                         FileSystemException=FileSystemException,
                         FileAlreadyExists=FileAlreadyExists,
                         MissingParentDirectory=MissingParentDirectory,
                         NotADirectory=NotADirectory, AtomicLocalFile=AtomicLocalFile)
local_target = _module("local_target", "Luigi's luigi.local_target.",
                       LocalTarget=LocalTarget, LocalFileSystem=LocalFileSystem,
                       atomic_file=atomic_file)
_task_module = _module("task", "Luigi's luigi.task.", Task=Task, ExternalTask=ExternalTask,
                       WrapperTask=WrapperTask, Config=Config,
                       DynamicRequirements=DynamicRequirements, flatten=flatten,
                       flatten_output=flatten_output, getpaths=getpaths, externalize=externalize,
                       namespace=namespace, auto_namespace=auto_namespace, task_id_str=task_id_str,
                       Register=Register, Event=Event, _task_wraps=_task_wraps,
                       Parameter=Parameter, warnings=warnings,
                       BulkCompleteNotImplementedError=BulkCompleteNotImplementedError,
                       MixinNaiveBulkComplete=MixinNaiveBulkComplete,
                       TASK_ID_INCLUDE_PARAMS=TASK_ID_INCLUDE_PARAMS,
                       TASK_ID_TRUNCATE_PARAMS=TASK_ID_TRUNCATE_PARAMS,
                       TASK_ID_TRUNCATE_HASH=TASK_ID_TRUNCATE_HASH, __getattr__=_task_regex)
task_register = _module("task_register", "Luigi's luigi.task_register.", Register=Register,
                        load_task=load_task, TaskClassException=TaskClassException,
                        TaskClassNotFoundException=TaskClassNotFoundException,
                        TaskClassAmbigiousException=TaskClassAmbigiousException)
task_status = _module("task_status", "Luigi's luigi.task_status: the task states.",
                      PENDING=PENDING, RUNNING=RUNNING, DONE=DONE, FAILED=FAILED,
                      DISABLED=DISABLED, UNKNOWN=UNKNOWN, BATCH_RUNNING=BATCH_RUNNING,
                      SUSPENDED=SUSPENDED)
util = _module("util", "Luigi's luigi.util.", requires=requires, inherits=inherits,
               common_params=common_params, copies=copies, delegates=delegates,
               previous=previous, get_previous_completed=get_previous_completed)
cmdline_parser = _module("cmdline_parser", "Luigi's luigi.cmdline_parser.",
                         CmdlineParser=CmdlineParser)
cmdline = _module("cmdline", "Luigi's luigi.cmdline.", luigi_run=_luigi_run, luigid=luigid)
_server_module = _module("server", "Luigi's luigi.server.", run=run_server)
tools = _module("tools", "Luigi's luigi.tools.")
tools.deps = _module("tools.deps", "Luigi's luigi.tools.deps: the tasks between two.",
                     get_task_requires=get_task_requires, dfs_paths=dfs_paths,
                     upstream=upstream, find_deps=find_deps, find_deps_cli=find_deps_cli,
                     get_task_output_description=get_task_output_description,
                     main=_deps_main)
tools.deps_tree = _module("tools.deps_tree", "Luigi's luigi.tools.deps_tree.",
                          bcolors=bcolors, print_tree=print_tree, main=_deps_tree_main)
tools.luigi_grep = _module("tools.luigi_grep", "Luigi's luigi.tools.luigi_grep.",
                           LuigiGrep=LuigiGrep, main=_luigi_grep_main)
safe_extractor = _module("safe_extractor", "Luigi's luigi.safe_extractor.",
                         SafeExtractor=SafeExtractor)
tools.range = _module("tools.range", "Luigi's luigi.tools.range: backfill ranges.",
                      RangeBase=RangeBase, RangeDailyBase=RangeDailyBase,
                      RangeDaily=RangeDaily, RangeHourlyBase=RangeHourlyBase,
                      RangeHourly=RangeHourly, RangeByMinutes=RangeByMinutes,
                      RangeByMinutesBase=RangeByMinutesBase, RangeMonthly=RangeMonthly,
                      RangeEvent=RangeEvent, most_common=most_common,
                      infer_bulk_complete_from_fs=infer_bulk_complete_from_fs)
interface = _module("interface", "Luigi's luigi.interface.", build=build, run=run, _run=_run,
                    _schedule_and_run=_schedule_and_run,
                    core=core, PidLockAlreadyTakenExit=PidLockAlreadyTakenExit,
                    _WorkerSchedulerFactory=WorkerSchedulerFactory)
# Luigi's client module; its RPCError is the error of a scheduler that does not answer.
rpc = _module("rpc", "Luigi's luigi.rpc.", RemoteScheduler=RemoteScheduler,
              RPCError=SchedulerUnavailable, URLLibFetcher=URLLibFetcher,
              RequestsFetcher=RequestsFetcher,
              # microflow's client uses neither requests nor unix sockets
              HAS_REQUESTS=False, HAS_UNIX_SOCKET=False)
metrics = _module("metrics", "Luigi's luigi.metrics: who hears of each transition.",
                  MetricsCollector=MetricsCollector, MetricsCollectors=MetricsCollectors,
                  NoMetricsCollector=NoMetricsCollector)
task_history = _module("task_history", "Luigi's luigi.task_history.", TaskHistory=TaskHistory,
                       NopHistory=NopHistory, StoredTask=StoredTask)
_lock_module = _module("lock", "Luigi's luigi.lock: one run of a command at a time.",
                       acquire_for=acquire_for, get_info=get_info, getpcmd=getpcmd)


def _process_logger(name: str) -> Any:
    """luigi.process's loggers, made on first use (logging is imported lazily)."""
    import logging
    if name in ("rootlogger", "server_logger"):
        return logging.getLogger("luigi.server" if name == "server_logger" else None)
    return _no_such(_process_module, name)


_process_module = _module("process", "Luigi's luigi.process: the central scheduler's pid file "
                          "and logs.", check_pid=check_pid, write_pid=write_pid,
                          get_log_format=get_log_format, get_spool_handler=get_spool_handler,
                          __getattr__=_process_logger)
retcodes = _module("retcodes", "Luigi's luigi.retcodes.", retcode=retcode,
                   run_with_retcodes=_luigi_run)
def _notifications_names(name: str) -> Any:
    """``DEFAULT_CLIENT_EMAIL``, made on first use (it asks for the host name)."""
    if name == "DEFAULT_CLIENT_EMAIL":
        return _default_client_email()
    return _no_such(notifications, name)


notifications = _module("notifications", "Luigi's luigi.notifications.", email=email,
                        smtp=smtp, send_email=send_email, send_error_email=send_error_email,
                        wrap_traceback=wrap_traceback, format_task_error=format_task_error,
                        DEBUG=False, send_email_smtp=send_email_smtp,
                        send_email_ses=send_email_ses, send_email_sns=send_email_sns,
                        send_email_sendgrid=send_email_sendgrid, sendgrid=sendgrid,
                        generate_email=generate_email,
                        TestNotificationsTask=TestNotificationsTask,
                        __getattr__=_notifications_names)
batch_notifier = _module("batch_notifier", "Luigi's luigi.batch_notifier.",
                         BatchNotifier=BatchNotifier, batch_email=batch_email,
                         send_email=send_email, ExplQueue=ExplQueue)
setup_logging = _module("setup_logging", "Luigi's luigi.setup_logging.",
                        InterfaceLogging=InterfaceLogging, DaemonLogging=DaemonLogging,
                        BaseLogging=BaseLogging)
_worker_module = _module("worker",
                         "Luigi's luigi.worker: the worker and the helpers that copies "
                         "of Luigi's worker import.",
                         worker=_OPTION_CLASSES["worker"], Worker=Worker,
                         TaskException=TaskException,
                         AsyncCompletionException=AsyncCompletionException,
                         TracebackWrapper=TracebackWrapper, check_complete=check_complete,
                         check_complete_cached=check_complete_cached,
                         SingleProcessPool=SingleProcessPool, DequeQueue=DequeQueue,
                         TaskStatusReporter=TaskStatusReporter, SchedulerMessage=SchedulerMessage,
                         rpc_message_callback=rpc_message_callback,
                         KeepAliveThread=KeepAliveThread, GetWorkResponse=GetWorkResponse,
                         TaskProcess=TaskProcess, fork_lock=fork_lock,
                         _get_retry_policy_dict=_retry_policy_dict,
                         ContextManagedTaskProcess=ContextManagedTaskProcess)
_scheduler_module = _module("scheduler", "Luigi's luigi.scheduler.",
                            scheduler=_OPTION_CLASSES["scheduler"], Scheduler=Scheduler,
                            Task=_TaskState, Worker=_WorkerState, SimpleTaskState=SimpleTaskState,
                            OrderedSet=OrderedSet, RPC_METHODS=RPC_METHODS, rpc_method=rpc_method,
                            STATUS_TO_UPSTREAM_MAP=STATUS_TO_UPSTREAM_MAP,
                            UPSTREAM_SEVERITY_ORDER=UPSTREAM_SEVERITY_ORDER,
                            UPSTREAM_SEVERITY_KEY=UPSTREAM_SEVERITY_KEY,
                            __getattr__=_scheduler_regex,
                            RetryPolicy=RetryPolicy, WORKER_STATE_ACTIVE=WORKER_STATE_ACTIVE,
                            WORKER_STATE_DISABLED=WORKER_STATE_DISABLED,
                            UPSTREAM_RUNNING=UPSTREAM_RUNNING,
                            UPSTREAM_MISSING_INPUT=UPSTREAM_MISSING_INPUT,
                            UPSTREAM_FAILED=UPSTREAM_FAILED, UPSTREAM_DISABLED=UPSTREAM_DISABLED)
# Luigi's module paths named like the engine's locals (task, worker, scheduler, event,
# target, server, lock, process) or a builtin (format): not globals, so nothing in
# this file shadows them, or is shadowed;
# ``microflow.task`` and ``from microflow import format`` still give the modules.
_SHADOWING_MODULES = {"format": _format_module, "task": _task_module,
                      "worker": _worker_module, "scheduler": _scheduler_module,
                      "event": _event_module, "target": _target_module,
                      "server": _server_module, "lock": _lock_module,
                      "process": _process_module}


def __getattr__(name: str) -> Any:
    """``microflow.task``, ``.worker``, ``.format``, ...: Luigi's modules of those names."""
    try:
        return _SHADOWING_MODULES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None

# Luigi's module paths microflow answers, as ``luigi.<path>``: microflow.<path> each.
_LUIGI_MODULES = ("batch_notifier", "cmdline", "cmdline_parser", "configuration",
                  "configuration.core", "configuration.base_parser",
                  "configuration.cfg_parser", "configuration.toml_parser", "date_interval",
                  "event", "execution_summary",
                  "format", "freezing", "interface", "local_target", "lock", "metrics", "mock",
                  "notifications", "process", "task_history",
                  "parameter", "retcodes", "rpc", "scheduler", "server", "setup_logging",
                  "target", "task", "task_register", "task_status", "tools", "tools.range",
                  "tools.deps", "tools.deps_tree", "tools.luigi_grep", "safe_extractor",
                  "util", "worker")


class _LuigiFinder:
    """The import hook of install_as_luigi(), for the ``luigi.*`` names microflow does
    not answer (those it does are in sys.modules): an ImportError that says so, rather
    than a half-working import, or the real Luigi's module mixed with microflow."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.startswith("luigi.") and fullname not in sys.modules:
            hint = (" (Luigi's contrib modules need Luigi and their own packages)"
                    if fullname.split(".")[1] == "contrib" else "")
            raise ModuleNotFoundError(f"No module named {fullname!r}: microflow, installed "
                                      f"as luigi, does not provide it{hint}", name=fullname)
        return None

    @staticmethod
    def find_distributions(context: Any = None) -> Iterator[Any]:
        """importlib.metadata's hook: ``luigi`` as an installed distribution of version
        LUIGI_VERSION, so code that checks Luigi's version at import runs; nothing
        when a real Luigi distribution is installed (it answers for itself)."""
        import importlib.metadata as metadata
        name = getattr(context, "name", None)
        if name is not None and name.lower().replace("-", "_") != "luigi":
            return iter(())
        real = metadata.MetadataPathFinder.find_distributions(
            metadata.DistributionFinder.Context(name="luigi"))
        if next(iter(real), None) is not None:
            return iter(())
        return iter([_luigi_distribution()])


def _luigi_distribution() -> Any:
    """The distribution record install_as_luigi() answers for ``luigi``."""
    import importlib.metadata as metadata
    import pathlib

    class MicroflowAsLuigi(metadata.Distribution):
        """``luigi`` as microflow provides it."""

        def read_text(self, filename: str) -> str | None:
            if filename in ("METADATA", "PKG-INFO"):
                return (f"Metadata-Version: 2.1\nName: luigi\nVersion: {LUIGI_VERSION}\n"
                        f"Summary: microflow {__version__}, installed as luigi\n")
            return None

        def locate_file(self, path: Any) -> Any:
            return pathlib.Path(__file__).parent / path

    return MicroflowAsLuigi()


def install_as_luigi() -> types.ModuleType:
    """Make ``import luigi`` give microflow, and Luigi's module paths (luigi.parameter,
    luigi.worker, luigi.util, luigi.tools.range, ...) microflow's modules, so code
    written for Luigi runs unchanged; any other ``luigi.*`` (luigi.contrib.s3, ...) is
    an ImportError saying microflow does not provide it. Nothing is hooked until this
    is called (``python -m microflow --as-luigi`` calls it). Raises MicroflowError when
    the real Luigi is already imported. Returns the microflow module."""
    this = sys.modules[__name__]
    loaded = sys.modules.get("luigi")
    if loaded is not None and loaded is not this:
        raise MicroflowError(f"luigi is already imported (from "
                             f"{getattr(loaded, '__file__', '?')}); call "
                             f"microflow.install_as_luigi() before the first import luigi")
    for module in (this, tools, configuration):   # packages, so luigi.<path> imports
        module.__dict__.setdefault("__path__", [])
    sys.modules["luigi"] = this
    for path in _LUIGI_MODULES:
        sys.modules[f"luigi.{path}"] = sys.modules[f"{__name__}.{path}"]
    if _LuigiFinder not in sys.meta_path:
        sys.meta_path.insert(0, _LuigiFinder)
    return this


###########################################################################################
# The status page's HTML (the largest constant, kept last)
###########################################################################################

# The status page: one HTML file, no library, nothing fetched from any other host. Every
# name, parameter, message and traceback goes into the page as text (textContent),
# never as HTML. The view lives in the URL's #fragment (Luigi's tab/taskId keys too).
_PAGE_HTML = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>microflow</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafafa;
display:flex;flex-direction:column;height:100vh}
header{display:flex;flex-wrap:wrap;gap:6px;align-items:center;padding:6px 10px;background:#263238;
color:#fff}
header h1{font-size:15px;margin:0 10px 0 0}
button{font:inherit;cursor:pointer;border:1px solid #90a4ae;background:#fff;border-radius:3px;
padding:2px 7px}
button[aria-pressed=true],nav button[aria-selected=true]{background:#ffe082;font-weight:bold}
button:focus-visible,a:focus-visible,input:focus-visible{outline:2px solid #ff6f00}
input{font:inherit;padding:2px 4px}
nav{display:flex;gap:4px;padding:6px 10px;align-items:center;border-bottom:1px solid #cfd8dc;
flex-wrap:wrap}
main{display:flex;flex:1;min-height:0}
#side{width:220px;overflow:auto;border-right:1px solid #cfd8dc;padding:4px}
#side button{display:block;width:100%;text-align:left;margin:1px 0;border:0;background:none}
#view{flex:1;overflow:hidden;display:flex;flex-direction:column}
#list{flex:1;overflow:auto;position:relative}
.row{position:absolute;left:0;right:0;height:24px;display:flex;align-items:center;
border-bottom:1px solid #eceff1;white-space:nowrap}
.row>*{overflow:hidden;text-overflow:ellipsis;padding:0 4px}
.head{position:sticky;top:0;z-index:1;background:#eceff1;font-weight:bold}
.c0{width:105px;flex:none}.c1{flex:3}.c2{flex:2}.c3{width:90px;flex:none}.c4{width:80px;flex:none}
.c5{width:150px;flex:none}.nomsg .c2,.noprog .c3{display:none}
.row .c1 button{border:0;background:none;padding:0;text-align:left;max-width:100%;overflow:hidden;
text-overflow:ellipsis}
.st{display:inline-block;border-radius:3px;padding:0 4px;font-size:11px;font-weight:bold}
.PENDING{background:#fff59d;fill:#fff59d}.RUNNING{background:#90caf9;fill:#90caf9}
.DONE{background:#a5d6a7;fill:#a5d6a7}
.FAILED{background:#ef9a9a;fill:#ef9a9a}.DISABLED{background:#bdbdbd;fill:#bdbdbd}
.UNKNOWN{background:#e0e0e0;fill:#e0e0e0}
#detail{border-top:2px solid #90a4ae;max-height:45%;overflow:auto;padding:6px 10px;background:#fff}
pre{white-space:pre-wrap;background:#263238;color:#eceff1;padding:6px;max-height:300px;
overflow:auto}
#graph{flex:1;overflow:auto}
svg text{font:11px system-ui,sans-serif}
table{border-collapse:collapse}td,th{border-bottom:1px solid #eceff1;padding:2px 6px;
text-align:left;vertical-align:top}
#msg{margin-left:auto}
</style></head>
<body>
<header><h1>microflow</h1><span id="counts" role="group" aria-label="Filter by status"></span>
<span id="msg" role="status" aria-live="polite"></span>
<button id="msgclose" hidden aria-label="Close the message">×</button>
<label>Token <input id="token" type="password" size="10" autocomplete="off"></label>
<button id="pause" hidden>Pause</button></header>
<nav role="tablist" aria-label="Views">
<button role="tab" data-tab="tasks">Tasks</button>
<button role="tab" data-tab="graph">Graph</button>
<button role="tab" data-tab="workers">Workers</button>
<label id="searchbox">Search <input id="search" type="search" size="30"
placeholder="name or parameter"></label>
<label id="hidebox"><input id="hidedone" type="checkbox"> hide done tasks</label>
<span id="shown"></span></nav>
<main><div id="side" aria-label="Task families"></div>
<div id="view"><div id="list" role="table" aria-label="Tasks"></div><div id="graph" hidden></div>
<div id="workers" hidden></div><div id="detail" hidden></div></div></main>
<script>
"use strict";
const $=id=>document.getElementById(id);
const S=["FAILED","DISABLED","RUNNING","PENDING","UNKNOWN","DONE"];
const COLS=[["status","Status"],["name","Task"],["message","Message"],["progress","Progress"],
    ["took","Took"],["updated","Updated"]];
let tasks=new Map(),version=0,serverNow=0,skew=0,view={tab:"tasks",status:"",family:"",search:"",
    taskId:"",sort:"status",desc:true,hideDone:false};
let rows=[],busy=false,openId="",graphIds=new Set(),historyOn=false;
function el(tag,attrs,...kids){const e=document.createElement(tag);
  for(const k in attrs||{}){if(k==="text")e.textContent=attrs[k];
  else if(k.startsWith("on"))e.addEventListener(k.slice(2),attrs[k]);
  else e.setAttribute(k,attrs[k])}for(const c of kids)if(c!=null)e.append(c);return e}
function svg(tag,attrs,text){const e=document.createElementNS("http://www.w3.org/2000/svg",tag);
  for(const k in attrs)e.setAttribute(k,attrs[k]);if(text!=null)e.textContent=text;return e}
function badge(s){return el("span",{class:"st "+s,text:s})}
async function api(method,data,write){
  const h={},t=sessionStorage.getItem("mftoken");if(t)h.Authorization="Bearer "+t;
  const r=await fetch("/api/"+method+"?data="+encodeURIComponent(JSON.stringify(data||{})),
      {headers:h,method:write?"POST":"GET"});
  const b=await r.json();
  if(r.status===401)throw new Error(method+": this scheduler needs a token: enter it above");
  if(!r.ok)throw new Error(b.error||method+" failed");return b.response}
let polledMsg=false;   // what a poll says (or clears) never hides an action's message
function say(text,polled){if(polled&&!polledMsg&&$("msg").textContent)return;
  polledMsg=!!polled;$("msg").textContent=text;$("msgclose").hidden=!text||!!polled}
function readHash(){const p=new URLSearchParams(location.hash.slice(1));
  view.tab=["tasks","graph","workers"].includes(p.get("tab"))?p.get("tab"):"tasks";
  view.taskId=p.get("taskId")||"";view.status=p.get("status")||"";view.family=p.get("family")||"";
  view.search=p.get("search")||p.get("search__search")||"";view.hideDone=p.get("hideDone")==="1";
  if(p.get("sort"))view.sort=p.get("sort");view.desc=p.get("asc")!=="1";
  $("search").value=view.search;$("hidedone").checked=view.hideDone}
function writeHash(){const p=new URLSearchParams();p.set("tab",view.tab);
  for(const k of ["status","family","search","taskId"])if(view[k])p.set(k,view[k]);
  if(view.hideDone)p.set("hideDone","1");if(view.sort!=="status")p.set("sort",view.sort);
    if(!view.desc)p.set("asc","1");
  history.replaceState(null,"","#"+p.toString())}
function took(t){
  const end=t.status==="RUNNING"?Date.now()/1000-skew:
    (t.status==="DONE"||t.status==="FAILED")?t.last_updated:null;
  if(!t.time_running||end==null)return "";const s=Math.max(0,end-t.time_running);
  return s<60?s.toFixed(1)+" s":s<3600?(s/60).toFixed(1)+" min":(s/3600).toFixed(1)+" h"}
function when(ts){if(!ts)return "";const p=n=>String(n).padStart(2,"0"),d=new Date(ts*1000),
    day=d=>d.getFullYear()+"-"+p(d.getMonth()+1)+"-"+p(d.getDate());   // today: the time
  return (day(d)===day(new Date())?"":day(d)+" ")+[d.getHours(),d.getMinutes(),
      d.getSeconds()].map(p).join(":")}
function key(t,k){
  if(k==="status")return -S.indexOf(t.status);if(k==="name")return t.display_name;
  if(k==="message")return t.status_message||"";if(k==="progress")return t.progress_percentage??-1;
  if(k==="took")return t.time_running?t.last_updated-t.time_running:-1;return t.last_updated}
function filter(){const terms=view.search.toLowerCase().split(/\s+/).filter(Boolean);rows=[];
  for(const [id,t] of tasks){if(view.status&&t.status!==view.status)continue;
    if(view.family&&t.name!==view.family)continue;
    if(terms.length){const hay=(t.display_name+" "+id).toLowerCase();
      if(!terms.every(x=>hay.includes(x)))continue}rows.push(id)}
  const k=view.sort,d=view.desc?-1:1;
  const u=(a,b)=>tasks.get(b).last_updated-tasks.get(a).last_updated;
  rows.sort((a,b)=>{const x=key(tasks.get(a),k),y=key(tasks.get(b),
      k);return x<y?-d:x>y?d:u(a,b)||(a<b?-1:1)});
  const has=f=>rows.some(id=>f(tasks.get(id)));   // an empty column gives up its width
  $("list").classList.toggle("nomsg",!has(t=>t.status_message||t.tracking_url));
  $("list").classList.toggle("noprog",!has(t=>t.progress_percentage!=null));
  $("shown").textContent=rows.length+" of "+tasks.size+" tasks shown"}
function drawCounts(){const n={};const fam=new Map();
  for(const t of tasks.values()){n[t.status]=(n[t.status]||0)+1;
    const f=fam.get(t.name)||{all:0,bad:0};f.all++;
    if(t.status==="FAILED"||t.status==="DISABLED")f.bad++;fam.set(t.name,f)}
  const c=$("counts");
    c.replaceChildren(el("button",{"aria-pressed":String(!view.status),
        onclick:()=>setView({status:""}),text:"All "+tasks.size}));
  for(const s of S)c.append(" ",el("button",{class:"st "+s,"aria-pressed":String(view.status===s),
      "data-status":s,onclick:()=>setView({status:view.status===s?"":s}),text:s+" "+(n[s]||0)}));
  const side=$("side");
    side.replaceChildren(el("button",{"aria-pressed":String(!view.family),
        onclick:()=>setView({family:""}),text:"All families"}));
  for(const [f,v] of [...fam].sort()){side.append(el("button",
      {"aria-pressed":String(view.family===f),"data-family":f,
      onclick:()=>setView({family:view.family===f?"":f}),
    text:f+" ("+v.all+(v.bad?", "+v.bad+" failed":"")+")"}))}}
const H=24;
function drawList(){const list=$("list");
  let head=list.querySelector(".head"),pad=list.querySelector(".pad"),
      win=list.querySelector(".win");
  if(!head){head=el("div",{class:"row head",role:"row"});
    COLS.forEach(([k,label],i)=>head.append(el("span",{class:"c"+i,role:"columnheader"},
        el("button",{"data-sort":k,onclick:()=>setView({sort:k,
        desc:view.sort===k?!view.desc:true}),text:label}))));
    pad=el("div",{class:"pad"});win=el("div",{class:"win"});list.append(head,pad,win);
      list.addEventListener("scroll",()=>drawRows())}
  for(const b of head.querySelectorAll("button")){const on=b.dataset.sort===view.sort;
    b.setAttribute("aria-sort",on?(view.desc?"descending":"ascending"):"none");
    b.textContent=COLS.find(c=>c[0]===b.dataset.sort)[1]+(on?(view.desc?" \u2193":" \u2191"):"")}
  pad.style.height=(rows.length*H+H)+"px";drawRows()}
function drawRows(){const list=$("list"),win=list.querySelector(".win");if(!win)return;
  const first=Math.max(0,Math.floor(list.scrollTop/H)-5),last=Math.min(rows.length,
      first+Math.ceil(list.clientHeight/H)+10);
  const out=[];
    for(let i=first;i<last;i++){const id=rows[i],t=tasks.get(id),r=el("div",{class:"row",
        role:"row","data-id":id});
    r.style.top=(H+i*H)+"px";
    const url=t.tracking_url&&/^https?:\/\//.test(t.tracking_url)?el("a",{href:t.tracking_url,
        rel:"noopener noreferrer",text:" tracking"}):null;
    r.append(el("span",{class:"c0",role:"cell"},badge(t.status)),el("span",{class:"c1",
        role:"cell"},el("button",{onclick:()=>setView({taskId:id}),title:t.display_name,
        text:t.display_name})),
      el("span",{class:"c2",role:"cell",text:t.status_message||""},url),el("span",{class:"c3",
          role:"cell",text:t.progress_percentage!=null?t.progress_percentage+" %":""}),
      el("span",{class:"c4",role:"cell",text:took(t)}),el("span",{class:"c5",role:"cell",
          text:when(t.last_updated)}));out.push(r)}
  win.replaceChildren(...out)}
async function drawDetail(){const d=$("detail"),id=view.taskId;
  if(!id||view.tab==="workers"){d.hidden=true;return}
  const t=tasks.get(id);d.hidden=false;openId=id;
  const acts=el("span",{});
  const act=(label,method)=>acts.append(el("button",{onclick:()=>action(method,{task_id:id}),
      text:label})," ");
  if(t&&(t.status==="FAILED"))act("Forgive failures","forgive_failures");
  if(t&&t.re_enable_able)act("Re-enable","re_enable_task");
  if(t&&["RUNNING","FAILED","DISABLED","PENDING"].includes(t.status))act("Mark as done",
      "mark_as_done");
  const kids=[el("h2",{style:"font-size:14px;margin:0"},t?badge(t.status):null," ",
      t?t.display_name:id),
    el("div",{},el("button",{onclick:()=>setView({tab:"graph"}),text:"Graph"})," ",acts,
        el("button",{onclick:()=>setView({taskId:""}),text:"Close"})),
    el("div",{text:["id: "+id,t&&t.worker_running&&"running on "+t.worker_running,
      t&&t.status_message].filter(Boolean).join(" \u00b7 ")})];
  d.replaceChildren(...kids);
  if(t){try{const e=await api("fetch_error",{task_id:id}),ps=Object.entries(e.taskParams||{});
    if(openId!==id)return;
    if(ps.length)d.append(el("table",{class:"params"},...ps.map(([k,v])=>el("tr",{},
        el("th",{text:k}),el("td",{text:v})))));
    if(t.status==="FAILED"||t.status==="DISABLED"){let text=e.error||"(no error reported)";
      try{const j=JSON.parse(text);if(typeof j==="string")text=j}catch(x){}
      d.append(el("h3",{style:"font-size:13px",text:"Error"}),el("pre",{class:"error",
        text:text}))}}catch(x){say(x.message)}}
  if(historyOn&&t){try{const runs=await api("task_history",{family:t.name,limit:30});
    if(openId===id)d.append(drawHistory(t.name,runs))}catch(x){say(x.message)}}}
function drawHistory(family,runs){const box=el("div",{class:"history"},el("h3",
    {style:"font-size:13px",text:"Past runs of "+family}));
  const rs=runs.map(r=>{const ev=Object.fromEntries(r.events.map(e=>[e[0],
      Date.parse(e[1].replace(" ","T"))]));const end=ev.DONE||ev.FAILED;
    const last=r.events.length?r.events[r.events.length-1][0]:"";
    return {r,out:ev.FAILED&&!ev.DONE?"FAILED":ev.DONE?"DONE":last,
      s:ev.RUNNING&&end?(end-ev.RUNNING)/1000:null}}).reverse();
  const max=Math.max(1e-3,...rs.map(x=>x.s||0)),g=svg("svg",{width:Math.max(60,rs.length*12),
      height:60,role:"img","aria-label":"durations of past runs"});
  rs.forEach((x,i)=>{const h=x.s==null?2:Math.max(2,56*x.s/max);const b=svg("rect",{x:i*12,y:58-h,
      width:10,height:h,class:x.out});b.append(svg("title",{},
      x.out+" "+(x.s==null?"":x.s.toFixed(2)+" s")));g.append(b)});
  const tb=el("table",{},el("tr",{},el("th",{text:"Run"}),el("th",{text:"Outcome"}),el("th",
      {text:"Took"}),el("th",{text:"Events"})));
  for(const x of rs.slice().reverse().slice(0,10))tb.append(el("tr",{},el("td",{text:x.r.task_id}),
      el("td",{},badge(x.out||"UNKNOWN")),el("td",{text:x.s==null?"":x.s.toFixed(2)+" s"}),
    el("td",{text:x.r.events.map(e=>e[0]+" "+e[1]).join(", ")})));
  box.append(g,tb);return box}
async function action(method,data){try{const r=await api(method,data,true);
  say(method+": "+((r&&r.status)||"done"));await poll(true)}catch(x){say(x.message)}}
const GAP=60,RH=26,MAXW=340,MAX=40;
function layOut(up,down,id,edges){   // columns by the longest path from the task: whatever
  const depth=new Map([[id,0]]);       // a task needs is drawn left of it, what needs it right
  for(const [g,sign] of [[up,-1],[down,1]]){const lv=new Map([[id,0]]),wait=new Map(),q=[id];
    for(const k in g)for(const d of g[k].deps)if(d in g)wait.set(d,(wait.get(d)||0)+1);
    for(const k of q)for(const d of g[k]?g[k].deps:[]){if(!(d in g))continue;
      edges.push(sign<0?[d,k]:[k,d]);lv.set(d,Math.max(lv.get(d)||0,lv.get(k)+1));
      wait.set(d,wait.get(d)-1);if(!wait.get(d))q.push(d)}
    for(const [k,v] of lv)if(k!==id)depth.set(k,sign*v)}
  return depth}
function measure(texts,room){const m=svg("svg",{width:1,height:1,style:"position:absolute"});
  const ts=texts.map(t=>svg("text",{},t));m.append(...ts);document.body.append(m);
  const out=ts.map(t=>{let w=t.getComputedTextLength(),s=t.textContent;
    while(w>room&&s.length>2){s=s.slice(0,Math.max(1,Math.floor(s.length*room/w)-1))+"\u2026";
      t.textContent=s;w=t.getComputedTextLength()}return [s,w]});m.remove();return out}
async function drawGraph(){const box=$("graph"),id=view.taskId;
  if(!id){box.replaceChildren(el("p",{text:"Choose a task in the list to see its graph."}));return}
  let up,down;
    const conv=o=>Object.fromEntries(Object.entries(o).map(([k,v])=>[k,{status:v[0],name:v[1],
        display_name:v[2],deps:v[3]}]));
  try{const r=await api("task_graph",{task_id:id,include_done:!view.hideDone});up=conv(r.up);
    down=conv(r.down)}catch(x){say(x.message);return}
  const nodes=new Map(Object.entries(down));for(const k in up)nodes.set(k,up[k]);
  if(!nodes.size){box.replaceChildren(el("p",{text:"The scheduler does not know "+id}));return}
  const edges=[],depth=layOut(up,down,id,edges),group=nodes.size>300,cols=new Map(),of=new Map();
  for(const [k,v] of nodes){const x=depth.get(k)??0,g=group&&k!==id?(v.name||"?"):k;
    const c=cols.get(x)||new Map();cols.set(x,c);
    const n=c.get(g)||{key:g,ids:[],status:"DONE",nb:new Set()};n.ids.push(k);of.set(k,n);
      if(S.indexOf(v.status)<S.indexOf(n.status))n.status=v.status;c.set(g,n)}
  const links=new Map();for(const [a,b] of edges){const p=of.get(a),q=of.get(b);
    if(p&&q&&p!==q){p.nb.add(q);q.nb.add(p);links.set(p.ids[0]+"\n"+q.ids[0],[p,q])}}
  const xs=[...cols.keys()].sort((a,b)=>a-b),row=new Map(),shown=new Map();
  for(const x of xs.slice().sort((a,b)=>Math.abs(a)-Math.abs(b))){   // from the task outwards,
    const at=n=>{let s=0,c=0;for(const m of n.nb)if(row.has(m)){s+=row.get(m);c++}  // each
      return c?s/c:Infinity};    // beside the mean row of its neighbours nearer the task
    const list=[...cols.get(x).values()].map(n=>[at(n),n]).sort((a,b)=>a[0]-b[0]||
        (a[1].key<b[1].key?-1:1)).map(p=>p[1]);
    list.slice(0,MAX).forEach((n,i)=>row.set(n,i));shown.set(x,list)}
  const label=n=>n.ids.length>1?(nodes.get(n.ids[0]).name||"?")+" \u00d7"+n.ids.length:
      nodes.get(n.ids[0]).display_name;
  const drawn=xs.flatMap(x=>shown.get(x).slice(0,MAX));
  const fit=measure(drawn.map(n=>n.status.slice(0,4)+" "+label(n)),MAXW-8);
  drawn.forEach((n,i)=>{[n.text,n.w]=fit[i]});
  let left=10,hmax=0;const colX=new Map();
  for(const x of xs){const list=shown.get(x),w=Math.max(60,...list.slice(0,MAX).map(n=>n.w+8));
    list.slice(0,MAX).forEach((n,i)=>n.at={x:left,y:10+i*RH,w:w});
    colX.set(x,left);left+=w+GAP;hmax=Math.max(hmax,Math.min(list.length,MAX+1))}
  const g=svg("svg",{width:left-GAP+10,height:hmax*RH+20,role:"img",
      "aria-label":"dependency graph of "+id+": each arrow points from a task to one that "+
      "needs it"});
  const defs=svg("defs",{}),mk=svg("marker",{id:"arrow",viewBox:"0 0 8 8",refX:"8",refY:"4",
      markerWidth:"7",markerHeight:"7",orient:"auto"});
  mk.append(svg("path",{d:"M0,0L8,4L0,8z",fill:"#546e7a"}));defs.append(mk);g.append(defs);
  for(const [p,q] of links.values()){if(!p.at||!q.at)continue;const a=p.at,b=q.at,
      x1=a.x+a.w,y1=a.y+10,x2=b.x-1,y2=b.y+10,m=(x1+x2)/2;
    g.append(svg("path",{class:"edge",d:`M${x1},${y1}C${m},${y1} ${m},${y2} ${x2},${y2}`,
        fill:"none",stroke:"#90a4ae","marker-end":"url(#arrow)","data-from":p.ids[0],
        "data-to":q.ids[0]}))}
  for(const [x,list] of shown){if(list.length>MAX)g.append(svg("text",{x:colX.get(x),
      y:10+MAX*RH+14,class:"more"},(list.length-MAX)+" more"));
    for(const n of list.slice(0,MAX)){const {x:nx,y,w}=n.at;
      const node=svg("g",{class:"node","data-id":n.ids[0],tabindex:"0",role:"button",
          "aria-label":n.status+" "+label(n)});
      node.append(svg("rect",{x:nx,y:y,width:w,height:20,rx:3,class:n.status,
          stroke:n.ids[0]===id?"#000":"#78909c","stroke-width":n.ids[0]===id?2:1}),
        svg("text",{x:nx+4,y:y+14},n.text),svg("title",{},n.status+" "+label(n)));
      if(n.ids.length===1){const open=()=>setView({taskId:n.ids[0]});
        node.addEventListener("click",open);
        node.addEventListener("keydown",e=>{if(e.key==="Enter")open()})}
      g.append(node)}}
  graphIds=new Set(nodes.keys());box.replaceChildren(g);
  const me=of.get(id).at;if(me){box.scrollLeft=me.x+me.w/2-box.clientWidth/2;
    box.scrollTop=me.y-box.clientHeight/2}
  performance.mark("graph-drawn")}
async function drawWorkers(){const box=$("workers");
  try{const [ws,rs]=await Promise.all([api("worker_list"),api("resource_list")]);
  const tb=el("table",{},el("tr",{},...["Worker","State","First seen","Last active","Running",
      "Pending"].map(h=>el("th",{text:h}))));
  for(const w of ws)tb.append(el("tr",{},el("td",{text:w.name}),el("td",{text:w.state}),el("td",
      {text:when(w.started)}),el("td",{text:when(w.last_active)}),
    el("td",{},...Object.values(w.running||{}).map(t=>el("div",{text:t.display_name}))),el("td",
        {text:String(w.num_pending)})));
  const rt=el("table",{},el("tr",{},...["Resource","Used","Total","Consumers"].map(h=>el("th",
      {text:h}))));
  for(const r of rs)rt.append(el("tr",{},el("td",{text:r.name}),el("td",{text:String(r.num_used)}),
      el("td",{text:String(r.num_total)}),el("td",{text:String(r.num_consumer)})));
  box.replaceChildren(el("h2",{style:"font-size:14px",text:"Workers"}),tb,el("h2",
      {style:"font-size:14px",text:"Resources"}),rt)}catch(x){say(x.message)}}
function setView(change){Object.assign(view,change);writeHash();render(change)}
function render(change){change=change||{all:1};
  for(const b of document.querySelectorAll("nav [role=tab]"))b.setAttribute("aria-selected",
      String(b.dataset.tab===view.tab));
  $("list").hidden=view.tab!=="tasks";$("graph").hidden=view.tab!=="graph";
    $("workers").hidden=view.tab!=="workers";$("side").hidden=view.tab!=="tasks";
  $("searchbox").hidden=$("shown").hidden=view.tab!=="tasks";
  $("hidebox").hidden=view.tab!=="graph";
  drawCounts();if(view.tab==="tasks"){filter();drawList()}
  const graphChanged="tab" in change||"taskId" in change||"hideDone" in change||change.all;
  if(view.tab==="graph"&&graphChanged)drawGraph();
  if(view.tab==="workers")drawWorkers();
  if("taskId" in change||"tab" in change||change.all)drawDetail()}
function merge(c){version=c.version;if(c.time)skew=Date.now()/1000-c.time;
  if(c.reload)tasks=new Map();
  for(const id in c.tasks){const t={},row=c.tasks[id];c.fields.forEach((f,i)=>t[f]=row[i]);
    tasks.set(id,t)}for(const id of c.removed)tasks.delete(id)}
async function load(){merge(await api("changes",{since:0}));render();
  performance.mark("list-ready")}
async function poll(force){if(busy||(!force&&document.visibilityState!=="visible"))return;
  busy=true;
  try{const c=await api("changes",{since:version});merge(c);const ids=Object.keys(c.tasks);
    if(ids.length||c.removed.length){drawCounts();if(view.tab==="tasks"){filter();drawList()}
      if(ids.includes(view.taskId))drawDetail();
        if(view.tab==="graph"&&ids.some(i=>graphIds.has(i)))drawGraph()}
    if(c.workers&&view.tab==="workers")drawWorkers();say("",true)}
  catch(x){say(x.message,true)}finally{busy=false}}
async function pauseState(){try{const e=await api("is_pause_enabled");if(!e.enabled)return;
  const p=await api("is_paused");const b=$("pause");b.hidden=false;
  b.textContent=p.paused?"Unpause":"Pause";b.setAttribute("aria-pressed",String(p.paused));
    b.onclick=async()=>{try{await api(p.paused?"unpause":"pause",{},true);
    pauseState()}catch(x){say(x.message)}}}catch(x){say(x.message)}}
for(const b of document.querySelectorAll("nav [role=tab]"))b.addEventListener("click",
    ()=>setView({tab:b.dataset.tab}));
let typing;
  $("search").addEventListener("input",
      e=>{clearTimeout(typing);typing=setTimeout(()=>setView({search:e.target.value}),150)});
$("msgclose").addEventListener("click",()=>say(""));
$("hidedone").addEventListener("change",e=>setView({hideDone:e.target.checked}));
$("token").value=sessionStorage.getItem("mftoken")||"";
  $("token").addEventListener("change",e=>{sessionStorage.setItem("mftoken",
      e.target.value);pauseState()});
window.addEventListener("hashchange",()=>{readHash();render()});
document.addEventListener("visibilitychange",()=>poll());
readHash();
(async()=>{try{historyOn=await api("has_task_history");await load();pauseState()}
  catch(x){say(x.message)}setInterval(poll,1000)})();
</script></body></html>"""


if __name__ == "__main__":
    # Run the copy of this module that user code imports, not this __main__ copy: a task
    # module doing `import microflow` must subclass the same Task class we look up.
    import importlib as _importlib
    _spec = globals().get("__spec__")
    _module_name = _spec.name if _spec is not None and _spec.name != "__main__" else "microflow"
    if _module_name.endswith(".__main__"):
        _module_name = _module_name[: -len(".__main__")]
    sys.exit(_importlib.import_module(_module_name).main())
