"""Selective scan and Mamba / Bi-Mamba blocks that run on any device."""
