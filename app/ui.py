"""The Gradio web UI: `build_ui(...) -> gr.Blocks`, thin handlers over the query service.

Tabs: Search (text / image / clip, filters, moment cards, player, "more like this"),
Library (videos and their state, a video's clip timeline) and Index (add a folder, progress,
cancel). The plain work lives in app/search.py, app/library.py, app/jobs.py and app/media.py;
handlers here only translate between widgets and those functions.
"""

from __future__ import annotations

import functools
import html
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from gradio import route_utils

from app.cli_output import format_time
from app.jobs import IndexJobs, JobState
from app.library import COLUMNS, RECENT_COLUMNS, library_rows, recent_rows, timeline
from app.made_files import MadeFiles
from app.media import MAX_PREVIEW_SECONDS, preview_for
from app.moments import MAX_MOMENT_SECONDS
from app.progress_text import progress_text
from app.query import DEFAULT_MIN_SCORE, QueryError, SearchRequest, build_request, require_finite
from app.search import SearchService
from app.serving import cached_thumb_url, export_url, original_file, preview_url, thumb_url, video_url
from app.status import library_status
from indexer.catalog import Catalog
from indexer.decode import ProbeError
from indexer.recorded import local_text
from indexer.records import Moment
from indexer.settings import DataDir

NO_INDEX = "**No index yet.** Add a folder in the *Index* tab, or run `python run.py index PATH`."
ASK = "Describe what to find, or upload an example image or clip."
CSS = (
    ".tubelet-player video { width: 100%; max-height: 60vh; background: #000; }\n"
    # Gradio cuts a card's caption to one line with an ellipsis: a moment's caption wraps, whole, instead.
    "#moments .caption-label { white-space: normal; overflow-wrap: anywhere; max-width: 100%; opacity: 0.9; }"
)
SEARCH_CONCURRENCY = 8  # Gradio workers per search event; at most HEAVY_ADMITTED of them embed uploads
HEAVY_RUNNING, HEAVY_ADMITTED = 1, 4


@dataclass
class QuerySlots:
    """Video and image queries decode and embed an upload (seconds to minutes); text, "more like this"
    and status queries take milliseconds. Heavy queries run `running` at a time and at most `admitted`
    hold a worker (more are refused as busy), so cheap queries always find a free worker."""

    running: int = HEAVY_RUNNING
    admitted: int = HEAVY_ADMITTED
    wait_s: float = 300.0
    _run: threading.BoundedSemaphore = field(init=False)
    _admit: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self):
        self._run, self._admit = threading.BoundedSemaphore(self.running), threading.BoundedSemaphore(self.admitted)

    def call(self, heavy: bool, fn: Callable):
        if not heavy:
            return fn()
        if not self._admit.acquire(blocking=False):
            raise QueryError("the server is busy with other video and image queries: try again in a minute")
        try:
            if not self._run.acquire(timeout=self.wait_s):
                raise QueryError("the server is busy with other video and image queries: try again in a minute")
            try:
                return fn()
            finally:
                self._run.release()
        finally:
            self._admit.release()


