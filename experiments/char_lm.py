"""Character-level language model on the Python standard library's own source: an LSTM trained by
BPTT against interpolated Kneser-Ney n-gram models, bits per character on the same test split,
in one command.

    python experiments/char_lm.py                       # n-grams (orders 1-6) and the LSTM
    python experiments/char_lm.py --epochs 1 --train-chars 300000   # a quick look

Corpus (jdl.data.text): the source files of a fixed list of stdlib modules (3.54 M characters),
split contiguously 90 / 5 / 5 % into train / validation / test, a vocabulary of the training
characters (unknown characters share id 0). Baseline: NGramModel (interpolated Kneser-Ney,
Chen & Goodman 1998) for orders 1..``max_order`` fitted on the training ids; the order with the
lowest validation bits per character is the one compared. LSTM: SequenceModel('lstm', hidden,
V, readout='all') over one-hot characters, next-character cross-entropy on non-overlapping
windows of ``seq_len`` (64) characters, each from a zero state, BPTT through the window,
batches of 32 windows (``--rule truncated_online --seq-len 512 --horizon 64`` is the lecture's
truncated BPTT, the state carried across chunks of N_t frames with one update per chunk: about
half as many characters per second here). Adam (lr 2e-3, cosine decay), gradient norm clipped
at 1. bits/char = cross-entropy / ln 2, on the test text cut into windows of ``seq_len`` and,
with the same model, of ``eval_seq_len`` (512) characters, each window starting from a zero
state (the n-gram scores every test character with its full history; the LSTM's window starts
without context, which only handicaps it).

Writes runs/char_lm/ (lstm/ with metrics, checkpoints and learning curves; summary.json);
prints tables.

Result here (BUILD_NOTES.md, "Character LM"): 6-gram 1.969 test bits/char; the LSTM after 5
epochs (1166 s on 2 loaded cores) 2.118 on windows of 64 / 2.052 on windows of 512; resumed
to 12 epochs (``--epochs 8 --resume``, then ``--epochs 12 --resume``; +919 s) 2.043 / 1.970,
and 1.962 on windows of 2048 (``--epochs 12 --resume --eval-seq-len 2048``): parity with the
6-gram, below it only with long scoring windows.

Result here: see BUILD_NOTES.md, "Recurrent networks".
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

from jdl.data.text import NGramModel, char_windows, load_char_corpus  # noqa: E402
from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import option, script  # noqa: E402
from jdl.runs.supervised import start  # noqa: E402
from jdl.runs.sequences import SequenceConfig, markdown_table, run_sequences  # noqa: E402


@dataclasses.dataclass
class CharConfig(SequenceConfig):
    hidden: int = 256
    seq_len: int = option(64, "characters per training window", low=2)
    eval_seq_len: int = option(512, "also evaluate on the test text cut into these windows",
                               low=2, resumable=True)
    batch_size: int = 32
    epochs: int = 5
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    max_order: int = option(6, "the Kneser-Ney n-gram baselines: orders 1 to this", low=1)
    loss: str = option("cross_entropy", "training loss (next character)",
                       choices=("cross_entropy",))
    train_chars: int | None = None     # use only the first N training characters (quick runs)
    log_every: int = 50


def ngram_baselines(corpus, max_order: int) -> list:
    """[(order, val bpc, test bpc, fit seconds)] for Kneser-Ney models of orders 1..max_order."""
    rows = []
    for order in range(1, max_order + 1):
        t = time.perf_counter()
        m = NGramModel(order, len(corpus.vocab)).fit(corpus.train)
        rows.append((order, m.bits_per_char(corpus.val), m.bits_per_char(corpus.test),
                     time.perf_counter() - t))
    return rows


@script("char_lm", CharConfig)
def main(argv=None) -> dict:
    cfg, ns = start(CharConfig, "char_lm", argv, __doc__)
    root = ns.workdir
    t0 = time.perf_counter()
    corpus = load_char_corpus()
    V = len(corpus.vocab)
    train_ids = corpus.train[: cfg.train_chars] if cfg.train_chars else corpus.train

    grams = ngram_baselines(corpus, cfg.max_order)
    best = min(grams, key=lambda r: r[1])
    print(markdown_table(["n-gram order", "val bits/char", "test bits/char", "fit + eval s"],
                         [[o, f"{v:.3f}", f"{t:.3f}", f"{s:.1f}"] for o, v, t, s in grams]))
    print(f"[char_lm] best n-gram by validation: order {best[0]}, test {best[2]:.3f} bits/char",
          flush=True)

    train = char_windows(train_ids, cfg.seq_len)
    val = char_windows(corpus.val, cfg.seq_len)
    test = char_windows(corpus.test, cfg.seq_len)
    s = run_sequences(cfg, train, val, test, os.path.join(root, cfg.cell), num_outputs=V,
                      readout="all", loss=cfg.loss, vocab_size=V,
                      resume=ns.resume and run_dir.holds_run(os.path.join(root, cfg.cell)),
                      progress=not ns.no_progress, title=f"char LM {cfg.cell}",
                      extra={"vocab_size": V, "train_chars": int(len(train_ids))},
                      extra_tests={"long_windows": char_windows(corpus.test, cfg.eval_seq_len)})
    lstm_bpc = s["test_loss"] / math.log(2)
    long_bpc = s["extra_tests"]["long_windows"]["loss"] / math.log(2)
    rows = [[f"{best[0]}-gram Kneser-Ney (best on validation)", f"{best[2]:.3f}", ""],
            [f"{cfg.cell} {cfg.hidden}, {cfg.rule} (windows of {cfg.seq_len}"
             + (f", N_t = {cfg.horizon}" if cfg.rule.startswith("truncated") else "")
             + f"), {cfg.epochs} epochs; test windows of {cfg.seq_len}",
             f"{lstm_bpc:.3f}", f"{s['wall_time_s']:.0f}"],
            [f"the same model, test windows of {cfg.eval_seq_len}", f"{long_bpc:.3f}", ""]]
    print(markdown_table(["model", "test bits/char", "train wall s"], rows))
    for name, bpc in ((f"windows of {cfg.seq_len}", lstm_bpc),
                      (f"windows of {cfg.eval_seq_len}", long_bpc)):
        verdict = "below" if bpc < best[2] else "NOT below"
        print(f"[char_lm] {cfg.cell} on {name}: {bpc:.3f} bits/char, {verdict} the "
              f"{best[0]}-gram's {best[2]:.3f}")
    summary = {"experiment": "char_lm", "test": {"bits_per_char": lstm_bpc, "loss": s["test_loss"],
                                                   "bits_per_char_long_windows": long_bpc},
               "test_model": f"{cfg.cell}: {s['test_model']}", "resumed": ns.resume,
               "wall_time_s": time.perf_counter() - t0, "vocab_size": V,
               "ngram": [dict(zip(("order", "val_bpc", "test_bpc", "seconds"), r)) for r in grams],
               "best_ngram_order": best[0], "best_ngram_test_bpc": best[2],
               "rnn_test_bpc": lstm_bpc, "rnn_test_bpc_long_windows": long_bpc, "rnn_val_bpc_best": s["best_epoch"]["val_loss"] / math.log(2),
               "rnn": {k: v for k, v in s.items() if k != "history"}}
    return run_dir.RunDir(root).write_summary(summary)


if __name__ == "__main__":
    main()
