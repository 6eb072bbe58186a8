"""Stand-in for the CPU-bound, multithreaded video analysis binary the worker runs."""
