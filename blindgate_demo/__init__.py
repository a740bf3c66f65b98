"""The three-hospital demo of Blindgate, and the federation builder the tests and the
benchmarks share with it.

Nothing here is part of the gateway: it drives the gateway through its service layer, its
Python client and its site agents, as a deployment would.
"""
