"""LevAutoFix prod agent: tails logs, groups errors and relays them over a durable stream.

Runs on production hosts, so it depends on watchfiles and the standard library only and
never imports anything from ``console``.
"""

__version__ = "0.1.0"
