"""Deploys Tether to Nuke and Blender: `tether install` and `tether doctor` (see install/README.md)."""
