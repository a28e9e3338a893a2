"""Delivery side: queue contract, batching, the TikTok client, the ledger and the Celery worker.

Nothing in this package imports :mod:`producer`; the producer uses this package's queue contract.
"""
