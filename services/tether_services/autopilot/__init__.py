"""The local Slapshot Autopilot stand-in (see :mod:`.api` for the contract, :mod:`.processing` for the methods)."""
