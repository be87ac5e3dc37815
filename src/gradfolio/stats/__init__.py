"""Inference on return series: bootstrap CIs, Sharpe-difference tests, PSR/DSR, SPA/MCS.

Core layer: imports only the ground floor (errors, seeding) and ``arch``/SciPy/torch. See
``docs/stats.md`` for the formulas and references.
"""

from gradfolio.stats.bootstrap import (
    BootstrapResult,
    bootstrap,
    bootstrap_ci,
    bootstrap_indices,
    confidence_interval,
    optimal_block_length,
    resample_statistic,
)
from gradfolio.stats.compare import compare
from gradfolio.stats.multiple import SPAResult, model_confidence_set, spa_test
from gradfolio.stats.psr import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    sharpe_statistics,
    trial_sharpe_variance,
)
from gradfolio.stats.seeds import format_summary, paired_differences, seed_summary, t_interval
from gradfolio.stats.sharpe_test import SharpeDifference, hac_standard_error, sharpe_difference_test

__all__ = [
    "t_interval",
    "seed_summary",
    "paired_differences",
    "format_summary",
    "BootstrapResult",
    "bootstrap",
    "bootstrap_ci",
    "bootstrap_indices",
    "confidence_interval",
    "optimal_block_length",
    "resample_statistic",
    "compare",
    "SPAResult",
    "spa_test",
    "model_confidence_set",
    "sharpe_statistics",
    "probabilistic_sharpe_ratio",
    "expected_max_sharpe",
    "trial_sharpe_variance",
    "deflated_sharpe_ratio",
    "min_track_record_length",
    "SharpeDifference",
    "sharpe_difference_test",
    "hac_standard_error",
]
