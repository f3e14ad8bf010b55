"""Many notebook runs (placeholder until the batch issue lands)."""
from __future__ import annotations

import argparse


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="sample")


def run_batch_from_args(args: argparse.Namespace) -> int:
    raise NotImplementedError
