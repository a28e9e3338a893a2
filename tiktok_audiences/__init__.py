"""The ``tiktok-audiences`` command line and the one-machine stack."""
