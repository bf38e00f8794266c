"""Benchmark toolkit for skqueue: servers, open-loop load generator, sweeps and reports.

Kept apart from the ``skqueue`` library so that the library has no dependencies; the
toolkit needs the ``bench`` extra (hdrhistogram, matplotlib, rich, uvloop).
"""
