"""The long-tail benchmark as a package; the command is ``benchmarks/long_tail_benchmark.py``.

- ``methods``: the rows (name, block, label, config, keys on top) and the sets the answers read;
- ``claims``: the paired comparisons, targets, sampler's-prior pairs, sensitivities and questions, as data;
- ``recipes``, ``published``: which recipe each row follows, and the published LVIS numbers with sources;
- ``configs``: a row's overrides and its schedule; ``bench``: the runs and their records (``records``);
  ``progress``: the plan printed first and the time left while the runs go;
- ``stats``: rows, paired differences, the tie rule; ``answer``, ``sections``, ``peers``, ``report``: the
  report; ``figures``, ``detections``: its pictures; ``cli``: the command line.
"""
