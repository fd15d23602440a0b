"""Transfer learning (the lecture's 'transfer learning' slides): cut a trained network at a named
layer and use it as a feature extractor (jdl.transfer.cut), give it a new head for new classes
or a regression output (jdl.transfer.heads), freeze chosen layers and fine-tune re-used ones
with their own learning rate (jdl.transfer.freeze), from jdl's own checkpoints
(jdl.transfer.backbone). Pure functions over variables trees and optax transformations,
usable with or without jdl's training loop."""
from jdl.transfer.backbone import checkpoint_directory, load_backbone
from jdl.transfer.cut import (cut, extract_features, layer_names, pool_features, variable_shapes,
                              variables_of)
from jdl.transfer.freeze import (FROZEN, freeze_model_state, frozen, group_optimizer, label_of,
                                 param_groups)
from jdl.transfer.heads import (TransferModel, init_transfer, split_variables,
                               transfer_state)

__all__ = ["checkpoint_directory", "load_backbone", "cut", "extract_features", "layer_names",
           "pool_features", "variable_shapes", "variables_of", "FROZEN", "freeze_model_state",
           "frozen", "group_optimizer", "label_of", "param_groups", "TransferModel",
           "init_transfer", "split_variables", "transfer_state"]
