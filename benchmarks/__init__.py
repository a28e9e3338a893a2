"""The benchmarks: the whole service measured on this machine (``python -m benchmarks``, ``make bench``).

Run from a source checkout; nothing here is installed with the package. :mod:`benchmarks.bench` runs the
throughput run, the one-task-per-event baseline (:mod:`benchmarks.baseline`), the stage figures
(:mod:`benchmarks.stages`) and the rate-limited grid (:mod:`benchmarks.grid`, :mod:`benchmarks.grid_run`), each
against a fresh local stack (:mod:`tiktok_audiences.local_stack`).
"""
