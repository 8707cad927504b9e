"""Deciding from a study: Pareto front, tables, pick, status, hypervolume, export, report."""
