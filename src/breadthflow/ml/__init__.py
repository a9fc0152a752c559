"""Machine learning on breadth and technical features: walk-forward folds, estimators,
evaluation. Pure (frames and arrays in, results out); the model registry that stores
fitted models is in ``services.models`` and ``store.model_registry``."""
