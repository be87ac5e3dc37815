"""Experiments: typed configs, runners, sweeps and reports built on the library pillars.

One subpackage per pillar, and the pieces both share:

- :mod:`gradfolio.experiments.backtest`: walk-forward backtest runs (config, run, report);
- :mod:`gradfolio.experiments.hedging`: hedging runs (config, baselines, agent training, sweeps, report);
- :mod:`gradfolio.experiments.outputs`: markdown tables, the HTML page shell, PNG figures, table files;
- :mod:`gradfolio.experiments.config_io`: YAML/TOML config files into typed models and back.

The two pillar subpackages never import each other; see ``docs/architecture.md``.
"""