class Handlers:
    """Plain functions behind the widgets; each returns values for its outputs. No handler takes a path
    from the client: clips and videos are named by id and their paths come from the catalog."""

    def __init__(
        self,
        service: SearchService,
        jobs: IndexJobs | None,
        data: DataDir,
        uploads=None,
        slots: QuerySlots | None = None,
        previews: MadeFiles | None = None,
    ):
        self.service, self.jobs, self.data = service, jobs, data
        self.uploads = uploads  # app.server.UploadFolder, or None (no cleanup)
        self.slots = slots or QuerySlots()
        self.previews = previews or MadeFiles(data.root / "previews")  # the server's is size-capped

    # -- search ---------------------------------------------------------------------------------
    def search(self, request: SearchRequest | None, root_url: str = ""):
        """Moment cards for a request from the Search tab (None: the form asks nothing yet). Each card's image is
        the URL of its clip's thumbnail on this server (`root_url`, see page_root): the browser fetches it by id,
        instead of Gradio hashing and copying every thumbnail into its cache on each search."""
        try:
            service = self.service.ensure_ready()
        except QueryError:
            return [], no_index_message(self.jobs), [], "", None
        if request is None:
            return [], ASK, [], "", None
        options = request.options
        result = self.slots.call(_heavy(request), lambda: service.search(request))
        if self.uploads is not None:
            self.uploads.sweep()  # the UI keeps its upload for a re-run: removed after the TTL
        if result.no_match:
            message = (
                f"**No good match**: the best score is {result.best_score:.2f}, "
                f"below the minimum {options.min_score:g}."
                if result.best_score is not None
                else "**No match**: nothing indexed passes the filters."
            )
            return [], message, [], "", None
        cards = [(_card_image(m, root_url), _caption(m)) for m in result.moments]
        return cards, f"{len(result.moments)} moments, best first.", [m.to_json() for m in result.moments], "", None

    def more_like(self, request: SearchRequest | None, root_url: str = ""):
        """The Search tab's request for clips like the selected moment (its clip id in `request.query.like`)."""
        if request is None or request.query.like is None:
            raise gr.Error("Select a moment first.")
        return self.search(request, root_url)

    def select(self, moments: list[dict], evt: gr.SelectData):
        if not isinstance(evt.index, int) or not 0 <= evt.index < len(moments):
            raise gr.Error("Select a moment first.")
        moment = moments[evt.index]  # server-side state, but only its clip ids are used
        clip_id = int(moment["clip_id"])
        return self.play_clip(clip_id, [int(c) for c in moment.get("clip_ids") or [clip_id]]), clip_id

    def reconstruct(self, clip_id: int | None):
        """The reconstruction picture (app/reconstruct.py) of the selected moment's clip: uint8 (H, W, 3)."""
        if clip_id is None:
            raise gr.Error("Select a moment first.")
        from app.reconstruct import reconstruction_picture
        from indexer.pretrain_errors import PretrainError

        try:
            return self.slots.call(
                True, lambda: reconstruction_picture(self.data, int(clip_id), device=self.service.device)
            )
        except PretrainError as exc:
            raise gr.Error(without_server_paths(str(exc), self.data)) from exc

    def play_clip(self, clip_id: int, span: list[int] | None = None) -> str:
        """Player HTML for a clip of the catalog (over the merged clips `span` of its video, if given), with a
        download link of that moment; an id the catalog lacks is refused, naming no path, and a moment that
        cannot be played gets a player that says why."""
        ids = sorted({clip_id, *(span or [])})
        rows = self._catalog().clip_rows(ids) if self.data.has_catalog else {}
        row = rows.get(clip_id)
        if row is None:
            raise gr.Error(f"No clip {clip_id} in the library.")
        same_video = [r for r in rows.values() if r.video_id == row.video_id]
        first, last = min(same_video, key=lambda r: r.start), max(same_video, key=lambda r: r.end)
        start, end = first.start, last.end
        # The player starts at the clip's own window, the moment's peak; a preview shows a long moment from
        # its start, so one whose peak lies past that is previewed from the peak.
        preview_from = start if row.end - start <= MAX_PREVIEW_SECONDS else row.start
        name = Path(row.path).name
        original = original_file(self._catalog(), self.data, row.video_id)  # the same checks as serving it
        if original is None:
            return _player_problem(f"Cannot play {name}: the file is gone or changed since it was indexed.")
        os.close(original.fd)
        try:
            preview = preview_for(self.previews, Path(original.path), preview_from, end)
        except OSError as exc:
            return _player_problem(f"Cannot play {name}: {exc.strerror or 'cannot read the file'}")
        except ProbeError as exc:
            return _player_problem(f"Cannot play {name}: {without_server_paths(str(exc), self.data)}")
        offset = preview.offset + row.start - preview_from  # seconds into the preview where the peak starts
        src = f"{preview_url(preview.path)}#t={offset:.3f}"
        download = export_url(first.clip_id, last.clip_id)
        return (
            f'<div class="tubelet-player"><video src="{html.escape(src)}" controls autoplay muted playsinline '
            f'data-offset="{offset:.3f}" data-start="{start:.3f}" data-end="{end:.3f}" '
            f'data-peak-start="{row.start:.3f}" data-peak-end="{row.end:.3f}"></video>'
            f"<p>{html.escape(name)} · {format_time(start)}–{format_time(end)} · "
            f"peak {format_time(row.start)}–{format_time(row.end)} · clip {clip_id} · "
            f'<a href="{html.escape(video_url(row.video_id))}" target="_blank">original file</a> · '
            f'<a href="{html.escape(download)}" download class="tubelet-download">download this moment</a></p></div>'
        )

    # -- library --------------------------------------------------------------------------------
    def library(self, folder: str):
        if not self.data.has_catalog:
            return []
        return [row.as_list() for row in library_rows(self._catalog(), _text(folder))]

    def timeline(self, rows, evt: gr.SelectData, root_url: str = ""):
        """Clip strip of the selected row's video: only the row's id is read (the table comes from the client).
        Its images are thumbnail URLs on this server, as the search cards' are (see `search`)."""
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) and evt.index else None
        if not isinstance(row, int) or not 0 <= row < len(rows):
            return [], []
        video_id = _whole(rows.iloc[row, 0] if hasattr(rows, "iloc") else rows[row][0], "video id")
        if video_id is None or not self.data.has_catalog:
            return [], []
        clips = [c for c in timeline(self._catalog(), video_id) if c.thumbnail]
        items = [
            (f"{root_url}/{cached_thumb_url(c.clip_id, c.thumbnail)}", f"{format_time(c.start)}–{format_time(c.end)}")
            for c in clips
        ]
        return items, [c.clip_id for c in clips]

    def play_timeline(self, clip_ids: list[int], evt: gr.SelectData) -> str:
        if not isinstance(evt.index, int) or not 0 <= evt.index < len(clip_ids):
            raise gr.Error("Select a video in the table first.")
        return self.play_clip(int(clip_ids[evt.index]))

    def _catalog(self):
        return open_catalog(self.service, self.data)

    def recent(self) -> list[list]:
        catalog = self._catalog()
        return recent_rows(catalog) if catalog is not None else []

    # -- indexing -------------------------------------------------------------------------------
    def start_index(self, folder: str) -> str:
        if self.jobs is None:
            raise gr.Error("Indexing from the web UI is off: start the server with --root DIR.")
        try:
            return self._progress(self.jobs.start(folder))
        except QueryError as exc:
            raise gr.Error(str(exc)) from exc

    def cancel_index(self) -> str:
        return self._progress(self.jobs.cancel()) if self.jobs else ""

    def tick(self) -> str:
        return self._progress(self.jobs.state()) if self.jobs else ""

    def _progress(self, state: JobState) -> str:
        return without_server_paths(progress_html(state), self.data)  # run errors may name the data dir

    # -- API ------------------------------------------------------------------------------------
    def api_search(
        self,
        text: str | None = None,
        negative: str | None = None,
        image: str | None = None,
        video: str | None = None,
        start: float | None = None,
        end: float | None = None,
        like: float | None = None,
        k: float = 10,
        min_score: float | None = None,
        path_prefix: str | None = None,
        path_glob: str | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
        indexed_after: str | None = None,
        group: str = "clip",
        max_moment: float | None = None,
        recorded_after: str | None = None,
        recorded_before: str | None = None,
        sort: str = "score",
    ) -> list[dict]:
        """Moments as JSON, best first: `run.py search --json`, with each thumbnail as a URL of this server."""
        try:
            service = self.service.ensure_ready()
            clip_id, k_value = _whole(like, "like"), _whole(k, "k")
            request = form_request(
                text=text,
                negative=negative,
                image=image,
                video=video,
                start=start,
                end=end,
                like=clip_id,
                k=10 if k_value is None else k_value,
                min_score=min_score,
                path_prefix=path_prefix,
                path_glob=path_glob,
                min_duration=min_duration,
                max_duration=max_duration,
                indexed_after=indexed_after,
                group=group or "clip",
                max_moment=max_moment,
                recorded_after=recorded_after,
                recorded_before=recorded_before,
                sort=sort or "score",
            )
            if request is None:
                raise QueryError("nothing to search for: give text, an image, a video or a clip id")
            result = self.slots.call(_heavy(request), lambda: service.search(request))
        finally:
            if self.uploads is not None:  # answered (or refused): an API upload is used once
                self.uploads.remove(image)
                self.uploads.remove(video)
        items = result.videos if request.options.group == "video" else result.moments
        return [_public(item.to_json()) for item in items]

    def api_status(self) -> dict:
        """Videos, clips, failures and encoders of the library (`run.py status --json` without server paths)."""
        status = library_status(self.data)
        status.pop("data", None)
        return _without_paths(status, self.data)


