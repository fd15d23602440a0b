"""Learning rules for recurrent nets (jdl.nn.recurrent's cells, SequenceModel, CanonicalRNN).

    sequence_loss  the model as pure functions (Recurrence), per-frame weights and targets, the
               weighted sequence loss shared by the rules below
    bptt       back-propagation through time (Werbos 1990; Rumelhart et al. 1986) as a grad_fn;
               truncated BPTT with horizon N_t (Williams & Peng 1990) as a grad_fn (gradients
               summed over the chunks) or a train step (one update per chunk); the sequence
               loss with per-frame weights and its eval_fn
    rtrl       real-time recurrent learning (Williams & Zipser 1989): forward sensitivities
               S(t) = dX(t)/dtheta, as a grad_fn (equal to BPTT's gradient) or a train step
               (one update per frame)
    jacobians  the gradient-pathology tool: state-to-state Jacobians J(t) = dX(t)/dX(t-1) along a
               trajectory, their products dX(t)/dX(t-k), spectral norms and eigenvalues, and
               the gradient norm against the lag k (vanishing / exploding gradients)

All plug into jdl.train (make_train_step / fit) through the grad_fn protocol
``grad_fn(params, model_state, batch, rng) -> (grads, model_state, metrics)``; the online
variants are ``step(state, batch) -> (state, metrics)`` functions like make_train_step's.
"""
from jdl.rnn.bptt import (bptt, evaluate_fn, run_frames, truncated_bptt,
                          truncated_bptt_segments, truncated_bptt_step)
from jdl.rnn.jacobians import (GradientLags, eigenvalues, flat_transition, gradient_lags,
                               lag_products, plot_gradient_lags, scale_spectral_radius,
                               spectral_norm, spectral_radius, state_gradients, state_jacobians)
from jdl.rnn.rtrl import rtrl, rtrl_segments, rtrl_step, sensitivity_step
from jdl.rnn.sequence_loss import (Recurrence, frame_targets, frame_weights, recurrence,
                                   sequence_metrics, weighted_loss)

__all__ = ["Recurrence", "bptt", "evaluate_fn", "frame_targets", "frame_weights", "recurrence",
           "run_frames", "sequence_metrics", "truncated_bptt", "truncated_bptt_step",
           "weighted_loss", "rtrl", "rtrl_step", "truncated_bptt_segments",
           "rtrl_segments", "sensitivity_step", "GradientLags",
           "eigenvalues", "flat_transition", "gradient_lags", "lag_products",
           "plot_gradient_lags", "scale_spectral_radius", "spectral_norm", "spectral_radius",
           "state_gradients", "state_jacobians"]
