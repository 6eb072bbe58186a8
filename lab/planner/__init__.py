"""The capacity planner behind ``lab plan``: replay a demand trace against scaling policies.

A discrete-event simulation on a virtual clock drives the scaler's own policy
(``worker.scaler.capacity.decide``) and baselines with the same signature, and measures latency and
instance time against lower bounds.
"""
