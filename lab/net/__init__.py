"""The lab's network: a proxy of its own between instances and what they talk to."""
