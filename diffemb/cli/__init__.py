"""The `diffemb` command line (`diffemb embed | search | info | train | eval | serve`).

`main.py` parses and dispatches, `args.py` holds the shared argparse types and `io.py` the file formats; each
sub-command that belongs to an application (training, evaluation, serving) lives in that application's package.
"""

from diffemb.cli.main import main

__all__ = ["main"]