def open_catalog(service: SearchService, data: DataDir) -> Catalog | None:
    """The server's one catalog connection (opened on first use), or None before anything is indexed."""
    if not data.has_catalog:
        return None
    if not service.catalog.is_open:
        service.catalog.open()
    return service.catalog


def no_index_message(jobs: IndexJobs | None) -> str:
    """The empty state: the Index tab offers folders only when `serve` was given --root."""
    if jobs is not None and jobs.allowed_roots:
        return NO_INDEX
    return (
        "**No index yet.** Run `python run.py index PATH --data DIR` with this server's data dir, then search "
        "again. To index from this page, start `python run.py serve` with `--root DIR`."
    )


def index_tab_text(jobs: IndexJobs | None) -> str:
    if jobs is None or not jobs.allowed_roots:
        return (
            "Indexing from this page is off: start `python run.py serve` with `--root DIR` to index folders "
            "inside DIR here, or run `python run.py index PATH` with this server's data dir."
        )
    roots = ", ".join(str(r) for r in jobs.allowed_roots)
    return (
        f"Index a folder inside the allowed library roots ({roots}). Searching keeps working "
        "meanwhile and sees each video once it is committed."
    )


def _public(item: dict) -> dict:
    """A result for a client: thumbnails as URLs of this server, never paths in the data dir."""
    if "moments" in item:
        return {**item, "moments": [_public(m) for m in item["moments"]]}
    return {**item, "thumbnail": thumb_url(item["clip_id"]) if item.get("thumbnail") else None}


