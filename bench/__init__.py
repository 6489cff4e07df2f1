"""Benchmarks: each module prints its figures; ``python -m bench.run_all [--quick]`` runs them all.

See docs/benchmarks.md for what each measures, the targets, and the figures on the reference
machine.
"""
