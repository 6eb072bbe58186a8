"""The network a worker reaches out to: the outbound URL policy and a bounded HTTP client that
connects only to addresses the policy approved."""
