"""Tether: send work from Nuke and Blender to cloud job services and bring the results back.

The package is DCC-free: nothing here imports ``nuke`` or ``bpy``. Heavy modules (httpx, pydantic) are
imported by the submodules that need them, never by this one, so ``import tether`` costs nothing.
"""

__version__ = "0.1.0"
