"""A pipeline with a failing task: see the error report, the summary and exit code 30.

Run it:  python -m microflow --module examples.failing_pipeline Publish
   or:   python examples/failing_pipeline.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import microflow  # noqa: E402


class Download(microflow.Task):
    """Works: writes a small file."""

    def output(self):
        return microflow.LocalTarget("out/failing/download.txt")

    def run(self):
        with self.output().open("w") as f:
            f.write("1,2,3\n")


class Transform(microflow.Task):
    """Fails halfway through writing: its output is never published."""

    def requires(self):
        return Download()

    def output(self):
        return microflow.LocalTarget("out/failing/transformed.txt")

    def run(self):
        with self.input().open("r") as source, self.output().open("w") as out:
            out.write("half a file")
            raise ValueError(f"cannot parse {source.read().strip()!r}")


class Publish(microflow.Task):
    """Never runs: its dependency failed."""

    def requires(self):
        return Transform()

    def output(self):
        return microflow.LocalTarget("out/failing/published.txt")

    def run(self):
        with self.output().open("w") as f:
            f.write("published\n")


if __name__ == "__main__":
    sys.exit(microflow.main(["Publish", *sys.argv[1:]]))
