"""Running a study: open/resume it, the objective, progress, budget, reliability, storage,
workers, early stopping and the backends that schedule trials."""
