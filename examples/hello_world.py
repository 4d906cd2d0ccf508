"""Hello world: one task writing one file.

Run it:  python -m microflow --module examples.hello_world HelloWorld --name you
   or:   python examples/hello_world.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import microflow  # noqa: E402


class HelloWorld(microflow.Task):
    """Greet someone in out/hello-<name>.txt."""

    name = microflow.Parameter(default="world", description="who to greet")

    def output(self):
        return microflow.LocalTarget(f"out/hello-{self.name}.txt")

    def run(self):
        with self.output().open("w") as f:     # written atomically
            f.write(f"Hello, {self.name}!\n")


if __name__ == "__main__":
    sys.exit(microflow.main(["HelloWorld", *sys.argv[1:]]))
