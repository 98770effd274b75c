"""The latency experiment's figure: per provider, provision and deprovision as stacked bars.

Bars are the means over completed lifecycles; each lifecycle is a point at its provision time
and at its total, so the spread is visible next to the mean. matplotlib's Agg backend: no
display needed, the same PNG on a laptop and in CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cloudkit.bench.report import LifecycleRow, by_provider, phase_stats

PROVISION_COLOUR = "#4C72B0"
DEPROVISION_COLOUR = "#DD8452"


def write_plot(path: Path, rows: Sequence[LifecycleRow], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    grouped = by_provider(rows)
    providers = list(grouped)
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for x, provider in enumerate(providers):
        provider_rows = grouped[provider]
        provision = phase_stats(provider_rows, "provision_s")
        deprovision = phase_stats(provider_rows, "deprovision_s")
        p_mean = provision.mean if provision else 0.0
        d_mean = deprovision.mean if deprovision else 0.0
        axes.bar(
            x, p_mean, width=0.5, color=PROVISION_COLOUR, label="provision" if x == 0 else None
        )
        axes.bar(
            x,
            d_mean,
            width=0.5,
            bottom=p_mean,
            color=DEPROVISION_COLOUR,
            label="deprovision" if x == 0 else None,
        )
        axes.text(x + 0.27, p_mean + d_mean, f"{p_mean + d_mean:.1f} s", ha="left", va="center")
        offsets = [
            x - 0.12 + 0.24 * i / max(1, len(provider_rows) - 1) for i in range(len(provider_rows))
        ]
        axes.scatter(
            offsets,
            [r.provision_s or 0.0 for r in provider_rows],
            s=14,
            color="black",
            zorder=3,
            label="each lifecycle (provision, total)" if x == 0 else None,
        )
        axes.scatter(
            offsets, [r.total_s or 0.0 for r in provider_rows], s=14, color="black", zorder=3
        )
    axes.set_xticks(range(len(providers)), [_label(p) for p in providers])
    axes.set_xlim(-0.5, len(providers) - 0.5 + 0.4)  # room for the totals beside the bars
    axes.set_ylabel("seconds (mean; points: each lifecycle)")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=8)
    axes.margins(y=0.12)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _label(provider: str) -> str:
    return {"aap": "AAP direct", "eda": "EDA"}.get(provider, provider)
