"""The lab's runtime on this machine: settings and environment, the emulator, the AWS resources
it holds, and the long-running processes ``lab up`` starts and ``lab down`` stops."""
