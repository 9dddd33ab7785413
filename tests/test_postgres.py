"""A catalog in a real PostgreSQL server shared by several machines (issue 16 item 3): one index run at a time
across processes with different data dirs (the catalog's advisory lock, not a file), and several search
services over one catalog and one index dir picking up vectors indexed after they loaded."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys

import pytest
from helpers import ROOT, cli_in_process, index, open_at_once, search

from app.search import SearchService
from indexer.catalog import Catalog
from indexer.engine import describe_url
from indexer.schema import SCHEMA_VERSION
from indexer.settings import DataDir

pytestmark = pytest.mark.postgres

HOLD = (
    "import sys; from pathlib import Path; from indexer.catalog import Catalog\n"
    "lock = Catalog(sys.argv[1]).open().run_lock(Path(sys.argv[2]))\n"
    "with lock:\n"
    "    print('held', flush=True); sys.stdin.read()\n"
)


@pytest.fixture
def pg_url(postgres) -> str:
    return postgres.new_database()


def test_a_second_run_against_one_postgresql_catalog_is_refused_until_the_first_is_gone(pg_url, tmp_path):
    """Another process (think: another machine, so another data dir and lock file) holds the run lock: this
    run is refused with the error a second run on one data dir gets, naming the holder; once the holder is
    killed (no clean exit), the server has dropped its lock and a run goes ahead."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, pg_url, str(tmp_path / "elsewhere" / "index.lock")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        catalog = Catalog(pg_url).open()
        assert catalog.run_lock(tmp_path / "index.lock").is_held_elsewhere()
        lib = tmp_path / "lib"
        lib.mkdir()
        done = cli_in_process("index", lib, "--data", tmp_path / "data", "--catalog-url", pg_url, expect=2)
        where = describe_url(pg_url)  # the URL without its password
        assert done.stderr == (
            f"error: another index run (pid {holder.pid} on {socket.gethostname()}) is using {where}; "
            "wait for it to finish (searching works meanwhile)\n"
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert not catalog.run_lock(tmp_path / "index.lock").is_held_elsewhere()
    with catalog.run_lock(tmp_path / "index.lock"):  # free again, and it excludes the others now
        assert catalog.run_lock(tmp_path / "index.lock").is_held_elsewhere()
    catalog.close()


@pytest.mark.slow  # two index runs
def test_search_services_sharing_a_catalog_and_an_index_dir_pick_up_new_vectors(pg_url, tmp_path, demo_videos):
    lib, data = tmp_path / "lib", tmp_path / "data"
    lib.mkdir()
    shutil.copy(demo_videos[0], lib / demo_videos[0].name)
    first = index(data, lib, "--catalog-url", pg_url)
    assert first["clips_embedded"] == 4
    services = [SearchService(DataDir(data, pg_url)).load() for _ in range(2)]  # two `serve`s
    assert [s.indexes["video"].index.ntotal for s in services] == [4, 4]

    shutil.copy(demo_videos[1], lib / demo_videos[1].name)
    assert index(data, lib, "--catalog-url", pg_url)["clips_embedded"] == 4
    assert [s.refresh() for s in services] == [True, True]
    catalog = Catalog(pg_url).open()
    vset = catalog.vector_set("video")
    ids = catalog.vector_ids(vset.id).tolist()
    catalog.close()
    for service in services:
        assert service.indexes["video"].vset.version == vset.version
        assert sorted(service.indexes["video"].ids.tolist()) == ids and len(ids) == 8
    new = search(data, "--video", lib / demo_videos[1].name, "-k", "1", "--catalog-url", pg_url)[0]
    assert new["path"] == str(lib / demo_videos[1].name)
    for service in services:
        service.catalog.close()


def test_a_new_postgresql_catalog_opened_by_several_connections_at_once_is_created_once(postgres):
    """Machines starting `index` and `serve` on an empty database at the same moment: the schema is created
    by one of them (the others wait on the schema lock and find it made), never twice."""
    openers = 4
    for _ in range(3):
        url = postgres.new_database()
        catalogs, errors = open_at_once(url, openers)
        assert errors == []
        assert {c.get_meta("schema_version") for c in catalogs} == {str(SCHEMA_VERSION)}
        for c in catalogs:
            c.close()
