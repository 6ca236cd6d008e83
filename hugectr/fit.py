"""``Model.fit``: HugeCTR's non-epoch and epoch training loops and their console lines.

The cadence (display / eval_interval / snapshot), the order of the work inside an iteration,
the early stop at ``metrics_spec[AUC]`` and every printed line follow HugeCTR's ``Model::fit``
(reference section 4.5).
"""

from __future__ import annotations

import math
import time

from . import log
from .enums import MetricsType


class LossDiverged(RuntimeError):
    """The training loss became NaN."""


class _Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self.start = now - self.start, now
        return elapsed

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def _bool(value: bool) -> str:
    return "True" if value else "False"


def _print_header(model, mode_line: str, eval_interval: int, snapshot: int) -> None:
    solver = model.solver
    log.banner("Model Fit")
    log.info(mode_line)
    log.info(f"Training batchsize: {solver.batchsize}, evaluation batchsize: {solver.batchsize_eval}")
    log.info(f"Evaluation interval: {eval_interval}, snapshot interval: {snapshot}")
    log.info(f"Dense network trainable: {_bool(model.dense_trainable)}")
    for name in sorted(model.embedding_trainable):
        log.info(f"Sparse embedding {name} trainable: {_bool(model.embedding_trainable[name])}")
    log.info(f"Use mixed precision: {_bool(solver.use_mixed_precision)}, scaler: {solver.scaler:f}, "
             f"use cuda graph: {_bool(solver.use_cuda_graph)}")
    log.info(f"lr: {solver.lr:f}, warmup_steps: {solver.warmup_steps}, end_lr: {solver.end_lr:f}")
    log.info(f"decay_start: {solver.decay_start}, decay_steps: {solver.decay_steps}, "
             f"decay_power: {solver.decay_power:f}")
    log.info(f"Training source file: {model.reader_params.source[0]}")
    log.info(f"Evaluation source file: {model.reader_params.eval_source}")


def _display(model, iteration: int, display: int, stopwatch: _Stopwatch, lr: float) -> None:
    loss = 0.0
    if model.solver.gen_loss_summary or not model.solver.repeat_dataset:
        loss = model.get_current_loss()
        if math.isnan(loss):
            raise LossDiverged(
                f"Train Runtime error: Loss cannot converge (NaN at iteration {iteration + 1}). Lower the learning "
                "rate, check the data for NaN/inf dense values, or enable a loss scaler with mixed precision")
    log.info(f"Iter: {iteration + 1} Time({display} iters): {log.number(stopwatch.lap())}s "
             f"Loss: {log.number(loss)} lr:{log.number(lr)}")


def _print_metrics(model, results: list[tuple[str, float]]) -> float | None:
    """Print the metrics; return the AUC when it beats the ``metrics_spec`` threshold."""
    threshold = model.solver.metrics_spec.get(MetricsType.AUC)
    hit = None
    for name, value in results:
        log.info(f"Evaluation, {name}: {log.number(value)}")
        if name == "AUC":
            per_class = model.per_class_auc()
            if len(per_class) > 1:
                log.info("Evaluation, AUC: {" + ", ".join(f"{v:f}" for v in per_class) + "}")
            if threshold is not None and value > threshold and hit is None:
                hit = value
    return hit


def _evaluate(model, stop_at_end_of_data: bool) -> list[tuple[str, float]]:
    model.check_overflow()                 # as HugeCTR does before every evaluation
    for _ in range(model.solver.max_eval_batches):
        if not model.eval() and stop_at_end_of_data:
            model.get_data_reader_eval().set_source()
            break
    return model.get_eval_metrics()


def fit_non_epoch(model, max_iter: int, display: int, eval_interval: int, snapshot: int, prefix: str) -> None:
    solver = model.solver
    _print_header(model, f"Use non-epoch mode with number of iterations: {max_iter}", eval_interval, snapshot)
    callbacks = list(solver.training_callbacks)
    for callback in callbacks:
        callback.on_training_start()
    model.start_data_reading()
    total, stopwatch = _Stopwatch(), _Stopwatch()
    for iteration in range(max_iter):
        lr = model.get_learning_rate_scheduler().get_next()
        model.set_learning_rate(lr)
        model.train()
        if display > 0 and (iteration + 1) % display == 0:
            _display(model, iteration, display, stopwatch, lr)
        if eval_interval > 0 and (iteration + 1) % eval_interval == 0:
            eval_watch = _Stopwatch()
            for callback in callbacks:
                callback.on_eval_start(iteration)
            results = _evaluate(model, stop_at_end_of_data=False)
            stop = False
            for callback in callbacks:
                stop = bool(callback.on_eval_end(iteration, dict(results))) or stop
            if stop:
                for callback in callbacks:
                    callback.on_training_end(iteration)
                return
            if _print_metrics(model, results) is not None:
                seconds = total.elapsed()
                log.info(f"Hit target accuracy AUC {solver.metrics_spec[MetricsType.AUC]:.5f} at {iteration} / "
                         f"{max_iter} iterations with batchsize {solver.batchsize} in {seconds:.2f}s. Average speed "
                         f"{iteration * solver.batchsize / max(seconds, 1e-9):f} records/s.")
                return
            log.info(f"Eval Time for {solver.max_eval_batches} iters: {log.number(eval_watch.elapsed())}s")
        if snapshot > 0 and (iteration + 1) % snapshot == 0 and iteration != 0:   # HugeCTR: never after step 1
            model.save_params_to_files(prefix, iteration + 1)
    for callback in callbacks:
        callback.on_training_end(max_iter - 1)
    log.info(f"Finish {max_iter} iterations with batchsize: {solver.batchsize} in {total.elapsed():.2f}s.")


def fit_epoch(model, num_epochs: int, display: int, eval_interval: int, snapshot: int, prefix: str) -> None:
    solver = model.solver
    _print_header(model, f"Use epoch mode with number of epochs: {num_epochs}", eval_interval, snapshot)
    total, stopwatch = _Stopwatch(), _Stopwatch()
    iteration = 0
    for epoch in range(num_epochs):
        log.info("-" * 35 + f"Epoch {epoch}" + "-" * 35)
        model.get_data_reader_train().set_source(model.reader_params.source[0])
        more = True
        while more:
            lr = model.get_learning_rate_scheduler().get_next()
            model.set_learning_rate(lr)
            more = model.train()
            if display > 0 and (iteration + 1) % display == 0:
                _display(model, iteration, display, stopwatch, lr)
            if eval_interval > 0 and (iteration + 1) % eval_interval == 0:
                eval_watch = _Stopwatch()
                if _print_metrics(model, _evaluate(model, stop_at_end_of_data=True)) is not None:
                    seconds = total.elapsed()
                    log.info(f"Hit target accuracy AUC {solver.metrics_spec[MetricsType.AUC]:f} at {epoch} / "
                             f"{num_epochs} epochs {iteration} global iterations with batchsize {solver.batchsize} "
                             f"in {seconds:.2f}s. Average speed "
                             f"{iteration * solver.batchsize / max(seconds, 1e-9):f} records/s.")
                    return
                log.info(f"Eval Time for {solver.max_eval_batches} iters: {log.number(eval_watch.elapsed())}s")
            if snapshot > 0 and (iteration + 1) % snapshot == 0 and iteration != 0:   # never after step 1
                model.save_params_to_files(prefix, iteration + 1)
            iteration += 1
    log.info(f"Finish {num_epochs} epochs {iteration} global iterations with batchsize {solver.batchsize} "
             f"in {total.elapsed():.2f}s.")
