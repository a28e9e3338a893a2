"""The ``tiktok-audiences`` commands, one module per command group.

Each module's ``register(subparsers)`` adds its group's parsers and sets ``handler`` on each to the function
that runs it; ``tiktok_audiences.cli`` assembles the groups into one parser.

Command modules import the worker and intake packages inside their handlers, never at module level: the
parser is built in every process the console script starts, and a worker must switch prometheus_client to its
multiprocess files before any worker metric is made (importing almost any ``worker`` module makes them).
"""
