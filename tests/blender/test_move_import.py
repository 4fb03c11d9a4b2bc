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


def _clip(path: Path, frames: int = FRAMES, rate: Any = 24) -> Path:
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
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
    from blender_addon.runtime import Notice

    from .test_addon import Recorder

    move_ops = sys.modules[f"{ADDON}.move_ops"]
    long = "job job-1234: failed: " + "the clip window starts after the video ends; " * 5 + "THE END"
    move_ops.runtime().status.notices.append(Notice("ERROR", long))
    rec = Recorder()
    fake = type("FakePanel", (), {"layout": rec})()
    dirty = bpy.data.is_dirty
    bpy.types.VIEW3D_PT_tether_move.draw(fake, bpy.context)
    assert "Capture Motion" in rec.texts() or any(c["args"][0] == "tether.move_submit" for c in rec.calls("operator"))
    assert bpy.data.is_dirty == dirty
    assert "THE END" in " ".join(rec.texts())  # a long message is wrapped, not cut at 160 characters
    assert any(c["args"][0] == "TETHER_UL_move_bones" for c in rec.calls("template_list"))
    # another file's messages are not this one's
    bpy.ops.wm.save_as_mainfile(filepath=str(move_scene.with_name("other.blend")))
    bpy.ops.wm.open_mainfile(filepath=str(move_scene.with_name("other.blend")))
    assert move_ops.runtime().status.notices == []


def _keys(action: Any) -> list:
    move_ops = sys.modules[f"{ADDON}.move_ops"]
    return sorted({kp.co[0] for fc in move_ops.action_fcurves(action) for kp in fc.keyframe_points})


