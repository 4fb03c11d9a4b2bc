"""The local Clipzy ML Engine stand-in (mounted at ``/clipzy``); see :mod:`.api` for the contract, :mod:`.style` for
the style transfer it runs."""
