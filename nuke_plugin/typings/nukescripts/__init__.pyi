# Typed shim for the part of nukescripts Tether uses (types-nuke has no nukescripts).
from . import panels as panels