def test_strip_trim_is_the_window_keys_on_its_frames_and_retarget(move_scene: Path, tmp_path: Path) -> None:
    """A 29.97 fps strip at frame 101 in a 24 fps scene, trimmed 10 in and 20 out (visible 111-155)."""
    from fractions import Fraction

    from tether.registry import JobRegistry
    from tether_services.move.rig_worker import BONES

    bonemaps = sys.modules[f"{ADDON}.bonemaps"]
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.tether_move.video_path = ""
    video = _clip(tmp_path / "walk2997.mp4", 75, Fraction(30000, 1001))
    editor = scene.sequence_editor_create()
    strip = editor.strips.new_movie(name="walk", filepath=str(video), channel=1, frame_start=101)
    strip.frame_offset_start, strip.frame_offset_end = 10, 20
    editor.active_strip = strip
    assert (strip.frame_final_start, strip.frame_final_end) == (111, 156)
    assert bpy.ops.tether.move_submit(wait=True) == {"FINISHED"}
    job_id = scene.tether_move.job_id
    # the trim went to Move as the clip window, in seconds of the video
    record = JobRegistry().get("move", job_id)
    assert record is not None
    assert record.extra["start"] == pytest.approx(10 / 29.97, abs=1e-4)
    assert record.extra["end"] == pytest.approx(55 / 29.97, abs=1e-4)
    assert record.extra["frames"] == 45
    # the scene keeps its rate; the take's keys sit on whole frames from the strip's first visible frame, in real time
    assert (scene.render.fps, scene.render.fps_base) == (24, 1.0)
    (rig,) = _armatures()
    rig_name = f"Move {job_id[:12]}"
    assert rig.name == rig_name
    keys = _keys(rig.animation_data.action)
    assert all(k == int(k) for k in keys)
    assert keys[0] == 111 and keys == list(range(111, int(keys[-1]) + 1))
    assert (keys[-1] - keys[0]) / 24 == pytest.approx(44 / 29.97, abs=1 / 24)
    assert (scene.frame_start, scene.frame_end) == (111, keys[-1])

    # the stand-in is a person: Move's 22 bones at human scale, T-pose rest, feet on the floor, no leaf stubs
    assert sorted(b.name for b in rig.data.bones) == sorted(b[0] for b in BONES) == sorted(bonemaps.MOVE_BONES)
    assert rig.data.bones["Head"].tail_local.z == pytest.approx(1.75, abs=0.01)
    assert rig.data.bones["LeftLeg"].length == pytest.approx(0.43, abs=0.01)
    assert rig.data.bones["LeftHand"].tail_local.x == pytest.approx(0.89, abs=0.01)  # T-pose
    lowest = []
    for frame in (111, 120, 130, 140):
        scene.frame_set(frame)
        lowest.append(min((rig.matrix_world @ rig.pose.bones[b].tail).z for b in ("LeftToeBase", "RightToeBase")))
    assert all(-0.03 < z < 0.15 for z in lowest) and min(lowest) < 0.03

    # the artist's character: Mixamo names, 0.6 the size, other bone rolls, standing elsewhere
    target = _character("mixamorig:", 0.6, (2.0, 0.0, 0.0))
    settings = scene.tether_move
    settings.source_rig, settings.target_rig = rig, target
    assert bpy.ops.tether.move_bone_preset() == {"FINISHED"}
    assert settings.bone_preset == "MIXAMO" and len(settings.bone_map) == 22
    next(p for p in settings.bone_map if p.source == "Head").target = ""  # the map is the artist's to edit
    assert bpy.ops.tether.move_retarget() == {"FINISHED"}
    assert not any(pb.constraints for pb in target.pose.bones)
    assert "TETHER_RT_Hips" not in rig.data.bones and rig.matrix_world.to_scale()[0] == pytest.approx(1.0)
    assert _keys(target.animation_data.action) == keys
    for frame in (115, 130):
        scene.frame_set(frame)
        for name in ("LeftUpLeg", "LeftLeg", "RightForeArm", "Spine2"):
            src, dst = rig.pose.bones[name], target.pose.bones[f"mixamorig:{name}"]
            a = (rig.matrix_world @ src.tail - rig.matrix_world @ src.head).normalized()
            b = (target.matrix_world @ dst.tail - target.matrix_world @ dst.head).normalized()
            assert a.dot(b) > 0.999, (frame, name)
        hips = target.matrix_world @ target.pose.bones["mixamorig:Hips"].head - target.matrix_world.translation
        assert (hips - 0.6 * (rig.matrix_world @ rig.pose.bones["Hips"].head)).length < 0.005
    assert target.pose.bones["mixamorig:Head"].rotation_quaternion[0] == pytest.approx(1.0)  # unmapped: untouched

    # importing the job's rig again replaces it (no .001 stack) and says what it did to the frame range
    fbx = tmp_path / "move" / job_id / "MAIN_FBX.fbx"
    scene.frame_start, scene.frame_end = 50, 60
    assert bpy.ops.tether.move_import(filepath=str(fbx)) == {"FINISHED"}
    assert [o.name for o in _armatures()] == [target.name, rig_name]
    assert sorted(a.name for a in bpy.data.actions if a.name.startswith("Move")) == [rig_name]
    assert (scene.frame_start, scene.frame_end) == (50, 50 + keys[-1] - keys[0])  # a file: from the first frame


def _character(prefix: str, scale: float, at: tuple) -> Any:
    from tether_services.move.rig_worker import BONES

    arm = bpy.data.armatures.new("Character")
    obj = bpy.data.objects.new("Character", arm)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = at
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for index, (name, head, tail, parent) in enumerate(BONES):
        bone = arm.edit_bones.new(prefix + name)
        bone.head, bone.tail = [v * scale for v in head], [v * scale for v in tail]
        bone.roll = 0.3 + 0.4 * index
        if parent:
            bone.parent = arm.edit_bones[prefix + parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def test_a_failed_job_says_why(move_scene: Path, local_services: Any, tmp_path: Path) -> None:
    from tether.move.client import LOCAL_API_KEY, MoveClient

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 20)
    with MoveClient(local_services.url("move"), api_key=LOCAL_API_KEY) as client:
        file = client.upload(junk)
        job = client.create_job(client.create_take(file.id).id, outputs=["MOTION_DATA"])
    with pytest.raises(RuntimeError, match="not a readable video"):
        bpy.ops.tether.move_follow(job_id=job.id, wait=True)
    # and a clip too short for Move is refused before anything is uploaded
    local_services.requests.clear()
    bpy.context.scene.tether_move.video_path = str(_clip(tmp_path / "blink.mp4", 2))
    with pytest.raises(RuntimeError, match="at least"):
        bpy.ops.tether.move_submit(wait=True)
    assert local_services.requests.count(service="move") == 0


