"""Loss terms: what the student is asked to match.

Each term is a :class:`~kdistill.losses.base.LossTerm` with a ``name``; configs build them by
that name through :func:`kdistill.losses.registry.build_term`. One module per thing matched:

* :mod:`~kdistill.losses.logits` -- output logits (Hinton's soft targets, logit matching, DKD)
* :mod:`~kdistill.losses.features` -- intermediate features (FitNet hints, NST)
* :mod:`~kdistill.losses.gradients` -- attention maps and input gradients (AT)
* :mod:`~kdistill.losses.sparsity` -- neuron firing patterns (activation boundaries)
* :mod:`~kdistill.losses.relations` -- relations among examples (RKD, SP)
* :mod:`~kdistill.losses.weights` -- weight matrices through learned maps

:mod:`~kdistill.losses.hooks` captures the intermediate tensors the terms read.
"""
