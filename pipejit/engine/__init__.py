"""The engine: configuration, shapes, scheduling, runners, graphs, retries and statistics.

It runs what tasks declare through ``pipejit.contract`` and imports no task.
"""
