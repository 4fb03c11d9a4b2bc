"""Slapshot Autopilot: AI roto, camera tracking, depth maps and smart vectors for a clip.

- :mod:`.models`: the wire contract (pydantic); :mod:`.client`: :class:`AutopilotClient`;
- :mod:`.clip`: the clip a user sends (movie or sequence), checked before upload;
- :mod:`.submit`: the one headless submission path (check -> pack -> upload -> create -> record);
- :mod:`.results`: unpacking and classifying what comes back (the hook the Nuke import builds on).

Importing this package loads nothing heavy; import the submodules where they are needed.
"""
