"""Training one fold: the fit, the fastai Learner, losses, callbacks, weight snapshots."""
