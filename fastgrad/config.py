"""Every knob fastgrad reads from the environment, read once, in one place.

``FASTGRAD_BACKEND``
    Forces one kernel backend by name (``numpy``, ...). Unset: the fastest available backend
    in the registry's default order is used per kernel.
"""
import os

#: The backend forced through the environment, or None for the default order.
BACKEND = os.environ.get("FASTGRAD_BACKEND") or None
