"""Named layers: cutting a network at a named layer (the 'layer outputs as features' of transfer
learning).

A model that mixes in :class:`NamedLayers` declares a dataclass field
``output_layer: str | None = None`` and a method ``layer_names()`` listing its cut points in
forward order (the last one is the logits layer). Its ``__call__`` asks ``self.reached(name)``
right after each named layer (after that layer's nonlinearity / pooling, as the model's
docstring says) and returns the activation there when it is the requested one, so that

    model.clone(output_layer=name).init(rng, x)

creates no parameter or batch statistic of any later layer: the cut model's variables are a
sub-tree (same names, same shapes) of the full model's, and its output is the full model's
intermediate activation h_name(x) for the same variables. With ``output_layer=None`` the model is
unchanged. An unknown name is refused at construction with the list of valid ones.

``conv_layer`` builds the zoo models' convolutions from PyTorch's (kernel, stride, pad).
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn

from jdl.nn.convolution import Conv


class NamedLayers:
    """Mixin for flax modules with an ``output_layer`` field (see the module docstring)."""

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        raise NotImplementedError(f"{type(self).__name__} must define layer_names()")

    @nn.nowrap
    def check_output_layer(self) -> None:
        """Raises ValueError when ``output_layer`` is neither None nor one of layer_names()."""
        if self.output_layer is None:
            return
        names = self.layer_names()
        if self.output_layer not in names:
            raise ValueError(f"output_layer must be None or one of {names} for "
                             f"{type(self).__name__}, got {self.output_layer!r}")

    @nn.nowrap
    def reached(self, name: str) -> bool:
        """True when ``name`` is the layer to stop after (the forward returns its output)."""
        return self.output_layer == name

    def __post_init__(self):
        self.check_output_layer()
        super().__post_init__()


def conv_layer(features: int, kernel: int, stride: int, pad: int, kernel_init: Callable,
               name: str, **kw):
    """A conv with PyTorch's symmetric ``pad``: jdl's fast unit-stride Conv when that is 'SAME'
    padding, flax's Conv otherwise; both hold 'kernel' (HWIO) and 'bias' directly."""
    if stride == 1 and 2 * pad == kernel - 1:
        return Conv(features, (kernel, kernel), padding="SAME", kernel_init=kernel_init,
                    name=name, **kw)
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=[(pad, pad)] * 2,
                   kernel_init=kernel_init, name=name, **kw)
