from custody.cli import run

run()
