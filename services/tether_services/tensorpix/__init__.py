"""The local TensorPix stand-in (mounted at ``/tensorpix``); see :mod:`.api` for the contract, :mod:`.processing`
for what its models do to a clip."""
