"""A PNG of daily revenue per region (`retail-etl report --plot`; needs the `plot` extra)."""

from __future__ import annotations

import pandas as pd

from ..errors import ConfigurationError


def plot_revenue(marts: pd.DataFrame, path: str) -> None:
    """A PNG of daily revenue per region."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigurationError("--plot needs matplotlib: pip install 'retail-etl[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import StrMethodFormatter

    pivot = marts.pivot_table(index="sale_date", columns="region", values="revenue", aggfunc="sum").sort_index()
    figure, axes = plt.subplots(figsize=(10, 5))
    if len(pivot) == 1:  # one day: compare the regions side by side
        pivot.iloc[0].sort_values(ascending=False).plot.bar(ax=axes, color="tab:blue")
        axes.set_title(f"Revenue by region on {pivot.index[0]}")
        axes.set_xlabel("region")
    else:
        pivot.index = pd.to_datetime(pivot.index)  # a date axis spaces and labels the days
        pivot.plot(ax=axes, marker="o")
        axes.set_title("Daily revenue by region")
        axes.set_xlabel("sale date")
        figure.autofmt_xdate()
    axes.set_ylabel("revenue")
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
