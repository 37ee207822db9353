"""An ``nn.Sequential`` evaluated for ``R`` weight sets at once, without ``vmap``.

``torch.func.vmap`` over a convolution with per-robot weights turns each call into a grouped
convolution, but it re-arranges the robot axis in and out of the channel axis around every
layer, and its backward does the same again. Written directly, the robot axis stays where it
is cheapest for each kind of layer:

* convolutional part: ``[B, R * C, H, W]``, one grouped convolution (``groups = R``) per layer;
  pooling and activations act on channels and need no change;
* dense part: ``[R, B, F]``, one batched matrix product (``baddbmm``) per linear layer.

Evaluation on inputs every robot shares (``[V, ...]``) skips the copies: the first layer runs
once with the robots' filters stacked (``groups = 1``) or as one broadcast matrix product.

Only the layer types listed in :data:`ELEMENTWISE` and :class:`BatchedSequential.supports` are
handled; :class:`~dinno_core.params.FlatModel` falls back to ``vmap`` for everything else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Identity,
)
"""Parameter-free layers acting value by value: any layout passes through unchanged."""

POOLING: tuple[type[nn.Module], ...] = (nn.MaxPool2d, nn.AvgPool2d)
"""Parameter-free layers acting channel by channel on ``[B, C, H, W]``."""

# Layouts of the activation between layers.
_SHARED = "shared"    # [V, ...]: the same inputs for every robot (evaluation), nothing batched yet
_GROUPED = "grouped"  # [B, R * C, H, W]: robot-major channels, for grouped convolutions
_DENSE = "dense"      # [R, B, ...]: robot axis first, for batched matrix products


class BatchedSequential:
    """Runs ``model`` (an ``nn.Sequential``) for ``R`` parameter sets at once.

    ``params`` maps each parameter name of ``model`` to a tensor with a leading robot axis
    (``[R, *shape]``), e.g. :meth:`~dinno_core.params.ParamSpec.unflatten_batched` of the
    stacked flat weights. Build with :meth:`for_model`, which returns None for models this
    class cannot run.
    """

    def __init__(self, model: nn.Sequential) -> None:
        if not self.supports(model):
            raise ValueError(f"BatchedSequential cannot run {type(model).__name__}")
        self.layers = list(model.named_children())

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Whether ``model`` is a Sequential of convolutions, then dense layers, that this class runs."""
        if type(model) is not nn.Sequential or len(model) == 0 or list(model.named_buffers()):
            return False
        dense = False
        for layer in model:
            if isinstance(layer, ELEMENTWISE):
                continue
            if isinstance(layer, nn.Conv2d):
                if dense or layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
                    return False
            elif isinstance(layer, POOLING):
                if dense:
                    return False
            elif isinstance(layer, nn.Flatten):
                if layer.start_dim != 1 or layer.end_dim != -1:
                    return False
                dense = True
            elif isinstance(layer, nn.Linear):
                dense = True
            else:
                return False
        return True

    @classmethod
    def for_model(cls, model: nn.Module) -> BatchedSequential | None:
        return cls(model) if cls.supports(model) else None

    def __call__(self, params: dict[str, Tensor], inputs: Tensor, shared: bool = False) -> Tensor:
        """Outputs ``[R, B, ...]`` for per-robot ``inputs [R, B, ...]`` or shared ``inputs [B, ...]``."""
        robots = next(iter(params.values())).shape[0]
        x, layout = inputs, (_SHARED if shared else _DENSE)
        for name, layer in self.layers:
            if isinstance(layer, ELEMENTWISE):
                x = layer(x)
            elif isinstance(layer, nn.Conv2d):
                x, layout = self._conv(layer, params, f"{name}.", x, layout, robots), _GROUPED
            elif isinstance(layer, POOLING):
                x = layer(x.flatten(0, 1)).unflatten(0, x.shape[:2]) if layout == _DENSE else layer(x)
            elif isinstance(layer, nn.Flatten):
                if layout == _GROUPED:
                    x, layout = x.reshape(x.shape[0], robots, -1).transpose(0, 1), _DENSE
                else:
                    x = x.flatten(1 if layout == _SHARED else 2)
            else:  # nn.Linear
                x, layout = self._linear(params, f"{name}.", x, layout), _DENSE
        if layout == _GROUPED:
            return x.reshape(x.shape[0], robots, -1, *x.shape[2:]).transpose(0, 1)
        if layout == _SHARED:
            return x.expand(robots, *x.shape)
        return x

    @staticmethod
    def _conv(layer: nn.Conv2d, params: dict[str, Tensor], prefix: str, x: Tensor, layout: str,
              robots: int) -> Tensor:
        weight = params[prefix + "weight"]  # [R, O, C, kh, kw]
        bias = params.get(prefix + "bias")  # [R, O] or None
        filters = weight.reshape(-1, *weight.shape[2:])
        bias = bias.reshape(-1) if bias is not None else None
        if layout == _SHARED:
            groups = 1
        else:
            groups = robots
            if layout == _DENSE:  # [R, B, C, H, W] -> [B, R * C, H, W]
                x = x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
        return F.conv2d(x, filters, bias, layer.stride, layer.padding, layer.dilation, groups)

    @staticmethod
    def _linear(params: dict[str, Tensor], prefix: str, x: Tensor, layout: str) -> Tensor:
        weight = params[prefix + "weight"].transpose(1, 2)  # [R, F, O]
        bias = params.get(prefix + "bias")  # [R, O] or None
        if layout == _SHARED:  # [V, ..., F] @ [R, 1.., F, O] -> [R, V, ..., O]
            out = torch.matmul(x, weight.reshape(weight.shape[0], *([1] * (x.ndim - 2)), *weight.shape[1:]))
            return out if bias is None else out + bias.reshape(bias.shape[0], *([1] * (x.ndim - 1)), -1)
        rows = x.reshape(x.shape[0], -1, x.shape[-1])  # [R, M, F]
        if bias is None:
            out = torch.bmm(rows, weight)
        else:
            out = torch.baddbmm(bias[:, None, :], rows, weight)
        return out.reshape(*x.shape[:-1], out.shape[-1])
