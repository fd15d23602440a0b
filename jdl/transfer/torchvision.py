"""Importing and exporting torchvision weights: state dict <-> jdl variables.

torchvision's classification models (AlexNet, VGG-11/13/16/19 with and without batch norm,
GoogLeNet, ResNet-18..152, ResNeXt, wide ResNet) keep their weights in a ``state_dict``: a flat
mapping ``'layer1.0.conv1.weight' -> tensor``. :func:`from_torchvision` turns one into jdl's
``{'params': ..., 'batch_stats': ...}`` for the matching jdl.nn model (:func:`model_for`), and
:func:`to_torchvision` turns jdl variables back into a state dict that torch's
``model.load_state_dict(sd, strict=True)`` accepts. The two are exact inverses (they only
transpose, reshape and rename), so jdl -> state dict -> jdl gives identical arrays.

Layouts (torch -> jdl):

- convolution weight (O, I/g, kh, kw) -> kernel (kh, kw, I/g, O)   (OIHW -> HWIO), bias as is;
- linear weight W (out, in) -> kernel W^T (in, out), since torch computes x W^T + b and flax
  x K + b;
- batch norm weight, bias -> params scale, bias; running_mean, running_var -> batch_stats
  mean, var (both use the biased running variance in eval mode: y = (x - mean) /
  sqrt(var + eps) * scale + bias); ``num_batches_tracked`` only counts updates (it sets the
  momentum only when torch's momentum is None) and is dropped on import, written as 0 on export;
- the first linear layer after a feature map (AlexNet/VGG fc6, GoogLeNet's auxiliary fc1):
  torch flattens the (C, H, W) map in (c, h, w) order, jdl flattens NHWC maps in (h, w, c)
  order, so the input rows are permuted:
  kernel[(h W + w) C + c, o] = weight[o, (c H + h) W + w].

Names: jdl's flax module paths are translated to torchvision's attribute paths by one rule per
family (e.g. ResNet ``stage2_block1/Conv_1`` -> ``layer2.0.conv2``, ``norm_proj`` ->
``downsample.1``; VGG ``conv3_2`` -> ``features.<index>``). Every expected key must be present
with its exact shape and no other key may be present: otherwise :class:`StateDictMismatch` names
the first missing key, unexpected key or shape that does not fit (both shapes, in torch's
layout).

Numerics: jdl's ResNet pads its 3x3 stride-2 convolutions 'SAME' by default (XLA's: 0 before,
1 after for even sizes), torchvision pads 1 on both sides; :func:`model_for` therefore builds the
ResNets with ``torch_padding=True`` (k // 2 on each side), which changes no parameter.

Command line: imports a file and saves the variables as a jdl run's checkpoint (step 0) under
``--workdir``, with a ``torchvision.json`` describing the model (:func:`import_to_workdir`,
:func:`load_imported`)::

    python -m jdl.transfer.torchvision resnet50 resnet50.pth --workdir runs/resnet50_tv
"""
from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np

from jdl.transfer.torch_pickle import load_state_dict


class StateDictMismatch(ValueError):
    """A state dict that does not fit the model; the message names the first offending key."""


# --------------------------------------------------------------------------- architectures
VGG_DEPTHS = (11, 13, 16, 19)  # torchvision's configurations 'A', 'B', 'D', 'E'
RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2",
                "wide_resnet101_2")   # torchvision's; jdl.nn.resnet.RESNETS has them by name


@dataclass(frozen=True)
class Arch:
    """How one torchvision architecture maps onto jdl: ``build(**kw)`` makes the jdl module,
    ``torch_name(path)`` translates a flax module path to torchvision's key prefix, and
    ``flatten`` gives, for linear layers fed by a flattened (C, H, W) map, that map's shape."""
    name: str
    build: Callable[..., Any]
    torch_name: Callable[[tuple[str, ...]], str]
    flatten: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    classifier: str = "fc"                      # torch prefix of the logits layer


def _resnet_torch_name(path: tuple[str, ...]) -> str:
    top = {"conv_init": "conv1", "bn_init": "bn1", "head": "fc"}
    if len(path) == 1 and path[0] in top:
        return top[path[0]]
    m = re.fullmatch(r"stage(\d+)_block(\d+)", path[0])
    if m is None or len(path) != 2:
        raise StateDictMismatch(f"jdl ResNet module {'/'.join(path)} has no torchvision name")
    prefix = f"layer{m.group(1)}.{int(m.group(2)) - 1}"
    sub = {"conv_proj": "downsample.0", "norm_proj": "downsample.1"}.get(path[1])
    if sub is None:
        k = re.fullmatch(r"(Conv|BatchNorm)_(\d+)", path[1])
        if k is None:
            raise StateDictMismatch(f"jdl ResNet module {'/'.join(path)} has no torchvision name")
        sub = ("conv" if k.group(1) == "Conv" else "bn") + str(int(k.group(2)) + 1)
    return f"{prefix}.{sub}"


