"""Deploying code: build and publish a bundle to S3, roll it out to running instances."""
