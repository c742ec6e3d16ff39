"""Parts of scripts/benchmark.py: each module has ``run(quick: bool) -> dict``."""
