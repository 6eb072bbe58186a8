"""The scaler (``python -m worker.scaler``): one leader by S3 lease, a pure capacity policy sized
by Erlang C, and the EC2 calls that launch, drain and terminate instances."""
