"""``kdistill reproduce hinton-mnist``: Hinton, Vinyals & Dean (2015), section 3 (MNIST) and the
section 6 finding (soft targets as a regulariser), re-run on real MNIST.

``plan`` (stage configs and profiles), ``runner`` (the stages, each cached by
:mod:`kdistill.studies.stages`), ``analysis`` (bias-shift search, model cards); the report is
written by :mod:`kdistill.reports.hinton_mnist`.
"""

from kdistill.studies.hinton_mnist.analysis import search_bias_shift
from kdistill.studies.hinton_mnist.plan import load_profile, stage_config
from kdistill.studies.hinton_mnist.runner import run

__all__ = ["load_profile", "run", "search_bias_shift", "stage_config"]
