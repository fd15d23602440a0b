"""The README's transfer-learning example runs as written (shrunk to a few epochs).

The example is proposed in /work/coord/transfer-notes.md; until it is pasted into README.md the
same text, kept here as TRANSFER_EXAMPLE, is run instead (once pasted, the README's block is)."""
import os
import re

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRANSFER_EXAMPLE = '''\
import jax, numpy as np, flax.linen as nn
from sklearn.linear_model import LogisticRegression
from jdl import optim, transfer
from jdl.data import digits, fit_normalizer
from jdl.nn import BNConvNet
from jdl.train import backprop, evaluate, evaluate_fn, fit, init_state, make_eval_step, make_train_step

train, test = digits.load("train"), digits.load("test")
norm = fit_normalizer(train.images)
x, y, xt, yt = norm(train.images), train.labels, norm(test.images), test.labels

# 1. a convnet trained on digits 0-4, checkpoints in runs/digits_0_4 (any jdl run will do)
model = BNConvNet(num_classes=5, features=(16, 32))
tx = optim.sgd(0.05, 0.9)
fit(make_train_step(backprop(model), tx), init_state(model, tx, x[:2], jax.random.PRNGKey(0)),
    {"x": x[y < 5], "y": y[y < 5]}, epochs=10, batch_size=32, workdir="runs/digits_0_4")

# 2. re-used for digits 5-9 with a SMALL training set: 10 examples per class
small = np.concatenate([np.flatnonzero(y == c)[:10] for c in range(5, 10)])
new, new_test = {"x": x[small], "y": y[small] - 5}, {"x": xt[yt >= 5], "y": yt[yt >= 5] - 5}
variables = transfer.load_backbone("runs/digits_0_4", model, x[:1])   # params + batch_stats
print(transfer.layer_names(model))                      # ('block1', 'block2', 'pool', 'Dense_0')
backbone, bb_vars = transfer.cut(model, variables, "block2", x[:1])

# (a) the learnt representation as features for a linear classifier
features = lambda d: transfer.extract_features(backbone, bb_vars, d["x"], pool="avg")
clf = LogisticRegression(max_iter=2000).fit(features(new), new["y"])
acc_features = clf.score(features(new_test), new_test["y"])

# (b) a new output layer; block1 frozen, block2 fine-tuned at a 10x smaller learning rate;
#     the backbone's batch norm in inference mode (its running averages kept)
tm = transfer.TransferModel(backbone, nn.Dense(5), pool="avg", backbone_train=False)
rules = {"backbone/*_0": "frozen", "backbone/*": "finetune", "head": "head"}
tx = transfer.group_optimizer({"finetune": optim.sgd(0.01, 0.9), "head": optim.sgd(0.1, 0.9)}, rules)
state = transfer.transfer_state(tm, tx, jax.random.PRNGKey(1), x[:2], bb_vars)
result = fit(make_train_step(backprop(tm), tx), state, new, epochs=30, batch_size=10)
acc_finetuned = evaluate(make_eval_step(evaluate_fn(tm)), result.state, new_test)["accuracy"]
print(f"digits 5-9 from 50 examples: features + logistic regression {acc_features:.3f}, "
      f"new head + fine-tuning {acc_finetuned:.3f}")
'''


def _example() -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
              if "transfer.TransferModel" in b]
    return blocks[0] if blocks else TRANSFER_EXAMPLE


def _bit_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return all(np.array_equal(np.asarray(u).view(np.uint32), np.asarray(v).view(np.uint32))
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_transfer_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # runs/digits_0_4 goes to a fresh folder
    block = _example().replace("epochs=10", "epochs=2").replace("epochs=30", "epochs=4")
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert os.path.isdir(tmp_path / "runs" / "digits_0_4" / "checkpoints" / "last")
    final, start = ns["result"].state, ns["bb_vars"]
    # block1 (Conv_0, BatchNorm_0) frozen bit for bit; block2 fine-tuned; no statistic moved
    for name in ("Conv_0", "BatchNorm_0"):
        assert _bit_equal(final.params["backbone"][name], start["params"][name])
    assert not np.array_equal(final.params["backbone"]["Conv_1"]["kernel"],
                              start["params"]["Conv_1"]["kernel"])
    assert _bit_equal(final.model_state["batch_stats"]["backbone"], start["batch_stats"])
    assert 0.3 < ns["acc_features"] <= 1 and 0.3 < ns["acc_finetuned"] <= 1   # chance: 0.2
