"""The Gradio web UI: `build_ui(...) -> gr.Blocks`, thin handlers over the query service.

Tabs: Search (text / image / clip, filters, moment cards, player, "more like this"),
Library (videos and their state, a video's clip timeline) and Index (add a folder, progress,
cancel). The plain work lives in app/search.py, app/library.py, app/jobs.py and app/media.py;
handlers here only translate between widgets and those functions.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from urllib.parse import quote

import gradio as gr

from app.cli_output import format_time
from app.jobs import IndexJobs, JobState
from app.library import COLUMNS, library_rows, timeline
from app.media import preview_for
from app.query import Filters, Query, QueryError, SearchOptions, parse_time
from app.search import SearchService
from app.status import library_status
from indexer.decode import ProbeError
from indexer.records import Moment
from indexer.settings import DataDir

NO_INDEX = "**No index yet.** Add a folder in the *Index* tab, or run `python run.py index PATH`."
ASK = "Describe what to find, or upload an example image or clip."
CSS = ".tubelet-player video { width: 100%; max-height: 60vh; background: #000; }"


class Handlers:
    """Plain functions behind the widgets; each returns values for its outputs."""

    def __init__(self, service: SearchService, jobs: IndexJobs | None, data: DataDir):
        self.service, self.jobs, self.data = service, jobs, data

    # -- search ---------------------------------------------------------------------------------
    def search(self, text, negative, image, video, start, end, prefix, glob, min_dur, max_dur, after, k,
               min_score, like=None):
        try:
            service = self.service.ensure_ready()
        except QueryError:
            return [], NO_INDEX, [], "", None
        query = _query(text, negative, image, video, start, end, like)
        if query is None:
            return [], ASK, [], "", None
        filters = Filters(_text(prefix), _text(glob), _number(min_dur), _number(max_dur), _when(after))
        options = SearchOptions(k=int(k or 10), min_score=_number(min_score))
        result = service.search(query, filters, options)
        if result.no_match:
            message = ("**No good match**: the best score is {:.2f}, below the minimum {:g}.".format(
                result.best_score, options.min_score) if result.best_score is not None
                else "**No match**: nothing indexed passes the filters.")
            return [], message, [], "", None
        cards = [(m.thumbnail, _caption(m)) for m in result.moments]
        return cards, f"{len(result.moments)} moments, best first.", [m.to_json() for m in result.moments], "", None

    def more_like(self, clip_id, negative, prefix, glob, min_dur, max_dur, after, k, min_score):
        if clip_id is None:
            raise gr.Error("Select a moment first.")
        return self.search(None, negative, None, None, None, None, prefix, glob, min_dur, max_dur, after, k,
                           min_score, like=clip_id)

    def select(self, moments: list[dict], evt: gr.SelectData):
        moment = moments[evt.index]
        return self.player(moment["path"], moment["start"], moment["end"], moment["clip_id"]), moment["clip_id"]

    def player(self, path: str, start: float, end: float, clip_id: int | None = None) -> str:
        try:
            preview = preview_for(self.data.root / "previews", Path(path), start, end)
        except (OSError, ProbeError) as exc:
            raise gr.Error(f"Cannot play {Path(path).name}: {exc}") from exc
        src = f"gradio_api/file={quote(str(preview.path))}#t={preview.offset:.3f}"
        original = f"gradio_api/file={quote(path)}"
        clip = f" · clip {clip_id}" if clip_id is not None else ""
        return (f'<div class="tubelet-player"><video src="{html.escape(src)}" controls autoplay muted playsinline '
                f'data-offset="{preview.offset:.3f}" data-start="{start:.3f}" data-end="{end:.3f}"></video>'
                f'<p>{html.escape(Path(path).name)} · {format_time(start)}–{format_time(end)}{clip} · '
                f'<a href="{html.escape(original)}" target="_blank">original file</a></p></div>')

    # -- library --------------------------------------------------------------------------------
    def library(self, folder: str):
        if not _catalog_exists(self.data):
            return []
        return [row.as_list() for row in library_rows(self._catalog(), _text(folder))]

    def timeline(self, rows, evt: gr.SelectData):
        video_id = int(rows.iloc[evt.index[0], 0]) if hasattr(rows, "iloc") else int(rows[evt.index[0]][0])
        clips = timeline(self._catalog(), video_id)
        items = [(str(self.data.root / c.thumbnail), f"{format_time(c.start)}–{format_time(c.end)}")
                 for c in clips if c.thumbnail]
        state = [{"clip_id": c.clip_id, "start": c.start, "end": c.end, "path": rows_path(rows, evt.index[0])}
                 for c in clips if c.thumbnail]
        return items, state

    def play_timeline(self, clips: list[dict], evt: gr.SelectData) -> str:
        clip = clips[evt.index]
        return self.player(clip["path"], clip["start"], clip["end"], clip["clip_id"])

    def _catalog(self):
        catalog = self.service.catalog
        if not catalog.is_open:
            catalog.open()
        return catalog

    # -- indexing -------------------------------------------------------------------------------
    def start_index(self, folder: str) -> str:
        if self.jobs is None:
            raise gr.Error("Indexing from the web UI is off: start the server with --root DIR.")
        try:
            return progress_html(self.jobs.start(folder))
        except QueryError as exc:
            raise gr.Error(str(exc)) from exc

    def cancel_index(self) -> str:
        return progress_html(self.jobs.cancel()) if self.jobs else ""

    def tick(self) -> str:
        return progress_html(self.jobs.state()) if self.jobs else ""

    # -- API ------------------------------------------------------------------------------------
    def api_search(self, text: str | None = None, negative: str | None = None, image: str | None = None,
                   video: str | None = None, start: float | None = None, end: float | None = None,
                   like: float | None = None, k: float = 10, min_score: float | None = None,
                   path_prefix: str | None = None, path_glob: str | None = None,
                   min_duration: float | None = None, max_duration: float | None = None,
                   indexed_after: str | None = None, group: str = "clip") -> list[dict]:
        """Moments as JSON, best first: the same as `run.py search --json`."""
        service = self.service.ensure_ready()
        query = _query(text, negative, image, video, start, end, _number(like))
        if query is None:
            raise QueryError("nothing to search for: give text, an image, a video or a clip id")
        filters = Filters(_text(path_prefix), _text(path_glob), _number(min_duration), _number(max_duration),
                          _when(indexed_after))
        options = SearchOptions(k=int(k or 10), min_score=_number(min_score), group=group or "clip")
        result = service.search(query, filters, options)
        items = result.videos if options.group == "video" else result.moments
        return [item.to_json() for item in items]

    def api_status(self) -> dict:
        """Videos, clips, failures and encoders of the library."""
        return library_status(self.data)


def rows_path(rows, i: int) -> str:
    return str(rows.iloc[i, 1]) if hasattr(rows, "iloc") else str(rows[i][1])


def _catalog_exists(data: DataDir) -> bool:
    return data.catalog_url is not None or (data.root / "catalog.db").is_file()


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _number(value) -> float | None:
    return None if value in (None, "") else float(value)


def _when(value):
    return parse_time(_text(value))


def _query(text, negative, image, video, start, end, like) -> Query | None:
    text, negative = _text(text), _text(negative)
    if not any((text, image, video, like is not None)):
        return None
    start, end = _number(start), _number(end)
    return Query(text=text, image=Path(image) if image else None, video=Path(video) if video else None,
                 start=start if video and start else None, end=end if video and end else None,
                 like=int(like) if like is not None else None, negative=negative)


def _caption(m: Moment) -> str:
    return f"{Path(m.path).name} · {format_time(m.start)}–{format_time(m.end)} · {m.score:.2f}"


def progress_html(state: JobState) -> str:
    if state.status == "idle":
        return "<p>No index run yet.</p>"
    eta = state.eta_seconds()
    eta_text = f" · ETA {format_time(eta)}" if eta is not None else ""
    detail = html.escape(state.current or "")
    lines = [f'<progress max="1" value="{state.fraction:.3f}" style="width:100%"></progress>',
             f'<p data-status="{state.status}"><b>{state.status}</b> {html.escape(state.folder or "")} · '
             f'{state.fraction:.0%}{eta_text} {detail}</p>']
    if state.error:
        lines.append(f"<p>Error: {html.escape(state.error)}</p>")
    if state.report:
        files = state.report["files"]
        lines.append(f"<p>{files['new']} new, {files['changed']} changed, {files['failed']} failed; "
                     f"{state.report['clips_embedded']} clips embedded.</p>")
        for failure in state.report["failures"][:20]:
            lines.append(f"<p>failed: {html.escape(failure['path'])}: {html.escape(failure['error'])}</p>")
    return "\n".join(lines)


def build_ui(service: SearchService, jobs: IndexJobs | None, data: DataDir) -> gr.Blocks:
    h = Handlers(service, jobs, data)
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
        text = gr.Textbox(label="Describe the moment", placeholder="someone riding a bike", scale=3,
                          elem_id="query-text")
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
            min_score = gr.Number(label="Minimum score")
    go = gr.Button("Search", variant="primary", elem_id="search-button")
    status = gr.Markdown(ASK, elem_id="search-status")
    with gr.Row():
        cards = gr.Gallery(label="Moments", columns=3, height="auto", allow_preview=False, elem_id="moments",
                           buttons=[], scale=3)
        with gr.Column(scale=2):
            player = gr.HTML("<p>Select a moment to play it.</p>", elem_id="player")
            like = gr.Button("More like this", elem_id="more-like-this")
    moments = gr.State([])
    selected = gr.State(None)
    inputs = [text, negative, image, video, start, end, prefix, glob, min_dur, max_dur, after, k, min_score]
    outputs = [cards, status, moments, player, selected]
    go.click(_user_errors(h.search), inputs, outputs, api_name="ui_search", api_visibility="private")
    text.submit(_user_errors(h.search), inputs, outputs, api_name="ui_search_submit", api_visibility="private")
    cards.select(h.select, [moments], [player, selected], api_visibility="private")
    like.click(_user_errors(h.more_like), [selected, negative, prefix, glob, min_dur, max_dur, after, k, min_score],
               outputs, api_visibility="private")


def _library_tab(h: Handlers) -> tuple[gr.Textbox, gr.Dataframe]:
    with gr.Row():
        folder = gr.Textbox(label="Folder (path starts with)", scale=3)
        refresh = gr.Button("Refresh", scale=1)
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, elem_id="library")
    gr.Markdown("Select a video to see its clip timeline.")
    strip = gr.Gallery(label="Timeline", columns=8, height="auto", allow_preview=False, buttons=[],
                       elem_id="timeline")
    strip_state = gr.State([])
    player = gr.HTML(elem_id="timeline-player")
    refresh.click(h.library, [folder], [table], api_visibility="private")
    folder.submit(h.library, [folder], [table], api_visibility="private")
    table.select(h.timeline, [table], [strip, strip_state], api_visibility="private")
    strip.select(h.play_timeline, [strip_state], [player], api_visibility="private")
    return folder, table


def _index_tab(h: Handlers) -> None:
    roots = ", ".join(str(r) for r in h.jobs.allowed_roots) if h.jobs and h.jobs.allowed_roots else "none"
    gr.Markdown(f"Index a folder inside the allowed library roots ({roots}). Searching keeps working "
                "meanwhile and sees each video once it is committed.")
    with gr.Row():
        folder = gr.Textbox(label="Folder", scale=3, elem_id="index-folder")
        start = gr.Button("Index", variant="primary", scale=1, elem_id="index-start")
        cancel = gr.Button("Cancel", scale=1, elem_id="index-cancel")
    progress = gr.HTML(h.tick(), elem_id="index-progress")
    start.click(h.start_index, [folder], [progress], api_visibility="private")
    cancel.click(h.cancel_index, None, [progress], api_visibility="private")
    gr.Timer(1.0).tick(h.tick, None, [progress], api_visibility="private", show_progress="hidden")


def _api(h: Handlers) -> None:
    """Named endpoints for gradio_client (see README): /search and /status."""
    with gr.Column(visible=False):
        fields = [gr.Textbox(label="text"), gr.Textbox(label="negative"), gr.File(label="image"),
                  gr.File(label="video"), gr.Number(label="start"), gr.Number(label="end"),
                  gr.Number(label="like"), gr.Number(label="k", value=10), gr.Number(label="min_score"),
                  gr.Textbox(label="path_prefix"), gr.Textbox(label="path_glob"),
                  gr.Number(label="min_duration"), gr.Number(label="max_duration"),
                  gr.Textbox(label="indexed_after"), gr.Textbox(label="group", value="clip")]
        result = gr.JSON()
        trigger = gr.Button()
    trigger.click(_user_errors(h.api_search), fields, result, api_name="search")
    gr.api(h.api_status, api_name="status")


def _user_errors(fn):
    """Show user mistakes (bad query, unreadable upload) as a Gradio error, not a traceback."""
    @functools.wraps(fn)  # keeps the signature: API parameter names come from it
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (QueryError, ProbeError, ValueError) as exc:
            raise gr.Error(str(exc)) from exc
    return wrapper

