"""The report of a results folder, from its result JSONs alone: accuracy per task and VTAB group, cost,
paired comparisons against references with their noise, and the plots.

    load.py      records (+ static-merge rows)     tables.py   numbers per task / method
    stats.py     bootstrap, Wilcoxon, binomial SE  markdown.py report.md's sections
    plots.py     pareto.png, per_task.png          labels.py   non-overlapping point labels
    families.py  method families: order, colours   write.py    write_report
    tuning.py    the validation table of tune's chosen rates
    tensorboard.py  the report's TensorBoard runs: figures, HParams columns, per-method charts over seeds
"""
from .load import load_results
from .plots import pareto, plot_points
from .tables import averages, compare, summarize
from .write import write_report

__all__ = ["load_results", "summarize", "averages", "compare", "pareto", "plot_points", "write_report"]
