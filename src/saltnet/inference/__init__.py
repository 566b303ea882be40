"""Prediction with test-time views, the fold ensemble, the submission file."""
