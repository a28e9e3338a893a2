"""What intake and the workers share: settings, the destinations file, Redis clients, logging and heap tuning.

Nothing here knows of intake or delivery: ``producer`` and ``worker`` both import this package, it imports
neither (the import contracts in pyproject.toml hold it to that).
"""
