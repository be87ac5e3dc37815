"""Experiments: typed configs, runners, sweeps and reports built on the library pillars."""
