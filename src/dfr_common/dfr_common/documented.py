"""Dataclass fields that carry their own documentation and range.

Configuration dataclasses (the airframe, the camera's look) keep every number an
operator may change as a field with a default; the metadata lets a node declare each
as a parameter with its description and range, so `ros2 param describe` explains it.
"""
from dataclasses import field


def documented(default, doc: str, minimum=None, maximum=None):
    """A field with a description and, for numbers, the range a parameter may take."""
    metadata = {"doc": doc}
    if minimum is not None or maximum is not None:
        metadata.update(min=minimum, max=maximum)
    return field(default=default, metadata=metadata)
