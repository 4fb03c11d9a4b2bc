"""The Move round trip in Blender with the real bpy: the local Move builds an FBX rig with Blender (in its own
process), the add-on's operators send a video, follow the job and import the rig in their execute() path."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from .conftest import ADDON, bpy

av = pytest.importorskip("av")
FRAMES = 30  # 1.25 s at 24 fps


def _clip(path: Path, frames: int = FRAMES) -> Path:
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 7 % 255, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture()
def move_scene(addon: Any, local_services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TETHER_MOVE_URL", local_services.url("move"))
    monkeypatch.delenv("TETHER_MOVE_API_KEY", raising=False)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "mocap.blend"))
    yield _clip(tmp_path / "dance.mp4")
    sys.modules[f"{ADDON}.move_ops"].drop_runtime()


def _armatures() -> list:
    return [o for o in bpy.data.objects if o.type == "ARMATURE"]


def test_send_video_follow_and_import_rig(move_scene: Path, tmp_path: Path) -> None:
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 250
    scene.tether_move.video_path = str(move_scene)
    assert bpy.ops.tether.move_submit(wait=True) == {"FINISHED"}
    rigs = _armatures()
    assert len(rigs) == 1
    rig = rigs[0]
    action = rig.animation_data.action
    assert action is not None and len(rig.pose.bones) >= 5
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES)
    assert tuple(round(f) for f in action.frame_range) == (1, FRAMES)
    assert scene.render.fps == 24
    # the bones really move over the take
    bone = rig.pose.bones["LeftLeg"]
    angles = []
    for frame in (1, FRAMES // 4 + 1):
        scene.frame_set(frame)
        angles.append(round(bone.matrix.to_euler()[0], 3))
    assert angles[0] != angles[1]
    # the job is the scene's, and the rig sits beside the .blend
    job_id = scene.tether_move.job_id
    assert job_id.startswith("job-")
    assert (tmp_path / "move" / job_id / "MAIN_FBX.fbx").is_file()


def test_import_operator_with_the_service_fbx(move_scene: Path, local_services: Any, tmp_path: Path) -> None:
    from tether.move.client import LOCAL_API_KEY, MoveClient
    from tether.move.submit import MoveRequest, submit_video, wait_for

    with MoveClient(local_services.url("move"), api_key=LOCAL_API_KEY) as client:
        sub = submit_video(client, MoveRequest(video=move_scene, start=0.0, end=0.5))
        assert wait_for(client, sub.job.id, interval=0.2).state.value == "completed"
        (fbx,) = client.fetch_outputs(sub.job.id, tmp_path / "rig")
    scene = bpy.context.scene
    scene.tether_move.job_id = sub.job.id
    assert bpy.ops.tether.move_import(filepath=str(fbx)) == {"FINISHED"}
    assert _armatures() and _armatures()[0].animation_data.action is not None
    assert (scene.frame_start, scene.frame_end) == (1, 12)  # 0.5 s of a 24 fps video


def test_follow_after_reopen_and_refusals(move_scene: Path, local_services: Any) -> None:
    from tether.move.client import LOCAL_API_KEY, MoveClient
    from tether.move.submit import MoveRequest, submit_video

    scene = bpy.context.scene
    scene.tether_move.video_path = ""
    # no file and no Sequencer strip: said before anything is sent
    with pytest.raises(RuntimeError, match="Choose a video file"):
        bpy.ops.tether.move_submit(wait=True)
    # the active Sequencer movie strip is the video when no file is chosen
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    strip = strips.new_movie(name="dance", filepath=str(move_scene), channel=1, frame_start=1)
    editor.active_strip = strip
    assert sys.modules[f"{ADDON}.move_ops"].chosen_video(scene) == str(move_scene)
    # a job sent elsewhere (e.g. before Blender was closed) is followed and imported
    with MoveClient(local_services.url("move"), api_key=LOCAL_API_KEY) as client:
        job_id = submit_video(client, MoveRequest(video=move_scene)).job.id
    assert bpy.ops.tether.move_follow(job_id=job_id, wait=True) == {"FINISHED"}
    assert scene.tether_move.job_id == job_id and _armatures()
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES)


def test_move_panel_draws_without_writing(move_scene: Path) -> None:
    from .test_addon import Recorder

    rec = Recorder()
    fake = type("FakePanel", (), {"layout": rec})()
    dirty = bpy.data.is_dirty
    bpy.types.VIEW3D_PT_tether_move.draw(fake, bpy.context)
    assert "Capture Motion" in rec.texts() or any(c["args"][0] == "tether.move_submit" for c in rec.calls("operator"))
    assert bpy.data.is_dirty == dirty
