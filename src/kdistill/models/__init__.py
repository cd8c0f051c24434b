"""Model registry and the built-in models (MLP, small CNN, their width-sliceable versions)."""

from kdistill.models import causal_lm as _causal_lm  # noqa: F401  (registers "smollm2", "llama")
from kdistill.models import cnn as _cnn  # noqa: F401  (registers "cnn")
from kdistill.models import dense as _dense  # noqa: F401  (registers "segnet")
from kdistill.models import gan as _gan  # noqa: F401  (registers "cgan-*")
from kdistill.models import mlp as _mlp  # noqa: F401  (registers "mlp")
from kdistill.models import sliceable as _sliceable  # noqa: F401  (registers "sliceable-*")
from kdistill.models import text as _text  # noqa: F401  (registers "minilm", "bert")
from kdistill.models.cnn import SmallCNN
from kdistill.models.mlp import MLP
from kdistill.models.registry import count_parameters, create_model, list_models, register_model
from kdistill.models.sliceable import SliceableCNN, SliceableMLP, SliceableModel, make_sliceable
from kdistill.models.surgery import apply_class_bias_shift, subset_head

__all__ = [
    "MLP",
    "SliceableCNN",
    "SliceableMLP",
    "SliceableModel",
    "SmallCNN",
    "apply_class_bias_shift",
    "count_parameters",
    "create_model",
    "list_models",
    "make_sliceable",
    "register_model",
    "subset_head",
]
