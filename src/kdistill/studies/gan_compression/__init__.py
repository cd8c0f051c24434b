"""``kdistill bench gan-compression``: GAN Compression (Li et al., CVPR 2020) on Fashion-MNIST
and MNIST (``plan``: what is trained; ``runner``: the units through the one harness;
``measure``: sizes, MACs, CPU latency and image grids; ``report``: the tables and verdict)."""

from kdistill.studies.gan_compression.runner import GanBenchSettings, run_gan_benchmark

__all__ = ["GanBenchSettings", "run_gan_benchmark"]
