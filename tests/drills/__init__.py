"""Reliability drills: faults injected into a running stack under a steady signing load."""
