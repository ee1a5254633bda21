"""Analysis of exported answers: confusion matrices, Wilcoxon tests, figures, report.

Read an export with :func:`analysis.io.load_export`, clean it with :func:`analysis.cleaning.clean`,
then call the task functions (``analysis.task1``, ``analysis.task2``, ``analysis.agreement``,
``analysis.models``) on the long-form DataFrame of valid answers; ``analysis.report.analyze`` does all of it.
Nothing here imports torch or the study server. Errors: see ``analysis.errors``.
"""