def _build_resnet(arch: str, num_classes: int = 1000, **kw):
    from jdl.nn.resnet import RESNETS
    return RESNETS[arch](num_classes=num_classes, torch_padding=True, **kw)


def _alexnet_torch_name(path: tuple[str, ...]) -> str:
    names = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
             "conv4": "features.8", "conv5": "features.10", "fc6": "classifier.1",
             "fc7": "classifier.4", "fc8": "classifier.6"}
    if len(path) != 1 or path[0] not in names:
        raise StateDictMismatch(f"jdl AlexNet module {'/'.join(path)} has no torchvision name")
    return names[path[0]]


def _build_alexnet(num_classes: int = 1000, **kw):
    from jdl.nn.alexnet import AlexNet
    return AlexNet(num_classes=num_classes, **kw)


def _vgg_feature_index(convs_per_stage, batch_norm: bool) -> dict[str, int]:
    """Position of each conv / bn in torchvision's ``features`` Sequential: per convolution
    [Conv2d, (BatchNorm2d,) ReLU], a MaxPool2d after each stage."""
    idx, out = 0, {}
    for s, n in enumerate(convs_per_stage, start=1):
        for i in range(1, n + 1):
            out[f"conv{s}_{i}"] = idx
            if batch_norm:
                out[f"bn{s}_{i}"] = idx + 1
            idx += 3 if batch_norm else 2
        idx += 1
    return out


def _vgg_torch_name(depth: int, batch_norm: bool, path: tuple[str, ...]) -> str:
    from jdl.nn.vgg import VGG_STAGES
    index = _vgg_feature_index(VGG_STAGES[depth], batch_norm)
    fc = {"fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"}
    if len(path) == 1 and path[0] in index:
        return f"features.{index[path[0]]}"
    if len(path) == 1 and path[0] in fc:
        return fc[path[0]]
    raise StateDictMismatch(f"jdl VGG module {'/'.join(path)} has no torchvision name")


def _build_vgg(depth: int, batch_norm: bool, num_classes: int = 1000, **kw):
    from jdl.nn.vgg import VGG, VGG_STAGES
    return VGG(stages=VGG_STAGES[depth], batch_norm=batch_norm, num_classes=num_classes, **kw)


GOOGLENET_PARTS = {"branch2_reduce": "branch2.0", "branch2": "branch2.1",
                   "branch3_reduce": "branch3.0", "branch3": "branch3.1", "branch4": "branch4.1"}


def _googlenet_torch_name(path: tuple[str, ...]) -> str:
    return ".".join(GOOGLENET_PARTS.get(p, p) for p in path)


def _build_googlenet(num_classes: int = 1000, **kw):
    from jdl.nn.googlenet import GoogLeNet
    return GoogLeNet(num_classes=num_classes, **kw)


def _archs() -> dict[str, Arch]:
    archs = {"alexnet": Arch("alexnet", _build_alexnet, _alexnet_torch_name,
                             {"fc6": (256, 6, 6)}, "classifier.6"),
             "googlenet": Arch("googlenet", _build_googlenet, _googlenet_torch_name,
                               {"aux1/fc1": (128, 4, 4), "aux2/fc1": (128, 4, 4)})}
    for depth in VGG_DEPTHS:
        for bn in (False, True):
            n = f"vgg{depth}" + ("_bn" if bn else "")
            archs[n] = Arch(n, partial(_build_vgg, depth, bn), partial(_vgg_torch_name, depth, bn),
                            {"fc6": (512, 7, 7)}, "classifier.6")
    for name in RESNET_ARCHS:
        archs[name] = Arch(name, partial(_build_resnet, name), _resnet_torch_name)
    return archs


ARCHS = _archs()


def _arch(arch: str) -> Arch:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    return ARCHS[arch]


def model_for(arch: str, num_classes: int = 1000, **kw):
    """The jdl.nn module of torchvision's ``arch`` (same name as torchvision's builder), with
    ``num_classes`` logits; extra keywords go to the module (e.g. ``aux_logits``,
    ``transform_input`` for GoogLeNet, ``output_layer`` to cut it)."""
    return _arch(arch).build(num_classes=num_classes, **kw)


