"""The lab's stand-in for EC2: the launch template and instances (through the real EC2 API), the
hypervisor that gives each instance a body running its own user-data, and faults on bodies."""
