"""Clip in, clip out: send the selected Read's clip to a video service, follow the job, import the returned movie as a
Read beside the plate on the plate's own frames.

The seam is :class:`ClipAdapter`, one small class per service (TensorPix here; Clipzy plugs in the same way):

- ``service``/``label``/``suffix``: the registry's service name, the words shown, the new Read's name suffix;
- ``client(profile)``: the service's client (a :class:`tether.jobs.JobService`);
- ``submit(client, movie, options, registry, label, extra)`` -> :class:`Sent` (job id, and the index of the first
  sent frame the output starts at, e.g. TensorPix's ``start_frame``);
- ``fetch(client, job_id, dest)`` -> the returned movie's path;
- optional ``can_cancel`` (default True) and ``cancel(client, job_id)`` (default: the client's ``cancel_job``);
  ``cancel_note``, when set, is what the UI says for a service that cannot cancel.

Everything else is shared: the plate's clip as one movie (:func:`movie_for_upload`: a movie plate is sent as it is,
a sequence is encoded with PyAV when it is installed), the registry record, following on a worker thread, and the
import (:func:`describe_clip_import`: a Read node description applied by :func:`tether_nuke.importer.apply_description`
on the main thread). ``tether_nuke.commands`` opens :class:`ClipServiceDialog` for an adapter from the menu.
"""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from tether.errors import InputError
from tether.jobs import Job, JobState
from tether.nukeimport import ImportDescription, NodeSpec, PlateFacts, check_plate
from tether.poll import Backoff, Clock, Tick, poll_until, polls
from tether.registry import JobRegistry

from .controller import FOLLOWED, BackgroundWork
from .mainthread import run_on_main

log = logging.getLogger("tether")
COLUMN = 110  # DAG spacing: the returned clip sits one column right of the plate
Listener = Callable[[str, Any], None]


# --- the seam ---------------------------------------------------------------------------------------------------
from tether.nukeimport.model import Sent  # noqa: E402  (shared with the DCC-free adapters in the core)


class ClipAdapter(Protocol):
    service: str
    label: str
    suffix: str

    def client(self, profile: Optional[str]) -> Any: ...

    def submit(self, client: Any, movie: Path, options: Dict[str, Any], registry: JobRegistry, label: str,
               extra: Dict[str, Any]) -> Sent: ...

    def fetch(self, client: Any, job_id: str, dest: Path) -> Path: ...


class TensorPixAdapter:
    service = "tensorpix"
    label = "TensorPix"
    suffix = "tensorpix"
    action = "Enhance (TensorPix)"
    can_cancel = False  # the TensorPix API publishes no cancel route (TensorPixClient.cancel_job says so)
    cancel_note = ("TensorPix publishes no way to cancel a job: it runs to the end (cancel it in the TensorPix web "
                   "app if it must stop)")

    def client(self, profile: Optional[str]) -> Any:
        from tether.tensorpix.client import TensorPixClient

        return TensorPixClient.from_profile(profile)

    def submit(self, client: Any, movie: Path, options: Dict[str, Any], registry: JobRegistry, label: str,
               extra: Dict[str, Any]) -> Sent:
        from tether.tensorpix.submit import enhance_clip

        done = enhance_clip(client, str(movie), options, registry=registry, source_label=label, extra=extra)
        return Sent(job_id=str(done.job.id), first_index=int(options.get("start_frame") or 0),
                    extra={"video_id": done.video.id})

    def fetch(self, client: Any, job_id: str, dest: Path) -> Path:
        path: Path = client.download_output(job_id, dest)
        return path


def _clipzy() -> ClipAdapter:
    from tether.clipzy.nuke_adapter import ClipzyAdapter

    adapter: ClipAdapter = ClipzyAdapter()
    return adapter


ADAPTERS: Dict[str, Callable[[], ClipAdapter]] = {"tensorpix": TensorPixAdapter, "clipzy": _clipzy}


