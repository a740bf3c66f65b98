"""The PySyft bridge: syft-rds data scientists submit to a Blindgate site, unmodified.

The only part of Blindgate that imports ``syft`` (installed with ``blindgate[pysyft]``);
see :mod:`gateway.syftbridge.bridge`.
"""
