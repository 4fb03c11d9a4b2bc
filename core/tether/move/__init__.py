"""Move (Move.ai): markerless motion capture from a video, over GraphQL (seed 003).

:mod:`.client` (the typed GraphQL client), :mod:`.models` (contract and documents), :mod:`.submit` (the one
headless submission path), :mod:`.webhooks` (Svix signature verification). Nothing is imported here, so that
``import tether.move`` stays free for a DCC's start-up.
"""
