"""``gradsim train``: train a classifier on the digits, resumable from its checkpoint."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from ..io import write_npz
from ..train import FAMILIES, OPTIMIZERS, Diverged, ModelSpec, TrainConfig, load_checkpoint, train
from ..train.data import load_digits
from ..util import check_output
from .common import UsageError

__all__ = ["add_command"]


def add_command(sub):
    """Add ``train`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "train", help="train a classifier on the digits (resumable) -> .npz",
        description="Train a dense classifier on scikit-learn's handwritten digits (the "
                    "'digits' extra) and write its history (losses, accuracies, lag-1 of "
                    "the input gradient along lines between test images) to --out.  A "
                    "checkpoint is written after every epoch; rerun the same command to "
                    "resume after Ctrl-C.")
    m = p.add_argument_group("model")
    m.add_argument("--family", choices=FAMILIES, default="relu")
    m.add_argument("--depth", type=int, default=10, help="hidden layers or blocks (default 10)")
    m.add_argument("--width", type=int, default=32, help="units per layer (default 32)")
    o = p.add_argument_group("training")
    o.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    o.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    o.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    o.add_argument("--batch", type=int, default=64, help="mini-batch size (default 64)")
    o.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    o.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed")
    o.add_argument("--split-seed", type=int, default=0, help="train/test split seed")
    o.add_argument("--test-fraction", type=float, default=0.2, help="default 0.2")
    o.add_argument("--track-points", type=int, default=256,
                   help="points per tracking line (default 256)")
    o.add_argument("--track-lines", type=int, default=8,
                   help="pairs of test images tracked (default 8)")
    f = p.add_argument_group("files")
    f.add_argument("--out", required=True, help="output .npz (history and configuration)")
    f.add_argument("--checkpoint", help="checkpoint file (default: OUT.ckpt.npz)")
    f.add_argument("--force", action="store_true",
                   help="overwrite --out and start again, discarding the checkpoint")
    f.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_train)


def _config(args):
    model = ModelSpec(args.family, depth=args.depth, width=args.width)
    return TrainConfig(model, args.optimizer, args.lr, args.momentum, args.batch, args.epochs,
                       args.seed, args.track_points, args.track_lines)


def _bar(cfg, quiet, done_epochs):
    from tqdm.auto import tqdm

    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=cfg.epochs, initial=done_epochs, desc="epochs", unit="epoch",
                disable=disable, file=sys.stderr, dynamic_ncols=True, leave=False)


def write_history(path, cfg, hist, data):
    """Write a run's configuration and history to ``path`` atomically."""
    arrays = hist.to_arrays()
    arrays["config"] = json.dumps(cfg.to_dict(), sort_keys=True)
    arrays["data"] = json.dumps({"set": "digits", "split_seed": data.split_seed,
                                 "test_fraction": data.test_fraction})
    write_npz(path, arrays)


def _cmd_train(args):
    cfg = _config(args)
    out = check_output(args.out, args.force)
    ck = args.checkpoint or f"{out}.ckpt.npz"
    if os.path.abspath(ck) == os.path.abspath(out):
        raise ValueError("checkpoint: must differ from --out")
    try:
        data = load_digits(args.test_fraction, args.split_seed)
    except ImportError as err:
        raise UsageError(f"gradsim train: error: {err}") from None
    done = 0
    if os.path.exists(ck):
        if args.force:
            os.unlink(ck)
        else:
            old, arrays = load_checkpoint(ck)
            done = len(arrays["history.train_loss"])
            if not args.quiet:
                print(f"resuming from {ck} after epoch {done}", file=sys.stderr)
    bar = _bar(cfg, args.quiet, min(done, cfg.epochs))

    def progress(epoch, step, steps, loss):
        if step == steps:
            bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    t0 = time.perf_counter()
    try:
        _, hist = train(cfg, data, checkpoint=ck, progress=progress)
    except KeyboardInterrupt:
        bar.close()
        n = len(load_checkpoint(ck)[1]["history.train_loss"]) if os.path.exists(ck) else 0
        print(f"gradsim: interrupted; {n} finished epochs are in {ck}; rerun the same "
              "command to resume", file=sys.stderr)
        return 130
    except Diverged as err:
        bar.close()
        print(f"gradsim: {err}", file=sys.stderr)
        return 1
    bar.close()
    write_history(out, cfg, hist, data)
    if not args.quiet:
        print(f"wrote {out}: {cfg.model.family} depth {cfg.model.depth} width "
              f"{cfg.model.width}, {hist.epochs} epochs, test accuracy "
              f"{hist.test_acc[-1]:.4f}, train loss {hist.train_loss[-1]:.4f}, lag-1 "
              f"{np.nanmean(hist.lag1[-1]):.3f} ({time.perf_counter() - t0:.1f} s)")
    return 0