def _without_paths(value, data: DataDir):
    """`value` with every server path in its strings replaced by a name (see without_server_paths)."""
    if isinstance(value, dict):
        return {k: _without_paths(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_paths(v, data) for v in value]
    return without_server_paths(value, data) if isinstance(value, str) else value


def _heavy(request: SearchRequest) -> bool:
    return request.query.video is not None or request.query.image is not None


def _whole(value, name: str) -> int | None:
    """An API integer: 7 and 7.0 pass, 1.7, nan and 1e30 are refused (not rounded into another clip or k)."""
    if value in (None, ""):
        return None
    number = _finite(value, name)
    if number != int(number) or abs(number) >= 2**63:
        raise QueryError(
            f"{name} must be a whole number, got {value:g}"
            if isinstance(value, float)
            else f"{name} must be a whole number, got {value}"
        )
    return int(number)


def _finite(value, name: str) -> float | None:
    try:
        number = _number(value)
    except ValueError as exc:  # typed into a text field (the UI's minimum score)
        raise QueryError(f"{name} must be a number, got {value!r}") from exc
    require_finite(name, number)  # the records' own check, before int() or rounding could hide it
    return number


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _number(value) -> float | None:
    return None if value in (None, "") else float(value)


def form_request(
    *,
    text=None,
    negative=None,
    image=None,
    video=None,
    start=None,
    end=None,
    like: int | None = None,
    k: int = 10,
    min_score=None,
    path_prefix=None,
    path_glob=None,
    min_duration=None,
    max_duration=None,
    indexed_after=None,
    group: str = "clip",
    max_moment=None,
    recorded_after=None,
    recorded_before=None,
    sort: str = "score",
) -> SearchRequest | None:
    """The request behind a search form's values (blank fields mean "not given"; start/end only with a video),
    or None when it asks for nothing."""
    text, negative = _text(text), _text(negative)
    if not any((text, image, video, like is not None)):
        return None
    start, end = _number(start), _number(end)
    return build_request(
        text=text,
        negative=negative,
        image=Path(image) if image else None,
        video=Path(video) if video else None,
        start=start if video and start else None,
        end=end if video and end else None,
        like=int(like) if like is not None else None,
        k=k,
        min_score=_finite(min_score, "min_score"),
        group=group,
        path_prefix=_text(path_prefix),
        path_glob=_text(path_glob),
        min_duration=_number(min_duration),
        max_duration=_number(max_duration),
        indexed_after=_text(indexed_after),
        max_moment=_finite(max_moment, "max_moment"),
        recorded_after=_text(recorded_after),
        recorded_before=_text(recorded_before),
        sort=sort,
    )


def page_root(request: gr.Request | None) -> str:
    """This server's URL as the page that sent `request` reaches it (proxy headers and root path included), the
    way Gradio resolves its own file URLs; "" without a request (a handler called directly)."""
    raw = getattr(request, "request", None)
    if raw is None:
        return ""
    return route_utils.get_root_url(raw, route_utils.get_api_call_path(raw), raw.app.root_path)


def _card_image(m: Moment, root_url: str) -> str | None:
    """An absolute URL (Gradio hands http URLs to the browser untouched; a path it would copy into its cache)."""
    return f"{root_url}/{cached_thumb_url(m.clip_id, m.thumbnail)}" if m.thumbnail else None


def _caption(m: Moment) -> str:
    """What a card says: the whole file name, the moment, its best window, its score and, when known, the
    wall-clock time it was recorded (the server's local time)."""
    caption = (
        f"{Path(m.path).name} · {format_time(m.start)}–{format_time(m.end)} · "
        f"peak {format_time(m.peak_start)}–{format_time(m.peak_end)} · score {m.score:.2f}"
    )
    return f"{caption} · {local_text(m.recorded.at)}" if m.recorded else caption


def progress_html(state: JobState) -> str:
    if state.status == "idle":
        return "<p>No index run yet.</p>"
    text = progress_text(state.progress, state.status)  # the same line as the CLI's
    current = f" · {html.escape(state.current)}" if state.current and state.status == "running" else ""
    lines = [
        f'<progress max="1" value="{state.fraction:.3f}" style="width:100%"></progress>',
        f'<p data-status="{state.status}"><b>{state.status}</b> {html.escape(state.folder or "")} · '
        f"{html.escape(text)}{current}</p>",
    ]
    if state.error:
        lines.append(f"<p>Error: {html.escape(state.error)}</p>")
    if state.report:
        files = state.report["files"]
        lines.append(
            f"<p>{files['new']} new, {files['changed']} changed, {files['failed']} failed; "
            f"{state.report['clips_embedded']} clips embedded.</p>"
        )
        for failure in state.report["failures"][:20]:
            lines.append(f"<p>failed: {html.escape(failure['path'])}: {html.escape(failure['error'])}</p>")
    return "\n".join(lines)


def status_translations() -> gr.I18n:
    """Gradio's English strings lack "common.complete", which its status tracker announces (in a screen-reader
    region that is part of the page text) when an event ends, so the raw key showed; launch(i18n=...) adds it."""
    return gr.I18n(en={"common.complete": "Done"})


def build_ui(
    service: SearchService, jobs: IndexJobs | None, data: DataDir, uploads=None, previews: MadeFiles | None = None
) -> gr.Blocks:
    h = Handlers(service, jobs, data, uploads, previews=previews)
    with gr.Blocks(title="Tubelet", analytics_enabled=False) as demo:
        gr.Markdown("# Tubelet\nSearch your video library for moments.")
        with gr.Tab("Search"):
            _search_tab(h)
        with gr.Tab("Library"):
            folder, table = _library_tab(h)
        with gr.Tab("Index"):
            _index_tab(h)
        _api(h)
        demo.load(h.library, [folder], [table], api_visibility="private")
    return demo


def _search_tab(h: Handlers) -> None:
    with gr.Row():
        text = gr.Textbox(
            label="Describe the moment", placeholder="someone riding a bike", scale=3, elem_id="query-text"
        )
        negative = gr.Textbox(label="But not", placeholder="night", scale=1)
    with gr.Row():
        image = gr.Image(label="Example image", type="filepath", sources=["upload", "clipboard"], height=160)
        video = gr.Video(label="Example clip", sources=["upload"], height=160, elem_id="query-video")
        with gr.Column():
            start = gr.Number(label="Clip start (s)", value=None, minimum=0, elem_id="query-start")
            end = gr.Number(label="Clip end (s)", value=None, minimum=0, elem_id="query-end")
    with gr.Accordion("Filters", open=False):
        with gr.Row():
            prefix = gr.Textbox(label="Folder (path starts with)")
            glob = gr.Textbox(label="Path pattern", placeholder="*/cam1/*.mp4")
            after = gr.Textbox(label="Indexed after", placeholder="2026-11-01")
        with gr.Row():
            min_dur = gr.Number(label="Min video duration (s)", minimum=0)
            max_dur = gr.Number(label="Max video duration (s)", minimum=0)
            k = gr.Slider(1, 100, value=12, step=1, label="Moments")
            # a Textbox: an empty gr.Number shows and sends 0, which is a score cut-off the CLI does not make
            min_score = gr.Textbox(
                label="Minimum score",
                value="" if DEFAULT_MIN_SCORE is None else f"{DEFAULT_MIN_SCORE:g}",
                placeholder="none: every match",
                elem_id="min-score",
            )
            max_moment = gr.Number(label="Longest moment (s)", value=MAX_MOMENT_SECONDS, minimum=0)
        with gr.Row():
            recorded_after = gr.Textbox(
                label="Recorded from", placeholder="2024-01-01 or 2024-01-01T08:00", elem_id="recorded-after"
            )
            recorded_before = gr.Textbox(label="Recorded before", placeholder="2024-02-01", elem_id="recorded-before")
            sort = gr.Radio(["score", "time"], value="score", label="Order moments by", elem_id="sort")
        gr.Markdown(
            "Recording times come from each file's tags or camera-style name, in the server's local time; "
            "a recording-time range leaves out videos whose recording time is unknown."
        )
    go = gr.Button("Search", variant="primary", elem_id="search-button")
    status = gr.Markdown(ASK, elem_id="search-status")
    with gr.Row():
        cards = gr.Gallery(
            label="Moments", columns=3, height="auto", allow_preview=False, elem_id="moments", buttons=[], scale=3
        )
        with gr.Column(scale=2):
            player = gr.HTML("<p>Select a moment to play it.</p>", elem_id="player")
            like = gr.Button("More like this", elem_id="more-like-this")
            seen = gr.Button("What the model fills in", elem_id="reconstruct-button")
            picture = gr.Image(
                label="Original · masked input · reconstruction", type="numpy", elem_id="reconstruction", visible=True
            )
    moments = gr.State([])
    selected = gr.State(None)
    form = SearchForm(
        text,
        negative,
        image,
        video,
        start,
        end,
        prefix,
        glob,
        min_dur,
        max_dur,
        after,
        k,
        min_score,
        max_moment,
        recorded_after,
        recorded_before,
        sort,
    )
    outputs = [cards, status, moments, player, selected]

    def ui_search(values: dict, request: gr.Request):
        return h.search(form.request(values), page_root(request))

    search = _user_errors(ui_search, h.data)
    go.click(
        search,
        form.inputs(),
        outputs,
        api_name="ui_search",
        api_visibility="private",
        concurrency_limit=SEARCH_CONCURRENCY,
    )
    text.submit(
        search,
        form.inputs(),
        outputs,
        api_name="ui_search_submit",
        api_visibility="private",
        concurrency_limit=SEARCH_CONCURRENCY,
    )
    cards.select(_user_errors(h.select, h.data), [moments], [player, selected], api_visibility="private")
    seen.click(_user_errors(h.reconstruct, h.data), [selected], [picture], api_visibility="private")

    def ui_more_like(values: dict, request: gr.Request):
        return h.more_like(form.request(values, like=values[selected]), page_root(request))

    more_like = _user_errors(ui_more_like, h.data)
    like.click(
        more_like,
        form.inputs(examples=False) | {selected},
        outputs,
        api_visibility="private",
        concurrency_limit=SEARCH_CONCURRENCY,
    )


@dataclass(frozen=True, eq=False)
class SearchForm:
    """The Search tab's widgets. An event whose inputs are a set gets one dict {widget: value}; `request` turns
    it into the SearchRequest the handlers take."""

    text: gr.Textbox
    negative: gr.Textbox
    image: gr.Image
    video: gr.Video
    start: gr.Number
    end: gr.Number
    prefix: gr.Textbox
    glob: gr.Textbox
    min_dur: gr.Number
    max_dur: gr.Number
    after: gr.Textbox
    k: gr.Slider
    min_score: gr.Textbox
    max_moment: gr.Number
    recorded_after: gr.Textbox
    recorded_before: gr.Textbox
    sort: gr.Radio

    def inputs(self, examples: bool = True) -> set:
        """Every widget, or (examples=False, "more like this") all but the example text, image and clip."""
        skip = () if examples else (self.text, self.image, self.video, self.start, self.end)
        return {w for w in vars(self).values() if all(w is not x for x in skip)}

    def request(self, values: dict, like: int | None = None) -> SearchRequest | None:
        value = values.get  # a widget left out of the event's inputs reads as not given
        return form_request(
            text=value(self.text),
            negative=value(self.negative),
            image=value(self.image),
            video=value(self.video),
            start=value(self.start),
            end=value(self.end),
            like=like,
            k=int(value(self.k) or 10),
            min_score=_text(value(self.min_score)),
            path_prefix=value(self.prefix),
            path_glob=value(self.glob),
            # an empty gr.Number sends 0 once shown: a duration bound of 0 means none (max 0 would match nothing)
            min_duration=value(self.min_dur) or None,
            max_duration=value(self.max_dur) or None,
            indexed_after=value(self.after),
            max_moment=value(self.max_moment),
            recorded_after=value(self.recorded_after),
            recorded_before=value(self.recorded_before),
            sort=value(self.sort) or "score",
        )


def _library_tab(h: Handlers) -> tuple[gr.Textbox, gr.Dataframe]:
    with gr.Row():
        folder = gr.Textbox(label="Folder (path starts with)", scale=3)
        refresh = gr.Button("Refresh", scale=1)
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="library")
    gr.Markdown("Select a video to see its clip timeline.")
    strip = gr.Gallery(label="Timeline", columns=8, height="auto", allow_preview=False, buttons=[], elem_id="timeline")
    strip_state = gr.State([])
    player = gr.HTML(elem_id="timeline-player")
    refresh.click(h.library, [folder], [table], api_visibility="private")
    folder.submit(h.library, [folder], [table], api_visibility="private")

    def ui_timeline(rows, evt: gr.SelectData, request: gr.Request):
        return h.timeline(rows, evt, page_root(request))

    table.select(_user_errors(ui_timeline, h.data), [table], [strip, strip_state], api_visibility="private")
    strip.select(_user_errors(h.play_timeline, h.data), [strip_state], [player], api_visibility="private")
    return folder, table