# --- the clip out ----------------------------------------------------------------------------------------------
def movie_for_upload(plate: PlateFacts, folder: Path) -> Path:
    """The plate's sent frames as one movie: a movie plate as it is; a sequence encoded to H.264 with PyAV."""
    if plate.is_movie:
        return Path(plate.file)
    try:
        import av
        import numpy as np
        from PIL import Image
    except ImportError:
        raise InputError(f"Read {plate.node} reads an image sequence, and this Python has no PyAV to make a movie "
                         "of it: render the plate to a .mov/.mp4 and read that") from None
    missing = plate.missing_frames()
    if missing:
        raise InputError(f"Read {plate.node}: frames {missing[:5]} are missing from {plate.pattern.path}")
    files = plate.files_to_send()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{plate.node}.mp4"
    from fractions import Fraction

    rate = Fraction(plate.fps or 24).limit_denominator(1001)
    with av.open(str(out), "w") as container:
        stream: Any = container.add_stream("libx264", rate=rate)
        first = np.asarray(Image.open(files[0]).convert("RGB"))
        height, width = first.shape[:2]
        stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        stream.options = {"crf": "12"}
        for name in files:
            rgb = np.asarray(Image.open(name).convert("RGB"))
            rgb = np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


# --- the clip back ---------------------------------------------------------------------------------------------
def movie_frames(path: Path) -> Optional[int]:
    try:
        from tether.autopilot.clip import movie_facts

        return int(movie_facts(path).frames)
    except Exception:  # not an MP4/QuickTime we can read (e.g. .mkv): the sent count stands in
        return None


def describe_clip_import(plate: PlateFacts, movie: Path, *, suffix: str, first_index: int = 0,
                         frames: Optional[int] = None, job_id: str = "", title: str = "") -> ImportDescription:
    """A Read of ``movie`` one column right of the plate; its frame 1 on the plate frame of sent frame
    ``first_index`` (the sent clip's first frame is the plate's first sent frame)."""
    count = frames or movie_frames(movie) or plate.frame_count
    start = plate.plate_range[0] + first_index
    description = ImportDescription(plate=plate, job_id=job_id, title=title or f"Tether {suffix} import")
    knobs: Dict[str, Any] = {
        "file": Path(movie).as_posix(), "first": 1, "last": count, "origfirst": 1, "origlast": count,
        "origset": True, "frame_mode": "start at", "frame": str(start),
    }
    # no colorspace: the service returns a display-referred movie whatever the plate was; Nuke's default for
    # its file type is right, the plate's (e.g. ACEScg) would not be
    name = f"{plate.node}_{suffix}"
    description.nodes.append(NodeSpec("Read", name, knobs, (), plate.xpos + COLUMN, plate.ypos, role="clip"))
    remaining = plate.frame_count - first_index
    if count != remaining:
        description.notes.append(f"{Path(movie).name} has {count} frames for the {remaining} sent from frame "
                                 f"{start}: not one output frame per plate frame (preview, trim or retiming)")
    return description


