"""Selective Synaptic Dampening (SSD) unlearning harness."""
