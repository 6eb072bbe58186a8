"""The fleet on real AWS: names, the instances' policy, prices, provisioning and teardown.

Everything here reaches AWS through the same boto3 clients as the lab
(``lab.runtime.resources``), so the integration tests drive it against moto over HTTP exactly
as a user drives it against AWS.
"""
