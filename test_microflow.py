"""Tests for microflow. Run with ``python -m unittest -v test_microflow`` (or pytest).

Laid out like the library: parameters, date intervals, targets, tasks, configuration,
then the scheduler, worker, build() and the command line.
"""

import collections
import contextlib
import datetime
import errno
import enum
import gc
import io
import itertools
import json
import logging
import operator
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import types
import unittest
import unittest.mock
import urllib.parse
import warnings

import microflow as mf

HERE = pathlib.Path(__file__).resolve().parent

# The suite starts about a hundred Pythons that import microflow.py. Where the
# environment forbids bytecode files (PYTHONDONTWRITEBYTECODE), each would compile the
# whole file again: they share a bytecode cache in a scratch folder instead (never in
# the repository), removed when the suite ends.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) and \
        not os.environ.get("PYTHONPYCACHEPREFIX"):
    import atexit
    os.environ["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="microflow-pycache-")
    atexit.register(shutil.rmtree, os.environ["PYTHONPYCACHEPREFIX"], True)

# Computed once with Luigi 3.8.1 in a scratch virtualenv (see the task classes in
# ReferenceTasks below); microflow must reproduce them exactly.
LUIGI_TASK_IDS = [
    ('NoParams()',
     'NoParams__99914b932b'),
    ('OneInt(n=5)',
     'OneInt_5_aa4f9f7fa3'),
    ('OneInt(n=-12)',
     'OneInt__12_bb7a519b22'),
    ('Strs(a=hello world/x, b=x y, c=zz, d=fourth)',
     'Strs_hello_world_x_x_y_zz_bc6824da80'),
    ('Strs(a=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, b=émoji ☃ snow, c={"k": 1}, d=fourth)',
     'Strs_aaaaaaaaaaaaaaaa__moji___snow___k___1__e77b0f96a7'),
    ('Dates(day=2024-01-02, month=2024-03, year=2024)',
     'Dates_2024_01_02_2024_03_2024_0a5305d8da'),
    ('Times(h=2024-01-02T03, m=2024-01-02T0304, s=2024-01-02T030405)',
     'Times_2024_01_02T03_2024_01_02T0304_2024_01_02T03040_416298556a'),
    ('Coll(l=[1, 2, [3, "x"]], d={"b": 1, "a": [1, 2], "c": {"z": null}}, t=[[1, 2], [3]])',
     'Coll___b___1___a____1__1__2___3___x______1__2____3___17dab14f01'),
    ('Coll(l=[], d={"\\u00e9": "\\u00fc"}, t=[])',
     'Coll____u00e9_____u00_______b499eeb24e'),
    ('Misc(f=1.5, b=True, td=0 w 1 d 1 h 0 m 3 s)',
     'Misc_True_1_5_0_w_1_d_1_h_0_m__c2a20d7342'),
    ('Misc(f=0.30000000000000004, b=False, td=3 w 0 d 0 h 1 m 0 s)',
     'Misc_False_0_30000000000000_3_w_0_d_0_h_1_m__cdcb34418d'),
    ('Enums(e=red, el=green,red)',
     'Enums_red_green_red_abd190a50e'),
    ('Vis(a=pub, h=hid, p=priv)',
     'Vis_pub_cba0a111c5'),
    ('Unicode(s=日本語テキスト)',
     'Unicode_________987ab13f0b'),
    ('Unicode(s=naïve café)',
     'Unicode_na_ve_caf__a429f0b4e2'),
    ('my.ns.NS(x=7)',
     'my.ns.NS_7_378ebc4b7b'),
    ('Opt(o=, oi=3)',
     'Opt__3_82a8a1a521'),
    ('Opt(o=x, oi=)',
     'Opt_x__e4f30d71d3'),
    ('Choice(c=b, n=3)',
     'Choice_b_3_e1bb7b6fe7'),
    ('Interval(i=2015-W35)',
     'Interval_2015_W35_f7072f6a13'),
    ('Interval(i=2015-11-04-2015-12-04)',
     'Interval_2015_11_04_2015__646d2719ad'),
    ('TP(t=OneInt)',
     'TP_OneInt_3b192f772d'),
    ('PathT(p=/tmp/some dir/file.txt)',
     'PathT__tmp_some_dir_fi_ef0a0606af'),
    ('LongVals(z=zzzzzzzzzzzzzzzzzzzz, y=y-y-y, x=x.x, w=w)',
     'LongVals_w_x_x_y_y_y_ca245fdbb8'),
    ('Strs(a=, b=, c=, d=fourth)',
     'Strs____bfcdfa8de5'),
]
LUIGI_SERIALIZED = {
    'list': '[1, 2]',
    'list_nested': '[1, [2, {"a": "b"}], "s"]',
    'dict': '{"k": "v"}',
    'dict_nested': '{"b": [1, 2], "a": {"c": null}}',
    'bool_f': 'False',
    'bool_t': 'True',
    'td': '0 w 1 d 1 h 0 m 3 s',
    'td_big': '2 w 3 d 1 h 2 m 3 s',
    'tuple': '[[1, 2], [3]]',
    'date': '2024-02-29',
    'date_interval3': '2024-02-29',
    'month': '2024-02',
    'month_interval5': '2023-10',
    'year': '2024',
    'year_interval4': '2022',
    'hour': '2024-02-29T13',
    'hour_interval6': '2024-02-29T12',
    'minute': '2024-02-29T1359',
    'minute_interval15': '2024-02-29T1345',
    'second': '2024-02-29T135959',
    'int': '42',
    'float': '2.5',
    'enum': 'green',
    'enumlist': 'green,red',
    'enumlist_empty': '',
    'choice': 'a',
    'choicelist': 'b,a',
    'numerical': '0.25',
    'path': 'a/b/../c',
    'opt_none': '',
    'opt_int': '5',
    'opt_list_none': '',
    'opt_dict': '{"a": 1}',
    'di_year': '2015',
    'di_month': '2015-12',
    'di_week': '2015-W53',
    'di_date': '2015-11-04',
    'di_custom': '2015-11-04-2015-12-04',
    'str': 'a b',
    'opt_str': 'x',
    'opt_str_none': '',
    'opt_float': '1.25',
    'opt_bool': 'True',
    'opt_bool_none': '',
    'opt_tuple': '[[1, "a"]]',
    'opt_numerical': '3',
    'opt_choice': 'y',
    'opt_path': 'some/where',
    'plain': 'plain text',
    'opt_plain': 't',
    'numerical_int': '3',
    'dict_unicode': '{"\\u00e9": ["\\u00fc", 1.5]}',
    'list_floats': '[0.1, 2.0, null, true]',
}
LUIGI_PARSED = {   # raw string -> (serialized, repr of the value)
    'td_iso': ('0 w 1 d 2 h 3 m 4 s',
              'datetime.timedelta(days=1, seconds=7384)'),
    'td_weeks': ('3 w 0 d 0 h 0 m 0 s',
                'datetime.timedelta(days=21)'),
    'td_text': ('1 w 2 d 3 h 0 m 0 s',
               'datetime.timedelta(days=9, seconds=10800)'),
    'td_short': ('0 w 5 d 4 h 0 m 0 s',
                'datetime.timedelta(days=5, seconds=14400)'),
    'td_secs': ('0 w 0 d 0 h 1 m 30 s',
               'datetime.timedelta(seconds=90)'),
    'td_float': ('0 w 0 d 0 h 0 m 1 s',
                'datetime.timedelta(seconds=1, microseconds=500000)'),
    'td_plural': ('2 w 0 d 0 h 1 m 0 s',
                 'datetime.timedelta(days=14, seconds=60)'),
    'tuple_literal': ('[[1, 2], [3, 4]]',
                     '((1, 2), (3, 4))'),
    'tuple_json': ('[["a", "b"], [1]]',
                  "(('a', 'b'), (1,))"),
    'tuple_strs': ('["ab", "cd"]',
                  "('ab', 'cd')"),
    'bool_TRUE': ('True',
                 'True'),
    'bool_False': ('False',
                  'False'),
    'di_2015': ('2015',
               '2015'),
    'di_2015_05': ('2015-05',
                  '2015-05'),
    'di_w35': ('2015-W35',
              '2015-W35'),
    'di_day': ('2015-11-04',
              '2015-11-04'),
    'di_custom': ('2015-11-04-2015-12-04',
                 '2015-11-04-2015-12-04'),
    'minute_h': ('2024-01-02T0304',
                'datetime.datetime(2024, 1, 2, 3, 4)'),
    'minute': ('2024-01-02T0304',
              'datetime.datetime(2024, 1, 2, 3, 4)'),
    'list': ('[1, 2, [3]]',
            '(1, 2, (3,))'),
    'dict': ('{"b": 1, "a": [2]}',
            "{'b': 1, 'a': (2,)}"),
    'choicelist': ('a,b,a',
                  "('a', 'b', 'a')"),
    'opt_empty': ('',
                 'None'),
}


class Color(enum.Enum):
    red = 1
    green = 2


def reference_tasks():
    """The tasks whose ids and reprs LUIGI_TASK_IDS records, in the same order."""
    di = mf.date_interval
    V = mf.ParameterVisibility

    class NoParams(mf.Task):
        pass

    class OneInt(mf.Task):
        n = mf.IntParameter()

    class Strs(mf.Task):
        a = mf.Parameter()
        b = mf.Parameter(default="x y")
        c = mf.Parameter(default="zz")
        d = mf.Parameter(default="fourth")

    class Dates(mf.Task):
        day = mf.DateParameter()
        month = mf.MonthParameter()
        year = mf.YearParameter()

    class Times(mf.Task):
        h = mf.DateHourParameter()
        m = mf.DateMinuteParameter()
        s = mf.DateSecondParameter()

    class Coll(mf.Task):
        l = mf.ListParameter()
        d = mf.DictParameter()
        t = mf.TupleParameter()

    class Misc(mf.Task):
        f = mf.FloatParameter()
        b = mf.BoolParameter()
        td = mf.TimeDeltaParameter()

    class Enums(mf.Task):
        e = mf.EnumParameter(enum=Color)
        el = mf.EnumListParameter(enum=Color)

    class Vis(mf.Task):
        a = mf.Parameter()
        h = mf.Parameter(visibility=V.HIDDEN)
        p = mf.Parameter(visibility=V.PRIVATE)
        ins = mf.Parameter(significant=False, default="zz")

    class Unicode(mf.Task):
        s = mf.Parameter()

    class NS(mf.Task):
        task_namespace = "my.ns"
        x = mf.IntParameter()

    class Opt(mf.Task):
        o = mf.OptionalParameter()
        oi = mf.OptionalIntParameter(default=3)

    class Choice(mf.Task):
        c = mf.ChoiceParameter(choices=["a", "b"])
        n = mf.NumericalParameter(var_type=int, min_value=0, max_value=10)

    class Interval(mf.Task):
        i = mf.DateIntervalParameter()

    class TP(mf.Task):
        t = mf.TaskParameter()

    class PathT(mf.Task):
        p = mf.PathParameter()

    class LongVals(mf.Task):
        z = mf.Parameter()
        y = mf.Parameter()
        x = mf.Parameter()
        w = mf.Parameter()

    dt = datetime.datetime
    return [
        NoParams(), OneInt(5), OneInt(-12), Strs("hello world/x"),
        Strs(a="a" * 40, b="émoji ☃ snow", c='{"k": 1}'),
        Dates(datetime.date(2024, 1, 2), datetime.date(2024, 3, 17), datetime.date(2024, 5, 6)),
        Times(dt(2024, 1, 2, 3, 4, 5), dt(2024, 1, 2, 3, 4, 5, 999), dt(2024, 1, 2, 3, 4, 5)),
        Coll([1, 2, [3, "x"]], {"b": 1, "a": [1, 2], "c": {"z": None}}, ((1, 2), (3,))),
        Coll([], {"é": "ü"}, ()),
        Misc(1.5, True, datetime.timedelta(hours=25, seconds=3)),
        Misc(0.1 + 0.2, False, datetime.timedelta(weeks=3, minutes=1)),
        Enums(Color.red, (Color.green, Color.red)),
        Vis("pub", "hid", "priv"),
        Unicode("日本語テキスト"), Unicode("naïve café"), NS(7),
        Opt(None), Opt("x", None), Choice("b", 3),
        Interval(di.Week(2015, 35)),
        Interval(di.Custom(datetime.date(2015, 11, 4), datetime.date(2015, 12, 4))),
        TP(OneInt), PathT("/tmp/some dir/file.txt"),
        LongVals("z" * 20, "y-y-y", "x.x", "w"), Strs(a="", b="", c=""),
    ]


def reference_values():
    """(parameter, value) pairs whose serialized form LUIGI_SERIALIZED records."""
    P, di, d, dt = mf, mf.date_interval, datetime.date, datetime.datetime
    return {
        "list": (P.ListParameter(), [1, 2]),
        "list_nested": (P.ListParameter(), [1, [2, {"a": "b"}], "s"]),
        "dict": (P.DictParameter(), {"k": "v"}),
        "dict_nested": (P.DictParameter(), {"b": [1, 2], "a": {"c": None}}),
        "bool_f": (P.BoolParameter(), False),
        "bool_t": (P.BoolParameter(), True),
        "td": (P.TimeDeltaParameter(), datetime.timedelta(hours=25, seconds=3)),
        "td_big": (P.TimeDeltaParameter(), datetime.timedelta(days=17, seconds=3723)),
        "tuple": (P.TupleParameter(), ((1, 2), (3,))),
        "date": (P.DateParameter(), d(2024, 2, 29)),
        "date_interval3": (P.DateParameter(interval=3), d(2024, 2, 29)),
        "month": (P.MonthParameter(), d(2024, 2, 29)),
        "month_interval5": (P.MonthParameter(interval=5), d(2024, 2, 29)),
        "year": (P.YearParameter(), d(2024, 2, 29)),
        "year_interval4": (P.YearParameter(interval=4), d(2023, 2, 28)),
        "hour": (P.DateHourParameter(), dt(2024, 2, 29, 13, 59, 59)),
        "hour_interval6": (P.DateHourParameter(interval=6), dt(2024, 2, 29, 13, 59, 59)),
        "minute": (P.DateMinuteParameter(), dt(2024, 2, 29, 13, 59, 59)),
        "minute_interval15": (P.DateMinuteParameter(interval=15), dt(2024, 2, 29, 13, 59, 59)),
        "second": (P.DateSecondParameter(), dt(2024, 2, 29, 13, 59, 59, 123)),
        "int": (P.IntParameter(), 42),
        "float": (P.FloatParameter(), 2.5),
        "enum": (P.EnumParameter(enum=Color), Color.green),
        "enumlist": (P.EnumListParameter(enum=Color), (Color.green, Color.red)),
        "enumlist_empty": (P.EnumListParameter(enum=Color), ()),
        "choice": (P.ChoiceParameter(choices=["a", "b"]), "a"),
        "choicelist": (P.ChoiceListParameter(choices=["a", "b"]), ("b", "a")),
        "numerical": (P.NumericalParameter(var_type=float, min_value=0.0, max_value=1.0), 0.25),
        "path": (P.PathParameter(), "a/b/../c"),
        "opt_none": (P.OptionalParameter(), None),
        "opt_int": (P.OptionalIntParameter(), 5),
        "opt_list_none": (P.OptionalListParameter(), None),
        "opt_dict": (P.OptionalDictParameter(), {"a": 1}),
        "di_year": (P.DateIntervalParameter(), di.Year(2015)),
        "di_month": (P.DateIntervalParameter(), di.Month(2015, 12)),
        "di_week": (P.DateIntervalParameter(), di.Week(2015, 53)),
        "di_date": (P.DateIntervalParameter(), di.Date(2015, 11, 4)),
        "di_custom": (P.DateIntervalParameter(),
                      di.Custom(datetime.date(2015, 11, 4), datetime.date(2015, 12, 4))),
        "str": (P.StrParameter(), "a b"),
        "opt_str": (P.OptionalStrParameter(), "x"),
        "opt_str_none": (P.OptionalStrParameter(), None),
        "opt_float": (P.OptionalFloatParameter(), 1.25),
        "opt_bool": (P.OptionalBoolParameter(), True),
        "opt_bool_none": (P.OptionalBoolParameter(), None),
        "opt_tuple": (P.OptionalTupleParameter(), ((1, "a"),)),
        "opt_numerical": (P.OptionalNumericalParameter(var_type=int, min_value=0,
                                                       max_value=5), 3),
        "opt_choice": (P.OptionalChoiceParameter(choices=["x", "y"]), "y"),
        "opt_path": (P.OptionalPathParameter(), "some/where"),
        "plain": (P.Parameter(), "plain text"),
        "opt_plain": (P.OptionalParameter(), "t"),
        "numerical_int": (P.NumericalParameter(var_type=int, min_value=-3, max_value=3,
                                               left_op=operator.lt, right_op=operator.le),
                          3),
        "dict_unicode": (P.DictParameter(), {"é": ["ü", 1.5]}),
        "list_floats": (P.ListParameter(), [0.1, 2.0, None, True]),
    }


def reference_strings():
    """(parameter, raw string) pairs whose parse results LUIGI_PARSED records."""
    P = mf
    return {
        "td_iso": (P.TimeDeltaParameter(), "P1DT2H3M4S"),
        "td_weeks": (P.TimeDeltaParameter(), "P3W"),
        "td_text": (P.TimeDeltaParameter(), "1 week 2 days 3 hours"),
        "td_short": (P.TimeDeltaParameter(), "5 d 4 h"),
        "td_secs": (P.TimeDeltaParameter(), "90"),
        "td_float": (P.TimeDeltaParameter(), "1.5"),
        "td_plural": (P.TimeDeltaParameter(), "2 weeks 1 minute"),
        "tuple_literal": (P.TupleParameter(), "((1, 2), (3, 4))"),
        "tuple_json": (P.TupleParameter(), '[["a", "b"], [1]]'),
        "tuple_strs": (P.TupleParameter(), '["ab", "cd"]'),
        "bool_TRUE": (P.BoolParameter(), "TRUE"),
        "bool_False": (P.BoolParameter(), "False"),
        "di_2015": (P.DateIntervalParameter(), "2015"),
        "di_2015_05": (P.DateIntervalParameter(), "2015-05"),
        "di_w35": (P.DateIntervalParameter(), "2015-W35"),
        "di_day": (P.DateIntervalParameter(), "2015-11-04"),
        "di_custom": (P.DateIntervalParameter(), "2015-11-04-2015-12-04"),
        "minute_h": (P.DateMinuteParameter(), "2024-01-02T03H04"),
        "minute": (P.DateMinuteParameter(), "2024-01-02T0304"),
        "list": (P.ListParameter(), "[1, 2, [3]]"),
        "dict": (P.DictParameter(), '{"b": 1, "a": [2]}'),
        "choicelist": (P.ChoiceListParameter(choices=["a", "b"]), "a,b,a"),
        "opt_empty": (P.OptionalIntParameter(), ""),
    }


def read(target, mode="r"):
    """The whole content of a target, closing the file."""
    with target.open(mode) as f:
        return f.read()


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def advance(self, seconds):
        self.now += seconds


class TempDirMixin:
    """Gives each test a fresh temporary folder as ``self.tmp`` (a pathlib.Path)."""

    def setUp(self):
        super().setUp()
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="microflow-test-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)


###########################################################################################
# Parameters
###########################################################################################

class TestParameterStrings(unittest.TestCase):
    def test_serialize_matches_luigi_and_round_trips(self):
        values = reference_values()
        self.assertEqual(set(values), set(LUIGI_SERIALIZED))
        for name, (param, value) in values.items():
            with self.subTest(name):
                text = param.serialize(param.normalize(value))
                self.assertEqual(text, LUIGI_SERIALIZED[name])
                again = param.serialize(param.normalize(param.parse(text)))
                self.assertEqual(again, text)

    def test_parse_matches_luigi(self):
        strings = reference_strings()
        self.assertEqual(set(strings), set(LUIGI_PARSED))
        for name, (param, raw) in strings.items():
            with self.subTest(name), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                value = param.normalize(param.parse(raw))
                self.assertEqual((param.serialize(value), repr(value)), LUIGI_PARSED[name])

    def test_bad_strings_raise_value_errors(self):
        cases = [(mf.IntParameter(), "x"), (mf.BoolParameter(), "maybe"),
                 (mf.DateParameter(), "2024/1/1"), (mf.TimeDeltaParameter(), "soon"),
                 (mf.ChoiceParameter(choices=["a"]), "b"),
                 (mf.NumericalParameter(var_type=int, min_value=0, max_value=10), "10"),
                 (mf.EnumParameter(enum=Color), "blue"),
                 (mf.DateIntervalParameter(), "2015-1"), (mf.ListParameter(), "[1,"),
                 (mf.TupleParameter(), "'ab'")]
        for param, raw in cases:
            with self.subTest(type(param).__name__):
                with self.assertRaises(ValueError):
                    param.parse(raw)

    def test_collections_are_frozen_and_hashable(self):
        value = mf.DictParameter().normalize({"a": [1, {"b": 2}]})
        self.assertIsInstance(value, mf.FrozenOrderedDict)
        self.assertEqual(value["a"][1]["b"], 2)
        hash(value)
        self.assertEqual(mf.ListParameter().normalize([1, [2]]), (1, (2,)))
        with self.assertRaises(TypeError):
            value["c"] = 1

    def test_bool_parameter_defaults_and_normalize(self):
        param = mf.BoolParameter()
        self.assertIs(param._default, False)
        self.assertIsNone(param.normalize("perhaps"))
        self.assertIs(param.normalize("TRUE"), True)
        with self.assertRaisesRegex(mf.ParameterException, "unknown parsing value 'x'"):
            mf.BoolParameter(parsing="x")

    def test_optional_parameters_map_empty_to_none(self):
        for param in (mf.OptionalParameter(), mf.OptionalIntParameter(),
                      mf.OptionalFloatParameter(), mf.OptionalBoolParameter(),
                      mf.OptionalDictParameter(), mf.OptionalListParameter(),
                      mf.OptionalTupleParameter(), mf.OptionalPathParameter()):
            with self.subTest(type(param).__name__):
                self.assertIsNone(param._default)
                self.assertIsNone(param.parse(""))
        # As in Luigi, these two stay required: only their '' parses to None.
        for param in (mf.OptionalChoiceParameter(choices=["a"]),
                      mf.OptionalNumericalParameter(var_type=int, min_value=0, max_value=3)):
            with self.subTest(type(param).__name__):
                self.assertFalse(param.has_task_value("NoSuchFamily", "x"))
                self.assertIsNone(param.parse(""))
                self.assertEqual(param.serialize(None), "")
                self.assertIsNone(param.normalize(None))

    def test_numerical_and_choice_descriptions(self):
        num = mf.NumericalParameter(var_type=int, min_value=0, max_value=10,
                                    description="count")
        self.assertEqual(num.description, "count permitted values: int in [0, 10)")
        with self.assertRaisesRegex(ValueError, r"10 is not in the set of int in \[0, 10\)"):
            num.parse("10")
        choice = mf.ChoiceParameter(choices=["a"])
        self.assertEqual(choice.description, "Choices: {a}")
        with self.assertRaisesRegex(mf.ParameterException, "var_type must be specified"):
            mf.NumericalParameter(min_value=0, max_value=1)

    def test_schema_validators(self):
        class EvenOnly:
            def validate(self, instance):
                if any(n % 2 for n in instance):
                    raise ValueError("odd number")

        param = mf.ListParameter(schema=EvenOnly())
        self.assertEqual(param.normalize([2, 4]), (2, 4))
        with self.assertRaisesRegex(ValueError, "odd number"):
            param.normalize([1])
        with unittest.mock.patch.dict(sys.modules, {"jsonschema": None}), \
                self.assertWarnsRegex(UserWarning, "'jsonschema' package is not installed"):
            unchecked = mf.DictParameter(schema={"type": "object"})   # as Luigi, without
        self.assertEqual(unchecked.normalize({"a": 1})["a"], 1)

    def test_plain_schemas_checked_by_jsonschema_when_installed(self):
        try:
            import jsonschema
        except ImportError:
            self.skipTest("jsonschema is not installed (optional; microflow needs none)")
        param = mf.DictParameter(schema={"type": "object", "required": ["n"]})
        self.assertEqual(param.normalize({"n": 1})["n"], 1)
        with self.assertRaises(jsonschema.ValidationError):
            param.normalize({})

    def test_path_parameter(self):
        self.assertEqual(mf.PathParameter().normalize("a/b"), pathlib.Path("a/b"))
        self.assertTrue(mf.PathParameter(absolute=True).normalize("a").is_absolute())
        with self.assertRaisesRegex(ValueError, "does not exist"):
            mf.PathParameter(exists=True).normalize("/no/such/path/here")

    def test_next_in_enumeration(self):
        self.assertEqual(mf.IntParameter().next_in_enumeration(4), 5)
        self.assertEqual(mf.DateParameter().next_in_enumeration(datetime.date(2024, 2, 28)),
                         datetime.date(2024, 2, 29))
        self.assertEqual(mf.MonthParameter().next_in_enumeration(datetime.date(2024, 12, 1)),
                         datetime.date(2025, 1, 1))
        self.assertIsNone(mf.Parameter().next_in_enumeration("a"))

    def test_task_parameter_round_trip(self):
        class TaskParamTarget(mf.Task):
            pass
        param = mf.TaskParameter()
        self.assertIs(param.parse(param.serialize(TaskParamTarget)), TaskParamTarget)


class TestDateIntervals(unittest.TestCase):
    def test_intervals(self):
        di = mf.date_interval
        week = di.Week(2015, 35)
        self.assertEqual((week.date_a, week.date_b),
                         (datetime.date(2015, 8, 24), datetime.date(2015, 8, 31)))
        self.assertEqual(len(di.Month(2024, 2).dates()), 29)
        self.assertEqual(di.Month(2024, 12).next(), di.Month(2025, 1))
        self.assertEqual(di.Year(2024).prev(), di.Year(2023))
        self.assertIn(datetime.date(2024, 2, 29), di.Month(2024, 2))
        self.assertEqual(len(list(di.Date(2024, 1, 1).hours())), 24)
        self.assertLess(di.Date(2024, 1, 1), di.Date(2024, 1, 2))
        with self.assertRaises(TypeError):
            di.Date(2024, 1, 1) < di.Year(2024)
        self.assertEqual(type(week).__name__, "Week")


###########################################################################################
# Targets
###########################################################################################

class TestFileSystemErrors(TempDirMixin, unittest.TestCase):
    def test_mkdir_raises_luigi_named_errors_that_are_also_builtin_ones(self):
        fs = mf.LocalFileSystem()
        folder = str(self.tmp / "a" / "b")
        with self.assertRaises(mf.MissingParentDirectory) as caught:
            fs.mkdir(folder, parents=False)
        self.assertIsInstance(caught.exception, FileNotFoundError)
        fs.mkdir(folder)
        fs.mkdir(folder)                                   # exists: fine by default
        with self.assertRaises(mf.FileAlreadyExists) as caught:
            fs.mkdir(folder, raise_if_exists=True)
        self.assertIsInstance(caught.exception, FileExistsError)
        (self.tmp / "file").write_text("x")
        with self.assertRaises(mf.NotADirectory):
            fs.mkdir(str(self.tmp / "file"))
        self.assertIs(mf.target.FileAlreadyExists, mf.FileAlreadyExists)
        target = mf.LocalTarget(str(self.tmp / "file"))
        with self.assertRaises(mf.FileAlreadyExists):
            mf.LocalTarget(str(self.tmp / "other")).fs.mkdir(str(self.tmp / "file"),
                                                            raise_if_exists=True)
        self.assertTrue(issubclass(mf.FileSystemException, mf.MicroflowError))
        self.assertTrue(target.exists())


class TestLocalTarget(TempDirMixin, unittest.TestCase):
    def leftovers(self, folder):
        return sorted(p.name for p in folder.iterdir() if "tmp" in p.name)

    def test_write_then_read_creates_parents(self):
        target = mf.LocalTarget(self.tmp / "a" / "b" / "out.txt")
        self.assertFalse(target.exists())
        with target.open("w") as f:
            f.write("héllo\n")
        self.assertTrue(target.exists())
        with target.open("r") as f:
            self.assertEqual(f.read(), "héllo\n")

    def test_exception_inside_with_publishes_nothing(self):
        target = mf.LocalTarget(self.tmp / "out.txt")
        with self.assertRaises(RuntimeError):
            with target.open("w") as f:
                f.write("half")
                raise RuntimeError("boom")
        self.assertFalse(target.exists())
        self.assertEqual(self.leftovers(self.tmp), [])

    def test_exception_keeps_previous_version(self):
        target = mf.LocalTarget(self.tmp / "out.txt")
        with target.open("w") as f:
            f.write("old")
        with self.assertRaises(KeyError):
            with target.open("w") as f:
                f.write("new")
                raise KeyError("x")
        self.assertEqual(read(target), "old")
        self.assertEqual(self.leftovers(self.tmp), [])

    def test_nothing_visible_until_close(self):
        target = mf.LocalTarget(self.tmp / "out.txt")
        f = target.open("w")
        f.write("data")
        f.flush()
        self.assertFalse(target.exists())
        f.close()
        self.assertTrue(target.exists())

    def test_unclosed_writer_is_discarded_by_gc(self):
        target = mf.LocalTarget(self.tmp / "out.txt")
        f = target.open("w")
        f.write("data")
        del f
        gc.collect()
        self.assertFalse(target.exists())
        self.assertEqual(self.leftovers(self.tmp), [])

    def test_binary_and_formats(self):
        raw = mf.LocalTarget(self.tmp / "b.bin")
        with raw.open("wb") as f:
            f.write(b"\x00\x01")
        self.assertEqual(read(raw, "rb"), b"\x00\x01")
        for name, fmt, magic in (("gz", mf.Gzip, b"\x1f\x8b"), ("bz2", mf.Bzip2, b"BZh")):
            with self.subTest(name):
                target = mf.LocalTarget(self.tmp / f"x.{name}", format=fmt)
                with target.open("w") as f:
                    f.write(b"payload" * 100)
                with open(target.path, "rb") as f:
                    self.assertEqual(f.read(3)[:len(magic)], magic)
                with target.open("r") as f:
                    self.assertEqual(f.read(), b"payload" * 100)
                # Luigi's order: the text format first, the compression next to disk.
                text = mf.LocalTarget(self.tmp / f"t.{name}", format=mf.UTF8 >> fmt)
                with text.open("w") as f:
                    f.write("ünïcode\n")
                with text.open("r") as f:
                    self.assertEqual(f.read(), "ünïcode\n")
                with open(text.path, "rb") as f:
                    self.assertEqual(f.read(3)[:len(magic)], magic)
                with self.assertRaisesRegex(TypeError, "chaining is not valid"):
                    fmt >> mf.UTF8
        nop = mf.LocalTarget(self.tmp / "n.bin", format=mf.format.Nop)
        with nop.open("w") as f:
            f.write(b"abc")
        self.assertEqual(read(nop), b"abc")

    def test_gzip_failure_leaves_nothing(self):
        target = mf.LocalTarget(self.tmp / "x.gz", format=mf.Gzip)
        with self.assertRaises(ValueError):
            with target.open("w") as f:
                f.write(b"abc")
                raise ValueError("stop")
        self.assertFalse(target.exists())
        self.assertEqual(self.leftovers(self.tmp), [])

    def test_bad_mode(self):
        with self.assertRaisesRegex(ValueError, "unsupported mode 'a'"):
            mf.LocalTarget(self.tmp / "x").open("a")

    def test_temporary_path(self):
        target = mf.LocalTarget(self.tmp / "sub" / "final.txt")
        with target.temporary_path() as path:
            self.assertIn("-luigi-tmp-", path)
            with open(path, "w") as f:
                f.write("ok")
            self.assertFalse(target.exists())
        self.assertEqual(read(target), "ok")
        other = mf.LocalTarget(self.tmp / "sub" / "failed.txt")
        with self.assertRaises(RuntimeError):
            with other.temporary_path() as path:
                open(path, "w").close()
                raise RuntimeError
        self.assertFalse(other.exists())
        self.assertEqual(self.leftovers(self.tmp / "sub"), [])

    def test_remove_move_copy(self):
        target = mf.LocalTarget(self.tmp / "a.txt")
        with target.open("w") as f:
            f.write("x")
        target.copy(str(self.tmp / "c" / "b.txt"))
        self.assertTrue((self.tmp / "c" / "b.txt").exists())
        target.move(str(self.tmp / "d" / "a.txt"))
        self.assertFalse(target.exists())
        moved = mf.LocalTarget(self.tmp / "d" / "a.txt")
        moved.remove()
        self.assertFalse(moved.exists())

    def test_is_tmp(self):
        target = mf.LocalTarget(is_tmp=True)
        with target.open("w") as f:
            f.write("x")
        path = target.path
        self.assertTrue(os.path.exists(path))
        del target
        gc.collect()
        self.assertFalse(os.path.exists(path))


class Rot13(mf.Format):
    """A format of a user's own, written to Luigi's interface (pipe_reader/_writer)."""
    input = output = "bytes"

    def pipe_reader(self, input_pipe):
        with input_pipe:
            return mf.FileWrapper(io.BytesIO(bytes(input_pipe.read()).translate(ROT13)))

    def pipe_writer(self, output_pipe):
        class Writer(mf.BaseWrapper):
            def write(self, data):
                return self._stream.write(bytes(data).translate(ROT13))
        return Writer(output_pipe)


ROT13 = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz",
                        b"nopqrstuvwxyzabcdefghijklm")


class TestLuigiFormats(TempDirMixin, unittest.TestCase):
    """luigi.format's names, with Luigi's behaviour, on microflow's atomic files."""

    def test_a_format_of_ones_own_through_pipe_reader_and_writer(self):
        target = mf.LocalTarget(self.tmp / "secret", format=Rot13())
        with target.open("w") as f:
            f.write(b"hello")
        self.assertEqual((self.tmp / "secret").read_bytes(), b"uryyb")
        with target.open("r") as f:
            self.assertEqual(f.read(), b"hello")
        chained = mf.LocalTarget(self.tmp / "both", format=mf.UTF8 >> Rot13() >> mf.Gzip)
        with chained.open("w") as f:
            f.write("héllo")
        with chained.open("r") as f:
            self.assertEqual(f.read(), "héllo")
        with self.assertRaisesRegex(TypeError, "The format chaining is not valid"):
            mf.Gzip >> mf.UTF8
        self.assertIs(mf.get_default_format(), mf.Text)
        self.assertEqual((mf.TextFormat.input, mf.TextFormat.output), ("unicode", "bytes"))
        self.assertIsInstance(mf.format.Nop, mf.format.NopFormat)

    def test_sys_newline_and_mixed_unicode_bytes_hand_out_bytes(self):
        target = mf.LocalTarget(self.tmp / "lines", format=mf.SysNewLine)
        with target.open("w") as f:
            f.write(b"a\r\nb\rc\n")
        self.assertEqual((self.tmp / "lines").read_bytes(),
                         b"a" + os.linesep.encode() + b"b" + os.linesep.encode() + b"c" +
                         os.linesep.encode())
        (self.tmp / "lines").write_bytes(b"a\r\nb\rc")
        with target.open("r") as f:
            self.assertEqual(f.read(), b"a\nb\nc")
        with self.assertRaisesRegex(ValueError, "newline must be"):
            mf.NewlineWrapper(io.BytesIO(), newline="x")
        mixed = mf.LocalTarget(self.tmp / "mixed", format=mf.MixedUnicodeBytes)
        with self.assertWarnsRegex(UserWarning, "Writing unicode to byte stream"):
            with mixed.open("w") as f:
                f.write(b"bytes, ")
                f.write("text")
        self.assertEqual((self.tmp / "mixed").read_bytes(), b"bytes, text")

    @unittest.skipUnless(shutil.which("gzip"), "needs the gzip command")
    def test_pipes_through_a_process_publish_only_what_succeeded(self):
        path = self.tmp / "out.gz"
        with mf.LocalTarget(path, format=mf.Nop).open("w") as raw:
            with mf.OutputPipeProcessWrapper(["gzip", "-1"], raw) as piped:
                piped.writeLine(b"first")
                piped.write(b"second\n")
        with mf.InputPipeProcessWrapper(["gunzip"], open(path, "rb")) as lines:
            self.assertEqual(list(lines), [b"first\n", b"second\n"])
        with mf.GzipFormat(compression_level=1).pipe_reader(open(path, "rb")) as unzipped:
            self.assertEqual(unzipped.read(), b"first\nsecond\n")   # the stdlib alike
        with mf.InputPipeProcessWrapper(["cat"], io.BytesIO(b"no descriptor")) as piped:
            self.assertEqual(piped.read(), b"no descriptor")   # spooled to a file
        failing = mf.OutputPipeProcessWrapper(
            [sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(3)"],
            mf.LocalTarget(self.tmp / "never", format=mf.Nop).open("w"))
        failing.write(b"data")
        with self.assertRaisesRegex(RuntimeError, "exit code 3"):
            failing.close()
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["out.gz"])
        reader = mf.InputPipeProcessWrapper([sys.executable, "-c", "import sys; sys.exit(4)"])
        reader.read()
        with self.assertRaisesRegex(RuntimeError, "Error reading from pipe"):
            reader.close()


class TestMockTarget(unittest.TestCase):
    def setUp(self):
        mf.MockFileSystem().clear()

    def test_copy_rename_and_a_bad_mode(self):
        fs = mf.MockFileSystem()
        with mf.MockTarget("a").open("w") as f:
            f.write("x")
        fs.copy("a", "b")
        fs.rename("b", "c")
        self.assertEqual((fs.exists("a"), fs.exists("b"), fs.get_data("c")), (True, False, b"x"))
        with self.assertRaises(mf.FileAlreadyExists):
            fs.copy("a", "c", raise_if_exists=True)
        with self.assertRaisesRegex(TypeError, "mode must be a string"):
            mf.MockTarget("a").open(None)

    def test_temporary_path_named_as_luigis(self):
        target = mf.MockTarget("out/file")
        with target.temporary_path() as path:
            self.assertRegex(path, r"^out/file-luigi-tmp-\d{10}$")
            with mf.MockTarget(path).open("w") as f:
                f.write("x")
        self.assertEqual(mf.MockFileSystem().get_data("out/file"), b"x")
        with tempfile.TemporaryDirectory() as tmp:     # a folder keeps its slash
            with mf.LocalTarget(os.path.join(tmp, "dir") + "/").temporary_path() as path:
                self.assertRegex(path, r"/dir-luigi-tmp-\d{10}/$")
                os.mkdir(path)
            self.assertTrue(os.path.isdir(os.path.join(tmp, "dir")))

    def test_write_read_and_atomicity(self):
        target = mf.MockTarget("some/file")
        with target.open("w") as f:
            f.write("héllo")
        self.assertEqual(read(target), "héllo")
        self.assertEqual(mf.MockFileSystem().get_data("some/file"), "héllo".encode())
        other = mf.MockTarget("other")
        with self.assertRaises(RuntimeError):
            with other.open("w") as f:
                f.write("x")
                raise RuntimeError
        self.assertFalse(other.exists())
        target.remove()
        self.assertFalse(target.exists())

    def test_binary_and_gzip(self):
        target = mf.MockTarget("g", format=mf.Gzip)
        with target.open("w") as f:
            f.write(b"zzz")
        self.assertEqual(read(target), b"zzz")
        self.assertEqual(mf.MockFileSystem().get_data("g")[:2], b"\x1f\x8b")


###########################################################################################
# Tasks
###########################################################################################

class TestTaskIds(unittest.TestCase):
    def test_ids_and_reprs_match_luigi(self):
        tasks = reference_tasks()
        self.assertGreaterEqual(len(LUIGI_TASK_IDS), 20)
        self.assertEqual(len(tasks), len(LUIGI_TASK_IDS))
        for task, (expected_repr, expected_id) in zip(tasks, LUIGI_TASK_IDS):
            with self.subTest(expected_id):
                self.assertEqual(repr(task), expected_repr)
                self.assertEqual(str(task), expected_repr)
                self.assertEqual(task.task_id, expected_id)

    def test_task_id_str_directly(self):
        self.assertEqual(mf.task_id_str("Top", {}), "Top__99914b932b")
        self.assertEqual(
            mf.task_id_str("A", {"n": "1", "d": "2024-01-02", "s": "hello world/x"}),
            "A_2024_01_02_1_hello_world_x_6b57f2cdf7")

    def test_hidden_and_insignificant_params_not_in_id(self):
        V = mf.ParameterVisibility

        class IdVis(mf.Task):
            a = mf.Parameter()
            h = mf.Parameter(visibility=V.HIDDEN)
            i = mf.Parameter(significant=False)
        self.assertEqual(IdVis("x", "1", "1").task_id, IdVis("x", "2", "2").task_id)
        task = IdVis("x", "h", "i")
        self.assertEqual(task.to_str_params(), {"a": "x", "h": "h", "i": "i"})
        self.assertEqual(task.to_str_params(only_significant=True, only_public=True),
                         {"a": "x"})
        self.assertEqual(task._get_param_visibilities(), {"a": 0, "h": 1, "i": 0})


class Windowed(mf.Task):
    disable_window = 17
    wait = mf.TimeDeltaParameter(default=datetime.timedelta(1))
    count = mf.IntParameter(default=0)


class TestTaskModel(unittest.TestCase):
    def test_luigi_conveniences_on_tasks(self):
        import pickle
        task = Windowed()
        self.assertEqual(task.disable_window_seconds, 17)
        task.set_status_message = lambda message: message   # as a worker sets it
        with task.no_unpicklable_properties():
            pickle.dumps(task)
        self.assertEqual(task.set_status_message("still here"), "still here")
        with self.assertWarnsRegex(UserWarning, 'Parameter "wait" with value .* is not '
                                                'of type timedelta'):
            Windowed(wait=types.SimpleNamespace(days=1, seconds=1))   # duck-typed: warned
        with mf.config_override({"Windowed": {"count": "many"}}):
            with self.assertRaisesRegex(ValueError, r"Windowed\[args=\(\), kwargs={}\]: "
                                        r"Error when parsing the default value of 'count'"
                                        r".*expects an integer, got 'many'"):
                Windowed()

    def test_a_bad_value_says_where_it_came_from_and_what_to_pass(self):
        class RawEvents(mf.Task):
            date = mf.DateParameter()
        with self.assertRaisesRegex(mf.ParameterParseError, re.escape(
                "RawEvents: parameter 'date' expects a date YYYY-MM-DD, got the string "
                "'2026-01-01': pass datetime.date(2026, 1, 1) (strings are parsed only from "
                "the command line and config)")):
            RawEvents(date="2026-01-01")   # issue 23, point 8
        with self.assertRaisesRegex(mf.ParameterParseError, "got 'soon'"):
            RawEvents(date="soon")         # not a date in any form: the general message
        with mf.CmdlineParser.global_instance(["RawEvents", "--RawEvents-date",
                                               "2026-02-30"]):
            with self.assertRaisesRegex(mf.ParameterParseError, re.escape(
                    "Error when parsing the value of 'date' given on the command line "
                    "(--RawEvents-date)")):
                RawEvents()

    def test_instance_cache(self):
        class Cached(mf.Task):
            n = mf.IntParameter()
            m = mf.IntParameter(default=2)
        self.assertIs(Cached(1), Cached(n=1))
        self.assertIs(Cached(1), Cached(1, 2))
        self.assertIsNot(Cached(1), Cached(2))
        self.assertEqual(hash(Cached(1)), hash(Cached(1).task_id))

    def test_unhashable_values_bypass_cache(self):
        class Unhashable(mf.Task):
            p = mf.Parameter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "not of type string", as in Luigi
            first, second = Unhashable(p={"a": 1}), Unhashable(p={"a": 1})
        self.assertIsNot(first, second)
        self.assertEqual(first, second)

    def test_disable_and_clear_instance_cache(self):
        class Uncached(mf.Task):
            n = mf.IntParameter()
        mf.Register.disable_instance_cache()
        try:
            self.assertIsNot(Uncached(1), Uncached(1))
            self.assertEqual(Uncached(1), Uncached(1))
        finally:
            mf.Register.clear_instance_cache()
        self.assertIs(Uncached(1), Uncached(1))

    def test_user_init_still_runs(self):
        class WithInit(mf.Task):
            n = mf.IntParameter()

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.doubled = self.n * 2
        self.assertEqual(WithInit(4).doubled, 8)

    def test_parameter_errors_name_task_and_parameter(self):
        class Report(mf.Task):
            date = mf.DateParameter()
            n = mf.IntParameter(default=1)
        with self.assertRaisesRegex(mf.MissingParameterException,
                                    r"Report\[args=\(\), kwargs=\{\}\]: requires the 'date' "
                                    r"parameter to be set \(a date YYYY-MM-DD\)"):
            Report()
        with self.assertRaisesRegex(mf.UnknownParameterException,
                                    r"unknown parameter dte; did you mean date\?"):
            Report(dte=datetime.date(2024, 1, 1))
        with self.assertRaisesRegex(mf.UnknownParameterException,
                                    "takes at most 2 positional parameters"):
            Report(datetime.date(2024, 1, 1), 1, 2)
        with self.assertRaisesRegex(mf.DuplicateParameterException,
                                    "parameter date was already set"):
            Report(datetime.date(2024, 1, 1), date=datetime.date(2024, 1, 1))
        with self.assertRaisesRegex(mf.ParameterParseError,
                                    r"Report: parameter 'date' expects a date YYYY-MM-DD, "
                                    r"got '2024/1/1'"):
            Report.from_str_params({"date": "2024/1/1"})
        self.assertTrue(issubclass(mf.ParameterParseError, ValueError))

    def test_non_positional_params(self):
        class Kw(mf.Task):
            a = mf.Parameter(positional=False)
            b = mf.Parameter()
        self.assertEqual(Kw("B", a="A").param_kwargs, {"a": "A", "b": "B"})

    def test_str_params_round_trip_and_clone(self):
        class Source(mf.Task):
            day = mf.DateParameter()
            items = mf.ListParameter(default=[1])

        class Copy(mf.Task):
            day = mf.DateParameter()
            extra = mf.IntParameter(default=0)
        task = Source(datetime.date(2024, 5, 1), [1, 2])
        self.assertEqual(task.to_str_params(), {"day": "2024-05-01", "items": "[1, 2]"})
        self.assertIs(Source.from_str_params(task.to_str_params()), task)
        clone = task.clone(Copy, extra=3)
        self.assertEqual((clone.day, clone.extra), (datetime.date(2024, 5, 1), 3))
        self.assertIs(task.clone(items=[1, 2]), task)
        self.assertEqual(task.param_args, (datetime.date(2024, 5, 1), (1, 2)))

        class Plain(mf.Task):   # a property of the same name is copied too, as in Luigi
            @property
            def extra(self):
                return 7
        self.assertEqual(Plain().clone(Copy, day=datetime.date(2024, 1, 1)).extra, 7)

    def test_flatten_and_getpaths(self):
        self.assertEqual(mf.flatten(None), [])
        self.assertEqual(mf.flatten("ab"), ["ab"])
        self.assertEqual(mf.flatten(42), [42])
        self.assertEqual(sorted(mf.flatten({"a": [1, (2, [3])], "b": {"c": 4}})), [1, 2, 3, 4])
        self.assertEqual(mf.flatten(x for x in range(3)), [0, 1, 2])

        class Leaf(mf.Task):
            n = mf.IntParameter()

            def output(self):
                return mf.MockTarget(f"leaf{self.n}")

        class Needs(mf.Task):
            def requires(self):
                return {"a": Leaf(1), "b": [Leaf(2), (Leaf(3),)]}
        inputs = Needs().input()
        self.assertEqual(inputs["a"].path, "leaf1")
        self.assertEqual([t.path for t in mf.flatten(inputs["b"])], ["leaf2", "leaf3"])
        self.assertEqual(Needs().deps(), [Leaf(1), Leaf(2), Leaf(3)])

    def test_complete_external_wrapper(self):
        mf.MockFileSystem().clear()

        class Data(mf.ExternalTask):
            name = mf.Parameter()

            def output(self):
                return mf.MockTarget(self.name)

        class Group(mf.WrapperTask):
            def requires(self):
                return [Data("x"), Data("y")]
        self.assertIsNone(Data.run)
        self.assertFalse(Group().complete())
        for name in "xy":
            with mf.MockTarget(name).open("w") as f:
                f.write("1")
        self.assertTrue(Group().complete())

        class NoOutput(mf.Task):
            pass
        with self.assertWarnsRegex(UserWarning, "without outputs"):
            self.assertFalse(NoOutput().complete())

    def test_externalize(self):
        class Producer(mf.Task):
            n = mf.IntParameter()

            def run(self):
                pass
        external_class = mf.externalize(Producer)
        self.assertIsNone(external_class.run)
        self.assertEqual(external_class(1).task_id, Producer(1).task_id)
        self.assertIs(mf.Register.get_task_cls("Producer"), Producer)
        external_task = mf.externalize(Producer(2))
        self.assertIsNone(external_task.run)
        self.assertIsNotNone(Producer(2).run)

    def test_class_attributes_for_the_scheduler(self):
        task = reference_tasks()[0]
        self.assertEqual((task.priority, task.resources, task.worker_timeout,
                          task.retry_count, task.disabled, task.accepts_messages,
                          task.owner_email), (0, {}, None, None, False, False, None))

    def test_event_handlers(self):
        seen = []

        class Evented(mf.Task):
            pass

        class SubEvented(Evented):
            pass

        @Evented.event_handler(mf.Event.SUCCESS)
        def record(task):
            seen.append(task)

        @Evented.event_handler(mf.Event.SUCCESS)
        def explode(task):
            raise RuntimeError("handler bug")
        with self.assertLogs("microflow", "ERROR") as logs:
            SubEvented().trigger_event(mf.Event.SUCCESS, SubEvented())
        self.assertEqual(seen, [SubEvented()])
        self.assertIn("Error in event callback", logs.output[0])
        Evented.remove_event_handler(mf.Event.SUCCESS, record)
        Evented.remove_event_handler(mf.Event.SUCCESS, explode)
        reference_tasks()[0].trigger_event(mf.Event.SUCCESS)
        self.assertEqual(len(seen), 1)


class TestNamespacesAndRegistry(unittest.TestCase):
    def tearDown(self):
        mf.namespace(scope=__name__)
        mf.namespace()

    def test_namespace_and_auto_namespace(self):
        mf.namespace("space", scope=__name__)

        class Spaced(mf.Task):
            pass

        class Explicit(mf.Task):
            task_namespace = "own"
        mf.auto_namespace(scope=__name__)

        class Auto(mf.Task):
            pass
        mf.namespace(scope=__name__)

        class Plain(mf.Task):
            pass
        self.assertEqual(Spaced.get_task_family(), "space.Spaced")
        self.assertEqual(Spaced.task_family, "space.Spaced")
        self.assertEqual(Spaced().task_family, "space.Spaced")
        self.assertEqual(Explicit.get_task_family(), "own.Explicit")
        self.assertEqual(Auto.get_task_family(), f"{__name__}.Auto")
        self.assertEqual(Plain.get_task_family(), "Plain")
        self.assertIs(mf.Register.get_task_cls("space.Spaced"), Spaced)

    def test_subclass_replaces_base_but_unrelated_is_ambiguous(self):
        class Twin(mf.Task):
            task_namespace = "reg"
        first = Twin

        class Twin(first):  # noqa: F811 - a subclass with the same family
            task_namespace = "reg"
        self.assertIs(mf.Register.get_task_cls("reg.Twin"), Twin)

        def make():
            class Twin(mf.Task):
                task_namespace = "reg"
            return Twin
        make()
        with self.assertRaisesRegex(mf.TaskClassAmbigiousException, "'reg.Twin' is ambiguous"):
            mf.Register.get_task_cls("reg.Twin")

    def test_not_found_suggests(self):
        class RegisteredReport(mf.Task):
            pass
        with self.assertRaisesRegex(mf.TaskClassNotFoundException,
                                    "No task RegisteredRepot. Did you mean: RegisteredReport"):
            mf.Register.get_task_cls("RegisteredRepot")
        self.assertIn("RegisteredReport", mf.Register.task_names())

    def test_load_by_module_path(self):
        cls = mf.Register.get_task_cls(f"{__name__}:ModuleLevelTask")
        self.assertIs(cls, ModuleLevelTask)
        self.assertIs(mf.Register.get_task_cls(f"{__name__}.ModuleLevelTask"), ModuleLevelTask)
        with self.assertRaisesRegex(mf.TaskClassNotFoundException, "not a Task subclass"):
            mf.Register.get_task_cls(f"{__name__}:Color")
        task = mf.load_task(__name__, "ModuleLevelTask", {"n": "3"})
        self.assertEqual(task.n, 3)

    def test_requires_and_inherits(self):
        class Parent(mf.Task):
            day = mf.DateParameter()
            n = mf.IntParameter(default=1)

        class Other(mf.Task):
            label = mf.Parameter(default="x")

        @mf.requires(Parent)
        class Child(mf.Task):
            pass

        @mf.util.inherits(Parent, Other)
        class Both(mf.Task):
            pass

        @mf.util.requires(a=Parent, b=Other)
        class Keyed(mf.Task):
            pass
        day = datetime.date(2024, 1, 1)
        self.assertEqual(Child(day).requires(), Parent(day))
        self.assertEqual([name for name, _ in Both.get_params()], ["day", "n", "label"])
        self.assertEqual(Both(day).clone_parents(), [Parent(day), Other()])
        self.assertEqual(Keyed(day).requires(), {"a": Parent(day), "b": Other()})
        with self.assertRaises(TypeError):
            mf.inherits()


class ModuleLevelTask(mf.Task):
    n = mf.IntParameter(default=0)


###########################################################################################
# Configuration
###########################################################################################

class TestConfiguration(TempDirMixin, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.addCleanup(mf.reset_config)

    def test_resolution_order_constructor_config_default(self):
        class Configured(mf.Task):
            a = mf.IntParameter(default=1)
            b = mf.IntParameter(default=1)
            when = mf.DateParameter(default=datetime.date(2020, 1, 1))
        with mf.config_override({"Configured": {"a": "5", "when": "2024-02-03"}}):
            task = Configured(b=7)
            self.assertEqual((task.a, task.b, task.when), (5, 7, datetime.date(2024, 2, 3)))
            self.assertEqual(Configured(a=9).a, 9)
        self.assertEqual(Configured().a, 1)

    def test_bad_config_value_names_source(self):
        class BadConfig(mf.Task):
            n = mf.IntParameter()
        with mf.config_override({"BadConfig": {"n": "seven"}}):
            with self.assertRaisesRegex(mf.ParameterParseError,
                                        r"BadConfig: parameter 'n' expects an integer, got "
                                        r"'seven' \(config \[BadConfig\]\)"):
                BadConfig()

    def test_unconsumed_warning(self):
        class Consumer(mf.Task):
            n = mf.IntParameter(default=0)
        with mf.config_override({"Consumer": {"nn": "1"}}):
            with self.assertWarnsRegex(mf.UnconsumedParameterWarning, "'nn'"):
                Consumer()

    def test_files_env_interpolation_and_dashes(self):
        path = self.tmp / "custom.cfg"
        path.write_text("[core]\nlog-level = ${MF_TEST_LEVEL}\n[resources]\ndb = 3\n"
                        "[Fam]\nsome_value = %(x)s!\nx = y\n")
        env = {"MICROFLOW_CONFIG_PATH": str(path), "MF_TEST_LEVEL": "INFO"}
        with unittest.mock.patch.dict(os.environ, env):
            mf.reset_config()
            config = mf.get_config()
            with self.assertWarnsRegex(DeprecationWarning, "Please use underscores"):
                self.assertEqual(config.get("core", "log_level"), "INFO")
            self.assertEqual(config.getint("resources", "db"), 3)
            self.assertEqual(config.get("Fam", "some_value"), "y!")
            self.assertEqual(config.get("core", "missing", "fallback"), "fallback")
            self.assertEqual(config.getboolean("core", "nope", False), False)
        with unittest.mock.patch.dict(os.environ, {"MICROFLOW_CONFIG_PATH": str(path)}):
            os.environ.pop("MF_TEST_LEVEL", None)
            mf.reset_config()
            with self.assertRaisesRegex(mf.ConfigError, "'MF_TEST_LEVEL' is not set"), \
                    self.assertWarnsRegex(DeprecationWarning, "log-level \\(with dashes\\)"):
                mf.get_config().get("core", "log-level")

    def test_toml_files_feed_the_same_config(self):
        path = self.tmp / "luigi.toml"
        path.write_text('[core]\nworkers = 3\n[worker]\nkeep_alive = true\n'
                        '[TomlTask]\nnames = ["a", "b"]\nday = 2026-01-02\n'
                        'rate = "100%"\n')

        class TomlTask(mf.Task):
            names = mf.ListParameter()
            day = mf.DateParameter()
            rate = mf.Parameter()
        with unittest.mock.patch.dict(os.environ, {"MICROFLOW_CONFIG_PATH": str(path)}):
            mf.reset_config()
            self.addCleanup(mf.reset_config)
            if sys.version_info < (3, 11):   # no tomllib: a clear error, not silence
                with self.assertRaisesRegex(mf.ConfigError, "TOML configuration needs "
                                                            "Python 3.11"):
                    mf.get_config()
                return
            config = mf.get_config()
            self.assertEqual(config.getint("core", "workers"), 3)
            self.assertTrue(config.getboolean("worker", "keep_alive"))
            task = TomlTask()
            self.assertEqual((task.names, task.day, task.rate),
                             (("a", "b"), datetime.date(2026, 1, 2), "100%"))
            self.assertIs(mf.configuration.LuigiTomlParser.instance(), config)
        path.write_text("[core\nworkers = ")
        with unittest.mock.patch.dict(os.environ, {"MICROFLOW_CONFIG_PATH": str(path)}):
            mf.reset_config()
            with self.assertRaisesRegex(mf.ConfigError, "luigi.toml: not valid TOML"):
                mf.get_config()

    def test_typed_getters_report_bad_values(self):
        mf.set_config("worker", "timeout", "soon")
        with self.assertRaisesRegex(mf.ConfigError, r"\[worker\] timeout: expected a number"):
            mf.get_config().getfloat("worker", "timeout")
        with self.assertRaisesRegex(mf.ConfigError, "no option 'absent'"):
            mf.get_config().get("worker", "absent")

    def test_luigi_namespace(self):
        self.assertIs(mf.configuration.get_config(), mf.get_config())


LUIGI_STYLE_MODULE = '''
import datetime
import microflow as luigi

class Source(luigi.ExternalTask):
    day = luigi.DateParameter()

    def output(self):
        return luigi.mock.MockTarget(f"src/{self.day}")

class Report(luigi.Task):
    day = luigi.DateParameter()
    kind = luigi.ChoiceParameter(choices=["csv", "tsv"], default="csv")
    secret = luigi.Parameter(default="pw",
                             visibility=luigi.parameter.ParameterVisibility.PRIVATE)

    def requires(self):
        return {"today": Source(self.day), "days": [Source(d) for d in
                luigi.date_interval.Week.from_date(self.day).dates()[:2]]}

    def output(self):
        return luigi.LocalTarget(f"report-{self.day}.{self.kind}.gz",
                                 format=luigi.format.Gzip)

    def run(self):
        with self.output().open("w") as f:
            f.write(b"%d inputs" % len(luigi.task.flatten(self.input())))

@luigi.util.inherits(Report)
class Publish(luigi.Task):
    def requires(self):
        return self.clone_parent()

    def complete(self):
        return self.requires().complete()

@Report.event_handler(luigi.Event.SUCCESS)
def on_success(task):
    SUCCEEDED.append(task.task_id)

SUCCEEDED = []
'''


class BatchLeaf(mf.Task):
    """Written by the worker's own process (pid in the file), or a child's."""
    n = mf.IntParameter()
    where = mf.Parameter()

    def output(self):
        return mf.LocalTarget(os.path.join(self.where, f"leaf{self.n}"))

    def run(self):
        self.set_status_message(f"leaf {self.n}")
        with self.output().open("w") as f:
            f.write(str(os.getpid()))


class BatchRoot(mf.WrapperTask):
    where = mf.Parameter()

    def requires(self):
        return [BatchLeaf(n, self.where) for n in range(3)]


class HandsSomeToABatchSystem(mf.Worker):
    """A library's worker (as b2luigi's): its own process object for some tasks,
    Luigi's for the others through super(), and attributes set as Luigi's are."""

    def __init__(self, scheduler=None, worker_processes=1, **kwargs):
        super().__init__(scheduler=scheduler, worker_processes=worker_processes, **kwargs)
        self._scheduler = scheduler          # as Luigi's __init__ does
        self._config = types.SimpleNamespace(check_unfulfilled_deps=True)
        self.worker_processes = worker_processes
        self.host, self._running_tasks, self._batch_families_sent = "here", {}, set()
        self.made = []

    def _create_task_process(self, task):
        process = super()._create_task_process(task)
        self.made.append((task.task_id, type(process).__name__,
                          process.use_multiprocessing))
        return process


class TestLuigiWorkerHooks(TempDirMixin, unittest.TestCase):
    def build_with(self, workers):
        made = []

        class Factory(mf.WorkerSchedulerFactory):
            def create_worker(self, scheduler, worker_processes, assistant=False):
                worker = HandsSomeToABatchSystem(scheduler, worker_processes)
                made.append(worker)
                return worker
        result = mf.build([BatchRoot(str(self.tmp))], workers=workers, detailed_summary=True,
                          worker_scheduler_factory=Factory(), log_level="WARNING")
        return result, made[0]

    def test_a_subclass_runs_tasks_through_super_create_task_process(self):
        for workers, in_child in ((1, False), (2, True)):
            result, worker = self.build_with(workers)
            self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
            self.assertEqual(sorted(kind for _, kind, _ in worker.made),
                             ["ContextManagedTaskProcess"] * 4)   # as Luigi's
            self.assertEqual({child for *_, child in worker.made}, {in_child})
            pids = {(self.tmp / f"leaf{n}").read_text() for n in range(3)}
            self.assertEqual(pids == {str(os.getpid())}, not in_child, pids)
            for n in range(3):
                (self.tmp / f"leaf{n}").unlink()

    def test_a_task_process_reports_its_result_on_the_queue(self):
        import queue
        results, reports = queue.Queue(), []

        class Reporter:
            def __getattr__(self, name):
                return lambda value: reports.append((name, value))
        process = mf.TaskProcess(BatchLeaf(7, str(self.tmp)), "w", results, Reporter(),
                                 worker_timeout=30)
        self.assertTrue(process.use_multiprocessing)   # a timeout needs a child
        self.assertAlmostEqual(process.timeout_time, time.time() + 30, delta=5)
        process.run()
        self.assertEqual(results.get_nowait(),
                         (BatchLeaf(7, str(self.tmp)).task_id, mf.DONE, None, [], None))
        self.assertEqual(reports, [("update_status_message", "leaf 7")])
        self.assertEqual(mf.TaskProcess.forward_reporter_attributes["update_status_message"],
                         "set_status_message")

    def test_an_assigned_scheduler_is_the_one_talked_to(self):
        other = mf.Scheduler()
        worker = mf.Worker(mf.Scheduler())
        worker._scheduler = other
        worker.add(BatchLeaf(1, str(self.tmp)))
        self.assertEqual(list(other.task_list("", "")), [BatchLeaf(1, str(self.tmp)).task_id])


class DayFile(mf.MixinNaiveBulkComplete, mf.Task):
    """One file a day, for ranges, previous() and the deps tools."""
    day = mf.DateParameter()
    where = mf.Parameter(significant=False)

    def output(self):
        return mf.LocalTarget(os.path.join(self.where, f"{self.day:%Y-%m-%d}.txt"))


class DayRange(mf.RangeDailyBase):
    pass


class FakeAWS:
    """boto3 as a test double: records the calls its clients get."""

    def __init__(self):
        self.calls = []

    def client(self, service):
        calls = self.calls

        class Client:
            def __getattr__(self, method):
                return lambda **kwargs: calls.append((service, method, kwargs)) or {"ok": 1}
        return Client()


class TestLuigiNamespace(TempDirMixin, unittest.TestCase):
    """Luigi's names microflow gives, each doing what Luigi's does."""

    def test_scheduler_records_and_simple_task_state(self):
        scheduler = mf.Scheduler()   # the wall clock, which Luigi's records read too
        scheduler.add_task(task_id="A", worker="w", family="A", status=mf.PENDING)
        scheduler.add_task(task_id="B", worker="w", family="B", deps=["A"],
                           params={"x": "1"})
        state = scheduler._state
        task = state.get_task("B")
        self.assertIsInstance(task, mf.scheduler.Task)
        self.assertEqual((task.pretty_id, task.is_batchable()), ("B(x=1)", False))
        self.assertTrue(state.has_task("A") and not state.has_task("Z"))
        self.assertEqual(sorted(t.id for t in state.get_active_tasks_by_status(mf.PENDING)),
                         ["A", "B"])
        self.assertEqual(state.num_pending_tasks(), 2)
        state.set_status(state.get_task("A"), mf.FAILED)
        self.assertEqual(scheduler.task_list(mf.FAILED, "").keys(), {"A"})
        self.assertEqual(state.get_task("A").num_failures(), 1)
        task.add_failure()
        self.assertEqual(task.num_failures(), 1)
        task.clear_failures()
        self.assertEqual(task.num_failures(), 0)
        self.assertFalse(task.has_excessive_failures())
        worker = state.get_worker("w")
        self.assertIsInstance(worker, mf.scheduler.Worker)
        self.assertEqual(sorted(t.id for t in worker.get_tasks(state, mf.PENDING)), ["B"])
        scheduler.set_worker_processes("w", 3)
        self.assertEqual(worker.fetch_rpc_messages(),
                         [{"name": "set_worker_processes", "kwargs": {"n": 3}}])
        self.assertEqual(state.get_worker_ids(), ["w"])
        state.inactivate_tasks(["B"])
        self.assertFalse(state.has_task("B"))
        ordered = mf.OrderedSet([3, 1, 2])
        ordered.add(1)
        self.assertEqual((list(ordered), ordered.peek(), ordered.pop(last=False)),
                         ([3, 1, 2], 2, 3))

    def test_state_kept_and_loaded_at_state_path_and_resources(self):
        path = str(self.tmp / "state.json")
        first = mf.Scheduler(state_path=path, resources={"db": 2})
        first.add_task(task_id="T", worker="w", status=mf.DONE, family="T")
        self.assertEqual(first.resources(), {"db": {"total": 2, "used": 0}})
        first._state.dump()
        second = mf.Scheduler(state_path=path)
        second.load()
        self.assertEqual(second.task_list(mf.DONE, "").keys(), {"T"})

    def test_a_method_of_ones_own_is_served_by_rpc_method(self):
        class Counting(mf.Scheduler):
            @mf.rpc_method()
            def how_many(self):
                return len(self._tasks)
        self.addCleanup(mf.RPC_METHODS.pop, "how_many")
        scheduler = Counting()
        scheduler.add_task(task_id="T", worker="w")
        with mf.SchedulerServer(scheduler, port=0) as server:
            status, _, body = http_get(server.url + "/api/how_many?data={}")
        self.assertEqual((status, json.loads(body)), (200, {"response": 1}))
        self.assertIs(mf.scheduler.RPC_METHODS["get_work"], mf.Scheduler.get_work)

    def test_metrics_collector_and_task_history_hear_transitions(self):
        heard = []

        class Collector(mf.MetricsCollector):
            def handle_task_started(self, task):
                heard.append(("started", task.id))

            def handle_task_failed(self, task):
                heard.append(("failed", task.id))

            def handle_task_disabled(self, task, config):
                heard.append(("disabled", task.id, config.retry_count))

            def handle_task_done(self, task):
                heard.append(("done", task.id))
        module = types.ModuleType("collector_module")
        module.Collector = Collector
        sys.modules["collector_module"] = module
        self.addCleanup(sys.modules.pop, "collector_module")

        class History(mf.TaskHistory):
            def task_scheduled(self, task):
                heard.append(("scheduled", task.id))

            def task_started(self, task, worker_host):
                heard.append(("on", worker_host))

            def task_finished(self, task, successful):
                heard.append(("finished", successful))
        scheduler = mf.Scheduler(metrics_collector="custom", retry_count=1,
                                 metrics_custom_import="collector_module.Collector",
                                 task_history_impl=History())
        scheduler.add_worker("w", {"host": "box"})
        scheduler.add_task(task_id="T", worker="w", status=mf.PENDING)
        scheduler.get_work(worker="w")
        scheduler.add_task(task_id="T", worker="w", status=mf.FAILED)
        self.assertEqual(heard, [("scheduled", "T"), ("started", "T"), ("on", "box"),
                                 ("disabled", "T", 1)])
        self.assertIsInstance(mf.MetricsCollectors.get("none"), mf.NoMetricsCollector)
        with self.assertRaisesRegex(ValueError, "need to extend the MetricsCollector"):
            mf.MetricsCollectors.get("custom", "json.JSONDecoder")
        stored = mf.StoredTask(scheduler._state.get_task("T"), mf.DONE, "box")
        self.assertEqual((stored.task_family, stored.parameters), ("", {}))

    def test_acquire_for_lets_one_process_of_a_command_run(self):
        code = ("import sys, microflow; print(microflow.lock.acquire_for(sys.argv[1]));"
                "sys.stdout.flush(); sys.stdin.read()")
        env = dict(os.environ, PYTHONPATH=str(HERE))
        first = subprocess.Popen([sys.executable, "-c", code, str(self.tmp)], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(first.wait)
        self.addCleanup(first.stdout.close)
        self.addCleanup(first.stdin.close)
        self.assertEqual(first.stdout.readline().strip(), "True")
        second = subprocess.run([sys.executable, "-c", code, str(self.tmp)], env=env,
                                input="", capture_output=True, text=True, timeout=60)
        self.assertEqual(second.stdout.splitlines()[-1], "False")
        self.assertIn("already running", second.stdout)
        pid, command, path = mf.lock.get_info(str(self.tmp))
        self.assertEqual((pid, command), (os.getpid(), mf.lock.getpcmd(os.getpid())))
        pidfile = self.tmp / "run" / "server.pid"
        mf.process.write_pid(str(pidfile))
        self.assertEqual(mf.process.check_pid(str(pidfile)), os.getpid())
        self.assertEqual(mf.process.check_pid(str(self.tmp / "none.pid")), 0)

    def test_url_lib_fetcher_talks_to_a_scheduler(self):
        with mf.SchedulerServer(port=0, token="t") as server:
            url = server.url.replace("http://", "http://luigi:t@") + "/api/add_task"
            fetched = mf.rpc.URLLibFetcher().fetch(url, {"data": json.dumps(
                {"task_id": "F", "worker": "w"})}, 10)
            self.assertEqual(json.loads(fetched), {"response": None})
            self.assertIn("F", server.scheduler.task_list("", ""))
        self.assertIs(mf.rpc.HAS_UNIX_SOCKET, False)

    def test_deps_tools_grep_and_safe_extractor(self):
        days = [DayFile(datetime.date(2026, 1, d), str(self.tmp)) for d in (1, 2)]

        class Both(mf.WrapperTask):
            def requires(self):
                return days
        self.assertEqual(mf.tools.deps.find_deps(Both(), "DayFile"), {Both(), *days})
        self.assertEqual(mf.tools.deps.get_task_output_description(days[0].output()),
                         f"[FileSystem] {days[0].output().path}")
        (self.tmp / "2026-01-01.txt").write_text("x")
        tree = mf.tools.deps_tree.print_tree(Both())
        self.assertIn("└─--[Both-{} (\x1b[94mPENDING\x1b[0m)]", tree)
        self.assertIn("|---[DayFile-{'day': '2026-01-01'} (\x1b[92mCOMPLETE", tree)
        scheduler = mf.Scheduler()
        scheduler.add_task(task_id="Top", worker="w", deps=["Leaf"], status=mf.PENDING)
        scheduler.add_task(task_id="Leaf", worker="w", status=mf.DONE)
        with mf.SchedulerServer(scheduler, port=0) as server, \
                contextlib.redirect_stdout(io.StringIO()):
            grep = mf.tools.luigi_grep.LuigiGrep("127.0.0.1", server.port)
            found = list(grep.prefix_search("To")) + list(grep.status_search("done"))
        self.assertEqual([(f["name"], f["status"], dict(f["deps_by_status"])) for f in found],
                         [("Top", "PENDING", {"DONE": ["Leaf"]}), ("Leaf", "DONE", {})])
        import tarfile
        archive = self.tmp / "evil.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(self.tmp / "2026-01-01.txt", arcname="../escaped.txt")
        with self.assertRaisesRegex(RuntimeError, "Path Traversal"):
            mf.SafeExtractor(str(self.tmp / "out")).safe_extract(str(archive))
        self.assertFalse((self.tmp / "escaped.txt").exists())

    def test_e_mail_by_ses_sns_and_sendgrid(self):
        aws = FakeAWS()
        settings = {"email": {"force_send": "true", "sender": "me@example.com"}}
        with unittest.mock.patch.dict(sys.modules, {"boto3": aws}):
            for method in ("ses", "sns"):
                settings["email"]["method"] = method
                with mf.config_override(settings):
                    mf.send_email("Subj", "body", "me@example.com", ["arn:topic,x@y"])
        self.assertEqual([(service, method) for service, method, _ in aws.calls],
                         [("ses", "send_raw_email"), ("sns", "publish"), ("sns", "publish")])
        self.assertEqual(aws.calls[0][2]["Destinations"], ["arn:topic", "x@y"])
        self.assertIn("Subject: Subj", aws.calls[0][2]["RawMessage"]["Data"])
        self.assertEqual(aws.calls[1][2], {"TopicArn": "arn:topic", "Subject": "Subj",
                                           "Message": "body"})
        self.assertTrue(mf.notifications.DEFAULT_CLIENT_EMAIL.startswith("luigi-client@"))
        result = mf.build([mf.TestNotificationsTask()], detailed_summary=True,
                          log_level="CRITICAL")
        self.assertEqual(result.status, mf.LuigiStatusCode.FAILED)
        self.assertEqual(mf.TestNotificationsTask.get_task_family(),
                         "notifications.TestNotificationsTask")

    def test_previous_ranges_events_and_bulk_complete(self):
        day = DayFile(datetime.date(2026, 3, 1), str(self.tmp))
        self.assertEqual(mf.util.previous(day).day, datetime.date(2026, 2, 28))
        (self.tmp / "2026-02-27.txt").write_text("x")
        self.assertEqual(mf.util.get_previous_completed(day).day, datetime.date(2026, 2, 27))
        with self.assertRaisesRegex(NotImplementedError, "No task parameter"):
            mf.util.previous(mf.TestNotificationsTask())
        self.assertEqual(DayFile.bulk_complete([
            dict(day=datetime.date(2026, 2, d), where=str(self.tmp)) for d in (26, 27)]),
            [dict(day=datetime.date(2026, 2, 27), where=str(self.tmp))])
        events = []
        for name in ("COMPLETE_COUNT", "COMPLETE_FRACTION", "DELAY"):
            DayRange.event_handler(getattr(mf.RangeEvent, name))(
                lambda family, value, name=name: events.append((name, family, value)))
        stamp = datetime.datetime(2026, 2, 28, tzinfo=datetime.timezone.utc).timestamp()
        ranged = DayRange(of=DayFile, of_params={"where": str(self.tmp)}, now=int(stamp),
                          start=datetime.date(2026, 2, 26), stop=datetime.date(2026, 2, 28))
        self.assertEqual([t.day.day for t in ranged.requires()], [26])
        self.assertEqual(sorted(events), [("COMPLETE_COUNT", "DayFile", 1),
                                          ("COMPLETE_FRACTION", "DayFile", 0.5),
                                          ("DELAY", "DayFile", 2)])
        self.assertEqual(ranged.datetime_to_parameters(datetime.datetime(2026, 2, 26)),
                         {"where": str(self.tmp), "day": datetime.date(2026, 2, 26)})
        self.assertIs(ranged.of_cls, DayFile)
        found = mf.infer_bulk_complete_from_fs(
            [datetime.datetime(2026, 2, d) for d in (26, 27)],
            lambda dt: DayFile(dt.date(), str(self.tmp)))
        self.assertEqual(found, [datetime.datetime(2026, 2, 27)])
        self.assertEqual(mf.tools.range.most_common("abca"), ("a", 2))

    def test_small_names(self):
        queue = mf.batch_notifier.ExplQueue(2)
        for item in ("a", "b", "a", "c"):
            queue.enqueue(item)
        self.assertEqual(list(queue), ["a", "c"])
        self.assertEqual(mf.task.TASK_ID_TRUNCATE_HASH, 10)
        self.assertEqual(len(DayFile(datetime.date(2026, 1, 1), "x").task_id.rsplit("_")[-1]),
                         mf.task.TASK_ID_TRUNCATE_HASH)
        self.assertTrue(mf.task.TASK_ID_INVALID_CHAR_REGEX.match("-"))
        self.assertEqual(mf.parameter.TaskType.__bound__.__forward_arg__, "Task")
        self.assertEqual(mf.parameter.DateMinuteParameter.deprecated_date_format,
                         "%Y-%m-%dT%HH%M")
        self.assertEqual(json.dumps(mf.FrozenOrderedDict(a=1),
                                    cls=mf.parameter._DictParamEncoder), '{"a": 1}')
        with mf.config_override({"execution_summary": {"summary_length": "1"}}):
            self.assertEqual(mf.execution_summary.execution_summary().summary_length, 1)
        self.assertEqual(mf.task_status.SUSPENDED, "SUSPENDED")
        self.assertTrue(issubclass(mf.InterfaceLogging, mf.setup_logging.BaseLogging))
        self.assertEqual(mf.worker._get_retry_policy_dict(DayFile(datetime.date(2026, 1, 1),
                                                                  "x")),
                         {"retry_count": None, "disable_hard_timeout": None,
                          "disable_window": None})
        self.assertIn("fork_lock", dir(mf.worker))


class TestLuigiTargetAndConfigHelpers(TempDirMixin, unittest.TestCase):
    def test_local_target_has_luigis_private_helpers(self):
        self.assertEqual(mf.LocalTarget(str(self.tmp) + "/dir/")._trailing_slash(), "/")
        self.assertEqual(mf.LocalTarget(self.tmp / "file")._trailing_slash(), "")
        target = mf.LocalTarget(self.tmp / "empty")
        target._touchz()
        self.assertEqual((self.tmp / "empty").read_bytes(), b"")
        with self.assertWarns(DeprecationWarning):
            self.assertEqual(target.fn, target.path)
        mock_target = mf.MockTarget("a")
        with mock_target.open("w") as f:
            f.write("x")
        mock_target.rename("b")
        self.assertTrue(mf.MockTarget("b").exists())
        self.assertFalse(mf.MockTarget("a").exists())

    def test_atomic_local_files_publish_on_close_only(self):
        with mf.atomic_file(str(self.tmp / "out")) as f:
            self.assertTrue(f.tmp_path.startswith(str(self.tmp / "out-luigi-tmp-")))
            f.write(b"data")
        self.assertEqual((self.tmp / "out").read_bytes(), b"data")
        published = []

        class ToSomewhere(mf.AtomicLocalFile):   # a library's own kind, as Luigi's S3
            def move_to_final_destination(self):
                with open(self.tmp_path, "rb") as written:
                    published.append(written.read())
                os.remove(self.tmp_path)
        with self.assertRaises(KeyError):
            with ToSomewhere("s3://bucket/key") as f:
                f.write(b"half")
                raise KeyError("boom")
        with ToSomewhere("s3://bucket/key") as f:
            f.write(b"whole")
        self.assertEqual(published, [b"whole"])
        self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["out"])

    @unittest.skipUnless(os.path.exists("/dev/full"), "needs /dev/full (Linux)")
    def test_a_file_whose_data_cannot_be_written_at_close_is_not_published(self):
        # The temporary is a link to /dev/full: the bytes buffered until close fail
        # there with ENOSPC, as on a full disk. Nothing is published, the temporary goes.
        out = self.tmp / "out.txt"
        for mode, data in (("w", "data"), ("wb", b"data")):
            with self.subTest(mode=mode):
                os.symlink("/dev/full", f"{out}-luigi-tmp-{'0' * 9}")
                with unittest.mock.patch.object(mf, "_random_digits",
                                                lambda count: "0" * count):
                    with self.assertRaises(OSError) as caught:
                        with mf.LocalTarget(str(out)).open(mode) as f:
                            f.write(data)
                self.assertEqual(caught.exception.errno, errno.ENOSPC)
                self.assertEqual(list(self.tmp.iterdir()), [])   # link removed, no out.txt
        published, discarded = [], []
        failing = mf._AtomicFile(io.FileIO("/dev/full", "w"), lambda: published.append(1),
                                 lambda: discarded.append(1))
        failing.write(b"x")
        with self.assertRaises(OSError):
            failing.close()
        self.assertEqual((published, discarded), ([], [1]))

    def test_config_takes_fallback_as_configparser_does(self):
        with mf.config_override({"Section": {"present": "7", "flag": "yes"},
                                 "resources": {"db": "2", "gpu": "1"}}):
            config = mf.get_config()
            self.assertEqual(config.get("Section", "absent", fallback="fb"), "fb")
            self.assertEqual(config["Section"].get("absent", "fb"), "fb")
            self.assertIsNone(config["Section"].get("absent"))
            self.assertEqual(config["Section"].get("present", "fb"), "7")
            self.assertEqual(config.getint("Section", "absent", fallback=3), 3)
            self.assertEqual(config["Section"].getint("present"), 7)
            self.assertIs(config.getboolean("Nowhere", "flag", fallback=False), False)
            self.assertIs(config["Section"].getboolean("flag"), True)
            self.assertEqual(config.getintdict("Nowhere"), {})
            self.assertEqual(config.getintdict("resources"), {"db": 2, "gpu": 1})
            with self.assertRaises(mf.ConfigError):
                config.get("Section", "absent")
            self.assertEqual(config.data["Section"]["present"], "7")

    def test_a_missing_environment_variable_is_luigis_error(self):
        import configparser
        os.environ.pop("MICROFLOW_TEST_UNSET", None)
        with mf.config_override({"S": {"v": "${MICROFLOW_TEST_UNSET}"}}):
            with self.assertRaises(mf.configuration.cfg_parser
                                   .InterpolationMissingEnvvarError) as caught:
                mf.get_config().get("S", "v")
        self.assertIsInstance(caught.exception, configparser.InterpolationError)
        self.assertIsInstance(caught.exception, mf.ConfigError)
        self.assertIn("environment variable 'MICROFLOW_TEST_UNSET' is not set",
                      str(caught.exception))
        self.assertIs(mf.configuration.core.PARSERS["toml"],
                      mf.configuration.cfg_parser.LuigiConfigParser)


class TestLuigiHelpers(TempDirMixin, unittest.TestCase):
    def test_optional_parameter_type_warning_names_the_type(self):
        class WithOptional(mf.Task):
            count = mf.OptionalIntParameter()
            day = mf.OptionalDateParameter()
        with self.assertWarns(mf.OptionalParameterTypeWarning) as caught:
            WithOptional(count="7")
        self.assertEqual(str(caught.warning), 'OptionalIntParameter "count" with value "7" '
                                              'is not of type "int" or None.')
        self.assertIsNone(WithOptional().day)
        self.assertEqual(WithOptional(day=datetime.date(2026, 1, 2)).day,
                         datetime.date(2026, 1, 2))
        self.assertIsNone(mf.OptionalDateParameter().parse(""))

    def test_flatten_output_looks_through_wrappers(self):
        class Leaf(mf.Task):
            n = mf.IntParameter()

            def output(self):
                return mf.MockTarget(f"leaf{self.n}")

        class Inner(mf.WrapperTask):
            def requires(self):
                return [Leaf(1), Leaf(2)]

        class Outer(mf.WrapperTask):
            def requires(self):
                return [Inner(), Leaf(2), Leaf(3)]
        self.assertEqual([t.path for t in mf.task.flatten_output(Outer())],
                         ["leaf2", "leaf3", "leaf1"])
        self.assertEqual([t.path for t in mf.flatten_output(Leaf(5))], ["leaf5"])

    def test_local_file_system_copy(self):
        fs = mf.LocalFileSystem()
        (self.tmp / "a.txt").write_text("data")
        fs.copy(str(self.tmp / "a.txt"), str(self.tmp / "sub" / "b.txt"))
        self.assertEqual((self.tmp / "sub" / "b.txt").read_text(), "data")
        with self.assertRaises(mf.FileAlreadyExists):
            fs.copy(str(self.tmp / "a.txt"), str(self.tmp / "sub" / "b.txt"),
                    raise_if_exists=True)


class TestKeepAliveJitter(unittest.TestCase):
    def test_wait_jitter_adds_up_to_its_value_to_idle_waits(self):
        worker = mf.Worker(mf.Scheduler(), wait_interval=1.0, wait_jitter=0.5)
        waits = [worker._idle_wait() for _ in range(50)]
        self.assertTrue(all(1.0 <= wait <= 1.5 for wait in waits))
        self.assertGreater(len(set(waits)), 1)
        self.assertEqual(mf.Worker(mf.Scheduler(), wait_interval=2.0)._idle_wait(), 2.0)
        mf.Worker(mf.Scheduler(), no_install_shutdown_handler=True,
                  cache_task_completion=True)   # Luigi's options are accepted


class TestConfigTypos(unittest.TestCase):
    def test_unknown_core_worker_and_scheduler_options_are_warned_about(self):
        typos = {"core": {"wrokers": "2"}, "worker": {"keep_alvie": "true"},
                 "scheduler": {"retry_dealy": "5"}}
        with mf.config_override(typos), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mf.Worker(mf.Scheduler())
            with self.assertLogs("microflow", "INFO"):
                mf.build([Recorder("typo", [])])
        messages = [str(w.message) for w in caught
                    if issubclass(w.category, mf.UnconsumedParameterWarning)]
        self.assertIn("The configuration contains the parameter 'keep_alvie' with value "
                      "'true' that is not consumed by the task 'worker'. Did you mean "
                      "keep_alive?", messages)
        self.assertTrue(any("'retry_dealy'" in m and "retry_delay" in m for m in messages))
        self.assertTrue(any("'wrokers'" in m and "workers" in m for m in messages))
        with mf.config_override({"worker": {"keep-alive": "true"}}), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mf.Worker(mf.Scheduler())
        self.assertEqual([w for w in caught
                          if issubclass(w.category, mf.UnconsumedParameterWarning)], [])


class TestConfigInstance(unittest.TestCase):
    def test_luigi_config_parser_instance_is_the_config_in_use(self):
        with mf.config_override({"core": {"workers": "3"}}):
            parser = mf.configuration.LuigiConfigParser.instance()
            self.assertIs(parser, mf.get_config())
            self.assertEqual(parser.getint("core", "workers"), 3)

    def test_core_reads_core_options_in_luigis_spellings(self):
        for option, warning in [("scheduler_port", None),
                                ("scheduler-port", r"scheduler-port \(with dashes\) "
                                                   r"should be avoided"),
                                ("default-scheduler-port",
                                 r"\[core\] default-scheduler-port is deprecated")]:
            with mf.config_override({"core": {option: "6543", "workers": "3"}}):
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always")
                    env = mf.interface.core()
                self.assertEqual((env.scheduler_port, env.workers), (6543, 3))
                messages = [str(w.message) for w in seen
                            if issubclass(w.category, DeprecationWarning)]
                if warning:
                    self.assertRegex(" ".join(messages), warning)
                else:
                    self.assertEqual(messages, [])
        self.assertEqual(mf.core().scheduler_port, 8082)

    def test_worker_and_scheduler_options_as_config_classes(self):
        with mf.config_override({"worker": {"keep_alive": "yes", "timeout": "2.5"}}):
            self.assertEqual((mf.worker.worker().keep_alive, mf.worker.worker().timeout), (True, 2.5))
            self.assertTrue(mf.Worker(mf.Scheduler()).options["keep_alive"])
            with mf.CmdlineParser.global_instance(["ParsedGreeting", "--name", "x",
                                                   "--worker-timeout", "9",
                                                   "--scheduler-retry-delay", "7"]):
                self.assertEqual(mf.Worker(mf.Scheduler()).options["timeout"], 9.0)
                self.assertEqual(mf.Scheduler().options["retry_delay"], 7.0)
            self.assertEqual(mf.Scheduler(retry_delay=3).options["retry_delay"], 3)
        with mf.config_override({"worker": {"timeout": "soon"}}):
            with self.assertRaisesRegex(mf.ParameterParseError,
                                        "worker: parameter 'timeout' expects a number, "
                                        "got 'soon'"):
                mf.Worker(mf.Scheduler())

    def test_a_parser_swapped_in_as_luigi_helpers_do_is_obeyed(self):
        class Swapped(mf.Task):
            p = mf.Parameter()
        Parser = mf.configuration.LuigiConfigParser
        saved = Parser.instance()
        fresh = Parser()
        fresh.set("Swapped", "p", "from-swapped")
        Parser._instance = fresh
        try:
            self.assertIs(mf.get_config(), fresh)
            self.assertEqual(Swapped().p, "from-swapped")
        finally:
            Parser._instance = saved
        self.assertIs(mf.get_config(), saved)
        with self.assertRaises(mf.MissingParameterException):
            Swapped()


class TestLuigiStyleModule(TempDirMixin, unittest.TestCase):
    def test_luigi_core_pipeline_runs_unchanged(self):
        module = types.ModuleType("luigi_style_pipeline")
        exec(LUIGI_STYLE_MODULE, module.__dict__)
        day = datetime.date(2024, 5, 8)
        for source_day in (day, datetime.date(2024, 5, 6), datetime.date(2024, 5, 7)):
            with mf.MockTarget(f"src/{source_day}").open("w") as f:
                f.write("x")
        cwd = os.getcwd()
        os.chdir(self.tmp)
        self.addCleanup(os.chdir, cwd)
        with self.assertLogs("microflow", "INFO"):
            self.assertTrue(mf.build([module.Publish(day=day)]))
        report = module.Report(day)
        self.assertEqual(report.task_id, "Report_2024_05_08_csv_35012ac366")  # Luigi 3.8.1
        self.assertEqual(module.SUCCEEDED, [report.task_id])
        with report.output().open("r") as f:
            self.assertEqual(f.read(), b"3 inputs")
        self.assertEqual(mf.configuration.get_config().get("core", "nope", "d"), "d")


class TestPackaging(unittest.TestCase):
    def test_imports_only_stdlib_and_does_nothing_at_import(self):
        code = textwrap.dedent("""
            import sys, time
            before = set(sys.modules)
            start = time.perf_counter()
            import microflow
            elapsed = time.perf_counter() - start
            new = {m.split('.')[0] for m in set(sys.modules) - before}
            def in_stdlib(name):   # Python 3.9 has no sys.stdlib_module_names
                if hasattr(sys, "stdlib_module_names"):
                    return name in sys.stdlib_module_names
                import sysconfig
                path = getattr(sys.modules.get(name), "__file__", None) or ""
                return not path or path.startswith(sysconfig.get_paths()["stdlib"])
            print(sorted(m for m in new - {'microflow'} if not in_stdlib(m)))
            print(microflow.configuration.LuigiConfigParser._instance is None)
        """)
        out = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True,
                             text=True, check=True).stdout.split("\n")
        self.assertEqual(out[0], "[]")
        self.assertEqual(out[1], "True")   # no config read at import

    def test_public_names_exist(self):
        for name in mf.__all__:
            self.assertTrue(hasattr(mf, name), name)


class TestStandardLibraryOnly(unittest.TestCase):
    def test_microflow_imports_with_nothing_but_the_standard_library(self):
        # What type checkers read (typing) must never run; nor anything outside the stdlib.
        code = (f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
                "for name in ('typing_extensions', 'typing'):\n"
                "    sys.modules[name] = None   # importing it now raises\n"
                "import microflow\n"
                "assert microflow.IntParameter.__mro__[1] is microflow.Parameter\n"
                "print(microflow.Parameter[int])\n")
        done = subprocess.run([sys.executable, "-I", "-c", code], cwd=HERE,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual((done.returncode, done.stdout.strip()),
                         (0, "microflow.Parameter[int]"), done.stderr)


class TestTheWheelIsAPackage(unittest.TestCase):
    """The build backend (.ci/wheel_backend.py) lays flit_core's wheel out as a package
    carrying py.typed; here on a wheel of the same shape (flit_core is not needed)."""

    def test_the_module_becomes_a_package_with_py_typed_and_a_true_record(self):
        import base64
        import hashlib
        import importlib.util
        import zipfile
        spec = importlib.util.spec_from_file_location(
            "wheel_backend", HERE / ".ci" / "wheel_backend.py")
        backend = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(backend)
        source = (HERE / "microflow.py").read_bytes()
        with tempfile.TemporaryDirectory() as tmp:
            wheel = os.path.join(tmp, "microflow-0.1.0-py3-none-any.whl")
            with zipfile.ZipFile(wheel, "w") as made:   # flit_core's layout
                made.writestr("microflow.py", source)
                made.writestr("microflow-0.1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
                made.writestr("microflow-0.1.0.dist-info/RECORD", "stale\n")
            backend._as_package(wheel)
            with zipfile.ZipFile(wheel) as built:
                files = {name: built.read(name) for name in built.namelist()}
                built.extractall(os.path.join(tmp, "site"))
            self.assertEqual(files["microflow/__init__.py"], source)
            self.assertEqual(files["microflow/py.typed"], b"")
            self.assertNotIn("microflow.py", files)
            record = files.pop("microflow-0.1.0.dist-info/RECORD").decode().splitlines()
            self.assertIn("microflow-0.1.0.dist-info/RECORD,,", record)
            for name, data in files.items():
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
                self.assertIn(f"{name},sha256={digest.rstrip(b'=').decode()},{len(data)}",
                              record)
            done = subprocess.run(   # python -m microflow, from the package
                [sys.executable, "-m", "microflow", "--version"], cwd=tmp, timeout=60,
                env=dict(os.environ, PYTHONPATH=os.path.join(tmp, "site")),
                capture_output=True, text=True)
            self.assertEqual(done.stdout.strip(), f"microflow {mf.__version__}", done.stderr)
            util = files["microflow/util.py"].decode()   # Luigi's paths, for checkers
            self.assertIn("from microflow import requires as requires\n", util)
            self.assertIn("from microflow import RangeDaily as RangeDaily\n",
                          files["microflow/tools/range.py"].decode())
            self.assertIn("microflow/tools/__init__.py", files)
            done = subprocess.run(   # the files are not what runs: the package's modules
                [sys.executable, "-c", "import microflow.util, microflow.tools.range as r;"
                 "print(type(microflow.util).__name__, r.RangeDaily is microflow.RangeDaily,"
                 " microflow.util.requires is microflow.requires)"], cwd=tmp, timeout=60,
                env=dict(os.environ, PYTHONPATH=os.path.join(tmp, "site")),
                capture_output=True, text=True)
            self.assertEqual(done.stdout.split(), ["_LuigiModule", "True", "True"],
                             done.stderr)


class TestTheFileSaysWhatItHolds(unittest.TestCase):
    """microflow.py is read top to bottom by people who vendor it: these keep it so."""

    @classmethod
    def setUpClass(cls):
        import ast
        cls.source = (HERE / "microflow.py").read_text(encoding="utf-8")
        cls.tree = ast.parse(cls.source)

    def test_the_contents_list_matches_the_banners(self):
        lines, rule = self.source.splitlines(), "#" * 91
        banners = [lines[i][2:] for i in range(1, len(lines) - 1)
                   if lines[i - 1] == rule and lines[i + 1] == rule]
        listed = mf.__doc__.split("(a test keeps this list true):\n")[1].split("\n\n")[0]
        self.assertEqual([line.strip() for line in listed.splitlines()], banners)

    def test_every_public_top_level_name_is_in_all(self):
        import ast
        defined = set()
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        # TYPE_CHECKING is the checkers' switch (they know it by that name), not API.
        public = {name for name in defined if not name.startswith("_")} - {"TYPE_CHECKING"}
        self.assertEqual(sorted(public - set(mf.__all__)), [])
        self.assertEqual(len(mf.__all__), len(set(mf.__all__)))

    def test_the_schedulers_layers_depend_one_way(self):
        """Each layer of Scheduler uses only what it or a layer below it defines (an
        override of a lower method is its own); none keeps a lazy attribute or a bare
        annotation standing for another's."""
        import ast
        classes = {node.name: node for node in self.tree.body if isinstance(
            node, ast.ClassDef) and (node.name.startswith("_Scheduler") or node.name in (
                "Scheduler", "_ResourcePool"))}
        self.assertGreater(len(classes), 9)
        owners = {}   # attribute -> the classes that define it
        for name, cls in classes.items():
            for node in cls.body:
                if isinstance(node, ast.FunctionDef):
                    owners.setdefault(node.name, set()).add(name)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    self.assertFalse(isinstance(node, ast.AnnAssign) and node.value is None,
                                     f"{name}: a bare annotation")
                    for target in getattr(node, "targets", [getattr(node, "target", None)]):
                        owners.setdefault(getattr(target, "id", None), set()).add(name)
            for node in ast.walk(cls):   # what its methods assign to self
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                        and getattr(node.value, "id", None) == "self":
                    owners.setdefault(node.attr, set()).add(name)

        def below(name):
            bases = [base.id for base in classes[name].bases if isinstance(base, ast.Name)
                     and base.id in classes]
            return {name}.union(*(below(base) for base in bases))
        wrong = set()
        for name, cls in classes.items():
            mine = below(name)
            for node in ast.walk(cls):
                if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == \
                        "self" and node.attr in owners and not owners[node.attr] & mine:
                    wrong.add((name, node.attr))
                if isinstance(node, ast.Attribute) and node.attr == "__dict__":
                    wrong.add((name, "__dict__"))
        self.assertEqual(sorted(wrong), [])

    def test_runners_have_one_interface_and_the_worker_probes_none(self):
        import ast
        runners = [node for node in self.tree.body if isinstance(node, ast.ClassDef)
                   and node.name.endswith("Runner") and node.name != "_Runner"]
        self.assertEqual(len(runners), 4)
        for runner in runners:
            self.assertEqual([base.id for base in runner.bases], ["_Runner"], runner.name)
            self.assertTrue(issubclass(getattr(mf, runner.name), mf._Runner))
        probes = [(node.lineno, ast.unparse(node)) for node in ast.walk(self.tree)
                  if isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                      "hasattr", "getattr") and node.args and "runner" in ast.unparse(
                      node.args[0])]
        self.assertEqual(probes, [])

    def test_the_worker_owns_its_walk_and_talks_through_its_session(self):
        import ast
        classes = {node.name: node for node in self.tree.body if isinstance(node, ast.ClassDef)}
        self.assertEqual(classes["Worker"].bases, [])   # the walk is a part, not a base
        walk = classes["_GraphWalk"]
        self.assertIn("__init__", [node.name for node in walk.body
                                   if isinstance(node, ast.FunctionDef)])
        self.assertEqual([node.target.id for node in walk.body
                          if isinstance(node, ast.AnnAssign)], [])   # no bare annotations
        outside = [node.lineno for name, cls in classes.items() if name != "_Session"
                   for node in ast.walk(cls) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Attribute)
                   and node.value.attr == "scheduler"
                   and "session" in ast.unparse(node.value.value)]
        self.assertEqual(outside, [])   # no session.scheduler.<method> but in _Session

    def test_no_section_over_800_lines_and_no_module_name_shadowed(self):
        """Sections of at most 800 lines; no function's argument or local takes the name
        of a module-level one or of a builtin, except Luigi's own parameter names."""
        import ast
        import builtins
        lines, rule = self.source.splitlines(), "#" * 91
        starts = [i for i in range(1, len(lines) - 1)
                  if lines[i - 1] == rule and lines[i + 1] == rule] + [len(lines)]
        self.assertLessEqual(max(b - a for a, b in zip(starts, starts[1:])), 800)
        top = set(dir(builtins))
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                top.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in getattr(node, "targets", [getattr(node, "target", None)]):
                    top.update(name.id for name in ast.walk(target)
                               if isinstance(name, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                top.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        luigis = {"format", "enum", "namespace", "rpc_message_callback"}
        shadowed = set()
        for function in ast.walk(self.tree):
            if isinstance(function, (ast.FunctionDef, ast.Lambda)):
                arguments = function.args
                names = {arg.arg for arg in arguments.args + arguments.kwonlyargs
                         + arguments.posonlyargs}
                if isinstance(function, ast.FunctionDef):
                    names.update(node.id for node in ast.walk(function)
                                 if isinstance(node, ast.Name)
                                 and isinstance(node.ctx, ast.Store))
                    names.difference_update(*(node.names for node in ast.walk(function)
                                              if isinstance(node, ast.Global)))
                shadowed.update((name, function.lineno) for name in names & top - luigis)
        self.assertEqual(sorted(shadowed), [])

    def test_no_class_over_700_lines_and_no_function_over_60(self):
        import ast
        too_long = [(node.name, node.end_lineno - node.lineno + 1)
                    for node in ast.walk(self.tree)
                    if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno >= 700
                    or isinstance(node, ast.FunctionDef)
                    and node.end_lineno - node.lineno >= 60]
        self.assertEqual(too_long, [])




###########################################################################################
# Scheduler core (fake clock, no sleeping)
###########################################################################################

class SchedulerCase(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        self.scheduler = self.make_scheduler()

    def make_scheduler(self, resources=None, **options):
        return mf.Scheduler(clock=self.clock, resources=resources or {}, **options)

    def add(self, task_id, worker="w1", **kwargs):
        self.scheduler.add_task(task_id=task_id, worker=worker, **kwargs)

    def work(self, worker="w1"):
        return self.scheduler.get_work(worker=worker)["task_id"]

    def done(self, task_id, worker="w1", status=mf.DONE):
        self.scheduler.add_task(task_id=task_id, worker=worker, status=status)

    def status(self, task_id):
        return self.scheduler.task_list()[task_id]["status"]

    def resource(self, name):
        """(capacity, units in use) of a resource, from resource_list()."""
        listing = {r["name"]: r for r in self.scheduler.resource_list()}
        return listing[name]["num_total"], listing[name]["num_used"]

    def drain(self, worker="w1"):
        order = []
        while True:
            task_id = self.work(worker)
            if task_id is None:
                return order
            order.append(task_id)
            self.done(task_id, worker)


class TestTransitionHook(SchedulerCase):
    def test_a_disable_returns_before_its_e_mail_is_sent(self):
        import smtplib
        connected, release, sent = threading.Event(), threading.Event(), []

        class SlowServer:   # an SMTP server that takes its time to answer
            def __init__(self, **options):
                connected.set()
                release.wait(30)

            def ehlo_or_helo_if_needed(self):
                pass

            def has_extn(self, name):
                return False

            def sendmail(self, sender, recipients, message):
                sent.append((recipients, message))

            def quit(self):
                pass
        scheduler = self.make_scheduler(retry_count=1, batch_emails=False)
        with mf.config_override({"email": {"receiver": "ops@example.com",
                                           "force_send": "true"}}), \
                unittest.mock.patch.object(smtplib, "SMTP", SlowServer):
            scheduler.add_task(worker="w1", task_id="T_1", family="T", status=mf.FAILED)
            self.assertEqual(scheduler.graph()["T_1"]["status"], mf.DISABLED)   # returned,
            self.assertTrue(connected.wait(30))         # while the e-mail waits on SMTP
            self.assertEqual(sent, [])
            release.set()
            for thread in threading.enumerate():
                if thread.name == "microflow-email":
                    thread.join(30)
        self.assertEqual(sent[0][0], ["ops@example.com"])
        self.assertIn("DISABLED T_1 due to excessive failures", sent[0][1])

    def test_listeners_hear_each_change_once_in_order(self):
        scheduler = self.make_scheduler(remove_delay=10, worker_disconnect_delay=5,
                                        retry_count=1)
        heard = []
        scheduler.subscribe(lambda event, record, old, new: heard.append(
            (event, record.id, old, new)))
        scheduler.add_task(worker="w1", task_id="A", status=mf.PENDING, runnable=True)
        self.assertEqual(scheduler.get_work(worker="w1")["task_id"], "A")
        scheduler.add_task(worker="w1", task_id="A", status=mf.DONE)
        scheduler.add_task(worker="w1", task_id="B", status=mf.PENDING, runnable=True)
        self.assertEqual(scheduler.get_work(worker="w1")["task_id"], "B")
        scheduler.add_task(worker="w1", task_id="B", status=mf.FAILED)
        self.clock.advance(6)
        scheduler.prune()     # the worker is gone; its tasks go remove_delay later
        self.clock.advance(11)
        scheduler.prune()
        self.assertEqual(heard[:13], [
            ("worker", "w1", None, "active"),
            ("status", "A", "UNKNOWN", "PENDING"),   # born PENDING: said as a change
            ("task", "A", "PENDING", "PENDING"),
            ("status", "A", "PENDING", "RUNNING"),
            ("status", "A", "RUNNING", "DONE"),
            ("task", "A", "DONE", "DONE"),
            ("status", "B", "UNKNOWN", "PENDING"),
            ("task", "B", "PENDING", "PENDING"),
            ("status", "B", "PENDING", "RUNNING"),
            ("status", "B", "RUNNING", "DISABLED"),   # retry_count 1: disabled at once
            ("disabled", "B", "RUNNING", "DISABLED"),
            ("task", "B", "DISABLED", "DISABLED"),
            ("worker", "w1", "active", None)])
        self.assertEqual(sorted(heard[13:]), [("removed", "A", "DONE", None),
                                              ("removed", "B", "DISABLED", None)])

    def test_listeners_choose_their_events(self):
        scheduler = self.make_scheduler(retry_count=2)
        heard = []
        scheduler.subscribe(lambda *args: heard.append(args[:1] + (args[1].id,) + args[2:]),
                            ["disabled"])
        for _ in range(2):
            scheduler.add_task(worker="w1", task_id="A", status=mf.PENDING, runnable=True)
            self.assertEqual(scheduler.get_work(worker="w1")["task_id"], "A")
            scheduler.add_task(worker="w1", task_id="A", status=mf.FAILED)
            self.clock.advance(scheduler.options["retry_delay"] + 1)
            scheduler.prune()
        self.assertEqual(heard, [("disabled", "A", "RUNNING", "DISABLED")])
        with self.assertRaisesRegex(ValueError, "unknown event 'changed'"):
            scheduler.subscribe(print, ["changed"])


class TestSchedulerSelection(SchedulerCase):
    def test_dependencies_first_then_priority_then_insertion_order(self):
        graph = {"root": ["a", "b", "c"], "a": ["a1"], "b": [], "c": [], "a1": []}
        priorities = {"c": 5}
        for task_id, deps in graph.items():
            self.add(task_id, deps=deps, priority=priorities.get(task_id, 0))
        # Insertion order counts from first sight, as a dependency too (as in Luigi).
        self.assertEqual(self.drain(), ["c", "b", "a1", "a", "root"])

    def test_priority_propagates_to_dependencies(self):
        self.add("low")
        self.add("needed", priority=0)
        self.add("urgent", deps=["needed"], priority=10)
        self.assertEqual(self.drain(), ["needed", "urgent", "low"])

    def test_reply_shape_is_luigis(self):
        empty = self.scheduler.get_work(worker="w1")
        self.add("t", family="Fam", module="mod", params={"x": "1"})
        full = self.scheduler.get_work(worker="w1")
        self.assertEqual(set(full) - set(empty), {"task_family", "task_module", "task_params"})
        self.assertEqual((full["n_pending_tasks"], full["n_unique_pending"]), (1, 1))
        self.assertIsNone(empty["task_id"])
        self.assertEqual((full["task_id"], full["task_family"], full["task_module"],
                          full["task_params"]), ("t", "Fam", "mod", {"x": "1"}))

    def test_never_to_two_workers_at_once(self):
        for worker in ("w1", "w2"):
            self.add("shared", worker=worker)
        self.assertEqual(self.work("w1"), "shared")
        reply = self.scheduler.get_work(worker="w2")
        self.assertIsNone(reply["task_id"])
        self.assertEqual([r["task_id"] for r in reply["running_tasks"]], ["shared"])
        self.assertEqual(reply["running_tasks"][0]["worker"], "w1")
        # Another worker's PENDING report does not take the task over.
        self.add("shared", worker="w2", status=mf.PENDING)
        self.assertEqual(self.status("shared"), mf.RUNNING)
        self.done("shared", worker="w1")
        self.assertEqual(self.status("shared"), mf.DONE)

    def test_only_runnable_workers_get_a_task(self):
        self.add("external", runnable=False)
        self.assertIsNone(self.work())
        self.add("mine", worker="w1")
        self.assertIsNone(self.work("w2"))
        self.assertEqual(self.work("w1"), "mine")

    def test_a_cycle_is_never_handed_out(self):
        self.add("a", deps=["b"])
        self.add("b", deps=["a"])
        self.add("c")
        self.assertEqual(self.drain(), ["c"])
        self.assertEqual((self.status("a"), self.status("b")), (mf.PENDING, mf.PENDING))

    def test_unknown_dependency_blocks(self):
        self.add("needs", deps=["never_added"])
        self.assertIsNone(self.work())
        self.assertEqual(self.status("never_added"), mf.UNKNOWN)

    def test_count_pending(self):
        self.add("a")
        self.add("b", deps=["a"])
        self.add("b", worker="w2")
        counts = self.scheduler.count_pending("w1")
        self.assertEqual((counts["n_pending_tasks"], counts["n_unique_pending"],
                          counts["n_pending_last_scheduled"]), (2, 1, 1))
        counts = self.scheduler.count_pending("w2")
        self.assertEqual((counts["n_pending_tasks"], counts["n_unique_pending"],
                          counts["n_pending_last_scheduled"]), (1, 0, 1))
        # Tasks share their one-worker tuples; adding a worker to one leaves the others.
        tasks = self.scheduler.task_list()
        self.assertEqual((tasks["a"]["workers"], tasks["b"]["workers"]),
                         (["w1"], ["w1", "w2"]))

    def test_misuse_names_the_call(self):
        with self.assertRaisesRegex(mf.SchedulerError,
                                    "get_task_status_message: task 'nope' was not added"):
            self.scheduler.get_task_status_message("nope")
        # Luigi's page asks for the error of a task that may be gone: an empty one.
        self.assertEqual(self.scheduler.fetch_error("nope"), {"taskId": "nope", "error": ""})
        self.assertEqual(self.scheduler.forgive_failures("nope"),
                         {"task_id": "nope", "status": None})
        with self.assertRaisesRegex(mf.SchedulerError, "task_id is required"):
            self.scheduler.add_task(worker="w1")


class TestSchedulerResources(SchedulerCase):
    def test_capacity_is_never_exceeded_and_released_work_resumes(self):
        self.scheduler = self.make_scheduler(resources={"db": 2})
        for name in ("a", "b", "c"):
            self.add(name, resources={"db": 1})
        self.add("d", resources={"gpu": 1})     # undeclared: capacity 1
        self.add("e", resources={"gpu": 1})
        started = [self.work() for _ in range(4)]
        self.assertEqual(started, ["a", "b", "d", None])
        consumers = {r["name"]: set(r["running"]) for r in self.scheduler.resource_list()}
        self.assertEqual(consumers["db"], {"a", "b"})
        self.assertEqual(self.resource("db"), (2, 2))
        self.done("a")
        self.assertEqual(self.work(), "c")
        self.done("d")
        self.assertEqual(self.work(), "e")

    def test_too_big_for_capacity_never_runs_but_others_do(self):
        self.add("huge", resources={"db": 5}, priority=9)
        self.add("small")
        self.assertEqual(self.drain(), ["small"])
        self.assertEqual(self.status("huge"), mf.PENDING)

    def test_decrease_running_resources_lets_others_in(self):
        self.scheduler = self.make_scheduler(resources={"db": 2})
        self.add("big", resources={"db": 2})
        self.add("small", resources={"db": 1})
        self.assertEqual(self.work(), "big")
        self.assertIsNone(self.work())
        self.scheduler.decrease_running_task_resources("big", {"db": 1})
        self.assertEqual(self.work(), "small")

    def test_running_resources_are_reported_as_copies(self):
        self.scheduler = self.make_scheduler(resources={"db": 2})
        self.add("plain")
        self.add("holder", resources={"db": 2})
        self.assertEqual(self.work(), "plain")
        self.assertEqual(self.work(), "holder")
        plain = self.scheduler.get_running_task_resources("plain")["resources"]
        self.assertEqual(plain, {})
        plain["db"] = 5   # a caller changing the reply changes nothing in the scheduler
        held = self.scheduler.get_running_task_resources("holder")["resources"]
        held["db"] = 0
        self.assertEqual(self.scheduler.get_running_task_resources("plain")["resources"], {})
        self.assertEqual(self.resource("db"), (2, 2))
        self.done("holder")
        self.assertEqual(self.resource("db"), (2, 0))

    def test_resources_from_config(self):
        with mf.config_override({"resources": {"db": "3"}}):
            scheduler = mf.Scheduler(clock=self.clock)
        self.assertEqual([(r["name"], r["num_total"], r["num_used"])
                          for r in scheduler.resource_list()], [("db", 3, 0)])


class TestSchedulerFailures(SchedulerCase):
    def fail(self, task_id, worker="w1"):
        self.assertEqual(self.work(worker), task_id)
        self.done(task_id, worker, status=mf.FAILED)

    def test_failed_task_retries_after_retry_delay(self):
        self.scheduler = self.make_scheduler(retry_delay=30)
        self.add("t")
        self.fail("t")
        self.assertIsNone(self.work())
        self.clock.advance(29)
        self.scheduler.prune()
        self.assertEqual(self.status("t"), mf.FAILED)
        self.clock.advance(2)
        self.scheduler.prune()
        self.assertEqual(self.status("t"), mf.PENDING)
        self.assertEqual(self.work(), "t")

    def test_re_adding_a_failed_task_as_pending_resets_it(self):
        self.add("t")
        self.fail("t")
        self.add("t")
        self.assertEqual(self.work(), "t")

    def test_disabled_after_retry_count_failures_in_window(self):
        self.scheduler = self.make_scheduler(retry_delay=1, disable_persist=100)
        policy = {"retry_count": 2, "disable_window": 60, "disable_hard_timeout": None}
        self.add("t", retry_policy_dict=policy)
        self.fail("t")
        self.add("t", retry_policy_dict=policy)
        self.fail("t")
        self.assertEqual(self.status("t"), mf.DISABLED)
        self.add("t")   # a worker cannot lift the scheduler's disable
        self.assertEqual(self.status("t"), mf.DISABLED)
        self.clock.advance(101)
        self.scheduler.prune()
        self.assertEqual(self.status("t"), mf.FAILED)

    def test_failures_outside_window_do_not_count(self):
        policy = {"retry_count": 2, "disable_window": 10}
        self.add("t", retry_policy_dict=policy)
        self.fail("t")
        self.clock.advance(11)
        self.add("t")
        self.fail("t")
        self.assertEqual(self.status("t"), mf.FAILED)

    def test_hard_timeout_disables(self):
        policy = {"retry_count": 100, "disable_hard_timeout": 50}
        self.add("t", retry_policy_dict=policy)
        self.fail("t")
        self.clock.advance(51)
        self.add("t")
        self.fail("t")
        self.assertEqual(self.status("t"), mf.DISABLED)

    def test_tasks_behind_a_disabled_task_are_not_pending(self):
        self.add("bad", retry_policy_dict={"retry_count": 1})
        self.add("after", deps=["bad"])
        self.add("free")
        self.assertEqual(self.scheduler.count_pending("w1")["n_pending_tasks"], 3)
        self.fail("bad")
        self.assertEqual(self.status("bad"), mf.DISABLED)
        self.assertEqual(self.work(), "free")
        reply = self.scheduler.get_work(worker="w1")
        self.assertIsNone(reply["task_id"])
        self.assertEqual(reply["n_pending_tasks"], 0)   # "after" can never run now

    def test_done_and_admin_calls(self):
        self.add("t", retry_policy_dict={"retry_count": 1})
        self.fail("t")
        self.assertEqual(self.status("t"), mf.DISABLED)
        self.assertEqual(self.scheduler.re_enable_task("t")["status"], mf.FAILED)
        self.assertEqual(self.scheduler.forgive_failures("t")["status"], mf.PENDING)
        self.assertEqual(self.scheduler.mark_as_done("t"), {"task_id": "t", "status": mf.DONE})
        self.assertEqual(self.scheduler.mark_as_done("nobody")["status"], None)
        self.add("r")
        self.assertEqual(self.work(), "r")
        self.assertEqual(self.scheduler.mark_as_done("r")["status"], mf.DONE)   # running
        self.add("d", retry_policy_dict={"retry_count": 2})
        self.add("d", status=mf.FAILED)
        self.add("d", status=mf.FAILED)        # disabled by the scheduler ...
        self.assertTrue(self.scheduler.task_list("", "")["d"]["re_enable_able"])
        self.add("d", status=mf.DISABLED)      # ... then by hand: it stays disabled
        self.assertFalse(self.scheduler.task_list("", "")["d"]["re_enable_able"])
        self.clock.advance(100_000)
        self.scheduler.prune()
        self.assertEqual(self.status("d"), mf.DISABLED)

    def test_a_task_whose_resources_change_is_offered_again(self):
        self.scheduler = self.make_scheduler(resources={"r": 1})
        self.add("b", resources={"r": 2})
        self.assertIsNone(self.work())         # cannot fit
        self.add("b", resources={"r": 1})
        self.assertEqual(self.work(), "b")

    def test_fetch_error_returns_explanation(self):
        self.add("t", family="Fam")
        self.assertEqual(self.work(), "t")
        self.scheduler.add_task(task_id="t", worker="w1", status=mf.FAILED,
                                expl=json.dumps("Runtime error:\nboom"))
        error = self.scheduler.fetch_error("t")
        self.assertEqual(json.loads(error["error"]), "Runtime error:\nboom")
        self.assertEqual(error["taskFamily"], "Fam")


class TestSchedulerLiveness(SchedulerCase):
    def test_dead_worker_fails_its_running_task_and_another_takes_over(self):
        self.scheduler = self.make_scheduler(worker_disconnect_delay=60, retry_delay=10)
        self.add("t", worker="w1")
        self.add("t", worker="w2")
        self.assertEqual(self.work("w1"), "t")
        for _ in range(3):          # w2 keeps pinging, w1 goes silent
            self.clock.advance(30)
            self.scheduler.ping(worker="w2")
        self.scheduler.prune()
        self.assertEqual(self.status("t"), mf.FAILED)
        self.assertNotIn("w1", [w["name"] for w in self.scheduler.worker_list()])
        self.clock.advance(10)
        self.scheduler.ping(worker="w2")
        self.scheduler.prune()
        self.assertEqual(self.work("w2"), "t")

    def test_tasks_without_stakeholders_are_removed(self):
        self.scheduler = self.make_scheduler(worker_disconnect_delay=60, remove_delay=600)
        self.add("orphan")
        self.clock.advance(61)
        self.scheduler.prune()
        self.assertIn("orphan", self.scheduler.graph())
        self.clock.advance(600)
        self.scheduler.prune()
        self.assertNotIn("orphan", self.scheduler.graph())

    def test_stable_done_cooldown_ignores_a_late_pending(self):
        self.add("t")
        self.assertEqual(self.work(), "t")
        self.done("t")
        self.add("t", worker="w2")
        self.assertEqual(self.status("t"), mf.DONE)
        self.clock.advance(11)
        self.add("t", worker="w2")
        self.assertEqual(self.status("t"), mf.PENDING)

    def test_reclaim_task_the_worker_forgot(self):
        self.add("t")
        self.assertEqual(self.work(), "t")
        reply = self.scheduler.get_work(worker="w1", current_tasks=[])
        self.assertEqual(reply["task_id"], "t")

    def test_disabled_worker_and_pause(self):
        self.add("t")
        self.scheduler.pause()
        self.assertIsNone(self.work())
        self.scheduler.unpause()
        self.add("r")
        self.assertEqual(self.work(), "t")
        self.scheduler.disable_worker("w1")
        reply = self.scheduler.get_work(worker="w1")
        self.assertEqual((reply["worker_state"], reply["task_id"], reply["n_pending_tasks"]),
                         ("disabled", None, 0))
        self.assertEqual(self.scheduler.task_list("", "")["r"]["workers"], [])
        self.done("t", status=mf.FAILED)          # it still reports what it ran
        self.assertEqual(self.status("t"), mf.FAILED)
        self.add("r", worker="w2")                # another worker may run its tasks
        self.assertEqual(self.work("w2"), "r")

    def test_task_list_search_matches_name_and_parameters_in_any_case(self):
        self.add("id1", family="ClassA", params={"day": "2016-02-01", "num": "5"})
        self.add("id2", family="ClassB", params={"day": "2016-02-01", "num": "5"})
        found = self.scheduler.task_list(mf.PENDING, "", search="classa 2016-02 NUM")
        self.assertEqual(set(found), {"id1"})
        self.assertEqual(self.scheduler.task_list(mf.PENDING, "", search="id1"), {})


class TestSchedulerReads(SchedulerCase):
    def test_a_wall_clock_stepping_back_does_not_keep_dead_workers(self):
        self.add("t")
        self.clock.now -= 3600          # NTP stepped the clock back an hour
        self.add("t")                   # the worker is seen again, at the earlier time
        self.clock.advance(120)         # then falls silent
        self.scheduler.prune()
        self.assertNotIn("w1", [w["name"] for w in self.scheduler.worker_list()])

    def test_clock_follows_a_patched_time_time(self):
        scheduler = mf.Scheduler()   # made before the patch, as Luigi's tests make theirs
        with unittest.mock.patch("time.time", return_value=100.0):
            scheduler.add_task(worker="w", task_id="A", status=mf.PENDING)
            scheduler.get_work(worker="w")
            self.assertEqual(scheduler.task_list(mf.RUNNING, "")["A"]["start_time"], 100.0)

    def test_graph_task_list_and_dep_graph(self):
        self.add("a", family="A", params={"x": "1", "h": "s"},
                 param_visibilities={"x": 0, "h": 1})
        self.add("b", family="B", deps=["a"])
        self.assertEqual(self.scheduler.task_list()["a"]["display_name"], "A(x=1)")
        self.assertEqual(set(self.scheduler.task_list(status=mf.PENDING)), {"a", "b"})
        self.assertEqual(set(self.scheduler.task_list(       # Luigi counts "a" itself
            status=mf.PENDING, upstream_status=mf.UPSTREAM_MISSING_INPUT)), {"a", "b"})
        self.assertEqual(set(self.scheduler.dep_graph("b")), {"a", "b"})
        self.assertEqual(self.scheduler.inverse_dep_graph("a")["a"]["deps"], ["b"])
        self.assertEqual(self.scheduler.dep_graph("nobody"), {})
        self.done("a")
        self.assertEqual(set(self.scheduler.dep_graph("b", include_done=False)), {"b"})
        self.clock.advance(20)                    # past stable_done_cooldown_secs
        self.add("a", status=mf.PENDING)
        self.assertEqual(self.scheduler.task_search("a"), {mf.PENDING: {
            "a": self.scheduler.graph()["a"]}})
        self.assertEqual(self.scheduler.task_list(max_shown_tasks=1), {"num_tasks": 2})

    def test_status_message_and_progress(self):
        self.add("a")
        self.scheduler.set_task_status_message("a", "half way")
        self.scheduler.set_task_progress_percentage("a", 50)
        self.assertEqual(self.scheduler.get_task_status_message("a"),
                         {"taskId": "a", "statusMessage": "half way"})
        self.assertEqual(self.scheduler.get_task_progress_percentage("a"),
                         {"taskId": "a", "progressPercentage": 50})

    def test_upstream_status_on_a_deep_chain(self):
        for i in range(3000):
            self.add(f"t{i}", deps=[f"t{i + 1}"] if i < 2999 else [])
        self.add("t2999", status=mf.DISABLED)
        listed = self.scheduler.task_list(status=mf.PENDING,
                                          upstream_status=mf.UPSTREAM_DISABLED)
        self.assertEqual(len(listed), 2999)

    def test_scheduler_messages_and_worker_processes(self):
        self.add("a", accepts_messages=True)
        message_id = self.scheduler.send_scheduler_message("w1", "a", "hi")["message_id"]
        messages = self.scheduler.ping(worker="w1")["rpc_messages"]
        self.assertEqual(messages[0]["kwargs"]["content"], "hi")
        self.assertIsNone(self.scheduler.get_scheduler_message_response("a", message_id)
                          ["response"])
        self.scheduler.add_scheduler_message_response("a", message_id, "hello")
        self.assertEqual(self.scheduler.get_scheduler_message_response("a", message_id),
                         {"response": "hello"})
        self.scheduler.set_worker_processes("w1", 3)
        self.assertEqual(self.scheduler.ping(worker="w1")["rpc_messages"],
                         [{"name": "set_worker_processes", "kwargs": {"n": 3}}])
        self.assertTrue(self.scheduler.update_resource("db", 4))
        self.assertFalse(self.scheduler.update_resource("db", -1))
        self.assertEqual(self.resource("db")[0], 4)

    def test_rpc_whitelist_names_real_methods(self):
        for name in mf._RPC_METHODS:
            self.assertTrue(callable(getattr(self.scheduler, name)), name)


class TestTasksHandedOutAhead(SchedulerCase):
    """microflow's client asks for quick tasks several at a time (``prefetch``)."""

    def test_tasks_handed_out_ahead_are_claimed_for_the_worker_that_asked(self):
        for n in range(5):
            self.add(f"T{n}", priority=10 - n)
        self.add("T9", worker="w2")
        reply = self.scheduler.get_work(worker="w1", prefetch=2)
        self.assertEqual(reply["task_id"], "T0")
        self.assertEqual([t["task_id"] for t in reply["prefetched"]], ["T1", "T2"])
        self.assertEqual(set(reply["prefetched"][0]),
                         {"task_id", "task_family", "task_module", "task_params"})
        running = self.scheduler.task_list(mf.RUNNING, "")
        self.assertEqual({t: running[t]["worker_running"] for t in running},
                         {"T0": "w1", "T1": "w1", "T2": "w1"})
        self.assertEqual(self.work("w2"), "T9")                # none of them for w2
        self.assertNotIn("prefetched", self.scheduler.get_work(worker="w1"))
        self.scheduler.release_tasks(worker="w2", task_ids=["T1"])   # not w2's: kept
        self.assertEqual(self.status("T1"), mf.RUNNING)
        self.scheduler.release_tasks(worker="w1", task_ids=["T1", "T2", "T0x"])
        self.assertEqual((self.status("T1"), self.status("T2")), (mf.PENDING, mf.PENDING))
        self.add("T1", worker="w2")
        self.assertEqual(self.work("w2"), "T1")                # free again, for anyone

    def test_workers_asking_at_once_are_handed_a_share_of_what_is_left(self):
        for n in range(20):
            self.add(f"T{n:02}", worker="w1")
            self.add(f"T{n:02}", worker="w2")
        self.assertEqual(self.work("w2"), "T00")
        reply = self.scheduler.get_work(worker="w1", prefetch=127)   # 18 left, 2 asking
        self.assertEqual(len(reply["prefetched"]), 9)
        reply = self.scheduler.get_work(worker="w2", prefetch=127)   # 8 left
        self.assertEqual(len(reply["prefetched"]), 4)
        self.clock.advance(2)   # w1 no longer asks: w2 may take all that is left
        self.assertEqual(len(self.scheduler.get_work(worker="w2", prefetch=127)
                             ["prefetched"]), 3)

    def test_a_family_with_a_batcher_is_never_handed_out_ahead(self):
        self.scheduler.add_task_batcher(worker="w1", task_family="A", batched_args=["a"])
        self.add("T1")
        self.add("T2")
        self.assertNotIn("prefetched", self.scheduler.get_work(worker="w1", prefetch=5))

    def test_more_are_asked_for_while_tasks_are_quick_and_none_once_one_is_not(self):
        asked, seen = 0, []
        for _ in range(7):
            asked = mf._ahead_next(asked, 0.0005)
            seen.append(asked)
        self.assertEqual(seen, [1, 5, 21, 85, 127, 127, 127])
        self.assertEqual(mf._ahead_next(127, mf._QUICK_TASK), 0)
        self.assertEqual(mf._ahead_next(0, 2.0), 0)


class TestSchedulerBatches(SchedulerCase):
    def add_members(self, count, worker="w1", **kwargs):
        for i in range(1, count + 1):
            self.add(f"A{i}", worker, family="A", params={"a": str(i), "b": "x"},
                     batchable=True, **kwargs)

    def test_a_batch_is_handed_out_and_shares_its_runners_fate(self):
        self.scheduler.add_task_batcher(worker="w1", task_family="A", batched_args=["a"])
        self.add_members(3)
        self.add("B", family="B", deps=["A1"])
        reply = self.scheduler.get_work(worker="w1")
        self.assertIsNone(reply["task_id"])
        self.assertEqual((reply["task_family"], reply["task_params"]),
                         ("A", {"a": ["1", "2", "3"], "b": "x"}))
        self.assertEqual(reply["batch_task_ids"], ["A1", "A2", "A3"])
        self.assertEqual(set(self.scheduler.task_list(mf.BATCH_RUNNING, "")),
                         {"A1", "A2", "A3"})
        self.add("A_all", status=mf.RUNNING, family="A", batch_id=reply["batch_id"],
                 params={"a": "1-3", "b": "x"})
        self.scheduler.set_task_status_message("A_all", "halfway")
        self.assertEqual(self.scheduler.get_task_status_message("A2")["statusMessage"],
                         "halfway")
        self.done("A_all")
        self.assertEqual({self.status(t) for t in ("A1", "A2", "A3", "A_all")}, {mf.DONE})
        self.assertEqual(self.work(), "B")

    def test_a_failed_batch_fails_its_members_and_drops_the_combined_task(self):
        self.scheduler.add_task_batcher(worker="w1", task_family="A", batched_args=["a"])
        self.add_members(2)
        batch_id = self.scheduler.get_work(worker="w1")["batch_id"]
        self.add("A_both", status=mf.RUNNING, family="A", batch_id=batch_id)
        self.add("A_both", status=mf.FAILED, expl='"boom"')
        listing = self.scheduler.task_list(mf.FAILED, "")
        self.assertEqual(set(listing), {"A1", "A2"})
        self.assertEqual(self.scheduler.fetch_error("A1")["error"], '"boom"')

    def test_limits_and_what_is_left_out(self):
        self.scheduler.add_task_batcher(worker="w1", task_family="A", batched_args=["a"],
                                        max_batch_size=2)
        self.add_members(3)
        self.add("A9", family="A", params={"a": "9", "b": "other"}, batchable=True)
        self.add("A8", family="A", params={"a": "8", "b": "x"}, batchable=False)
        self.assertEqual(self.scheduler.get_work(worker="w1")["batch_task_ids"], ["A1", "A2"])
        self.assertEqual([self.work(), self.work(), self.work()], ["A3", "A9", "A8"])
        self.assertIsNone(self.scheduler.get_work(worker="w2")["task_id"])   # no batcher

    def test_a_batch_never_started_goes_back_to_pending(self):
        self.scheduler.add_task_batcher(worker="w1", task_family="A", batched_args=["a"])
        self.add_members(2)
        first = self.scheduler.get_work(worker="w1")
        again = self.scheduler.get_work(worker="w1", current_tasks=[])
        self.assertEqual(again["batch_task_ids"], first["batch_task_ids"])
        self.clock.advance(120)           # the worker is gone: the members fail
        self.scheduler.prune()
        self.assertEqual(set(self.scheduler.task_list(mf.FAILED, "")), {"A1", "A2"})


class TestSchedulerAssistants(SchedulerCase):
    def test_an_assistant_runs_any_runnable_task_but_not_external_ones(self):
        self.add("ext", worker="x", runnable=False)
        self.add("low", worker="x", priority=1)
        self.add("high", worker="x", priority=5)
        self.assertIsNone(self.scheduler.get_work(worker="a")["task_id"])   # not one yet
        self.assertEqual(self.scheduler.get_work(worker="a", assistant=True)["task_id"],
                         "high")
        self.add("later", worker="x", priority=9)     # offered to assistants as it comes
        self.assertEqual(self.scheduler.get_work(worker="a", assistant=True)["task_id"],
                         "later")
        self.assertEqual(self.work("x"), "low")
        self.assertIsNone(self.scheduler.get_work(worker="a", assistant=True)["task_id"])

    def test_an_assistant_batches_and_holds_what_the_batch_was_given(self):
        self.scheduler = self.make_scheduler(resources={"db": 1})
        self.scheduler.add_task_batcher(worker="a", task_family="A", batched_args=["n"])
        for n in (1, 2):
            self.add(f"A{n}", worker="x", family="A", params={"n": str(n)}, batchable=True,
                     resources={"db": 1})
        reply = self.scheduler.get_work(worker="a", assistant=True)
        self.assertEqual(reply["batch_task_ids"], ["A1", "A2"])
        self.add("A2", worker="x", family="A", params={"n": "2"}, batchable=True,
                 resources={})                            # changed while batch-running
        self.add("A2", worker="a", status=mf.RUNNING, batch_id=reply["batch_id"])
        self.assertEqual(self.resource("db"), (1, 1))     # held as handed out
        self.add("other", worker="x", resources={"db": 1})
        self.assertIsNone(self.work("x"))

    def test_a_dead_assistants_task_fails_and_a_running_one_stays(self):
        self.scheduler.add_worker("a", {"assistant": True})
        self.add("t", worker="x")
        self.add("u", worker="x")
        self.assertEqual(self.scheduler.get_work(worker="a")["task_id"], "t")
        self.clock.advance(100)                # a is silent; x still pings
        self.scheduler.ping(worker="x")
        self.scheduler.prune()
        self.assertEqual(self.status("t"), mf.FAILED)
        self.assertEqual(self.scheduler.get_work(worker="b", assistant=True)["task_id"], "u")
        self.clock.advance(100)                # now x is gone, b keeps running u
        self.scheduler.ping(worker="b")
        self.scheduler.prune()
        self.clock.advance(10_000)
        self.scheduler.ping(worker="b")
        self.scheduler.prune()
        self.assertEqual(self.status("u"), mf.RUNNING)


class OverHTTP:
    """Runs a scheduler test class again against a real SchedulerServer on 127.0.0.1
    (port 0), through RemoteScheduler: the scheduler's tests are the contract the
    HTTP transport must keep."""

    def make_scheduler(self, resources=None, **options):
        scheduler = super().make_scheduler(resources, **options)
        server = mf.SchedulerServer(scheduler, port=0).start()
        self.addCleanup(server.stop)
        # One call, one request: the contract holds call by call (the worker's
        # batching of reports is tested on its own).
        client = mf.RemoteScheduler(server.url, attempts=1, batch=False)
        self.addCleanup(client.close)
        return client


for _case in (TestSchedulerSelection, TestSchedulerResources, TestSchedulerFailures,
              TestSchedulerLiveness, TestSchedulerReads, TestSchedulerBatches,
              TestSchedulerAssistants):
    globals()[_case.__name__ + "OverHTTP"] = type(_case.__name__ + "OverHTTP",
                                                  (OverHTTP, _case), {})
del _case


###########################################################################################
# Worker, build() and the summary
###########################################################################################

class MockLink(mf.Task):
    """Module level, so a spawned process can rebuild it: each link of a chain adds
    itself to what the one before wrote, in a MockTarget."""
    chain = mf.Parameter()
    n = mf.IntParameter()

    def requires(self):
        return MockLink(self.chain, self.n - 1) if self.n else []

    def output(self):
        return mf.MockTarget(f"links/{self.chain}{self.n}")

    def run(self):
        before = self.input().open().read() if self.n else \
            mf.MockTarget("links/seed").open().read()
        with self.output().open("w") as f:
            f.write(f"{before} {self.chain}{self.n}")


class MockJoin(mf.Task):
    def requires(self):
        return [MockLink("a", 2), MockLink("b", 2)]

    def output(self):
        return mf.MockTarget("links/joined")

    def run(self):
        with self.output().open("w") as f:
            f.write(" | ".join(target.open().read() for target in self.input()))


class Recorder(mf.Task):
    """Completes by being run; records each run in a class-level list."""

    name = mf.Parameter()
    deps_names = mf.ListParameter(default=[])
    runs = []
    finished = set()

    def requires(self):
        return [Recorder(name) for name in self.deps_names]

    def complete(self):
        return self.name in Recorder.finished

    def run(self):
        Recorder.runs.append(self.name)
        Recorder.finished.add(self.name)


class Exploding(mf.Task):
    """Always fails."""

    def complete(self):
        return False

    def run(self):
        raise ValueError("kaboom")


class NeedsExploding(mf.Task):
    def requires(self):
        return Exploding()

    def complete(self):
        return False


class Missing(mf.ExternalTask):
    def output(self):
        return mf.MockTarget("nowhere/missing")


class NeedsMissing(mf.Task):
    def requires(self):
        return Missing()

    def complete(self):
        return False


class BuildCase(unittest.TestCase):
    def setUp(self):
        Recorder.runs.clear()
        Recorder.finished.clear()
        mf.MockFileSystem().clear()

    def build(self, *tasks, **kwargs):
        with self.assertLogs("microflow", "INFO") as logs:
            result = mf.build(list(tasks), detailed_summary=True, **kwargs)
        self.logged = "\n".join(logs.output)
        return result


class DayExport(mf.Task):
    """Exports several days in one run() when the scheduler batches them."""
    folder = mf.Parameter()
    day = mf.IntParameter(batch_method=max)   # the latest day covers the earlier ones

    def output(self):
        return mf.LocalTarget(os.path.join(self.folder, f"upto{self.day}"))

    def complete(self):
        done = [int(name[4:]) for name in os.listdir(self.folder) if name.startswith("upto")]
        return any(self.day <= day for day in done)

    def run(self):
        if self.day == 13:
            raise ValueError("day 13 cannot be exported")
        with open(os.path.join(self.folder, "runs"), "a") as log:
            log.write(f"{self.day} {os.getpid()}\n")
        with self.output().open("w") as f:
            f.write("ok")


class DayNames(mf.Task):
    """A batch_method that makes a new task out of the members: "1,2,3"."""
    folder = mf.Parameter()
    days = mf.Parameter(batch_method=",".join)
    max_batch_size = 2

    def output(self):
        return mf.LocalTarget(os.path.join(self.folder, f"names{self.days}"))

    def complete(self):
        return all(os.path.exists(os.path.join(self.folder, f"names{day}"))
                   for day in self.days.split(","))

    def run(self):
        for day in self.days.split(","):
            with open(os.path.join(self.folder, f"names{day}"), "w") as f:
                f.write(self.days)


class TestBatching(TempDirMixin, BuildCase):
    def test_batched_tasks_run_once_with_one_and_two_workers(self):
        for workers in (1, 2):
            folder = self.tmp / f"w{workers}"
            folder.mkdir()
            days = [DayExport(str(folder), day) for day in range(5)]
            result = self.build(*days, workers=workers)
            self.assertTrue(result.scheduling_succeeded)
            self.assertEqual((folder / "runs").read_text().split()[0], "4")
            self.assertEqual(len((folder / "runs").read_text().splitlines()), 1)
            self.assertEqual(set(result.tasks["completed"]), set(days))
            if workers == 2:   # ran in a worker process, not in this one
                self.assertNotEqual((folder / "runs").read_text().split()[1],
                                    str(os.getpid()))

    def test_a_new_combined_task_and_max_batch_size(self):
        names = [DayNames(str(self.tmp), str(day)) for day in range(1, 6)]
        result = self.build(*names)
        self.assertTrue(result.scheduling_succeeded)
        self.assertEqual((self.tmp / "names1").read_text(), "1,2")
        self.assertEqual((self.tmp / "names5").read_text(), "5")
        self.assertEqual(set(result.tasks["completed"]), set(names))   # not "1,2"

    def test_a_failed_batch_fails_every_member_and_says_why(self):
        days = [DayExport(str(self.tmp), day) for day in (11, 12, 13)]
        result = self.build(*days)
        self.assertFalse(result.scheduling_succeeded)
        self.assertEqual(set(result.tasks["failed"]), set(days))
        self.assertIn("day 13 cannot be exported", self.logged)
        self.assertEqual(mf.exit_code(result, days), 30)


class SMTPReceiver:
    """A minimal SMTP server on 127.0.0.1 (the standard library has none since 3.12):
    enough of RFC 5321 for smtplib to deliver; ``messages`` holds (recipients, text)."""

    def __init__(self):
        import socketserver
        receiver = self
        self.messages = []

        class Session(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply("220 test ESMTP")
                recipients = []
                while True:
                    line = self.rfile.readline().decode().rstrip("\r\n")
                    verb = line[:4].upper()
                    if not line or verb == "QUIT":
                        self.reply("221 bye")
                        return
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 test")
                    elif verb == "RCPT":
                        recipients.append(line.split(":", 1)[1].strip("<> "))
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        lines = []
                        while True:
                            data = self.rfile.readline().decode().rstrip("\r\n")
                            if data == ".":
                                break
                            lines.append(data[1:] if data.startswith("..") else data)
                        receiver.messages.append((recipients, "\n".join(lines)))
                        recipients = []
                        self.reply("250 queued")
                    else:   # MAIL, RSET, NOOP
                        self.reply("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def config(self, **email):
        """The [email]/[smtp] settings that send to this server."""
        return {"email": dict({"receiver": "ops@example.com", "force_send": "true"}, **email),
                "smtp": {"host": "127.0.0.1", "port": str(self.port), "timeout": "5"}}

    def parsed(self, index=0):
        import email.parser
        recipients, text = self.messages[index]
        message = email.parser.Parser().parsestr(text)
        body = message.get_payload()[0].get_payload(decode=True).decode()
        return recipients, message["Subject"], body


class FailsLoudly(mf.Task):
    owner_email = "owner@example.com"
    day = mf.IntParameter()

    def complete(self):
        return False

    def run(self):
        raise RuntimeError("the export server said no")


class CannotCheck(mf.Task):
    def complete(self):
        raise OSError("storage unreachable")


class TestAssistantWorker(TempDirMixin, BuildCase):
    def test_an_assistant_runs_what_another_worker_added(self):
        scheduler = mf.Scheduler()
        days = [DayExport(str(self.tmp), day) for day in (1, 2)]
        adder = mf.Worker(scheduler, worker_id="adder")
        adder.add_all(days)
        assistant = mf.Worker(scheduler, worker_id="helper", assistant=True)
        self.assertTrue(assistant.run())
        self.assertTrue(all(day.complete() for day in days))
        self.assertEqual(set(scheduler.task_list(mf.DONE, "")), {d.task_id for d in days})

    def test_a_task_it_cannot_load_fails_with_the_reason(self):
        scheduler = mf.Scheduler()
        scheduler.add_task(worker="adder", task_id="Gone_1", family="Gone", module=None,
                           params={})
        assistant = mf.Worker(scheduler, worker_id="helper", assistant=True)
        with self.assertLogs("microflow", "ERROR") as logs:
            self.assertFalse(assistant.run())
        self.assertIn("Cannot find task(s) sent by scheduler: Gone_1", logs.output[0])
        self.assertEqual(list(scheduler.task_list(mf.FAILED, "")), ["Gone_1"])
        self.assertIn("No task Gone", scheduler.fetch_error("Gone_1")["error"])

    def test_adding_a_failed_task_again_checks_and_reports_it_again(self):
        scheduler = mf.Scheduler(retry_delay=3600)
        task = DayExport(str(self.tmp), 13)             # its run() raises
        worker = mf.Worker(scheduler, worker_id="w")
        worker.add(task)
        with self.assertLogs("microflow", "ERROR"):
            self.assertFalse(worker.run())
        self.assertEqual(scheduler.task_list("", "")[task.task_id]["status"], mf.FAILED)
        worker.add(task)                                # Luigi resets it to PENDING
        self.assertEqual(scheduler.task_list("", "")[task.task_id]["status"], mf.PENDING)


class Daily(mf.Task):
    """A day's export, done when it is in ``done`` (shared by the tests below)."""
    done = set()
    date = mf.DateParameter()
    region = mf.Parameter(default="eu")

    def complete(self):
        return (self.region, self.date) in self.done

    def run(self):
        self.done.add((self.region, self.date))


class BulkDaily(Daily):
    checked = []

    @classmethod
    def bulk_complete(cls, parameter_tuples):
        days = list(parameter_tuples)   # cls is the family with of_params bound, as in
        BulkDaily.checked.append(len(days))   # Luigi: a partial, not the class itself
        return [d for d in days if ("eu", d) in BulkDaily.done]


class NeverDone(mf.Task):
    def complete(self):
        return False


class Hourly(NeverDone):
    hour = mf.DateHourParameter()


class Minutely(NeverDone):
    minute = mf.DateMinuteParameter()


class Monthly(NeverDone):
    month = mf.MonthParameter()


def _epoch(*args):
    return int(datetime.datetime(*args, tzinfo=datetime.timezone.utc).timestamp())


class TestRanges(BuildCase):
    NOW = _epoch(2026, 1, 10, 12, 7)

    def setUp(self):
        super().setUp()
        Daily.done.clear()
        BulkDaily.checked.clear()

    def test_only_the_missing_days_in_the_window_run(self):
        Daily.done.add(("eu", datetime.date(2026, 1, 3)))
        task = mf.RangeDaily(of=Daily, start=datetime.date(2026, 1, 1),
                             stop=datetime.date(2026, 1, 6), now=self.NOW)
        self.assertEqual([d.date.day for d in task.requires()], [1, 2, 4, 5])
        self.assertTrue(self.build(task).scheduling_succeeded)
        self.assertEqual(len(Daily.done), 5)
        clipped = mf.tools.range.RangeDaily(of=Daily, start=datetime.date(2025, 1, 1),
                                           days_back=3, now=self.NOW)   # 7th noon on
        self.assertEqual([d.date.day for d in clipped.requires()], [8, 9, 10])

    def test_ids_and_reprs_are_luigis(self):
        # Computed with Luigi 3.8.1 (luigi.tools.range) in a scratch virtualenv.
        cases = [
            (mf.RangeDaily(of=Daily, start=datetime.date(2024, 1, 1)),
             "RangeDaily_100_0_None_113d0f495c",
             "RangeDaily(of=Daily, of_params={}, reverse=False, task_limit=50, now=None, "
             "param_name=None, start=2024-01-01, stop=None, days_back=100, days_forward=0)"),
            (mf.RangeDaily(of=Daily, start=datetime.date(2024, 1, 1),
                           stop=datetime.date(2024, 2, 1), now=1700000000),
             "RangeDaily_100_0_1700000000_642c5c04c6", None),
            (mf.RangeDaily(of=Daily, stop=datetime.date(2024, 2, 1), reverse=True,
                           param_name="date", of_params={"a": 1}),
             "RangeDaily_100_0_None_dd3c119d87",
             "RangeDaily(of=Daily, of_params={\"a\": 1}, reverse=True, task_limit=50, "
             "now=None, param_name=date, start=None, stop=2024-02-01, days_back=100, "
             "days_forward=0)"),
            (mf.RangeHourly(of=Hourly, start=datetime.datetime(2024, 1, 1, 5)),
             "RangeHourly_2400_0_None_7295e73468", None),
            (mf.RangeByMinutes(of=Minutely, start=datetime.datetime(2024, 1, 1, 5, 30),
                               minutes_interval=15),
             "RangeByMinutes_1440_0_15_79e50d1288", None),
            (mf.RangeMonthly(of=Monthly, start=datetime.date(2024, 1, 1)),
             "RangeMonthly_13_0_None_508984f59d", None)]
        for task, task_id, text in cases:
            self.assertEqual(task.task_id, task_id)
            if text:
                self.assertEqual(repr(task), text)

    def test_reverse_task_limit_of_params_and_param_name(self):
        task = mf.RangeDaily(of=Daily, of_params={"region": "us"}, param_name="date",
                             start=datetime.date(2026, 1, 1), reverse=True, task_limit=2,
                             now=self.NOW)
        self.assertEqual([(d.region, d.date.day) for d in task.requires()],
                         [("us", 10), ("us", 9)])   # up to now: today included

    def test_bulk_complete_is_asked_once_for_the_whole_window(self):
        BulkDaily.done.add(("eu", datetime.date(2026, 1, 2)))
        task = mf.RangeDaily(of=BulkDaily, start=datetime.date(2026, 1, 1),
                             stop=datetime.date(2026, 1, 4), now=self.NOW)
        self.assertEqual([d.date.day for d in task.requires()], [1, 3])
        self.assertEqual(BulkDaily.checked, [3])
        base = mf.RangeDailyBase(of=BulkDaily, start=datetime.date(2026, 1, 1),
                                 stop=datetime.date(2026, 1, 4), now=self.NOW)
        self.assertEqual(len(base.requires()), 2)     # complete() each, no bulk call
        self.assertEqual(BulkDaily.checked, [3])

    def test_hours_minutes_and_months(self):
        hours = mf.RangeHourly(of=Hourly, start=datetime.datetime(2026, 1, 10, 9),
                               now=self.NOW)
        self.assertEqual([t.hour.hour for t in hours.requires()], [9, 10, 11, 12])
        minutes = mf.RangeByMinutes(of=Minutely, minutes_interval=5, now=self.NOW,
                                    start=datetime.datetime(2026, 1, 10, 11, 48))
        self.assertEqual([t.minute.strftime("%H%M") for t in minutes.requires()],
                         ["1150", "1155", "1200", "1205"])
        months = mf.RangeMonthly(of=Monthly, start=datetime.date(2025, 10, 1),
                                 months_forward=1, now=self.NOW)
        self.assertEqual([t.month.strftime("%Y-%m") for t in months.requires()],
                         ["2025-10", "2025-11", "2025-12", "2026-01"])

    def test_bad_ranges_say_what_is_wrong(self):
        for kwargs, message in [({}, "at least one of start and stop"),
                                ({"stop": datetime.date(2026, 1, 2)}, "reverse must be"),
                                ({"start": datetime.date(2026, 1, 3),
                                  "stop": datetime.date(2026, 1, 2)}, "start is after stop")]:
            with self.assertRaisesRegex(mf.ParameterException, message):
                mf.RangeDaily(of=Daily, now=self.NOW, **kwargs).requires()
        with self.assertRaisesRegex(mf.ParameterException, "must divide 60"):
            mf.RangeByMinutes(of=Minutely, minutes_interval=7, now=self.NOW,
                              start=datetime.datetime(2026, 1, 10, 11)).requires()


class Stamp(mf.Task):
    """Records the (fake) time of each run; ``busy`` seconds pass while it runs."""
    clock = None
    times = []
    busy = 0
    fail_at = ()
    n = mf.IntParameter()

    def complete(self):
        return False

    def run(self):
        self.times.append(self.clock())
        self.clock.advance(self.busy)
        if len(self.times) in self.fail_at:
            raise RuntimeError("this run fails")


class TestTriggering(TempDirMixin, BuildCase):
    def setUp(self):
        super().setUp()
        Stamp.clock, Stamp.times, Stamp.busy, Stamp.fail_at = FakeClock(0.0), [], 0, ()
        self.options = dict(clock=Stamp.clock, sleep=Stamp.clock.sleep)
        self.config = mf.config_override({"core": {"lock_pid_dir": str(self.tmp)}})
        self.config.__enter__()
        self.addCleanup(self.config.__exit__, None, None, None)

    def test_every_fires_at_once_then_each_interval_and_the_worst_code_wins(self):
        Stamp.fail_at = (2,)
        with self.assertLogs("microflow", "INFO") as logs:
            code = mf.every("1m", [Stamp(1)], max_runs=3, **self.options)
        self.assertEqual(Stamp.times, [0.0, 60.0, 120.0])
        self.assertEqual(code, 30)                         # the second build failed
        self.assertEqual(sum("Luigi Execution Summary" in line for line in logs.output), 3)

    def test_firings_during_a_long_build_are_skipped_and_logged(self):
        Stamp.busy = 150            # a build outlasts two more firings
        with self.assertLogs("microflow", "INFO") as logs:
            mf.every(60, [Stamp(2)], max_runs=2, **self.options)
        self.assertEqual(Stamp.times, [0.0, 180.0])
        self.assertIn("skipped 2 firing(s) that came while the build ran",
                      "\n".join(logs.output))

    def test_cron_firings_and_a_clean_stop(self):
        start = datetime.datetime(2026, 12, 7, 9, 7).timestamp()   # a Monday, local time
        Stamp.clock.now = start
        stop = threading.Event()
        original = Stamp.run

        def run_then_stop(task):
            original(task)
            if len(Stamp.times) == 2:
                stop.set()          # as SIGTERM does: the loop ends after this build
        with unittest.mock.patch.object(Stamp, "run", run_then_stop), \
                self.assertLogs("microflow", "INFO") as logs:
            code = mf.cron("*/15 9-17 * * mon-fri", [Stamp(3)], stop=stop, **self.options)
        self.assertEqual(code, 0)
        # Said before each wait, so a cron loop shows it is alive (issue 23, point 9).
        self.assertIn("next build at 2026-12-07 09:15:00", logs.output[0])
        self.assertEqual(sum("next build at" in line for line in logs.output), 2)
        self.assertEqual([datetime.datetime.fromtimestamp(t).strftime("%H:%M")
                          for t in Stamp.times], ["09:15", "09:30"])

    def test_bad_schedules_are_refused_clearly(self):
        for call, message in [(lambda: mf.every("soon", []), "expected a positive interval"),
                              (lambda: mf.cron("* * *", []), "expected 5 fields"),
                              (lambda: mf.cron("0 25 * * *", []), "hour '25': outside"),
                              (lambda: mf.cron("0 0 31 2 *", []), "never fires")]:
            with self.assertRaisesRegex(mf.UsageError, message):
                call()

    def test_a_build_another_process_runs_is_skipped(self):
        key = "build " + Stamp(4).task_id
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time, microflow\n"
             "with microflow._pid_lock(sys.argv[1], sys.argv[2]) as held:\n"
             "    print(held, flush=True); time.sleep(60)", key, str(self.tmp)],
            stdout=subprocess.PIPE, text=True, cwd=HERE)
        self.addCleanup(holder.stdout.close)
        self.addCleanup(holder.kill)
        self.assertTrue(holder.stdout.readline().strip().endswith(".lock"))
        with self.assertLogs("microflow", "INFO") as logs:
            self.assertEqual(mf.every(60, [Stamp(4)], max_runs=1, **self.options), 10)
        self.assertIn(f"a build of the same tasks runs in process {holder.pid}",
                      "\n".join(logs.output))
        self.assertEqual(Stamp.times, [])
        holder.kill()               # SIGKILL: the kernel drops its lock at once
        holder.wait()
        with self.assertLogs("microflow", "INFO"):
            self.assertEqual(mf.every(60, [Stamp(4)], max_runs=1, **self.options), 0)
        self.assertEqual(len(Stamp.times), 1)


class TestErrorEmails(BuildCase):
    def setUp(self):
        super().setUp()
        self.smtp = SMTPReceiver()
        self.addCleanup(self.smtp.close)

    def test_a_failed_run_is_emailed_to_the_receiver_and_the_owner(self):
        with mf.config_override(self.smtp.config(prefix="[etl]")):
            self.build(FailsLoudly(3))
        self.assertEqual(len(self.smtp.messages), 1)
        recipients, subject, body = self.smtp.parsed()
        self.assertEqual(recipients, ["ops@example.com", "owner@example.com"])
        self.assertTrue(subject.startswith("[etl] Luigi: FailsLoudly(day=3) FAILED. Host: "))
        self.assertIn("A task failed when running. Most likely run() raised an exception.",
                      body)
        self.assertIn("Name: FailsLoudly", body)
        self.assertIn("  day: 3", body)
        self.assertIn("RuntimeError: the export server said no", body)

    def test_scheduling_errors_too_and_nothing_when_switched_off(self):
        with mf.config_override(self.smtp.config()):
            self.build(CannotCheck())
        recipients, subject, body = self.smtp.parsed()
        self.assertIn("Luigi: CannotCheck() failed scheduling", subject)
        self.assertIn("error in complete() method", body)
        self.assertIn("OSError: storage unreachable", body)
        for settings in ({"worker": {"send_failure_email": "false"}},
                         {"email": {"format": "none"}}, {"email": {"method": "ses"}},
                         {"email": {"receiver": ""}}):
            config = self.smtp.config()
            for section, values in settings.items():
                config.setdefault(section, {}).update(values)
            with mf.config_override(config), \
                    unittest.mock.patch.dict(sys.modules, {"boto3": None}):   # not installed
                self.build(FailsLoudly(4))
            if "method" in settings.get("email", {}):
                self.assertIn("[email] method = ses needs the 'boto3' package, which is "
                              "not installed", self.logged)
        self.assertEqual(len(self.smtp.messages), 2)   # only the owner's, receiver unset
        self.assertEqual(self.smtp.messages[1][0], ["owner@example.com"])

    def test_a_long_traceback_is_cut(self):
        with mf.config_override(self.smtp.config(traceback_max_length="200")):
            self.build(FailsLoudly(5))
        self.assertIn("Traceback exceeds max length and has been truncated.",
                      self.smtp.parsed()[2])

    def test_the_scheduler_batches_failures_per_owner(self):
        with mf.config_override(dict(self.smtp.config(),
                                     batch_email={"email_interval": "0"})):
            scheduler = mf.Scheduler(batch_emails=True, retry_count=2)
            for _ in range(2):
                scheduler.add_task(worker="w", task_id="T1", family="T", params={"a": "1"},
                                   status=mf.FAILED, expl=json.dumps("disk full"),
                                   owners=["owner@example.com"])
            scheduler.announce_scheduling_failure(worker="w", task_name="U(b=2)",
                                                  family="U", params={"b": "2"},
                                                  expl="no such table", owners=[])
            self.assertEqual(self.smtp.messages, [])   # until the interval has passed
            scheduler.prune()
        by_recipient = {}
        for index, (recipients, _) in enumerate(self.smtp.messages):
            by_recipient[recipients[0]] = self.smtp.parsed(index)
        _, subject, body = by_recipient["ops@example.com"]
        self.assertEqual(subject, "Luigi: 2 failures, 1 disable, 1 scheduling failure in "
                                  "the last 0 minutes")
        self.assertIn("- T(a=1) (2 failures, 1 disable)", body)
        self.assertIn("      disk full", body)
        self.assertIn("- U(b=2) (1 scheduling failure)", body)
        _, subject, _ = by_recipient["owner@example.com"]
        self.assertEqual(subject, "Luigi: Your tasks have 2 failures, 1 disable in the last "
                                  "0 minutes")


class ForgetsToReturn(mf.Task):
    def complete(self):
        pass   # returns None: a bug Luigi reports, and so does microflow


class Flips(mf.Task):
    """Complete when the walk sees it; gone again by the time its dependent runs."""
    state = {"done": True}

    def complete(self):
        return self.state["done"]

    def run(self):
        self.state["done"] = True


class NeedsFlips(mf.Task):
    ran = []

    def requires(self):
        return Flips()

    def complete(self):
        return bool(self.ran)

    def run(self):
        self.ran.append(Flips().complete())


class NeverThere(mf.ExternalTask):
    pass


class ArrivesLater(mf.ExternalTask):
    """External data that appears between the walk and the recheck; its own input
    never does (it was made elsewhere, from something else)."""
    calls = []

    def requires(self):
        return NeverThere()

    def complete(self):
        self.calls.append(1)
        return len(self.calls) > 1


class TestBuild(BuildCase):
    def test_an_external_task_is_judged_by_its_own_data_not_its_inputs(self):
        worker = mf.Worker(mf.Scheduler(), retry_external_tasks=True)
        worker.add(ArrivesLater())
        with self.assertLogs("microflow", "INFO"):
            self.assertTrue(worker.run())

    def test_complete_must_return_a_bool(self):
        result = self.build(ForgetsToReturn())
        self.assertEqual(result.status, mf.LuigiStatusCode.SCHEDULING_FAILED)
        self.assertIn("Return value of Task.complete() must be boolean (was None)",
                      result.errors[ForgetsToReturn()])

    def test_a_dependency_gone_before_its_dependent_runs_is_run_again(self):
        worker = mf.Worker(mf.Scheduler(stable_done_cooldown_secs=0))
        worker.add(NeedsFlips())
        Flips.state["done"] = False     # deleted between the walk and the run
        with self.assertLogs("microflow", "INFO"):
            worker.run()
        self.assertEqual(NeedsFlips.ran, [True])   # Flips ran first, on the reschedule

    def test_the_scheduler_lists_the_worker_with_its_first_task(self):
        scheduler = mf.Scheduler()
        self.build(Recorder("first", []), Recorder("second", []), scheduler=scheduler)
        [worker] = scheduler.worker_list()
        self.assertEqual(worker["first_task"], Recorder("first", []).task_id)
        self.assertEqual(worker["first_task_display_name"],
                         "Recorder(name=first, deps_names=[])")
        self.assertEqual((worker["num_running"], worker["workers"]), (0, 1))

    def test_success_and_summary(self):
        result = self.build(Recorder("top", ["a", "b"]))
        self.assertEqual(Recorder.runs[-1], "top")
        self.assertEqual(sorted(Recorder.runs[:2]), ["a", "b"])
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        self.assertTrue(result.scheduling_succeeded)
        self.assertEqual(len(result.tasks["completed"]), 3)
        self.assertIn("* 3 ran successfully:", result.summary_text)
        self.assertIn("This progress looks :) because there were no failed tasks or missing "
                      "dependencies", result.summary_text)
        self.assertEqual(result.one_line_summary, "This progress looks :) because there were "
                                                  "no failed tasks or missing dependencies")
        self.assertEqual(mf.exit_code(result, [Recorder("top", ["a", "b"])]), 0)
        self.assertIn("===== Luigi Execution Summary =====", self.logged)   # Luigi's words

    def test_already_complete_tasks_are_not_expanded_or_run(self):
        Recorder.finished.add("top")
        result = self.build(Recorder("top", ["a"]))
        self.assertEqual(Recorder.runs, [])
        self.assertEqual(result.tasks["already_done"], [Recorder("top", ["a"])])
        self.assertIn("* 1 complete ones were encountered:", result.summary_text)
        self.assertIn("Did not run any tasks", result.summary_text)

    def test_failure(self):
        result = self.build(NeedsExploding())
        self.assertFalse(result.scheduling_succeeded)
        self.assertEqual(result.status, mf.LuigiStatusCode.FAILED)
        self.assertEqual(result.tasks["failed"], [Exploding()])
        self.assertEqual(result.tasks["upstream_failure"], [NeedsExploding()])
        self.assertIn("ValueError: kaboom", self.logged)
        self.assertEqual(mf.exit_code(result, [NeedsExploding()]), 30)
        self.assertFalse(mf.build([Exploding()]) if False else False)
        expected = textwrap.dedent("""\
            Scheduled 2 tasks of which:
            * 1 failed:
                - 1 Exploding()
            * 1 were left pending, among these:
                * 1 had failed dependencies:
                    - 1 NeedsExploding()

            This progress looks :( because there were failed tasks""")
        self.assertIn(expected, result.summary_text)

    def test_failure_explanation_reaches_the_scheduler(self):
        scheduler = mf.Scheduler()
        self.build(Exploding(), scheduler=scheduler)
        error = json.loads(scheduler.fetch_error(Exploding().task_id)["error"])
        self.assertTrue(error.startswith("Runtime error:\nTraceback"))
        self.assertIn("ValueError: kaboom", error)

    def test_missing_external_data(self):
        result = self.build(NeedsMissing())
        self.assertTrue(result.scheduling_succeeded)   # as in Luigi: nothing failed
        self.assertEqual(result.status, mf.LuigiStatusCode.MISSING_EXT)
        self.assertEqual(result.tasks["still_pending_ext"], [Missing()])
        self.assertEqual(result.tasks["upstream_missing_dependency"], [NeedsMissing()])
        self.assertEqual(mf.exit_code(result, [NeedsMissing()]), 20)
        self.assertIn("* 1 were missing external dependencies:", result.summary_text)

    def test_scheduling_failure_when_complete_raises(self):
        class BrokenComplete(mf.Task):
            def complete(self):
                raise OSError("disk gone")
        result = self.build(BrokenComplete())
        self.assertEqual(result.status, mf.LuigiStatusCode.SCHEDULING_FAILED)
        self.assertEqual(mf.exit_code(result, [BrokenComplete()]), 35)
        self.assertIn("OSError: disk gone", self.logged)

    def test_requires_returning_a_non_task(self):
        class BadRequires(mf.Task):
            def requires(self):
                return ["not a task"]

            def complete(self):
                return False
        result = self.build(BadRequires())
        self.assertEqual(result.tasks["scheduling_error"], [BadRequires()])
        self.assertIn("which is not a Task", self.logged)

    def test_cycle_is_a_scheduling_failure_naming_the_tasks(self):
        class Loop(mf.Task):
            n = mf.IntParameter()

            def requires(self):
                return Loop((self.n + 1) % 3)

            def complete(self):
                return False
        result = self.build(Loop(0))
        self.assertFalse(result.scheduling_succeeded)
        self.assertEqual(result.status, mf.LuigiStatusCode.SCHEDULING_FAILED)
        self.assertIn("ERROR:microflow:dependency cycle: Loop(n=0) -> Loop(n=1) -> "
                      "Loop(n=2) -> Loop(n=0)\n", self.logged + "\n")   # text, not a tuple
        self.assertEqual(len(result.tasks["scheduling_error"]), 3)

    def test_deep_chain_does_not_recurse(self):
        class Link(mf.Task):
            i = mf.IntParameter()
            done = set()

            def requires(self):
                return Link(self.i - 1) if self.i else []

            def complete(self):
                return self.i in Link.done

            def run(self):
                Link.done.add(self.i)
        depth = sys.getrecursionlimit() * 3
        result = self.build(Link(depth))
        self.assertEqual(len(Link.done), depth + 1)
        self.assertIn(f"- {depth + 1} Link(i=0...{depth})", result.summary_text)

    def test_dynamic_dependencies(self):
        class Part(mf.Task):
            n = mf.IntParameter()

            def output(self):
                return mf.MockTarget(f"part{self.n}")

            def run(self):
                with self.output().open("w") as f:
                    f.write(str(self.n * 10))

        class Dynamic(mf.Task):
            attempts = []

            def output(self):
                return mf.MockTarget("dynamic")

            def run(self):
                Dynamic.attempts.append(1)
                targets = yield [Part(1), Part(2)]
                more = yield Part(3)
                values = [int(t.open("r").read()) for t in targets + [more]]
                with self.output().open("w") as f:
                    f.write(str(sum(values)))
        result = self.build(Dynamic())
        self.assertEqual(mf.MockTarget("dynamic").open("r").read(), "60")
        self.assertEqual(len(Dynamic.attempts), 3)   # re-run from the start, as in Luigi
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        self.assertEqual(len(result.tasks["completed"]), 4)

    def test_events_fire_with_luigi_arguments(self):
        seen = []

        class Evented(mf.Task):
            fail = mf.BoolParameter()

            def requires(self):
                return [] if self.fail else [Evented(fail=True), Present()]

            def complete(self):
                return False

            def run(self):
                if self.fail:
                    raise RuntimeError("x")

        class Present(mf.Task):
            def complete(self):
                return True
        handlers = {}
        for name in ("START", "SUCCESS", "FAILURE", "PROCESSING_TIME",
                     "DEPENDENCY_DISCOVERED", "DEPENDENCY_PRESENT"):
            def handler(*args, _name=name):
                seen.append((_name, args))
            handlers[name] = handler
            mf.Task.event_handler(getattr(mf.Event, name))(handler)
        try:
            self.build(Evented())
        finally:
            for name, handler in handlers.items():
                mf.Task.remove_event_handler(getattr(mf.Event, name), handler)
        names = [name for name, _ in seen]
        self.assertIn(("DEPENDENCY_DISCOVERED", (Evented(), Evented(fail=True))), seen)
        self.assertIn(("DEPENDENCY_PRESENT", (Present(),)), seen)
        self.assertIn(("START", (Evented(fail=True),)), seen)
        failure = [args for name, args in seen if name == "FAILURE"][0]
        self.assertIs(failure[0], Evented(fail=True))
        self.assertIsInstance(failure[1], RuntimeError)
        self.assertNotIn("SUCCESS", names)   # the root never ran: its dependency failed

    def test_success_events_and_processing_time(self):
        seen = []

        @Recorder.event_handler(mf.Event.PROCESSING_TIME)
        def timed(task, seconds):
            seen.append((task, seconds))
        try:
            self.build(Recorder("x"))
        finally:
            Recorder.remove_event_handler(mf.Event.PROCESSING_TIME, timed)
        self.assertEqual(seen[0][0], Recorder("x"))
        self.assertGreaterEqual(seen[0][1], 0)

    def test_status_message_and_progress_from_run(self):
        class Chatty(mf.Task):
            def complete(self):
                return False

            def run(self):
                self.set_status_message("halfway")
                self.set_progress_percentage(50)
                self.set_tracking_url("http://example.invalid/job/1")
        scheduler = mf.Scheduler()
        self.build(Chatty(), scheduler=scheduler)
        task_id = Chatty().task_id
        self.assertEqual(scheduler.get_task_status_message(task_id)["statusMessage"],
                         "halfway")
        self.assertEqual(scheduler.get_task_progress_percentage(task_id)
                         ["progressPercentage"], 50)
        self.assertEqual(scheduler.graph()[task_id]["tracking_url"],
                         "http://example.invalid/job/1")
        with self.assertLogs("microflow", "WARNING"):
            Chatty().set_status_message("outside run")

    def test_build_returns_bool_and_checks_options(self):
        with self.assertLogs("microflow", "INFO"):
            self.assertTrue(mf.build([Recorder("plain")]))
            self.assertFalse(mf.build([Exploding()]))
            self.assertTrue(mf.build([Recorder("p2")], local_scheduler=True, no_lock=True))
        with self.assertRaisesRegex(TypeError, "unknown option 'worker'; did you mean "
                                               "workers"):
            mf.build([Recorder("x")], worker=2)
        with self.assertRaisesRegex(ValueError, "workers must be a whole number"):
            mf.build([Recorder("x")], workers=-1)

    def test_zero_workers_schedule_and_run_nothing(self):
        scheduler = mf.Scheduler()
        result = self.build(Recorder("later"), workers=0, scheduler=scheduler)
        self.assertEqual(Recorder.runs, [])
        self.assertEqual(scheduler.task_list(mf.PENDING, "").keys(),
                         {Recorder("later").task_id})   # for another worker to run
        self.assertEqual(result.status, mf.LuigiStatusCode.NOT_RUN)

    def test_build_from_a_thread(self):
        results = []
        thread = threading.Thread(target=lambda: results.append(
            mf.build([Recorder("threaded")])))
        with self.assertLogs("microflow", "INFO"):
            thread.start()
            thread.join()
        self.assertEqual(results, [True])

    def test_keep_alive_retries_until_success(self):
        class Flaky(mf.Task):
            tries = []

            def complete(self):
                return len(Flaky.tries) >= 2

            def run(self):
                Flaky.tries.append(1)
                if len(Flaky.tries) == 1:
                    raise IOError("first try fails")
        clock = FakeClock()
        scheduler = mf.Scheduler(clock=clock, retry_delay=5, prune_on_get_work=True)
        worker = mf.Worker(scheduler, clock=clock, sleep=clock.sleep, keep_alive=True)
        with self.assertLogs("microflow", "ERROR"):
            worker.add(Flaky())
            worker.run()
        result = mf.RunResult(worker)
        self.assertEqual(len(Flaky.tries), 2)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS_WITH_RETRY)
        self.assertGreaterEqual(clock.now, 1005)

    def test_task_limit(self):
        result = self.build(Recorder("top", ["a", "b", "c"]),
                            worker_options={"task_limit": 2})
        self.assertEqual(Recorder.runs, ["a"])
        self.assertEqual(len(result.tasks["scheduling_error"]), 2)
        self.assertIn("task_limit of 2 exceeded", self.logged)

    def test_worker_step_by_step(self):
        worker = mf.Worker(mf.Scheduler())
        worker.add(Recorder("one"))
        worker._scheduler.add_worker(worker.worker_id, [])
        self.assertEqual(worker.step(), "ran")
        self.assertEqual(worker.step(), "stop")


class TestSummaryFormat(BuildCase):
    def test_the_summary_is_made_when_nothing_logs_it_as_luigi_makes_it(self):
        # luigi-tools' global parameters raise when read without a value, and its tests
        # expect build() to raise then: Luigi makes the summary at any log level.
        class Unset(Exception):
            pass

        class ReadsRaise(mf.Task):
            e = mf.Parameter(default="x")

            def __getattribute__(self, name):
                if name == "e":
                    raise Unset("e has no value")
                return super().__getattribute__(name)

            def complete(self):
                return True
        logging.disable(logging.INFO)   # the summary's INFO line is not logged
        self.addCleanup(logging.disable, logging.NOTSET)
        with self.assertRaisesRegex(Unset, "e has no value"):
            mf.build([ReadsRaise()], local_scheduler=True)

    def test_ranges_lists_and_limit(self):
        class Many(mf.WrapperTask):
            def requires(self):
                return ([Recorder(f"r{i}") for i in range(3)] +
                        [Numbered(i) for i in range(7)] +
                        [Pair(1, "x"), Pair(2, "x"), Pair(3, "x")] +
                        [Fam1(), Fam2(), Fam3(), Fam4()])
        with mf.config_override({"execution_summary": {"summary_length": "10"}}):
            text = self.build(Many()).summary_text
        self.assertIn("    - 7 Numbered(n=0...6)\n", text)
        self.assertIn("    - 3 Pair(a=1...3, b=x)\n", text)
        self.assertIn("    - 3 Recorder(name=r0, deps_names=[]) ...\n", text)
        Numbered.finished.clear()
        Pair.finished.clear()
        Fam1.finished.clear()
        Recorder.finished.clear()
        text = self.build(Many()).summary_text
        self.assertIn("    - 1 Many()\n    ...\n", text)   # over 5 families: cut

    def test_a_task_waiting_on_what_it_yielded_is_listed_as_luigi_lists_it(self):
        class YieldsAFailure(mf.Task):   # Luigi's examples/per_task_retry_policy.py
            def run(self):
                yield Exploding()

            def output(self):
                return mf.MockTarget("yields-a-failure")
        text = self.build(YieldsAFailure()).summary_text
        # Reported pending and runnable (walked), then pending and not runnable (it
        # yielded): Luigi counts it under both, and so in the total.
        self.assertIn("Scheduled 3 tasks of which:\n", text)
        self.assertIn("    * 1 were missing external dependencies:\n"
                      "        - 1 YieldsAFailure()\n", text)
        self.assertIn("    * 1 was not granted run permission by the scheduler:\n"
                      "        - 1 YieldsAFailure()\n", text)

    def test_single_parameter_families_sort_as_their_text(self):
        # Sorting by the value must give str()'s order, including values where one is a
        # prefix of another and the next character sorts below ")".
        class Word(mf.Task):
            w = mf.Parameter()
        values = ["a", "a!", "a)", "a0", "", "b", "a a", "ä", "10", "9", "1"]
        tasks = [Word(value) for value in values]
        self.assertEqual([str(t) for t in mf._sorted_by_text(tasks)],
                         sorted(str(t) for t in tasks))

        class Shown(Word):
            def __repr__(self):
                return f"zz{self.w}"
        shown = [Shown(value) for value in values]
        self.assertEqual(mf._sorted_by_text(shown), sorted(shown, key=str))

    def test_did_not_schedule_any_tasks(self):
        worker = mf.Worker(mf.Scheduler())
        self.assertIn("Did not schedule any tasks", mf.RunResult(worker).summary_text)


class Numbered(mf.Task):
    n = mf.IntParameter()

    def complete(self):
        return self.n in Numbered.finished

    def run(self):
        Numbered.finished.add(self.n)

    finished = set()


class Pair(Numbered):
    a = mf.IntParameter()
    b = mf.Parameter()
    n = None

    def complete(self):
        return (self.a, self.b) in Pair.finished

    def run(self):
        Pair.finished.add((self.a, self.b))

    finished = set()


class Fam1(mf.Task):
    def complete(self):
        return self.task_id in Fam1.finished

    def run(self):
        Fam1.finished.add(self.task_id)

    finished = set()


class Fam2(Fam1):
    pass


class Fam3(Fam1):
    pass


class Fam4(Fam1):
    pass


###########################################################################################
# Worker processes (real processes; a few, kept short)
###########################################################################################

class PidTask(mf.Task):
    """Writes the pid of the process that ran it."""

    n = mf.IntParameter()
    folder = mf.Parameter()

    def output(self):
        return mf.LocalTarget(os.path.join(self.folder, f"pid{self.n}"))

    def run(self):
        self.set_status_message(f"in {os.getpid()}")
        with self.output().open("w") as f:
            f.write(str(os.getpid()))


class PidRoot(mf.WrapperTask):
    folder = mf.Parameter()

    def requires(self):
        return [PidTask(n, self.folder) for n in range(4)]


class AheadLeaf(mf.Task):
    """A quick task that notes its run (in this process: the build runs it inline)."""
    tag = mf.Parameter()
    n = mf.IntParameter()
    runs: list = []
    stop_after = None

    def output(self):
        return mf.MockTarget(f"ahead/{self.tag}/{self.n}")

    def run(self):
        self.output().open("w").close()
        self.runs.append(self.n)
        if len(self.runs) == self.stop_after:
            mf._STOP_ASKING.set()


class AheadRoot(mf.WrapperTask):
    tag = mf.Parameter()
    count = mf.IntParameter()

    def requires(self):
        return [AheadLeaf(self.tag, n) for n in range(self.count)]


class SlowTask(mf.Task):
    worker_timeout = 0.5

    def complete(self):
        return False

    def run(self):
        import time
        time.sleep(30)


class CrashingTask(mf.Task):
    def complete(self):
        return False

    def run(self):
        os._exit(7)


class EventLog:
    """Lines appended to one file by tasks in any process (O_APPEND writes of one line
    are not interleaved), read back as ``[(event, name), ...]`` in the order written."""

    def __init__(self, path):
        self.path = str(path)

    def write(self, event, name):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{event} {name} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def read(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [tuple(line.split()[:2]) for line in f]

    def pids(self):
        with open(self.path) as f:
            return {line.split()[2] for line in f}


def process_alive(pid):
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:   # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def wait_for_file(path, seconds=30.0):
    """Poll until ``path`` exists (a subprocess signals progress by creating it)."""
    import time
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.02)


def wait_until_gone(pid, seconds=5.0):
    """Whether ``pid`` is gone within ``seconds`` (an orphan is reaped by init, later)."""
    import time
    deadline = time.monotonic() + seconds
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Flaky(mf.Task):
    """Fails until its attempt number reaches ``succeed_on`` (kept in a file, so every
    process sees the count); retried within the build thanks to retry_count."""

    retry_count = 3
    folder = mf.Parameter()
    succeed_on = mf.IntParameter(default=3)

    def output(self):
        return mf.LocalTarget(os.path.join(self.folder, "flaky-done"))

    def run(self):
        counter = os.path.join(self.folder, "attempts")
        attempt = 1
        if os.path.exists(counter):
            with open(counter) as f:
                attempt = int(f.read()) + 1
        with open(counter, "w") as f:
            f.write(str(attempt))
        if attempt < self.succeed_on:
            raise RuntimeError(f"attempt {attempt} fails")
        with self.output().open("w") as f:
            f.write("ok")


class Reporter(mf.Task):
    """Sends every kind of message a running task can send to the scheduler."""

    resources = {"db": 2}

    def complete(self):
        return False

    def run(self):
        self.set_status_message("half way")
        self.set_progress_percentage(50)
        self.set_tracking_url("http://example.invalid/job/1")
        self.decrease_running_resources({"db": 1})


class Unsendable(mf.Task):
    def complete(self):
        return False

    def run(self):
        pass

    def on_success(self):
        return lambda: None   # an explanation that cannot be pickled


class KillsItself(mf.Task):
    def complete(self):
        return False

    def run(self):
        import signal
        os.kill(os.getpid(), signal.SIGKILL)


class TestProcessPool(TempDirMixin, BuildCase):
    def test_pool_runs_tasks_in_reused_child_processes(self):
        scheduler = mf.Scheduler()
        result = self.build(PidRoot(str(self.tmp)), workers=2, scheduler=scheduler)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        pids = {read(PidTask(n, str(self.tmp)).output()) for n in range(4)}
        self.assertNotIn(str(os.getpid()), pids)
        self.assertLessEqual(len(pids), 2)     # a pool of two, not a fork per task
        message = scheduler.get_task_status_message(PidTask(0, str(self.tmp)).task_id)
        self.assertTrue(message["statusMessage"].startswith("in "))

    def test_tasks_defined_in_a_test_method_run_once_each_in_dependency_order(self):
        log = EventLog(self.tmp / "events")

        class Leaf(mf.Task):
            n = mf.IntParameter()

            def output(self):
                return mf.LocalTarget(str(self_tmp / f"leaf{self.n}"))

            def run(self):
                log.write("start", f"leaf{self.n}")
                with self.output().open("w") as f:
                    f.write("x")
                log.write("end", f"leaf{self.n}")

        class Middle(mf.Task):
            n = mf.IntParameter()

            def requires(self):
                return [Leaf(self.n * 4 + i) for i in range(4)]

            def output(self):
                return mf.LocalTarget(str(self_tmp / f"middle{self.n}"))

            def run(self):
                log.write("start", f"middle{self.n}")
                with self.output().open("w") as f:
                    f.write("x")

        class Top(mf.WrapperTask):
            def requires(self):
                return [Middle(n) for n in range(6)]
        self_tmp = self.tmp
        result = self.build(Top(), workers=4)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, self.logged)
        events = log.read()
        starts = [name for event, name in events if event == "start"]
        self.assertEqual(len(starts), 30)
        self.assertEqual(len(set(starts)), 30)          # each task exactly once
        position = {event: i for i, event in enumerate(events)}
        for n in range(6):
            for i in range(4):
                self.assertLess(position[("end", f"leaf{n * 4 + i}")],
                                position[("start", f"middle{n}")])
        self.assertNotIn(str(os.getpid()), log.pids())
        self.assertIn("running   ", self.logged)        # Luigi's lines, with the worker
        self.assertIn(f"done      Leaf(n=0)", self.logged)

    def test_requires_decorated_local_classes_run_in_children(self):
        class Base(mf.Task):
            day = mf.IntParameter()

            def output(self):
                return mf.MockTarget(f"base{self.day}")

            def run(self):
                with self.output().open("w") as f:
                    f.write(str(os.getpid()))

        @mf.requires(Base)
        class Derived(mf.Task):
            def output(self):
                return mf.MockTarget(f"derived{self.day}")

            def run(self):
                with self.output().open("w") as f:
                    f.write(self.input().open().read())
        result = self.build(*[Derived(day=d) for d in range(3)], workers=3)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, self.logged)
        data = mf.MockFileSystem().get_all_data()
        self.assertEqual(data["derived1"], data["base1"])
        self.assertNotEqual(data["base1"], str(os.getpid()).encode())

    def test_resource_limits_are_never_exceeded(self):
        log = EventLog(self.tmp / "events")

        class UsesDb(mf.Task):
            n = mf.IntParameter()
            resources = {"db": 1}

            def complete(self):
                return os.path.exists(os.path.join(folder, f"db{self.n}"))

            def run(self):
                import time
                log.write("start", self.n)
                time.sleep(0.02)
                log.write("end", self.n)
                open(os.path.join(folder, f"db{self.n}"), "w").close()

        class All(mf.WrapperTask):
            def requires(self):
                return [UsesDb(n) for n in range(8)]
        folder = str(self.tmp)
        with mf.config_override({"resources": {"db": "2"}}):
            result = self.build(All(), workers=4)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, self.logged)
        running = peak = 0
        for event, _ in log.read():
            running += 1 if event == "start" else -1
            peak = max(peak, running)
        self.assertEqual(len(log.read()), 16)
        self.assertLessEqual(peak, 2)

    def test_timeout_and_crash_fail_the_task(self):
        result = self.build(SlowTask(), CrashingTask(), workers=2)
        self.assertEqual(result.status, mf.LuigiStatusCode.FAILED)
        self.assertEqual(len(result.tasks["failed"]), 2)
        self.assertIn("SlowTask() timed out after 0.5 seconds", self.logged)
        self.assertIn("died unexpectedly with exit code 7", self.logged)
        self.assertIn("exit code 7", result.errors[CrashingTask()])

    def test_timeout_kills_the_task_and_the_processes_it_started(self):
        pid_file = self.tmp / "grandchild"
        timeouts = []

        class StartsSleep(mf.Task):
            worker_timeout = 0.5

            def complete(self):
                return False

            def run(self):
                import time
                # A bare pid, no Popen object: this process is killed, and a Popen
                # still running would warn about it on the way out.
                sleeper = os.spawnvp(os.P_NOWAIT, "sleep", ["sleep", "60"])
                pid_file.write_text(str(sleeper))
                time.sleep(60)
        StartsSleep.event_handler(mf.Event.TIMEOUT)(
            lambda task, message: timeouts.append(message))
        for workers in (1, 2):   # also with one worker: the timeout needs a process
            with self.subTest(workers=workers):
                timeouts.clear()
                result = self.build(StartsSleep(), workers=workers)
                self.assertEqual(result.tasks["failed"], [StartsSleep()])
                self.assertIn("timed out after 0.5 seconds", result.errors[StartsSleep()])
                self.assertTrue(wait_until_gone(int(pid_file.read_text())))
                self.assertEqual(len(timeouts), 1)   # fired in this process

    def test_killed_child_is_named_and_the_rest_go_on(self):
        failures = []
        KillsItself.event_handler(mf.Event.PROCESS_FAILURE)(
            lambda task, message: failures.append(message))
        result = self.build(KillsItself(), PidRoot(str(self.tmp)), workers=2)
        self.assertEqual(result.tasks["failed"], [KillsItself()])
        self.assertEqual(len(result.tasks["completed"]), 5)
        self.assertIn("was killed by SIGKILL (out of memory?)", result.errors[KillsItself()])
        self.assertIn("was killed by SIGKILL", self.logged)
        self.assertEqual(len(failures), 1)

    def test_failure_in_a_child_is_logged_with_its_traceback_and_returned(self):
        result = self.build(NeedsExploding(), workers=2)
        self.assertEqual(result.tasks["failed"], [Exploding()])
        self.assertIn("ValueError: kaboom", self.logged)
        self.assertIn("failed    Exploding()", self.logged)
        self.assertLess(self.logged.index("ValueError: kaboom"),
                        self.logged.index("Execution Summary"))
        self.assertIn("ValueError: kaboom", result.errors[Exploding()])

    def test_unsendable_result_fails_clearly(self):
        result = self.build(Unsendable(), workers=2)
        self.assertEqual(result.tasks["failed"], [Unsendable()])
        self.assertIn("could not be sent back from its process",
                      result.errors[Unsendable()])

    def test_retries_until_success_with_one_and_four_workers(self):
        for workers in (1, 4):
            with self.subTest(workers=workers):
                for name in ("attempts", "flaky-done"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.tmp / name)
                with mf.config_override({"scheduler": {"retry_delay": "0"}}):
                    result = self.build(Flaky(str(self.tmp)), workers=workers)
                self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS_WITH_RETRY)
                self.assertEqual((self.tmp / "attempts").read_text(), "3")
                self.assertEqual(result.tasks["completed"], [Flaky(str(self.tmp))])
                self.assertTrue(result.scheduling_succeeded)
                self.assertIn("failed 2 of 3 allowed times", self.logged)

    def test_retries_stop_when_spent_and_only_when_asked(self):
        with mf.config_override({"scheduler": {"retry_delay": "0"}}):
            result = self.build(Flaky(str(self.tmp), succeed_on=9), workers=2)
        self.assertEqual(result.status, mf.LuigiStatusCode.FAILED)
        self.assertEqual((self.tmp / "attempts").read_text(), "3")   # retry_count = 3
        os.remove(self.tmp / "attempts")
        result = self.build(Exploding(), workers=2)   # no retry_count: one attempt
        self.assertEqual(result.status, mf.LuigiStatusCode.FAILED)
        self.assertEqual(self.logged.count("failed    Exploding()"), 1)

    def test_the_local_retry_delay_is_short_unless_configured(self):
        self.assertEqual(mf._local_scheduler({}).options["retry_delay"],
                         mf._LOCAL_RETRY_DELAY)
        with mf.config_override({"scheduler": {"retry_delay": "60"}}):
            self.assertEqual(mf._local_scheduler({}).options["retry_delay"], 60)
        self.assertEqual(mf._local_scheduler({"keep_alive": True}).options["retry_delay"],
                         900)

    def test_messages_from_children_reach_the_scheduler(self):
        scheduler = mf.Scheduler(resources={"db": 3})
        seen = {}
        original = scheduler.decrease_running_task_resources

        def decrease(task_id, amounts):
            original(task_id, amounts)
            seen.update(scheduler.get_running_task_resources(task_id)["resources"])
        scheduler.decrease_running_task_resources = decrease
        result = self.build(Reporter(), workers=2, scheduler=scheduler)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        task_id = Reporter().task_id
        self.assertEqual(scheduler.get_task_status_message(task_id)["statusMessage"],
                         "half way")
        self.assertEqual(
            scheduler.get_task_progress_percentage(task_id)["progressPercentage"], 50)
        self.assertEqual(scheduler.task_list("DONE", "")[task_id]["tracking_url"],
                         "http://example.invalid/job/1")
        self.assertEqual(seen, {"db": 1})

    def test_mock_targets_are_shared_between_processes(self):
        class Write(mf.Task):
            def output(self):
                return mf.MockTarget("shared/written")

            def run(self):
                with self.output().open("w") as f:
                    f.write(f"from {os.getpid()}")

        class Read(mf.Task):
            def requires(self):
                return Write()

            def output(self):
                return mf.MockTarget("shared/read")

            def run(self):
                with self.output().open("w") as f:
                    f.write(self.input().open().read() + f" read by {os.getpid()}")

        class Dynamic(mf.Task):
            def output(self):
                return mf.MockTarget("shared/dynamic")

            def run(self):
                parts = yield [Write(), Read()]
                with self.output().open("w") as f:
                    f.write(parts[1].open().read())
        # A fresh process per task: the writer, the reader and the dynamic task each
        # run in a process of their own.
        result = self.build(Dynamic(), workers=2,
                            worker_options={"process_per_task": True})
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, self.logged)
        data = mf.MockFileSystem().get_all_data()
        writer, reader = data["shared/read"].decode().split(" read by ")
        self.assertNotEqual(writer.split()[-1], reader)
        self.assertNotIn(str(os.getpid()), (writer.split()[-1], reader))
        self.assertEqual(data["shared/dynamic"], data["shared/read"])

    def test_mock_targets_reach_every_pool_process_forked_or_spawned(self):
        # Two chains run side by side in a pool of two reused processes; the join
        # reads both, whichever process wrote them. A spawned pool also starts from
        # what the parent wrote before the build (the seed).
        for method in ("fork", "spawn"):
            with self.subTest(start_method=method):
                mf.MockFileSystem().clear()
                with mf.MockTarget("links/seed").open("w") as f:
                    f.write("seed")
                result = self.build(MockJoin(), workers=2,
                                    worker_options={"start_method": method})
                self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, self.logged)
                self.assertEqual(mf.MockTarget("links/joined").open().read(),
                                 "seed a0 a1 a2 | seed b0 b1 b2")

    def test_the_pool_forks_alone_and_starts_from_a_fork_server_beside_a_thread(self):
        # A fork beside a live thread can hang the child on a lock that thread held
        # (Python 3.12+ warns of it). Alone: fork. Beside a thread: a fork server
        # (unittest's main module is not run again in its children); the MockTarget
        # written before the build reaches them, and theirs come back.
        mf.MockFileSystem().clear()
        with mf.MockTarget("links/seed").open("w") as f:
            f.write("seed")
        alone = subprocess.run(   # a fresh process: no other thread
            [sys.executable, "-c", "import microflow; print(microflow._default_start_method"
             "())"], cwd=HERE, capture_output=True, text=True, timeout=60)
        self.assertEqual((alone.stdout.strip(), alone.stderr), ("fork", ""))
        stop = threading.Event()
        waiting = threading.Thread(target=stop.wait, name="caller's thread", daemon=True)
        waiting.start()
        self.addCleanup(stop.set)
        with no_fork_beside_threads(self):
            result = self.build(MockJoin(), workers=2)
        self.assertEqual(result.worker._runner._method, "forkserver")
        self.assertIn("other threads run in this process (caller's thread", self.logged)
        self.assertIn("start from a fork server", self.logged)
        self.assertEqual(mf.MockTarget("links/joined").open().read(),
                         "seed a0 a1 a2 | seed b0 b1 b2")

    def test_a_task_that_cannot_see_what_it_yielded_fails_instead_of_spinning(self):
        made = set()   # one process's memory: a forked child's copy is its own

        class InMemory(mf.Task):
            def complete(self):
                return "made" in made

            def run(self):
                made.add("made")

        class Yields(mf.Task):
            def complete(self):
                return False

            def run(self):
                yield InMemory()
        result = self.build(Yields(), workers=2,
                            worker_options={"process_per_task": True})
        self.assertEqual(result.tasks["failed"], [Yields()])
        self.assertIn("yielded InMemory() again although they are complete here",
                      result.errors[Yields()])

    def test_process_per_task_gives_each_task_a_fresh_process(self):
        result = self.build(PidRoot(str(self.tmp)), workers=2,
                            worker_options={"process_per_task": True})
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        pids = {read(PidTask(n, str(self.tmp)).output()) for n in range(4)}
        self.assertEqual(len(pids), 4)

    def test_spawn_refuses_local_classes_up_front_and_runs_module_ones(self):
        ran = []

        class Local(mf.Task):
            def complete(self):
                return bool(ran)

            def run(self):
                ran.append(1)
        with self.assertRaisesRegex(mf.ConfigError, r"start_method = spawn: task class "
                                    r".*Local .*cannot be rebuilt in a child process"):
            mf.build([Local()], workers=2, worker_options={"start_method": "spawn"})
        self.assertEqual(ran, [])
        result = self.build(PidRoot(str(self.tmp)), workers=2,
                            worker_options={"start_method": "spawn"})
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, self.logged)

    def test_threads_mode_and_a_given_executor(self):
        import concurrent.futures
        log = EventLog(self.tmp / "events")

        class InThread(mf.Task):
            n = mf.IntParameter()

            def output(self):
                return mf.MockTarget(f"thread{self.n}")

            def run(self):
                self.set_status_message("in a thread")
                log.write("ran", threading.current_thread().name)
                with self.output().open("w") as f:
                    f.write("x")
        scheduler = mf.Scheduler()
        result = self.build(*[InThread(n) for n in range(4)], workers=2,
                            scheduler=scheduler, worker_options={"mode": "threads"})
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        self.assertEqual({pid for pid in log.pids()}, {str(os.getpid())})
        self.assertTrue(all(name.startswith("microflow-task") for _, name in log.read()))
        self.assertEqual(scheduler.get_task_status_message(
            InThread(0).task_id)["statusMessage"], "in a thread")
        with concurrent.futures.ProcessPoolExecutor(2) as executor:
            scheduler = mf.Scheduler()
            result = self.build(PidRoot(str(self.tmp / "exec")), workers=2,
                                executor=executor, scheduler=scheduler)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, self.logged)
        message = scheduler.get_task_status_message(PidTask(0, str(self.tmp / "exec")).task_id)
        self.assertTrue(message["statusMessage"].startswith("in "))
        with self.assertRaisesRegex(mf.ConfigError, "mode must be processes or threads"):
            mf.Worker(mode="fibres")

    def test_parallel_completeness_checks_equal_sequential(self):
        calls = []
        lock = threading.Lock()

        class Checked(mf.Task):
            n = mf.IntParameter()

            def complete(self):
                with lock:
                    calls.append(self.n)
                return self.n % 3 == 0

            def requires(self):
                return [Checked(self.n * 2 + 1), Checked(self.n * 2 + 2)] \
                    if self.n < 20 else []

        def walk(check_workers):
            calls.clear()
            scheduler = mf.Scheduler()
            with mf.Worker(scheduler, check_workers=check_workers) as worker:
                worker.add(Checked(1))
            listing = scheduler.graph()
            return sorted(calls), {task_id: (info["status"], sorted(info["deps"]))
                                   for task_id, info in listing.items()}
        sequential = walk(0)
        parallel = walk(8)
        self.assertEqual(parallel, sequential)
        self.assertEqual(len(sequential[0]), len(set(sequential[0])))   # once per task
        with mf.config_override({"core": {"parallel_scheduling": "true"}}):
            self.assertEqual(mf._check_workers(0, mf.core()), 8)
            self.assertEqual(mf.interface.core().parallel_scheduling, True)
        self.assertEqual(mf._check_workers(0, mf.core(parallel_scheduling=True,
                                                      parallel_scheduling_processes=3)), 3)
        self.assertEqual(mf._check_workers(0, mf.core()), 0)

    def test_a_script_that_builds_under_its_main_guard_gets_a_fork_server(self):
        # A fork server's children run the main script again (as __mp_main__): a build
        # under `if __name__ == "__main__":` is skipped there, so it is safe, and task
        # classes of the script are found; a build at the top level would run again,
        # so there it would still fork (and say why).
        script = textwrap.dedent("""
            import sys, threading
            import microflow

            class Leaf(microflow.Task):
                n = microflow.IntParameter()
                def output(self):
                    return microflow.MockTarget("leaf%d" % self.n)
                def run(self):
                    self.output().open("w").close()

            class Root(microflow.WrapperTask):
                def requires(self):
                    return [Leaf(n) for n in range(4)]

            def build():
                threading.Thread(target=threading.Event().wait, daemon=True).start()
                result = microflow.build([Root()], workers=2, detailed_summary=True)
                print(result.worker._runner._method, result.status.name)

            def choose():   # what build() would choose (without forking beside it)
                threading.Thread(target=threading.Event().wait, daemon=True).start()
                print(microflow._default_start_method([Root()]), "unbuilt")
            {call}
            """)
        runs = {}
        for name, call in (("guarded", "if __name__ == '__main__':\n    build()"),
                           ("top_level", "choose()")):
            (self.tmp / f"{name}.py").write_text(script.format(call=call))
            runs[name] = subprocess.run(
                [sys.executable, "-W", "always::DeprecationWarning", f"{name}.py"],
                cwd=self.tmp, env=dict(os.environ, PYTHONPATH=str(HERE)), text=True,
                capture_output=True, timeout=120)
        guarded, top_level = runs["guarded"], runs["top_level"]
        self.assertEqual(guarded.stdout, "forkserver SUCCESS\n", guarded.stderr)
        self.assertNotIn("multi-threaded", guarded.stderr)
        self.assertIn("worker processes start from a fork server", guarded.stderr)
        self.assertEqual(top_level.stdout, "fork unbuilt\n", top_level.stderr)
        self.assertIn("does not build under if __name__ == '__main__'", top_level.stderr)

    def test_build_from_a_thread_with_worker_processes(self):
        results = []
        thread = threading.Thread(target=lambda: results.append(
            mf.build([PidRoot(str(self.tmp))], workers=2, detailed_summary=True)))
        with self.assertLogs("microflow", "INFO") as logs, no_fork_beside_threads(self):
            thread.start()
            thread.join(60)
        self.assertEqual(results[0].status, mf.LuigiStatusCode.SUCCESS)
        self.assertIn("worker processes start from a fork server", "".join(logs.output))


###########################################################################################
# Central scheduler over HTTP (real servers on 127.0.0.1, real worker processes)
###########################################################################################

SHARED_MODULE = """
import os
import microflow

LOG = os.environ["MICROFLOW_TEST_LOG"]

class Part(microflow.Task):
    n = microflow.IntParameter()

    def output(self):
        return microflow.LocalTarget(os.path.join(os.path.dirname(LOG), f"part{self.n}"))

    def run(self):
        import time
        time.sleep(float(os.environ.get("MICROFLOW_TEST_SLOW", "0")))
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{self.n} {os.getpid()}\\n".encode())
        os.close(fd)
        with self.output().open("w") as f:
            f.write("x")

class Whole(microflow.WrapperTask):
    start = microflow.IntParameter()

    def requires(self):
        return [Part(n) for n in range(self.start, self.start + 12)]
"""


TAKEOVER_MODULE = """
import os, time
import microflow

class Slow(microflow.Task):
    def output(self):
        return microflow.LocalTarget("slow.txt")

    def run(self):
        if not os.path.exists("first-attempt"):      # the worker that will be killed
            with open("first-attempt.tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename("first-attempt.tmp", "first-attempt")
            time.sleep(60)
        with self.output().open("w") as f:
            f.write("finished")

class Root(microflow.Task):
    def requires(self):
        return Slow()

    def output(self):
        return microflow.LocalTarget("root.txt")

    def run(self):
        with self.output().open("w") as f:
            f.write("ok")
"""


def drain(stream):
    """Read ``stream`` to its end, then close it."""
    with stream:
        for _ in stream:
            pass


def sigint_as_a_terminal_sends_it():
    """For a child the tests interrupt: SIGINT at its default, so Python turns it into
    KeyboardInterrupt even when these tests run where it is ignored (a shell's
    background job, nohup), which a child would otherwise inherit."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_server_process(*args, env=None, port="0", command=("-m", "microflow", "--server")):
    """``python -m microflow --server --port PORT ...`` (or another ``command``) in a
    subprocess; returns it and the URL it reports listening on."""
    import time
    process = subprocess.Popen([sys.executable, *command, "--port", port, *args], cwd=HERE,
                               env=env, text=True, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL,
                               preexec_fn=sigint_as_a_terminal_sends_it)
    deadline = time.monotonic() + 30
    for line in process.stderr:
        if "listening on " in line:
            # Keep reading what it logs (a full pipe would stop it), until it ends.
            threading.Thread(target=drain, args=(process.stderr,), daemon=True).start()
            return process, line.split("listening on ")[1].strip()
        if time.monotonic() > deadline:
            break
    process.kill()
    raise AssertionError("the scheduler server did not start")


class Counted(mf.Task):
    """Appends its number to ``folder``/runs.log when it runs: a run is counted."""
    n = mf.IntParameter()
    folder = mf.Parameter()

    def output(self):
        return mf.LocalTarget(os.path.join(self.folder, f"counted{self.n}"))

    def run(self):
        with open(os.path.join(self.folder, "runs.log"), "a") as log:
            log.write(f"{self.n}\n")
        self.output().open("w").close()


class CountedAll(mf.WrapperTask):
    folder = mf.Parameter()

    def requires(self):
        return [Counted(n, self.folder) for n in range(6)]


def free_port():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestCentralScheduler(TempDirMixin, unittest.TestCase):
    def test_luigid_command(self):
        import signal
        pidfile, state = self.tmp / "luigid.pid", self.tmp / "state.json"
        process, url = start_server_process(
            "--pidfile", str(pidfile), "--state-path", str(state),
            command=("-c", "import sys, microflow; microflow.cmdline.luigid(sys.argv[1:])"))
        client = mf.RemoteScheduler(url, attempts=1)
        client.add_task(worker="w", task_id="T", status=mf.PENDING)
        self.assertEqual(list(client.task_list(mf.PENDING, "")), ["T"])
        client.close()
        self.assertEqual(pidfile.read_text().strip(), str(process.pid))
        process.send_signal(signal.SIGINT)
        self.assertEqual(process.wait(30), 0)
        self.assertIn('"T"', state.read_text())          # --state-path was used
        with self.assertRaisesRegex(mf.UsageError, "does not daemonize"):
            mf.cmdline.luigid(["--background"])

    def test_a_firing_skips_while_another_host_builds_the_same(self):
        (self.tmp / "hostjob.py").write_text(
            "import microflow\nclass Job(microflow.Task):\n"
            "    def complete(self):\n        return False\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]))
        server, url = start_server_process(env=env)
        self.addCleanup(server.wait)
        self.addCleanup(server.terminate)
        other_host = mf.RemoteScheduler(url, attempts=1)
        job = mf.task_id_str("Job", {})
        other_host.add_task(worker="host-b", task_id=job, family="Job")
        self.assertEqual(other_host.get_work(worker="host-b")["task_id"], job)   # running
        done = subprocess.run([sys.executable, "-m", "microflow", "--module", "hostjob",
                               "Job", "--scheduler-url", url, "--every", "1s",
                               "--max-runs", "1", "--no-lock"], cwd=self.tmp, env=env,
                              capture_output=True, text=True, timeout=60)
        other_host.close()
        self.assertEqual(done.returncode, 10, done.stderr)
        self.assertIn(f"skipped: Job() is being built elsewhere (running now: {job})",
                      done.stderr)

    def test_workers_on_overlapping_graphs_run_each_task_once(self):
        (self.tmp / "shared_tasks.py").write_text(SHARED_MODULE)
        config = self.tmp / "worker.cfg"
        config.write_text("[worker]\nkeep_alive = true\nwait_interval = 0.05\n"
                          "ping_interval = 0.2\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]),
                   MICROFLOW_TEST_LOG=str(self.tmp / "runs.log"),
                   MICROFLOW_CONFIG_PATH=str(config))
        server, url = start_server_process(env=env)
        self.addCleanup(server.wait)
        self.addCleanup(server.terminate)
        workers = [subprocess.Popen(
            [sys.executable, "-m", "microflow", "--module", "shared_tasks", "Whole",
             "--start", str(start), "--workers", "2", "--scheduler-url", url,
             "--no-lock"],   # the same command twice at once, on purpose
            cwd=self.tmp, env=env, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE) for start in (0, 4, 8, 0)]   # overlapping ranges
        outputs = [worker.communicate(timeout=120) for worker in workers]
        for worker, (_, stderr) in zip(workers, outputs):
            # 10: its root was being run by the other worker that asked for it (the
            # summary says so, as Luigi's does); any other code is a failure.
            self.assertIn(worker.returncode, (0, 10), stderr[-3000:])
            if worker.returncode == 10:
                self.assertIn("were being run by another worker", stderr)
        runs = (self.tmp / "runs.log").read_text().split()[::2]
        self.assertEqual(sorted(runs, key=int), [str(n) for n in range(20)])   # once each
        pids = set((self.tmp / "runs.log").read_text().split()[1::2])
        self.assertGreater(len(pids), 2)   # the work was shared out
        server.terminate()
        self.assertEqual(server.wait(30), 0)

    def test_a_killed_worker_s_task_is_finished_by_another(self):
        import signal
        import time
        (self.tmp / "takeover.py").write_text(TAKEOVER_MODULE)
        config = self.tmp / "takeover.cfg"
        config.write_text("[scheduler]\nworker_disconnect_delay = 1\nretry_delay = 0\n"
                          "[worker]\nkeep_alive = true\nwait_interval = 0.1\n"
                          "ping_interval = 0.2\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]),
                   MICROFLOW_CONFIG_PATH=str(config))
        server, url = start_server_process(env=env)
        self.addCleanup(server.wait)
        self.addCleanup(server.terminate)
        command = [sys.executable, "-m", "microflow", "--module", "takeover", "Root",
                   "--workers", "2", "--scheduler-url", url, "--no-lock"]   # both at once
        first = subprocess.Popen(command, cwd=self.tmp, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        marker = self.tmp / "first-attempt"
        deadline = time.monotonic() + 30
        while not marker.exists():
            self.assertLess(time.monotonic(), deadline, "the first attempt did not start")
            time.sleep(0.02)
        child = int(marker.read_text())
        second = subprocess.Popen(command, cwd=self.tmp, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)    # the second worker has reported the graph and waits
        first.send_signal(signal.SIGKILL)
        first.wait()
        self.assertTrue(wait_until_gone(child))   # its pool process died with it
        _, stderr = second.communicate(timeout=60)
        self.assertEqual(second.returncode, 0, stderr[-3000:])
        self.assertEqual((self.tmp / "slow.txt").read_text(), "finished")
        self.assertEqual((self.tmp / "root.txt").read_text(), "ok")

    def test_state_survives_kill_9_of_the_server_and_the_run_completes(self):
        import signal
        import time
        (self.tmp / "shared_tasks.py").write_text(SHARED_MODULE)
        config = self.tmp / "patient.cfg"
        config.write_text("[core]\nrpc-retry-attempts = 100\nrpc-retry-wait = 0.05\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]),
                   MICROFLOW_TEST_LOG=str(self.tmp / "runs.log"),
                   MICROFLOW_CONFIG_PATH=str(config), MICROFLOW_TEST_SLOW="0.05")
        port, state = str(free_port()), str(self.tmp / "state.json")   # the same twice
        server, url = start_server_process("--state-path", state, env=env, port=port)
        worker = subprocess.Popen(
            [sys.executable, "-m", "microflow", "--module", "shared_tasks", "Whole",
             "--start", "0", "--scheduler-url", url], cwd=self.tmp, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(self.runs()) < 4:    # a third of the way through
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)
        server.wait()
        done_before = set(self.runs())
        restarted, _ = start_server_process("--state-path", state, env=env, port=port)
        self.addCleanup(restarted.wait)
        self.addCleanup(restarted.terminate)
        _, stderr = worker.communicate(timeout=120)
        self.assertEqual(worker.returncode, 0, stderr[-3000:])
        client = mf.RemoteScheduler(url, attempts=1)
        self.addCleanup(client.close)
        done = client.task_list("DONE", "")
        self.assertEqual(len(done), 13)                  # every Part and the Whole
        self.assertEqual(sorted(self.runs(), key=int), [str(n) for n in range(12)])
        self.assertTrue(done_before <= set(self.runs()))

    def test_a_batch_whose_reply_is_lost_is_sent_again_and_nothing_runs_twice(self):
        # The server journals a batch and is killed before its reply reaches the
        # worker: first the walked graph with the first get_work, then a result with
        # the next get_work. The worker sends each again to the restarted server (same
        # port, same state file), and every task runs once.
        import signal
        port, state = str(free_port()), str(self.tmp / "state.json")
        env = dict(os.environ, PYTHONPATH=str(HERE))
        server = [start_server_process("--state-path", state, env=env, port=port)[0]]
        self.addCleanup(lambda: (server[0].kill(), server[0].wait()))
        lost, original = [], mf._Wire.exchange

        def exchange(wire, request):
            status, body = original(wire, request)   # the server has journaled it
            if request.startswith(b"POST /api/batch") and b"get_work" in request \
                    and len(lost) < 2:
                lost.append(request.count(b"add_task"))
                server[0].send_signal(signal.SIGKILL)
                server[0].wait()
                raise OSError("the reply was lost with the server")
            return status, body

        def restart(seconds):   # the client's wait before it tries again
            server[0] = start_server_process("--state-path", state, env=env, port=port)[0]
        client = mf.RemoteScheduler(f"http://127.0.0.1:{port}", attempts=3, sleep=restart)
        self.addCleanup(client.close)
        with unittest.mock.patch.object(mf._Wire, "exchange", exchange), \
                self.assertLogs("microflow", "INFO") as logs:
            result = mf.build([CountedAll(str(self.tmp))], scheduler=client,
                              detailed_summary=True)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, logs.output)
        self.assertEqual(len(lost), 2)
        self.assertGreaterEqual(lost[0], 7)   # the whole graph was in the first
        self.assertEqual(sorted((self.tmp / "runs.log").read_text().split(), key=int),
                         [str(n) for n in range(6)])

    def runs(self):
        log = self.tmp / "runs.log"
        return log.read_text().split()[::2] if log.exists() else []

    def test_journal_damage_is_reported_and_skipped_and_compaction_keeps_everything(self):
        path = str(self.tmp / "state.json")
        with mf.SchedulerServer(port=0, state_path=path) as server:
            server._state.compact_every = 5      # fold the journal often
            client = mf.RemoteScheduler(server.url, attempts=1, batch=False)
            self.addCleanup(client.close)
            for n in range(12):
                client.add_task(task_id=f"t{n}", worker="w")
                self.assertEqual(client.get_work(worker="w")["task_id"], f"t{n}")
                client.add_task(task_id=f"t{n}", worker="w",
                                status=mf.FAILED if n % 3 == 0 else mf.DONE)
            client.add_task(task_id="t1", worker="w", status=mf.DISABLED)
            expected = {k: v["status"] for k, v in server.scheduler.task_list().items()}
            # A crash: the files as they are now, then a torn last write.
            shutil.copy(path, path + ".copy")
            shutil.copy(path + ".journal", path + ".copy.journal")
        with open(path + ".copy.journal", "a") as f:
            f.write('{"seq": 999, "tasks": [{"id": "t0", "sta')
        with self.assertLogs("microflow", "WARNING") as logs:
            restarted = mf.SchedulerServer(port=0, state_path=path + ".copy")
        restarted.stop()
        self.assertIn("is damaged", "\n".join(logs.output))
        restored = {k: v["status"] for k, v in restarted.scheduler.task_list().items()}
        self.assertEqual(restored, expected)
        self.assertIn(mf.DISABLED, restored.values())
        self.assertIn(mf.FAILED, restored.values())
        with open(path) as f:   # the clean stop folded everything into a snapshot
            snapshot = json.load(f)
        self.assertEqual(snapshot["version"], 1)
        self.assertEqual(len(snapshot["tasks"]), 12)

    def test_build_sends_the_token_from_the_environment(self):
        scheduler = mf.Scheduler(prune_on_get_work=True)
        with mf.SchedulerServer(scheduler, port=0, token="t0ken") as server:
            with unittest.mock.patch.dict(os.environ, {"MICROFLOW_SCHEDULER_TOKEN": "t0ken"}):
                with self.assertLogs("microflow", "INFO"):
                    result = mf.build([PidRoot(str(self.tmp))], scheduler_url=server.url,
                                      detailed_summary=True)
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        self.assertEqual(len(scheduler.task_list("DONE", "")), 5)

    def test_reports_travel_in_batches_where_the_server_offers_them(self):
        requests = []
        scheduler = mf.Scheduler()
        with mf.SchedulerServer(scheduler, port=0) as server:
            original = server.call
            server.call = lambda method, params, credentials=None: (
                requests.append(method) or original(method, params, credentials))
            client = mf.RemoteScheduler(server.url, attempts=1)
            self.addCleanup(client.close)
            for n in range(5):
                self.assertIsNone(client.add_task(task_id=f"t{n}", worker="w"))
            self.assertEqual(requests, [])                     # held back
            self.assertEqual(client.get_work(worker="w")["task_id"], "t0")
            self.assertEqual(requests, ["batch"])              # one request for six calls
            client.add_task(task_id="bad", worker="w", deps="not a list")
            with self.assertRaisesRegex(mf.SchedulerError, "add_task \\(in a batch\\): HTTP "
                                                           "400.*'deps' must be list"):
                client.flush()
        self.assertEqual(len(scheduler.task_list("", "")), 5)

    def test_tasks_waiting_behind_a_slow_one_are_given_back(self):
        with mf.SchedulerServer(port=0) as server, \
                unittest.mock.patch.object(mf, "_QUICK_TASK", 3600.0):
            client = mf.RemoteScheduler(server.url, attempts=1)
            self.addCleanup(client.close)
            for n in range(10):
                client.add_task(task_id=f"T{n}", worker="w1")
            session = mf._Session(client, "w1", [("host", "here")])
            now = [0.0]
            session._clock = lambda: now[0]
            handed = []
            for _ in range(4):   # 1, then 2 (one from the queue), then 1 + 5 ahead
                handed.append(session.get_work(handed, 1)["task_id"])
                now[0] += 0.001
            self.assertEqual(len(session._ahead), 5)
            now[0] += 60   # the fourth task took a minute: the five are given back
            handed.append(session.get_work(handed, 1)["task_id"])
            statuses = {task_id: task["status"] for task_id, task in
                        server.scheduler.task_list("", "").items()}
        self.assertEqual(len(set(handed)), 5)
        self.assertEqual({statuses[task_id] for task_id in handed}, {mf.RUNNING})
        self.assertEqual(collections.Counter(statuses.values()),
                         {mf.RUNNING: 5, mf.PENDING: 5})
        self.assertEqual((list(session._ahead), session._ask_ahead), ([], 0))

    def test_quick_tasks_come_ahead_even_when_round_trips_are_slow(self):
        with mf.SchedulerServer(port=0) as server:
            client = mf.RemoteScheduler(server.url, attempts=1)
            self.addCleanup(client.close)
            for n in range(40):
                client.add_task(task_id=f"T{n:02}", worker="w1")
            session = mf._Session(client, "w1", [("host", "here")])
            now, asked = [0.0], []
            session._clock = lambda: now[0]
            get_work = client.get_work

            def slow_get_work(**arguments):   # a busy machine: 50 ms a round trip
                asked.append(arguments["prefetch"])
                now[0] += 0.05
                return get_work(**arguments)
            client.get_work = slow_get_work
            handed = []
            while len(handed) < 28:
                handed.append(session.get_work(handed, 1)["task_id"])
                now[0] += 0.001   # each task takes a millisecond
        self.assertEqual(asked, [0, 1, 5, 21])   # the round trips are not the tasks' time
        self.assertEqual(len(set(handed)), 28)

    def test_the_server_reads_luigis_form_and_a_json_body(self):
        scheduler = mf.Scheduler()
        with mf.SchedulerServer(scheduler, port=0) as server:
            form = raw_request(server.url, "POST", "/api/add_task", {
                "Content-Type": "application/x-www-form-urlencoded"},
                b"data=" + urllib.parse.quote(json.dumps(
                    {"task_id": "A=1", "worker": "w"})).encode())
            as_json = raw_request(server.url, "POST", "/api/add_task", {
                "Content-Type": "application/json"},
                json.dumps({"task_id": "B&2", "worker": "w"}).encode())
            broken = raw_request(server.url, "POST", "/api/add_task", {
                "Content-Type": "application/json"}, b"data=%7B%7D")
            ahead = raw_request(server.url, "POST", "/api/get_work", {
                "Content-Type": "application/json"}, b'{"worker": "w", "prefetch": "9"}')
            back = raw_request(server.url, "POST", "/api/release_tasks", {
                "Content-Type": "application/json"}, b'{"worker": "w", "task_ids": "A=1"}')
        self.assertEqual((form, as_json), ((200, ""), (200, "")))
        self.assertEqual(broken[0], 400)
        self.assertEqual(ahead, (400, "get_work: field 'prefetch' must be int, got str"))
        self.assertEqual(back, (400, "release_tasks: field 'task_ids' must be list, got str"))
        self.assertEqual(set(scheduler.task_list("", "")), {"A=1", "B&2"})

    def test_quick_tasks_come_several_a_request_and_each_runs_once(self):
        runs = AheadLeaf.runs = []
        get_works = []
        with mf.SchedulerServer(port=0) as server, \
                unittest.mock.patch.object(mf, "_QUICK_TASK", 3600.0):  # all are quick
            original = server.call

            def call(method, params, credentials=None):
                calls = params["calls"] if method == "batch" else [[method, params]]
                get_works.extend(p.get("prefetch") for m, p in calls if m == "get_work")
                return original(method, params, credentials)
            server.call = call
            with self.assertLogs("microflow", "INFO"):
                ok = mf.build([AheadRoot(tag="many", count=200)], scheduler_url=server.url)
            done = server.scheduler.task_list("DONE", "")
        self.assertTrue(ok)
        self.assertEqual(sorted(runs), list(range(200)))   # each once
        self.assertEqual(len(done), 201)
        self.assertLess(len(get_works), 20)                # not one request a task
        self.assertEqual(get_works[:4], [0, 1, 5, 21])

    def test_tasks_handed_out_ahead_go_back_when_the_run_stops_asking(self):
        # The fourth task says stop asking (as SIGUSR1 from --take-lock does): the
        # five handed to this worker with it and not started are given back.
        runs = AheadLeaf.runs = []
        AheadLeaf.stop_after = 4
        self.addCleanup(setattr, AheadLeaf, "stop_after", None)
        self.addCleanup(mf._STOP_ASKING.clear)
        with mf.SchedulerServer(port=0) as server, \
                unittest.mock.patch.object(mf, "_QUICK_TASK", 3600.0):
            with self.assertLogs("microflow", "INFO"):
                mf.build([AheadRoot(tag="stop", count=10)], scheduler_url=server.url)
            statuses = collections.Counter(
                task["status"] for task in server.scheduler.task_list("", "").values())
            self.assertEqual(statuses, {mf.DONE: 4, mf.PENDING: 7})
            mf._STOP_ASKING.clear()
            with self.assertLogs("microflow", "INFO"):
                self.assertTrue(mf.build([AheadRoot(tag="stop", count=10)],
                                         scheduler_url=server.url))
        self.assertEqual(sorted(runs), list(range(10)))    # the rest, each once

    def test_build_through_a_server_in_this_process(self):
        scheduler = mf.Scheduler(prune_on_get_work=True)
        with mf.SchedulerServer(scheduler, port=0) as server:
            with self.assertLogs("microflow", "INFO") as logs, no_fork_beside_threads(self):
                result = mf.build([PidRoot(str(self.tmp))], workers=2,
                                  scheduler_url=server.url, detailed_summary=True)
        self.assertIsNone(result.worker._session._heartbeat)   # the loop pings
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, logs.output)
        task_id = PidTask(0, str(self.tmp)).task_id
        self.assertEqual(scheduler.task_list("DONE", "")[task_id]["status"], mf.DONE)
        self.assertTrue(scheduler.get_task_status_message(task_id)["statusMessage"]
                        .startswith("in "))
        self.assertTrue(any("arrived" in line for line in logs.output))

    @unittest.skipUnless(shutil.which("openssl"), "needs the openssl command for a "
                                                  "certificate")
    def test_the_client_speaks_https_to_a_tls_front_and_checks_its_certificate(self):
        # A central scheduler behind TLS (here the server's own socket, wrapped): the
        # client verifies the certificate against the system's CAs ($SSL_CERT_FILE).
        import ssl
        key, cert = self.tmp / "key.pem", self.tmp / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                       check=True, capture_output=True, timeout=60)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        with mf.SchedulerServer(port=0) as server:
            server._httpd.socket = context.wrap_socket(server._httpd.socket,
                                                       server_side=True)
            url = f"https://localhost:{server._httpd.server_address[1]}"
            with unittest.mock.patch.dict(os.environ, {"SSL_CERT_FILE": str(cert)}):
                client = mf.RemoteScheduler(url, attempts=1)
                self.addCleanup(client.close)
                client.add_task(task_id="T_1", worker="w", family="T")
                self.assertEqual(client.get_work(worker="w")["task_id"], "T_1")
            stranger = mf.RemoteScheduler(url, attempts=1)   # the system's CAs only
            self.addCleanup(stranger.close)
            with self.assertRaisesRegex(mf.SchedulerUnavailable, "CERTIFICATE_VERIFY"):
                stranger.is_paused()

    def test_token_is_needed_for_changes_and_never_echoed(self):
        with mf.SchedulerServer(port=0, token="s3cret") as server:
            anonymous = mf.RemoteScheduler(server.url, attempts=1, batch=False)
            self.addCleanup(anonymous.close)
            with self.assertRaisesRegex(mf.SchedulerError, "401.*needs a token") as caught:
                anonymous.add_task(task_id="t", worker="w")
            self.assertNotIn("s3cret", str(caught.exception))
            self.assertEqual(anonymous.task_list(), {})            # reads are open
            wrong = mf.RemoteScheduler(server.url, token="guess", attempts=1)
            self.addCleanup(wrong.close)
            wrong.add_task(task_id="t", worker="w")   # held back: refused when sent
            with self.assertRaisesRegex(mf.SchedulerError,
                                        "401.*the token given is not its token"):
                wrong.flush()
            bearer = mf.RemoteScheduler(server.url, token="s3cret", attempts=1)
            self.addCleanup(bearer.close)
            bearer.add_task(task_id="t", worker="w")
            bearer.flush()
            basic = mf.RemoteScheduler(server.url.replace("http://", "http://luigi:s3cret@"),
                                       attempts=1)   # how unmodified Luigi clients send it
            self.addCleanup(basic.close)
            self.assertEqual(basic.get_work(worker="w")["task_id"], "t")
        with mf.SchedulerServer(port=0, token="s3cret", protect_reads=True) as server:
            anonymous = mf.RemoteScheduler(server.url, attempts=1)
            self.addCleanup(anonymous.close)
            with self.assertRaisesRegex(mf.SchedulerError, "401"):
                anonymous.task_list()

    def test_a_scheduler_briefly_away_is_said_at_each_retry(self):
        port = free_port()
        client = mf.RemoteScheduler(f"http://127.0.0.1:{port}", attempts=3, retry_wait=0.5,
                                    sleep=lambda seconds: None)
        self.addCleanup(client.close)
        with self.assertLogs("microflow", "WARNING") as logs, \
                self.assertRaisesRegex(mf.SchedulerUnavailable, "after 3 attempt"):
            client.task_list()
        self.assertEqual([line.split("(attempt ")[1].split(":")[0] for line in logs.output],
                         ["1 of 3", "2 of 3"])
        self.assertIn("trying again in 0.5 s", logs.output[0])
        self.assertIn("trying again in 1 s", logs.output[1])

    def test_a_server_on_ipv6_loopback_is_reached_by_its_url(self):
        import socket
        try:
            socket.create_server(("::1", 0), family=socket.AF_INET6).close()
        except OSError as exc:
            self.skipTest(f"this machine has no IPv6 loopback: {exc}")
        with mf.SchedulerServer(address="::1", port=0) as server:
            self.assertEqual(server.url, f"http://[::1]:{server.port}")
            client = mf.RemoteScheduler(server.url, attempts=1)
            self.addCleanup(client.close)
            client.add_task(task_id="T_1", worker="w", family="T")
            self.assertEqual(client.get_work(worker="w")["task_id"], "T_1")

    def test_server_start_up_errors_name_the_port_and_the_path(self):
        import socket
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = dict(os.environ, PYTHONPATH=str(HERE))
        port = str(taken.getsockname()[1])
        done = subprocess.run([sys.executable, "-m", "microflow", "--server", "--port", port],
                              capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(done.returncode, 2)
        self.assertIn(f"cannot serve on 127.0.0.1:{port}: Address already in use (is a "
                      f"scheduler already running there?", done.stderr)
        missing = self.tmp / "no-such-folder" / "state.json"
        done = subprocess.run([sys.executable, "-m", "microflow", "--server", "--port", "0",
                               "--state-path", str(missing)],
                              capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(done.returncode, 2)
        self.assertIn(f"the folder {missing.parent} does not exist", done.stderr)

    def test_malformed_and_random_requests_get_json_errors_and_no_crash(self):
        import http.client
        import random
        import urllib.parse
        rng = random.Random(20261201)
        methods = list(mf._RPC_METHODS) + ["nope", "", "../etc", "add_task/x", "_dispatch"]
        values = [None, True, 3, -1.5, "x", "", [], ["a", 1], {}, {"a": [1, {"b": None}]},
                  "\u2603", 10 ** 30]
        fields = ["task_id", "worker", "status", "deps", "priority", "resources",
                  "params", "current_tasks", "info", "expl", "bogus", "new_deps",
                  "decrease_resources", "task_str", "include_done", "limit"]

        def random_body():
            kind = rng.randrange(6)
            if kind == 0:
                return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
            if kind == 1:
                return b"data=" + json.dumps({f: rng.choice(values) for f in
                                              rng.sample(fields, 3)}).encode()[:-1]
            if kind == 2:
                return b"data=" + urllib.parse.quote(json.dumps(rng.choice(values))).encode()
            if kind == 3:
                return json.dumps({"data": "{}"}).encode()
            params = {f: rng.choice(values) for f in rng.sample(fields, rng.randrange(5))}
            return urllib.parse.urlencode({"data": json.dumps(params)}).encode()
        scheduler = mf.Scheduler()
        with mf.SchedulerServer(scheduler, port=0) as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            self.addCleanup(connection.close)
            statuses = {}
            for _ in range(1000):
                method = rng.choice(methods)
                body = random_body()
                verb = rng.choice(["POST", "GET"])
                connection.request(verb, f"/api/{method}", body if verb == "POST" else None,
                                   {"Content-Type": "application/x-www-form-urlencoded"})
                response = connection.getresponse()
                reply = json.loads(response.read())   # always JSON
                self.assertIsInstance(reply, dict)
                self.assertTrue(response.status < 300 or 400 <= response.status < 500,
                                (method, body, response.status, reply))
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.getheader("Connection") == "close":
                    connection.close()
            self.assertGreater(statuses.get(200, 0), 0)
            self.assertGreater(statuses.get(400, 0) + statuses.get(404, 0), 500)
            client = mf.RemoteScheduler(server.url, attempts=1)   # still serving
            self.addCleanup(client.close)
            client.unpause()   # the random calls may have paused it
            client.add_task(task_id="after", worker="final")
            self.assertEqual(client.get_work(worker="final")["task_id"], "after")
            connection.request("POST", "/api/ping", b"x" * 10, {"Content-Length": "99999999999"})
            self.assertEqual(connection.getresponse().status, 413)

    def test_one_thread_serves_every_connection_and_none_waits_on_another(self):
        # One loop serves all connections: a client that sent half a request, one that
        # never reads its replies, and one that waits for "100 Continue" hold nobody up.
        import socket
        def request(path, body, extra=""):
            return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                    f"application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
                    ).encode() + body
        with mf.SchedulerServer(port=0) as server:
            def connect():
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                self.addCleanup(sock.close)
                return sock
            half, mute, patient = connect(), connect(), connect()
            a_done = request("/api/add_task", b'{"task_id": "A", "worker": "w", '
                                              b'"status": "DONE"}')
            half.sendall(a_done[:-20])
            page = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            mute.sendall(page * 3000)   # 70 MB of status page, unread
            c_body = b'{"task_id": "C", "worker": "w"}'
            patient.sendall(request("/api/add_task", c_body,
                                    "Expect: 100-continue\r\n")[:-len(c_body)])
            self.assertEqual(patient.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
            client = mf.RemoteScheduler(server.url, attempts=1)
            self.addCleanup(client.close)
            client.add_task(task_id="B", worker="w")   # served beside all three
            patient.sendall(c_body)
            self.assertIn(b"HTTP/1.1 200 OK", patient.recv(65536))
            ping = request("/api/ping", b'{"worker": "w"}')
            half.sendall(a_done[-20:] + ping + ping)   # the rest, then two more at once
            replies = b""
            while replies.count(b"HTTP/1.1 200 OK") < 3:   # three replies, in order
                replies += half.recv(65536)
            self.assertEqual(sorted(client.task_list()), ["A", "B", "C"])
            self.assertEqual(client.task_list(status="DONE").keys(), {"A"})
            self.assertTrue(mute.recv(65536).startswith(b"HTTP/1.1 200 OK"))
            unsent = [len(key.data.unsent) for key in server._httpd._selector.get_map()
                      .values() if key.data is not None]   # (the mute one's waits)
            self.assertLess(max(unsent), 30_000)   # one page: answered as replies leave
            last = connect()   # a client that says all it will, then reads
            last.sendall(ping)
            last.shutdown(socket.SHUT_WR)
            self.assertIn(b"HTTP/1.1 200 OK", last.recv(65536))
            self.assertEqual(last.recv(65536), b"")   # then closed

    def test_a_worker_whose_scheduler_is_gone_stops_with_a_clear_error(self):
        with mf.SchedulerServer(port=0) as server:
            url = server.url
        (self.tmp / "clitasks.py").write_text(CLI_MODULE)
        config = self.tmp / "rpc.cfg"
        config.write_text("[core]\nrpc-retry-attempts = 2\nrpc-retry-wait = 0.01\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]),
                   MICROFLOW_CONFIG_PATH=str(config))
        done = subprocess.run([sys.executable, "-m", "microflow", "--module", "clitasks",
                               "Greet", "--name", "x", "--scheduler-url", url],
                              cwd=self.tmp, env=env, capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(done.returncode, 40, done.stderr)
        self.assertIn(f"the scheduler at {url} did not answer get_work (sent with ",
                      done.stderr)
        self.assertIn("after 2 attempt(s)", done.stderr)
        self.assertNotIn("Traceback", done.stderr)


INTEROP_MODULE = """
import os
import luigi   # Luigi in Luigi's interpreter; microflow in ours (--as-luigi), installed or not

LOG = os.environ["MICROFLOW_TEST_LOG"]

class Leaf(luigi.Task):
    n = luigi.IntParameter()

    def output(self):
        return luigi.LocalTarget(f"leaf{self.n}.txt")

    def run(self):
        self.set_status_message("working")
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"Leaf{self.n} {luigi.__name__}\\n".encode())
        os.close(fd)
        with self.output().open("w") as f:
            f.write(str(self.n))

class Top(luigi.Task):
    first = luigi.IntParameter(default=0)

    def requires(self):
        return [Leaf(n) for n in range(self.first, self.first + 8)]

    def output(self):
        return luigi.LocalTarget(f"top{self.first}.txt")

    def run(self):
        with self.output().open("w") as f:
            f.write("ok")
"""

# A Python with Luigi 3.8.1 installed (.ci/run makes one in a scratch virtualenv);
# microflow itself never needs Luigi.
LUIGI_PYTHON = os.environ.get("MICROFLOW_LUIGI_PYTHON")


@unittest.skipUnless(LUIGI_PYTHON, "Luigi interop: set MICROFLOW_LUIGI_PYTHON to a Python "
                                   "with luigi==3.8.1 installed (.ci/run does)")
class TestLuigiInterop(TempDirMixin, unittest.TestCase):
    def setUp(self):
        super().setUp()
        (self.tmp / "itasks.py").write_text(INTEROP_MODULE)
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]),
                        MICROFLOW_TEST_LOG=str(self.tmp / "runs.log"))
        self.env.pop("LUIGI_CONFIG_PATH", None)

    def luigi_worker(self, url, *args):
        return subprocess.Popen([LUIGI_PYTHON, "-m", "luigi", "--module", "itasks", "Top",
                                 "--scheduler-url", url, *args], cwd=self.tmp, env=self.env,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def microflow_worker(self, url, *args):
        return subprocess.Popen([sys.executable, "-m", "microflow", "--as-luigi", "--module",
                                 "itasks", "Top",
                                 "--scheduler-url", url, *args], cwd=self.tmp, env=self.env,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def runs(self):
        return (self.tmp / "runs.log").read_text().splitlines()

    def test_a_luigi_worker_runs_against_microflow_server(self):
        scheduler = mf.Scheduler(prune_on_get_work=True)
        with mf.SchedulerServer(scheduler, port=0) as server:
            worker = self.luigi_worker(server.url, "--workers", "2")
            _, stderr = worker.communicate(timeout=120)
            self.assertEqual(worker.returncode, 0, stderr[-3000:])
            self.assertIn("* 9 ran successfully", stderr)
            self.assertNotIn("RPCError", stderr)
            done = scheduler.task_list("DONE", "")
            self.assertEqual(len(done), 9)
            leaf = next(task_id for task_id in done if task_id.startswith("Leaf"))
            self.assertEqual(scheduler.get_task_status_message(leaf)["statusMessage"],
                             "working")
        self.assertTrue(all(line.endswith(" luigi") for line in self.runs()))

    def test_a_microflow_worker_runs_against_luigid(self):
        port = free_port()
        luigid = subprocess.Popen([os.path.join(os.path.dirname(LUIGI_PYTHON), "luigid"),
                                   "--port", str(port), "--address", "127.0.0.1"],
                                  cwd=self.tmp, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.addCleanup(luigid.wait)
        self.addCleanup(luigid.terminate)
        url = f"http://127.0.0.1:{port}"
        probe = mf.RemoteScheduler(url, attempts=30, retry_wait=0.1)   # until it listens
        with unittest.mock.patch.object(probe, "_say_retry"):   # expected while it starts
            probe.ping(worker="probe")
        probe.close()
        worker = self.microflow_worker(url, "--workers", "2")
        _, stderr = worker.communicate(timeout=120)
        self.assertEqual(worker.returncode, 0, stderr[-3000:])
        self.assertIn("* 9 ran successfully", stderr)
        client = mf.RemoteScheduler(url, attempts=1)
        self.addCleanup(client.close)
        self.assertEqual(len(client.task_list("DONE", "")), 9)

    def test_luigi_and_microflow_workers_share_a_server_and_run_each_task_once(self):
        config = self.tmp / "keepalive.cfg"
        config.write_text("[worker]\nkeep_alive = true\nwait_interval = 0.1\n")
        self.env["LUIGI_CONFIG_PATH"] = self.env["MICROFLOW_CONFIG_PATH"] = str(config)
        with mf.SchedulerServer(port=0) as server:
            workers = [self.luigi_worker(server.url, "--first", "0", "--workers", "2"),
                       self.microflow_worker(server.url, "--first", "4", "--workers", "2"),
                       self.luigi_worker(server.url, "--first", "2"),
                       self.microflow_worker(server.url, "--first", "0")]
            outputs = [worker.communicate(timeout=180) for worker in workers]
        for worker, (_, stderr) in zip(workers, outputs):
            self.assertIn(worker.returncode, (0, 10), stderr[-3000:])
        leaves = sorted(line.split()[0] for line in self.runs())
        self.assertEqual(leaves, sorted(f"Leaf{n}" for n in range(12)))   # once each
        for first in (0, 2, 4):
            self.assertTrue((self.tmp / f"top{first}.txt").exists())


###########################################################################################
# Command line (through real subprocesses)
###########################################################################################

CLI_MODULE = '''
import os
import microflow

class Greet(microflow.Task):
    """Write a greeting."""
    name = microflow.Parameter(description="who to greet")
    times = microflow.IntParameter(default=1)
    loud = microflow.BoolParameter()

    def output(self):
        return microflow.LocalTarget(f"greet-{self.name}.txt")

    def run(self):
        text = f"hello {self.name}" * self.times
        with self.output().open("w") as f:
            f.write(text.upper() if self.loud else text)

class Helper(microflow.Config):
    suffix = microflow.Parameter(default="")

class Fails(microflow.Task):
    def complete(self):
        return False

    def run(self):
        raise RuntimeError("nope")

class NeedsData(microflow.Task):
    def requires(self):
        return Data()

    def complete(self):
        return False

class Data(microflow.ExternalTask):
    def output(self):
        return microflow.LocalTarget("no-such-data")

class Hang(microflow.Task):
    """Half-writes its output, starts a grandchild, says so, then waits forever."""
    n = microflow.IntParameter()

    def output(self):
        return microflow.LocalTarget(f"hang-{self.n}.txt")

    def run(self):
        import subprocess, time
        with self.output().open("w") as f:
            f.write("partial")
            sleeper = subprocess.Popen(["sleep", "60"])
            with open(f"started-{self.n}.tmp", "w") as marker:
                marker.write(f"{os.getpid()} {sleeper.pid}")
            os.rename(f"started-{self.n}.tmp", f"started-{self.n}")
            time.sleep(60)

class HangTwice(microflow.WrapperTask):
    def requires(self):   # two workers: the third never starts
        return [Hang(1), Hang(2), Hang(3)]

class Pid(microflow.Task):
    n = microflow.IntParameter()

    def output(self):
        return microflow.LocalTarget(f"pid-{self.n}")

    def run(self):
        with self.output().open("w") as f:
            f.write(str(os.getpid()))

class Pids(microflow.WrapperTask):
    def requires(self):
        return [Pid(n) for n in range(4)]
'''


class ParsedGreeting(mf.Task):
    name = mf.Parameter()
    times = mf.IntParameter(default=1)


class ParsedHelper(mf.Config):
    suffix = mf.Parameter(default="")


class ParsedSectionless(mf.Config):
    use_cmdline_section = False
    shared_limit = mf.IntParameter(default=0)


class Copied(mf.Task):
    day = mf.IntParameter()

    def output(self):
        return mf.MockTarget(f"copied/source{self.day}")

    def run(self):
        with self.output().open("w") as f:
            f.write(f"line 1 of {self.day}\nline 2\n")


@mf.util.copies(Copied)
class CopyOfCopied(mf.Task):
    def output(self):
        return mf.MockTarget(f"copied/copy{self.day}")


class Helper(mf.Task):
    base = mf.IntParameter()

    def requires(self):
        return Copied(day=self.base)

    def power(self, x):
        return self.base ** x


@mf.util.delegates
class UsesHelper(mf.Task):
    def subtasks(self):
        return Helper(base=2)

    def output(self):
        return mf.MockTarget("delegated")

    def run(self):
        with self.output().open("w") as f:
            f.write(str(self.subtasks().power(10)))


class TestExecutionSummaryFunctions(BuildCase):
    def test_summary_and_summary_dict_of_a_worker(self):
        with mf.Worker(mf.Scheduler(), worker_processes=1) as worker, \
                self.assertLogs("microflow", "ERROR"):
            worker.add(NeedsExploding())
            worker.run()
        text = mf.execution_summary.summary(worker)
        self.assertIn("===== Luigi Execution Summary =====", text)
        self.assertIn("* 1 failed:", text)
        sets = mf.execution_summary._summary_dict(worker)
        self.assertEqual(sets["failed"], {Exploding()})
        self.assertEqual(sets["upstream_failure"], {NeedsExploding()})
        self.assertEqual(sets["completed"], set())


class TestWorkerSchedulerFactory(BuildCase):
    def test_a_factory_makes_the_scheduler_and_the_worker(self):
        made = []

        class Counting(mf.WorkerSchedulerFactory):
            def create_local_scheduler(self):
                made.append("scheduler")
                return super().create_local_scheduler()

            def create_worker(self, scheduler, worker_processes=1, assistant=False):
                made.append(("worker", worker_processes))
                return super().create_worker(scheduler, worker_processes, assistant)
        result = self.build(Recorder("made", []), workers=1,
                            worker_scheduler_factory=Counting())
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        self.assertEqual(made, ["scheduler", ("worker", 1)])
        made.clear()
        with self.assertLogs("microflow", "INFO"):
            self.assertTrue(mf.run(["Recorder", "--name", "via-run"],
                                   worker_scheduler_factory=Counting()))
        self.assertEqual(made, ["scheduler", ("worker", 1)])
        self.assertIs(mf.interface._WorkerSchedulerFactory, mf.WorkerSchedulerFactory)

    def test_a_worker_of_the_factorys_own_kind_is_used_through_add_and_stopped(self):
        events = []

        class OwnWorker:   # not microflow's Worker: only add(), run() and a with block
            def __enter__(self):
                return self

            def __exit__(self, *exc_info):
                events.append("exited")

            def add(self, task):
                events.append("add")
                raise AttributeError("no such thing")

        class Factory(mf.WorkerSchedulerFactory):
            def create_worker(self, scheduler, worker_processes=1, assistant=False):
                return OwnWorker()
        with self.assertRaisesRegex(AttributeError, "no such thing"):
            mf.build([Recorder("own", [])], worker_scheduler_factory=Factory())
        self.assertEqual(events, ["add", "exited"])


class TestDecorators(BuildCase):
    def test_copies_requires_the_task_and_copies_its_output(self):
        result = self.build(CopyOfCopied(day=3))
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        data = mf.MockFileSystem().get_all_data()
        self.assertEqual(data["copied/copy3"], b"line 1 of 3\nline 2\n")
        self.assertEqual(CopyOfCopied(day=3).requires(), Copied(day=3))

    def test_delegates_runs_subtasks_inside_and_requires_their_requirements(self):
        result = self.build(UsesHelper())
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        self.assertEqual(mf.MockFileSystem().get_data("delegated"), b"1024")
        self.assertEqual(UsesHelper().deps(), [Copied(day=2)])
        self.assertNotIn("Helper", {task.get_task_family() for tasks in
                                    result.tasks.values() for task in tasks})
        with self.assertRaisesRegex(AttributeError, "subtasks"):
            mf.util.delegates(Copied)


class TestCmdlineParser(unittest.TestCase):
    def test_global_instance_gives_flags_to_every_task_made_inside(self):
        args = ["ParsedGreeting", "--name", "ann", "--times", "3", "--ParsedHelper-suffix",
                "!"]
        self.assertIsNone(mf.CmdlineParser.get_instance())
        with mf.CmdlineParser.global_instance(args) as parser:
            self.assertIs(mf.CmdlineParser.get_instance(), parser)
            self.assertEqual(parser.get_task_obj(), ParsedGreeting(name="ann", times=3))
            self.assertEqual(ParsedHelper().suffix, "!")      # a --Family-param flag
            self.assertEqual(parser.known_args.task, "ParsedGreeting")
            with self.assertRaisesRegex(mf.MicroflowError, "allow_override=True"):
                with mf.CmdlineParser.global_instance(args):
                    pass
            with mf.CmdlineParser.global_instance(["ParsedGreeting", "--name", "bo"],
                                                  allow_override=True) as inner:
                self.assertEqual(inner.get_task_obj().name, "bo")
                self.assertEqual(ParsedHelper().suffix, "")   # the inner line alone, as Luigi
            self.assertEqual(ParsedHelper().suffix, "!")
        self.assertIsNone(mf.CmdlineParser.get_instance())
        self.assertEqual(ParsedHelper().suffix, "")
        self.assertIs(mf.cmdline_parser.CmdlineParser, mf.CmdlineParser)
        self.assertIs(mf.rpc.RPCError, mf.SchedulerUnavailable)   # Luigi's name for it

    def test_sectionless_configs_flags_anywhere_and_abbreviations(self):
        args = ["--shared-limit", "7", "--ParsedHelper-suffix", "?", "ParsedGreeting",
                "--na", "ann", "--ParsedSectionless-shared-limit", "8"]
        with mf.CmdlineParser.global_instance(args) as parser:
            self.assertEqual(parser.get_task_obj(), ParsedGreeting(name="ann"))
            self.assertEqual(ParsedHelper().suffix, "?")
            self.assertEqual(ParsedSectionless().shared_limit, 8)   # the later flag wins
        with mf.CmdlineParser.global_instance(["ParsedGreeting", "--name", "x",
                                               "--shared-lim", "3"]):
            self.assertEqual(ParsedSectionless().shared_limit, 3)
        with self.assertRaises(SystemExit) as raised, \
                contextlib.redirect_stderr(io.StringIO()) as err:   # argparse's end, as Luigi's
            mf.CmdlineParser(["ParsedGreeting", "--name", "x", "--suffix", "!"])
        self.assertEqual(raised.exception.code, 2)
        self.assertIn("unknown parameter --suffix", err.getvalue())

    def test_bad_command_lines_raise_clear_errors(self):
        with self.assertRaisesRegex(mf.MicroflowError, "no task given"):
            mf.CmdlineParser(["--workers", "2"])
        with self.assertRaisesRegex(mf.MicroflowError, "ParsedGreeting"):
            mf.CmdlineParser(["ParsedGreetin"])
        with self.assertRaisesRegex(TypeError, "must be a list or tuple .* got 'str'"):
            mf.run("ParsedGreeting --name x")     # a string would be split letter by letter


class TestCommandLine(TempDirMixin, unittest.TestCase):
    def setUp(self):
        super().setUp()
        (self.tmp / "clitasks.py").write_text(CLI_MODULE)

    def environment(self, env):
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]))
        environment.pop("LUIGI_CONFIG_PATH", None)
        environment.pop("MICROFLOW_CONFIG_PATH", None)
        environment.update(env or {})
        return environment

    def write_config(self, text):
        path = self.tmp / "test.cfg"
        path.write_text(text)
        return path

    def cli(self, *args, env=None):
        return subprocess.run([sys.executable, "-m", "microflow", *args], cwd=self.tmp,
                              capture_output=True, text=True, env=self.environment(env),
                              timeout=60)

    def test_runs_a_task_with_parameters(self):
        done = self.cli("--module", "clitasks", "Greet", "--name", "ann", "--times", "2",
                        "--loud")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual((self.tmp / "greet-ann.txt").read_text(), "HELLO ANNHELLO ANN")
        self.assertIn("This progress looks :)", done.stderr)

    def test_module_colon_form_and_global_flags(self):
        done = self.cli("clitasks:Greet", "--Greet-name", "bo", "--local-scheduler")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue((self.tmp / "greet-bo.txt").exists())

    def test_command_line_beats_config_beats_default(self):
        config = self.tmp / "greet.cfg"
        config.write_text("[Greet]\nname = cfg\ntimes = 2\n")
        env = {"MICROFLOW_CONFIG_PATH": str(config)}
        self.assertEqual(self.cli("--module", "clitasks", "Greet", env=env).returncode, 0)
        self.assertEqual((self.tmp / "greet-cfg.txt").read_text(), "hello cfg" * 2)
        done = self.cli("--module", "clitasks", "Greet", "--name", "cli", "--Greet-times",
                        "3", env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual((self.tmp / "greet-cli.txt").read_text(), "hello cli" * 3)

    def test_beside_its_status_page_the_command_line_starts_workers_from_a_fork_server(self):
        # The page is served from a thread of the build's process: a fork beside it can
        # hang the child on a lock the thread held (Python 3.12+ warns of each, after
        # the fork). The command line's worker processes start from a fork server.
        process = subprocess.Popen(
            [sys.executable, "-W", "always::DeprecationWarning", "-m", "microflow",
             "--module", "clitasks", "Pids", "--workers", "2", "--status-port",
             str(free_port()), "--no-lock"], cwd=self.tmp, env=self.environment(None),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, stderr = process.communicate(timeout=60)
        self.assertEqual(process.returncode, 0, stderr)
        self.assertIn("other threads run in this process (microflow-scheduler): worker "
                      "processes start from a fork server", stderr)
        self.assertNotIn("multi-threaded", stderr)
        pids = {(self.tmp / f"pid-{n}").read_text() for n in range(4)}
        self.assertNotIn(str(process.pid), pids)   # run in the pool's processes

    def test_interrupt_stops_children_and_their_processes_and_leaves_no_files(self):
        import signal
        import time
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]))
        for signum, code, word in ((signal.SIGINT, 130, "interrupted"),
                                   (signal.SIGTERM, 143, "terminated")):
            with self.subTest(signal=signum.name):
                for marker in self.tmp.glob("started-*"):
                    marker.unlink()
                process = subprocess.Popen(
                    [sys.executable, "-m", "microflow", "--module", "clitasks", "HangTwice",
                     "--workers", "2"], cwd=self.tmp, env=environment, text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    preexec_fn=sigint_as_a_terminal_sends_it)
                self.addCleanup(process.kill)
                deadline = time.monotonic() + 30
                while len(list(self.tmp.glob("started-?"))) < 2:   # both tasks running
                    self.assertLess(time.monotonic(), deadline, "tasks did not start")
                    time.sleep(0.02)
                pids = [int(pid) for marker in self.tmp.glob("started-?")
                        for pid in marker.read_text().split()]
                process.send_signal(signum)   # as the terminal's Ctrl-C reaches the parent
                _, stderr = process.communicate(timeout=30)
                self.assertEqual(process.returncode, code, stderr)
                self.assertIn(f"microflow: {word}", stderr)
                self.assertIn("* 2 failed:", stderr)          # the summary was printed
                self.assertIn("interrupted while running", stderr)
                self.assertIn("    * 1 were not started: the run was interrupted:\n"
                              "        - 1 Hang(n=", stderr)   # not "granted run permission"
                self.assertNotIn("not granted", stderr)
                self.assertIn("This progress looks :( because the run was interrupted", stderr)
                self.assertNotIn("Traceback", stderr)
                for pid in pids:                               # pool processes and the
                    self.assertTrue(wait_until_gone(pid), pid)  # sleeps they started
                leftovers = [p.name for p in self.tmp.iterdir() if "tmp" in p.name
                             or p.name.startswith("hang-")]
                self.assertEqual(leftovers, [])

    def test_luigi_run_exits_with_the_code_and_lets_ctrl_c_through(self):
        code = ("import sys, microflow\n"
                "sys.argv = ['luigi', '--module', 'clitasks', 'Fails']\n"
                "microflow.cmdline.luigi_run()\n")
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]))
        done = subprocess.run([sys.executable, "-c", code], cwd=self.tmp, env=environment,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 30, done.stderr)
        self.assertIn("RuntimeError: nope", done.stderr)

        class Interrupts(mf.Task):
            def complete(self):
                return False

            def run(self):
                raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt):
            with contextlib.redirect_stderr(io.StringIO()):
                mf.cmdline.luigi_run(["Interrupts"])

    def test_build_in_a_plain_script_prints_the_run_as_luigi_does(self):
        script = ("import microflow\n"
                  "class Hi(microflow.Task):\n"
                  "    def complete(self):\n"
                  "        return False\n"
                  "    def run(self):\n"
                  "        pass\n"
                  "microflow.build([Hi()])\n")
        environment = dict(os.environ, PYTHONPATH=str(HERE))
        environment.pop("LUIGI_CONFIG_PATH", None)
        environment.pop("MICROFLOW_CONFIG_PATH", None)
        done = subprocess.run([sys.executable, "-c", script], cwd=self.tmp, text=True,
                              capture_output=True, env=environment, timeout=60)
        self.assertIn("running   Hi()", done.stderr)
        self.assertIn("===== Luigi Execution Summary =====", done.stderr)
        config = self.tmp / "quiet.cfg"
        config.write_text("[core]\nno_configure_logging = true\n")
        done = subprocess.run([sys.executable, "-c", script], cwd=self.tmp, text=True,
                              capture_output=True, timeout=60,
                              env=dict(environment, MICROFLOW_CONFIG_PATH=str(config)))
        self.assertEqual(done.stderr, "")
        configured = "import logging; logging.basicConfig(format='APP %(message)s')\n"
        done = subprocess.run([sys.executable, "-c", configured + script], cwd=self.tmp,
                              text=True, capture_output=True, env=environment, timeout=60)
        self.assertNotIn("Summary", done.stderr)   # the application's WARNING level holds

    def test_version(self):
        done = self.cli("--version")
        self.assertEqual((done.returncode, done.stdout.strip()), (0, f"microflow "
                                                                   f"{mf.__version__}"))

    def test_logging_conf_file_configures_the_run(self):
        log = self.tmp / "run.log"
        (self.tmp / "logging.cfg").write_text(textwrap.dedent(f"""\
            [loggers]
            keys=root
            [handlers]
            keys=file
            [formatters]
            keys=plain
            [logger_root]
            level=INFO
            handlers=file
            [handler_file]
            class=FileHandler
            level=INFO
            formatter=plain
            args=({str(log)!r},)
            [formatter_plain]
            format=LOGGED %(message)s
            """))
        done = self.cli("--module", "clitasks", "Greet", "--name", "x",
                        "--logging-conf-file", "logging.cfg")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("LOGGED", log.read_text())
        self.assertNotIn("INFO:", done.stderr)      # no stderr handler besides the file
        done = self.cli("--module", "clitasks", "Greet", "--name", "x",
                        "--logging-conf-file", "missing.cfg")
        self.assertEqual(done.returncode, 2)
        self.assertIn("'missing.cfg' does not exist", done.stderr)

    def test_interface_logging_sets_up_once(self):
        import logging
        logger = logging.getLogger("microflow")
        saved = logger.handlers[:], logger.level
        Setup = mf.setup_logging.InterfaceLogging
        opts = types.SimpleNamespace(logging_conf_file=None, log_level="WARNING")
        try:
            Setup._configured = False
            self.assertTrue(Setup.setup(opts))
            self.assertEqual(logger.level, logging.WARNING)
            self.assertEqual(len(logger.handlers), len(saved[0]) + 1)
            self.assertFalse(Setup.setup(opts))        # once per process
            Setup._configured = False
            with self.assertRaisesRegex(OSError, "nowhere.cfg"):
                Setup.setup(types.SimpleNamespace(logging_conf_file="nowhere.cfg"))
            Setup._configured = False
            with mf.config_override({"core": {"no_configure_logging": "true"}}):
                self.assertFalse(Setup.setup(opts))
        finally:
            Setup._configured = False
            logger.handlers[:], logger.level = saved

    def test_unknown_task_suggests(self):
        done = self.cli("--module", "clitasks", "Gret")
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stderr.strip(),
                         "microflow: error: No task Gret. Did you mean: Greet?")

    def test_unknown_parameter_suggests(self):
        done = self.cli("--module", "clitasks", "Greet", "--nmae", "x")
        self.assertEqual(done.returncode, 2)
        self.assertIn("unknown parameter --nmae for task Greet; did you mean --name?",
                      done.stderr)

    def test_bad_value_and_missing_parameter(self):
        done = self.cli("--module", "clitasks", "Greet", "--name", "x", "--times", "many")
        self.assertEqual(done.returncode, 2)
        self.assertIn("Greet: parameter 'times' expects an integer, got 'many' "
                      "(command line)", done.stderr)
        done = self.cli("--module", "clitasks", "Greet")
        self.assertEqual(done.returncode, 2)
        self.assertIn("requires the 'name' parameter to be set", done.stderr)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1)

    def test_bad_core_option(self):
        for value in ("abc", "1.5", "-2"):
            done = self.cli("--module", "clitasks", "Greet", "--name", "x", "--workers", value)
            self.assertEqual(done.returncode, 2)
            self.assertEqual(done.stderr.strip(), f"microflow: error: argument --workers: "
                                                  f"workers must be a whole number >= 0 "
                                                  f"(0: schedule only), got '{value}'")
        with self.assertRaisesRegex(ValueError, "workers must be a whole number >= 0"):
            mf.build([], workers=-1)   # the same check for build()
        done = self.cli("--module", "clitasks", "Greet", "--name", "zero", "--workers", "0")
        self.assertEqual(done.returncode, 25, done.stderr)   # as build(workers=0): not run
        self.assertFalse((self.tmp / "greet-zero.txt").exists())

    def test_exit_codes_follow_the_retcode_section_alone(self):
        config = self.tmp / "zero.cfg"
        config.write_text("[retcode]\ntask_failed = 0\n")
        done = self.cli("--module", "clitasks", "Fails",
                        env={"MICROFLOW_CONFIG_PATH": str(config)})
        self.assertEqual(done.returncode, 0, done.stderr)   # not 25: the failure explains it
        done = self.cli("--module", "clitasks", "Fails", "--debug")
        self.assertEqual(done.returncode, 30)              # --debug changes no exit code

    def test_a_module_that_fails_to_import_shows_its_traceback(self):
        (self.tmp / "broken.py").write_text("import os\n\ndef f():\n    return 1 / 0\n\nf()\n")
        done = self.cli("--module", "broken", "Greet")
        self.assertEqual(done.returncode, 2)
        self.assertIn("importing module 'broken' failed:", done.stderr)
        self.assertIn("ZeroDivisionError: division by zero", done.stderr)
        self.assertIn('broken.py", line 4, in f', done.stderr)
        with contextlib.redirect_stderr(io.StringIO()) as stderr, \
                self.assertRaises(SystemExit) as exits:   # as argparse and Luigi's run()
            mf.run(["ParsedGreeting", "--name", "x", "--no-such-flag"])
        self.assertEqual(exits.exception.code, 2)
        self.assertIn("unknown parameter --no-such-flag for task ParsedGreeting",
                      stderr.getvalue())
        self.assertIsInstance(exits.exception.__cause__, mf.UsageError)
        with self.assertRaises(mf.TaskClassNotFoundException):
            mf.run(["NoSuchTaskAnywhere"])

    def test_task_help(self):
        done = self.cli("--module", "clitasks", "Greet", "--help")
        self.assertEqual(done.returncode, 0)
        self.assertIn("--name Parameter (required); also --Greet-name", done.stdout)
        self.assertIn("who to greet", done.stdout)
        self.assertIn("--times IntParameter (default: 1)", done.stdout)

    def test_exit_codes(self):
        self.assertEqual(self.cli("--module", "clitasks", "Fails").returncode, 30)
        self.assertEqual(self.cli("--module", "clitasks", "NeedsData").returncode, 20)
        config = self.tmp / "codes.cfg"
        config.write_text("[retcode]\ntask_failed = 3\n")
        done = self.cli("--module", "clitasks", "Fails",
                        env={"MICROFLOW_CONFIG_PATH": str(config)})
        self.assertEqual(done.returncode, 3)
        done = self.cli("--module", "clitasks", "Fails", "--retcode-task-failed", "7",
                        env={"MICROFLOW_CONFIG_PATH": str(config)})
        self.assertEqual(done.returncode, 7)                  # the flag beats the file

    def test_a_backfill_from_the_command_line(self):
        (self.tmp / "rangetasks.py").write_text(textwrap.dedent("""\
            import microflow
            class Export(microflow.Task):
                date = microflow.DateParameter()
                def output(self):
                    return microflow.LocalTarget(f"out/{self.date}")
                def run(self):
                    with self.output().open("w") as f:
                        f.write("x")
            """))
        (self.tmp / "out").mkdir()
        (self.tmp / "out" / "2026-01-02").write_text("old")
        done = self.cli("--module", "rangetasks", "RangeDaily", "--of", "Export",
                        "--start", "2026-01-01", "--stop", "2026-01-05",
                        "--now", str(_epoch(2026, 2, 1)))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp / "out")),
                         ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"])
        self.assertIn("3 Export(date=2026-01-01,2026-01-03,2026-01-04)", done.stderr)

    def test_the_pid_lock_refuses_a_second_run_and_dies_with_its_holder(self):
        (self.tmp / "slow.py").write_text(textwrap.dedent("""\
            import os, time, microflow
            class Slow(microflow.Task):
                def complete(self):
                    return os.path.exists("slow.done")
                def run(self):
                    open("slow.started", "w").close()
                    while not os.path.exists("slow.go"):
                        time.sleep(0.02)
                    open("slow.done", "w").close()
            """))
        env = {"MICROFLOW_CONFIG_PATH": str(self.write_config(
            f"[core]\nlock_pid_dir = {self.tmp / 'locks'}\n"))}
        first = subprocess.Popen([sys.executable, "-m", "microflow", "--module", "slow",
                                  "Slow", "--workers", "2"], cwd=self.tmp,
                                 env=self.environment(env), stderr=subprocess.DEVNULL)
        self.addCleanup(first.kill)
        wait_for_file(self.tmp / "slow.started")
        second = self.cli("--module", "slow", "Slow", "--workers", "2", env=env)
        self.assertEqual(second.returncode, 10)        # [retcode] already_running
        self.assertIn(f"Pid(s) {first.pid} already running", second.stderr)
        first.kill()                                   # SIGKILL: no stale lock is left
        first.wait()
        (self.tmp / "slow.go").touch()
        third = self.cli("--module", "slow", "Slow", "--workers", "2", env=env)
        self.assertEqual(third.returncode, 0, third.stderr)

    def test_take_lock_asks_the_holder_to_stop_taking_work(self):
        (self.tmp / "chain.py").write_text(textwrap.dedent("""\
            import os, time, microflow
            class First(microflow.Task):
                def complete(self):
                    return os.path.exists("first.done")
                def run(self):
                    open(f"first.started.{os.getppid()}", "w").close()
                    while not os.path.exists("first.go"):
                        time.sleep(0.02)
                    open("first.done", "w").close()
            class Second(microflow.Task):
                def requires(self):
                    return First()
                def complete(self):
                    return os.path.exists("second.done")
                def run(self):
                    open("second.done", "w").close()
            """))
        env = {"MICROFLOW_CONFIG_PATH": str(self.write_config(
            f"[core]\nlock_pid_dir = {self.tmp / 'locks'}\n"))}
        holder = subprocess.Popen([sys.executable, "-m", "microflow", "--module", "chain",
                                   "Second", "--workers", "2"], cwd=self.tmp,
                                  env=self.environment(env),
                                  stderr=subprocess.PIPE, text=True)
        self.addCleanup(holder.kill)
        wait_for_file(self.tmp / f"first.started.{holder.pid}")
        taker = subprocess.Popen([sys.executable, "-m", "microflow", "--module", "chain",
                                  "Second", "--workers", "2", "--take-lock"], cwd=self.tmp,
                                 env=self.environment(env), stderr=subprocess.PIPE, text=True)
        self.addCleanup(taker.kill)
        # The same command is not refused (one lock more), and the holder got SIGUSR1
        # before the taker started First: it finishes First, then asks for no more.
        wait_for_file(self.tmp / f"first.started.{taker.pid}")
        (self.tmp / "first.go").touch()
        _, holder_log = holder.communicate(timeout=30)
        _, taker_log = taker.communicate(timeout=30)
        self.assertEqual(taker.returncode, 0, taker_log)
        self.assertIn("running   Second()", taker_log)
        self.assertNotIn("running   Second()", holder_log)
        self.assertEqual(holder.returncode, 25, holder_log)   # Second left "not run"

    def test_every_on_the_command_line_stops_cleanly_on_sigterm(self):
        import signal
        (self.tmp / "ticks.py").write_text(textwrap.dedent("""\
            import os, time, microflow
            class Tick(microflow.Task):
                def complete(self):
                    return False
                def run(self):
                    with open("ticks", "a") as f:
                        f.write("x")
                    if os.path.getsize("ticks") == 2:
                        open("second.started", "w").close()
                        time.sleep(1)
            """))
        loop = subprocess.Popen([sys.executable, "-m", "microflow", "--module", "ticks",
                                 "Tick", "--every", "0.2s"], cwd=self.tmp,
                                env=self.environment({}), stderr=subprocess.PIPE, text=True)
        self.addCleanup(loop.kill)
        wait_for_file(self.tmp / "second.started")
        loop.send_signal(signal.SIGTERM)               # during the second build
        _, stderr = loop.communicate(timeout=30)
        # Both builds succeeded; the loop was stopped by SIGTERM, and says so, as a
        # process ended by a signal does (128 + 15; Ctrl-C: 130) (issue 23, point 9).
        self.assertEqual(loop.returncode, 143, stderr)
        self.assertEqual((self.tmp / "ticks").read_text(), "xx")
        self.assertIn("SIGTERM: stopping after the build under way", stderr)
        self.assertEqual(stderr.count("Luigi Execution Summary"), 4)   # two summaries
        done = self.cli("--module", "ticks", "Tick", "--every", "1s", "--cron", "* * * * *")
        self.assertEqual(done.returncode, 2)
        self.assertIn("give --every or --cron, not both", done.stderr)

    def test_each_firing_imports_the_task_modules_afresh(self):
        (self.tmp / "dated.py").write_text(textwrap.dedent("""\
            import os, microflow
            class Dated(microflow.Task):
                # computed at import, as date.today() is in examples/cron_aggregation.py
                made_by = microflow.IntParameter(default=os.getpid())
                def complete(self):
                    return False
                def run(self):
                    with open("made_by", "a") as f:
                        f.write(f"{self.made_by}\\n")
            """))
        done = self.cli("--module", "dated", "Dated", "--every", "0.1s", "--max-runs", "2")
        self.assertEqual(done.returncode, 0, done.stderr)
        made_by = (self.tmp / "made_by").read_text().split()
        self.assertEqual(len(set(made_by)), 2, made_by)   # issue 23, point 10
        self.assertIn("next build at", done.stderr)

    def test_a_live_progress_line_on_a_terminal_only(self):
        import pty
        (self.tmp / "steps.py").write_text(textwrap.dedent("""\
            import time, microflow
            class Step(microflow.Task):
                n = microflow.IntParameter()
                done = set()
                def complete(self):
                    return self.n in self.done
                def run(self):
                    time.sleep(0.15)
                    self.done.add(self.n)
            class Steps(microflow.WrapperTask):
                def requires(self):
                    return [Step(n) for n in range(6)]
            """))
        args = ["--module", "steps", "Steps"]

        def on_a_terminal(*extra):
            leader, follower = pty.openpty()
            process = subprocess.Popen([sys.executable, "-m", "microflow", *args, *extra],
                                       cwd=self.tmp, env=self.environment({}),
                                       stdin=subprocess.DEVNULL, stdout=follower,
                                       stderr=follower)
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:   # the terminal closed: the process is gone
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(leader)
            self.assertEqual(process.wait(30), 0)
            return b"".join(chunks).decode()

        shown = on_a_terminal()
        self.assertRegex(shown, r"\r\x1b\[K\d done, \d running, \d pending, 0 failed \| "
                                r"[\d.]+ tasks/s \| \d+s")
        self.assertIn("\r\x1b[KINFO: \r\n===== Luigi Execution Summary", shown)  # wiped
        self.assertNotIn("\x1b[K", on_a_terminal("--no-progress"))
        self.assertNotIn("\x1b[K", self.cli(*args).stderr)        # not a terminal

    def test_no_task_prints_usage(self):
        done = self.cli()
        self.assertEqual(done.returncode, 2)
        self.assertIn("usage: python -m microflow", done.stderr)
        self.assertIn("microflow: error: No task specified", done.stderr)
        helped = self.cli("--help")
        self.assertEqual(helped.returncode, 0)
        self.assertIn("usage: python -m microflow", helped.stdout)
        self.assertLessEqual(len(helped.stdout.splitlines()), 15)   # one screen
        for flag in ("--dry-run", "--tree", "--every", "--cron", "--module"):
            self.assertIn(f"\n  {flag} ", helped.stdout)
        everything = self.cli("--module", "clitasks", "--help-all")
        self.assertIn("--state-path", everything.stdout)
        self.assertRegex(everything.stdout, r"--Greet-name \(Parameter, required\) +who to "
                                            r"greet\n")
        self.assertIn("--Greet-times (IntParameter, default 1)\n", everything.stdout)
        # A flag too long for its column has its description on the next line, as
        # argparse lays it out, never run into it (issue 23, point 7, in part).
        self.assertIn("  --RangeBase-of-params (DictParameter, default {})\n" + " " * 48 +
                      "its other parameters\n", everything.stdout)
        self.assertIn("  --worker-keep-alive (BoolParameter, default False)\n" + " " * 48 +
                      "keep asking for work while", everything.stdout)   # described too

    def test_an_unknown_task_without_its_module_says_module_may_be_missing(self):
        done = self.cli("Greet", "--name", "x")
        self.assertEqual(done.returncode, 2)
        self.assertIn("No task Greet: no task module is loaded; name the module that "
                      "defines it: --module pkg.mod Greet", done.stderr)
        self.assertNotIn("Candidates", done.stderr)   # not microflow's own classes
        done = self.cli("--module", "clitasks", "Gret")
        self.assertIn("Did you mean: Greet?", done.stderr)

    def test_vendored_copy_run_with_dash_m_shares_one_task_class(self):
        vendor = self.tmp / "app" / "_vendor"
        vendor.mkdir(parents=True)
        (self.tmp / "app" / "__init__.py").write_text("")
        (vendor / "__init__.py").write_text("")
        shutil.copy(HERE / "microflow.py", vendor / "microflow.py")
        (self.tmp / "app" / "jobs.py").write_text(textwrap.dedent("""
            from app._vendor import microflow
            class Job(microflow.Task):
                def output(self):
                    return microflow.LocalTarget("job.txt")
                def run(self):
                    with self.output().open("w") as f:
                        f.write("ok")
        """))
        done = subprocess.run([sys.executable, "-m", "app._vendor.microflow", "--module",
                               "app.jobs", "Job"], cwd=self.tmp, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual((self.tmp / "job.txt").read_text(), "ok")

    def test_run_function(self):
        sys.path.insert(0, str(self.tmp))
        self.addCleanup(sys.path.remove, str(self.tmp))
        cwd = os.getcwd()
        os.chdir(self.tmp)
        self.addCleanup(os.chdir, cwd)
        with self.assertLogs("microflow", "INFO"):
            self.assertTrue(mf.run(["--module", "clitasks", "Greet", "--name", "cy"]))
        self.assertTrue((self.tmp / "greet-cy.txt").exists())


class TestExamples(TempDirMixin, unittest.TestCase):
    def run_example(self, name, *args):
        # The example's data in the test's folder, not beside the example in the repo.
        environment = dict(os.environ, AGGREGATION_DATA=str(self.tmp / "data"))
        return subprocess.run([sys.executable, str(HERE / "examples" / name), *args],
                              cwd=self.tmp, capture_output=True, text=True, timeout=120,
                              env=environment)

    def test_every_example_runs(self):
        expected = {"hello_world.py": 0, "cron_aggregation.py": 0, "failing_pipeline.py": 30}
        found = {p.name for p in (HERE / "examples").glob("*.py") if p.name != "__init__.py"}
        self.assertEqual(found, set(expected))
        for name, code in expected.items():
            with self.subTest(name):
                done = self.run_example(name)
                self.assertEqual(done.returncode, code, done.stderr[-2000:])
        self.assertEqual((self.tmp / "out" / "hello-world.txt").read_text(), "Hello, world!\n")
        self.assertFalse((self.tmp / "out" / "failing" / "transformed.txt").exists())


class TestPlanning(TempDirMixin, unittest.TestCase):
    def cli(self, *args):
        environment = dict(os.environ, PYTHONPATH=str(HERE), AGGREGATION_DATA="data")
        environment.pop("MICROFLOW_CONFIG_PATH", None)
        return subprocess.run([sys.executable, "-m", "microflow", "--module",
                               "examples.cron_aggregation", "RunAll", "--end", "2026-11-20",
                               *args], cwd=self.tmp, capture_output=True, text=True,
                              env=environment, timeout=60)

    def test_dry_run_says_what_would_run_and_why_and_runs_nothing(self):
        (self.tmp / "examples").symlink_to(HERE / "examples")
        done = self.cli("--dry-run")            # no dumps at all yet
        self.assertEqual(done.returncode, 20, done.stderr)   # missing external data
        self.assertIn("missing external  DataDump(date=2026-11-20): external data missing: "
                      "data/dumps/2026-11-20.csv", done.stdout)
        self.assertIn("blocked           AggregationTask(date=2026-11-20, window=3): "
                      "output missing", done.stdout)
        self.assertIn("needs DataDump(date=2026-11-20) (missing external)", done.stdout)
        self.assertFalse((self.tmp / "data" / "totals").exists())
        sys.path.insert(0, str(HERE))
        try:
            from examples import cron_aggregation
        finally:
            sys.path.remove(str(HERE))
        with contextlib.chdir(self.tmp) if hasattr(contextlib, "chdir") else \
                _cwd(self.tmp), unittest.mock.patch.object(cron_aggregation, "DATA", "data"):
            cron_aggregation.make_sample_dumps(datetime.date(2026, 11, 20))   # as cli()'s
        done = self.cli("--dry-run")
        self.assertEqual(done.returncode, 1)    # something would run
        self.assertIn("dry run: 31 would run, 23 complete", done.stdout)
        self.assertIn("would run         AggregationTask(date=2026-11-11, window=14): "
                      "output missing: data/totals/2026-11-11-14d.txt", done.stdout)

        tree = self.cli("--tree")
        self.assertEqual(tree.returncode, 0)
        lines = tree.stdout.splitlines()
        self.assertEqual(lines[0], "RunAll(end=2026-11-20) [pending]")
        self.assertIn("├─ AggregationTask(date=2026-11-20, window=3) [pending]", lines)
        self.assertIn("│  ├─ DataDump(date=2026-11-20) [complete]", lines)
        self.assertEqual(sum("DataDump(date=2026-11-15) [complete]" in line
                             and "(shown above)" not in line for line in lines), 1)
        self.assertTrue(any("(shown above)" in line for line in lines))

    def test_as_functions_returning_data(self):
        plan = mf.dry_run([Recorder("root", ["a"])])
        self.assertEqual([(item.task.name, item.state) for item in plan],
                         [("a", "would run"), ("root", "would run")])
        self.assertEqual(plan[1].reasons, ["complete() is False",
                                           f"needs {Recorder('a', [])!r} (would run)"])
        tree = mf.dependency_tree(Recorder("root", ["a"]))
        self.assertEqual((tree["state"], [d["task"].name for d in tree["deps"]]),
                         ("pending", ["a"]))
        self.assertEqual(Recorder.runs, [])


@contextlib.contextmanager
def _cwd(path):
    saved = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(saved)


class TestBenchmarkScript(unittest.TestCase):
    def bench(self, *arguments):
        """Run bench/bench.py with ``arguments`` (it must exit 0): its JSON lines."""
        done = subprocess.run([sys.executable, str(HERE / "bench" / "bench.py"), *arguments],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        return [json.loads(line) for line in done.stdout.splitlines()]

    def test_prints_one_json_line_per_measurement(self):
        # Tiny graphs: this checks the script works, not how fast anything is.
        lines = self.bench("--shapes", "wide", "chain", "--sizes", "30", "60", "--repeat", "3")
        runs = [line for line in lines if line.get("impl") == "microflow"]
        self.assertEqual([(r["shape"], r["n"]) for r in runs],
                         [("wide", 30), ("wide", 60), ("chain", 30), ("chain", 60)])
        for run in runs:
            self.assertTrue(run["ok"])
            self.assertEqual(run["repeats"], 3)
            self.assertLessEqual(run["seconds_min"], run["seconds"])
            self.assertLessEqual(run["seconds"], run["seconds_max"])
        self.assertEqual([line["linearity"] for line in lines if "linearity" in line],
                         ["wide", "chain"])

    def test_workers_and_checks_modes_print_their_ratios(self):
        lines = self.bench("--shapes", "wide", "--sizes", "40", "--workers", "2")
        self.assertEqual([line["impl"] for line in lines if "impl" in line],
                         ["microflow", "pool_floor", "microflow"])
        self.assertTrue(all(line.get("ok", True) for line in lines))
        self.assertEqual([line["ratio"] for line in lines if "ratio" in line],
                         ["microflow 2 workers / pool floor",
                          "microflow 2 workers / 1 in-process worker"])
        ratio = self.bench("--checks", "16", "--check-workers", "4")[-1]
        self.assertEqual(ratio["ratio"], "sequential / parallel checks")

    def test_clients_mode_gives_each_rounds_ratio_to_that_rounds_one_process(self):
        lines = self.bench("--shapes", "wide", "--sizes", "40", "--clients", "2",
                           "--repeat", "2")
        self.assertEqual([(line["start"], line["clients"]) for line in lines],
                         [("together", 1), ("together", 2), ("as-walked", 1),
                          ("as-walked", 2)])
        for line in lines:
            self.assertEqual(line["ran"], 40)
            self.assertEqual(len(line["vs_one_process_each_round"]), 2)
        self.assertEqual([line["vs_one_process"] for line in lines if line["clients"] == 1],
                         [1.0, 1.0])


###########################################################################################
# Code written for Luigi: the names libraries built on it import, their file writers,
# their own workers, logging as asked, and install_as_luigi()
###########################################################################################

class TestFileObjects(TempDirMixin, unittest.TestCase):
    """open() hands out real io objects, still atomic: libraries that decide by
    isinstance(f, io.TextIOBase) what to write (polars, pandas) never publish an empty
    file."""

    def targets(self, name, **kwargs):
        return [mf.LocalTarget(str(self.tmp / name), **kwargs), mf.MockTarget(name, **kwargs)]

    def test_open_hands_out_the_matching_io_classes(self):
        kinds = [({}, "w", io.TextIOBase, "text"), ({}, "wb", io.BufferedIOBase, b"bytes"),
                 ({"format": mf.UTF8 >> mf.Gzip}, "w", io.TextIOBase, "gz text"),
                 ({"format": mf.Gzip}, "w", io.BufferedIOBase, b"gz bytes"),
                 ({"format": mf.Bzip2}, "w", io.BufferedIOBase, b"bz2 bytes"),
                 ({"format": mf.Nop}, "w", io.BufferedIOBase, b"nop")]
        for number, (options, mode, base, data) in enumerate(kinds):
            for target in self.targets(f"kind{number}", **options):
                with self.subTest(target=target, options=options, mode=mode):
                    with target.open(mode) as f:
                        self.assertIsInstance(f, base)
                        self.assertTrue(f.writable())
                        f.write(data)
                    with target.open(mode.replace("w", "r")) as f:
                        self.assertIsInstance(f, base)
                        self.assertEqual(f.read(), data)

    def test_the_wrong_kind_of_data_is_a_type_error_and_publishes_nothing(self):
        for target in self.targets("wrong.txt"):
            with self.subTest(target=target):
                with self.assertRaises(TypeError):
                    with target.open("w") as f:
                        f.write(b"bytes into text")
                self.assertFalse(target.exists())
                with self.assertRaises(TypeError):
                    with target.open("wb") as f:
                        f.write("text into bytes")
                self.assertFalse(target.exists())
        self.assertEqual(os.listdir(self.tmp), [])   # no temporary left behind

    def test_standard_library_writers(self):
        import csv
        for target in self.targets("rows.csv"):
            with target.open("w") as f:
                csv.writer(f).writerows([["a", "b"], [1, 2]])
            self.assertEqual(read(target).splitlines(), ["a,b", "1,2"])
        for target in self.targets("data.json"):
            with target.open("w") as f:
                json.dump({"k": [1, 2]}, f)
            self.assertEqual(json.loads(read(target)), {"k": [1, 2]})
        for target in self.targets("copy.bin"):
            with target.open("wb") as f:
                shutil.copyfileobj(io.BytesIO(b"x" * 100000), f)
            self.assertEqual(read(target, "rb"), b"x" * 100000)
        for target in self.targets("wrapped.txt"):
            with target.open("wb") as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
                f.write("wrapped ☃")
            self.assertEqual(read(target, "rb").decode("utf-8"), "wrapped ☃")

    def test_an_exception_or_the_garbage_collector_publishes_nothing(self):
        for target in self.targets("half.txt", format=mf.UTF8 >> mf.Gzip) + \
                self.targets("plain.txt"):
            with self.subTest(target=target):
                with self.assertRaisesRegex(RuntimeError, "stop"):
                    with target.open("w") as f:
                        f.write("half")
                        raise RuntimeError("stop")
                self.assertFalse(target.exists())
                f = target.open("w")
                f.write("never closed")
                del f
                gc.collect()
                self.assertFalse(target.exists())
                f = target.open("w")
                f.write("aborted")
                f.abort()
                self.assertTrue(f.closed)
                self.assertFalse(target.exists())
        self.assertEqual(os.listdir(self.tmp), [])


PANDAS_POLARS_PYTHON = os.environ.get("MICROFLOW_DATAFRAME_PYTHON")

DATAFRAME_SCRIPT = r"""
import io, os, sys
import microflow, pandas, polars
out = sys.argv[1]
frame = pandas.DataFrame({"a": [1, 2], "b": ["x", "y"]})
with microflow.LocalTarget(os.path.join(out, "pandas.csv")).open("w") as f:
    frame.to_csv(f, index=False)
with microflow.MockTarget("pandas.csv").open("w") as f:
    frame.to_csv(f, index=False)
pl = polars.DataFrame({"a": [1, 2], "b": ["x", "y"]})
with microflow.LocalTarget(os.path.join(out, "polars.csv")).open("w") as f:
    pl.write_csv(f)
with microflow.LocalTarget(os.path.join(out, "polars.parquet"), format=microflow.Nop).open("w") as f:
    pl.write_parquet(f)
with microflow.MockTarget("polars.parquet", format=microflow.Nop).open("w") as f:
    pl.write_parquet(f)
print(microflow.MockTarget("pandas.csv").open("r").read().splitlines())
with microflow.MockTarget("polars.parquet", format=microflow.Nop).open("r") as f:
    print(polars.read_parquet(io.BytesIO(f.read())).to_dicts())
"""


@unittest.skipUnless(PANDAS_POLARS_PYTHON, "pandas/polars writers: set "
                     "MICROFLOW_DATAFRAME_PYTHON to a Python with pandas and polars "
                     "(.ci/run makes one)")
class TestDataFrameWriters(TempDirMixin, unittest.TestCase):
    def test_pandas_and_polars_write_whole_files(self):
        done = subprocess.run([PANDAS_POLARS_PYTHON, "-c", DATAFRAME_SCRIPT, str(self.tmp)],
                              capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(HERE)))
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        for name in ("pandas.csv", "polars.csv"):
            self.assertEqual((self.tmp / name).read_text().splitlines(),
                             ["a,b", "1,x", "2,y"], name)
        self.assertEqual((self.tmp / "polars.parquet").read_bytes()[:4], b"PAR1")
        self.assertEqual(done.stdout.splitlines(), [
            "['a,b', '1,x', '2,y']", "[{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'y'}]"])


class ExplicitFlag(mf.BoolParameter):
    """A library's bool parameter that takes a value on the command line (gokart's
    ExplicitBoolParameter does this through _parser_kwargs)."""

    def _parser_kwargs(self, *args, **kwargs):
        return mf.Parameter._parser_kwargs(*args, **kwargs)


class CountedParameter(mf.Parameter[int]):
    """A Parameter[int] subclass with a type check of its own."""

    warned = []

    def parse(self, x):
        return int(x)

    def _warn_on_wrong_param_type(self, param_name, param_value):
        CountedParameter.warned.append((param_name, param_value))


class LibraryTask(mf.Task):
    flag = ExplicitFlag()
    count = CountedParameter(default=0)


class tree_info(mf.Config):
    mode = mf.Parameter(default="simple")


class TestLuigiNames(unittest.TestCase):
    """The names libraries built on Luigi import, behaving as Luigi's."""

    def test_no_value_marker_and_config_path(self):
        self.assertIs(mf.parameter._NoValueType(), mf.parameter._no_value)
        self.assertEqual(repr(mf.parameter._no_value), "<no_value>")
        self.assertIs(mf.Parameter()._default, mf.parameter._no_value)
        ConfigPath = mf.parameter.ConfigPath
        self.assertEqual(ConfigPath(section="s", name="n"), {"section": "s", "name": "n"})
        self.assertEqual(set(ConfigPath.__annotations__), {"section", "name"})
        from microflow.parameter import ConfigPath as imported, ParameterVisibility
        self.assertIs(imported, ConfigPath)
        self.assertIs(ParameterVisibility, mf.ParameterVisibility)

    def test_parameters_are_subscriptable_and_consult_their_hooks(self):
        self.assertEqual(repr(mf.Parameter[int]), "microflow.Parameter[int]")
        self.assertTrue(issubclass(CountedParameter, mf.Parameter))
        CountedParameter.warned.clear()
        self.assertEqual(LibraryTask(count=3).count, 3)
        self.assertEqual(CountedParameter.warned, [("count", 3)])
        with mf.CmdlineParser.global_instance(["LibraryTask", "--flag", "false",
                                               "--count", "2"]) as parser:
            self.assertEqual(parser.get_task_obj(), LibraryTask(flag=False, count=2))
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
            mf.CmdlineParser(["LibraryTask", "--flag"])   # it wants a value, as in Luigi
        self.assertIn("--flag: expected one argument", err.getvalue())

    def test_config_class_flags_are_spelled_as_luigis(self):
        with mf.CmdlineParser.global_instance(["LibraryTask", "--tree-info-mode", "all"]):
            self.assertEqual(tree_info().mode, "all")

    def test_cmdline_parser_get_instance_is_consulted(self):
        parsed = mf.CmdlineParser(["LibraryTask", "--LibraryTask-count", "5"])
        with unittest.mock.patch.object(mf.CmdlineParser, "get_instance",
                                        return_value=parsed):
            self.assertEqual(LibraryTask().count, 5)
        self.assertEqual(LibraryTask().count, 0)

    def test_register_reg_reads_and_prunes_the_registry(self):
        classes = mf.task_register.Register._reg
        self.assertIn(LibraryTask, classes)
        saved = list(classes)
        try:
            mf.Register._reg = [cls for cls in classes if cls is not LibraryTask]
            with self.assertRaises(mf.TaskClassNotFoundException):
                mf.Register.get_task_cls("LibraryTask")
        finally:
            mf.Register._reg = saved
        self.assertIs(mf.Register.get_task_cls("LibraryTask"), LibraryTask)

    def test_add_config_path(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "extra.cfg")
            with open(path, "w") as f:
                f.write("[tree_info]\nmode = from-file\n")
            saved = mf.configuration.LuigiConfigParser._config_paths
            try:
                self.assertTrue(mf.configuration.add_config_path(path))
                self.assertEqual(tree_info().mode, "from-file")
                mf.reset_config()   # read again from the files: the added one too
                self.assertEqual(tree_info().mode, "from-file")
            finally:
                mf.configuration.LuigiConfigParser._config_paths = saved
                mf.reset_config()
            with self.assertWarnsRegex(UserWarning, "Config file does not exist"):
                self.assertFalse(mf.configuration.add_config_path(path + ".missing"))
        self.assertEqual(tree_info().mode, "simple")

    def test_module_paths_import_as_they_read(self):
        from microflow.tools.range import RangeDaily
        from microflow.util import inherits, requires
        from microflow.worker import TaskException, worker
        import microflow.scheduler
        self.assertIs(RangeDaily, mf.RangeDaily)
        self.assertEqual((inherits, requires), (mf.inherits, mf.requires))
        self.assertTrue(issubclass(TaskException, Exception))
        self.assertEqual(worker().keep_alive, False)
        self.assertEqual(microflow.scheduler.WORKER_STATE_DISABLED, "disabled")
        self.assertEqual(mf.task_status.BATCH_RUNNING, "BATCH_RUNNING")
        self.assertEqual(mf.RetryPolicy(3, 10, 60)._asdict(), {
            "retry_count": 3, "disable_hard_timeout": 10, "disable_window": 60})

    def test_worker_helpers_behave_as_luigis(self):
        class Fine(mf.Task):
            def complete(self):
                return True

        class Broken(mf.Task):
            def complete(self):
                raise OSError("disk gone")
        cache, queue = {}, mf.DequeQueue()
        pool = mf.SingleProcessPool()
        pool.apply_async(mf.check_complete, [Fine(), queue, cache])
        pool.apply_async(mf.check_complete, [Broken(), queue, cache])
        pool.close()
        pool.join()
        task, outcome = queue.get()
        self.assertIsInstance(outcome, mf.TracebackWrapper)
        self.assertIn("OSError: disk gone", outcome.trace)
        self.assertEqual(queue.get(), (Fine(), True))
        self.assertEqual(cache, {Fine().task_id: True})
        import queue as queues
        with self.assertRaises(queues.Empty):
            queue.get()
        self.assertEqual(mf.AsyncCompletionException("trace").trace, "trace")
        self.assertTrue(mf.rpc_message_callback(lambda: None).is_rpc_message_callback)

    def test_status_reporter_and_messages_reach_the_scheduler(self):
        scheduler = mf.Scheduler()
        scheduler.add_task(worker="w", task_id="T_1", status=mf.PENDING, runnable=True)
        self.assertEqual(scheduler.get_work(worker="w")["task_id"], "T_1")
        reporter = mf.TaskStatusReporter(scheduler, "T_1", "w", None)
        reporter.update_status_message("half way")
        reporter.update_progress_percentage(50)
        reporter.update_tracking_url("http://jobs/1")
        self.assertEqual(scheduler.get_task_status_message("T_1")["statusMessage"], "half way")
        self.assertEqual(scheduler.get_task_progress_percentage("T_1")["progressPercentage"],
                         50)
        self.assertEqual(scheduler.task_list(mf.RUNNING, "")["T_1"]["tracking_url"],
                         "http://jobs/1")
        message = mf.SchedulerMessage(scheduler, "T_1", "m1", "how far?", extra=1)
        self.assertEqual((str(message), message.payload), ("how far?", {"extra": 1}))
        self.assertEqual(message, "how far?")
        message.respond("50%")
        self.assertEqual(scheduler.get_scheduler_message_response("T_1", "m1"),
                         {"response": "50%"})

    def test_keep_alive_thread_pings_and_hands_over_rpc_messages(self):
        scheduler = mf.Scheduler()
        scheduler.add_worker("w", {})
        scheduler.set_worker_processes("w", 3)   # queued for w's next ping
        received = threading.Event()
        messages = []

        def callback(message):
            messages.append(message)
            received.set()
        thread = mf.KeepAliveThread(scheduler, "w", 0.01, callback)
        thread.start()
        self.assertTrue(received.wait(10))
        thread.stop()
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertEqual(messages[0]["name"], "set_worker_processes")
        self.assertEqual(messages[0]["kwargs"], {"n": 3})


class LuigiStyleWorker:
    """A worker of a library's own, built the way Luigi's is (gokart ships one): it
    talks to the scheduler through its RPC methods only, and keeps Luigi's
    _add_task_history and _get_work_response_history."""

    def __init__(self, scheduler):
        self._scheduler, self._id = scheduler, "luigi-style"
        self._add_task_history, self._get_work_response_history = [], []
        self._tasks = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def add(self, task):
        todo = [task]
        while todo:
            task = todo.pop()
            if task.task_id in self._tasks:
                continue
            self._tasks[task.task_id] = task
            done = mf.check_complete_cached(task)
            deps = [] if done else task.deps()
            status = mf.DONE if done else mf.PENDING
            self._scheduler.add_task(worker=self._id, task_id=task.task_id, status=status,
                                     deps=[dep.task_id for dep in deps], runnable=not done,
                                     family=task.get_task_family(),
                                     params=task.to_str_params())
            self._add_task_history.append((task, status, not done))
            todo.extend(deps)
        return True

    def run(self):
        succeeded = True
        while True:
            reply = self._scheduler.get_work(worker=self._id)
            self._get_work_response_history.append(
                {"task_id": reply["task_id"], "running_tasks": reply["running_tasks"]})
            if reply["task_id"] is None:
                return succeeded
            task = self._tasks[reply["task_id"]]
            try:
                task.run()
                status = mf.DONE
            except Exception:
                status, succeeded = mf.FAILED, False
            self._scheduler.add_task(worker=self._id, task_id=task.task_id, status=status)
            self._add_task_history.append((task, status, True))


class SubmittingWorker(mf.Worker):
    """Hands each task to a "batch system" through Luigi's _create_task_process hook:
    here a subprocess that runs the task by its family and parameters."""

    submitted = []

    def _create_task_process(self, task):
        SubmittingWorker.submitted.append(task.task_id)
        return SubprocessJob(task, self._task_result_queue, self._config.timeout)


class SubprocessJob:
    """Luigi's TaskProcess contract, kept by a process object of one's own."""

    use_multiprocessing = True
    RUN = ("import sys, microflow, test_microflow as t; task = microflow.load_task("
           "'test_microflow', sys.argv[1], {'name': sys.argv[2]}); "
           "sys.exit(0 if microflow.build([task], local_scheduler=True) else 3)")

    def __init__(self, task, results, timeout):
        self.task, self._results = task, results
        self.worker_timeout = task.worker_timeout or timeout or None
        self.timeout_time = None
        self.popen = None

    def start(self):
        if self.worker_timeout:
            self.timeout_time = time.time() + self.worker_timeout
        self.popen = subprocess.Popen(
            [sys.executable, "-c", self.RUN, self.task.get_task_family(), self.task.name],
            cwd=str(HERE), env=dict(os.environ, PYTHONPATH=str(HERE)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.popen.pid
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        if self.popen.wait() == 0:   # other exits: the worker sees exitcode
            self._results.put((self.task.task_id, mf.DONE, None, [], []))

    def is_alive(self):
        return self.popen.poll() is None

    @property
    def exitcode(self):
        return self.popen.poll()

    def terminate(self):
        self.popen.terminate()
        self.popen.wait()


class FileStep(mf.Task):
    """Writes out/<name>.txt after its dependency (one level: name 'b' needs 'a')."""

    name = mf.Parameter()
    folder = os.environ.get("MICROFLOW_TEST_FILESTEP", tempfile.gettempdir())

    def requires(self):
        return [FileStep("a")] if self.name == "b" else []

    def output(self):
        return mf.LocalTarget(os.path.join(FileStep.folder, f"filestep-{self.name}.txt"))

    @property
    def worker_timeout(self):   # only the hanging one has a time limit
        return 1 if self.name == "hang" else None

    def run(self):
        if self.name == "fail":
            raise RuntimeError("failing on purpose")
        if self.name == "hang":
            time.sleep(60)
        with self.output().open("w") as f:
            f.write(self.name)


class TestForeignWorkers(TempDirMixin, BuildCase):
    def tearDown(self):
        Recorder.runs.clear()   # later test classes read it
        Recorder.finished.clear()
        super().tearDown()

    def test_a_luigi_style_worker_is_driven_and_reported_as_luigi_does(self):
        class Factory(mf.WorkerSchedulerFactory):
            def create_worker(self, scheduler, worker_processes=1, assistant=False):
                return LuigiStyleWorker(scheduler)
        result = self.build(Recorder("top", ["left", "right"]),
                            worker_scheduler_factory=Factory())
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
        self.assertIsInstance(result.worker, LuigiStyleWorker)
        self.assertEqual(sorted(task.name for task in result.tasks["completed"]),
                         ["left", "right", "top"])
        self.assertIn("3 ran successfully", result.summary_text)
        self.assertEqual(mf.execution_summary._root_task(result.worker), Recorder(
            "top", ["left", "right"]))
        result = self.build(NeedsExploding(), Recorder("top", ["left"]),
                            worker_scheduler_factory=Factory())
        self.assertEqual(result.status, mf.LuigiStatusCode.FAILED)
        self.assertEqual(result.tasks["failed"], [Exploding()])
        self.assertEqual(result.tasks["upstream_failure"], [NeedsExploding()])
        self.assertEqual(result.tasks["already_done"], [Recorder("top", ["left"])])
        self.assertFalse(result.scheduling_succeeded)
        self.assertEqual(set(mf.execution_summary._summary_dict(result.worker)["failed"]),
                         {Exploding()})

    def test_interface_run_gives_the_result_and_raises_when_the_command_runs(self):
        with tempfile.TemporaryDirectory() as folder, \
                mf.config_override({"core": {"lock_pid_dir": folder}}), \
                self.assertLogs("microflow", "INFO"):
            result = mf.interface._run(["Recorder", "--name", "via-run"])
            self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS)
            self.assertIsInstance(result.worker, mf.Worker)
            argv = ["Recorder", "--name", "locked"]
            with mf._pid_lock("microflow " + " ".join(argv), folder) as held, \
                    contextlib.redirect_stderr(io.StringIO()) as err:
                self.assertIsNotNone(held)
                with self.assertRaises(mf.interface.PidLockAlreadyTakenExit) as raised:
                    mf.interface._run(argv)
        self.assertEqual(raised.exception.code, 10)
        self.assertIn("already running this command", err.getvalue())
        self.assertNotIn("locked", Recorder.runs)

    def run_submitting(self, *tasks, **options):
        SubmittingWorker.submitted.clear()

        class Factory(mf.WorkerSchedulerFactory):
            def create_worker(self, scheduler, worker_processes=1, assistant=False):
                return SubmittingWorker(scheduler, processes=worker_processes, **options)
        with unittest.mock.patch.dict(os.environ, MICROFLOW_TEST_FILESTEP=str(self.tmp)), \
                unittest.mock.patch.object(FileStep, "folder", str(self.tmp)):
            return self.build(*tasks, workers=2, worker_scheduler_factory=Factory())

    def test_create_task_process_submits_each_task(self):
        result = self.run_submitting(FileStep("b"))
        self.assertEqual(result.status, mf.LuigiStatusCode.SUCCESS, result.summary_text)
        self.assertEqual(SubmittingWorker.submitted, [FileStep("a").task_id,
                                                      FileStep("b").task_id])
        self.assertEqual((self.tmp / "filestep-b.txt").read_text(), "b")

    def test_a_submitted_task_that_dies_or_outlives_its_time_fails(self):
        result = self.run_submitting(FileStep("fail"), FileStep("hang"))
        self.assertEqual(result.status, mf.LuigiStatusCode.FAILED)
        errors = {task.name: text for task, text in result.errors.items()}
        self.assertIn("died unexpectedly with exit code 3", errors["fail"])
        self.assertIn("timed out after 1 seconds", errors["hang"])
        self.assertEqual(sorted(SubmittingWorker.submitted),
                         sorted([FileStep("fail").task_id, FileStep("hang").task_id]))


LUIGI_PIPELINE = '''
import luigi
from luigi.util import requires
from luigi.tools.range import RangeDaily


class Hello(luigi.Task):
    name = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(f"hello-{self.name}.txt")

    def run(self):
        with self.output().open("w") as f:
            f.write(f"hello {self.name}")


@requires(Hello)
class Shout(luigi.Task):
    def output(self):
        return luigi.LocalTarget(f"shout-{self.name}.txt")

    def run(self):
        with self.input().open() as i, self.output().open("w") as o:
            o.write(i.read().upper())
'''


class TestInstallAsLuigi(TempDirMixin, unittest.TestCase):
    """Each case in a fresh interpreter: the switch changes the process's imports."""

    def python(self, code, *args, cwd=None):
        (self.tmp / "pipeline.py").write_text(LUIGI_PIPELINE)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]))
        env.pop("LUIGI_CONFIG_PATH", None)
        return subprocess.run([sys.executable, *(["-c", code] if code else []), *args],
                              cwd=cwd or self.tmp, capture_output=True, text=True,
                              env=env, timeout=60)

    def test_nothing_is_hooked_unless_asked(self):
        done = self.python("import sys, microflow, microflow.util\n"
                           "print('luigi' in sys.modules, microflow._LuigiFinder in "
                           "sys.meta_path, hasattr(microflow, '__path__'))")
        self.assertEqual(done.stdout.split(), ["False", "False", "False"], done.stderr)

    def test_luigi_code_runs_on_microflow(self):
        done = self.python(textwrap.dedent("""\
            import microflow
            microflow.install_as_luigi()
            import luigi, luigi.worker, pipeline
            from luigi.parameter import ConfigPath, _no_value
            from luigi.tools.range import RangeDaily
            assert luigi is microflow and RangeDaily is microflow.RangeDaily
            assert luigi.worker.Worker is microflow.Worker
            print(luigi.build([pipeline.Shout(name="ann")], local_scheduler=True))
            try:
                import luigi.contrib.s3
            except ImportError as exc:
                print(exc)
            """))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines(), [
            "True", "No module named 'luigi.contrib': microflow, installed as luigi, does "
            "not provide it (Luigi's contrib modules need Luigi and their own packages)"])
        self.assertEqual((self.tmp / "shout-ann.txt").read_text(), "HELLO ANN")

    def test_luigi_is_an_installed_distribution_only_once_installed(self):
        done = self.python(textwrap.dedent("""\
            import importlib.metadata as metadata, microflow
            try:
                metadata.version("luigi")
            except metadata.PackageNotFoundError:
                print("not before")
            microflow.install_as_luigi()
            print(metadata.version("luigi"), metadata.distribution("luigi").metadata["Name"])
            """))
        self.assertEqual(done.stdout.split(), ["not", "before", mf.LUIGI_VERSION, "luigi"],
                         done.stderr)

    def test_a_replaced_or_patched_luigi_name_takes_effect(self):
        done = self.python(textwrap.dedent("""\
            import warnings
            from unittest import mock
            import microflow
            microflow.install_as_luigi()
            import luigi, luigi.interface, luigi.parameter, luigi.worker, pipeline
            runs, started = [], []
            original = luigi.interface._schedule_and_run
            def wrapped(*args, **kwargs):   # as a library wraps every run
                runs.append(len(args[0]))
                return original(*args, **kwargs)
            luigi.interface._schedule_and_run = wrapped
            class Counting(luigi.worker.Worker):
                def run(self):
                    started.append(self)
                    return super().run()
            with mock.patch("luigi.worker.Worker", Counting):
                print(luigi.build([pipeline.Shout(name="p")], local_scheduler=True))
            print(runs, len(started), microflow.Worker is not Counting)
            print(luigi.parameter.operator.le(1, 2))
            class Odd(luigi.Task):
                count = luigi.OptionalIntParameter(default=None)
            with mock.patch("luigi.parameter.warnings") as patched:
                Odd(count="3")   # a str where an int or None belongs: warned
            print(patched.warn.called, microflow.warnings is warnings)
            """))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines(), ["True", "[1] 1 True", "True",
                                                    "True True"])

    def test_the_command_line_switch(self):
        done = self.python(None, "-m", "microflow", "--module", "pipeline", "Shout",
                           "--name", "bo", "--no-lock")
        self.assertEqual(done.returncode, 2)
        self.assertIn("No module named 'luigi'; for code written for Luigi, add --as-luigi",
                      done.stderr)
        done = self.python(None, "-m", "microflow", "--as-luigi", "--module", "pipeline",
                           "Shout", "--name", "bo", "--no-lock")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("2 ran successfully", done.stderr)
        self.assertEqual((self.tmp / "shout-bo.txt").read_text(), "HELLO BO")

    def test_refused_when_the_real_luigi_is_imported(self):
        done = self.python("import sys, types, microflow\n"
                           "sys.modules['luigi'] = types.ModuleType('luigi')\n"
                           "microflow.install_as_luigi()")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("call microflow.install_as_luigi() before the first import luigi",
                      done.stderr)

    def test_the_console_script_imports_modules_from_the_current_folder(self):
        scripts = self.tmp / "bin"
        scripts.mkdir()
        (scripts / "microflow").write_text("import sys\nfrom microflow import main\n"
                                           "sys.exit(main())\n")   # as pip writes it
        (self.tmp / "clitasks.py").write_text(CLI_MODULE)
        env = dict(os.environ, PYTHONPATH=str(HERE))   # the current folder not on it
        done = subprocess.run([sys.executable, str(scripts / "microflow"), "--module",
                               "clitasks", "Greet", "--name", "cs", "--no-lock"],
                              cwd=self.tmp, capture_output=True, text=True, env=env,
                              timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual((self.tmp / "greet-cs.txt").read_text(), "hello cs")
        helped = subprocess.run([sys.executable, str(scripts / "microflow"), "--help"],
                                cwd=self.tmp, capture_output=True, text=True, env=env,
                                timeout=60)
        self.assertTrue(helped.stdout.startswith("usage: microflow [--module"), helped.stdout)


LOGGING_BUILD = """
import logging, sys, microflow, test_microflow as t
how = sys.argv[1]
if how == "luigi-config":      # an application's configuration written for Luigi
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("LUIGI-INTERFACE %(levelname)s %(message)s"))
    logging.getLogger("luigi-interface").addHandler(handler)
    logging.getLogger("luigi-interface").setLevel(logging.INFO)
options = {"log_level": "WARNING"} if how == "warning" else {}
microflow.build([t.Recorder("logged", [])], **options)
"""


class TestLoggingAsAsked(TempDirMixin, unittest.TestCase):
    def build(self, how):
        return subprocess.run([sys.executable, "-c", LOGGING_BUILD, how], cwd=self.tmp,
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, PYTHONPATH=str(HERE)))

    def test_build_log_level(self):
        done = self.build("default")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("INFO: [pid", done.stderr)
        self.assertIn("Luigi Execution Summary", done.stderr)
        done = self.build("warning")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stderr, "")

    def test_a_logging_configuration_written_for_luigi_applies(self):
        done = self.build("luigi-config")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("LUIGI-INTERFACE INFO [pid", done.stdout)
        self.assertNotIn("INFO:", done.stderr)   # its handler, not microflow's own

    def cli(self, *args, config=None):
        (self.tmp / "clitasks.py").write_text(CLI_MODULE)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(self.tmp)]))
        env.pop("LUIGI_CONFIG_PATH", None)
        if config:
            (self.tmp / "luigi.cfg").write_text(config)
        (self.tmp / "greet-x.txt").unlink(missing_ok=True)   # so the task runs each time
        return subprocess.run([sys.executable, "-m", "microflow", "--module", "clitasks",
                               "Greet", "--name", "x", "--no-lock", *args], cwd=self.tmp,
                              capture_output=True, text=True, env=env, timeout=60)

    def test_command_line_log_level_in_both_spellings(self):
        for args, shown, hidden in [
                (["--log-level=DEBUG"], "DEBUG: get_work", None),
                (["--log-level", "DEBUG"], "DEBUG: get_work", None),
                (["--log-level=WARNING"], None, "INFO:"),
                (["--log-level", "CRITICAL"], None, "INFO:"),
                (["--log-level=INFO"], "INFO: [pid", "DEBUG:")]:
            with self.subTest(args=args):
                done = self.cli(*args)
                self.assertEqual(done.returncode, 0, done.stderr)
                if shown:
                    self.assertIn(shown, done.stderr)
                if hidden:
                    self.assertNotIn(hidden, done.stderr)
        done = self.cli("--log-level=LOUD")
        self.assertEqual(done.returncode, 2)
        self.assertIn("unknown log level 'LOUD'", done.stderr)

    def test_no_configure_logging_leaves_logging_alone(self):
        done = self.cli(config="[core]\nno_configure_logging = true\n")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertNotIn("INFO:", done.stderr)
        self.assertNotIn("Execution Summary", done.stderr)



###########################################################################################
# Seeing a run: the change feed, task history, metrics, the page's server
###########################################################################################

def http_get(url, headers=None, body=None):
    """``(status, headers, body bytes)`` of a GET (a POST with ``body``), whatever the
    status."""
    import urllib.error
    import urllib.request
    request = urllib.request.Request(url, body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


class Slow(mf.Task):
    """A task that fails when told to, for history and metrics."""
    n = mf.IntParameter()
    fail = mf.BoolParameter(default=False)

    def output(self):
        return mf.MockTarget(f"slow/{self.n}")

    def run(self):
        if self.fail:
            raise RuntimeError(f"task {self.n} was told to fail")
        with self.output().open("w") as f:
            f.write("ok")


class SlowAll(mf.WrapperTask):
    fail = mf.BoolParameter(default=False)

    def requires(self):
        return [Slow(n, fail=self.fail and n == 2) for n in range(4)]


class TestChangeFeed(SchedulerCase):
    def fields(self, reply, task_id):
        return dict(zip(reply["fields"], reply["tasks"][task_id]))

    def test_changes_since_a_version_are_only_what_changed(self):
        for name in "abcdef":
            self.add(name, family="F")
        first = self.scheduler.changes(0)
        self.assertTrue(first["reload"])        # the feed starts: here is every task
        self.assertEqual(sorted(first["tasks"]), list("abcdef"))
        version = self.scheduler.changes(first["version"])["version"]
        quiet = self.scheduler.changes(version)
        self.assertEqual((quiet["tasks"], quiet["removed"], quiet["reload"]), ({}, [], False))
        self.assertLessEqual(len(json.dumps({"response": quiet})), 1024)
        self.scheduler.set_task_status_message("b", "half way")
        self.assertEqual(self.work(), "a")
        reply = self.scheduler.changes(version)
        self.assertEqual(sorted(reply["tasks"]), ["a", "b"])
        self.assertEqual(self.fields(reply, "a")["status"], mf.RUNNING)
        self.assertEqual(self.fields(reply, "b")["status_message"], "half way")
        self.assertEqual(self.fields(reply, "b")["display_name"], "F()")
        self.assertEqual(self.scheduler.changes(reply["version"])["tasks"], {})

    def test_a_forgotten_task_is_said_removed_and_most_changed_is_a_reload(self):
        for n in range(10):
            self.add(f"t{n}")
        start = self.scheduler.changes(0)["version"]
        self.add("gone")
        self.scheduler._delete(self.scheduler._tasks["gone"])
        reply = self.scheduler.changes(start)
        self.assertEqual((reply["tasks"], reply["removed"]), ({}, ["gone"]))
        for n in range(6):   # more than half: the whole list again, in one reply
            self.scheduler.set_task_status_message(f"t{n}", "busy")
        reply = self.scheduler.changes(reply["version"])
        self.assertTrue(reply["reload"])
        self.assertEqual(len(reply["tasks"]), 10)


class TestTaskHistory(TempDirMixin, BuildCase):
    def config(self):
        return mf.config_override({
            "scheduler": {"record_task_history": "true"},
            "task_history": {"db_connection": f"sqlite:///{self.tmp / 'history.db'}"}})

    def test_builds_are_recorded_in_luigis_tables(self):
        import socket
        import sqlite3
        with self.config():
            self.build(SlowAll())
            mf.MockFileSystem().clear()
            result = self.build(SlowAll(fail=True))
        self.assertEqual(result.tasks["failed"], [Slow(2, fail=True)])
        with contextlib.closing(sqlite3.connect(self.tmp / "history.db")) as db:
            runs = db.execute("SELECT t.name, t.host, group_concat(e.event_name, ' ') "
                              "FROM tasks t JOIN task_events e ON e.task_id = t.id "
                              "WHERE t.task_id = ? GROUP BY t.id ORDER BY t.id",
                              (Slow(2, fail=True).task_id,)).fetchall()
            self.assertEqual(runs, [("Slow", socket.gethostname(), "PENDING RUNNING FAILED")])
            params = dict(db.execute(
                "SELECT p.name, p.value FROM task_parameters p JOIN tasks t "
                "ON p.task_id = t.id WHERE t.task_id = ?", (Slow(1).task_id,)))
            self.assertEqual(params, {"n": "1", "fail": "False"})
            done = db.execute("SELECT count(*) FROM tasks t JOIN task_events e ON "
                              "e.task_id = t.id WHERE e.event_name = 'DONE' AND "
                              "t.name = 'Slow'").fetchone()[0]
            self.assertEqual(done, 4 + 3)   # all four, then the three that did not fail
            stamp = db.execute("SELECT ts FROM task_events LIMIT 1").fetchone()[0]
            datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")   # SQLAlchemy's form
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    def test_the_server_serves_a_familys_runs(self):
        with self.config(), mf.SchedulerServer(port=0) as server:
            self.assertTrue(server.scheduler.has_task_history())
            client = mf.RemoteScheduler(server.url, attempts=1)
            self.addCleanup(client.close)
            self.build(SlowAll(fail=True), scheduler=client)
            server.scheduler._history.flush()
            runs = client.task_history(family="Slow")
            self.assertEqual(len(runs), 4)
            failed = [run for run in runs if run["params"]["n"] == "2"][0]
            self.assertEqual([event for event, _ in failed["events"]],
                             [mf.PENDING, mf.RUNNING, mf.FAILED])
            self.assertEqual(client.task_history(task_id=failed["task_id"])[0]["id"],
                             failed["id"])

    def test_the_root_and_a_dynamic_dependency_have_their_pending_too(self):
        class YieldsSlow(mf.Task):
            def run(self):
                yield Slow(7)

            def output(self):
                return mf.MockTarget("yields-slow")
        with self.config():
            scheduler = mf.Scheduler()
            self.build(SlowAll(fail=True), YieldsSlow(), scheduler=scheduler)
            scheduler.close()
            scheduler = mf.Scheduler()
            self.addCleanup(scheduler.close)
            events = {family: [event for event, _ in run["events"]] for family in
                      ("SlowAll", "YieldsSlow") for run in scheduler.task_history(family)}
            dynamic = scheduler.task_history(task_id=Slow(7).task_id)[0]["events"]
        self.assertEqual(events["SlowAll"], [mf.PENDING])   # its dependency failed
        self.assertEqual(events["YieldsSlow"][0], mf.PENDING)
        self.assertEqual([event for event, _ in dynamic], [mf.PENDING, mf.RUNNING, mf.DONE])

    def test_a_database_other_than_sqlite_is_refused_naming_the_setting(self):
        with mf.config_override({"scheduler": {"record_task_history": "true"},
                                 "task_history": {"db_connection": "postgresql://db/x"}}):
            with self.assertRaisesRegex(mf.ConfigError, r"\[task_history\] db_connection: "
                                        r"microflow records history in SQLite only"):
                mf.Scheduler()
        with mf.config_override({"scheduler": {"record_task_history": "true"}}):
            with self.assertRaisesRegex(mf.ConfigError, r"\[task_history\] db_connection "
                                        r"\(sqlite:///path\) is not set"):
                mf.Scheduler()


def parse_metrics(text):
    """Prometheus' text format: ``{(name, frozenset(labels)): value}`` and the TYPE of
    each family; raises on a line that is neither a comment nor a sample."""
    import re
    samples, types_ = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types_[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        match = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        if match is None:
            raise AssertionError(f"not a sample: {line!r}")
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples[match.group(1), labels] = float(match.group(3))
    return samples, types_


def raw_request(url, verb, path, headers, body=b""):
    """``(status, error text)`` of one request with exactly ``headers`` (http.client
    adds no Host of its own when one is given), as a browser or a worker sends it."""
    import http.client
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest(verb, path, skip_host="Host" in headers,
                              skip_accept_encoding=True)
        for name, value in dict(headers, **{"Content-Length": str(len(body))}).items():
            connection.putheader(name, value)
        connection.endheaders(body)
        reply = connection.getresponse()
        data = reply.read()
        return reply.status, json.loads(data).get("error", "") if data[:1] == b"{" else ""
    finally:
        connection.close()


# What another site makes the user's browser send, and what a worker or curl sends.
CROSS_SITE_IMAGE = ("GET", "/api/pause?data=%7B%7D",
                    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
                     "Sec-Fetch-Dest": "image", "User-Agent": "Mozilla/5.0 (X11; Linux)"})
OLD_BROWSER_IMAGE = ("GET", "/api/pause?data=%7B%7D",   # no fetch metadata (old Safari)
                     {"User-Agent": "Mozilla/5.0 (Macintosh)", "Accept": "image/*"})
CROSS_ORIGIN_FORM = ("POST", "/api/pause",
                     {"Origin": "http://evil.example",
                      "Content-Type": "application/x-www-form-urlencoded"}, b"data=%7B%7D")
SAME_SITE_OTHER_PORT = ("POST", "/api/pause", {"Sec-Fetch-Site": "same-site",
                                               "Origin": "http://127.0.0.1:1"}, b"data={}")
NULL_ORIGIN_FORM = ("POST", "/api/pause", {"Origin": "null"}, b"data={}")
REBOUND_READ = ("GET", "/api/task_list?data=%7B%7D", {"Host": "evil.example:8082"})


class TestNoOtherSiteDrivesTheScheduler(TempDirMixin, BuildCase):
    """A request a browser sends on another site's behalf is refused before it reaches
    the scheduler; a worker's, curl's and the page's own pass."""

    def assert_refused(self, url, scheduler, verb, path, headers, body=b""):
        before = (scheduler.is_paused(), sorted(scheduler.task_list("", "")))
        with self.assertLogs("microflow", "WARNING") as logs:
            status, why = raw_request(url, verb, path, headers, body)
        self.assertIn(status, (403, 405, 421), (verb, path, headers))
        self.assertTrue(why and "\n" not in why, why)   # one line, saying why
        self.assertIn(why, logs.output[0])
        self.assertEqual((scheduler.is_paused(), sorted(scheduler.task_list("", ""))),
                         before)
        return status, why

    def check_server(self, url, scheduler):
        cases = [CROSS_SITE_IMAGE, OLD_BROWSER_IMAGE, CROSS_ORIGIN_FORM,
                 SAME_SITE_OTHER_PORT, NULL_ORIGIN_FORM, REBOUND_READ]
        reasons = [self.assert_refused(url, scheduler, *case) for case in cases]
        self.assertEqual([status for status, _ in reasons], [403, 405, 403, 403, 403, 421])
        self.assertIn("Sec-Fetch-Site: cross-site", reasons[0][1])
        self.assertIn("pause changes the scheduler: a browser must send it by POST",
                      reasons[1][1])
        self.assertIn("Origin http://evil.example", reasons[2][1])
        self.assertIn("Host 'evil.example:8082' is not a name of this server", reasons[5][1])
        self.assertEqual(scheduler.is_paused(), {"paused": False})
        port = url.rsplit(":", 1)[1]
        for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "[::1]",
                     f"[::1]:{port}", "LOCALHOST."):   # the names of a loopback server
            self.assertEqual(raw_request(url, "GET", "/api/is_paused", {"Host": host})[0],
                             200, host)
        for page_read in ({"Sec-Fetch-Site": "same-origin", "User-Agent": "Mozilla/5.0"},
                          {"Sec-Fetch-Site": "none", "User-Agent": "Mozilla/5.0"}):
            self.assertEqual(raw_request(url, "GET", "/", page_read)[0], 200)
        # curl's GET of an action (no browser's headers) and the page's own POST pass
        self.assertEqual(raw_request(url, "GET", "/api/pause", {"User-Agent": "curl/8"})[0],
                         200)
        self.assertEqual(raw_request(url, "POST", "/api/unpause",
                                     {"Origin": f"http://localhost:{port}",
                                      "Host": f"localhost:{port}",
                                      "Sec-Fetch-Site": "same-origin"}, b"data={}")[0], 200)
        self.assertEqual(scheduler.is_paused(), {"paused": False})

    def test_a_central_scheduler_refuses_what_other_sites_send(self):
        scheduler = mf.Scheduler()
        with mf.SchedulerServer(scheduler, port=0) as server:
            scheduler.add_task(task_id="t", worker="w", status=mf.PENDING)
            self.check_server(server.url, scheduler)
            worker = mf.RemoteScheduler(server.url, attempts=1, batch=False)   # a POST
            self.addCleanup(worker.close)
            worker.add_task(task_id="u", worker="w", status=mf.PENDING)
            self.assertEqual(sorted(scheduler.task_list("", "")), ["t", "u"])

    def test_the_page_of_a_local_build_refuses_them_too(self):
        port = free_port()
        checked = []

        class Probe(mf.Task):
            def complete(self):
                return bool(checked)

            def run(self):
                checked.append(self)

        original = mf.SchedulerServer.start

        def start(server):   # the build's page: checked while the build runs
            started = original(server)
            test.check_server(server.url, server.scheduler)
            checked.append(server.url)
            return started
        test = self
        with unittest.mock.patch.object(mf.SchedulerServer, "start", start):
            result = self.build(Probe(), status_port=port)
        self.assertTrue(result.scheduling_succeeded, self.logged)
        self.assertEqual(checked[0], f"http://127.0.0.1:{port}")

    def test_names_given_are_accepted_and_an_open_server_says_so(self):
        with self.assertLogs("microflow", "WARNING") as logs:
            server = mf.SchedulerServer(address="0.0.0.0", port=0)   # no names, no token
        server.start()
        self.addCleanup(server.stop)
        self.assertIn("reachable from other hosts and takes no token", logs.output[0])
        self.assertIn("any Host name is accepted (--allow-host NAME", logs.output[0])
        url = f"http://127.0.0.1:{server.port}"
        self.assertEqual(raw_request(url, "GET", "/api/is_paused",
                                     {"Host": "build-box.lan:8082"})[0], 200)
        with self.assertLogs("microflow", "WARNING"):
            self.assertEqual(raw_request(url, *CROSS_ORIGIN_FORM)[0], 403)   # Origin still
        with mf.SchedulerServer(address="0.0.0.0", port=0, token="t",
                                allowed_hosts=["Sched.Example.com"]) as named:
            url = f"http://127.0.0.1:{named.port}"
            for host, status in (("sched.example.com", 200), ("sched.example.com:443", 200),
                                 ("localhost", 200)):
                self.assertEqual(raw_request(url, "GET", "/api/is_paused",
                                             {"Host": host})[0], status, host)
            with self.assertLogs("microflow", "WARNING"):
                self.assertEqual(raw_request(url, "GET", "/api/is_paused",
                                             {"Host": "evil.example"})[0], 421)
            behind_proxy = {"Host": "sched.example.com", "Authorization": "Bearer t",
                            "Origin": "https://sched.example.com",
                            "Sec-Fetch-Site": "same-origin"}
            self.assertEqual(raw_request(url, "POST", "/api/pause", behind_proxy,
                                         b"data={}")[0], 200)
            self.assertEqual(named.scheduler.is_paused(), {"paused": True})

    def test_allow_host_on_the_command_line(self):
        process, url = start_server_process("--allow-host", "sched.example.com")
        try:
            self.assertEqual(raw_request(url, "GET", "/api/is_paused",
                                         {"Host": "sched.example.com:8082"})[0], 200)
            self.assertEqual(raw_request(url, "GET", "/api/is_paused",
                                         {"Host": "other.example"})[0], 421)
        finally:
            process.terminate()
            process.wait(30)


class TestMetricsAndTheAPI(TempDirMixin, BuildCase):
    def test_metrics_count_what_ran_in_prometheus_text(self):
        with mf.SchedulerServer(port=0) as server:
            client = mf.RemoteScheduler(server.url, attempts=1)
            self.addCleanup(client.close)
            self.build(SlowAll(fail=True), scheduler=client)
            status, headers, body = http_get(server.url + "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        samples, kinds = parse_metrics(body.decode())
        slow = frozenset({("family", "Slow")})
        self.assertEqual(samples["luigi_task_started_total", slow], 4)
        self.assertEqual(samples["luigi_task_done_total", slow], 3)
        self.assertEqual(samples["luigi_task_failed_total", slow], 1)
        self.assertEqual(samples["microflow_tasks", frozenset({("status", "FAILED")})], 1)
        self.assertEqual(samples["microflow_task_duration_seconds_count", slow], 4)
        self.assertEqual(kinds["microflow_task_duration_seconds"], "histogram")
        self.assertEqual(kinds["luigi_task_started_total"], "counter")
        get_work = frozenset({("method", "get_work")})
        calls = samples["microflow_scheduler_call_seconds_count", get_work]
        self.assertGreaterEqual(calls, 2)   # quick tasks come several a call
        buckets = sorted((float(dict(labels)["le"].replace("+Inf", "inf")), value)
                         for (name, labels), value in samples.items()
                         if name == "microflow_scheduler_call_seconds_bucket"
                         and ("method", "get_work") in labels)
        self.assertEqual([value for _, value in buckets],
                         sorted(value for _, value in buckets))   # cumulative
        self.assertEqual(buckets[-1], (float("inf"), calls))

    def test_api_answers_as_luigi_and_refuses_bad_bodies_with_4xx(self):
        import gzip
        import urllib.parse
        with mf.SchedulerServer(port=0, token="sekrit") as server:
            client = mf.RemoteScheduler(server.url, token="sekrit", attempts=1)
            self.addCleanup(client.close)
            self.build(SlowAll(), scheduler=client)
            workers = client.worker_list()
            self.assertGreater(workers[0]["started"], 1e9)   # when first seen, not 0

            def api(method, data, **headers):   # posted: a GET that long is a 414
                return http_get(f"{server.url}/api/{method}", headers,
                                urllib.parse.urlencode({"data": data}).encode())
            status, headers, body = api("graph", "{}", **{"Accept-Encoding": "gzip"})
            self.assertEqual((status, headers["Content-Encoding"]), (200, "gzip"))
            self.assertEqual(len(json.loads(gzip.decompress(body))["response"]), 5)
            status, headers, _ = api("mark_as_done", '{"task_id": "x"}')
            self.assertEqual(status, 401)
            self.assertEqual(headers["WWW-Authenticate"], 'Bearer realm="microflow"')
            for data, why in [('{"status": "", "search": 5}', "'search' must be str"),
                              ("[" * 100000 + "]" * 100000, "nested too deeply"),
                              ('{"task_id": ', "not JSON")]:
                status, _, body = api("task_list", data)
                self.assertEqual(status, 400, data[:30])
                self.assertIn(why, json.loads(body)["error"])
            self.assertEqual(api("fetch_error", '{"task_id": "gone"}')[2],
                             b'{"response": {"taskId": "gone", "error": ""}}')
            status, headers, body = http_get(server.url + "/static/visualiser/index.html")
            self.assertEqual(status, 200)            # followed the redirect to the page
            self.assertIn(b"<title>microflow</title>", body)
            self.assertLessEqual(len(body), 60 * 1024)
            self.assertIn("script-src 'sha256-", headers["Content-Security-Policy"])

    def test_a_local_build_serves_its_status_page_while_it_runs(self):
        port = free_port()
        seen = {}

        class Look(mf.Task):
            def complete(self):
                return "reply" in seen

            def run(self):
                status, _, body = http_get(f"http://127.0.0.1:{port}/api/task_list?data="
                                           '{"status":"RUNNING","upstream_status":""}')
                seen["reply"] = json.loads(body)["response"]
                seen["page"] = http_get(f"http://127.0.0.1:{port}/")[0]
        result = self.build(Look(), status_port=port)
        self.assertTrue(result.scheduling_succeeded, self.logged)
        self.assertEqual(list(seen["reply"]), [Look().task_id])   # itself, running
        self.assertEqual(seen["page"], 200)
        self.assertIn(f"status page of this build: http://127.0.0.1:{port}/", self.logged)
        import urllib.error
        with self.assertRaises(urllib.error.URLError):   # gone with the build
            http_get(f"http://127.0.0.1:{port}/")
        with self.assertRaisesRegex(mf.UsageError, "status_port must be a port number "
                                    "from 0 to 65535, got 99999"):
            mf.build([Look()], status_port=99999)
        done = subprocess.run([sys.executable, "-m", "microflow", "--module",
                               "examples.hello_world", "HelloWorld", "--status-port",
                               "99999", "--no-lock"], cwd=HERE, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(done.returncode, 2)
        self.assertIn("--status-port: port must be a port number from 0 to 65535, got "
                      "'99999'", done.stderr)



###########################################################################################
# The status page in a real browser (headless Chromium, driven through DevTools)
###########################################################################################

@contextlib.contextmanager
def no_fork_beside_threads(test):
    """Python 3.12+ warns when a process with threads forks (after the fork: -W error
    cannot stop it). Record the warnings of a build beside a live thread and fail on
    that one: the pool must start from a fork server there."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    forks = [str(w.message) for w in caught if "is multi-threaded" in str(w.message)]
    test.assertEqual(forks, [])


def find_chromium():
    """Debian's chromium (or $MICROFLOW_CHROMIUM); None when there is none."""
    return os.environ.get("MICROFLOW_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser") or shutil.which("google-chrome")


class DevTools:
    """A headless Chromium, driven through the DevTools protocol over a WebSocket (a
    small client on the standard library's socket). Started in a process group of its
    own: /usr/bin/chromium is a wrapper script, so it is stopped by its group."""

    def __init__(self, binary, profile):
        import re
        import socket
        import urllib.parse
        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--window-size=1280,800", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        for line in self.process.stderr:
            found = re.search(rb"DevTools listening on (ws://\S+)", line)
            if found:
                break
        else:
            raise AssertionError("chromium did not start its DevTools endpoint")
        threading.Thread(target=drain, args=(self.process.stderr,), daemon=True).start()
        port = urllib.parse.urlparse(found.group(1).decode()).port
        _, _, body = http_get(f"http://127.0.0.1:{port}/json/list")
        page = [target for target in json.loads(body) if target["type"] == "page"][0]
        url = urllib.parse.urlparse(page["webSocketDebuggerUrl"])
        self.sock = socket.create_connection((url.hostname, url.port), timeout=30)
        self.sock.sendall((f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: bWljcm9mbG93LXRlc3RzLQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.reader = self.sock.makefile("rb")
        while self.reader.readline() not in (b"\r\n", b""):
            pass
        self.ids = itertools.count(1)
        self.events = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def _send(self, text):
        data, header = text.encode(), bytearray([0x81])
        if len(data) < 126:
            header.append(0x80 | len(data))
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + len(data).to_bytes(8, "big")
        mask = os.urandom(4)
        self.sock.sendall(bytes(header) + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _receive(self):
        message = b""
        while True:
            first, second = self.reader.read(2)
            length = second & 0x7F
            if length >= 126:
                length = int.from_bytes(self.reader.read(2 if length == 126 else 8), "big")
            payload = self.reader.read(length)
            if first & 0x0F in (0x1, 0x0):
                message += payload
                if first & 0x80:
                    return json.loads(message)

    def call(self, method, **params):
        """One DevTools command; its result. Events met meanwhile are kept."""
        call_id = next(self.ids)
        self._send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition, seconds=10.0):
        """Wait, in the page, until ``condition`` (JavaScript) is truthy; its value."""
        return self.evaluate(
            f"new Promise((ok, no) => {{ const end = Date.now() + {seconds * 1000};"
            f" const test = () => {{ let v; try {{ v = ({condition}); }} catch (e) {{}}"
            f" if (v) ok(v); else if (Date.now() > end) no(new Error('timed out: ' +"
            f" {json.dumps(condition)})); else setTimeout(test, 25); }}; test(); }})")

    def open(self, url):
        self.call("Page.navigate", url=url)

    def errors(self):
        """What the page logged as an error, or threw, since the browser started."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text"))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
            elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(str(params["args"]))
        return found

    def requested(self):
        return [event["params"]["request"]["url"] for event in self.events
                if event.get("method") == "Network.requestWillBeSent"]

    def close(self):
        import signal
        with contextlib.suppress(OSError):
            self.reader.close()
            self.sock.close()
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)
            try:
                self.process.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue


HOSTILE = "<img src=x onerror=window.__xss=1>"


class Hostile(mf.Task):
    """A task whose parameter and traceback hold HTML that must stay text."""
    label = mf.Parameter()

    def requires(self):
        return [Slow(n) for n in range(3)]

    def output(self):
        return mf.MockTarget("hostile")

    def run(self):
        raise RuntimeError("<script>window.__xss=2</script> broke")


class DiamondClean(mf.Task):
    """A newcomer's diamond: the report needs a day's count and its cleaned data, and the
    count needs the cleaned data too."""
    day = mf.IntParameter()

    def output(self):
        return mf.MockTarget(f"clean/{self.day}")

    def run(self):
        self.output().open("w").close()


class DiamondCount(DiamondClean):
    def requires(self):
        return DiamondClean(self.day)

    def output(self):
        return mf.MockTarget(f"count/{self.day}")


class DiamondReport(mf.WrapperTask):
    def requires(self):
        return [task for day in (1, 2) for task in (DiamondCount(day), DiamondClean(day))]


class Many(mf.WrapperTask):
    count = mf.IntParameter()

    def requires(self):
        return [Hostile(HOSTILE)] + [Slow(n) for n in range(self.count)]


@unittest.skipUnless(find_chromium() or os.environ.get("MICROFLOW_REQUIRE_BROWSER"),
                     "no Chromium: the status page's browser tests need Debian's chromium "
                     "package (.ci/run installs it)")
class TestStatusPageInABrowser(TempDirMixin, BuildCase):
    @classmethod
    def setUpClass(cls):   # one browser for the class: it takes a second to start
        if not find_chromium():   # CI asks for them (MICROFLOW_REQUIRE_BROWSER)
            raise AssertionError("the browser tests are required here, and no chromium "
                                 "was found")
        cls.profile = tempfile.mkdtemp(prefix="microflow-chromium-")
        cls.browser = DevTools(find_chromium(), cls.profile)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        shutil.rmtree(cls.profile, True)

    def setUp(self):
        super().setUp()
        self.server = mf.SchedulerServer(port=0, token="sekrit").start()
        self.addCleanup(self.server.stop)
        self.client = mf.RemoteScheduler(self.server.url, token="sekrit", attempts=1)
        self.addCleanup(self.client.close)
        self.build(Many(60), scheduler=self.client)
        self.browser.open("about:blank")
        self.browser.events.clear()
        self.addCleanup(self.check_the_page_kept_to_itself)

    def open(self, fragment=""):
        self.browser.open(f"{self.server.url}/{fragment}")
        self.browser.wait_for("performance.getEntriesByName('list-ready').length")

    def test_counts_and_list_match_the_scheduler(self):
        self.open()
        counts = self.browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#counts [data-status]')]"
            ".map(b => [b.dataset.status, +b.textContent.split(' ')[1]]))")
        graph = self.server.scheduler.graph()
        expected = {status: sum(1 for task in graph.values() if task["status"] == status)
                    for status in counts}
        self.assertEqual(counts, expected)
        self.assertEqual(counts["FAILED"], 1)
        self.assertEqual(counts["PENDING"], 1)   # Many, waiting on the failure
        self.assertEqual(self.browser.evaluate("$('shown').textContent"),
                         f"{len(graph)} of {len(graph)} tasks shown")
        drawn = self.browser.evaluate("document.querySelectorAll('#list .win .row').length")
        self.assertLess(drawn, len(graph))       # virtualised: what fits, not all
        self.browser.evaluate("document.querySelector('[data-status=FAILED]').click()")
        self.browser.wait_for("$('shown').textContent.startsWith('1 of')")
        self.assertIn("status=FAILED", self.browser.evaluate("location.hash"))

    def test_hostile_names_and_tracebacks_render_as_text(self):
        failed = Hostile(HOSTILE).task_id
        self.open(f"#status=FAILED&taskId={failed}")
        error = self.browser.wait_for("document.querySelector('#detail pre.error')"
                                      " && document.querySelector('#detail pre.error')"
                                      ".textContent")
        self.assertIn("<script>window.__xss=2</script> broke", error)
        self.assertIn(f"label={HOSTILE}", self.browser.evaluate(
            "document.querySelector('#list .win .row button').textContent"))
        self.assertEqual(self.browser.evaluate(
            "document.querySelectorAll('#list img, #detail img, #detail script').length"), 0)
        self.assertIsNone(self.browser.evaluate("window.__xss"))
        self.screenshot("list.png")

    def test_an_action_with_the_token_changes_the_state_on_the_page(self):
        failed = Hostile(HOSTILE).task_id
        self.open(f"#taskId={failed}")
        click = ("[...document.querySelectorAll('#detail button')]"
                 ".find(b => b.textContent === 'Mark as done').click()")
        self.browser.wait_for("[...document.querySelectorAll('#detail button')]"
                              ".some(b => b.textContent === 'Mark as done')")
        self.browser.evaluate(click)              # no token yet: refused, and said so
        self.browser.wait_for("$('msg').textContent.includes('needs a token')")
        self.assertEqual(self.server.scheduler.graph()[failed]["status"], mf.FAILED)
        self.client.add_task(worker="elsewhere", task_id="Seen_1", family="Seen",
                             status=mf.PENDING)
        self.client.flush()   # shown by a poll: the refusal's reason is still there
        self.browser.wait_for("[...document.querySelectorAll('#list .row')].some(r => "
                              "r.textContent.includes('Seen'))", 5)
        self.assertIn("needs a token", self.browser.evaluate("$('msg').textContent"))
        self.browser.events.clear()               # that 401 was the point
        self.browser.evaluate("$('token').value = 'sekrit';"
                              "$('token').dispatchEvent(new Event('change'))")
        self.browser.evaluate(click)
        self.browser.wait_for("document.querySelector('#detail .st').textContent === 'DONE'")
        self.assertEqual(self.server.scheduler.graph()[failed]["status"], mf.DONE)
        self.browser.wait_for("document.querySelector('[data-status=FAILED]')"
                              ".textContent === 'FAILED 0'")

    def test_the_list_puts_failures_first_and_its_columns_show_what_there_is(self):
        self.client.add_task(worker="elsewhere", task_id="Late_1", family="Late",
                             status=mf.PENDING)
        self.client.get_work(worker="elsewhere")   # Late_1 runs
        self.client.flush()
        self.open()
        cells = self.browser.evaluate(
            "[...document.querySelectorAll('#list .win .row')].map(r => [r.dataset.id, "
            "...[...r.children].filter(c => getComputedStyle(c).display !== 'none')"
            ".map(c => c.textContent)])")
        self.assertEqual(cells[0][0], Hostile(HOSTILE).task_id)   # the failure first,
        self.assertEqual(cells[1][0], "Late_1")                   # then what runs
        self.assertEqual([len(row) for row in cells[:3]], [5] * 3)   # no empty columns
        self.assertRegex(cells[1][3], r"^\d+\.\d s$")           # running for ...
        self.assertEqual(cells[2][1:4], ["PENDING", "Many(count=60)", ""])
        for row in cells[3:]:                                     # done tasks: how long
            self.assertEqual(row[1], "DONE")                      # they took, and when,
            self.assertRegex(row[3], r"^\d+\.\d s$")             # to the second
            self.assertRegex(row[4], r"^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d$")
        width = self.browser.evaluate("[document.querySelector('#list .win .c1')"
                                      ".offsetWidth, $('list').clientWidth]")
        self.assertGreater(width[0], width[1] / 2)
        self.client.set_task_status_message("Late_1", "copying 3 of 7")
        self.client.flush()   # a message: its column comes back
        self.browser.wait_for("[...document.querySelectorAll('#list .row .c2')].some(c => "
                              "c.textContent === 'copying 3 of 7' && c.offsetWidth > 50)")
        self.browser.evaluate("document.querySelector('[data-tab=workers]').click()")
        self.assertEqual(self.browser.evaluate(   # nothing there that works elsewhere
            "['searchbox', 'hidebox', 'shown'].map(id => $(id).offsetParent)"), [None] * 3)

    def test_a_tasks_details_show_its_parameters_and_a_message_stays_until_closed(self):
        self.open(f"#taskId={Hostile(HOSTILE).task_id}")
        params = self.browser.wait_for(
            "document.querySelector('#detail table.params') && [...document."
            "querySelectorAll('#detail table.params tr')].map(r => [r.cells[0]"
            ".textContent, r.cells[1].textContent])")
        self.assertEqual(params, [["label", HOSTILE]])
        self.browser.evaluate("[...document.querySelectorAll('#detail button')]"
                              ".find(b => b.textContent === 'Mark as done').click()")
        self.browser.wait_for("$('msg').textContent.includes('needs a token')")
        self.browser.events.clear()               # that 401 was the point
        self.assertFalse(self.browser.evaluate("$('msgclose').hidden"))
        self.browser.evaluate("$('msgclose').click()")
        self.assertEqual(self.browser.evaluate("$('msg').textContent"), "")
        self.assertTrue(self.browser.evaluate("$('msgclose').hidden"))

    def test_another_site_in_the_same_browser_cannot_drive_the_scheduler(self):
        import http.server
        open_server = mf.SchedulerServer(port=0).start()   # no token: the default
        self.addCleanup(open_server.stop)
        target = open_server.url   # http://127.0.0.1:PORT; the other site is localhost
        attack = (f'<!doctype html><img src="{target}/api/pause?data=%7B%7D">'
                  f'<iframe name="sink"></iframe><form id="f" method="POST" target="sink" '
                  f'action="{target}/api/pause"><input name="data" value="{{}}"></form>'
                  f'<script>document.getElementById("f").submit()</script>').encode()

        class OtherSite(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(attack)))
                self.end_headers()
                self.wfile.write(attack)

            def log_message(self, *args):
                pass
        site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtherSite)
        threading.Thread(target=site.serve_forever, daemon=True).start()
        self.addCleanup(site.server_close)
        self.addCleanup(site.shutdown)
        with self.assertLogs("microflow", "WARNING") as logs:
            self.browser.open(f"http://localhost:{site.server_address[1]}/")
            self.browser.wait_for("document.readyState === 'complete'")
            deadline = time.monotonic() + 10   # the form's POST lands after the load
            while len(logs.output) < 2 and time.monotonic() < deadline:
                threading.Event().wait(0.05)
        refused = sorted(line.split("refused ")[1].split(" from")[0] for line in logs.output)
        self.assertEqual(refused, ["GET /api/pause", "POST /api/pause"], logs.output)
        self.assertIn("Sec-Fetch-Site: cross-site", "".join(logs.output))
        self.assertEqual(open_server.scheduler.is_paused(), {"paused": False})
        self.browser.open("about:blank")
        self.browser.events.clear()   # the other site's requests were the point

    def test_a_status_change_shows_within_five_seconds(self):
        self.open()
        started = time.monotonic()
        self.client.add_task(worker="elsewhere", task_id="Late_1", family="Late",
                             status=mf.PENDING)
        self.client.get_work(worker="elsewhere")   # Late_1 runs
        self.client.set_task_status_message("Late_1", "copying 3 of 7")
        self.client.flush()                        # held back until now: sent
        self.browser.wait_for("[...document.querySelectorAll('#list .row')].some(r => "
                              "r.textContent.includes('copying 3 of 7'))", 5)
        self.assertLess(time.monotonic() - started, 5)
        self.assertIn("RUNNING 1", self.browser.evaluate("$('counts').textContent"))

    def test_workers_with_when_they_were_first_seen(self):
        self.open("#tab=workers")
        rows = self.browser.wait_for(
            "document.querySelectorAll('#workers tr').length > 1 && [...document."
            "querySelectorAll('#workers tr')].slice(1).map(r => [...r.cells].map("
            "c => c.textContent))")
        worker = self.server.scheduler.worker_list()[0]
        self.assertEqual(rows[0][0], worker["name"])
        self.assertNotIn("1970", rows[0][2])     # first seen: a real date
        self.assertTrue(rows[0][2])

    def test_a_familys_past_runs_from_the_task_history(self):
        history = self.tmp / "history.db"
        with mf.config_override({"scheduler": {"record_task_history": "true"},
                                 "task_history": {"db_connection": f"sqlite:///{history}"}}):
            with mf.SchedulerServer(port=0) as server:
                self.server_url = server.url   # the page comes from this one
                client = mf.RemoteScheduler(server.url, attempts=1)
                self.addCleanup(client.close)
                for fail in (False, True):
                    mf.MockFileSystem().clear()
                    self.build(SlowAll(fail=fail), scheduler=client)
                server.scheduler._history.flush()
                self.browser.open(f"{server.url}/#taskId={Slow(2, fail=True).task_id}")
                rows = self.browser.wait_for(
                    "document.querySelector('#detail .history') && [...document."
                    "querySelectorAll('#detail .history tr')].slice(1).map(r => "
                    "r.cells[1].textContent)")
                # As in Luigi, a task's row lasts as long as the scheduler keeps the
                # task: the three that ran twice have one row each, two runs in it.
                self.assertEqual(sorted(rows), ["DONE"] * 4 + ["FAILED"])
                self.assertEqual(self.browser.evaluate(
                    "document.querySelectorAll('#detail .history rect').length"), 5)

    def drawn_graph(self, task_id, screenshot=None):
        """The graph of ``task_id`` as drawn: its nodes' boxes, its edges, the labels
        that leave their box, and whether every node can be scrolled into view."""
        self.browser.open("about:blank")   # a new page: its own marks
        self.open(f"#tab=graph&taskId={task_id}")
        self.browser.wait_for("performance.getEntriesByName('graph-drawn').length")
        if screenshot:
            self.screenshot(screenshot)   # as opened, before the checks scroll it
        return self.browser.evaluate("""(() => {
          const box = $('graph'), nodes = {}, outside = [], hidden = [];
          for (const n of document.querySelectorAll('#graph g.node')) {
            const r = n.querySelector('rect').getBBox(), t = n.querySelector('text').getBBox();
            nodes[n.dataset.id] = [r.x, r.y, r.width];
            if (t.x < r.x || t.x + t.width > r.x + r.width || t.y < r.y ||
                t.y + t.height > r.y + r.height) outside.push(n.dataset.id);
            n.scrollIntoView({block: 'nearest', inline: 'nearest'});
            const s = n.getBoundingClientRect(), b = box.getBoundingClientRect();
            if (s.left < b.left - 1 || s.right > b.right + 1 || s.top < b.top - 1 ||
                s.bottom > b.bottom + 1) hidden.push(n.dataset.id);
          }
          const edges = [...document.querySelectorAll('#graph path.edge')].map(e =>
            [e.dataset.from, e.dataset.to, e.getAttribute('marker-end')]);
          return {nodes, edges, outside, hidden, arrows: document.querySelectorAll(
            '#graph marker#arrow path').length, page: document.scrollingElement.scrollHeight
            <= innerHeight && document.scrollingElement.scrollWidth <= innerWidth};
        })()""")

    def assert_points_one_way(self, drawn, scheduler):
        """Every requirement between two drawn tasks is an edge, with an arrowhead, from
        a box left of the task that needs it; every label inside its box; every box
        reachable by scrolling the graph, and nothing beyond the window."""
        graph = scheduler.graph()
        expected = {(dep, task_id) for task_id in drawn["nodes"]
                    for dep in graph[task_id]["deps"] if dep in drawn["nodes"]}
        self.assertEqual({(a, b) for a, b, _ in drawn["edges"]}, expected)
        for requirement, task_id, arrow in drawn["edges"]:
            x, _, width = drawn["nodes"][requirement]
            self.assertLess(x + width, drawn["nodes"][task_id][0], (requirement, task_id))
            self.assertEqual(arrow, "url(#arrow)")
        self.assertEqual(drawn["arrows"], 1)
        self.assertEqual(drawn["outside"], [])
        self.assertEqual(drawn["hidden"], [])
        self.assertTrue(drawn["page"])

    def screenshot(self, name):
        """With $MICROFLOW_SCREENSHOTS, the window as a PNG there (for the README)."""
        folder = os.environ.get("MICROFLOW_SCREENSHOTS")
        if folder:
            import base64
            data = self.browser.call("Page.captureScreenshot", format="png")["data"]
            pathlib.Path(folder, name).write_bytes(base64.b64decode(data))

    def test_a_diamond_is_drawn_with_every_requirement_on_the_left(self):
        self.build(DiamondReport(), scheduler=self.client)
        drawn = self.drawn_graph(DiamondReport().task_id)
        self.assertEqual(len(drawn["nodes"]), 5)
        self.assertEqual(len(drawn["edges"]), 6)   # the newcomer's diamond: Clean left
        self.assert_points_one_way(drawn, self.server.scheduler)   # of DailyCount
        columns = {drawn["nodes"][task.task_id][0] for task in DiamondReport().requires()}
        self.assertEqual(len(columns), 2)

    def test_the_graph_of_the_cron_example_and_of_2000_tasks(self):
        sys.path.insert(0, str(HERE / "examples"))
        self.addCleanup(sys.path.remove, str(HERE / "examples"))
        import cron_aggregation as example
        end = datetime.date(2026, 11, 20)
        with unittest.mock.patch.object(example, "DATA", str(self.tmp)):
            example.make_sample_dumps(end)
            self.build(example.RunAll(end=end), scheduler=self.client)
        drawn = self.drawn_graph(example.RunAll(end=end).task_id,
                                 "graph-cron-aggregation.png")
        self.assertEqual(len(drawn["nodes"]), 1 + 30 + 23)
        self.assert_points_one_way(drawn, self.server.scheduler)
        scheduler, deps = self.server.scheduler, []
        for layer in range(20):     # 2,000 tasks in 20 layers, each needing two below
            ids = [f"Layer{layer}_{i}" for i in range(100)]
            for i, task_id in enumerate(ids):
                scheduler.add_task(worker="w", task_id=task_id, family=f"Layer{layer}",
                                   deps=deps[i:i + 2], status="DONE" if layer < 10 else
                                   "FAILED" if (layer, i) == (12, 7) else "PENDING")
            deps = ids + ids[:1]
        scheduler.add_task(worker="w", task_id="Top", family="Top", deps=deps[:100])
        drawn = self.drawn_graph("Top", "graph-2000.png")   # a box per family and column
        self.assertEqual(len(drawn["nodes"]), 21)
        self.assertEqual(len(drawn["edges"]), 20)
        labels = self.browser.evaluate("[...document.querySelectorAll('#graph g.node')]"
                                       ".map(n => n.getAttribute('aria-label'))")
        self.assertIn("FAILED Layer12 \u00d7100", labels)   # the worst status of the box
        self.assertIn("DONE Layer0 \u00d7100", labels)
        self.assertEqual(drawn["outside"], [])
        self.assertEqual(drawn["hidden"], [])

    def check_the_page_kept_to_itself(self):
        """Every test: no request to another host, no console error, no script ran
        from the data."""
        base = getattr(self, "server_url", self.server.url)
        others = [url for url in self.browser.requested() if not url.startswith(base + "/")]
        self.assertEqual(others, [])
        self.assertEqual(self.browser.errors(), [])

    def test_the_graph_of_a_task(self):
        self.open(f"#tab=graph&taskId={Many(60).task_id}")
        self.browser.wait_for("performance.getEntriesByName('graph-drawn').length")
        labels = self.browser.evaluate(
            "[...document.querySelectorAll('#graph g.node')].map(n => n.getAttribute("
            "'aria-label'))")
        self.assertIn("PENDING Many(count=60)", labels)
        self.assertIn(f"FAILED Hostile(label={HOSTILE})", labels)
        self.assertEqual(len(labels), 1 + 40 + 3)   # the task, a column of 40 of the 58
        self.assertEqual(self.browser.evaluate(     # it needs directly, the 3 Hostile needs
            "document.querySelector('#graph text.more').textContent"), "18 more")
        self.browser.evaluate("$('hidedone').click()")   # hide done: only the failure
        self.browser.wait_for("document.querySelectorAll('#graph g.node').length === 2")


if __name__ == "__main__":
    unittest.main()
