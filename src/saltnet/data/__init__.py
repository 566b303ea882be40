"""The data: PNG reading, packing the competition layout, folds, demo data, loaders, augmentation,
training-set cleaning, run-length encoding."""
