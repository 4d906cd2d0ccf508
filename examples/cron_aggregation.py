"""The cron replacement of Luigi's execution-model documentation, built in.

Daily dumps (DataDump) arrive from elsewhere; AggregationTask sums a window of days;
RunAll wants the aggregates of the last 10 days for windows of 3, 7 and 14 days.
Run it once (sample dumps are written first):
    python examples/cron_aggregation.py --end 2026-11-20

Instead of a crontab line, let microflow fire it (never two builds at once, here or in
another process on this host running the same command):
    python -m microflow --module examples.cron_aggregation RunAll --every 5m
    python -m microflow --module examples.cron_aggregation RunAll --cron "*/5 * * * *"
See what a build would do, and why, without running anything:
    python -m microflow --module examples.cron_aggregation RunAll --dry-run
    python -m microflow --module examples.cron_aggregation RunAll --tree
Until a day's dump exists the run exits 20 ("missing data"); the next firing picks up
where this one stopped.
"""
import datetime
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import microflow  # noqa: E402

# Beside this file (examples/data/, which git ignores), wherever the command runs from.
DATA = os.environ.get("AGGREGATION_DATA",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))


class DataDump(microflow.ExternalTask):
    """One day's export, written by another system: microflow only checks it exists."""

    date = microflow.DateParameter()

    def output(self):
        return microflow.LocalTarget(f"{DATA}/dumps/{self.date:%Y-%m-%d}.csv")


class AggregationTask(microflow.Task):
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


class RunAll(microflow.WrapperTask):
    """Aggregates for the 10 days ending on ``end``, over 3, 7 and 14 days."""

    end = microflow.DateParameter(default=datetime.date.today())

    def requires(self):
        return [AggregationTask(self.end - datetime.timedelta(days=back), window)
                for back in range(10) for window in (3, 7, 14)]


def make_sample_dumps(end, days=23):
    """Write fake dumps for the days RunAll(end) needs."""
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
    sys.exit(microflow.main(["RunAll", *arguments]))
