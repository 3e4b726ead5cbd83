"""Benchmark scripts, run from the repository root as ``python -m benchmarks.<name>``.

A package so that the scripts share ``benchmarks.common`` and import the project without
editing ``sys.path``.
"""
