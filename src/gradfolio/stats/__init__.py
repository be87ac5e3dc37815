"""Inference on return series: bootstrap CIs, Sharpe-difference tests, PSR/DSR, SPA/MCS."""
