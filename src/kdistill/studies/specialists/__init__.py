"""``kdistill reproduce specialists``: Hinton, Vinyals & Dean (2015), section 5 (a generalist
and specialists with a dustbin class, combined by the paper's KL minimisation), on MNIST-100,
plus the single model distilled from the ensemble that the paper did not finish.

``plan`` (stage configs and profiles), ``runner`` (the units, each cached by
:func:`kdistill.files.run_once`); the report is written by :mod:`kdistill.reports.specialists`.
"""

from kdistill.studies.specialists.plan import load_profile, method_config
from kdistill.studies.specialists.runner import run

__all__ = ["load_profile", "method_config", "run"]
