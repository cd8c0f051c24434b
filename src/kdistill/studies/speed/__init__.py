"""``kdistill bench speed``: kdistill's engine against the hand-written distillation loop,
side by side in one run (``reference_loop``: the yardstick; ``runner``: the measurements, which
time objectives through ``engine.fit`` directly; ``report``: the tables and the targets)."""

from kdistill.studies.speed.report import write_speed_report
from kdistill.studies.speed.runner import SpeedSettings, run_speed_benchmark

__all__ = ["SpeedSettings", "run_speed_benchmark", "write_speed_report"]
