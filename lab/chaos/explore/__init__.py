"""`lab chaos explore`: random faults drawn from a seed under a sustained workload, every
request checked like Jepsen's total-queue checker, a failing schedule shrunk to a replay."""
