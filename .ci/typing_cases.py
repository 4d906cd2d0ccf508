"""What a type checker sees of a Luigi-style pipeline on microflow (run by
.ci/check_types.py with mypy and pyright; never executed): each assert_type must hold,
and each line marked "expect-error" must be reported, and no other."""
import datetime
import enum
from typing import Optional

from typing_extensions import assert_type

import microflow as luigi


class Colour(enum.Enum):
    RED = 1


class Daily(luigi.Task):
    date = luigi.DateParameter()
    n = luigi.IntParameter(default=1)
    ratio = luigi.FloatParameter(default=0.5)
    flag = luigi.BoolParameter()
    name = luigi.Parameter(default="x")
    maybe = luigi.OptionalIntParameter(default=None)
    colour = luigi.EnumParameter(enum=Colour)
    items = luigi.ListParameter(default=())
    when = luigi.DateHourParameter()
    span = luigi.TimeDeltaParameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(f"out/{self.date:%Y-%m-%d}.txt")

    def run(self) -> None:
        assert_type(self.date, datetime.date)
        assert_type(self.n, int)
        assert_type(self.ratio, float)
        assert_type(self.flag, bool)
        assert_type(self.name, str)
        assert_type(self.maybe, Optional[int])
        assert_type(self.colour, Colour)
        assert_type(self.when, datetime.datetime)
        assert_type(self.span, datetime.timedelta)
        self.date.toordinal()
        self.date - datetime.timedelta(days=1)
        if self.n > 1:
            range(self.n)
        self.n + "x"  # expect-error
        self.date.no_such_attribute  # expect-error


class Weekly(luigi.Task):
    date = luigi.DateParameter()

    def requires(self) -> list[Daily]:
        return [Daily(date=self.date - datetime.timedelta(days=i)) for i in range(7)]


assert_type(Daily.date, luigi.DateParameter)
assert_type(Daily.n, luigi.IntParameter)
Weekly(date=datetime.date(2024, 1, 1))
Weekly(datetime.date(2024, 1, 1))
luigi.build([Weekly(date=datetime.date(2024, 1, 1))], workers=2)


def succeeded() -> bool:   # build() is a bool, or with detailed_summary=True the RunResult
    return luigi.build([Weekly(date=datetime.date(2024, 1, 1))], local_scheduler=True)


assert_type(luigi.build([Weekly(datetime.date(2024, 1, 1))], detailed_summary=True),
            luigi.RunResult)
luigi.build([Weekly(datetime.date(2024, 1, 1))]).summary_text  # expect-error


class Custom(luigi.Parameter[int]):
    def parse(self, x: str) -> int:
        return int(x)


class Pick(luigi.Task):
    colour = luigi.ChoiceParameter(choices=["red", "green"])
    level = luigi.ChoiceParameter(choices=[1, 2, 3], var_type=int)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(f"out/{self.colour}-{self.level}.txt")

    def run(self) -> None:
        assert_type(self.colour, str)   # a ChoiceParameter's value is of its choices' type
        assert_type(self.level, int)
        self.level.upper()  # expect-error
        with self.output().open("w") as out:   # text or bytes, as the mode says
            out.write("red\n")
            out.write(b"red\n")  # expect-error
        with self.output().open("rb") as raw:
            assert_type(raw.read(), bytes)
        with luigi.MockTarget("m").open() as text:
            assert_type(text.read(), str)


daily = Daily(date=datetime.date(2024, 1, 1), colour=Colour.RED)
assert_type(daily.clone(n=2), Daily)   # clone(): this task's class, or the class given
assert_type(daily.clone(Weekly), Weekly)
daily.clone(Weekly).n  # expect-error
