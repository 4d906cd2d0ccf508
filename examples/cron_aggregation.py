"""A cron-triggered aggregation: daily data dumps in, a rolling sum per day out.

Run it (creates sample dumps first, then aggregates the last 10 days):
    python examples/cron_aggregation.py --end 2026-11-20

Or as cron would, every few minutes, from several hosts if you like:
    */5 * * * *  cd /srv/reports && python -m microflow --module examples.cron_aggregation \\
                 LastTenDays --end $(date +\\%F)
Until a day's dump exists, the run exits 20 ("missing data") and nothing is written; the
next run picks up where this one stopped.
"""
import datetime
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import microflow  # noqa: E402

DATA = os.environ.get("AGGREGATION_DATA", "data")


class DataDump(microflow.ExternalTask):
    """One day's export, written by another system: microflow only checks it exists."""

    date = microflow.DateParameter()

    def output(self):
        return microflow.LocalTarget(f"{DATA}/dumps/{self.date:%Y-%m-%d}.csv")


class Aggregate(microflow.Task):
    """The total of the ``window`` days ending on ``date``."""

    date = microflow.DateParameter()
    window = microflow.IntParameter(default=7, description="days summed")

    def requires(self):
        return [DataDump(self.date - datetime.timedelta(days=back))
                for back in range(self.window)]

    def output(self):
        return microflow.LocalTarget(f"{DATA}/totals/{self.date:%Y-%m-%d}-{self.window}d.txt")

    def run(self):
        total = 0
        for dump in self.input():
            with dump.open("r") as f:
                total += sum(int(line.split(",")[1]) for line in f if line.strip())
        with self.output().open("w") as out:
            out.write(f"{total}\n")


class LastTenDays(microflow.WrapperTask):
    """Aggregates for the 10 days ending on ``end``."""

    end = microflow.DateParameter(default=datetime.date.today())

    def requires(self):
        return [Aggregate(self.end - datetime.timedelta(days=back)) for back in range(10)]


def make_sample_dumps(end, days=17):
    """Write fake dumps for the days LastTenDays(end) needs."""
    for back in range(days):
        day = end - datetime.timedelta(days=back)
        target = DataDump(day).output()
        if not target.exists():
            with target.open("w") as f:
                f.write(f"{day},{day.day}\n")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    end = datetime.date.fromisoformat(arguments[arguments.index("--end") + 1]) \
        if "--end" in arguments else datetime.date.today()
    make_sample_dumps(end)
    sys.exit(microflow.main(["LastTenDays", *arguments]))