# --- the controller (no Qt) --------------------------------------------------------------------------------------
class ClipServiceController(BackgroundWork):
    """Submit, follow and import for one adapter, on worker threads; events go to listeners.

    Events: ``"submitted"`` (job id), ``"job"`` (:class:`tether.jobs.Job`, as it changes), ``"imported"``
    (``(job_id, Applied)``), ``"error"`` (text), ``"released"`` (job id: no longer followed here although unfinished).
    """

    def __init__(self, adapter: ClipAdapter, registry: Optional[JobRegistry] = None,
                 client_factory: Optional[Callable[[Optional[str]], Any]] = None, profile: Optional[str] = None,
                 download_root: Optional[Path] = None, poll: float = 2.0, poll_cap: float = 15.0) -> None:
        self.adapter = adapter
        self.registry = registry or JobRegistry()
        self.profile = profile
        self._factory = client_factory or adapter.client
        self.download_root = download_root or self.registry.path.parent / adapter.service
        super().__init__(2, f"tether-{adapter.service}")
        self._what = f"{adapter.label} "
        self._poll = (poll, poll_cap)
        self._clients: Dict[Optional[str], Any] = {}

    def client(self, profile: Optional[str] = None) -> Any:
        """The service's client for ``profile`` (a job's recorded profile), else this controller's; made once."""
        key = profile or self.profile
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._factory(key)
            return client

    # --- cancelling (honest about services that cannot) ------------------------------------------------------------
    @property
    def can_cancel(self) -> bool:
        return bool(getattr(self.adapter, "can_cancel", True))

    def cancel_note(self) -> Optional[str]:
        """Why this service's jobs cannot be cancelled from Nuke, or None when they can."""
        if self.can_cancel:
            return None
        note = getattr(self.adapter, "cancel_note", None)
        return str(note) if note else (f"{self.adapter.label} has no cancel route: its jobs cannot be cancelled from "
                                       "here and finish or fail on their own")

    def cancel(self, job_id: str) -> Future[bool]:
        """Cancel on the service (worker); a service without a cancel route is refused here, nothing is sent."""

        def work() -> bool:
            note = self.cancel_note()
            if note is not None:
                raise InputError(note)
            record = self.registry.get(self.adapter.service, job_id)
            client = self.client(record.profile if record is not None else None)
            cancel = getattr(self.adapter, "cancel", None)
            if callable(cancel):
                cancel(client, job_id)
            else:
                client.cancel_job(job_id)
            return True

        return self._task(f"cancelling {self.adapter.label} job {job_id}", work)

    def submit(self, plate: PlateFacts, options: Dict[str, Any], script: str = "",
               follow: bool = True) -> Future[Any]:
        """Send the plate (facts read on the main thread beforehand); the Future gives the job id."""

        def work() -> str:
            check_plate(plate, check_disk=True).raise_first()
            label = f"{script}:{plate.node}" if script else plate.node
            extra = {"plate": plate.to_dict(), "script": script}
            with tempfile.TemporaryDirectory(prefix="tether-clip-") as tmp:
                movie = movie_for_upload(plate, Path(tmp))
                client = self.client()
                sent = self.adapter.submit(client, movie, options, self.registry, label, extra)
            # everything an import from a later session needs: the plate (with its sent frames), where the output
            # starts in the sent clip, and the profile whose client fetches it
            self.registry.record(service=self.adapter.service, job_id=sent.job_id,
                                 profile=str(getattr(client, "profile", "") or ""),
                                 title=f"{plate.node} ({Path(plate.file).name})",
                                 extra={**extra, **sent.extra, "first_index": sent.first_index,
                                        "frame_count": plate.frame_count})
            if follow:  # marked before "submitted": that event starts the monitor's watchers, which then skip it
                FOLLOWED.add(self.adapter.service, sent.job_id)
            self._emit("submitted", sent.job_id)
            if follow:
                self._pool.submit(self._follow_and_import, sent.job_id)
            return sent.job_id

        return self._task(f"sending the clip to {self.adapter.label}", work)

    def _follow_and_import(self, job_id: str) -> None:
        """The job's one follower in this session (the monitor skips it, see ``controller.FOLLOWED``)."""
        finished = False
        try:
            job = self.follow(job_id)
            if job is None:  # closed before the first ask
                return
            finished = job.state.finished
            if job.state is JobState.COMPLETED:
                self.import_job(job_id).result()
            elif finished:
                self._emit("error", f"{self.adapter.label} job {job_id} {job.state_label}"
                           + (f": {job.error}" if job.error else ""))
        except Exception as exc:
            self._emit("error", f"following {self.adapter.label} job {job_id}: {exc}")
        finally:
            FOLLOWED.discard(self.adapter.service, job_id)
            if not finished:  # closed, or polling failed, before the end: the monitor may follow it from here
                self._emit("released", job_id)

    def follow(self, job_id: str) -> Optional[Job]:
        """Poll until the job finishes or the controller closes (worker thread), backing off while nothing changes;
        the last view of the job (None when closed before the first ask)."""
        fast, cap = self._poll

        def seen(tick: Tick[Job]) -> None:
            self.registry.update_from(tick.value, self.profile or "")
            if tick.changed:
                self._emit("job", tick.value)

        ticks = polls(lambda: self.client().get_job(job_id), key=lambda job: (job.state_label, job.progress),
                      backoff=Backoff(fast, cap), cancelled=self._stop.is_set, clock=Clock(sleep=self._stop.wait))
        return poll_until(ticks, lambda job: bool(job.state.finished), seen)

    def import_job(self, job_id: str, plate: Optional[PlateFacts] = None) -> Future[Dict[str, str]]:
        """Download the returned movie (worker), then create its Read beside the plate (main thread).

        The plate is the one recorded when the clip was sent (a job from an earlier Nuke session imports the same
        way); ``plate`` stands in for a job sent without one (e.g. from the command line).
        """
        done: Future[Dict[str, str]] = Future()

        def work() -> None:
            record = self.registry.get(self.adapter.service, job_id)
            if record is None:
                raise InputError(f"{self.adapter.label} job {job_id} is not in the job list")
            stored = record.extra.get("plate")
            if not stored and plate is None:
                raise InputError(f"{self.adapter.label} job {job_id} was not sent from Nuke: its plate is unknown; "
                                 "select the plate's Read and import again")
            facts = PlateFacts.from_dict(stored) if stored else plate
            assert facts is not None
            movie = self.adapter.fetch(self.client(record.profile or None), job_id, self.download_root / job_id)
            self.registry.mark_fetched(self.adapter.service, job_id, movie.parent)
            description = describe_clip_import(facts, movie, suffix=self.adapter.suffix, job_id=job_id,
                                               first_index=int(record.extra.get("first_index") or 0),
                                               title=f"Tether {self.adapter.label} import")
            run_on_main(self._apply, job_id, description, done)

        future = self._task(f"importing {self.adapter.label} job {job_id}", work)
        future.add_done_callback(lambda f: done.set_exception(f.exception()) if f.exception() else None)
        return done

    def close(self) -> None:
        super().close()
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            if callable(getattr(client, "close", None)):
                client.close()


