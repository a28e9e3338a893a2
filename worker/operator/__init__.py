"""What operators read of the delivery state and do to it, outside any delivery: ``stats`` and its per-destination
figures, the audience report, the shadow-mode comparison, lifting a throttle cooldown, re-sending an audience.

These read and write the keys the delivery engine keeps (worker.keys); the engine never imports them.
"""
