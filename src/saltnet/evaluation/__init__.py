"""Scoring: the competition metric, out-of-fold predictions, post-processing chosen on them."""