# --- the dialog (Qt, loaded on first use) ------------------------------------------------------------------------
TENSORPIX_RESOLUTIONS = (("service default", -1), ("720p", 720), ("1080p", 1080), ("1440p", 1440),
                         ("2160p (4K)", 2160))


MODELS_SERVICE = "tensorpix"  # the list cache's service name for TensorPix's ML models
MODELS_LIST = "ml_models"


def load_models(service: str, profile: str, url: str) -> Optional[Tuple[List[Tuple[str, str]], float]]:
    """The models last listed for this profile and endpoint, as ``([(id, name)], fetched_at)``; None if never."""
    from tether import listcache

    cached = listcache.load(service, profile, url)
    if cached is None or MODELS_LIST not in cached.lists:
        return None
    return [(item[0], item[1] if len(item) > 1 else "") for item in cached.lists[MODELS_LIST]], cached.fetched_at


def save_models(service: str, profile: str, url: str, models: List[Tuple[str, str]]) -> float:
    """Keep the fresh list for the next dialog (a failure to write only costs that); returns its time."""
    from tether import listcache

    stamp = time.time()
    try:
        listcache.save(service, profile, url, {MODELS_LIST: models}, stamp)
    except (OSError, ValueError) as exc:
        log.warning("Tether: the TensorPix models were not cached: %s", exc)
    return stamp


def clock(stamp: Optional[float]) -> str:
    """``HH:MM`` for today, else with the date (local time)."""
    if stamp is None:
        return "?"
    day = time.strftime("%Y-%m-%d", time.localtime(stamp))
    hour = time.strftime("%H:%M", time.localtime(stamp))
    return hour if day == time.strftime("%Y-%m-%d") else f"{day} {hour}"


def tensorpix_options(models: List[int], resolution: int = -1, *, preview: bool = False,
                      **numbers: Optional[float]) -> Dict[str, Any]:
    """The TensorPix options from the dialog's values (0/empty number fields leave the service's default)."""
    options: Dict[str, Any] = {"ml_models": list(models), "output_resolution": resolution, "preview": preview}
    for key, value in numbers.items():
        if value not in (None, 0, 0.0, ""):
            options[key] = value
    return options


