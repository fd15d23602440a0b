"""Training engine: the grad_fn protocol, TrainState, the train step, the fit loop, checkpoints."""
from jdl.train.backprop import backprop, classification_metrics, evaluate as evaluate_fn, predict
from jdl.train.checkpoint import CheckpointError, Checkpoints
from jdl.train.guards import DataError, check_dataset, check_inputs, check_labels
from jdl.train.interrupt import TrainingInterrupted
from jdl.train.logger import MetricsLogger, read_metrics
from jdl.train.loop import FitResult, NonFiniteError, evaluate, fit
from jdl.train.rundir import WorkdirError, run_fingerprint
from jdl.train.precision import (cast_floating, mixed_precision, mixed_precision_backprop,
                                 scale_loss)
from jdl.train.state import TrainState, create_state, init_state, num_params
from jdl.train.objective import objective_grad_fn
from jdl.train.step import (Segments, all_finite, apply_update, make_eval_step, make_online_step,
                            make_train_step, segment_sum_grad_fn)

__all__ = ["backprop", "classification_metrics", "evaluate_fn", "predict", "CheckpointError",
           "Checkpoints", "DataError", "check_dataset", "check_inputs", "check_labels",
           "MetricsLogger", "read_metrics", "FitResult", "NonFiniteError", "evaluate", "fit",
           "TrainState", "create_state", "init_state", "num_params", "all_finite",
           "make_eval_step", "make_train_step", "cast_floating", "mixed_precision",
           "mixed_precision_backprop", "scale_loss", "TrainingInterrupted", "WorkdirError",
           "run_fingerprint", "objective_grad_fn", "Segments", "apply_update",
           "make_online_step", "segment_sum_grad_fn"]
