"""Luigi's module paths as a pip-installed microflow has them (checked by
.ci/check_types.py --installed only; never executed). A checker finds no submodule
inside one file, so a vendored microflow.py is spelled ``from microflow import
requires, RangeDaily``, as typing_cases.py does."""
import datetime

from typing_extensions import assert_type

import microflow
from microflow.parameter import DateParameter
from microflow.task import Task
from microflow.tools.range import RangeDaily
from microflow.util import requires


class Day(Task):
    date = DateParameter()

    def run(self) -> None:
        assert_type(self.date, datetime.date)
        self.date + 1  # expect-error


@requires(Day)
class Later(Task):
    pass


assert_type(RangeDaily(of=Day, start=datetime.date(2024, 1, 1)), microflow.RangeDaily)
from microflow.util import no_such_helper  # noqa: E402  # expect-error
