"""A toy scenario, written against bench's public scenario interface only: queries with a small random
perturbation. `[perturb] sigma = [0.0, 0.05]` gives one configuration per sigma, each scored against the exact
top-k of its own perturbed queries. Importing this module registers it, its result key `noise` and its figure
`noise_norm` (a column in compare, with its line in the legend)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
from pydantic import Field

from bench.results.figures import Figure
from bench.results.keys import Key
from bench.scenarios import Chart, Scenario, Variant, register
from bench.spec import Strict


class PerturbModel(Strict):
    sigma: list[float] = Field(default_factory=lambda: [0.05], min_length=1)


@register
class PerturbedQueries(Scenario):
    table = "perturb"
    Options = PerturbModel
    keys = (Key("noise", pa.float64(), "noise", "variant", "std-dev of the Gaussian noise added to each query"),)
    figures = (Figure("noise_norm", "mean L2 norm of the noise added to the queries", "noise norm", ".3f",
                      legend="noise norm = mean L2 norm of the noise added to each query"),)
    charts = (Chart("noise", "Recall against query noise", "Toy: recall@k against the noise added to the queries, one "
                    "line per backend.", png="toy_perturbed_scenario:recall_against_noise"),)

    def expand(self, v: Variant) -> Iterable[Variant]:
        base = v.query_vectors()
        for sigma in self.options.sigma:
            rng = np.random.default_rng([self.spec.dataset.seed, int(sigma * 1e6)])
            noisy = (base + rng.normal(0.0, sigma, base.shape)).astype(np.float32)
            norm = float(np.linalg.norm(noisy - base, axis=1).mean())
            yield v.derive(axes={"noise": sigma}, queries=noisy, ref_key={"noise": sigma}, row={"noise_norm": norm})


def recall_against_noise(summary, workload: str, title: str | None = None):
    """The toy's picture: recall against its own key, one line per backend (bench report draws it)."""
    import matplotlib.pyplot as plt

    from bench.analysis.plots import Picture

    fig, ax = plt.subplots(figsize=(6, 4))
    for backend, g in summary.sort_values("noise").groupby("backend"):
        ax.plot(g["noise"], g["recall"], "o-", label=str(backend))
    ax.set_xlabel("noise (std-dev)")
    ax.set_ylabel("recall@k")
    ax.set_title(title or workload, fontsize=9)
    ax.legend(fontsize=7)
    return Picture(fig)
