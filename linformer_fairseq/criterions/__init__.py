from . import masked_lm_with_accuracy  # noqa: F401  (registers the criterion)
