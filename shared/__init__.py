"""Contracts and thin infrastructure shared by every CMCoord Hub service.

Nothing here imports a service; services import from here.
"""
