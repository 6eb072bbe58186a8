"""State kept outside the instance: small JSON documents in S3 written with conditional writes
(claims, leases, status) and the activity log (a local file and CloudWatch Logs)."""
