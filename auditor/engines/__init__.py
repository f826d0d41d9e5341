"""Engines that read captures into a traffic set other than the local one.

The local engine is :func:`auditor.traffic.read_traffic`. ``spark/`` reads the same
captures with Apache Spark tasks and returns the same :class:`auditor.traffic.Traffic`.
"""