def make_dialog(adapter_name: str = "tensorpix", controller: Optional[ClipServiceController] = None) -> Any:
    """The dialog for one adapter (qtpy: PySide2 or PySide6), built on first use so start-up never imports Qt.

    TensorPix gets its own form (models: the last list from disk at once, then the service's; resolution, the
    numeric options, preview). Any other adapter describes its options in ``options_spec``: ``[{"name", "label",
    "kind": "file"|"text"|"number"|"bool", "required", "help"}]``; an optional ``stage_text(job)`` is shown while
    the job runs and an optional ``action`` labels the button.
    """
    from qtpy import QtCore, QtGui, QtWidgets

    from .plate_reader import read_plate, selected_read

    NAME_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
    GONE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2

    class _Bridge(QtCore.QObject):
        event = QtCore.Signal(str, object)

    class ClipServiceDialog(QtWidgets.QWidget):
        def __init__(self) -> None:
            super().__init__()
            self.adapter = controller.adapter if controller is not None else ADAPTERS[adapter_name]()
            self.controller = controller or ClipServiceController(self.adapter)
            label = self.adapter.label
            self.setWindowTitle(f"Tether: {label}")
            self.plate: Optional[PlateFacts] = None
            self._bridge = _Bridge(self)
            self._bridge.event.connect(self._on_event)
            bridge, ctl = self._bridge, self.controller

            def listen(kind: str, payload: Any) -> None:
                bridge.event.emit(kind, payload)

            # the controller may be the job monitor's, which outlives this dialog
            ctl.add_listener(listen)
            self.destroyed.connect(lambda *_: ctl.remove_listener(listen))
            form = QtWidgets.QFormLayout(self)
            self.read_label = QtWidgets.QLabel("-")
            form.addRow("Read", self.read_label)
            self.spec: List[Dict[str, Any]] = list(getattr(self.adapter, "options_spec", None) or [])
            self.fields: Dict[str, Any] = {}
            if self.spec:
                self._spec_form(form)
            else:
                self._tensorpix_form(form)
            self.send_button = QtWidgets.QPushButton(getattr(self.adapter, "action", "") or f"Send to {label}")
            self.send_button.clicked.connect(self.submit)
            form.addRow(self.send_button)
            self.progress = QtWidgets.QProgressBar()
            self.progress.setRange(0, 100)
            form.addRow(self.progress)
            self.status = QtWidgets.QLabel("")
            self.status.setWordWrap(True)
            form.addRow(self.status)
            self.refresh_plate()

        # --- forms --------------------------------------------------------------------------------------------
        def _tensorpix_form(self, form: Any) -> None:
            self.models_box = QtWidgets.QListWidget()
            form.addRow("Models", self.models_box)
            self.models_note = QtWidgets.QLabel("listing the models...")
            self.models_note.setWordWrap(True)
            form.addRow("", self.models_note)
            self.models_shown_at: Optional[float] = None  # when the list shown was fetched
            self.resolution = QtWidgets.QComboBox()
            for text, value in TENSORPIX_RESOLUTIONS:
                self.resolution.addItem(text, value)
            form.addRow("Resolution", self.resolution)
            self.numbers: Dict[str, Any] = {}
            for key, label, top in (("grain", "Grain", 100), ("sharpen_strength", "Sharpen", 100),
                                    ("stabilization_smoothing", "Stabilisation", 100),
                                    ("fps_interpolation_factor", "FPS factor", 8), ("playback_speed", "Speed", 16)):
                spin = QtWidgets.QDoubleSpinBox()
                spin.setRange(0, top)
                spin.setSpecialValueText("default")
                self.numbers[key] = spin
                form.addRow(label, spin)
            self.preview = QtWidgets.QCheckBox("Preview only (first frames)")
            form.addRow(self.preview)
            self.controller._task("listing the models", self._load_models)

        def _spec_form(self, form: Any) -> None:
            for item in self.spec:
                kind = item.get("kind", "text")
                widget: Any
                if kind == "bool":
                    widget = QtWidgets.QCheckBox(item.get("label", item["name"]))
                elif kind == "number":
                    widget = QtWidgets.QDoubleSpinBox()
                    widget.setRange(-1e9, 1e9)
                else:
                    widget = QtWidgets.QLineEdit()
                    widget.setPlaceholderText(item.get("help", ""))
                widget.setToolTip(item.get("help", ""))
                self.fields[item["name"]] = widget
                if kind == "file":
                    row = QtWidgets.QHBoxLayout()
                    browse = QtWidgets.QPushButton("...")
                    browse.clicked.connect(lambda _=False, w=widget: self._browse(w))
                    row.addWidget(widget)
                    row.addWidget(browse)
                    form.addRow(item.get("label", item["name"]), row)
                else:
                    form.addRow(item.get("label", item["name"]) if kind != "bool" else "", widget)

        def _browse(self, edit: Any) -> None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose a file")
            if path:
                edit.setText(path)

        def _load_models(self) -> None:
            """Worker: the last list from disk at once, then the service's (cached for the next time)."""
            client = self.controller.client()
            key = (MODELS_SERVICE, str(getattr(client, "profile", "") or ""), str(getattr(client, "base_url", "")))
            cached = load_models(*key)
            if cached is not None:
                self._bridge.event.emit("models", (cached[0], cached[1], "cached"))
            try:
                fresh = [(str(m.id), str(m.name or "")) for m in client.models()]
            except Exception as exc:
                self._bridge.event.emit("models", (None, cached[1] if cached else None, str(exc)))
                return
            stamp = save_models(*key, fresh)
            self._bridge.event.emit("models", (fresh, stamp, "fresh"))

        def _show_models(self, models: Optional[List[Tuple[str, str]]], fetched_at: Optional[float],
                         how: str) -> None:
            """``how``: "cached" (from disk, a fresh list is on its way), "fresh", else why the fetch failed."""
            if models is None:  # the fetch failed: keep what is shown
                self.models_note.setText(f"offline: models from {clock(fetched_at)}" if fetched_at is not None
                                         else f"offline: no models listed yet ({how})")
                self.models_note.setToolTip(how)
                return
            box = self.models_box
            ticked = [box.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(box.count())
                      if box.item(i).checkState() == QtCore.Qt.CheckState.Checked]
            names = {str(box.item(i).data(QtCore.Qt.ItemDataRole.UserRole)): box.item(i).data(NAME_ROLE)
                     for i in range(box.count())}
            box.clear()
            offered = {model_id for model_id, _ in models}
            rows = list(models) + [(str(t), names.get(str(t)) or "") for t in ticked if str(t) not in offered]
            for model_id, name in rows:
                gone = model_id not in offered
                item = QtWidgets.QListWidgetItem(f"{model_id}: {name}" + ("  (no longer offered)" if gone else ""))
                item.setData(QtCore.Qt.ItemDataRole.UserRole, int(model_id) if model_id.isdigit() else model_id)
                item.setData(NAME_ROLE, name)
                item.setData(GONE_ROLE, gone)
                item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                checked = any(str(t) == model_id for t in ticked)
                item.setCheckState(QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked)
                if gone:  # kept ticked and flagged: sending refuses it until it is unticked
                    item.setForeground(QtGui.QBrush(QtGui.QColor("#e0605a")))
                    item.setToolTip(f"TensorPix no longer lists model {model_id}")
                box.addItem(item)
            self.models_shown_at = fetched_at
            note = f"models as of {clock(fetched_at)}"
            self.models_note.setText(note + (" (checking for changes...)" if how == "cached" else ""))
            self.models_note.setToolTip("")

        # --- state --------------------------------------------------------------------------------------------
        def refresh_plate(self) -> None:
            node = selected_read()
            self.plate = None
            try:
                self.plate = read_plate(node) if node is not None else None
            except InputError as exc:
                self.status.setText(str(exc))
            self.read_label.setText(self.plate.node if self.plate else "no Read selected")
            self.send_button.setEnabled(self.plate is not None)

        def options(self) -> Dict[str, Any]:
            if self.spec:
                out: Dict[str, Any] = {}
                for item in self.spec:
                    widget = self.fields[item["name"]]
                    kind = item.get("kind", "text")
                    value = widget.isChecked() if kind == "bool" else (
                        widget.value() if kind == "number" else widget.text().strip())
                    if value in ("", None) and item.get("required"):
                        raise InputError(f"{item.get('label', item['name'])} is required")
                    if value not in ("", None):
                        out[item["name"]] = value
                return out
            ticked = [self.models_box.item(i) for i in range(self.models_box.count())
                      if self.models_box.item(i).checkState() == QtCore.Qt.CheckState.Checked]
            gone = [str(item.data(QtCore.Qt.ItemDataRole.UserRole)) for item in ticked
                    if item.data(GONE_ROLE)]
            if gone:
                raise InputError(f"TensorPix no longer offers model {', '.join(gone)}: untick it or choose another")
            ids = [item.data(QtCore.Qt.ItemDataRole.UserRole) for item in ticked]
            if not ids:
                raise InputError("tick at least one model")
            numbers = {k: spin.value() for k, spin in self.numbers.items()}
            return tensorpix_options(ids, int(self.resolution.currentData()), preview=self.preview.isChecked(),
                                     **numbers)

        def submit(self) -> None:
            self.refresh_plate()
            if self.plate is None:
                return
            try:
                options = self.options()
            except InputError as exc:
                self.status.setText(str(exc))
                return
            self.send_button.setEnabled(False)
            self.status.setText(f"Sending {self.plate.node}...")
            self.controller.submit(self.plate, options)

        def _on_event(self, kind: str, payload: Any) -> None:
            if kind == "models":
                self._show_models(*payload)
            elif kind == "job":
                stage = getattr(self.adapter, "stage_text", None)
                self.progress.setValue(round(payload.progress))
                self.status.setText(f"job {payload.id}: {stage(payload) if callable(stage) else payload.state_label}")
            elif kind == "imported":
                job_id, applied = payload
                self.status.setText(f"Imported job {job_id}: {', '.join(applied.names.values())}"
                                    + (f" ({'; '.join(applied.notes)})" if applied.notes else ""))
                self.send_button.setEnabled(True)
            elif kind == "error":
                self.status.setText(str(payload))
                self.send_button.setEnabled(self.plate is not None)

    return ClipServiceDialog()


__all__ = ["ADAPTERS", "ClipAdapter", "ClipServiceController", "Sent", "TensorPixAdapter", "describe_clip_import",
           "make_dialog", "movie_for_upload", "tensorpix_options"]
