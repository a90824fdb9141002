"""The built-in demo lab: real peers on loopback with varied and changing conditions."""
