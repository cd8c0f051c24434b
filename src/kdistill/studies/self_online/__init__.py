"""``kdistill bench self-online``: born-again networks and deep mutual learning against
independent training (``suites``: what is trained; ``runner``: the units through the one
harness; ``report``: the tables)."""

from kdistill.studies.self_online.runner import SelfOnlineSettings, run_self_online_benchmark

__all__ = ["SelfOnlineSettings", "run_self_online_benchmark"]
