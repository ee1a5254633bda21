"""Analysis of exported answers: confusion matrices, Wilcoxon tests, figures, report."""
