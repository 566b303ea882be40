"""Experiments: a file of variants over a preset (spec), their runs as ordinary run folders (runner), and
the leaderboard of the runs with each variant's gain and its spread (leaderboard, page).
workflow/sweep.smk is the one command that runs them."""
