"""The cvxpylayers back end is imported lazily: importing gradfolio never loads cvxpy.

Its answers are tested in ``test_problem.py`` (against a direct cvxpy formulation); here a fresh
interpreter checks that cvxpy and cvxpylayers are loaded only once the back end is asked for,
and that it then solves a budget-only problem to its closed form.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PACKAGES = (
    "gradfolio",
    "gradfolio.solvers",
    "gradfolio.allocation",
    "gradfolio.allocation.classical",
    "gradfolio.backtest",
    "gradfolio.hedging",
    "gradfolio.data",
    "gradfolio.risk",
)

SCRIPT = f"""
import importlib, json, sys
import torch
for name in {PACKAGES!r}:
    importlib.import_module(name)
loaded = lambda: sorted({{m.split(".")[0] for m in sys.modules}} & {{"cvxpy", "cvxpylayers"}})
before = loaded()
from gradfolio.solvers import ConvexProblem
problem = ConvexProblem(3, backend="cvxpylayers")  # budget only
mu = torch.tensor([[0.03, -0.01, 0.02]], dtype=torch.float64)
cov = torch.tensor([[[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]]], dtype=torch.float64)
gamma = 3.0
w = problem.solve(mu, cov=cov, gamma=gamma)
# closed form: w = S^-1 (mu + l 1) / gamma with l such that sum w = 1
a, c = torch.linalg.solve(cov[0], mu[0]), torch.linalg.solve(cov[0], torch.ones(3, dtype=torch.float64))
l = (gamma - a.sum()) / c.sum()
expected = (a + l * c) / gamma
print(json.dumps({{"before": before, "after": loaded(), "error": float((w[0] - expected).abs().max())}}))
"""


def test_importing_gradfolio_does_not_load_cvxpy() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == []  # neither 'cvxpy' nor 'cvxpylayers' in sys.modules
    assert result["after"] == ["cvxpy", "cvxpylayers"]  # loaded once the back end is asked for
    assert result["error"] < 1e-5  # the back end's accuracy, as in test_problem.py (measured 8.8e-6)