# --------------------------------------------------------------------------- layouts
# Each converter maps one jdl leaf to its torch layout (to_torch) and back (to_jdl); both
# are pure transpositions / reshapes, so the round trip is exact.

def _conv_to_torch(k):
    return np.transpose(k, (3, 2, 0, 1))


def _conv_to_jdl(w):
    return np.transpose(w, (2, 3, 1, 0))


def _dense_to_torch(k, chw=None):
    w = np.transpose(k)                                      # (out, in), in in jdl's order
    if chw is None:
        return w
    c, h, wd = chw
    return w.reshape(-1, h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)


def _dense_to_jdl(w, chw=None):
    if chw is not None:
        c, h, wd = chw
        w = w.reshape(-1, c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    return np.transpose(w)


@dataclass(frozen=True)
class _Entry:
    """One torch key and where its array lives in the jdl variables."""
    key: str                      # torch state dict key
    collection: str               # 'params' or 'batch_stats'
    path: tuple[str, ...]         # flax path inside the collection, leaf name last
    kind: str                     # 'conv', 'dense', 'vector'
    chw: tuple[int, int, int] | None = None

    def to_torch(self, a):
        if self.kind == "conv":
            return _conv_to_torch(a)
        if self.kind == "dense":
            return _dense_to_torch(a, self.chw)
        return a

    def to_jdl(self, a):
        if self.kind == "conv":
            return _conv_to_jdl(a)
        if self.kind == "dense":
            return _dense_to_jdl(a, self.chw)
        return a

    def torch_shape(self, jdl_shape) -> tuple[int, ...]:
        jdl_shape = tuple(jdl_shape)
        if self.kind == "conv":
            return tuple(jdl_shape[i] for i in (3, 2, 0, 1))
        if self.kind == "dense":
            return jdl_shape[::-1]
        return jdl_shape


BN_KEYS = (("params", "scale", "weight"), ("params", "bias", "bias"),
           ("batch_stats", "mean", "running_mean"), ("batch_stats", "var", "running_var"))


def _flat(tree, prefix=()) -> dict[tuple[str, ...], Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def _entries(arch: Arch, params_shapes: Mapping) -> tuple[list[_Entry], list[str]]:
    """The torch keys of a jdl params tree (in jdl's module order) and the BN counters."""
    modules: dict[tuple[str, ...], dict[str, Any]] = {}
    for path, leaf in _flat(params_shapes).items():
        modules.setdefault(path[:-1], {})[path[-1]] = leaf
    entries, counters = [], []
    for mod, leaves in modules.items():
        prefix = arch.torch_name(mod)
        if "scale" in leaves:
            entries += [_Entry(f"{prefix}.{t}", col, mod + (leaf,), "vector")
                        for col, leaf, t in BN_KEYS]
            counters.append(f"{prefix}.num_batches_tracked")
        elif "kernel" in leaves:
            ndim = len(np.shape(leaves["kernel"]))
            kind = {4: "conv", 2: "dense"}.get(ndim)
            if kind is None:
                raise StateDictMismatch(f"jdl module {'/'.join(mod)} has a {ndim}-d kernel")
            entries.append(_Entry(f"{prefix}.weight", "params", mod + ("kernel",), kind,
                                  arch.flatten.get("/".join(mod))))
            if "bias" in leaves:
                entries.append(_Entry(f"{prefix}.bias", "params", mod + ("bias",), "vector"))
        else:
            raise StateDictMismatch(f"jdl module {'/'.join(mod)} holds {sorted(leaves)}, "
                                    f"neither a convolution, a dense layer nor a batch norm")
    return entries, counters


def _shape_tree(model, image_size: int = 224):
    import jax
    import jax.numpy as jnp
    x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def _set(tree: dict, path, value):
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def _model_kwargs(arch: str, state_dict: Mapping) -> dict:
    """Options the state dict itself decides: GoogLeNet's auxiliary heads are present or not."""
    if arch == "googlenet":
        return {"aux_logits": any(k.startswith("aux1.") for k in state_dict)}
    return {}


def _num_classes(arch: Arch, state_dict: Mapping) -> int:
    key = f"{arch.classifier}.weight"
    if key not in state_dict:
        raise StateDictMismatch(f"missing key {key!r} (the {arch.name} classifier), needed to "
                                f"read the number of classes")
    return int(np.shape(state_dict[key])[0])


def model_for_state_dict(arch: str, state_dict: Mapping[str, Any], **kw):
    """:func:`model_for` with what the state dict decides: the number of classes (the
    classifier's output size) and, for GoogLeNet, whether it has auxiliary heads; ``kw``
    (e.g. ``transform_input=True``, ``output_layer``) overrides or adds options."""
    a = _arch(arch)
    kw = {"num_classes": _num_classes(a, state_dict), **_model_kwargs(arch, state_dict), **kw}
    return model_for(arch, **kw)


def state_dict_shapes(arch: str, num_classes: int = 1000, **model_kw) -> dict[str, tuple]:
    """{torch key: torch shape} that torchvision's ``arch`` has (num_batches_tracked as ())."""
    a = _arch(arch)
    model = model_for(arch, num_classes=num_classes, **model_kw)
    shapes = _shape_tree(model)
    entries, counters = _entries(a, shapes["params"])
    out = {e.key: e.torch_shape(_get(shapes[e.collection], e.path).shape) for e in entries}
    out.update({k: () for k in counters})
    return out


def _as_numpy(v):
    if hasattr(v, "detach"):                # a torch tensor, when torch is at hand
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def from_torchvision(arch: str, state_dict: Mapping[str, Any], num_classes: int | None = None,
                     dtype=np.float32, **model_kw) -> dict[str, dict]:
    """jdl variables ``{'params': ..., 'batch_stats': ...}`` (numpy arrays of ``dtype``) of
    :func:`model_for(arch, ...) <model_for>` from a torchvision state dict (torch tensors,
    numpy arrays, or anything ``np.asarray`` reads).

    ``num_classes`` defaults to the classifier's output size in the state dict. Raises
    :class:`StateDictMismatch` naming the first missing key, the first unexpected key, or the
    first key whose shape differs (both shapes, torch layout); ``num_batches_tracked`` may be
    absent (older torch)."""
    a = _arch(arch)
    sd = {str(k): v for k, v in state_dict.items()}
    if num_classes is not None:
        model_kw["num_classes"] = num_classes
    shapes = _shape_tree(model_for_state_dict(arch, sd, **model_kw))
    entries, counters = _entries(a, shapes["params"])
    expected = {e.key for e in entries} | set(counters)
    for e in entries:
        if e.key not in sd:
            raise StateDictMismatch(
                f"{arch}: missing key {e.key!r} (jdl {e.collection}/{'/'.join(e.path)}); "
                f"{sum(x.key not in sd for x in entries)} of {len(entries)} expected keys missing")
    for k in sd:
        if k not in expected:
            raise StateDictMismatch(f"{arch}: unexpected key {k!r} with shape "
                                    f"{tuple(np.shape(sd[k]))} (not part of jdl's {arch})")
    variables: dict[str, dict] = {"params": {}, "batch_stats": {}}
    for e in entries:
        want = e.torch_shape(_get(shapes[e.collection], e.path).shape)
        got = tuple(np.shape(sd[e.key]))
        if got != want:
            raise StateDictMismatch(f"{arch}: key {e.key!r} has shape {got}, jdl's "
                                    f"{e.collection}/{'/'.join(e.path)} needs {want} "
                                    f"(torch layout)")
        _set(variables[e.collection], e.path, np.asarray(e.to_jdl(_as_numpy(sd[e.key])), dtype))
    if not variables["batch_stats"]:
        del variables["batch_stats"]
    return variables


def to_torchvision(arch: str, variables: Mapping) -> dict[str, np.ndarray]:
    """The torchvision state dict {key: numpy array, torch layout} of jdl ``variables`` of
    :func:`model_for(arch) <model_for>`; batch norms get ``num_batches_tracked = 0`` (int64) so
    that ``torch_model.load_state_dict({k: torch.from_numpy(v) ...}, strict=True)`` accepts it.
    Keys come in jdl's module order."""
    a = _arch(arch)
    entries, _ = _entries(a, variables["params"])
    out = {}
    for e in entries:
        out[e.key] = np.ascontiguousarray(e.to_torch(np.asarray(_get(variables[e.collection],
                                                                     e.path))))
        if e.key.endswith(".running_var"):
            out[e.key[:-len("running_var")] + "num_batches_tracked"] = np.zeros((), np.int64)
    return out


def random_state_dict(key_shapes, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights in torch layout for ``key_shapes`` [(key, shape), ...], drawn in that order
    from ``np.random.default_rng(seed)`` (so a test regenerates them without torch):
    ``*.weight`` of 2+ dims ~ N(0, 2 / fan_in) (He et al. 2015, fan_in = prod(shape[1:])),
    batch-norm weight and running_var ~ U(0.5, 1.5), biases and running_mean ~ N(0, 0.1^2),
    ``num_batches_tracked`` = 0 (int64). All float32 otherwise."""
    rng = np.random.default_rng(seed)
    keys = {k for k, _ in key_shapes}
    out = {}
    for key, shape in key_shapes:
        shape = tuple(int(s) for s in shape)
        stem = key.rsplit(".", 1)[0]
        if key.endswith(".num_batches_tracked"):
            out[key] = np.zeros(shape, np.int64)
        elif key.endswith(".running_var") or (key.endswith(".weight")
                                              and f"{stem}.running_var" in keys):
            out[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            out[key] = rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        else:
            out[key] = (rng.standard_normal(shape, np.float32) * np.float32(0.1))
    return out


# --------------------------------------------------------------------------- command line
def import_to_workdir(arch: str, path: str, workdir: str, num_classes: int | None = None,
                      **model_kw) -> dict:
    """Read ``path`` (.pth/.pt, read without torch, or .npz), convert, and save it under
    ``workdir`` as a jdl run saves its state: ``checkpoints/last/0/`` (jdl.train.Checkpoints;
    the state is ``{'params': ..., 'model_state': {'batch_stats': ...}}``, as a TrainState's
    fields, so jdl.transfer.load_backbone reads it like any jdl run) and ``torchvision.json``
    ({arch, num_classes, model keywords, source, parameter count}), which is returned.
    ``model_kw`` are recorded for :func:`load_imported` (e.g. ``transform_input=True``, which
    torchvision's pretrained GoogLeNet uses and its state dict cannot tell)."""
    from jdl.train.checkpoint import Checkpoints
    sd = load_state_dict(path)
    variables = from_torchvision(arch, sd, num_classes=num_classes)
    meta = {"arch": arch, "num_classes": _num_classes(_arch(arch), sd),
            "model_kwargs": {**_model_kwargs(arch, sd), **model_kw},
            "source": os.path.abspath(path),
            "parameters": int(sum(np.size(v) for v in _flat(variables["params"]).values()))}
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    ckpts = Checkpoints(os.path.join(workdir, "checkpoints"), keep=1, keep_best=False)
    try:
        ckpts.save(0, _as_state(variables), {"torchvision": meta})
    finally:
        ckpts.close()
    with open(os.path.join(workdir, "torchvision.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def _as_state(variables: Mapping) -> dict:
    return {"params": variables["params"],
            "model_state": {k: v for k, v in variables.items() if k != "params"}}


def load_imported(workdir: str, **model_kw):
    """(model, variables) from a ``workdir`` written by :func:`import_to_workdir`;
    ``model_kw`` (e.g. ``output_layer``) go to :func:`model_for`."""
    import jax
    from jdl.train.checkpoint import Checkpoints
    workdir = os.path.abspath(workdir)
    with open(os.path.join(workdir, "torchvision.json")) as f:
        meta = json.load(f)
    model = model_for(meta["arch"], num_classes=meta["num_classes"], **meta["model_kwargs"])
    template = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), _shape_tree(model))
    ckpts = Checkpoints(os.path.join(workdir, "checkpoints"), keep=1, keep_best=False)
    try:
        state, _ = ckpts.restore(0, _as_state(template))
    finally:
        ckpts.close()
    variables = {"params": state["params"], **state["model_state"]}
    return (model.clone(**model_kw) if model_kw else model), variables


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m jdl.transfer.torchvision",
        description="Import a torchvision state dict (.pth/.pt, read without torch, or .npz) "
                    "into jdl variables, saved as a jdl checkpoint (step 0) under --workdir, "
                    "readable by jdl.transfer.load_backbone.")
    p.add_argument("arch", choices=sorted(ARCHS))
    p.add_argument("file")
    p.add_argument("--workdir", required=True)
    p.add_argument("--num-classes", type=int, default=None,
                   help="check this many classes (default: read from the file)")
    p.add_argument("--transform-input", action="store_true",
                   help="googlenet: map ImageNet-normalised inputs as torchvision's pretrained "
                        "GoogLeNet does (transform_input=True)")
    args = p.parse_args(argv)
    if args.transform_input and args.arch != "googlenet":
        p.error("--transform-input applies to googlenet only")
    kw = {"transform_input": True} if args.transform_input else {}
    meta = import_to_workdir(args.arch, args.file, args.workdir, args.num_classes, **kw)
    print(f"{meta['arch']}: {meta['parameters']:,} parameters, {meta['num_classes']} classes "
          f"-> {os.path.join(os.path.abspath(args.workdir), 'checkpoints', 'last', '0')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
