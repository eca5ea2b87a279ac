"""The course's benchmarks, a small package run from the repository root: ``python -m benchmarks.run --profile cpu``
(lessons), ``benchmarks.seeds``, ``benchmarks.toolkit``, ``benchmarks.speedups``, ``benchmarks.load``,
``benchmarks.sandbox``, ``benchmarks.hub``. One description of the machine (:mod:`benchmarks.machine`); the
published anchors are data (``anchors.json``, read by :mod:`benchmarks.anchors`)."""
