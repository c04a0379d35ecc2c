from neuralab.cli import run

run()
