"""``kdistill bench netaug``: Network Augmentation (Cai et al., ICLR 2022) against plain
training and KD, on tiny and large models (``plan``: what is trained; ``runner``: the units
through the one harness; ``report``: the tables and the verdict on the lecture's claims)."""

from kdistill.studies.netaug.runner import NetAugBenchSettings, run_netaug_benchmark

__all__ = ["NetAugBenchSettings", "run_netaug_benchmark"]