def test_a_centimetre_fbx_comes_in_at_scale_one(move_scene: Path, tmp_path: Path) -> None:
    scene = bpy.context.scene
    scene.unit_settings.scale_length = 0.01  # a scene in centimetres writes a centimetre FBX
    rig = _character("", 100.0, (0.0, 0.0, 0.0))
    hips = rig.pose.bones["Hips"]
    for frame, up in ((1, 0.0), (10, 20.0)):
        hips.location = (0.0, up, 0.0)
        hips.keyframe_insert("location", frame=frame)
    fbx = tmp_path / "cm.fbx"
    assert bpy.ops.export_scene.fbx(filepath=str(fbx), object_types={"ARMATURE"}, bake_anim=True) == {"FINISHED"}
    bpy.data.objects.remove(rig)
    scene.unit_settings.scale_length = 1.0
    assert bpy.ops.tether.move_import(filepath=str(fbx)) == {"FINISHED"}
    (imported,) = _armatures()
    assert tuple(imported.scale) == pytest.approx((1.0, 1.0, 1.0))
    assert imported.data.bones["Head"].tail_local.z == pytest.approx(1.75, abs=0.01)
    scene.frame_set(10)
    assert (imported.matrix_world @ imported.pose.bones["Hips"].head).z == pytest.approx(0.98 + 0.2, abs=0.01)


