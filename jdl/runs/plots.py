"""PNG figures for runs: learning curves, first-layer filters, image grids.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``, saved by the Agg canvas):
nothing here touches pyplot or switches the backend, so importing or calling it from a
notebook leaves the notebook's backend alone. matplotlib is imported on first use (the
``experiments`` extra, jdl.extras).
"""
from __future__ import annotations

import math

import numpy as np


def figure(**kw):
    """A new ``matplotlib.figure.Figure(**kw)`` outside pyplot (no backend, no global state):
    draw with ``fig.subplots(...)``, write with :func:`save`."""
    from jdl.extras import require
    return require("matplotlib.figure", "figures").Figure(**kw)


def save(fig, path: str, dpi: int = 110) -> None:
    """Lay out ``fig`` and write it to ``path`` (the format from its suffix; no pyplot)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)


def plot_learning_curves(history: list[dict], path: str, title: str = "") -> None:
    """Loss and accuracy per epoch, train and validation, side by side."""
    epochs = [r["epoch"] for r in history]
    groups = [("loss", "loss"), ("accuracy", "accuracy")]
    groups = [(g, lab) for g, lab in groups if any(f"train_{g}" in r or f"val_{g}" in r for r in history)]
    fig = figure(figsize=(5 * len(groups), 3.6))
    axes = fig.subplots(1, len(groups), squeeze=False)
    for ax, (g, lab) in zip(axes[0], groups):
        for split, style in (("train", "-o"), ("val", "-s")):
            key = f"{split}_{g}"
            if any(key in r for r in history):
                ax.plot(epochs, [r.get(key, np.nan) for r in history], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(lab)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    save(fig, path)


def filter_images(kernel, input_shape=None, max_filters: int = 64) -> np.ndarray:
    """First-layer weights as images (n, h, w): conv kernels (kh, kw, cin, cout) averaged over
    input channels, or dense kernels (in, out) reshaped to ``input_shape``'s (h, w)."""
    k = np.asarray(kernel, np.float32)
    if k.ndim == 4:
        imgs = k.mean(axis=2).transpose(2, 0, 1)
    elif k.ndim == 2:
        if input_shape is None:
            side = int(math.isqrt(k.shape[0]))
            input_shape = (side, side) if side * side == k.shape[0] else (1, k.shape[0])
        h, w = input_shape[:2]
        if h * w != k.shape[0]:
            c = k.shape[0] // (h * w)
            imgs = k.reshape(h, w, c, -1).mean(axis=2).transpose(2, 0, 1)
        else:
            imgs = k.T.reshape(-1, h, w)
    else:
        raise ValueError(f"cannot show a kernel of shape {k.shape} as images")
    return imgs[:max_filters]


def filters_title(title: str, shown: int, units: int) -> str:
    """``title`` plus how many of the layer's units the grid shows, when not all of them."""
    if shown >= units:
        return title
    return f"{title} (the first {shown} of {units} units)".strip()


def plot_filters(kernel, path: str, input_shape=None, max_filters: int = 64, title: str = "") -> None:
    """Grid of first-layer filters, each scaled to its own range (grey: negative..positive);
    the title says so when the layer has more units than the ``max_filters`` shown."""
    imgs = filter_images(kernel, input_shape, max_filters)
    n = len(imgs)
    title = filters_title(title, n, int(np.shape(kernel)[-1]))
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = figure(figsize=(cols * 1.1, rows * 1.1 + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img in zip(axes.ravel(), imgs):
        m = np.abs(img).max() or 1.0
        ax.imshow(img, cmap="gray", vmin=-m, vmax=m, interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    save(fig, path)


def plot_image_grid(images, path: str, cols: int = 10, title: str = "",
                    row_labels: list[str] | None = None, vmin: float | None = 0.0,
                    vmax: float | None = 1.0, cmap: str = "gray") -> None:
    """Images (n, h, w) in a grid of ``cols`` columns, filled row by row; ``row_labels`` name
    the rows on the left. Pixel values map to grey between ``vmin`` and ``vmax`` (None: each
    image's own range, e.g. for weights)."""
    imgs = np.asarray(images, np.float32)
    if imgs.ndim != 3:
        raise ValueError(f"images must have shape (n, h, w), got {imgs.shape}")
    n = len(imgs)
    rows = math.ceil(n / cols)
    fig = figure(figsize=(cols * 0.9 + (0.9 if row_labels else 0), rows * 0.9 + 0.45))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if i < n:
            ax.imshow(imgs[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    if row_labels:
        for r, label in enumerate(row_labels[:rows]):
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    save(fig, path, dpi=100)
