"""The lab: runs fleetlab on one machine against AWS emulators."""