def _index_tab(h: Handlers) -> None:
    gr.Markdown(index_tab_text(h.jobs))
    with gr.Row():
        folder = gr.Textbox(label="Folder", scale=3, elem_id="index-folder")
        start = gr.Button("Index", variant="primary", scale=1, elem_id="index-start")
        cancel = gr.Button("Cancel", scale=1, elem_id="index-cancel")
    progress = gr.HTML(h.tick(), elem_id="index-progress")
    # the bar is the progress: no Gradio timer overlay on it
    start.click(h.start_index, [folder], [progress], api_visibility="private", show_progress="hidden")
    cancel.click(h.cancel_index, None, [progress], api_visibility="private", show_progress="hidden")
    gr.Timer(1.0).tick(h.tick, None, [progress], api_visibility="private", show_progress="hidden")
    _recent_list(h)


def _recent_list(h: Handlers) -> None:
    """What was indexed lately, from the catalog: a running watch (serve --watch) fills it as footage arrives."""
    gr.Markdown("### Recently indexed")
    recent = gr.Dataframe(headers=RECENT_COLUMNS, value=h.recent, interactive=False, wrap=True, elem_id="recent")
    gr.Timer(5.0).tick(h.recent, None, [recent], api_visibility="private", show_progress="hidden")


def _api(h: Handlers) -> None:
    """Named endpoints for gradio_client (see README): /search and /status."""
    with gr.Column(visible=False):
        fields = [
            gr.Textbox(label="text"),
            gr.Textbox(label="negative"),
            gr.File(label="image"),
            gr.File(label="video"),
            gr.Number(label="start"),
            gr.Number(label="end"),
            gr.Number(label="like"),
            gr.Number(label="k", value=10),
            gr.Number(label="min_score"),
            gr.Textbox(label="path_prefix"),
            gr.Textbox(label="path_glob"),
            gr.Number(label="min_duration"),
            gr.Number(label="max_duration"),
            gr.Textbox(label="indexed_after"),
            gr.Textbox(label="group", value="clip"),
            gr.Number(label="max_moment", value=MAX_MOMENT_SECONDS),
            gr.Textbox(label="recorded_after"),
            gr.Textbox(label="recorded_before"),
            gr.Textbox(label="sort", value="score"),
        ]
        result = gr.JSON()
        trigger = gr.Button()
    trigger.click(
        _user_errors(h.api_search, h.data), fields, result, api_name="search", concurrency_limit=SEARCH_CONCURRENCY
    )
    gr.api(h.api_status, api_name="status")


def _player_problem(message: str) -> str:
    """A moment that cannot be played says so once, in the player: a gr.Error here would also paint the
    player's own red Error box beside the toast."""
    return f'<div class="tubelet-player tubelet-problem" role="alert"><p>{html.escape(message)}</p></div>'


def _user_errors(fn, data: DataDir):
    """Show user mistakes (bad query, unreadable upload) as a Gradio error, not a traceback, and never
    with a server path in it (the data dir, the upload folder)."""

    @functools.wraps(fn)  # keeps the signature: API parameter names come from it
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (QueryError, ProbeError, ValueError) as exc:
            raise gr.Error(without_server_paths(str(exc), data)) from exc

    return wrapper


def without_server_paths(message: str, data: DataDir) -> str:
    uploads = os.environ.get("GRADIO_TEMP_DIR")
    for path, name in (
        (uploads, "the upload"),
        (os.path.realpath(data.root), "the data dir"),
        (str(data.root), "the data dir"),
    ):
        if path:
            message = message.replace(path, name)
    return message
