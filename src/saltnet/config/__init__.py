"""The run's config (resolve: the schema's defaults, the config files, --config) and TrainSettings."""