def test_capture_hands_off_to_the_agent_and_the_rig_still_comes_in(move_scene: Path, local_services: Any,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With the Tether agent, Capture Motion queues the video for it (the agent uploads it, makes the take and the job,
    after Blender closes too) and the add-on follows the hand-off to that job and imports the rig as before; a file
    reopened before the job was known finds it through the hand-off (Follow). No agent can run: sent in-process."""
    from tether import agent
    from tether.agent_server import Agent
    from tether.registry import JobRegistry

    from blender_addon import move_backend

    from .test_addon import Recorder

    move_ops = sys.modules[f"{ADDON}.move_ops"]
    monkeypatch.setenv("TETHER_AGENT", "auto")
    values = move_backend.MoveRequestValues(profile="", video=str(move_scene), name="dance")
    with monkeypatch.context() as nowhere:  # no agent runs, and none can start (no `tether` to start it with)
        nowhere.setattr(agent, "agent_command", lambda: None)
        assert move_backend.hand_off(values, "local") is None
    registry = JobRegistry()
    assert registry.queue() == []
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    try:
        scene = bpy.context.scene
        scene.tether_move.video_path = str(move_scene)
        scene.tether_move.job_id = "job-of-an-earlier-take"
        assert scene.tether_move.upload_priority == 0  # as `tether move submit --priority`'s default
        scene.tether_move.upload_priority = 4
        local_services.requests.clear()
        assert bpy.ops.tether.move_submit(wait=True) == {"FINISHED"}
        [entry] = registry.queue()
        assert (entry.service, entry.state, entry.priority) == ("move", "done", 4) and entry.job_id
        assert entry.request["request"]["video"] == str(move_scene)  # the artist's own file, read where it is
        assert local_services.requests.count("PUT", r"^/move/_store/uploads/") == 1  # sent once, by the agent
        settings = scene.tether_move
        assert (settings.job_id, settings.handoff_entry) == (entry.job_id, entry.id)
        (rig,) = _armatures()
        assert rig.name == f"Move {entry.job_id[:12]}" and rig.animation_data.action is not None
        assert (scene.frame_start, scene.frame_end) == (1, FRAMES)
        # the agent brought the rig home, to a folder of its own beside the .blend; Blender read it there
        home = Path(str(entry.output_dir))
        assert home.parent == tmp_path / "move" and home.name.startswith("dance_") and entry.fetch
        record = registry.get("move", str(entry.job_id))
        assert record.fetched_at and record.extra["agent_fetch"] and record.extra["fetched_to"] == str(home)
        assert (home / "MAIN_FBX.fbx").is_file() and not (tmp_path / "move" / entry.job_id).exists()
        assert f"rig came home to {home / 'MAIN_FBX.fbx'}" in move_ops.runtime().status.message
        rig_gets = local_services.requests.count("GET", r"^/move/_store/.*\.fbx")
        assert rig_gets == 1  # by the agent only
        # Blender closed before the agent made the job: the scene knows the hand-off only, and Follow finds its job
        bpy.data.objects.remove(rig)
        settings.job_id = ""
        rec = Recorder()
        bpy.types.VIEW3D_PT_tether_move.draw(type("FakePanel", (), {"layout": rec})(), bpy.context)
        assert f"queue entry {entry.id}" in " ".join(rec.texts())
        assert any(c["args"][0] == "tether.move_follow" for c in rec.calls("operator"))
        assert bpy.ops.tether.move_follow(wait=True) == {"FINISHED"}
        assert settings.job_id == entry.job_id and len(_armatures()) == 1
        assert len(registry.queue()) == 1
        assert local_services.requests.count("GET", r"^/move/_store/.*\.fbx") == rig_gets  # read from home again
        # not all there any more: Follow brings it home again (the agent brings a job's results once), and imports
        (home / "MAIN_FBX.fbx").unlink()
        bpy.data.objects.remove(_armatures()[0])
        assert bpy.ops.tether.move_follow(wait=True) == {"FINISHED"}
        assert (home / "MAIN_FBX.fbx").is_file() and len(_armatures()) == 1
        assert local_services.requests.count("GET", r"^/move/_store/.*\.fbx") == rig_gets + 1
        # Import Rig Again names it after its job (its home folder is named after the video), replacing the earlier
        rec = Recorder()
        bpy.types.VIEW3D_PT_tether_move.draw(type("FakePanel", (), {"layout": rec})(), bpy.context)
        again = [e["values"] for e in rec.calls("operator_props") if e["idname"] == "tether.move_import"]
        assert again == [{"filepath": str(home / "MAIN_FBX.fbx"), "job_id": entry.job_id}]
        assert bpy.ops.tether.move_import(**again[0]) == {"FINISHED"}
        assert [o.name for o in _armatures()] == [f"Move {entry.job_id[:12]}"]
    finally:
        live.close()
        registry.close()


def test_move_sends_and_jobs_are_listed_in_the_move_panel(move_scene: Path, local_services: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The Move panel's Move Jobs: a video the (paused) Tether agent holds, with its priority and its Cancel, and the
    Move jobs the add-on's monitor follows (started by the panel), a finished one with Import Rig; the farm's Jobs
    panel lists neither."""
    from tether import agent
    from tether.agent_server import Agent
    from tether.move.client import LOCAL_API_KEY, MoveClient
    from tether.move.submit import MoveRequest, submit_video
    from tether.registry import JobRegistry
    from waiting import eventually

    from blender_addon import backend, move_backend

    from .test_addon import Recorder

    monkeypatch.setenv("TETHER_AGENT", "auto")
    ops = sys.modules[f"{ADDON}.ops"]
    registry = JobRegistry()
    with MoveClient(local_services.url("move"), api_key=LOCAL_API_KEY) as client:
        job_id = submit_video(client, MoveRequest(video=move_scene, start=0.0, end=0.5), registry=registry).job.id
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    try:
        live.pause()  # it keeps the send waiting: uploading it is the agent's own test
        values = move_backend.MoveRequestValues(profile="", video=str(move_scene), name="dance", priority=3)
        entry_id = move_backend.hand_off(values, "local")
        assert entry_id and registry.queue_entry(entry_id).priority == 3  # type: ignore[union-attr]

        def draw(panel: str) -> Recorder:
            rec = Recorder()
            getattr(bpy.types, panel).draw(type("FakePanel", (), {"layout": rec})(), bpy.context)
            return rec

        draw("VIEW3D_PT_tether_move_jobs")  # starts the monitor, which lists and follows Move's jobs
        rows = eventually(lambda: {(r.job_id, r.handoff): r for r in ops.runtime().ui.jobs if r.service == "move"},
                          lambda seen: ("", entry_id) in seen and seen.get((job_id, 0), Any).state == "completed",
                          pump=ops.pump, message="the send and the finished job in the Move panel's rows")
        assert rows[("", entry_id)].label == "queued for upload" and rows[("", entry_id)].source == str(move_scene)
        monitor = ops.runtime().monitor
        assert job_id in {r.job_id for r in monitor.watcher.followed}  # followed at Move by the add-on itself
        rec = draw("VIEW3D_PT_tether_move_jobs")
        assert f"Handed to the Tether agent (queue entry {entry_id}): Blender may close" in rec.texts()
        acted = [(e["idname"], e["values"]) for e in rec.calls("operator_props")]
        assert ("tether.job_action", {"handoff": entry_id, "action": "cancel"}) in acted
        assert ("tether.move_follow", {"job_id": job_id}) in acted  # Import Rig: follows the finished job, imports
        bpy.context.scene.tether.show_all_jobs = True
        farm = draw("VIEW3D_PT_tether_jobs")
        assert "No jobs yet" in farm.texts() and not [e for e in farm.calls("operator_props")
                                                        if e["idname"] != "tether.refresh"]
        assert backend.cancel_handoff(entry_id) == {}
        assert [r.job_id for r in backend.list_rows() if r.service == "move"] == [job_id]
    finally:
        live.close()
        registry.close()


def test_follow_reads_the_agents_cycles_and_asks_move_nothing(move_scene: Path, local_services: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With a Tether agent running, Follow follows the Move job through the agent's cycles and reads the rig where the
    agent brought it: Blender's own way to Move leads nowhere here, and it is never needed."""
    from tether import agent
    from tether.agent_server import Agent
    from tether.move.client import LOCAL_API_KEY, MoveClient
    from tether.move.submit import MoveRequest, submit_video
    from tether.registry import JobRegistry

    monkeypatch.setenv("TETHER_AGENT", "auto")
    url = local_services.url("move")
    registry = JobRegistry()
    with MoveClient(url, api_key=LOCAL_API_KEY) as client:
        job_id = submit_video(client, MoveRequest(video=move_scene, start=0.0, end=0.5), registry=registry).job.id
    home = tmp_path / "move" / "dance_home"
    registry.record(service="move", job_id=job_id, output_dir=home, extra={"agent_fetch": True})  # as a hand-off's
    live = Agent(agent.runtime_dir(), registry, clients=lambda service, profile: MoveClient(url, api_key=LOCAL_API_KEY),
                 fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    monkeypatch.setenv("TETHER_MOVE_URL", "http://127.0.0.1:9/move")  # Blender's own way to Move: nothing listens
    try:
        assert bpy.ops.tether.move_follow(job_id=job_id, wait=True) == {"FINISHED"}
        (rig,) = _armatures()
        assert rig.name == f"Move {job_id[:12]}" and rig.animation_data.action is not None
        assert (home / "MAIN_FBX.fbx").is_file() and registry.get("move", job_id).fetched_at  # type: ignore[union-attr]
        assert "rig came home to" in sys.modules[f"{ADDON}.move_ops"].runtime().status.message
    finally:
        live.close()
        registry.close()
