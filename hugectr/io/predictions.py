"""``Model.export_predictions`` (HugeCTR <= 23.08): the last evaluation batch as two text files.

HugeCTR appends the batch's ``batch x label_dim`` predictions (the loss layer's probabilities) to one
file and its labels to the other, each value as C++'s ``ostream <<`` prints a float (6 significant
digits, ``%g``) followed by one space, with no newline, so calling it after every ``eval()`` collects
the whole evaluation set. Only single-loss models: HugeCTR refuses the others. On several ranks the
batch is gathered in global order and rank 0 writes, as HugeCTR's one process writes the batch of
all its GPUs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..distributed import data_parallel, env


def format_values(values: np.ndarray) -> str:
    """``values`` as HugeCTR writes them: ``%g`` each, one space after every value.

    >>> format_values(np.array([0.5, 1.0, 1e-5, 0.1234567], dtype=np.float32))
    '0.5 1 1e-05 0.123457 '
    """
    return "".join(f"{float(v):g} " for v in values.reshape(-1))


def export_last_eval(engine, prediction_file: str, label_file: str) -> None:
    """Append the last eval batch's predictions to ``prediction_file`` and its labels to ``label_file``."""
    losses = engine.network.loss_layers()
    if len(losses) != 1:
        raise ValueError(f"export_predictions writes models with one loss layer (as HugeCTR does); this one has "
                         f"{len(losses)} ({', '.join(layer.label_name for layer in losses)})")
    if engine.last_eval is None:
        raise RuntimeError("export_predictions: no evaluation batch yet; call model.eval() (or fit with an "
                           "eval_interval) first")
    predictions, labels = (t.detach().to(torch.float32) for t in engine.last_eval)
    if env.world_size() > 1:
        both = data_parallel.gather_batches([torch.cat([predictions, labels], dim=1)])
        predictions, labels = both[:, :predictions.shape[1]], both[:, predictions.shape[1]:]
    if env.rank() != 0:
        return
    for path, values in ((prediction_file, predictions), (label_file, labels)):
        with open(path, "a") as stream:
            stream.write(format_values(values.cpu().numpy()))
