"""The ``--state-dir`` flag shared by the commands that keep files in the state directory."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_STATE = Path("state")


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE))
