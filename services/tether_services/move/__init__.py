"""The local Move stand-in (GraphQL at ``/move/ugc/graphql``); see :mod:`.api`."""
